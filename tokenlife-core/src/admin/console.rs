//! The operator console: one page (`GET /console`) and its two static files
//! (`GET /console/assets/{file}`), embedded in the binary, and the one live stream the
//! page reads (`GET /console/events`, Server-Sent Events, the admin key).
//!
//! The page holds no secret and no data: everything it shows it fetches from the admin
//! API with the admin key the operator typed, kept in `sessionStorage` and sent as a
//! Bearer header (no cookie, so no cross-site request can act with it). Every answer of
//! the console carries `Content-Security-Policy: default-src 'self'` (no inline script or
//! style, no frame, no form, no other origin), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`. Its URLs are
//! relative, so it works under any path prefix a reverse proxy adds.
//!
//! The stream ([`ConsoleStream`]) is pulled, never pushed: an adapter writes the
//! [`ConsoleStream::frames`] stream as its body — a frame made by
//! [`ConsoleStream::next_frame`] once per [`ConsoleStream::tick`], only when the client
//! is ready for it — so a client that stops reading holds only its cursor (the feed's
//! rings are bounded and shared).
//! At most [`MAX_STREAMS`](crate::observe::console::MAX_STREAMS) are open at once (503
//! past that), each ends after [`MAX_TICKS`] ticks (the page reconnects, authenticating
//! again), and a stream is only opened for the admin key.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use futures_util::Stream;

use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{AdminResponse, AdminState, ApiError};
use crate::error::ErrorCode;
use crate::observe::console::{ConsoleFeed, Counters, FeedEntry, StreamSlot};

/// How often a stream sends its counters.
pub const TICK: Duration = Duration::from_secs(1);

/// Ticks a stream lives (ten minutes): then it ends and the page opens another.
pub const MAX_TICKS: u32 = 600;

const INDEX: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const APP_CSS: &str = include_str!("../../console/app.css");

/// The console's security headers, on every answer of its routes.
const SECURITY: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
];

fn secured(mut res: AdminResponse) -> AdminResponse {
    let h = res.headers_mut();
    for (name, value) in SECURITY {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

fn asset(body: &'static str, content_type: &'static str) -> AdminResponse {
    let mut res = http::Response::new(body.as_bytes().to_vec());
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secured(res)
}

/// The bytes the page weighs: the HTML and its two files, uncompressed.
pub fn page_weight() -> usize {
    INDEX.len() + APP_JS.len() + APP_CSS.len()
}

impl AdminState {
    /// `GET /console` (anyone: the page holds no data): the console page.
    pub fn console_page(&self) -> AdminResponse {
        asset(INDEX, "text/html; charset=utf-8")
    }

    /// `GET /console/assets/{file}` (anyone): `app.js` or `app.css`; 404 for any other.
    pub fn console_asset(&self, file: &str) -> AdminResponse {
        match file {
            "app.js" => asset(APP_JS, "text/javascript; charset=utf-8"),
            "app.css" => asset(APP_CSS, "text/css; charset=utf-8"),
            _ => secured(
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such file")
                    .into_response(),
            ),
        }
    }

    /// Opens a console event stream (the caller is the admin: the route authenticated
    /// it): 404 without a feed ([`AdminStateBuilder::console`](super::AdminStateBuilder::console)),
    /// 503 with `Retry-After` when the most streams are open.
    pub fn console_stream(&self) -> Result<ConsoleStream, Box<AdminResponse>> {
        let Some(feed) = &self.inner.console else {
            return Err(Box::new(secured(
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "no console feed is configured (AdminStateBuilder::console)",
                )
                .into_response(),
            )));
        };
        let Some(slot) = feed.open_stream() else {
            let mut res = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TemporarilyUnavailable,
                "too many console streams are open",
            )
            .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return Err(Box::new(secured(res)));
        };
        Ok(ConsoleStream {
            state: self.clone(),
            last: Counters::default(),
            timeline: 0,
            alerts: 0,
            ticks: 0,
            slot,
        })
    }

    /// `GET /console/events` answered whole, for a caller that cannot stream (the
    /// in-process [`AdminState::respond`]): the stream's first frame only.
    pub fn console_events(&self) -> AdminResponse {
        match self.console_stream() {
            Ok(mut stream) => {
                let first = stream.next_frame().unwrap_or_default();
                stream.response_head(first)
            }
            Err(refused) => *refused,
        }
    }

    /// The headers every stream starts with, around `body` (its frames).
    fn stream_head(&self, body: Vec<u8>) -> AdminResponse {
        let mut res = http::Response::new(body);
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        secured(res)
    }
}

/// One open console event stream: a cursor on the feed, and the place it holds among the
/// open streams (given back when dropped).
#[derive(Debug)]
pub struct ConsoleStream {
    state: AdminState,
    slot: StreamSlot,
    last: Counters,
    timeline: u64,
    alerts: u64,
    ticks: u32,
}

impl ConsoleStream {
    /// How long to wait between frames ([`AdminStateBuilder::console_tick`](super::AdminStateBuilder::console_tick)).
    pub fn tick(&self) -> Duration {
        self.state.inner.console_tick
    }

