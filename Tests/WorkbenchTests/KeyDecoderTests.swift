// Escape sequences parsed as a unit: CSI/SS3 keys whatever the terminfo entry says, Alt chords,
// unknown sequences dropped whole, a lone ESC only after the escape delay, and none of it ever
// quitting from the prompt editor.

import Testing
@testable import Workbench

@Suite struct KeyDecoderTests {
    /// Decodes one burst (and flushes what waits, as the App does once the delay has passed).
    func keys(_ bytes: String, flush: Bool = true) -> [Key] {
        var d = KeyDecoder()
        var out = d.feed(bytes.unicodeScalars.map { .code($0.value) }, now: 1)
        if flush { out += d.flush(now: 1 + KeyDecoder.escapeDelay) }
        return out.compactMap { if case .key(let k) = $0 { return k } else { return nil } }
    }

    @Test func csiAndSS3KeysIncludingTheTildeForms() {
        #expect(keys("\u{1B}[A\u{1B}[B\u{1B}[C\u{1B}[D") == [.up, .down, .right, .left])
        #expect(keys("\u{1B}OA\u{1B}OB\u{1B}OC\u{1B}OD") == [.up, .down, .right, .left])
        #expect(keys("\u{1B}[1~\u{1B}[4~\u{1B}[7~\u{1B}[8~") == [.home, .end, .home, .end])
        #expect(keys("\u{1B}[H\u{1B}[F\u{1B}OH\u{1B}OF") == [.home, .end, .home, .end])
        #expect(keys("\u{1B}[3~\u{1B}[5~\u{1B}[6~\u{1B}[Z") == [.delete, .pageUp, .pageDown, .backTab])
        #expect(keys("\u{1B}OP\u{1B}[15~\u{1B}[24~\u{1B}[1;2P") == [.function(1), .function(5), .function(12), .function(1)])
        // Modified cursor keys (Ctrl-→ is ESC [ 1 ; 5 C) are the cursor key.
        #expect(keys("\u{1B}[1;5C\u{1B}[1;3D") == [.right, .left])
        #expect(keys("\u{1B}OM") == [.enter])
    }

    @Test func altIsAnEscPrefixedKey() {
        #expect(keys("\u{1B}q") == [.alt("q")])
        #expect(keys("\u{1B}b\u{1B}B") == [.alt("b"), .alt("B")])
        #expect(keys("\u{1B}猫") == [.alt("猫")])
        // Alt + a control key is dropped, not Esc + ^H.
        #expect(keys("\u{1B}\u{7F}x") == [.char("x")])
    }

    @Test func unknownSequencesAreDroppedWhole() {
        // Insert, bracketed-paste markers, a mouse report, a device-attributes reply, an unknown final.
        #expect(keys("a\u{1B}[2~b") == [.char("a"), .char("b")])
        #expect(keys("\u{1B}[200~hi\u{1B}[201~") == [.char("h"), .char("i")])
        #expect(keys("\u{1B}[<0;12;5M\u{1B}[?62;22c\u{1B}[99q") == [])
        #expect(keys("\u{1B}[1;2$x") == [], "an intermediate byte: unknown")
        #expect(keys("\u{1B}OZ") == [])
        // Broken off by a control character: what was read is dropped, the character stays.
        #expect(keys("\u{1B}[12\rz") == [.enter, .char("z")])
        // The Linux console's F1.
        #expect(keys("\u{1B}[[A") == [.function(1)])
        // Terminal replies that arrive late (kitty's graphics answer, an OSC colour reply): no typing.
        #expect(keys("\u{1B}_Gi=31;OK\u{1B}\\x") == [.char("x")])
        #expect(keys("\u{1B}]11;rgb:0000/0000/0000\u{07}y") == [.char("y")])
        #expect(keys("\u{1B}P1$r0m\u{1B}\\") == [])
        // A reply split across reads is held, then dropped whole.
        var d = KeyDecoder()
        #expect(d.feed("\u{1B}_Gi=31".unicodeScalars.map { .code($0.value) }, now: 1).isEmpty && d.hasPending)
        #expect(d.feed(";OK\u{1B}\\z".unicodeScalars.map { .code($0.value) }, now: 1.01) == [.key(.char("z"))])
    }

    @Test func aLoneEscWaitsForTheRestOfASplitSequence() {
        var d = KeyDecoder()
        #expect(d.feed([.code(27)], now: 10).isEmpty)
        #expect(d.hasPending && d.deadline == 10 + KeyDecoder.escapeDelay)
        #expect(d.flush(now: 10.01).isEmpty, "too early")
        // The rest arrives in the next read: one key, not Esc + '[' + '1' + '~'.
        #expect(d.feed("[1~".unicodeScalars.map { .code($0.value) }, now: 10.015) == [.key(.home)])
        #expect(!d.hasPending)
        // A lone ESC with nothing after it is the Esc key once the delay has passed.
        _ = d.feed([.code(27)], now: 20)
        #expect(d.flush(now: 20 + KeyDecoder.escapeDelay) == [.key(.escape)])
        // An unfinished CSI with nothing after it is dropped.
        _ = d.feed([.code(27), .code(0x5B), .code(0x31)], now: 30)
        #expect(d.flush(now: 31) == [])
        // A stale ESC is resolved before a much later burst is read.
        _ = d.feed([.code(27)], now: 40)
        #expect(d.feed([.code(0x71)], now: 41) == [.key(.escape), .key(.char("q"))])
        // Two ESCs: the first is Esc on its own.
        #expect(keys("\u{1B}\u{1B}[A") == [.escape, .up])
        // A resize that ncurses reports in the middle ends the sequence.
        var r = KeyDecoder()
        #expect(r.feed([.code(27), .event(.resize), .code(0x61)], now: 1) == [.key(.escape), .resize, .key(.char("a"))])
    }

    @Test func plainBytesAreTheUsualKeys() {
        #expect(keys("a\r\t\u{7F}\u{15}") == [.char("a"), .enter, .tab, .backspace, .ctrl("u")])
    }

    /// The defects from the newcomer test, through the decoder and the key table into the reducer.
    @Test func noSequenceQuitsOrLeavesThePromptEditor() {
        var s = Fixture.state()
        _ = s.apply(.insert("a red circle"))
        var d = KeyDecoder()
        var quit = false
        for burst in ["\u{1B}q", "\u{1B}b", "\u{1B}[1~", "\u{1B}[4~", "\u{1B}[7~", "\u{1B}[8~", "\u{1B}[99~", "\u{1B}[1;5H", "\u{1B}x"] {
            let events = d.feed(burst.unicodeScalars.map { .code($0.value) }, now: 1) + d.flush(now: 2)
            for case .key(let k) in events {
                if s.handle(key: k).contains(.quit) { quit = true }
            }
            #expect(s.mode == .prompt, "\(burst.debugDescription) left the prompt editor")
        }
        #expect(!quit, "a key sequence quit from the editor")
        #expect(s.prompt.text == "a red circle", "no stray characters were typed")
        #expect(s.field == .guidance, "the Schedule selection did not move")
        // Home and End did move the cursor.
        _ = s.handle(key: keys("\u{1B}[1~")[0])
        #expect(s.prompt.cursor == 0)
        _ = s.handle(key: keys("\u{1B}[4~")[0])
        #expect(s.prompt.cursor == s.prompt.characters.count)
        // Alt chords do nothing in command mode either.
        _ = s.apply(.leaveEditing)
        #expect(s.handle(key: .alt("q")).isEmpty && !s.quitRequested)
    }
}
