//! Keys, keysets and the versioned [`KeysetStore`] with atomic rollback.
//!
//! A [`Key`] is one verification key (and optionally its private signing half), with the
//! algorithm fixed by the key, never by a token. A [`Keyset`] is a set of keys, one of
//! which may sign. The [`KeysetStore`] holds the current [`KeysetSnapshot`] in an
//! [`ArcSwap`]: validation loads it without a lock, and every change (publish, stage,
//! promote, rollback) is one atomic swap.
//!
//! # Examples
//!
//! ```
//! use tokenlife_core::{Key, Keyset, KeysetStore};
//! use jsonwebtoken::Algorithm;
//!
//! let blue = Keyset::new([Key::hmac("blue", Algorithm::HS256, &[1; 32])?])?.with_label("blue");
//! let green = Keyset::new([Key::hmac("green", Algorithm::HS256, &[2; 32])?])?.with_label("green");
//!
//! let store = KeysetStore::new(blue);
//! assert_eq!(store.current().version(), 1);
//! let v2 = store.publish(green);
//! assert_eq!(store.current().label(), Some("green"));
//!
//! store.rollback()?;                      // back to version 1
//! assert_eq!(store.current().version(), 1);
//! store.rollback_to(v2)?;                 // or to any version still in the history
//! assert_eq!(store.current().version(), v2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use crate::error::{KeyError, KeyErrorKind, KeysetError};

/// One key: a `kid`, the one algorithm it is used with, the verification material and,
/// optionally, the private signing material.
///
/// The algorithm belongs to the key: a token is only ever verified with the algorithm of
/// the key its `kid` names. Private material is never serialised out and never shown by
/// `Debug`.
pub struct Key {
    kid: Box<str>,
    alg: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    public_jwk: Option<Jwk>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("can_sign", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}

fn min_hmac_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > 256 {
        return Err(KeyError::new(KeyErrorKind::MissingKid));
    }
    Ok(())
}

