//! Runnable examples for tokenlife: see `examples/` (`cargo run -p examples --example NAME`).
