//! [`HttpHeaders`]: the `http` crate's headers as the core's [`Guard`](gate::Guard) reads them, and the
//! token sources over them.

use http::{HeaderMap, HeaderValue, header};
use tokenlife_core::gate;

/// The `http` crate's headers, as the core's [`Guard`](gate::Guard) reads them.
#[derive(Debug, Clone, Copy)]
pub struct HttpHeaders;

impl gate::Headers for HttpHeaders {
    type Map = HeaderMap;
    type Name = http::HeaderName;

    fn authorization(map: &HeaderMap) -> impl Iterator<Item = &[u8]> {
        map.get_all(header::AUTHORIZATION)
            .into_iter()
            .map(HeaderValue::as_bytes)
    }

    fn cookies(map: &HeaderMap) -> impl Iterator<Item = &[u8]> {
        map.get_all(header::COOKIE)
            .into_iter()
            .map(HeaderValue::as_bytes)
    }

    fn values<'a>(map: &'a HeaderMap, name: &http::HeaderName) -> impl Iterator<Item = &'a [u8]> {
        map.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }

    fn contains(map: &HeaderMap, name: &'static str) -> bool {
        map.contains_key(name)
    }
}

/// A function that finds the token in the request headers.
pub type ExtractFn = gate::CustomSource<HttpHeaders>;

/// Where the layer looks for the token. The first source that yields one wins.
pub type TokenSource = gate::TokenSource<HttpHeaders>;
