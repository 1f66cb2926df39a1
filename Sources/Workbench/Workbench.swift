// Workbench: the `l2s` terminal UI (docs/ARCHITECTURE.md has where each piece lives).
//
// Owns: the pure core (view state, key map and reducer, layout, widgets that render into a `CellGrid`),
// the engines that produce runs (`LiveEngine` over `SteeredGenerator`, `ScriptedEngine` for tests and
// `--demo`), and the one ncurses backend (`CursesBackend.swift`, the only file that calls ncurses) with
// the event loop that ties them together (`App`).
//
// Must not: print while the screen is up (logs go to a file), call ncurses from any thread but the UI
// thread, or import the CLI. Threads: the UI thread owns ncurses end to end; an engine runs on its own
// thread and posts `EngineEvent`s to a mailbox; the UI answers with a versioned `GenerationSettings` value.
//
// Files: Geometry, TextWidth, CellGrid, Draw (cells, measuring, boxes, bars, sparklines); Theme
// (colour tiers, glyphs, palettes); Layout; Keymap (the one key table); LineEditor; ViewState +
// Reducer (pure state machine); Widgets + Screen (state → cells); Engine (protocol, GenerationSettings,
// RunControl, Mailbox, Waker); ImageFitter; WorkerThread; ScriptedEngine; LiveEngine; Sidecar (save);
// CursesBackend (the only ncurses caller); App (event loop, signals, log). Entry point for the CLI:
// `App(engine:options:).run()`.
