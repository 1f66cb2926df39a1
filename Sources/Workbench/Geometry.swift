/// A terminal size in cells.
struct Size: Equatable, Hashable, Sendable, CustomStringConvertible {
    var width: Int
    var height: Int
    init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
    }
    var description: String { "\(width)×\(height)" }
}

/// A rectangle of cells; `x`, `y` are the top-left corner. Never negative in size.
struct Rect: Equatable, Hashable, Sendable, CustomStringConvertible {
    var x: Int
    var y: Int
    var width: Int
    var height: Int

    init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = max(0, width)
        self.height = max(0, height)
    }

    static let zero = Rect(x: 0, y: 0, width: 0, height: 0)

    var maxX: Int { x + width }
    var maxY: Int { y + height }
    var isEmpty: Bool { width == 0 || height == 0 }
    var area: Int { width * height }
    var description: String { "(\(x),\(y) \(width)×\(height))" }

    /// The rectangle shrunk by `n` cells on every side (empty when too small).
    func inset(_ n: Int) -> Rect {
        Rect(x: x + n, y: y + n, width: width - 2 * n, height: height - 2 * n)
    }

    /// Whether `other` lies entirely inside this rectangle (empty rectangles lie anywhere).
    func contains(_ other: Rect) -> Bool {
        other.isEmpty || (other.x >= x && other.y >= y && other.maxX <= maxX && other.maxY <= maxY)
    }

    /// Whether the cell (px, py) is inside.
    func contains(x px: Int, y py: Int) -> Bool { px >= x && px < maxX && py >= y && py < maxY }

    /// Whether the two rectangles share a cell.
    func intersects(_ other: Rect) -> Bool {
        !isEmpty && !other.isEmpty && x < other.maxX && other.x < maxX && y < other.maxY && other.y < maxY
    }

    /// The part of this rectangle inside `other`.
    func clipped(to other: Rect) -> Rect {
        let nx = max(x, other.x), ny = max(y, other.y)
        return Rect(x: nx, y: ny, width: min(maxX, other.maxX) - nx, height: min(maxY, other.maxY) - ny)
    }

    /// Splits off `n` rows from the top: (top, rest).
    func splitTop(_ n: Int) -> (Rect, Rect) {
        let k = min(max(n, 0), height)
        return (Rect(x: x, y: y, width: width, height: k), Rect(x: x, y: y + k, width: width, height: height - k))
    }

    /// Splits off `n` rows from the bottom: (rest, bottom).
    func splitBottom(_ n: Int) -> (Rect, Rect) {
        let k = min(max(n, 0), height)
        return (Rect(x: x, y: y, width: width, height: height - k), Rect(x: x, y: maxY - k, width: width, height: k))
    }

    /// Splits off `n` columns from the left: (left, rest).
    func splitLeft(_ n: Int) -> (Rect, Rect) {
        let k = min(max(n, 0), width)
        return (Rect(x: x, y: y, width: k, height: height), Rect(x: x + k, y: y, width: width - k, height: height))
    }
}
