// Formats: parsing of the files the program is handed — safetensors headers and text files (one line
// splitter for LF, CRLF and CR with UTF-8 positions).
//
// Built with Swift's checks on (no -Ounchecked): this is where hostile bytes arrive, so an index or
// arithmetic mistake must trap rather than read out of bounds. Nothing here is on a hot path (a
// header is parsed once per file). Re-exported by Tensors, so every layer above sees these types.
// Must not import: anything of this package.
