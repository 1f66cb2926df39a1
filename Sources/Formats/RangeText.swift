// A valid range as users read it in an error line ("1…1000", "0…0.5"), so a message is spelled from
// the same constant the check uses.

import Foundation

extension ClosedRange where Bound: BinaryInteger {
    public var spelled: String { "\(lowerBound)…\(upperBound)" }
}

extension ClosedRange where Bound == Float {
    public var spelled: String { String(format: "%g…%g", Double(lowerBound), Double(upperBound)) }
}
