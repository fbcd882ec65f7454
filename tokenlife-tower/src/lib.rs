//! tokenlife for tower and axum.

pub use tokenlife_core as core;
