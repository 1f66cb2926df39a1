import Foundation
import Testing
@testable import Tensors

@Suite("OpenBLAS loading")
struct BLASLoaderTests {
    @Test("AVX-512 CPUs get the AVX-512 kernels; others keep OpenBLAS's own choice")
    func preferredCore() {
        let avx512: Set<Substring> = ["sse3", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
        #expect(BLAS.preferredCoreType(cpuFlags: avx512) == "SkylakeX")
        #expect(BLAS.preferredCoreType(cpuFlags: ["sse3", "avx2", "fma"]) == nil)
        #expect(BLAS.preferredCoreType(cpuFlags: ["avx512f", "avx2"]) == nil)   // AVX-512F alone (Knights Landing) is not enough
    }

    @Test("the loaded kernels are the CPU's, not the SSE3 fallback, unless the environment chose")
    func loadedCore() {
        let core = BLAS.coreName
        if BLAS.library.environmentCoreType == nil, let wanted = BLAS.preferredCoreType(cpuFlags: BLAS.cpuFlags()) {
            #expect(core == wanted, "OpenBLAS runs \(core) on an AVX-512 CPU")
        }
        #expect(core != "unknown")
        // And sgemm through the loaded entry point is right.
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), b = Tensor([1, 0, 0, 1, 1, 1], shape: [3, 2])
        #expect(a.matmul(b).array == [4, 5, 10, 11])
    }
}
