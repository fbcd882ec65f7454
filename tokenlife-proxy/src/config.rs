//! The proxy's configuration: routes by host and path prefix to upstreams, what each
//! requires, which claims go to the upstream as which headers. Read from TOML
//! ([`ProxyConfig::from_toml`]) or built in code; checked whole before it is used
//! ([`ProxyConfig::check`]), so a bad file changes nothing.
//!
//! ```
//! use tokenlife_proxy::ProxyConfig;
//! let config = ProxyConfig::from_toml(r#"
//!     [[route]]
//!     prefix = "/orders"
//!     upstream = "http://127.0.0.1:3000"
//!     require_scopes = ["orders:read"]
//!
//!     [claims]
//!     sub = "X-Auth-Subject"
//!     scope = "X-Auth-Scope"
//! "#).unwrap();
//! assert_eq!(config.routes[0].prefix, "/orders");
//! assert_eq!(config.claims["sub"], "X-Auth-Subject");
//! let bad = ProxyConfig::from_toml("[[route]]\nprefix = \"orders\"\nupstream = \"http://x\"");
//! assert_eq!(bad.unwrap_err().field(), "route[0].prefix");
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded, never a claim header.
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a claim may not be written to: the request's own framing and credentials.
const RESERVED: [&str; 6] = [
    "host",
    "authorization",
    "content-length",
    "content-type",
    "cookie",
    "forwarded",
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The routes, matched by host (when given) and longest path prefix.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Claim name → header name: the claims the upstream gets (strings as they are,
    /// arrays joined with spaces, other values as JSON). Incoming copies of these headers
    /// are always removed first.
    #[serde(default = "default_claims")]
    pub claims: BTreeMap<String, String>,
    /// The largest request body passed on (413 past it).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How long the upstream may take to answer with its head (504 past it).
    #[serde(default = "default_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// Where the forward-auth endpoint answers (and everything under it, for Envoy's
    /// `path_prefix`); empty for none.
    #[serde(default = "default_auth_path")]
    pub forward_auth_path: String,
}

/// One route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// Only requests for this host (the `Host` header, port ignored); any host when
    /// absent.
    #[serde(default)]
    pub host: Option<String>,
    /// The path prefix (`/` for everything), matched on segment boundaries.
    pub prefix: String,
    /// `http://host:port[/base]`: where matching requests go.
    pub upstream: String,
    /// Remove the prefix before passing the path on.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Scopes the token must carry (403 `insufficient_scope` otherwise).
    #[serde(default)]
    pub require_scopes: Vec<String>,
    /// Requests without a token pass, without claim headers (a bad token is still 401).
    #[serde(default)]
    pub optional: bool,
    /// Paths under this route that pass without a token (health checks).
    #[serde(default)]
    pub skip_paths: Vec<String>,
    /// Pass the `Authorization` header on (off by default: the upstream gets claims, not
    /// the bearer token).
    #[serde(default)]
    pub forward_token: bool,
    /// Speak HTTP/2 to the upstream without TLS (h2c, prior knowledge: a gRPC server).
    #[serde(default)]
    pub h2c: bool,
}

fn default_claims() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sub".to_owned(), "X-Auth-Subject".to_owned()),
        ("scope".to_owned(), "X-Auth-Scope".to_owned()),
    ])
}

fn default_max_body() -> usize {
    10 * 1024 * 1024
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_auth_path() -> String {
    "/auth".to_owned()
}

/// A configuration that cannot be used: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: String,
    why: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            why: why.into(),
        }
    }

    /// The file could not be read (field `file`).
    pub(crate) fn unreadable(why: impl Into<String>) -> Self {
        Self::new("file", why)
    }

    /// The field at fault (`route[2].upstream`, `claims.sub`, `toml`, `file`).
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.why)
    }
}

impl std::error::Error for ConfigError {}

