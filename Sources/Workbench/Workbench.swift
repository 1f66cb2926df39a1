// Workbench: the `l2s` terminal UI (tui-notes §7–8).
//
// Owns: the pure core (view state, key map and reducer, layout, widgets that render into a `CellGrid`),
// the engines that produce runs (`LiveEngine` over `SteeredGenerator`, `ScriptedEngine` for tests and
// `--demo`), and the one ncurses backend (`CursesBackend.swift`, the only file that calls ncurses) with
// the event loop that ties them together (`App`).
//
// Must not: print while the screen is up (logs go to a file), call ncurses from any thread but the UI
// thread, or import the CLI. Threads: the UI thread owns ncurses end to end; an engine runs on its own
// thread and posts `EngineEvent`s to a mailbox; the UI answers with a versioned `LiveSettings` value.
//
// Files: Geometry/TextWidth/CellGrid (cells and measuring), Theme (colour tiers, glyphs, palettes),
// Layout, Keymap, ViewState + Reducer, Widgets, Screen (whole-screen render), Engine (protocol, run
// control, mailbox), ImageFitter, ScriptedEngine, LiveEngine, Sidecar (save), CursesBackend, App.
