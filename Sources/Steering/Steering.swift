// Steering layer (see the package header for what it owns).
