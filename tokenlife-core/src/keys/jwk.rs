//! JWK (RFC 7517) mapping: a [`Key`] from a JWK, and the public JWK of a key.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::key::{Key, check_kid};
use crate::error::{KeyError, KeyErrorKind};

impl Key {
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

    pub(super) fn from_jwk_checked(jwk: &Jwk, has_private: bool) -> Result<Self, KeyError> {
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
            verifier: super::verifier::Verifier::new(alg, &decoding),
            decoding,
            encoding: None,
            public_jwk: Some(public),
        })
    }
}

pub(super) fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

pub(super) fn finish_public_jwk(jwk: &mut Jwk, kid: &str, alg: Algorithm) {
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(key_algorithm(alg));
    jwk.common.key_operations = None;
}

pub(super) fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
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
pub(super) fn jwk_algorithm(jwk: &Jwk) -> Result<Algorithm, KeyErrorKind> {
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
pub(super) fn check_curve(jwk: &Jwk, alg: Algorithm) -> Result<(), KeyErrorKind> {
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
