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
use crate::observe::{FleetDrop, FleetEvent};

/// Largest keyset state applied, in bytes (two JWKS at their limit, and the rest).
pub(super) const MAX_STATE: usize = 2 * Keyset::MAX_JWKS_BYTES + 4096;

/// Publishes a state under the next generation, in one step on the server — only within
/// the epoch the writer knows (`-1` otherwise: the writer learns the new epoch first).
const PUBLISH_STATE: &str = r"
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return -1 end
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
    /// Kids revoked as compromised: every node refuses them from then on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    revoked: Vec<String>,
    /// The fleet epoch the generation counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epoch: Option<String>,
    /// Versions the rollout guard quarantined on the publishing node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    quarantined: Vec<u64>,
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

fn epoch_key(prefix: &str) -> String {
    format!("{prefix}:keyset:epoch")
}

/// Learns the fleet's epoch, making one (`SET NX` of a random id) if Redis has none — a
/// Redis that lost its data is a new epoch, never "older news". A new epoch resets this
/// node's generation, so the states of the new epoch apply. Returns whether the epoch
/// changed under a node that knew an earlier one.
pub(super) async fn ensure_epoch(
    inner: &Inner,
    conn: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<bool> {
    let key = epoch_key(&inner.config.prefix);
    let fresh = format!(
        "{:016x}{:016x}",
        crate::hash::random_u64(),
        crate::hash::random_u64()
    );
    let epoch: String = redis::pipe()
        .cmd("SET")
        .arg(&key)
        .arg(&fresh)
        .arg("NX")
        .ignore()
        .cmd("GET")
        .arg(&key)
        .query_async::<(String,)>(conn)
        .await?
        .0;
    let mut known = inner.epoch.lock().unwrap_or_else(|p| p.into_inner());
    if known.as_deref() == Some(epoch.as_str()) {
        return Ok(false);
    }
    let changed = known.is_some();
    *known = Some(epoch);
    inner.keyset_generation.store(0, Ordering::Release);
    if changed {
        inner.epoch_changes.fetch_add(1, Ordering::Relaxed);
        inner.emit(FleetEvent::EpochChanged);
    }
    Ok(changed)
}

fn wire(
    node: &str,
    snap: &KeysetSnapshot,
    revoked: Vec<String>,
    epoch: Option<String>,
    quarantined: Vec<u64>,
) -> StateWire {
    StateWire {
        revoked,
        epoch,
        quarantined,
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
        let epoch = match inner.known_epoch() {
            Some(e) => e,
            None => {
                if ensure_epoch(&inner, c).await.is_err() {
                    conn = None;
                    tokio::time::sleep(backoff).await;
                    backoff = super::backoff_step(backoff, inner.config.max_backoff);
                }
                continue;
            }
        };
        let (revoked, quarantined) = inner
            .keyset_store()
            .map(|s| (s.revoked_keys(), s.quarantined()))
            .unwrap_or_default();
        let state = wire(
            &inner.config.node_id,
            &snap,
            revoked,
            Some(epoch.clone()),
            quarantined,
        );
        let body = serde_json::to_string(&state).unwrap_or_default();
        let sent: redis::RedisResult<i64> = script
            .key(generation_key(&prefix))
            .key(state_key(&prefix))
            .key(epoch_key(&prefix))
            .arg(&body)
            .arg(channel(&prefix))
            .arg(&epoch)
            .invoke_async(c)
            .await;
        match sent {
            Ok(-1) => {
                // Another epoch: learn it (the generation restarts) and publish in it.
                if ensure_epoch(&inner, c).await.is_err() {
                    conn = None;
                }
            }
            Ok(g) => {
                let g = u64::try_from(g).unwrap_or(0);
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
    let new_epoch = ensure_epoch(inner, conn).await?;
    let (generation, state): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
        .arg(state_key(&inner.config.prefix))
        .arg("gen")
        .arg("state")
        .query_async(conn)
        .await?;
    match (generation, state) {
        (Some(g), Some(state)) => {
            apply(inner, store, g, &state, true);
        }
        // Redis lost the fleet's state: this node's state becomes the new epoch's first.
        _ if new_epoch => store.announce(),
        _ => {}
    }
    Ok(())
}

/// A published message: `<generation>\n<state JSON>`. Returns `false` when it belongs
/// to another epoch than this node's: the caller resyncs.
pub(super) fn handle_message(inner: &Inner, store: &KeysetStore, bytes: &[u8]) -> bool {
    if bytes.len() > MAX_STATE {
        inner.drop_message(FleetDrop::Oversize);
        return true;
    }
    let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
        inner.drop_message(FleetDrop::Malformed);
        return true;
    };
    let Some(g) = std::str::from_utf8(&bytes[..nl])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        inner.drop_message(FleetDrop::Malformed);
        return true;
    };
    apply(inner, store, g, &bytes[nl + 1..], false)
}

/// Whether a state says the same as this node's current snapshot.
fn same_as_current(store: &KeysetStore, w: &StateWire) -> bool {
    let cur = store.current();
    cur.active().to_public_jwks() == w.active
        && cur.signing_kid() == w.signing_kid.as_deref()
        && match (cur.candidate_parts(), &w.candidate) {
            (None, None) => true,
            (Some((ks, mode, share)), Some(c)) => {
                ks.to_public_jwks() == c.jwks && mode.as_str() == c.mode && share == c.share
            }
            _ => false,
        }
}

fn parse_jwks(text: &str) -> Result<Keyset, FleetDrop> {
    let ks = Keyset::from_jwks_json(text).map_err(|e| {
        if e.entry_error()
            .is_some_and(|k| k.kind() == KeyErrorKind::PrivateMaterial)
        {
            FleetDrop::PrivateMaterial
        } else {
            FleetDrop::Malformed
        }
    })?;
    if ks
        .warnings()
        .iter()
        .any(|w| w.kind() == KeyErrorKind::PrivateMaterial)
        || ks.keys().any(|k| k.can_sign() || k.is_symmetric())
    {
        return Err(FleetDrop::PrivateMaterial);
    }
    if !ks.warnings().is_empty() {
        return Err(FleetDrop::Malformed);
    }
    Ok(ks)
}

/// Applies a state of generation `g` if it is newer than the last one applied; drops it
/// whole (counted) if any part of it is bad. Returns `false` for a state of another
/// epoch than this node's (not applied: the node must resync).
fn apply(inner: &Inner, store: &KeysetStore, g: u64, state: &[u8], from_store: bool) -> bool {
    let dropped = |reason| {
        inner.drop_message(reason);
        true
    };
    if state.len() > MAX_STATE {
        return dropped(FleetDrop::Oversize);
    }
    let Ok(w) = serde_json::from_slice::<StateWire>(state) else {
        return dropped(FleetDrop::Malformed);
    };
    if w.v != 1 {
        return dropped(FleetDrop::Version);
    }
    if let (Some(theirs), Some(ours)) = (&w.epoch, inner.known_epoch())
        && *theirs != ours
    {
        return false;
    }
    let own = w.node == inner.config.node_id;
    if g <= inner.keyset_generation.load(Ordering::Acquire) {
        // Not newer: a late or repeated message. One that says something else than
        // this node's keyset is counted: a node that stopped following shows.
        if !own && !same_as_current(store, &w) {
            inner.states_ignored.fetch_add(1, Ordering::Relaxed);
            inner.emit(FleetEvent::KeysetStateIgnored);
        }
        return true;
    }
    if !from_store && own {
        inner.keyset_generation.fetch_max(g, Ordering::AcqRel);
        return true;
    }
    let active = match parse_jwks(&w.active) {
        Ok(ks) => ks,
        Err(reason) => return dropped(reason),
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
                _ => return dropped(FleetDrop::Malformed),
            };
            if c.share > 10_000 {
                return dropped(FleetDrop::Malformed);
            }
            let ks = match parse_jwks(&c.jwks) {
                Ok(ks) => ks,
                Err(reason) => return dropped(reason),
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
        return true;
    }
    store.merge_revoked(&w.revoked);
    store.apply_remote(w.version, active, w.signing_kid.as_deref(), candidate);
    // After the state is in: the version it left is no longer current here either.
    store.merge_quarantine(&w.quarantined);
    inner.keysets_applied.fetch_add(1, Ordering::Relaxed);
    true
}
