import Foundation

// OpenBLAS, loaded at run time. Debian's OpenBLAS 0.3.21 picks its kernels from the CPU model and
// falls back to the SSE3 "Prescott" kernels on models it does not know (e.g. Intel family 6 model
// 207, which has AVX-512): sgemm then runs at a quarter of the machine's speed (measured 59 vs 220
// GFLOP/s at n = 1024). OpenBLAS reads its choice (OPENBLAS_CORETYPE) once, when the library is
// loaded, so the library is opened here, after that choice is made, instead of being linked.

/// The OpenBLAS entry points the engine uses, resolved once on first use.
enum BLAS {
    typealias SgemmFunction = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                              UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void

    struct Library {
        let sgemm: SgemmFunction
        let setThreads: (@convention(c) (Int32) -> Void)?
        let coreName: (@convention(c) () -> UnsafePointer<CChar>?)?
        /// The kernel choice made before loading, and why.
        let choice: CoreTypeChoice
    }

    nonisolated(unsafe) static let library: Library = load()

    /// cblas_sgemm's row-major and transpose codes.
    static let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112

    /// The kernel set OpenBLAS runs (e.g. "SkylakeX", "Haswell", "Zen").
    static var coreName: String {
        library.coreName.flatMap { $0() }.map { String(cString: $0) } ?? "unknown"
    }

    /// The core type to ask for when the environment names none: the AVX-512 kernels where the CPU has
    /// the AVX-512 subsets they use, otherwise nil (OpenBLAS's own detection).
    static func preferredCoreType(cpuFlags: Set<Substring>) -> String? {
        let avx512: Set<Substring> = ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
        return avx512.isSubset(of: cpuFlags) ? "SkylakeX" : nil
    }

    /// What OPENBLAS_CORETYPE is set to before OpenBLAS loads.
    struct CoreTypeChoice: Equatable {
        /// The value to set (nil: leave the environment and OpenBLAS's detection alone).
        var request: String?
        /// An OPENBLAS_CORETYPE from the environment that `request` replaces.
        var overridden: String?
        /// Whether L2S_BLAS_CORETYPE made the choice.
        var explicit: Bool
    }

    /// The kernel choice: L2S_BLAS_CORETYPE when set (the user's choice for l2s); otherwise the AVX-512
    /// kernels on a CPU that has them, even over an OPENBLAS_CORETYPE in the environment — machine
    /// images set that variable for every process (one sets Haswell on an AVX-512 EPYC, where it made
    /// sgemm 3.5× slower: 114 against 408 GFLOP/s at n = 1024); otherwise OPENBLAS_CORETYPE or
    /// OpenBLAS's own detection, untouched.
    static func coreTypeChoice(cpuFlags: Set<Substring>, openblasCoreType: String?, l2sCoreType: String?) -> CoreTypeChoice {
        let given = openblasCoreType.flatMap { $0.isEmpty ? nil : $0 }
        /// `given`, unless it already names `request` (OpenBLAS reads the name case-insensitively).
        func replaced(by request: String) -> String? {
            given.flatMap { $0.caseInsensitiveCompare(request) == .orderedSame ? nil : $0 }
        }
        if let l2s = l2sCoreType, !l2s.isEmpty {
            return CoreTypeChoice(request: l2s, overridden: replaced(by: l2s), explicit: true)
        }
        guard let preferred = preferredCoreType(cpuFlags: cpuFlags) else {
            return CoreTypeChoice(request: nil, overridden: nil, explicit: false)
        }
        return CoreTypeChoice(request: preferred, overridden: replaced(by: preferred), explicit: false)
    }

    /// The `flags` line of /proc/cpuinfo (empty where there is none).
    static func cpuFlags() -> Set<Substring> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " "))
    }

    static func load() -> Library {
        func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        let choice = coreTypeChoice(cpuFlags: cpuFlags(), openblasCoreType: environment("OPENBLAS_CORETYPE"),
                                    l2sCoreType: environment("L2S_BLAS_CORETYPE"))
        if let request = choice.request { setenv("OPENBLAS_CORETYPE", request, 1) }
        let names = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"]
        guard let handle = names.lazy.compactMap({ dlopen($0, RTLD_NOW | RTLD_LOCAL) }).first else {
            fatalError("cannot load OpenBLAS (\(names.joined(separator: ", "))): install libopenblas-dev")
        }
        func symbol<T>(_ name: String, as: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
        }
        guard let sgemm = symbol("cblas_sgemm", as: SgemmFunction.self) else {
            fatalError("OpenBLAS has no cblas_sgemm")
        }
        return Library(sgemm: sgemm,
                       setThreads: symbol("openblas_set_num_threads", as: (@convention(c) (Int32) -> Void).self),
                       coreName: symbol("openblas_get_corename", as: (@convention(c) () -> UnsafePointer<CChar>?).self),
                       choice: choice)
    }

    /// OpenBLAS's own worker threads (the engine keeps it at 1 and splits GEMMs itself).
    static func setThreads(_ n: Int) { library.setThreads?(Int32(n)) }
}

/// The OpenBLAS kernel set in use, and what chose it (for benchmark reports), e.g. "SkylakeX
/// (OPENBLAS_CORETYPE=Haswell overridden; L2S_BLAS_CORETYPE chooses)".
public var blasCoreName: String { BLAS.describe(core: BLAS.coreName, choice: BLAS.library.choice) }

extension BLAS {
    /// `core` (the set OpenBLAS reports) with what chose it; an L2S_BLAS_CORETYPE that OpenBLAS did not
    /// take (a name it does not know: it then runs its own detection) is said as such.
    static func describe(core: String, choice: CoreTypeChoice) -> String {
        if choice.explicit, let request = choice.request {
            if request.caseInsensitiveCompare(core) == .orderedSame { return "\(core) (L2S_BLAS_CORETYPE)" }
            return "\(core) (L2S_BLAS_CORETYPE=\(request) is not a kernel set OpenBLAS took; its own choice)"
        }
        if let given = choice.overridden { return "\(core) (OPENBLAS_CORETYPE=\(given) overridden; L2S_BLAS_CORETYPE chooses)" }
        return core
    }
}
