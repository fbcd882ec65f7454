//! [`AuditTrail`]: the [`Observer`] that turns lifecycle events into [`AuditEvent`]s for an
//! [`Auditor`] — one of the [`Monitor`](crate::Monitor)'s parts, usable alone.

use std::fmt;
use std::sync::Arc;

use super::audit::{AuditAction, AuditEvent, Auditor};
use super::event::{Event, Observer, TokenRef};
use super::lifecycle::TokenKind;
use crate::clock::Clock;
use crate::error::ValidationErrorKind as Kind;
use crate::fingerprint::Fingerprint;

/// What every audit record is stamped with: the time (the injected clock) and the keyed
/// fingerprint of the token. Shared by the trail and the alerts; the key is wiped when
/// the last holder goes.
pub(crate) struct Stamp {
    clock: Arc<dyn Clock>,
    key: [u8; 32],
}

impl Drop for Stamp {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl Stamp {
    pub(crate) fn new(clock: Arc<dyn Clock>, key: [u8; 32]) -> Arc<Self> {
        Arc::new(Self { clock, key })
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.unix_now()
    }

    pub(crate) fn fp(&self, token: TokenRef<'_>) -> Fingerprint {
        token.fingerprint(&self.key)
    }

    pub(crate) fn key(&self) -> [u8; 32] {
        self.key
    }
}

/// A failed validation's record (its alerts start from it too).
pub(crate) fn failed_validation(
    stamp: &Stamp,
    now: u64,
    kind: Kind,
    token: TokenRef<'_>,
    version: u64,
    address: Option<&str>,
) -> AuditEvent {
    AuditEvent::new(AuditAction::ValidationFailed, now)
        .failure(kind.as_str())
        .kind(TokenKind::Access)
        .fingerprint(stamp.fp(token))
        .keyset_version(version)
        .address(address)
}

/// An automatic rollback's record (its alert starts from it too).
pub(crate) fn rollback(event: &Event<'_>, now: u64) -> Option<AuditEvent> {
    let Event::KeysetRolledBack {
        from,
        to,
        reason,
        failures,
        sample,
    } = *event
    else {
        return None;
    };
    let reason = reason.as_str();
    Some(
        AuditEvent::new(AuditAction::KeysetRollback, now)
            .failure(reason)
            .keyset_version(to)
            .detail(format!(
                "automatic rollback v{from} -> v{to}: {failures} failures ({reason}) in {sample} validations"
            )),
    )
}

/// Writes every lifecycle event worth a record to its [`Auditor`]: failed validations (not
/// successes: those are metrics), shadow regressions, issues, renewals and their
/// failures, revocations, API-key failures, keyset retirements and rollbacks, remote-key
/// fetches, admin actions. Alerts are the [`Alerts`](super::alert::Alerts)' records.
///
/// ```
/// use tokenlife_core::observe::audit::{AuditAction, Auditor};
/// use tokenlife_core::observe::trail::AuditTrail;
/// use tokenlife_core::observe::{Arm, Event, Observer, TokenRef};
/// use tokenlife_core::{ManualClock, ValidationErrorKind};
///
/// let (sink, events) = Auditor::channel(16);
/// let trail = AuditTrail::new(Auditor::builder().sink(sink).build(), ManualClock::at_unix(7), [1; 32]);
/// trail.on_event(&Event::Validated {
///     outcome: Err(ValidationErrorKind::Expired), token: TokenRef::new("t"),
///     keyset_version: 3, issuer: "https://idp", arm: Arm::Active, client: Some("10.0.0.1"), elapsed: None,
/// });
/// trail.auditor().flush();
/// let e = events.try_recv().unwrap();
/// assert_eq!((e.action, e.at, e.reason, e.keyset_version), (AuditAction::ValidationFailed, 7, Some("expired"), Some(3)));
/// ```
#[derive(Clone)]
pub struct AuditTrail {
    auditor: Auditor,
    stamp: Arc<Stamp>,
}

impl fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditTrail")
            .field("auditor", &self.auditor)
            .finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// Records to `auditor`, timed by `clock`, fingerprinting tokens with `fingerprint_key`.
    pub fn new(auditor: Auditor, clock: impl Clock, fingerprint_key: [u8; 32]) -> Self {
        Self::stamped(auditor, Stamp::new(Arc::new(clock), fingerprint_key))
    }

    pub(crate) fn stamped(auditor: Auditor, stamp: Arc<Stamp>) -> Self {
        Self { auditor, stamp }
    }

    /// The auditor it writes to.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    fn record(&self, event: AuditEvent) {
        self.auditor.emit(event);
    }
}

impl Observer for AuditTrail {
    fn audit_ready(&self) -> bool {
        self.auditor.control_ready()
    }

