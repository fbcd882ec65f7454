//! [`Keyset`]: an immutable set of keys, one of which may sign; JWKS in and out.

use std::sync::Arc;

use jsonwebtoken::jwk::{Jwk, JwkSet};

use super::key::Key;
use crate::error::{KeyError, KeyErrorKind};

/// An immutable set of keys, one of which may be the signing key.
///
/// Keys are held in `Arc`s: a key shared by two keysets is the same key, and tokens it
/// verified stay verified across a swap between those keysets.
#[derive(Clone, Debug, Default)]
pub struct Keyset {
    pub(super) keys: Vec<Arc<Key>>,
    pub(super) signing_kid: Option<Box<str>>,
    label: Option<String>,
    warnings: Arc<[KeyError]>,
}

impl Keyset {
    /// Largest JWKS document [`from_jwks_json`](Self::from_jwks_json) reads (256 KiB).
    pub const MAX_JWKS_BYTES: usize = 256 * 1024;
    /// Most keys [`from_jwks_json`](Self::from_jwks_json) reads from one document.
    pub const MAX_JWKS_KEYS: usize = 100;

    /// A keyset of the given keys. The signing key is the first key that can sign, if any
    /// (change it with [`with_signing_kid`](Self::with_signing_kid)).
    ///
    /// # Errors
    /// [`KeyErrorKind::Empty`] for no keys, [`KeyErrorKind::DuplicateKid`] if two keys
    /// share a kid.
    pub fn new<K: Into<Arc<Key>>>(keys: impl IntoIterator<Item = K>) -> Result<Self, KeyError> {
        let keys: Vec<Arc<Key>> = keys.into_iter().map(Into::into).collect();
        if keys.is_empty() {
            return Err(KeyError::new(KeyErrorKind::Empty));
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(KeyError::new(KeyErrorKind::DuplicateKid).kid(Some(&k.kid)));
            }
        }
        let signing_kid = keys.iter().find(|k| k.can_sign()).map(|k| k.kid.clone());
        Ok(Self {
            keys,
            signing_kid,
            label: None,
            warnings: Arc::new([]),
        })
    }

    /// Reads an RFC 7517 JWK Set. Entries that cannot be used (unknown `kty`, `crv` or
    /// `alg`, `use` other than `sig`, bad base64, no `kid`, a duplicate `kid`, private
    /// members on an asymmetric key) are skipped and listed in
    /// [`warnings`](Self::warnings); the load fails only if no entry is usable.
    ///
    /// # Errors
    /// [`KeyErrorKind::TooLarge`] past [`Self::MAX_JWKS_BYTES`] or
    /// [`Self::MAX_JWKS_KEYS`];
    /// [`KeyErrorKind::InvalidJson`] if the text is not a JWKS document;
    /// [`KeyErrorKind::Empty`] if no entry is usable (the source is the first skip reason).
    ///
    /// ```
    /// use tokenlife_core::Keyset;
    /// use tokenlife_core::error::KeyErrorKind;
    ///
    /// let jwks = r#"{"keys":[
    ///   {"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"},
    ///   {"kty":"XYZ","kid":"k2"}
    /// ]}"#;
    /// let keyset = Keyset::from_jwks_json(jwks)?;
    /// assert_eq!(keyset.keys().count(), 1);
    /// assert_eq!(keyset.warnings()[0].kind(), KeyErrorKind::Unsupported);
    /// assert_eq!(keyset.warnings()[0].key_id(), Some("k2"));
    /// # Ok::<(), tokenlife_core::error::KeyError>(())
    /// ```
    pub fn from_jwks_json(json: &str) -> Result<Self, KeyError> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Map<String, serde_json::Value>>,
        }
        if json.len() > Self::MAX_JWKS_BYTES {
            return Err(KeyError::new(KeyErrorKind::TooLarge));
        }
        let raw: RawSet = serde_json::from_str(json)
            .map_err(|e| KeyError::new(KeyErrorKind::InvalidJson).source(e))?;
        if raw.keys.len() > Self::MAX_JWKS_KEYS {
            return Err(KeyError::new(KeyErrorKind::TooLarge));
        }
        let mut keys: Vec<Arc<Key>> = Vec::with_capacity(raw.keys.len());
        let mut warnings = Vec::new();
        for entry in raw.keys {
            let kid = entry.get("kid").and_then(|v| v.as_str()).map(str::to_owned);
            let has_private = ["d", "p", "q", "dp", "dq", "qi", "oth"]
                .iter()
                .any(|m| entry.contains_key(*m));
            let loaded = serde_json::from_value::<Jwk>(serde_json::Value::Object(entry))
                .map_err(|e| {
                    // A JWK that serde cannot read is an unknown kty/crv/alg or a wrong shape.
                    KeyError::new(KeyErrorKind::Unsupported)
                        .kid(kid.as_deref())
                        .source(e)
                })
                .and_then(|jwk| Key::from_jwk_checked(&jwk, has_private));
            match loaded {
                Ok(key) if keys.iter().any(|k| k.kid == key.kid) => {
                    warnings.push(KeyError::new(KeyErrorKind::DuplicateKid).kid(Some(&key.kid)));
                }
                Ok(key) => keys.push(Arc::new(key)),
                Err(e) => warnings.push(e),
            }
        }
        if keys.is_empty() {
            let mut err = KeyError::new(KeyErrorKind::Empty);
            if let Some(first) = warnings.into_iter().next() {
                err = err.source(first);
            }
            return Err(err);
        }
        let signing_kid = keys.iter().find(|k| k.can_sign()).map(|k| k.kid.clone());
        Ok(Self {
            keys,
            signing_kid,
            label: None,
            warnings: warnings.into(),
        })
    }

    /// A JWKS from a party that must never gain signing power here (an identity
    /// provider's discovery, another node of the fleet): like
    /// [`from_jwks_json`](Self::from_jwks_json), but every key that could sign — a
    /// symmetric `oct` key (its secret is the JWKS's `k`) or one with private material —
    /// is skipped and reported in [`warnings`](Self::warnings)
    /// ([`KeyErrorKind::Symmetric`], [`KeyErrorKind::PrivateMaterial`]). The keyset left
    /// verifies only.
    ///
    /// ```
    /// use tokenlife_core::Keyset;
    /// use tokenlife_core::error::KeyErrorKind;
    ///
    /// let jwks = r#"{"keys":[{"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#;
    /// assert_eq!(Keyset::from_jwks_json(jwks)?.keys().len(), 1);
    /// let err = Keyset::from_public_jwks_json(jwks).unwrap_err();
    /// assert_eq!(err.kind(), KeyErrorKind::Empty);
    /// # Ok::<(), tokenlife_core::error::KeyError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`from_jwks_json`](Self::from_jwks_json); [`KeyErrorKind::Empty`] when no
    /// public key is left.
    pub fn from_public_jwks_json(json: &str) -> Result<Self, KeyError> {
        let all = Self::from_jwks_json(json)?;
        let mut warnings: Vec<KeyError> = Vec::new();
        let mut keys = Vec::with_capacity(all.keys.len());
        for key in all.keys {
            if key.is_symmetric() {
                warnings.push(KeyError::new(KeyErrorKind::Symmetric).kid(Some(&key.kid)));
            } else if key.can_sign() {
                warnings.push(KeyError::new(KeyErrorKind::PrivateMaterial).kid(Some(&key.kid)));
            } else {
                keys.push(key);
            }
        }
        for w in all.warnings.iter() {
            warnings.push(KeyError::new(w.kind()).kid(w.key_id()));
        }
        if keys.is_empty() {
            let mut err = KeyError::new(KeyErrorKind::Empty);
            if let Some(first) = warnings.into_iter().next() {
                err = err.source(first);
            }
            return Err(err);
        }
        Ok(Self {
            keys,
            signing_kid: None,
            label: all.label,
            warnings: warnings.into(),
        })
    }

    /// Sets the label shown in history and metrics (a deploy id, say).
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Chooses the signing key.
    ///
    /// # Errors
    /// [`KeyErrorKind::NoSigningKey`] if no key has that kid or it cannot sign.
    pub fn with_signing_kid(mut self, kid: &str) -> Result<Self, KeyError> {
        match self.get(kid) {
            Some(k) if k.can_sign() => {
                self.signing_kid = Some(kid.into());
                Ok(self)
            }
            _ => Err(KeyError::new(KeyErrorKind::NoSigningKey).kid(Some(kid))),
        }
    }

    /// The key with this kid.
    pub fn get(&self, kid: &str) -> Option<&Arc<Key>> {
        self.keys.iter().find(|k| &*k.kid == kid)
    }

    /// All keys.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Arc<Key>> {
        self.keys.iter()
    }

    /// The signing key, if the keyset has one.
    pub fn signing_key(&self) -> Option<&Arc<Key>> {
        self.signing_kid.as_deref().and_then(|kid| self.get(kid))
    }

    /// The label, if set.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The JWKS entries skipped by [`from_jwks_json`](Self::from_jwks_json), with why.
    pub fn warnings(&self) -> &[KeyError] {
        &self.warnings
    }

    /// The public keys as a JWK Set (HMAC keys and all private material left out).
    pub fn to_public_jwk_set(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .filter_map(|k| k.public_jwk.clone())
                .collect(),
        }
    }

    /// The public keys as JWKS JSON, ready to serve at `/.well-known/jwks.json`.
    ///
    /// ```
    /// use tokenlife_core::{Key, Keyset};
    /// use jsonwebtoken::Algorithm;
    ///
    /// let keyset = Keyset::new([Key::hmac("secret", Algorithm::HS256, &[7; 32])?])?;
    /// // A symmetric key is never published.
    /// assert_eq!(keyset.to_public_jwks(), r#"{"keys":[]}"#);
    /// # Ok::<(), tokenlife_core::error::KeyError>(())
    /// ```
    pub fn to_public_jwks(&self) -> String {
        serde_json::to_string(&self.to_public_jwk_set()).unwrap_or_else(|_| r#"{"keys":[]}"#.into())
    }
}
