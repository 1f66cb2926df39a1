// The per-step map strip: the subject's and the object's cross-attention maps over the steered
// steps, side by side in one PNG (what DAAM users ask for). Top row the subject, bottom row the
// object, one column per step, each map normalised to its own range and drawn in grey levels.

import Foundation
import Imaging
import ToyWorld

public enum MapStrip {
    /// One column of the strip: a step and its two square maps (row-major).
    public struct Column: Sendable, Equatable {
        public var step: Int
        public var subject: [Float]
        public var object: [Float]
        public init(step: Int, subject: [Float], object: [Float]) { self.step = step; self.subject = subject; self.object = object }
    }

    /// Pixels per map pixel, and between tiles.
    static let scale = 4
    static let gap = 2

    /// The columns of a run for one relation: the last iteration of `edge` at each step that has one.
    static func columns(_ run: RunView, edge: Int) -> [Column] {
        var byStep: [Int: IterationRecord] = [:]
        for it in run.iterations where it.edge == edge { byStep[it.step] = it }
        return byStep.keys.sorted().map { Column(step: $0, subject: byStep[$0]!.subjectMap, object: byStep[$0]!.objectMap) }
    }

    /// The strip as an RGB image (nil when there are no columns or the maps are not square).
    static func render(_ columns: [Column]) -> RGBImage? {
        guard let first = columns.first else { return nil }
        let side = Int(Double(first.subject.count).squareRoot())
        guard side > 0, columns.allSatisfy({ $0.subject.count == side * side && $0.object.count == side * side }) else { return nil }
        let tile = side * scale
        let width = columns.count * tile + (columns.count - 1) * gap
        let height = 2 * tile + gap
        var px = [UInt8](repeating: 255, count: width * height * 3)   // white gaps
        for (c, col) in columns.enumerated() {
            for (row, map) in [col.subject, col.object].enumerated() {
                let lo = map.min() ?? 0, hi = map.max() ?? 0
                let span = hi - lo
                for y in 0..<tile {
                    for x in 0..<tile {
                        let v = map[(y / scale) * side + x / scale]
                        let level = span > 0 && v.isFinite ? (v - lo) / span : 0
                        let g = UInt8(min(max(level, 0), 1) * 255)
                        let ox = c * (tile + gap) + x, oy = row * (tile + gap) + y
                        let i = 3 * (oy * width + ox)
                        px[i] = g; px[i + 1] = g; px[i + 2] = g
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: px)
    }

    /// Writes the strip as a PNG; returns false when there is nothing to draw.
    @discardableResult
    public static func write(_ columns: [Column], to path: String) throws -> Bool {
        guard let img = render(columns) else { return false }
        try writePNG(rgb: img.pixels, width: img.width, height: img.height, to: path)
        return true
    }
}
