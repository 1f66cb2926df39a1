import Foundation
import Testing

/// The release build's -Ounchecked is for the numeric kernels only: every target that parses input
/// (Formats, Diffusion, Steering, ToyWorld, Workbench, l2s) keeps Swift's checks. Reads Package.swift.
@Suite struct PackageLayoutTests {
    static let manifest: String = {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: repo.appendingPathComponent("Package.swift"), encoding: .utf8)) ?? ""
    }()

    /// The swift settings named by `.target(name: "<name>", …)` (or `.executableTarget`), "" when it
    /// names none, nil when there is no such target.
    static func settings(of target: String) -> String? {
        guard let start = manifest.range(of: "Target(name: \"\(target)\"") ?? manifest.range(of: ".target(name: \"\(target)\"")
        else { return nil }
        let rest = manifest[start.upperBound...]
        let end = rest.range(of: "\n        .")?.lowerBound ?? rest.endIndex
        let declaration = rest[..<end]
        guard let s = declaration.range(of: "swiftSettings: ") else { return "" }
        return String(declaration[s.upperBound...].prefix { $0.isLetter || $0.isNumber })
    }

    @Test func onlyTheKernelsAreBuiltUnchecked() throws {
        #expect(!Self.manifest.isEmpty)
        // The one setting list that carries -Ounchecked is `optimise`, and only Tensors uses it.
        let unchecked = Self.manifest.components(separatedBy: "\n").filter { $0.contains("-Ounchecked") }
        #expect(unchecked.count == 1, "\(unchecked)")
        #expect(Self.manifest.contains("let optimise: [SwiftSetting] = [\n    .unsafeFlags([\"-Ounchecked\""))
        #expect(Self.settings(of: "Tensors") == "optimise")
        for target in ["Formats", "Diffusion", "Steering", "ToyWorld", "Workbench", "l2s"] {
            let s = try #require(Self.settings(of: target), "no target \(target)")
            #expect(s != "optimise", "\(target) is built -Ounchecked")
        }
    }
}
