//! Crypto backend selection for jsonwebtoken.
//!
//! jsonwebtoken 11 panics at the first signature when it cannot tell which backend to
//! use. Exactly one of the features `aws-lc-rs` (default) and `rust-crypto` picks one;
//! neither is a build error. With both (as `--all-features` does), AWS-LC is installed
//! as jsonwebtoken's process provider the first time a key is made, unless the
//! application installed one itself before.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "tokenlife-core needs a crypto backend: enable feature `aws-lc-rs` (default) or `rust-crypto`"
);

/// Makes sure jsonwebtoken has a crypto provider. Cheap after the first call.
#[inline]
pub(crate) fn ensure_provider() {
    #[cfg(all(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // Err means the application installed its own provider first: keep it.
            let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
                &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
            );
        });
    }
}