impl ProxyConfig {
    /// Everything to `upstream`, with the default claim headers.
    ///
    /// # Errors
    /// `upstream` is not an `http://` URL.
    pub fn single(upstream: &str) -> Result<Self, ConfigError> {
        let config = Self {
            routes: vec![RouteConfig::new("/", upstream)],
            ..Self::empty()
        };
        config.check()?;
        Ok(config)
    }

    /// No routes (forward-auth only), the defaults for the rest.
    pub fn empty() -> Self {
        Self {
            routes: Vec::new(),
            claims: default_claims(),
            max_body_bytes: default_max_body(),
            upstream_timeout_ms: default_timeout_ms(),
            forward_auth_path: default_auth_path(),
        }
    }

    /// Parses and checks a TOML configuration.
    ///
    /// # Errors
    /// The TOML does not parse (`toml`, with the parser's words) or a field is unusable.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|e| ConfigError::new("toml", e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// The upstream timeout.
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }

    /// Checks every field: prefixes start with `/`, upstreams are `http://` URLs with a
    /// host, claim headers are valid names that are neither hop-by-hop nor reserved and
    /// appear once, the body limit and timeout are not zero.
    ///
    /// # Errors
    /// The first field at fault.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new("max_body_bytes", "must be above zero"));
        }
        if self.upstream_timeout_ms == 0 || self.upstream_timeout_ms > 3_600_000 {
            return Err(ConfigError::new(
                "upstream_timeout_ms",
                "must be between 1 ms and an hour",
            ));
        }
        if !self.forward_auth_path.is_empty() && !self.forward_auth_path.starts_with('/') {
            return Err(ConfigError::new("forward_auth_path", "must start with /"));
        }
        let mut seen = Vec::new();
        for (claim, header) in &self.claims {
            let field = format!("claims.{claim}");
            let name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| ConfigError::new(&field, "not a header name"))?;
            if HOP_BY_HOP.contains(&name.as_str()) || RESERVED.contains(&name.as_str()) {
                return Err(ConfigError::new(&field, "a header the proxy must not set"));
            }
            if seen.contains(&name) {
                return Err(ConfigError::new(&field, "the header of another claim"));
            }
            seen.push(name);
        }
        for (i, r) in self.routes.iter().enumerate() {
            let at = |f: &str| format!("route[{i}].{f}");
            if !r.prefix.starts_with('/') {
                return Err(ConfigError::new(at("prefix"), "must start with /"));
            }
            let uri: http::Uri = r
                .upstream
                .parse()
                .map_err(|_| ConfigError::new(at("upstream"), "not a URL"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(ConfigError::new(
                    at("upstream"),
                    "must be http://host:port (TLS to the upstream is the next hop's)",
                ));
            }
            if uri.query().is_some() {
                return Err(ConfigError::new(at("upstream"), "must not have a query"));
            }
            for s in &r.require_scopes {
                if s.is_empty() || s.contains(' ') {
                    return Err(ConfigError::new(at("require_scopes"), "one scope each"));
                }
            }
            for p in &r.skip_paths {
                if !p.starts_with('/') {
                    return Err(ConfigError::new(at("skip_paths"), "must start with /"));
                }
            }
        }
        Ok(())
    }
}

impl RouteConfig {
    /// A route from `prefix` to `upstream`, the token required, nothing else.
    pub fn new(prefix: &str, upstream: &str) -> Self {
        Self {
            host: None,
            prefix: prefix.to_owned(),
            upstream: upstream.to_owned(),
            strip_prefix: false,
            require_scopes: Vec::new(),
            optional: false,
            skip_paths: Vec::new(),
            forward_token: false,
            h2c: false,
        }
    }

    /// Whether `path` is under this route's prefix, on a segment boundary.
    pub(crate) fn covers(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            let got = host.map(|h| h.split(':').next().unwrap_or(h));
            if got.map(str::to_ascii_lowercase).as_deref() != Some(&want.to_ascii_lowercase()) {
                return false;
            }
        }
        let p = self.prefix.trim_end_matches('/');
        p.is_empty()
            || path == p
            || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
    }
}
