// ncursesw for Swift. SwiftPM drops pkg-config's -D flags, so wide-character support must be
// switched on here, before the header (without NCURSES_WIDECHAR and _XOPEN_SOURCE_EXTENDED, cchar_t,
// setcchar and get_wch are not declared).
#ifndef L2S_NCURSES_SHIM_H
#define L2S_NCURSES_SHIM_H
#define NCURSES_WIDECHAR 1
#define _XOPEN_SOURCE_EXTENDED 1
#include <locale.h>
#include <langinfo.h>
#include <wchar.h>
#include <ncursesw/curses.h>

// Accessors for macros and globals that Swift cannot import (or that Swift 6 rejects as shared state).
static inline WINDOW *tui_stdscr(void) { return stdscr; }
static inline int tui_lines(void) { return LINES; }
static inline int tui_cols(void) { return COLS; }
static inline int tui_colors(void) { return COLORS; }
static inline int tui_color_pairs(void) { return COLOR_PAIRS; }
static inline attr_t tui_a_bold(void) { return A_BOLD; }
static inline attr_t tui_a_reverse(void) { return A_REVERSE; }
static inline attr_t tui_a_underline(void) { return A_UNDERLINE; }
static inline attr_t tui_a_dim(void) { return A_DIM; }
static inline int tui_key_f(int n) { return KEY_F(n); }
static inline int tui_wcwidth(wchar_t c) { return wcwidth(c); }
static inline const char *tui_codeset(void) { return nl_langinfo(CODESET); }
// Whether the terminal can move the cursor (terminfo `cup`); TERM=dumb cannot.
static inline int tui_can_address_cursor(void) {
    char *s = tigetstr("cup");
    return s != NULL && s != (char *)-1;
}
#endif
