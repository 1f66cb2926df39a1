// The one key table: dispatch, the key bar and the `?` overlay are all generated
// from `Keymap.bindings`. Two input modes: editing the prompt (text goes to the field) and command
// keys; a third for typing a schedule value; the help overlay takes keys while open.

/// A key as the UI sees it (decoded by the backend from get_wch).
enum Key: Hashable, Sendable {
    case char(Character)
    /// Ctrl + a letter: ^A … ^Z (as lower-case letters).
    case ctrl(Character)
    case enter, escape, tab, backTab, backspace, delete
    case up, down, left, right, home, end, pageUp, pageDown
    case function(Int)
    /// Alt + a character (the terminal sends ESC before it). No binding uses one, so an Alt chord
    /// never becomes Esc plus a command.
    case alt(Character)

    /// How the key is written in the key bar and the help.
    func label(ascii: Bool) -> String {
        switch self {
        case .char(" "): return ascii ? "Space" : "␣"
        case .char(let c): return String(c)
        case .ctrl(let c): return "^" + String(c).uppercased()
        case .enter: return ascii ? "Enter" : "⏎"
        case .escape: return "Esc"
        case .tab: return "Tab"
        case .backTab: return "S-Tab"
        case .backspace: return ascii ? "BS" : "⌫"
        case .delete: return "Del"
        case .up: return ascii ? "Up" : "↑"
        case .down: return ascii ? "Down" : "↓"
        case .left: return ascii ? "Left" : "←"
        case .right: return ascii ? "Right" : "→"
        case .home: return "Home"
        case .end: return "End"
        case .pageUp: return "PgUp"
        case .pageDown: return "PgDn"
        case .function(let n): return "F\(n)"
        case .alt(let c): return "Alt-" + String(c)
        }
    }
}

/// The panes that take focus in command mode.
enum Focus: String, CaseIterable, Sendable {
    case relations, attention, schedule
    var title: String {
        switch self {
        case .relations: return "Relations"
        case .attention: return "Attention"
        case .schedule: return "Schedule"
        }
    }
}

/// Where keys go.
enum InputMode: Equatable, Sendable {
    /// Typing the prompt.
    case prompt
    /// Single-key commands.
    case command
    /// Typing a value for a schedule field.
    case field(ScheduleField)
    /// The help overlay is open.
    case help
}

/// Everything a key can do.
enum Action: Equatable, Sendable {
    // Text fields (prompt and typed values)
    case insert(String)
    case cursorLeft, cursorRight, cursorHome, cursorEnd
    case deleteBackward, deleteForward, clearLine, killToEnd, deleteWord
    case historyPrevious, historyNext
    case editPrompt, leaveEditing
    // Runs
    case run, pauseResume, cancel, rerun, newSeed, toggleSteered, save
    // Panes
    case focusNext, focusPrevious
    case selectRelation(Int)
    case moveRelation(Int)
    case toggleRelation
    case scrub(Int), scrubToStart, scrubToLive
    case switchToken, cycleLayer(Int), cycleHead(Int), cycleColormap, toggleZoom
    case selectField(Int), adjustField(Int), editField, commitField, cancelField
    case adjustGuidance(Int)
    // Help and quitting
    case help, helpScroll(Int), closeHelp
    case quit
    /// Test hook (only bound when L2S_TUI_TEST_TRAP is set): a deliberate Swift runtime trap.
    case testTrap
}

/// Which keys a binding listens to.
enum KeyContext: Equatable, Sendable {
    /// Typing the prompt.
    case prompt
    /// Typing a schedule value.
    case field
    /// Command mode, any focus.
    case command
    /// Command mode with this pane focused (checked before `.command`).
    case focused(Focus)
    /// The help overlay.
    case help

    var title: String {
        switch self {
        case .prompt: return "Editing the prompt"
        case .field: return "Typing a value"
        case .command: return "Commands"
        case .focused(let f): return "\(f.title) pane focused"
        case .help: return "Help"
        }
    }
}

/// One row of the key table.
struct KeyBinding: Sendable {
    var keys: [Key]
    var action: Action
    var context: KeyContext
    /// Short text for the key bar (empty: not in the bar).
    var bar: String
    /// One line for the help overlay.
    var help: String
}

