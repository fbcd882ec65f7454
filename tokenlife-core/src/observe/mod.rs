//! Observability, kept out of the domain: the domain emits [`Event`]s to an
//! [`Observer`]; [`Monitor`] is the observer tokenlife ships (metrics, lifecycle counts,
//! audit trail and alerts).
//!
//! Dependencies point one way: the validator, issuer, API keys, revocation list and admin
//! operations import [`Event`] from here; nothing here imports them.
//!
//! - [`event`]: [`Event`], [`Observer`], [`TokenRef`], [`from_fn`].
//! - [`Monitor`]: metrics, lifecycle, audit and alerts in one observer — four observers
//!   composed, each usable alone: [`metrics::Metrics`], [`lifecycle::LifecycleTracker`],
//!   [`trail::AuditTrail`], [`alert::Alerts`].
//! - [`trail`]: the audit trail observer (events → audit records).
//! - [`usage`]: successful validations rolled up per token per time bucket.
//! - `span` (crate-private): the `tracing` spans the domain opens, with OpenTelemetry's
//!   field names.
//! - `webhook` (feature `webhook`): alerts POSTed to an HTTP endpoint, signed, retried.
//! - [`audit`]: audit events, sinks and the two-lane [`audit::Auditor`].
//! - [`alert`]: alert kinds and thresholds.
//! - [`lifecycle`]: token states, the transition table, the tracker.
//! - [`metrics`]: every metric name and label.

pub mod alert;
pub mod audit;
pub mod console;
pub mod event;
pub mod lifecycle;
pub mod metrics;
mod monitor;
pub(crate) mod span;
pub mod trail;
pub mod usage;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use alert::{AlertKind, AlertPolicy};
pub(crate) use event::SharedObserver;
pub use event::{
    AdminFailure, Arm, Event, FleetDrop, FleetEvent, FnObserver, Hit, Hits, Observer, RemoteFetch,
    RetirementPolicy, RevokeReason, RollbackReason, TokenRef, Validated, from_fn,
};
pub use monitor::{Monitor, MonitorBuilder};
