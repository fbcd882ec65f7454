//! [`Key`]: one key, its one algorithm, its verification and (optionally) signing material.

use std::fmt;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use super::jwk::{check_curve, finish_public_jwk};
use crate::error::{KeyError, KeyErrorKind};

/// One key: a `kid`, the one algorithm it is used with, the verification material and,
/// optionally, the private signing material.
///
/// The algorithm belongs to the key: a token is only ever verified with the algorithm of
/// the key its `kid` names. Private material is never serialised out and never shown by
/// `Debug`.
pub struct Key {
    pub(super) kid: Box<str>,
    pub(super) alg: Algorithm,
    pub(super) decoding: DecodingKey,
    pub(super) verifier: super::verifier::Verifier,
    pub(super) encoding: Option<EncodingKey>,
    pub(super) public_jwk: Option<Jwk>,
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

pub(super) fn min_hmac_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

pub(super) fn check_kid(kid: &str) -> Result<(), KeyError> {
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
            verifier: super::verifier::Verifier::new(alg, &DecodingKey::from_secret(secret)),
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
            verifier: super::verifier::Verifier::new(alg, &decoding),
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
    /// # Ok::<(), tokenlife_core::error::KeyError>(())
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
            verifier: super::verifier::Verifier::new(alg, &decoding),
            decoding,
            encoding: None,
            public_jwk: Some(jwk),
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

    /// The JOSE name of its algorithm, as a token's `alg` header carries it
    /// (`"ES256"`).
    ///
    /// ```
    /// # use tokenlife_core::{Algorithm, Key};
    /// let k = Key::hmac("h", Algorithm::HS256, &[7; 32]).unwrap();
    /// assert_eq!(k.alg_name(), "HS256");
    /// ```
    pub fn alg_name(&self) -> &'static str {
        alg_name(self.alg)
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

    /// The key's ready verifier (a parsed public key), if it has one.
    pub(crate) fn verifier(&self) -> &super::verifier::Verifier {
        &self.verifier
    }

    /// The private signing material, for the issuer.
    pub(crate) fn encoding_key(&self) -> Option<&EncodingKey> {
        self.encoding.as_ref()
    }
}

/// The JOSE name of an algorithm (`"ES256"`).
fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        _ => "EdDSA",
    }
}
