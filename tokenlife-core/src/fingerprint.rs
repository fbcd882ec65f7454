//! [`Fingerprint`]: the keyed fingerprint that stands for a token in logs, audit events
//! and metrics. A leaf module: it depends on nothing of the domain.

use std::fmt;

/// A keyed fingerprint of a token: safe to log, store and compare, useless to replay.
///
/// It is the first 16 bytes of BLAKE3 keyed with the validator's fingerprint key, so
/// nodes that share the key produce the same fingerprint for the same token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 16]);

/// Longest prefix of a token that goes into its fingerprint (with the length after it):
/// an oversize token is not hashed in full.
const FINGERPRINT_MAX: usize = 16 * 1024;

impl Fingerprint {
    /// The fingerprint of a token string. An ECDSA JWS (ES256/ES384) is fingerprinted in
    /// its low-S form: `(r, s)` and `(r, n − s)` are both valid signatures of one token, so
    /// both strings get one fingerprint.
    pub(crate) fn compute(key: &[u8; 32], token: &str) -> Self {
        let canonical = crate::ecdsa::low_s_form(token);
        let token = canonical.as_deref().unwrap_or(token);
        let mut hasher = blake3::Hasher::new_keyed(key);
        if token.len() > FINGERPRINT_MAX {
            hasher.update(&token.as_bytes()[..FINGERPRINT_MAX]);
            hasher.update(&(token.len() as u64).to_le_bytes());
        } else {
            hasher.update(token.as_bytes());
        }
        let mut out = [0; 16];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        Self(out)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_keyed() {
        let a = Fingerprint::compute(&[1; 32], "tok");
        assert_eq!(a, Fingerprint::compute(&[1; 32], "tok"));
        assert_ne!(a, Fingerprint::compute(&[2; 32], "tok"));
        assert_eq!(a.to_string().len(), 32);
        assert!(!a.to_string().contains("tok"));
    }
}