/// The key table and dispatch.
enum Keymap {
    static let bindings: [KeyBinding] = [
        // Prompt editing
        KeyBinding(keys: [.enter], action: .run, context: .prompt, bar: "run", help: "parse the prompt and run"),
        KeyBinding(keys: [.escape, .tab], action: .leaveEditing, context: .prompt, bar: "commands", help: "stop editing (command keys)"),
        KeyBinding(keys: [.left], action: .cursorLeft, context: .prompt, bar: "", help: "cursor left"),
        KeyBinding(keys: [.right], action: .cursorRight, context: .prompt, bar: "", help: "cursor right"),
        KeyBinding(keys: [.home, .ctrl("a")], action: .cursorHome, context: .prompt, bar: "", help: "start of line"),
        KeyBinding(keys: [.end, .ctrl("e")], action: .cursorEnd, context: .prompt, bar: "", help: "end of line"),
        KeyBinding(keys: [.backspace], action: .deleteBackward, context: .prompt, bar: "", help: "delete before the cursor"),
        KeyBinding(keys: [.delete, .ctrl("d")], action: .deleteForward, context: .prompt, bar: "", help: "delete at the cursor"),
        KeyBinding(keys: [.ctrl("u")], action: .clearLine, context: .prompt, bar: "clear", help: "clear the line"),
        KeyBinding(keys: [.ctrl("k")], action: .killToEnd, context: .prompt, bar: "", help: "delete to the end of the line"),
        KeyBinding(keys: [.ctrl("w")], action: .deleteWord, context: .prompt, bar: "", help: "delete the word before the cursor"),
        KeyBinding(keys: [.up], action: .historyPrevious, context: .prompt, bar: "history", help: "previous prompt (history)"),
        KeyBinding(keys: [.down], action: .historyNext, context: .prompt, bar: "", help: "next prompt (history)"),

        // Typing a schedule value
        KeyBinding(keys: [.enter], action: .commitField, context: .field, bar: "set", help: "set the value"),
        KeyBinding(keys: [.escape], action: .cancelField, context: .field, bar: "cancel", help: "keep the old value"),
        KeyBinding(keys: [.left], action: .cursorLeft, context: .field, bar: "", help: "cursor left"),
        KeyBinding(keys: [.right], action: .cursorRight, context: .field, bar: "", help: "cursor right"),
        KeyBinding(keys: [.backspace], action: .deleteBackward, context: .field, bar: "", help: "delete before the cursor"),
        KeyBinding(keys: [.ctrl("u")], action: .clearLine, context: .field, bar: "", help: "clear"),

        // Focused panes
        KeyBinding(keys: [.up], action: .selectRelation(-1), context: .focused(.relations), bar: "", help: "select the previous relation"),
        KeyBinding(keys: [.down], action: .selectRelation(1), context: .focused(.relations), bar: "", help: "select the next relation"),
        KeyBinding(keys: [.left], action: .scrub(-1), context: .focused(.attention), bar: "", help: "one step back"),
        KeyBinding(keys: [.right], action: .scrub(1), context: .focused(.attention), bar: "", help: "one step forward"),
        KeyBinding(keys: [.up, .down], action: .switchToken, context: .focused(.attention), bar: "", help: "subject ↔ object map"),
        KeyBinding(keys: [.up], action: .selectField(-1), context: .focused(.schedule), bar: "", help: "previous setting"),
        KeyBinding(keys: [.down], action: .selectField(1), context: .focused(.schedule), bar: "", help: "next setting"),
        KeyBinding(keys: [.left], action: .adjustField(-1), context: .focused(.schedule), bar: "", help: "decrease the setting"),
        KeyBinding(keys: [.right], action: .adjustField(1), context: .focused(.schedule), bar: "", help: "increase the setting"),
        KeyBinding(keys: [.enter], action: .editField, context: .focused(.schedule), bar: "type", help: "type a value for the setting"),

        // Commands
        KeyBinding(keys: [.enter], action: .run, context: .command, bar: "run", help: "run the prompt"),
        KeyBinding(keys: [.char("e"), .char("i"), .char("/")], action: .editPrompt, context: .command, bar: "edit", help: "edit the prompt"),
        KeyBinding(keys: [.char(" ")], action: .pauseResume, context: .command, bar: "pause", help: "pause / resume at the next step boundary"),
        KeyBinding(keys: [.char("x")], action: .cancel, context: .command, bar: "cancel", help: "cancel the run"),
        KeyBinding(keys: [.char("r")], action: .rerun, context: .command, bar: "rerun", help: "run again with the same seed"),
        KeyBinding(keys: [.char("n")], action: .newSeed, context: .command, bar: "new seed", help: "run with a new seed"),
        KeyBinding(keys: [.char("a")], action: .toggleSteered, context: .command, bar: "A/B", help: "steered ↔ unsteered, same seed (runs it)"),
        KeyBinding(keys: [.char("s")], action: .save, context: .command, bar: "save", help: "save PNG + JSON sidecar"),
        KeyBinding(keys: [.tab], action: .focusNext, context: .command, bar: "focus", help: "focus the next pane"),
        KeyBinding(keys: [.backTab], action: .focusPrevious, context: .command, bar: "", help: "focus the previous pane"),
        KeyBinding(keys: [.char("j")], action: .selectRelation(1), context: .command, bar: "", help: "select the next relation"),
        KeyBinding(keys: [.char("k")], action: .selectRelation(-1), context: .command, bar: "", help: "select the previous relation"),
        KeyBinding(keys: [.char("J")], action: .moveRelation(1), context: .command, bar: "order", help: "move the relation later in the round-robin"),
        KeyBinding(keys: [.char("K")], action: .moveRelation(-1), context: .command, bar: "", help: "move the relation earlier in the round-robin"),
        KeyBinding(keys: [.char("d")], action: .toggleRelation, context: .command, bar: "on/off", help: "enable / disable the relation"),
        KeyBinding(keys: [.char(",")], action: .scrub(-1), context: .command, bar: "step", help: "show the previous step"),
        KeyBinding(keys: [.char(".")], action: .scrub(1), context: .command, bar: "", help: "show the next step"),
        KeyBinding(keys: [.char("<")], action: .scrubToStart, context: .command, bar: "", help: "show the first step"),
        KeyBinding(keys: [.char(">")], action: .scrubToLive, context: .command, bar: "", help: "follow the newest step"),
        KeyBinding(keys: [.char("t")], action: .switchToken, context: .command, bar: "token", help: "attention: subject ↔ object"),
        KeyBinding(keys: [.char("l")], action: .cycleLayer(1), context: .command, bar: "layer", help: "attention: next layer (all layers → each layer → all)"),
        KeyBinding(keys: [.char("L")], action: .cycleLayer(-1), context: .command, bar: "", help: "attention: previous layer"),
        KeyBinding(keys: [.char("h")], action: .cycleHead(1), context: .command, bar: "", help: "attention: next head of the layer (all heads → each head → all)"),
        KeyBinding(keys: [.char("H")], action: .cycleHead(-1), context: .command, bar: "", help: "attention: previous head"),
        KeyBinding(keys: [.char("c")], action: .cycleColormap, context: .command, bar: "", help: "heatmap colours: magma, inferno, gray"),
        KeyBinding(keys: [.char("v")], action: .toggleZoom, context: .command, bar: "", help: "images only (zoom) / all panes"),
        KeyBinding(keys: [.char("["), .char("]")], action: .selectField(1), context: .command, bar: "", help: "select the next setting ([ previous)"),
        KeyBinding(keys: [.char("-")], action: .adjustField(-1), context: .command, bar: "", help: "decrease the selected setting"),
        KeyBinding(keys: [.char("+"), .char("=")], action: .adjustField(1), context: .command, bar: "set±", help: "increase the selected setting"),
        KeyBinding(keys: [.char(":")], action: .editField, context: .command, bar: "", help: "type a value for the selected setting"),
        KeyBinding(keys: [.char("g")], action: .adjustGuidance(-1), context: .command, bar: "", help: "guidance −0.5"),
        KeyBinding(keys: [.char("G")], action: .adjustGuidance(1), context: .command, bar: "cfg±", help: "guidance +0.5"),
        KeyBinding(keys: [.char("?")], action: .help, context: .command, bar: "help", help: "this help"),
        KeyBinding(keys: [.char("q")], action: .quit, context: .command, bar: "quit", help: "quit (Ctrl-C also quits)"),

        // Help overlay
        KeyBinding(keys: [.up, .char("k")], action: .helpScroll(-1), context: .help, bar: "", help: "scroll up"),
        KeyBinding(keys: [.down, .char("j")], action: .helpScroll(1), context: .help, bar: "", help: "scroll down"),
        KeyBinding(keys: [.pageUp], action: .helpScroll(-10), context: .help, bar: "", help: "page up"),
        KeyBinding(keys: [.pageDown, .char(" ")], action: .helpScroll(10), context: .help, bar: "", help: "page down"),
        KeyBinding(keys: [.escape, .char("?"), .char("q"), .enter], action: .closeHelp, context: .help, bar: "close", help: "close the help"),
    ]

