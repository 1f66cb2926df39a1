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

    @Test("a machine-wide OPENBLAS_CORETYPE does not hold an AVX-512 CPU to older kernels; L2S_BLAS_CORETYPE does")
    func environmentChoice() {
        let avx512: Set<Substring> = ["avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
        // The machine image's Haswell on an AVX-512 EPYC (the case that ran sgemm at 114 instead of 408 GFLOP/s).
        #expect(BLAS.coreTypeChoice(cpuFlags: avx512, openblasCoreType: "Haswell", l2sCoreType: nil)
                == .init(request: "SkylakeX", overridden: "Haswell", explicit: false))
        #expect(BLAS.coreTypeChoice(cpuFlags: avx512, openblasCoreType: "skylakex", l2sCoreType: nil)
                == .init(request: "SkylakeX", overridden: nil, explicit: false))
        #expect(BLAS.coreTypeChoice(cpuFlags: avx512, openblasCoreType: nil, l2sCoreType: nil)
                == .init(request: "SkylakeX", overridden: nil, explicit: false))
        // l2s's own variable wins everywhere.
        #expect(BLAS.coreTypeChoice(cpuFlags: avx512, openblasCoreType: "Haswell", l2sCoreType: "Prescott")
                == .init(request: "Prescott", overridden: "Haswell", explicit: true))
        // What the benchmark reports say, including a name OpenBLAS did not take.
        #expect(BLAS.describe(core: "Haswell", choice: .init(request: "haswell", overridden: nil, explicit: true))
                == "Haswell (L2S_BLAS_CORETYPE)")
        #expect(BLAS.describe(core: "Cooperlake", choice: .init(request: "Bogus", overridden: nil, explicit: true))
                == "Cooperlake (L2S_BLAS_CORETYPE=Bogus is not a kernel set OpenBLAS took; its own choice)")
        #expect(BLAS.describe(core: "SkylakeX", choice: .init(request: "SkylakeX", overridden: "Haswell", explicit: false))
                == "SkylakeX (OPENBLAS_CORETYPE=Haswell overridden; L2S_BLAS_CORETYPE chooses)")
        // Without AVX-512 the environment and OpenBLAS's detection are left alone.
        #expect(BLAS.coreTypeChoice(cpuFlags: ["avx2", "fma"], openblasCoreType: "Haswell", l2sCoreType: nil)
                == .init(request: nil, overridden: nil, explicit: false))
    }

    @Test("the loaded kernels are the CPU's best, not the SSE3 fallback or the environment's older set, unless L2S_BLAS_CORETYPE chose")
    func loadedCore() {
        let core = BLAS.coreName
        if !BLAS.library.choice.explicit, let wanted = BLAS.preferredCoreType(cpuFlags: BLAS.cpuFlags()) {
            #expect(core == wanted, "OpenBLAS runs \(core) on an AVX-512 CPU")
        }
        #expect(core != "unknown")
        // And sgemm through the loaded entry point is right.
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), b = Tensor([1, 0, 0, 1, 1, 1], shape: [3, 2])
        #expect(a.matmul(b).array == [4, 5, 10, 11])
    }
}

@Suite("Deferred parameter initialisation")
struct DeferredInitTests {
    @Test("modules built for a checkpoint draw no random numbers; outside, initialisation is unchanged")
    func deferredDrawsNothing() throws {
        var rng = RNG(seed: 9)
        let before = rng
        let layer = ParameterInitialization.deferred { Linear(64, 32, rng: &rng) }
        let embedding = ParameterInitialization.deferred { Embedding(10, 8, rng: &rng) }
        #expect(rng.next() == { var r = before; return r.next() }(), "the generator was advanced")
        #expect(layer.weight.shape == [32, 64] && layer.weight.requiresGrad && embedding.weight.shape == [10, 8])
        #expect(!ParameterInitialization.isDeferred)
        // A strict load then defines every value.
        let source = Linear(64, 32, rng: &rng)
        try layer.loadStateDict(Dictionary(uniqueKeysWithValues: source.stateDict()))
        #expect(layer.weight.array == source.weight.array && layer.bias!.array == source.bias!.array)
        // Normal construction is as before: the same seed gives the same weights.
        var a = RNG(seed: 4), b = RNG(seed: 4)
        #expect(Linear(8, 4, rng: &a).weight.array == Linear(8, 4, rng: &b).weight.array)
    }
}
