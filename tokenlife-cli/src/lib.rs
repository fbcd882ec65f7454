//! The `tokenlife` command's parts that other programs use too: the admin API client
//! (paths from core's route table), the audit answers as tables, and incident response
//! ([`incident`]) — the example `examples/incident` plays a stolen-token story with them.
//!
//! The command itself is `src/main.rs`.

pub mod incident;
pub mod table;

use std::time::Duration;

use serde_json::Value;
use tokenlife_core::admin::routes::{Operation, route_of};

/// Why a call to the admin API failed.
#[derive(Debug)]
pub enum CallError {
    /// The service answered with an error (status, `error`, `error_description`).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer's `error` code.
        error: String,
        /// Its `error_description`.
        description: String,
    },
    /// The service could not be reached, or its answer not read.
    Unreachable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused {
                status,
                error,
                description,
            } => write!(f, "{status}: {error}: {description}"),
            Self::Unreachable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for CallError {}

/// A client of a service's admin API, authenticated with the admin key (kept zeroized).
pub struct AdminClient {
    base: String,
    key: zeroize::Zeroizing<String>,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `s` as one URL path segment or query value (RFC 3986 unreserved characters kept, the
/// rest percent-encoded).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AdminClient {
    /// A client of the admin routes at `base` (`http://127.0.0.1:9090`).
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(
        base: &str,
        key: zeroize::Zeroizing<String>,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout.max(Duration::from_secs(1)))
            .build()
            .map_err(|e| CallError::Unreachable(format!("HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
            http,
        })
    }

    /// Calls `op` (path and method from the route table), its path parameter filled with
    /// `param`, with `query` pairs (values percent-encoded here) and a JSON or form
    /// `body`. Answers the JSON body of a success.
    ///
    /// # Errors
    /// [`CallError::Refused`] for an error answer, [`CallError::Unreachable`] when the
    /// service could not be reached.
    pub fn call(
        &self,
        op: Operation,
        param: Option<&str>,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<Value, CallError> {
        let r = route_of(op);
        let mut path = match param {
            Some(p) => r.path_with(&encode(p)),
            None => r.path.to_owned(),
        };
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            path = format!("{path}?{}", q.join("&"));
        }
        let method = r.method.as_str();
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        }
        .bearer_auth(self.key.as_str());
        match body {
            Some(Body::Json(b)) => req = req.header("content-type", "application/json").body(b),
            Some(Body::Form(b)) => {
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(b);
            }
            None => {}
        }
        let res = req
            .send()
            .map_err(|e| CallError::Unreachable(format!("{method} {url}: {e}")))?;
        let status = res.status();
        let text = res
            .text()
            .map_err(|e| CallError::Unreachable(format!("{method} {url}: {e}")))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(body)
        } else {
            Err(CallError::Refused {
                status: status.as_u16(),
                error: body["error"].as_str().unwrap_or("error").to_owned(),
                description: body["error_description"].as_str().unwrap_or("").to_owned(),
            })
        }
    }
}

/// A request body.
#[derive(Debug)]
pub enum Body {
    /// `application/json`.
    Json(String),
    /// `application/x-www-form-urlencoded` (a token for `/introspect`: never in a URL).
    Form(String),
}