impl Key {
    /// An HMAC key (HS256/384/512) that both signs and verifies.
    ///
    /// # Errors
    /// [`KeyErrorKind::Unsupported`] if `alg` is not an HMAC algorithm;
    /// [`KeyErrorKind::InvalidMaterial`] if the secret is shorter than the hash output
    /// (RFC 7518 §3.2: 32, 48 or 64 bytes).
    pub fn hmac(kid: impl Into<String>, alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        crate::crypto::ensure_provider();
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(KeyError::new(KeyErrorKind::Unsupported).kid(Some(&kid)));
        }
        if secret.len() < min_hmac_len(alg) {
            return Err(KeyError::new(KeyErrorKind::InvalidMaterial).kid(Some(&kid)));
        }
        Ok(Self {
            kid: kid.into(),
            alg,
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            public_jwk: None,
        })
    }

    /// A signing key from a PKCS#8 (or PKCS#1 for RSA) private key in PEM form; the
    /// public half is derived from it.
    ///
    /// # Errors
    /// [`KeyErrorKind::Unsupported`] for HMAC algorithms (use [`Key::hmac`]);
    /// [`KeyErrorKind::InvalidMaterial`] if the PEM is not a private key of `alg`'s family.
    pub fn from_private_pem(
        kid: impl Into<String>,
        alg: Algorithm,
        pem: &[u8],
    ) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        crate::crypto::ensure_provider();
        let bad = |e: jsonwebtoken::errors::Error| {
            KeyError::new(KeyErrorKind::InvalidMaterial)
                .kid(Some(&kid))
                .source(e)
        };
        let encoding = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                return Err(KeyError::new(KeyErrorKind::Unsupported).kid(Some(&kid)));
            }
        }
        .map_err(bad)?;
        Self::from_encoding(kid, alg, encoding)
    }

    /// A signing key from its private half: the public half is derived.
    fn from_encoding(kid: String, alg: Algorithm, encoding: EncodingKey) -> Result<Self, KeyError> {
        let bad = |e: jsonwebtoken::errors::Error| {
            KeyError::new(KeyErrorKind::InvalidMaterial)
                .kid(Some(&kid))
                .source(e)
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(bad)?;
        check_curve(&jwk, alg).map_err(|k| KeyError::new(k).kid(Some(&kid)))?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(bad)?;
        finish_public_jwk(&mut jwk, &kid, alg);
        Ok(Self {
            kid: kid.into(),
            alg,
            decoding,
            encoding: Some(encoding),
            public_jwk: Some(jwk),
        })
    }

    /// A fresh random signing key (feature `aws-lc-rs`): ES256, ES384, EdDSA, or an
    /// HMAC key of the hash's size. RSA generation is not offered (load a PEM instead).
    ///
    /// # Errors
    /// [`KeyErrorKind::Unsupported`] for RSA/PSS algorithms;
    /// [`KeyErrorKind::InvalidMaterial`] if the random source fails.
    ///
    /// ```
    /// use tokenlife_core::{Algorithm, Key};
    ///
    /// let key = Key::generate("fresh", Algorithm::EdDSA)?;
    /// assert!(key.can_sign() && key.public_jwk().is_some());
    /// # Ok::<(), tokenlife_core::KeyError>(())
    /// ```
    #[cfg(feature = "aws-lc-rs")]
    pub fn generate(kid: impl Into<String>, alg: Algorithm) -> Result<Self, KeyError> {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair,
        };
        let kid = kid.into();
        check_kid(&kid)?;
        crate::crypto::ensure_provider();
        let rng = SystemRandom::new();
        let failed = |_| KeyError::new(KeyErrorKind::InvalidMaterial).kid(Some(&kid));
        let encoding = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_der(
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(failed)?
                    .as_ref(),
            ),
            Algorithm::ES384 => EncodingKey::from_ec_der(
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                    .map_err(failed)?
                    .as_ref(),
            ),
            Algorithm::EdDSA => EncodingKey::from_ed_der(
                Ed25519KeyPair::generate_pkcs8v1(&rng)
                    .map_err(failed)?
                    .as_ref(),
            ),
            a if a.family() == AlgorithmFamily::Hmac => {
                let mut secret = vec![0u8; min_hmac_len(a)];
                getrandom::fill(&mut secret)
                    .map_err(|_| KeyError::new(KeyErrorKind::InvalidMaterial))?;
                return Self::hmac(kid, a, &secret);
            }
            _ => return Err(KeyError::new(KeyErrorKind::Unsupported).kid(Some(&kid))),
        };
        Self::from_encoding(kid, alg, encoding)
    }

    /// A verification-only key from a public key in PEM form (SubjectPublicKeyInfo, or
    /// PKCS#1 for RSA).
    ///
    /// # Errors
    /// [`KeyErrorKind::Unsupported`] for HMAC algorithms; [`KeyErrorKind::InvalidMaterial`]
    /// if the PEM is not a public key of `alg`'s family.
    pub fn from_public_pem(
        kid: impl Into<String>,
        alg: Algorithm,
        pem: &[u8],
    ) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        crate::crypto::ensure_provider();
        let bad = |e: jsonwebtoken::errors::Error| {
            KeyError::new(KeyErrorKind::InvalidMaterial)
                .kid(Some(&kid))
                .source(e)
        };
        let decoding = match alg.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                return Err(KeyError::new(KeyErrorKind::Unsupported).kid(Some(&kid)));
            }
        }
        .map_err(bad)?;
        let mut jwk = Jwk::from_decoding_key(&decoding, Some(alg)).map_err(bad)?;
        check_curve(&jwk, alg).map_err(|k| KeyError::new(k).kid(Some(&kid)))?;
        // Normalise to the component form, which is what JWKS keys use too.
        let decoding = DecodingKey::from_jwk(&jwk).map_err(bad)?;
        finish_public_jwk(&mut jwk, &kid, alg);
        Ok(Self {
            kid: kid.into(),
            alg,
            decoding,
            encoding: None,
            public_jwk: Some(jwk),
        })
    }

    /// A key from one JWK (RFC 7517). The algorithm is the JWK's `alg`, or where that is
    /// absent the usual one for the key type (RS256, ES256/ES384 by curve, EdDSA, HS256).
    /// An `oct` JWK becomes an HMAC key that signs and verifies; an asymmetric JWK is
    /// verification-only (its private members, if any, are rejected).
    ///
    /// # Errors
    /// See [`KeyErrorKind`]: `MissingKid`, `WrongUse`, `Unsupported`, `InvalidMaterial`,
    /// `PrivateMaterial`.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        Self::from_jwk_checked(jwk, false)
    }

    fn from_jwk_checked(jwk: &Jwk, has_private: bool) -> Result<Self, KeyError> {
        crate::crypto::ensure_provider();
        let kid = jwk.common.key_id.as_deref();
        let err = |k: KeyErrorKind| KeyError::new(k).kid(kid);
        let kid = kid.ok_or_else(|| err(KeyErrorKind::MissingKid))?;
        check_kid(kid)?;
        if let Some(u) = &jwk.common.public_key_use
            && *u != PublicKeyUse::Signature
        {
            return Err(err(KeyErrorKind::WrongUse));
        }
        let alg = jwk_algorithm(jwk).map_err(err)?;
        check_curve(jwk, alg).map_err(err)?;
        if let AlgorithmParameters::OctetKey(p) = &jwk.algorithm {
            let secret = b64url(&p.value).ok_or_else(|| err(KeyErrorKind::InvalidMaterial))?;
            return Self::hmac(kid, alg, &secret);
        }
        if has_private {
            return Err(err(KeyErrorKind::PrivateMaterial));
        }
        let decoding =
            DecodingKey::from_jwk(jwk).map_err(|e| err(KeyErrorKind::InvalidMaterial).source(e))?;
        // Reject material that decodes but cannot be a key of this type.
        match (&jwk.algorithm, decoding.kind()) {
            (
                AlgorithmParameters::EllipticCurve(_),
                jsonwebtoken::DecodingKeyKind::SecretOrDer(b),
            ) if b.len() != 65 && b.len() != 97 => {
                return Err(err(KeyErrorKind::InvalidMaterial));
            }
            (
                AlgorithmParameters::OctetKeyPair(_),
                jsonwebtoken::DecodingKeyKind::SecretOrDer(b),
            ) if b.len() != 32 => {
                return Err(err(KeyErrorKind::InvalidMaterial));
            }
            (
                AlgorithmParameters::RSA(_),
                jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e },
            ) if n.len() < 256 || e.is_empty() => {
                // RSA keys under 2048 bits are refused.
                return Err(err(KeyErrorKind::InvalidMaterial));
            }
            _ => {}
        }
        let mut public = jwk.clone();
        finish_public_jwk(&mut public, kid, alg);
        Ok(Self {
            kid: kid.into(),
            alg,
            decoding,
            encoding: None,
            public_jwk: Some(public),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies (and signs) with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether this key holds private (or symmetric) material and can sign.
    pub fn can_sign(&self) -> bool {
        self.encoding.is_some()
    }

    /// Whether this key is symmetric (HMAC) and so is never published in a public JWKS.
    pub fn is_symmetric(&self) -> bool {
        self.alg.family() == AlgorithmFamily::Hmac
    }

    /// The public JWK of an asymmetric key (`None` for HMAC keys).
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public_jwk.as_ref()
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The private signing material, for the issuer.
    pub(crate) fn encoding_key(&self) -> Option<&EncodingKey> {
        self.encoding.as_ref()
    }
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

fn finish_public_jwk(jwk: &mut Jwk, kid: &str, alg: Algorithm) {
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(key_algorithm(alg));
    jwk.common.key_operations = None;
}

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::HS256 => KeyAlgorithm::HS256,
        Algorithm::HS384 => KeyAlgorithm::HS384,
        Algorithm::HS512 => KeyAlgorithm::HS512,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::ES384 => KeyAlgorithm::ES384,
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::RS384 => KeyAlgorithm::RS384,
        Algorithm::RS512 => KeyAlgorithm::RS512,
        Algorithm::PS256 => KeyAlgorithm::PS256,
        Algorithm::PS384 => KeyAlgorithm::PS384,
        Algorithm::PS512 => KeyAlgorithm::PS512,
        _ => KeyAlgorithm::EdDSA,
    }
}

