//! [`WebhookSink`] (feature `webhook`): alerts that leave the process — each alert record
//! POSTed as JSON to an HTTP endpoint (a pager's, a chat's, your own), signed.
//!
//! - **Off every request path.** The sink is an [`AuditSink`]: the auditor's lane hands
//!   it each record, it keeps the alerts ([`AuditAction::Alert`]) in a bounded queue
//!   (`try_send`) and a thread of its own delivers them. A full queue drops and counts.
//! - **Retries** on a connection failure, a timeout, `429` or a `5xx`: up to
//!   [`max_attempts`](WebhookSinkBuilder::max_attempts), waiting a jittered exponential
//!   backoff between them. A `4xx` other than `429` is not retried. What is never
//!   delivered is a *dead letter*: counted ([`WebhookStats::dead_letters`],
//!   `tokenlife_webhook_dead_letters_total`), never silent.
//! - **Signed.** With a secret, each request carries `X-Tokenlife-Timestamp` (Unix
//!   seconds) and `X-Tokenlife-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`; a
//!   receiver checks both with [`verify_signature`] and refuses a timestamp outside its
//!   replay window, so a captured request cannot be replayed later.
//! - **Slack-compatible** payloads on request ([`slack`](WebhookSinkBuilder::slack)):
//!   `{"text": "…"}`, what Slack's and Mattermost's incoming webhooks take.
//!
//! Who reaches it: whoever can raise an alert — any client can present a revoked token or
//! bad signatures. The queue bounds what they cost; the payload carries the fingerprint,
//! never a token.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::audit::{AuditAction, AuditEvent, AuditSink};
use super::metrics::{WEBHOOK_DEAD_LETTERS, WEBHOOK_DELIVERIES};

/// The header with the request's Unix time.
pub const TIMESTAMP_HEADER: &str = "x-tokenlife-timestamp";
/// The header with the request's signature (`v1=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-tokenlife-signature";