    fn fingerprint_key(&self) -> Option<[u8; 32]> {
        Some(self.stamp.key())
    }

    #[allow(clippy::too_many_lines)]
    fn on_event(&self, event: &Event<'_>) {
        let s = &*self.stamp;
        match *event {
            Event::Validated {
                outcome: Err(kind),
                token,
                keyset_version,
                issuer,
                client,
                ..
            } if kind != Kind::MissingToken => {
                self.record(
                    failed_validation(s, s.now(), kind, token, keyset_version, client)
                        .issuer(Some(issuer)),
                );
            }
            Event::Shadow {
                outcome: Err(kind),
                token,
                keyset_version,
                client,
            } => self.record(
                AuditEvent::new(AuditAction::ShadowRegression, s.now())
                    .failure(kind.as_str())
                    .kind(TokenKind::Access)
                    .fingerprint(s.fp(token))
                    .keyset_version(keyset_version)
                    .address(client),
            ),
            Event::RemoteKeys {
                source,
                outcome,
                version,
                skipped,
                ..
            } => {
                let skipped = if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped {}", skipped.join(", "))
                };
                let event = AuditEvent::new(AuditAction::RemoteKeys, s.now());
                let (event, state) = if outcome.is_failure() {
                    (
                        event.failure(outcome.as_str()),
                        "failed, last good keys kept",
                    )
                } else {
                    (event.reason(outcome.as_str()), "ok")
                };
                self.record(
                    event
                        .keyset_version(version)
                        .detail(format!("{source}: {state}{skipped}")),
                );
            }
            Event::KeysRetired {
                version,
                kids,
                policy,
                until,
            } => {
                let policy = policy.as_str();
                let until = until.map_or(String::new(), |u| format!(" until {u}"));
                self.record(
                    AuditEvent::new(AuditAction::KeysRetired, s.now())
                        .reason(policy)
                        .keyset_version(version)
                        .detail(format!("retired {}: {policy}{until}", kids.join(","))),
                );
            }
            Event::Issued {
                kind,
                token,
                keyset_version,
                key,
                subject,
                client,
                jti,
                issuer,
            } => {
                let mut e = AuditEvent::new(AuditAction::TokenIssued, s.now())
                    .kind(kind)
                    .fingerprint(s.fp(token))
                    .subject(subject)
                    .client(client)
                    .jti(jti)
                    .issuer(issuer);
                if let Some(v) = keyset_version {
                    e = e.keyset_version(v);
                }
                if let Some((kid, alg)) = key {
                    e = e.key(kid, alg);
                }
                self.record(e);
            }
            Event::Renewed {
                kind,
                token,
                subject,
                client,
                retry,
            } => {
                let mut e = AuditEvent::new(AuditAction::TokenRenewed, s.now())
                    .kind(kind)
                    .subject(subject)
                    .client(client);
                if let Some(t) = token {
                    e = e.fingerprint(s.fp(t));
                }
                if retry {
                    e = e.reason("retry");
                }
                self.record(e);
            }
            Event::RenewFailed {
                reason,
                token,
                subject,
                client,
            } => self.record(
                AuditEvent::new(AuditAction::RenewFailed, s.now())
                    .failure(reason.as_str())
                    .kind(TokenKind::Refresh)
                    .fingerprint(s.fp(token))
                    .subject(subject)
                    .client(client),
            ),
            Event::Revoked {
                kind,
                reason,
                subject,
                client,
                audited: true,
                ..
            } => {
                let mut e = AuditEvent::new(AuditAction::TokenRevoked, s.now())
                    .kind(kind)
                    .subject(subject)
                    .client(client);
                if kind != TokenKind::ApiKey {
                    e = e.reason(reason.as_str());
                }
                self.record(e);
            }
            Event::ApiKeyChecked {
                outcome: Err(reason),
                token,
            } => self.record(
                AuditEvent::new(AuditAction::ValidationFailed, s.now())
                    .failure(reason.as_str())
                    .kind(TokenKind::ApiKey)
                    .fingerprint(s.fp(token)),
            ),
            Event::KeysetRolledBack { .. } => {
                if let Some(e) = rollback(event, s.now()) {
                    self.record(e);
                }
            }
            Event::Admin {
                action,
                detail,
                failure,
                client,
                subject,
                keyset_version,
            } => {
                let mut e = AuditEvent::new(action, s.now())
                    .client(client)
                    .subject(subject);
                if let Some(f) = failure {
                    e = e.failure(f.as_str());
                }
                if let Some(v) = keyset_version {
                    e = e.keyset_version(v);
                }
                if let Some(d) = detail {
                    e = e.detail(d);
                }
                self.record(e);
            }
            _ => {}
        }
    }
}
