//! The emulator's tests: one binary, one module per area.