    /// The hidden test binding (see `Action.testTrap`).
    static let trapBinding = KeyBinding(keys: [.char("!")], action: .testTrap, context: .command, bar: "", help: "crash on purpose (test hook)")

    /// The action for a key in a mode and focus, or nil. `[` is the one key whose action depends on
    /// which of a binding's keys was pressed.
    static func action(for key: Key, mode: InputMode, focus: Focus, testTrap: Bool = false) -> Action? {
        switch mode {
        case .help:
            if let b = bindings.first(where: { $0.context == .help && $0.keys.contains(key) }) { return b.action }
            return .closeHelp
        case .prompt:
            if let b = bindings.first(where: { $0.context == .prompt && $0.keys.contains(key) }) { return b.action }
            if case .char(let c) = key { return .insert(String(c)) }
            return nil
        case .field:
            if let b = bindings.first(where: { $0.context == .field && $0.keys.contains(key) }) { return b.action }
            if case .char(let c) = key { return .insert(String(c)) }
            return nil
        case .command:
            if key == .char("[") { return .selectField(-1) }
            if testTrap && trapBinding.keys.contains(key) { return .testTrap }
            if let b = bindings.first(where: { $0.context == .focused(focus) && $0.keys.contains(key) }) { return b.action }
            if let b = bindings.first(where: { $0.context == .command && $0.keys.contains(key) }) { return b.action }
            return nil
        }
    }