    /// The response head to send before the frames (status 200, `text/event-stream`,
    /// the console's security headers), with `body` as its first bytes.
    pub fn response_head(&self, body: Vec<u8>) -> AdminResponse {
        self.state.stream_head(body)
    }

    /// The frames as a body stream: the first at once, each later one a [`tick`](Self::tick)
    /// after the one before (waited on with `sleep`, the adapter's runtime's timer),
    /// ending with [`next_frame`](Self::next_frame). A frame is made only when the body
    /// is polled for one: nothing queues for a client that stops reading.
    pub fn frames<S, F>(self, sleep: S) -> impl Stream<Item = Result<Vec<u8>, Infallible>> + Send
    where
        S: Fn(Duration) -> F + Send + 'static,
        F: Future<Output = ()> + Send,
    {
        futures_util::stream::unfold(
            (self, sleep, true),
            |(mut stream, sleep, first)| async move {
                if !first {
                    sleep(stream.tick()).await;
                }
                let frame = stream.next_frame()?;
                Some((Ok(frame), (stream, sleep, false)))
            },
        )
    }

    /// The next frame: the first is a `hello` with every kept entry and the counters so
    /// far; each later one a `tick` with the counters' change since the last, the
    /// current keyset version, and any new `timeline` and `alert` entries (`lagged` when
    /// some left the ring before this stream saw them). `None` once the stream has lived
    /// [`MAX_TICKS`] ticks: end it, the page reconnects.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        if self.ticks > MAX_TICKS {
            return None;
        }
        let feed: &ConsoleFeed = self.slot.feed();
        // The hits the validator counted and has not told yet, told first.
        self.state.inner.validator.flush_hits();
        let now = feed.counters();
        let mut out = String::new();
        let version = self
            .state
            .inner
            .validator
            .keyset_store()
            .current()
            .version();
        if self.ticks == 0 {
            out.push_str("retry: 3000\n\n");
            frame(
                &mut out,
                "hello",
                &json!({"at": feed.unix_now(), "version": version, "totals": counters(&now)}),
            );
        } else {
            frame(
                &mut out,
                "tick",
                &json!({"at": feed.unix_now(), "version": version,
                    "rate": counters(&now.since(&self.last)), "totals": counters(&now)}),
            );
        }
        self.last = now;
        let (timeline, missed_t) = feed.timeline_since(self.timeline);
        let (alerts, missed_a) = feed.alerts_since(self.alerts);
        if missed_t + missed_a > 0 && self.ticks > 0 {
            frame(
                &mut out,
                "lagged",
                &json!({"timeline": missed_t, "alerts": missed_a}),
            );
        }
        for e in &timeline {
            frame(&mut out, "timeline", &entry(e));
            self.timeline = e.seq;
        }
        for e in &alerts {
            frame(&mut out, "alert", &entry(e));
            self.alerts = e.seq;
        }
        self.ticks += 1;
        Some(out.into_bytes())
    }
}

fn frame(out: &mut String, event: &str, data: &Value) {
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    // JSON has no raw newline: one `data:` line.
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

fn counters(c: &Counters) -> Value {
    json!({
        "accepted": c.accepted, "cache_hits": c.cache_hits, "expired": c.expired,
        "revoked": c.revoked, "bad_key": c.bad_key, "rejected": c.rejected,
        "issued": c.issued, "renewed": c.renewed, "revocations": c.revocations,
    })
}

fn entry(e: &FeedEntry) -> Value {
    json!({"seq": e.seq, "at": e.at, "what": e.what, "detail": e.detail,
        "version": e.version, "count": e.count})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's bound: the page and its files weigh at most 200 KB uncompressed, and
    /// nothing in them loads from elsewhere or runs inline.
    #[test]
    fn the_page_is_light_self_contained_and_has_no_inline_code() {
        assert!(page_weight() <= 200 * 1024, "{} bytes", page_weight());
        for text in [INDEX, APP_JS, APP_CSS] {
            // SVG's namespace name is a name, not a load.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn") && !text.contains("@import"));
        }
        // Every <script> has a src, no element has an inline handler or style.
        assert_eq!(
            INDEX.matches("<script").count(),
            INDEX.matches("<script src=").count()
        );
        assert!(!INDEX.contains(" style=") && !INDEX.contains("<style"));
        assert!(!INDEX.contains(" onclick=") && !INDEX.contains(" onload="));
        // Relative URLs only: the console works under a reverse proxy's path prefix.
        assert!(INDEX.contains(r#"src="console/assets/app.js""#));
        assert!(!INDEX.contains(r#"src="/"#) && !INDEX.contains(r#"href="/"#));
        // The key goes to sessionStorage, never to a cookie or localStorage.
        assert!(APP_JS.contains("sessionStorage") && !APP_JS.contains("localStorage"));
        assert!(!APP_JS.contains("document.cookie") && !APP_JS.contains("innerHTML"));
    }
}