/// The algorithm for a JWK: its `alg`, checked against its type, or the usual default.
fn jwk_algorithm(jwk: &Jwk) -> Result<Algorithm, KeyErrorKind> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        AlgorithmParameters::OctetKey(_) => AlgorithmFamily::Hmac,
        _ => return Err(KeyErrorKind::Unsupported),
    };
    let alg = match jwk.common.key_algorithm {
        Some(ka) => ka
            .to_string()
            .parse::<Algorithm>()
            .map_err(|_| KeyErrorKind::Unsupported)?,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
                Algorithm::ES384
            }
            AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => Algorithm::HS256,
        },
    };
    if alg.family() != family {
        return Err(KeyErrorKind::Unsupported);
    }
    Ok(alg)
}

/// The curve must match the algorithm (ES256 ↔ P-256, ES384 ↔ P-384, EdDSA ↔ Ed25519).
fn check_curve(jwk: &Jwk, alg: Algorithm) -> Result<(), KeyErrorKind> {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match (p.curve.clone(), alg) {
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384) => {
                Ok(())
            }
            _ => Err(KeyErrorKind::Unsupported),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => Ok(()),
            _ => Err(KeyErrorKind::Unsupported),
        },
        _ => Ok(()),
    }
}

/// An immutable set of keys, one of which may be the signing key.
///
/// Keys are held in `Arc`s: a key shared by two keysets is the same key, and tokens it
/// verified stay verified across a swap between those keysets.
#[derive(Clone, Debug, Default)]
pub struct Keyset {
    keys: Vec<Arc<Key>>,
    signing_kid: Option<Box<str>>,
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
    /// use tokenlife_core::{KeyErrorKind, Keyset};
    ///
    /// let jwks = r#"{"keys":[
    ///   {"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"},
    ///   {"kty":"XYZ","kid":"k2"}
    /// ]}"#;
    /// let keyset = Keyset::from_jwks_json(jwks)?;
    /// assert_eq!(keyset.keys().count(), 1);
    /// assert_eq!(keyset.warnings()[0].kind(), KeyErrorKind::Unsupported);
    /// assert_eq!(keyset.warnings()[0].key_id(), Some("k2"));
    /// # Ok::<(), tokenlife_core::KeyError>(())
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
    /// # Ok::<(), tokenlife_core::KeyError>(())
    /// ```
    pub fn to_public_jwks(&self) -> String {
        serde_json::to_string(&self.to_public_jwk_set()).unwrap_or_else(|_| r#"{"keys":[]}"#.into())
    }
}

/// Whether two keys are the same key: one `Arc`, or one algorithm and one public JWK.
fn same_key(a: &Arc<Key>, b: &Arc<Key>) -> bool {
    Arc::ptr_eq(a, b) || (a.alg == b.alg && a.public_jwk.is_some() && a.public_jwk == b.public_jwk)
}

/// One immutable, versioned state of the [`KeysetStore`]: the active keyset (which signs
/// and verifies) and, during a canary, a staged keyset (which only verifies).
#[derive(Debug)]
pub struct KeysetSnapshot {
    version: u64,
    created_at: SystemTime,
    active: Keyset,
    staged: Option<Keyset>,
}

impl KeysetSnapshot {
    /// The version: 1 for the first keyset, then one more for each publish or stage.
    /// A rollback reinstalls an earlier snapshot with its own version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When this snapshot was created.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// The active keyset's label.
    pub fn label(&self) -> Option<&str> {
        self.active.label()
    }

