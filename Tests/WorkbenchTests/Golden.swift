// Golden-text snapshots: `assertGolden("name", text)` compares with Goldens/name.txt next to this file.
// Regenerate with L2S_UPDATE_GOLDENS=1 swift test --filter WorkbenchTests (then review the diff).

import Foundation
import Testing

enum Golden {
    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Goldens")
    }

    static var updating: Bool { ProcessInfo.processInfo.environment["L2S_UPDATE_GOLDENS"] == "1" }
}

/// Checks `actual` against the golden file `name`.txt (writing it when updating or when it is missing,
/// which still fails so a new golden is always looked at once).
func assertGolden(_ name: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let url = Golden.directory.appendingPathComponent(name + ".txt")
    let text = actual.hasSuffix("\n") ? actual : actual + "\n"
    let existing = try? String(contentsOf: url, encoding: .utf8)
    if Golden.updating || existing == nil {
        try? FileManager.default.createDirectory(at: Golden.directory, withIntermediateDirectories: true)
        try? text.write(to: url, atomically: true, encoding: .utf8)
        if existing == nil && !Golden.updating {
            Issue.record("golden \(name).txt did not exist; wrote it — review and rerun", sourceLocation: sourceLocation)
        }
        return
    }
    guard let expected = existing, expected != text else { return }
    let a = text.components(separatedBy: "\n"), e = expected.components(separatedBy: "\n")
    var first = 0
    while first < min(a.count, e.count) && a[first] == e[first] { first += 1 }
    let actualPath = NSTemporaryDirectory() + "golden-\(name).actual.txt"
    try? text.write(toFile: actualPath, atomically: true, encoding: .utf8)
    Issue.record("""
        golden \(name) differs at line \(first + 1):
          expected: \(first < e.count ? e[first] : "<end>")
          actual:   \(first < a.count ? a[first] : "<end>")
        actual written to \(actualPath); set L2S_UPDATE_GOLDENS=1 to accept
        """, sourceLocation: sourceLocation)
}
