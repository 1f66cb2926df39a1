// The detector's reading of x̂₀, as the classifier pane shows it beside the classifier's probability:
// one line of named objects (found / missing / duplicated, then unasked ones) and, per relation, the
// detector's verdict, with "fooled" where the classifier reads the relation while the detector does
// not. Pure functions of a `DetectorReading` (plain data from the engine); nothing here detects.

import Foundation
import ToyWorld

extension Widgets {
    /// The objects line(s): "x̂₀ detector: red circle found · blue square missing · green triangle duplicated ×2 ·
    /// +cyan bar unasked", flowed over at most `maxLines` lines of `width` columns.
    static func detectorObjects(_ reading: DetectorReading, width: Int, theme t: Theme, maxLines: Int = 2) -> [[(String, Style)]] {
        guard width > 0, maxLines > 0 else { return [] }
        var chips: [[(String, Style)]] = reading.objects.map { o in
            switch o.status {
            case .found: return [(o.name, t.text), (" found", t.good)]
            case .missing: return [(o.name, t.text), (o.count == 0 ? " missing" : " \(o.count) of \(o.asked)", t.error)]
            case .duplicated: return [(o.name, t.text), (" duplicated \(t.glyphs.ascii ? "x" : "×")\(o.count)", t.warning)]
            }
        }
        chips += reading.unasked.map { o in
            [("+\(o.name)", t.warning), (o.count > 1 ? " \(t.glyphs.ascii ? "x" : "×")\(o.count) unasked" : " unasked", t.warning)]
        }
        let lead: [(String, Style)] = [("\(t.glyphs.predicted) detector: ", t.dim)]
        let separator: (String, Style) = (" \(t.glyphs.sectionDot) ", t.dim)
        func columns(_ segs: [(String, Style)]) -> Int { segs.reduce(0) { $0 + TextWidth.columns(of: $1.0) } }
        var lines: [[(String, Style)]] = [lead]
        var first = true
        for chip in chips {
            let piece = first ? chip : [separator] + chip
            if !first && columns(lines[lines.count - 1]) + columns(piece) > width && lines.count < maxLines {
                lines.append([("  ", t.dim)] + chip)
            } else {
                lines[lines.count - 1] += piece
            }
            first = false
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
            why = r.read.isEmpty ? "no clear offset" : "reads " + r.read.map(\.shortName).joined(separator: "+")
            short = r.read.isEmpty ? "no offset" : r.read.map(\.shortName).joined(separator: "+")
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