    /// The active keyset.
    pub fn active(&self) -> &Keyset {
        &self.active
    }

    /// The staged (canary) keyset, if one is staged.
    pub fn staged(&self) -> Option<&Keyset> {
        self.staged.as_ref()
    }

    /// The kid of the signing key (always from the active keyset).
    pub fn signing_kid(&self) -> Option<&str> {
        self.active.signing_kid.as_deref()
    }

    /// The signing key.
    pub fn signing_key(&self) -> Option<&Arc<Key>> {
        self.active.signing_key()
    }

    /// The verification key with this kid: active keys first, then staged ones.
    #[inline]
    pub fn find(&self, kid: &str) -> Option<&Arc<Key>> {
        self.active
            .get(kid)
            .or_else(|| self.staged.as_ref().and_then(|s| s.get(kid)))
    }

    /// Whether this exact key (not merely its kid) verifies in this snapshot. Compares
    /// pointers only, so it never touches the keys' shared reference counts.
    #[inline]
    pub(crate) fn holds(&self, key: &Arc<Key>) -> bool {
        self.active.keys.iter().any(|k| Arc::ptr_eq(k, key))
            || self
                .staged
                .as_ref()
                .is_some_and(|s| s.keys.iter().any(|k| Arc::ptr_eq(k, key)))
    }

