//! A ready signature verifier per key: with `aws-lc-rs`, the public key is parsed once
//! when the key is made, so a cache miss costs one signature check rather than a key
//! parse and a check (what `jsonwebtoken::crypto::verify` does on every call).
//! Without it (RustCrypto only) and for HMAC keys, verification goes through
//! jsonwebtoken as before.

use jsonwebtoken::{Algorithm, DecodingKey};

/// The parsed public key, if this build and algorithm have one.
pub(crate) struct Verifier {
    #[cfg(feature = "aws-lc-rs")]
    parsed: Option<aws_lc_rs::signature::ParsedPublicKey>,
}

impl Verifier {
    pub(crate) fn new(alg: Algorithm, decoding: &DecodingKey) -> Self {
        #[cfg(feature = "aws-lc-rs")]
        {
            Self {
                parsed: parse(alg, decoding),
            }
        }
        #[cfg(not(feature = "aws-lc-rs"))]
        {
            let _ = (alg, decoding);
            Self {}
        }
    }

    /// The verdict on `signature` over `message`, or `None` when there is no ready
    /// verifier (the caller falls back to jsonwebtoken).
    #[inline]
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Option<bool> {
        #[cfg(feature = "aws-lc-rs")]
        {
            self.parsed
                .as_ref()
                .map(|p| p.verify_sig(message, signature).is_ok())
        }
        #[cfg(not(feature = "aws-lc-rs"))]
        {
            let _ = (message, signature);
            None
        }
    }

    /// Whether [`verify`](Self::verify) answers.
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        #[cfg(feature = "aws-lc-rs")]
        {
            self.parsed.is_some()
        }
        #[cfg(not(feature = "aws-lc-rs"))]
        {
            false
        }
    }
}

/// The same aws-lc algorithms jsonwebtoken's aws-lc backend verifies with.
#[cfg(feature = "aws-lc-rs")]
fn parse(alg: Algorithm, decoding: &DecodingKey) -> Option<aws_lc_rs::signature::ParsedPublicKey> {
    use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
    use jsonwebtoken::DecodingKeyKind;

    let rsa: &'static sig::RsaParameters = match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => {
            let algorithm: &'static dyn sig::VerificationAlgorithm = match alg {
                Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
                _ => &sig::ED25519,
            };
            return match decoding.kind() {
                DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(algorithm, bytes).ok(),
                _ => None,
            };
        }
        _ => return None,
    };
    match decoding.kind() {
        DecodingKeyKind::SecretOrDer(der) => ParsedPublicKey::new(rsa, der).ok(),
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(rsa)
            .ok(),
    }
}
