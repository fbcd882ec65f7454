//! ECDSA signature malleability: `(r, s)` and `(r, n − s)` both verify. Tokens are
//! accepted in either form (identity providers sign with either), and fingerprinted in
//! the low-S form so that one token has one fingerprint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Order of the P-256 group.
const N_P256: [u8; 32] = hex32(b"FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
/// Order of the P-384 group.
const N_P384: [u8; 48] = hex48(
    b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
);

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("hex digit"),
    }
}

const fn hex32(h: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(h[2 * i]) << 4 | nibble(h[2 * i + 1]);
        i += 1;
    }
    out
}

const fn hex48(h: &[u8; 96]) -> [u8; 48] {
    let mut out = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        out[i] = nibble(h[2 * i]) << 4 | nibble(h[2 * i + 1]);
        i += 1;
    }
    out
}

/// `a - b` over big-endian numbers of one length (`a >= b`).
fn sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap_or(0);
    }
    out
}

/// Whether `s > n / 2`, i.e. `n - s < s`, for `0 < s < n`.
fn is_high(s: &[u8], n: &[u8]) -> bool {
    s < n && sub(n, s).as_slice() < s
}

/// The token with its ECDSA `s` replaced by `n − s` when it is an ES256/ES384 JWS whose
/// `s` is high; `None` for every other token (nothing to change).
pub(crate) fn low_s_form(token: &str) -> Option<String> {
    let mut parts = token.splitn(3, '.');
    let (h64, p64, sig64) = (parts.next()?, parts.next()?, parts.next()?);
    // Only a 64- or 96-byte signature (86 or 128 base64url characters) can be ES256 or
    // ES384: check that before decoding and parsing the header.
    if !matches!(sig64.len(), 86 | 128) || h64.len() > 4096 {
        return None;
    }
    let header = URL_SAFE_NO_PAD.decode(h64).ok()?;
    let alg = serde_json::from_slice::<serde_json::Value>(&header)
        .ok()?
        .get("alg")?
        .as_str()?
        .to_owned();
    let n: &[u8] = match alg.as_str() {
        "ES256" => &N_P256,
        "ES384" => &N_P384,
        _ => return None,
    };
    let sig = URL_SAFE_NO_PAD.decode(sig64).ok()?;
    if sig.len() != 2 * n.len() {
        return None;
    }
    let (r, s) = sig.split_at(n.len());
    if !is_high(s, n) {
        return None;
    }
    let mut low = r.to_vec();
    low.extend(sub(n, s));
    Some(format!("{h64}.{p64}.{}", URL_SAFE_NO_PAD.encode(low)))
}

/// The same ES256/ES384 token with `s` replaced by `n − s` (its malleable twin), whatever
/// its form; `None` for any other token.
#[cfg(any(test, feature = "test-util"))]
pub(crate) fn twin(token: &str) -> Option<String> {
    let (msg, sig64) = token.rsplit_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig64).ok()?;
    let n: &[u8] = match sig.len() {
        64 => &N_P256,
        96 => &N_P384,
        _ => return None,
    };
    let (r, s) = sig.split_at(n.len());
    let mut out = r.to_vec();
    out.extend(sub(n, s));
    Some(format!("{msg}.{}", URL_SAFE_NO_PAD.encode(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use jsonwebtoken::Algorithm;

    #[test]
    fn both_forms_of_an_ecdsa_signature_share_a_low_s_form() {
        for alg in [Algorithm::ES256, Algorithm::ES384] {
            let key = testing::key("k", alg);
            for i in 0..8 {
                let t = testing::sign(&key, &serde_json::json!({"i": i}));
                let f = twin(&t).unwrap();
                assert_ne!(t, f);
                let canon = |x: &str| low_s_form(x).unwrap_or_else(|| x.to_owned());
                assert_eq!(canon(&t), canon(&f), "{alg:?}");
                // Exactly one of the two is high-S.
                assert!(low_s_form(&t).is_some() != low_s_form(&f).is_some());
            }
        }
    }

    #[test]
    fn other_tokens_are_left_alone() {
        let t = testing::sign(&testing::key("k", Algorithm::RS256), &serde_json::json!({}));
        assert_eq!(low_s_form(&t), None);
        assert_eq!(low_s_form("garbage"), None);
        assert_eq!(low_s_form("a.b.c.d"), None);
    }
}