    /// The key-bar entries for a mode: (keys label, text), in table order. While a run is `paused`
    /// the pause key says what it does then: resume.
    static func bar(mode: InputMode, focus: Focus, ascii: Bool, paused: Bool = false) -> [(String, String)] {
        let contexts: [KeyContext]
        switch mode {
        case .prompt: contexts = [.prompt]
        case .field: contexts = [.field]
        case .help: contexts = [.help]
        case .command: contexts = [.focused(focus), .command]
        }
        var out: [(String, String)] = []
        var seenActions: [Action] = []
        var seenKeys: Set<Key> = []
        for c in contexts {
            for b in bindings where b.context == c {
                // A key the focused pane already took is not advertised again for the global action.
                defer { seenKeys.formUnion(b.keys) }
                guard !b.bar.isEmpty, !seenActions.contains(b.action), let first = b.keys.first, !seenKeys.contains(first) else { continue }
                seenActions.append(b.action)
                out.append((label(b, ascii: ascii), paused && b.action == .pauseResume ? "resume" : b.bar))
            }
        }
        return out
    }

    /// The key-bar label of a binding: its first key, or a pair such as "J/K" for two-way actions.
    static func label(_ b: KeyBinding, ascii: Bool) -> String {
        if b.action == .moveRelation(1) { return "J/K" }
        if b.action == .adjustField(1) && b.context == .command { return "+/-" }
        if b.action == .adjustGuidance(1) { return "g/G" }
        if b.action == .scrub(-1) && b.context == .command { return ",/." }
        if b.action == .cycleLayer(1) { return "l/h" }
        return b.keys.first?.label(ascii: ascii) ?? ""
    }

    /// The help overlay's lines: per context, "keys  what it does".
    static func helpLines(ascii: Bool) -> [(keys: String, text: String, isHeading: Bool)] {
        var out: [(String, String, Bool)] = []
        let order: [KeyContext] = [.command, .focused(.relations), .focused(.attention), .focused(.schedule), .prompt, .field, .help]
        for c in order {
            let rows = bindings.filter { $0.context == c }
            guard !rows.isEmpty else { continue }
            if !out.isEmpty { out.append(("", "", false)) }
            out.append(("", c.title, true))
            for b in rows {
                out.append((b.keys.map { $0.label(ascii: ascii) }.joined(separator: " "), b.help, false))
            }
        }
        return out
    }
}
