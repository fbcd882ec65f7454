//! [`RegisteredClaims`]: the registered claims of a verified token, typed.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// The registered claims of a verified token (RFC 7519), plus `scope` and the refresh
/// family `fam`. Other claims are read with [`Verified::deserialize_claims`](crate::Verified::deserialize_claims).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audiences (a single string in the token becomes one entry).
    #[serde(
        default,
        deserialize_with = "audience",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<u64>,
    /// Not before, Unix seconds.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<u64>,
    /// Issued at, Unix seconds.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<u64>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Space-separated scopes (RFC 8693 `scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Refresh-token family this token belongs to.
    #[serde(default, rename = "fam", skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

impl RegisteredClaims {
    /// Whether the space-separated `scope` claim contains `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == scope))
    }
}

fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom("negative NumericDate"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Some(v as u64))
            } else {
                Err(E::custom("bad NumericDate"))
            }
        }
    }
    d.deserialize_any(V)
}

fn audience<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates_accept_integers_and_floats_only() {
        let c: RegisteredClaims = serde_json::from_str(r#"{"exp": 10, "nbf": 5.7}"#).unwrap();
        assert_eq!((c.exp, c.nbf), (Some(10), Some(5)));
        assert!(serde_json::from_str::<RegisteredClaims>(r#"{"exp": "10"}"#).is_err());
        assert!(serde_json::from_str::<RegisteredClaims>(r#"{"exp": -1}"#).is_err());
    }

    #[test]
    fn audience_is_string_or_array() {
        let c: RegisteredClaims = serde_json::from_str(r#"{"aud": "a"}"#).unwrap();
        assert_eq!(c.aud, ["a"]);
        let c: RegisteredClaims = serde_json::from_str(r#"{"aud": ["a", "b"]}"#).unwrap();
        assert_eq!(c.aud, ["a", "b"]);
        assert!(serde_json::from_str::<RegisteredClaims>(r#"{"aud": 3}"#).is_err());
        assert!(serde_json::from_str::<RegisteredClaims>(r#"{"iss": 3}"#).is_err());
    }

    #[test]
    fn scopes() {
        let c = RegisteredClaims {
            scope: Some("orders:read orders:write".into()),
            ..RegisteredClaims::default()
        };
        assert!(c.has_scope("orders:write"));
        assert!(!c.has_scope("orders"));
    }
}
