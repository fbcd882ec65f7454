//! Keysets across the fleet: every local change to a node's [`KeysetStore`] (publish,
//! stage, share, promote, abort, rollback, the rollout guard's automatic rollback) becomes
//! the fleet's state under a fleet-wide generation, and every node installs a newer
//! generation than the last it applied — never an older one because of a late message.
//!
//! Only public verification material travels (`Keyset::to_public_jwks`); a state that
//! carries private key material is dropped. A node that holds the private half of a key
//! named as the signing key keeps signing with it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Inner;
use crate::error::KeyErrorKind;
use crate::keys::{Keyset, KeysetSnapshot, KeysetStore, RolloutMode};

/// Largest keyset state applied, in bytes (two JWKS at their limit, and the rest).
pub(super) const MAX_STATE: usize = 2 * Keyset::MAX_JWKS_BYTES + 4096;

/// Publishes a state under the next generation, in one step on the server.
const PUBLISH_STATE: &str = r"
local g = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'gen', g, 'state', ARGV[1])
redis.call('PUBLISH', ARGV[2], g .. '\n' .. ARGV[1])
return g
";

#[derive(Serialize, Deserialize)]
struct CandidateWire {
    mode: String,
    share: u16,
    label: Option<String>,
    jwks: String,
}

#[derive(Serialize, Deserialize)]
struct StateWire {
    v: u32,
    node: String,
    version: u64,
    label: Option<String>,
    active: String,
    signing_kid: Option<String>,
    candidate: Option<CandidateWire>,
}

pub(super) fn channel(prefix: &str) -> String {
    format!("{prefix}:keysets")
}

fn state_key(prefix: &str) -> String {
    format!("{prefix}:keyset")
}

fn generation_key(prefix: &str) -> String {
    format!("{prefix}:keyset:gen")
}

fn wire(node: &str, snap: &KeysetSnapshot) -> StateWire {
    StateWire {
        v: 1,
        node: node.to_owned(),
        version: snap.version(),
        label: snap.label().map(str::to_owned),
        active: snap.active().to_public_jwks(),
        signing_kid: snap.signing_kid().map(str::to_owned),
        candidate: snap
            .candidate_parts()
            .map(|(ks, mode, share)| CandidateWire {
                mode: mode.as_str().to_owned(),
                share,
                label: ks.label().map(str::to_owned),
                jwks: ks.to_public_jwks(),
            }),
    }
}

/// Registers the store's listener: each local change replaces the state waiting to be
/// published (only the newest matters).
pub(super) fn watch_store(store: &KeysetStore) -> watch::Receiver<Option<Arc<KeysetSnapshot>>> {
    let (tx, rx) = watch::channel(None);
    store.set_listener(Arc::new(move |snap: &Arc<KeysetSnapshot>| {
        tx.send_replace(Some(snap.clone()));
    }));
    rx
}

/// Publishes each local change as the fleet's state under a new generation.
pub(super) async fn writer(
    inner: Arc<Inner>,
    mut rx: watch::Receiver<Option<Arc<KeysetSnapshot>>>,
) {
    let script = redis::Script::new(PUBLISH_STATE);
    let prefix = inner.config.prefix.clone();
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut backoff = std::time::Duration::from_millis(10);
    let mut pending: Option<Arc<KeysetSnapshot>> = None;
    loop {
        if pending.is_none() {
            if rx.changed().await.is_err() {
                return;
            }
            pending = rx.borrow_and_update().clone();
            continue;
        }
        // A newer local change replaces one not yet sent.
        if rx.has_changed().unwrap_or(false) {
            pending = rx.borrow_and_update().clone();
        }
        let Some(snap) = pending.clone() else {
            continue;
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match inner.client.get_multiplexed_async_connection().await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = super::backoff_step(backoff, inner.config.max_backoff);
                    continue;
                }
            },
        };
        let body = serde_json::to_string(&wire(&inner.config.node_id, &snap)).unwrap_or_default();
        let sent: redis::RedisResult<u64> = script
            .key(generation_key(&prefix))
            .key(state_key(&prefix))
            .arg(&body)
            .arg(channel(&prefix))
            .invoke_async(c)
            .await;
        match sent {
            Ok(g) => {
                inner.keyset_generation.fetch_max(g, Ordering::AcqRel);
                pending = None;
                backoff = std::time::Duration::from_millis(10);
            }
            Err(_) => {
                conn = None;
                tokio::time::sleep(backoff).await;
                backoff = super::backoff_step(backoff, inner.config.max_backoff);
            }
        }
    }
}

