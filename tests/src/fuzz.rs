//! Fuzz target bodies (filled in below).