/// The signature of `body` sent at `timestamp` under `secret`: `v1=` and the hex
/// HMAC-SHA256 of `"<timestamp>.<body>"`.
///
/// ```
/// use tokenlife_core::observe::webhook::{sign, verify_signature};
/// let sig = sign(b"s3cret", 1_700_000_000, br#"{"alert":"automatic_rollback"}"#);
/// assert!(sig.starts_with("v1="));
/// let ok = verify_signature(b"s3cret", "1700000000", br#"{"alert":"automatic_rollback"}"#, &sig, 1_700_000_100, 300);
/// assert!(ok);
/// // Another body, another secret, or too late: refused.
/// assert!(!verify_signature(b"s3cret", "1700000000", b"{}", &sig, 1_700_000_100, 300));
/// assert!(!verify_signature(b"other", "1700000000", br#"{"alert":"automatic_rollback"}"#, &sig, 1_700_000_100, 300));
/// assert!(!verify_signature(b"s3cret", "1700000000", br#"{"alert":"automatic_rollback"}"#, &sig, 1_700_001_000, 300));
/// ```
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| {
        // HMAC takes a key of any length: unreachable.
        Hmac::<Sha256>::new_from_slice(&[0]).unwrap_or_else(|_| unreachable!())
    });
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What a receiver checks: the signature of `body` at `timestamp` (the header's text)
/// under `secret`, compared in constant time, and the timestamp within `window_secs` of
/// `now` (either side: clocks differ).
pub fn verify_signature(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: u64,
    window_secs: u64,
) -> bool {
    let Ok(ts) = timestamp.parse::<u64>() else {
        return false;
    };
    if ts.abs_diff(now) > window_secs {
        return false;
    }
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// The JSON an alert is sent as.
fn payload(e: &AuditEvent, slack: bool) -> Vec<u8> {
    let alert = e.alert.map_or("alert", |a| a.as_str());
    let value = if slack {
        let mut text = format!(":rotating_light: tokenlife alert *{alert}*");
        if let Some(r) = e.reason {
            text.push_str(&format!(" ({r})"));
        }
        if let Some(v) = e.keyset_version {
            text.push_str(&format!(", keyset v{v}"));
        }
        if let Some(a) = &e.address {
            text.push_str(&format!(", from {a}"));
        }
        if let Some(d) = &e.detail {
            text.push_str(&format!(": {d}"));
        }
        serde_json::json!({ "text": text })
    } else {
        serde_json::json!({
            "alert": alert,
            "at": e.at,
            "reason": e.reason,
            "keyset_version": e.keyset_version,
            "fingerprint": e.fingerprint.map(|f| f.to_string()),
            "subject": e.subject,
            "client": e.client,
            "address": e.address,
            "detail": e.detail,
        })
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// An [`AuditSink`] POSTing alerts to a webhook (see the [module](self)). Give it to
/// [`AuditorBuilder::sink`](super::audit::AuditorBuilder::sink).
pub struct WebhookSink {
    tx: SyncSender<AuditEvent>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    delivered: AtomicU64,
    dead: AtomicU64,
    attempts: AtomicU64,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("delivered", &self.stats.delivered.load(Ordering::Relaxed))
            .field("dead_letters", &self.stats.dead.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Counters of a [`WebhookSink`], readable after the sink went to the auditor.
#[derive(Clone)]
pub struct WebhookStats(Arc<Stats>);

impl fmt::Debug for WebhookStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookStats")
            .field("delivered", &self.delivered())
            .field("dead_letters", &self.dead_letters())
            .finish()
    }
}

impl WebhookStats {
    /// Alerts the endpoint accepted (`2xx`).
    pub fn delivered(&self) -> u64 {
        self.0.delivered.load(Ordering::Relaxed)
    }

    /// Alerts never delivered: the queue was full, the endpoint refused (`4xx`), or every
    /// attempt failed.
    pub fn dead_letters(&self) -> u64 {
        self.0.dead.load(Ordering::Relaxed)
    }

    /// Requests made (deliveries and retries).
    pub fn attempts(&self) -> u64 {
        self.0.attempts.load(Ordering::Relaxed)
    }
}

/// Builds a [`WebhookSink`].
#[must_use]
pub struct WebhookSinkBuilder {
    url: String,
    secret: Option<zeroize::Zeroizing<Vec<u8>>>,
    slack: bool,
    capacity: usize,
    max_attempts: u32,
    timeout: Duration,
    backoff: (Duration, Duration),
}

impl fmt::Debug for WebhookSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSinkBuilder")
            .field("slack", &self.slack)
            .field("capacity", &self.capacity)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// A sink POSTing to `url` (`https://…`; `http://` for a receiver on the same host).
    pub fn builder(url: impl Into<String>) -> WebhookSinkBuilder {
        WebhookSinkBuilder {
            url: url.into(),
            secret: None,
            slack: false,
            capacity: 1_024,
            max_attempts: 5,
            timeout: Duration::from_secs(5),
            backoff: (Duration::from_millis(500), Duration::from_secs(30)),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> WebhookStats {
        WebhookStats(self.stats.clone())
    }
}

impl AuditSink for WebhookSink {
    /// Queues an alert; other records are not this sink's. Never waits: a full queue is
    /// a dead letter.
    fn write(&mut self, event: &AuditEvent) {
        if event.action != AuditAction::Alert {
            return;
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dead.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(WEBHOOK_DEAD_LETTERS).increment(1);
            }
        }
    }
}

impl WebhookSinkBuilder {
    /// Signs every request with this secret (see the [module](self)).
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(zeroize::Zeroizing::new(secret.into()));
        self
    }

    /// Sends `{"text": …}` (Slack, Mattermost) instead of the alert's fields.
    pub fn slack(mut self, slack: bool) -> Self {
        self.slack = slack;
        self
    }

    /// Alerts queued at most (default 1,024); past it, dead letters.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// Attempts per alert (default 5, at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The longest one request may take (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The first wait between attempts and the longest (default 500 ms doubling to
    /// 30 s), each wait jittered between half and all of it.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max.max(first));
        self
    }

    /// Starts the delivery thread.
    ///
    /// # Panics
    /// If the OS cannot start a thread.
    pub fn build(self) -> WebhookSink {
        let (tx, rx) = mpsc::sync_channel(self.capacity);
        let stats = Arc::new(Stats::default());
        let worker = Worker {
            stats: stats.clone(),
            url: self.url,
            secret: self.secret,
            slack: self.slack,
            max_attempts: self.max_attempts,
            timeout: self.timeout,
            backoff: self.backoff,
        };
        std::thread::Builder::new()
            .name("tokenlife-webhook".into())
            .spawn(move || worker.run(&rx))
            .expect("spawn the webhook thread");
        WebhookSink { tx, stats }
    }
}

struct Worker {
    stats: Arc<Stats>,
    url: String,
    secret: Option<zeroize::Zeroizing<Vec<u8>>>,
    slack: bool,
    max_attempts: u32,
    timeout: Duration,
    backoff: (Duration, Duration),
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    Retry,
    Refused,
}

impl Worker {
    fn run(self, rx: &Receiver<AuditEvent>) {
        // The blocking client runs a runtime of its own: made (and dropped) on this
        // thread, never on an async worker.
        let Ok(client) = reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        else {
            // No client: every alert is a dead letter, counted.
            while rx.recv().is_ok() {
                self.dead();
            }
            return;
        };
        while let Ok(event) = rx.recv() {
            let body = payload(&event, self.slack);
            let mut wait = self.backoff.0;
            let mut delivered = false;
            for attempt in 1..=self.max_attempts {
                self.stats.attempts.fetch_add(1, Ordering::Relaxed);
                match self.attempt(&client, &body) {
                    Attempt::Delivered => {
                        delivered = true;
                        break;
                    }
                    Attempt::Refused => break,
                    Attempt::Retry if attempt < self.max_attempts => {
                        std::thread::sleep(jitter(wait));
                        wait = (wait * 2).min(self.backoff.1);
                    }
                    Attempt::Retry => {}
                }
            }
            if delivered {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(WEBHOOK_DELIVERIES).increment(1);
            } else {
                self.dead();
            }
        }
    }

    fn dead(&self) {
        self.stats.dead.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(WEBHOOK_DEAD_LETTERS).increment(1);
    }

    fn attempt(&self, client: &reqwest::blocking::Client, body: &[u8]) -> Attempt {
        let mut req = client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = &self.secret {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            req = req
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(secret, ts, body));
        }
        match req.send() {
            Ok(res) if res.status().is_success() => Attempt::Delivered,
            Ok(res) if res.status().as_u16() == 429 || res.status().is_server_error() => {
                Attempt::Retry
            }
            Ok(_) => Attempt::Refused,
            Err(_) => Attempt::Retry,
        }
    }
}

/// Between half and all of `wait`, at random: retries of many nodes do not arrive in step.
fn jitter(wait: Duration) -> Duration {
    let r = crate::hash::random_u64() % 1_000;
    wait / 2 + wait * u32::try_from(r).unwrap_or(0) / 2_000
}