/// Reads the stored state (on every connect) and applies it if it is newer.
pub(super) async fn resync(
    inner: &Inner,
    store: &KeysetStore,
    conn: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<()> {
    let (generation, state): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
        .arg(state_key(&inner.config.prefix))
        .arg("gen")
        .arg("state")
        .query_async(conn)
        .await?;
    if let (Some(g), Some(state)) = (generation, state) {
        apply(inner, store, g, &state, true);
    }
    Ok(())
}

/// A published message: `<generation>\n<state JSON>`.
pub(super) fn handle_message(inner: &Inner, store: &KeysetStore, bytes: &[u8]) {
    if bytes.len() > MAX_STATE {
        return inner.drop_message("oversize");
    }
    let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
        return inner.drop_message("malformed");
    };
    let Some(g) = std::str::from_utf8(&bytes[..nl])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return inner.drop_message("malformed");
    };
    apply(inner, store, g, &bytes[nl + 1..], false);
}

fn parse_jwks(text: &str) -> Result<Keyset, &'static str> {
    let ks = Keyset::from_jwks_json(text).map_err(|e| {
        if e.entry_error()
            .is_some_and(|k| k.kind() == KeyErrorKind::PrivateMaterial)
        {
            "private"
        } else {
            "malformed"
        }
    })?;
    if ks
        .warnings()
        .iter()
        .any(|w| w.kind() == KeyErrorKind::PrivateMaterial)
        || ks.keys().any(|k| k.can_sign() || k.is_symmetric())
    {
        return Err("private");
    }
    if !ks.warnings().is_empty() {
        return Err("malformed");
    }
    Ok(ks)
}

/// Applies a state of generation `g` if it is newer than the last one applied; drops it
/// whole (counted) if any part of it is bad.
fn apply(inner: &Inner, store: &KeysetStore, g: u64, state: &[u8], from_store: bool) {
    if state.len() > MAX_STATE {
        return inner.drop_message("oversize");
    }
    let Ok(w) = serde_json::from_slice::<StateWire>(state) else {
        return inner.drop_message("malformed");
    };
    if w.v != 1 {
        return inner.drop_message("version");
    }
    if g <= inner.keyset_generation.load(Ordering::Acquire) {
        return; // not newer: a late or repeated message
    }
    if !from_store && w.node == inner.config.node_id {
        inner.keyset_generation.fetch_max(g, Ordering::AcqRel);
        return;
    }
    let active = match parse_jwks(&w.active) {
        Ok(ks) => ks,
        Err(reason) => return inner.drop_message(reason),
    };
    let active = match w.label {
        Some(l) => active.with_label(l),
        None => active,
    };
    let candidate = match w.candidate {
        None => None,
        Some(c) => {
            let mode = match c.mode.as_str() {
                "canary" => RolloutMode::Canary,
                "shadow" => RolloutMode::Shadow,
                _ => return inner.drop_message("malformed"),
            };
            if c.share > 10_000 {
                return inner.drop_message("malformed");
            }
            let ks = match parse_jwks(&c.jwks) {
                Ok(ks) => ks,
                Err(reason) => return inner.drop_message(reason),
            };
            let ks = match c.label {
                Some(l) => ks.with_label(l),
                None => ks,
            };
            Some((ks, mode, c.share))
        }
    };
    // Claim the generation first: of two racing messages the older never lands after
    // the newer.
    let prev = inner.keyset_generation.fetch_max(g, Ordering::AcqRel);
    if prev >= g {
        return;
    }
    store.apply_remote(w.version, active, w.signing_kid.as_deref(), candidate);
    inner.keysets_applied.fetch_add(1, Ordering::Relaxed);
}