    /// Every key that verifies in this snapshot (active, then staged).
    pub fn keys(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.active
            .keys()
            .chain(self.staged.iter().flat_map(|s| s.keys()))
    }

    /// The public verification keys (active and staged) as JWKS JSON.
    pub fn to_public_jwks(&self) -> String {
        let set = JwkSet {
            keys: self.keys().filter_map(|k| k.public_jwk.clone()).collect(),
        };
        serde_json::to_string(&set).unwrap_or_else(|_| r#"{"keys":[]}"#.into())
    }
}

/// Default number of snapshots kept for rollback.
pub const DEFAULT_HISTORY: usize = 16;

/// The current keyset, swapped atomically, with a bounded history for rollback.
///
/// Cloning is cheap and clones share the store. Readers ([`current`](Self::current) and the
/// validator) never block; writers serialise on an internal lock, and each change is one
/// atomic swap.
#[derive(Clone)]
pub struct KeysetStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    current: ArcSwap<KeysetSnapshot>,
    generation: AtomicU64,
    admin: Mutex<Admin>,
}

struct Admin {
    next_version: u64,
    limit: usize,
    /// Every snapshot still kept, oldest first.
    history: VecDeque<Arc<KeysetSnapshot>>,
    /// The versions that were current before, most recent last (what `rollback` returns to).
    previous: Vec<u64>,
}

impl fmt::Debug for KeysetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cur = self.inner.current.load();
        f.debug_struct("KeysetStore")
            .field("version", &cur.version)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl KeysetStore {
    /// A store whose current snapshot (version 1) is `keyset`, keeping
    /// [`DEFAULT_HISTORY`] snapshots.
    pub fn new(keyset: Keyset) -> Self {
        Self::with_history(keyset, DEFAULT_HISTORY)
    }

    /// A store that keeps `limit` snapshots (at least 2) for rollback.
    pub fn with_history(keyset: Keyset, limit: usize) -> Self {
        let first = Arc::new(KeysetSnapshot {
            version: 1,
            created_at: SystemTime::now(),
            active: keyset,
            staged: None,
        });
        Self {
            inner: Arc::new(StoreInner {
                current: ArcSwap::new(first.clone()),
                generation: AtomicU64::new(1),
                admin: Mutex::new(Admin {
                    next_version: 2,
                    limit: limit.max(2),
                    history: VecDeque::from([first]),
                    previous: Vec::new(),
                }),
            }),
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<KeysetSnapshot> {
        self.inner.current.load_full()
    }

    /// The current snapshot without touching its reference count (the hot path).
    #[inline]
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<KeysetSnapshot>> {
        self.inner.current.load()
    }

    /// A counter that grows by one with every change to the current snapshot (including
    /// rollbacks, which reinstall an older version): it orders changes across a fleet.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    fn admin(&self) -> MutexGuard<'_, Admin> {
        // A panic while holding the lock cannot leave the data half-changed: every change
        // is prepared first and applied by one swap, so a poisoned lock is still usable.
        self.inner.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn install(&self, admin: &mut Admin, snap: Arc<KeysetSnapshot>, remember_current: bool) {
        let cur = self.inner.current.load();
        if remember_current {
            admin.previous.push(cur.version);
            let limit = admin.limit;
            if admin.previous.len() > limit {
                admin.previous.remove(0);
            }
        }
        self.inner.current.store(snap);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn new_snapshot(
        &self,
        admin: &mut Admin,
        active: Keyset,
        staged: Option<Keyset>,
    ) -> Arc<KeysetSnapshot> {
        let snap = Arc::new(KeysetSnapshot {
            version: admin.next_version,
            created_at: SystemTime::now(),
            active,
            staged,
        });
        admin.next_version += 1;
        admin.history.push_back(snap.clone());
        // Evict the oldest snapshots, but never the current one: it is about to become
        // the target of `rollback`.
        let current = self.inner.current.load().version;
        while admin.history.len() > admin.limit {
            match admin.history.iter().position(|s| s.version != current) {
                Some(i) => {
                    admin.history.remove(i);
                }
                None => break,
            }
        }
        snap
    }

    /// Makes `keyset` current (signing and verifying) and returns its new version.
    pub fn publish(&self, keyset: Keyset) -> u64 {
        let mut admin = self.admin();
        let snap = self.new_snapshot(&mut admin, keyset, None);
        let version = snap.version;
        self.install(&mut admin, snap, true);
        version
    }

    /// Stages `keyset` as a canary: its keys verify, the current keys still sign. Returns
    /// the new snapshot's version. A later [`promote`](Self::promote) makes it current;
    /// a [`rollback`](Self::rollback) drops it.
    ///
    /// # Errors
    /// [`KeysetError::KidConflict`] if a staged key shares its kid with a different
    /// active key (the same key staged again is fine); nothing changes.
    pub fn stage(&self, keyset: Keyset) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let active = self.inner.current.load().active.clone();
        for key in keyset.keys() {
            if let Some(other) = active.get(key.kid())
                && !same_key(key, other)
            {
                return Err(KeysetError::KidConflict(key.kid().to_owned()));
            }
        }
        let snap = self.new_snapshot(&mut admin, active, Some(keyset));
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }

    /// Publishes the staged keyset as the current one. Returns the new version.
    ///
    /// # Errors
    /// [`KeysetError::NothingStaged`] if no keyset is staged; nothing changes.
    pub fn promote(&self) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let staged = self
            .inner
            .current
            .load()
            .staged
            .clone()
            .ok_or(KeysetError::NothingStaged)?;
        let snap = self.new_snapshot(&mut admin, staged, None);
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }

    /// Goes back to the snapshot that was current before this one. Returns its version.
    ///
    /// # Errors
    /// [`KeysetError::NoPrevious`] if there is none left in the history; nothing changes.
    pub fn rollback(&self) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let current = self.inner.current.load().version;
        while let Some(v) = admin.previous.pop() {
            if v == current {
                continue;
            }
            if let Some(snap) = admin.history.iter().find(|s| s.version == v).cloned() {
                self.install(&mut admin, snap, false);
                return Ok(v);
            }
        }
        Err(KeysetError::NoPrevious)
    }

    /// Makes the snapshot with this version current again.
    ///
    /// # Errors
    /// [`KeysetError::UnknownVersion`] if it is not in the history; nothing changes.
    pub fn rollback_to(&self, version: u64) -> Result<(), KeysetError> {
        let mut admin = self.admin();
        if self.inner.current.load().version == version {
            return Ok(());
        }
        let snap = admin
            .history
            .iter()
            .find(|s| s.version == version)
            .cloned()
            .ok_or(KeysetError::UnknownVersion(version))?;
        self.install(&mut admin, snap, true);
        Ok(())
    }

    /// The snapshots still kept for rollback, oldest first (the current one included).
    pub fn history(&self) -> Vec<Arc<KeysetSnapshot>> {
        self.admin().history.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(kid: &str, byte: u8) -> Keyset {
        Keyset::new([Key::hmac(kid, Algorithm::HS256, &[byte; 32]).unwrap()]).unwrap()
    }

    #[test]
    fn publish_rollback_and_rollback_to() {
        let store = KeysetStore::new(ks("a", 1));
        let v2 = store.publish(ks("b", 2));
        let v3 = store.publish(ks("c", 3));
        assert_eq!((v2, v3), (2, 3));
        assert_eq!(store.rollback(), Ok(2));
        assert_eq!(store.rollback(), Ok(1));
        assert_eq!(store.rollback(), Err(KeysetError::NoPrevious));
        assert_eq!(store.current().version(), 1);
        store.rollback_to(3).unwrap();
        assert!(store.current().find("c").is_some());
        assert_eq!(store.rollback_to(99), Err(KeysetError::UnknownVersion(99)));
        assert_eq!(
            store.current().version(),
            3,
            "a failed rollback changes nothing"
        );
        // every successful change moved the generation
        assert_eq!(store.generation(), 6);
    }

    #[test]
    fn stage_verifies_both_but_signs_with_current_then_promote() {
        let store = KeysetStore::new(ks("a", 1));
        assert_eq!(store.promote(), Err(KeysetError::NothingStaged));
        let v = store.stage(ks("b", 2)).unwrap();
        let snap = store.current();
        assert_eq!(snap.version(), v);
        assert!(snap.find("a").is_some() && snap.find("b").is_some());
        assert_eq!(snap.signing_kid(), Some("a"));
        let v3 = store.promote().unwrap();
        let snap = store.current();
        assert_eq!(snap.version(), v3);
        assert_eq!(snap.signing_kid(), Some("b"));
        assert!(snap.find("a").is_none());
        // rolling back the promotion returns to the canary state
        assert_eq!(store.rollback(), Ok(v));
    }

    #[test]
    fn a_staged_key_may_not_shadow_a_different_active_key() {
        let store = KeysetStore::new(ks("a", 1));
        let gen_before = store.generation();
        assert_eq!(
            store.stage(ks("a", 2)),
            Err(KeysetError::KidConflict("a".into()))
        );
        assert_eq!(
            (store.current().version(), store.generation()),
            (1, gen_before)
        );
        // The very same key staged again is no conflict.
        let same = store.current().active().clone();
        store.stage(same).unwrap();
    }

    #[test]
    fn history_is_bounded_and_keeps_the_current_one() {
        let store = KeysetStore::with_history(ks("a", 1), 3);
        for i in 0..10u8 {
            store.publish(ks("x", i));
        }
        let h = store.history();
        assert_eq!(h.len(), 3);
        assert_eq!(h.last().unwrap().version(), store.current().version());
        assert_eq!(store.rollback_to(1), Err(KeysetError::UnknownVersion(1)));
    }

    #[test]
    fn a_long_publish_rollback_loop_can_always_roll_back() {
        let store = KeysetStore::with_history(ks("a", 1), 4);
        for i in 0..50u8 {
            store.publish(ks("b", i));
            assert_eq!(store.rollback(), Ok(1), "round {i}");
        }
        assert_eq!(store.history().len(), 4);
    }

    #[test]
    fn keyset_rejects_duplicates_and_empty() {
        let a = Key::hmac("a", Algorithm::HS256, &[1; 32]).unwrap();
        let a2 = Key::hmac("a", Algorithm::HS256, &[2; 32]).unwrap();
        assert_eq!(
            Keyset::new([a, a2]).unwrap_err().kind(),
            KeyErrorKind::DuplicateKid
        );
        assert_eq!(
            Keyset::new(Vec::<Key>::new()).unwrap_err().kind(),
            KeyErrorKind::Empty
        );
    }

    #[test]
    fn hmac_key_length_is_enforced() {
        assert_eq!(
            Key::hmac("a", Algorithm::HS256, &[1; 31])
                .unwrap_err()
                .kind(),
            KeyErrorKind::InvalidMaterial
        );
        assert_eq!(
            Key::hmac("a", Algorithm::HS512, &[1; 32])
                .unwrap_err()
                .kind(),
            KeyErrorKind::InvalidMaterial
        );
        assert_eq!(
            Key::hmac("a", Algorithm::RS256, &[1; 64])
                .unwrap_err()
                .kind(),
            KeyErrorKind::Unsupported
        );
    }
}
