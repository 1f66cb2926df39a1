// The detector's reading of x̂₀, as the classifier pane shows it beside the classifier's probability:
// one line of named objects (found / missing / duplicated, then unasked ones) and, per relation, the
// detector's verdict, with "fooled" where the classifier reads the relation while the detector does
// not. Pure functions of a `DetectorReading` (plain data from the engine); nothing here detects.

import Foundation
import ToyWorld

extension Widgets {
    /// The objects line(s): "x̂₀ detector: blue square missing · green triangle duplicated ×2 · +cyan bar
    /// unasked · red circle found" (problems first, then the objects found), flowed over at most
    /// `maxLines` lines of `width` columns; what does not fit ends in "…".
    static func detectorObjects(_ reading: DetectorReading, width: Int, theme t: Theme, maxLines: Int = 2) -> [[(String, Style)]] {
        guard width > 0, maxLines > 0 else { return [] }
        let times = t.glyphs.ascii ? "x" : "×"
        func chip(_ o: DetectorReading.Object) -> [(String, Style)] {
            switch o.status {
            case .found: return [(o.name, t.text), (" found", t.good)]
            case .missing: return [(o.name, t.text), (o.count == 0 ? " missing" : " \(o.count) of \(o.asked)", t.error)]
            case .duplicated: return [(o.name, t.text), (" duplicated \(times)\(o.count)", t.warning)]
            }
        }
        let named = reading.objects
        var chips = named.filter { $0.status == .missing }.map(chip) + named.filter { $0.status == .duplicated }.map(chip)
        chips += reading.unasked.map { o in [("+\(o.name)", t.warning), (o.count > 1 ? " \(times)\(o.count) unasked" : " unasked", t.warning)] }
        chips += named.filter { $0.status == .found }.map(chip)
        let separator: (String, Style) = (" \(t.glyphs.sectionDot) ", t.dim)
        let more: (String, Style) = (" \(t.glyphs.ellipsis)", t.dim)
        func columns(_ segs: [(String, Style)]) -> Int { segs.reduce(0) { $0 + TextWidth.columns(of: $1.0) } }
        var lines: [[(String, Style)]] = [[("\(t.glyphs.predicted) detector: ", t.dim)]]
        for (k, c) in chips.enumerated() {
            let piece = k == 0 ? c : [separator] + c
            let last = k == chips.count - 1
            let fits = columns(lines[lines.count - 1]) + columns(piece) + (last ? 0 : columns([more])) <= width
            if k == 0 || fits {
                lines[lines.count - 1] += piece
            } else if lines.count < maxLines {
                lines.append([("  ", t.dim)] + c)
            } else {
                lines[lines.count - 1].append(more)
                break
            }
        }
        return lines
    }

    /// The detector's verdict on `edge` at classifier probability `p`, longest form first: "⚠ fooled:
    /// blue square missing", "detector: holds", "detector: reads below"; nil when the reading has no
    /// verdict for it.
    static func detectorVerdict(_ reading: DetectorReading, edge: Int, probability p: Float?, theme t: Theme) -> Flex? {
        guard let r = reading.relation(edge: edge) else { return nil }
        let fooled = p.map { reading.fools(edge: edge, probability: $0) } ?? false
        let why: String
        let short: String
        switch r.holds {
        case true?:
            return Flex(["  detector: holds", "  det. holds", "  ok"], t.good)
        case false?:
            why = r.read.isEmpty ? "no clear offset" : "reads " + r.read.map(\.displayName).joined(separator: "+")
            short = r.read.isEmpty ? "no offset" : r.read.map(\.displayName).joined(separator: "+")
        case nil:
            let missing = [r.subject, r.object].filter { reading.object($0)?.status == .missing }
            why = missing.isEmpty ? "cannot tell (same class)" : missing.joined(separator: " and ") + " missing"
            short = missing.isEmpty ? "same class" : "missing"
        }
        if fooled {
            let w = String(t.glyphs.warning)
            return Flex(["  \(w) fooled: \(why)", "  \(w) fooled: \(short)", "  \(w) fooled"], t.warning)
        }
        return Flex(["  detector: \(why)", "  det. \(short)", "  \(t.glyphs.cross)"], t.error)
    }
}
