//! Runs the regiozorg services as separate processes against a local stack.
