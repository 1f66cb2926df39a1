// Terminal input → keys, with escape sequences parsed as a unit (pure; the backend feeds it what
// get_wch returned). A terminal writes a key's whole sequence at once, so one burst of input holds
// it: CSI (`ESC [` parameters final) and SS3 (`ESC O` final) forms become keys, whatever the terminfo
// entry lists (tmux sends Home as `ESC [ 1 ~` under TERM=xterm-256color); ESC before any other
// character is Alt+that character; sequences we do not know, and terminal replies (DCS/OSC/APC
// strings up to ST), are dropped whole. A lone ESC at the end
// of a burst waits `escapeDelay` for the rest of a sequence (a slow link may split one) and is the
// Esc key if nothing comes.

/// What the terminal delivered: a character code, or an event ncurses decoded itself (resize, or a
/// function key when keypad mode is on).
enum InputUnit: Equatable, Sendable {
    case code(UInt32)
    case event(InputEvent)
}

/// Escape-sequence parser with the state a split sequence needs between bursts.
struct KeyDecoder: Sendable {
    /// How long a lone ESC (or an unfinished sequence) waits for the rest, in seconds (ncurses' ESCDELAY).
    static let escapeDelay = 0.025

    private var pending: [UInt32] = []
    private var pendingSince = 0.0

    init() {}

    /// Whether an ESC or an unfinished sequence waits for more input.
    var hasPending: Bool { !pending.isEmpty }

    /// When `flush` should be called if no input arrives (nil: nothing waits).
    var deadline: Double? { pending.isEmpty ? nil : pendingSince + Self.escapeDelay }

    /// Decodes one burst of input read at time `now`.
    mutating func feed(_ units: [InputUnit], now: Double) -> [InputEvent] {
        var out: [InputEvent] = []
        if !pending.isEmpty && now - pendingSince > 4 * Self.escapeDelay { out += flush(now: now) }
        var codes = pending
        let since = pending.isEmpty ? now : pendingSince
        pending = []
        for unit in units {
            switch unit {
            case .code(let c): codes.append(c)
            case .event(let e):
                // An event ncurses decoded ends whatever was being read (a lone ESC was the Esc key).
                out += Self.decode(codes, final: true).events
                codes = []
                out.append(e)
            }
        }
        let (events, rest) = Self.decode(codes, final: false)
        out += events
        pending = rest
        pendingSince = rest.isEmpty ? 0 : since
        return out
    }

    /// Resolves what waits once `escapeDelay` has passed: a lone ESC is the Esc key; an unfinished
    /// sequence is dropped.
    mutating func flush(now: Double) -> [InputEvent] {
        guard let d = deadline, now >= d else { return [] }
        let events = Self.decode(pending, final: true).events
        pending = []
        return events
    }

    /// Decodes `codes`; with `final` false an unfinished sequence at the end is returned as `rest`.
    static func decode(_ codes: [UInt32], final: Bool) -> (events: [InputEvent], rest: [UInt32]) {
        var out: [InputEvent] = []
        var i = 0
        while i < codes.count {
            let c = codes[i]
            guard c == 27 else {
                if let k = CursesBackend.characterKey(c) { out.append(.key(k)) }
                i += 1
                continue
            }
            switch sequence(codes, at: i) {
            case .incomplete:
                if !final { return (out, Array(codes[i...])) }
                // Nothing followed a lone ESC: the Esc key. An unfinished sequence: dropped.
                if i + 1 == codes.count { out.append(.key(.escape)) }
                i = codes.count
            case .complete(let key, let length):
                if let key { out.append(.key(key)) }
                i += length
            }
        }
        return (out, [])
    }

    enum Parsed: Equatable {
        /// The codes end inside the sequence.
        case incomplete
        /// A sequence of `length` codes; `key` nil when it is not one we know (ignored).
        case complete(Key?, length: Int)
    }

