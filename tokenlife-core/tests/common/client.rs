//! A client for the admin API in process: the shape of `reqwest`'s, but each request is
//! an `http::Request` handed to [`AdminState::respond`] on tokio's blocking pool (where
//! the adapters run store-bound operations), from 127.0.0.1 unless told otherwise.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokenlife_core::admin::{AdminResponse, AdminState};

/// The admin API of one [`AdminState`].
#[derive(Clone)]
pub struct Client {
    state: AdminState,
    peer: IpAddr,
}

impl Client {
    pub fn new(state: AdminState) -> Self {
        Self {
            state,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// The same API, called from `peer`.
    pub fn from(&self, peer: IpAddr) -> Self {
        Self {
            state: self.state.clone(),
            peer,
        }
    }

    pub fn get(&self, path: impl AsRef<str>) -> Req {
        self.request(Method::GET, path.as_ref())
    }

    pub fn post(&self, path: impl AsRef<str>) -> Req {
        self.request(Method::POST, path.as_ref())
    }

    pub fn request(&self, method: Method, path: &str) -> Req {
        Req {
            client: self.clone(),
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }
}

/// One request being built.
pub struct Req {
    client: Client,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        let value = HeaderValue::from_str(value.as_ref()).expect("header value");
        self.headers.append(name, value);
        self
    }

    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn basic_auth(
        self,
        user: impl std::fmt::Display,
        password: Option<impl std::fmt::Display>,
    ) -> Self {
        let pair = match password {
            Some(p) => format!("{user}:{p}"),
            None => format!("{user}:"),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        self.header("authorization", format!("Basic {encoded}"))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends it; never fails (the `Result` keeps reqwest's shape).
    pub async fn send(self) -> Result<Res, Infallible> {
        let mut req = http::Request::new(self.body);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.path.parse().expect("path");
        *req.headers_mut() = self.headers;
        let Client { state, peer } = self.client;
        let res = tokio::task::spawn_blocking(move || state.respond(&req, Some(peer)))
            .await
            .expect("the operation does not panic");
        Ok(Res(res))
    }
}

/// An answer.
pub struct Res(pub AdminResponse);

impl Res {
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }

    pub async fn text(self) -> Result<String, std::string::FromUtf8Error> {
        String::from_utf8(self.0.into_body())
    }
}
