//! tokenlife for actix-web: middleware, extractor and admin scope (not built yet; see
//! DESIGN.md). The crate exists so the workspace has its final shape.

pub use tokenlife_core as core;