    /// The sequence starting with the ESC at `start`.
    static func sequence(_ codes: [UInt32], at start: Int) -> Parsed {
        let n = codes.count
        guard start + 1 < n else { return .incomplete }
        let next = codes[start + 1]
        switch next {
        case 0x5B:  // CSI: ESC [ parameters (0x30–0x3F) intermediates (0x20–0x2F) final (0x40–0x7E)
            var j = start + 2
            var params = ""
            var privateMarker = false
            while j < n, (0x30...0x3F).contains(codes[j]) {
                let ch = Character(UnicodeScalar(UInt8(codes[j])))
                if "<=>?".contains(ch) { privateMarker = true }
                params.append(ch)
                j += 1
            }
            var intermediates = false
            while j < n, (0x20...0x2F).contains(codes[j]) { intermediates = true; j += 1 }
            guard j < n else { return .incomplete }
            let final = codes[j]
            guard (0x40...0x7E).contains(final) else {
                // Not a sequence after all (a control character or text inside it): drop what was read.
                return .complete(nil, length: j - start)
            }
            // The Linux console's F1–F5: ESC [ [ A … E.
            if final == 0x5B && params.isEmpty {
                guard j + 1 < n else { return .incomplete }
                let f = codes[j + 1]
                let key: Key? = (0x41...0x45).contains(f) ? .function(Int(f - 0x40)) : nil
                return .complete(key, length: j + 2 - start)
            }
            let key = privateMarker || intermediates ? nil : csiKey(params: params, final: UInt8(final))
            return .complete(key, length: j + 1 - start)
        case 0x4F:  // SS3: ESC O final
            guard start + 2 < n else { return .incomplete }
            let final = codes[start + 2]
            guard (0x40...0x7E).contains(final) else { return .complete(nil, length: 2) }
            return .complete(ss3Key(UInt8(final)), length: 3)
        case 0x50, 0x5D, 0x5F, 0x5E, 0x58:
            // DCS, OSC, APC, PM, SOS: a string up to ST (ESC \) or BEL — a terminal's reply (e.g. a late
            // answer to the graphics query), never a key.
            var j = start + 2
            while j < n {
                if codes[j] == 7 { return .complete(nil, length: j + 1 - start) }
                if codes[j] == 27 {
                    guard j + 1 < n else { return .incomplete }
                    if codes[j + 1] == 0x5C { return .complete(nil, length: j + 2 - start) }
                }
                j += 1
            }
            return .incomplete
        case 27:
            // ESC ESC: the first one is the Esc key on its own.
            return .complete(.escape, length: 1)
        default:
            // Alt + a character (ESC prefix). Alt + a control key is not a key we use.
            if next < 0x20 || next == 0x7F { return .complete(nil, length: 2) }
            guard let s = UnicodeScalar(next) else { return .complete(nil, length: 2) }
            return .complete(.alt(Character(s)), length: 2)
        }
    }

    /// CSI forms: cursor keys (any modifiers), Home/End, Shift-Tab, and the `n ~` keys.
    static func csiKey(params: String, final: UInt8) -> Key? {
        switch final {
        case 0x41: return .up        // A
        case 0x42: return .down      // B
        case 0x43: return .right     // C
        case 0x44: return .left      // D
        case 0x48: return .home      // H
        case 0x46: return .end       // F
        case 0x5A: return .backTab   // Z
        case 0x50, 0x51, 0x52, 0x53: // P Q R S with a modifier: F1–F4
            return params.isEmpty ? nil : .function(Int(final) - 0x4F)
        case 0x7E:                   // ~
            let first = params.split(separator: ";", omittingEmptySubsequences: false).first.flatMap { Int($0) }
            switch first {
            case 1, 7: return .home
            case 4, 8: return .end
            case 3: return .delete
            case 5: return .pageUp
            case 6: return .pageDown
            case 11, 12, 13, 14, 15: return .function(first! - 10)
            case 17, 18, 19, 20, 21: return .function(first! - 11)
            case 23, 24: return .function(first! - 12)
            default: return nil   // Insert (2), paste markers (200/201) and others: not keys we use
            }
        default: return nil
        }
    }

    /// SS3 forms (application cursor and keypad mode): cursor keys, Home/End, F1–F4, keypad Enter.
    static func ss3Key(_ final: UInt8) -> Key? {
        switch final {
        case 0x41: return .up
        case 0x42: return .down
        case 0x43: return .right
        case 0x44: return .left
        case 0x48: return .home
        case 0x46: return .end
        case 0x50, 0x51, 0x52, 0x53: return .function(Int(final) - 0x4F)
        case 0x4D: return .enter
        default: return nil
        }
    }
}
