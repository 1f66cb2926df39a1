// swift-tools-version: 6.0
// LearnToSteer: a terminal workbench for steering text-to-image diffusion toward spatial relations.
// Layers (dependencies point one way): Tensors ← Diffusion ← Steering ← Workbench ← l2s;
// ToyWorld sits beside Steering on Diffusion; Relations (prompt text → relations) lies below both;
// Imaging (RGB8, PNG) beside Diffusion; ToyBench (opening a model, the toy benchmark) joins Steering
// and ToyWorld for the CLI and the Workbench.
import PackageDescription

// Release: unchecked optimisation for the kernels. Debug: still -O for the numeric layers, since
// unoptimised SIMD and pointer loops run 100×+ slower and would make `swift test` take hours.
let optimise: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]
// The layers above the kernels: Swift's checks stay on in release (-O); still -O in debug.
let checkedOptimise: [SwiftSetting] = [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]

let package = Package(
    name: "LearnToSteer",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "l2s", targets: ["l2s"]),
        .library(name: "Tensors", targets: ["Tensors"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // OpenBLAS (libopenblas-dev) is opened at run time by Sources/Tensors/BLAS.swift, not linked.
        .systemLibrary(name: "CAllocator", path: "Sources/CAllocator"),
        .systemLibrary(name: "CNcurses", path: "Sources/CNcurses",
                       providers: [.apt(["libncursesw5-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        // File parsing (safetensors headers, text lines) keeps Swift's checks in every configuration.
        .target(name: "Formats"),
        // Element-wise kernels in C, built per instruction set (AVX-512, AVX2 + FMA, baseline) and chosen at run time.
        .target(name: "CKernels"),
        .target(name: "Tensors", dependencies: ["Formats", "CAllocator", "CKernels"], swiftSettings: optimise),
        // The prompt as relations (parser, relation graph, the four spatial relations, eval records):
        // text logic only, below both Steering and ToyWorld.
        .target(name: "Relations", dependencies: ["Formats"], swiftSettings: checkedOptimise),
        .target(name: "Diffusion", dependencies: ["Formats", "Tensors"], swiftSettings: checkedOptimise),
        .target(name: "Steering", dependencies: ["Relations", "Diffusion", "Formats", "Tensors"], swiftSettings: checkedOptimise),
        // Images: RGB8 from the models' CHW floats, PNG files (libpng).
        .target(name: "Imaging", dependencies: ["Tensors", "CPNG"], swiftSettings: checkedOptimise),
        .target(name: "ToyWorld", dependencies: ["Formats", "Relations", "Diffusion", "Tensors"], swiftSettings: checkedOptimise),
        // Opening a model (toy or Stable Diffusion) with its defaults and vocabulary, for the CLI and the UI.
        .target(name: "ToyBench", dependencies: ["Formats", "Tensors", "Relations", "Diffusion", "Steering", "ToyWorld"], swiftSettings: checkedOptimise),
        // The UI and CLI keep Swift's checks (a trap must stay a trap: the workbench restores the terminal on it).
        .target(name: "Workbench", dependencies: ["Formats", "Tensors", "Diffusion", "Imaging", "Relations", "Steering", "ToyWorld", "ToyBench", "CNcurses"]),
        .executableTarget(name: "l2s", dependencies: [
            "Formats", "Tensors", "Diffusion", "Imaging", "Relations", "Steering", "ToyWorld", "ToyBench", "Workbench",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "Formats", "CKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Formats", "Tensors"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SteeringTests", dependencies: ["Relations", "Steering", "Diffusion", "Tensors"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ToyWorldTests", dependencies: ["ToyWorld", "Relations", "Imaging", "Formats", "Diffusion", "Tensors", "Steering", "ToyBench"]),
        .testTarget(name: "WorkbenchTests", dependencies: ["Workbench", "Imaging", "Formats", "Relations", "Steering", "ToyWorld", "ToyBench"]),
        .testTarget(name: "L2SCLITests", dependencies: ["l2s", "Imaging", "Relations", "Steering", "ToyWorld", "Tensors"]),
    ],
    swiftLanguageModes: [.v5]
)
