//! Hashing helpers: per-process random seeds and a pass-through hasher for keys that
//! are already seeded 128-bit hashes.

use std::hash::{BuildHasher, Hasher};

/// A random `u64` from the OS random source (hash seeds).
///
/// # Panics
/// If the OS random source fails: a process that cannot get randomness must not run
/// with predictable seeds.
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("OS random source");
    u64::from_le_bytes(b)
}

/// 32 bytes from the OS random source (fingerprint keys, API-key peppers).
///
/// # Panics
/// If the OS random source fails (see [`random_u64`]).
pub(crate) fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("OS random source");
    key
}

/// Builds [`Folding`] hashers: for `u128` keys that are already seeded hashes, so a second
/// full hash would be wasted work.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Prehashed;

/// Folds the bytes written into 64 bits.
#[derive(Default)]
pub(crate) struct Folding(u64);

impl BuildHasher for Prehashed {
    type Hasher = Folding;
    fn build_hasher(&self) -> Folding {
        Folding(0)
    }
}

impl Hasher for Folding {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        #[allow(clippy::cast_possible_truncation)]
        {
            self.0 ^= (v as u64) ^ ((v >> 64) as u64).rotate_left(32);
        }
    }
}
