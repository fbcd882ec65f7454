//! The JOSE header and the strict JSON rules for header and claims (UTF-8 objects,
//! bounded nesting), and signature verification with a key's own algorithm.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};

use crate::error::{ValidationError, ValidationErrorKind as Kind};
use crate::keys::Key;

/// The JOSE header fields tokenlife reads. `jku`, `x5u`, `jwk` and `x5c` are ignored:
/// keys only ever come from the keyset.
#[derive(Deserialize)]
pub(super) struct Header<'a> {
    #[serde(borrow)]
    pub(super) alg: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "string_member")]
    pub(super) kid: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "string_member")]
    pub(super) typ: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) crit: bool,
}

/// The bytes as a JSON text that is a UTF-8 object (RFC 7515 §4, RFC 7519 §7.2): serde's
/// derived structs would also take an array, and skip invalid UTF-8 inside ignored members.
///
/// Nesting deeper than [`MAX_JSON_DEPTH`] is refused too: serde skips deep values inside
/// ignored members, but `Verified::all_claims` could not parse them later.
pub(super) fn json_object(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    (text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
        && depth_within(text.as_bytes(), MAX_JSON_DEPTH))
    .then_some(text)
}

/// Deepest JSON nesting accepted in a header or a claims set.
const MAX_JSON_DEPTH: usize = 32;

/// Whether the nesting of arrays and objects in a JSON text stays within `limit`
/// (brackets inside strings do not count).
fn depth_within(text: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Whether a header `typ` names one of the accepted media types (RFC 7515 §4.1.9: compare
/// case-insensitively, `application/` may be left out).
pub(super) fn typ_matches(typ: &str, accepted: &[Box<str>]) -> bool {
    let short = |t: &str| {
        let t = t.trim();
        t.get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(t, |_| &t[12..])
            .to_owned()
    };
    let typ = short(typ);
    accepted.iter().any(|a| short(a).eq_ignore_ascii_case(&typ))
}

/// A header member that, when present, must be a string (`null` is not absent).
fn string_member<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    <Cow<'a, str>>::deserialize(d).map(Some)
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// Verifies `sig` over `message` with the key's own algorithm.
pub(super) fn verify_signature(sig: &str, message: &str, key: &Key) -> Result<(), ValidationError> {
    let verifier = key.verifier();
    if verifier.is_ready() {
        // The largest signature is RSA-8192's 1024 bytes; anything longer cannot verify.
        let mut buf = [0u8; 1024];
        let n = match URL_SAFE_NO_PAD.decode_slice(sig, &mut buf) {
            Ok(n) => n,
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                return Err(Kind::BadSignature.into());
            }
            Err(base64::DecodeSliceError::DecodeError(e)) => {
                return Err(ValidationError::with_source(Kind::Malformed, e));
            }
        };
        return match verifier.verify(message.as_bytes(), &buf[..n]) {
            Some(true) => Ok(()),
            _ => Err(Kind::BadSignature.into()),
        };
    }
    match jsonwebtoken::crypto::verify(sig, message.as_bytes(), key.decoding_key(), key.algorithm())
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Kind::BadSignature.into()),
        Err(e) => {
            let kind = match e.kind() {
                jsonwebtoken::errors::ErrorKind::Base64(_) => Kind::Malformed,
                _ => Kind::BadSignature,
            };
            Err(ValidationError::with_source(kind, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_is_bounded_and_strings_do_not_count() {
        assert!(depth_within(br#"{"a":[[1]]}"#, 3));
        assert!(!depth_within(br#"{"a":[[1]]}"#, 2));
        assert!(depth_within(br#"{"a":"[[[[[[\"[["}"#, 1));
        assert!(json_object(br#"{"a":1}"#).is_some());
        assert!(json_object(br#"["a"]"#).is_none());
        assert!(json_object(b"{\"a\":\"\xff\"}").is_none());
    }
}
