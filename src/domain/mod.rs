//! Pure data and decisions: findings, causes, error classification, the `Card`, the diagnosis.
//!
//! Nothing in here does I/O or knows about Discord, ClickHouse clients or HTTP servers; callers
//! hand in what they observed (already turned into [`Finding`]s by the checks) and get a [`Card`].

pub mod action;
pub mod card;
pub mod cause;
pub mod classify;
pub mod diagnose;
pub mod display;
pub mod explain;
pub mod finding;
pub mod guard;
pub mod incident;
pub mod scope;
pub mod sql;
pub mod text;
pub mod thresholds;
pub mod time;
pub mod url;

pub use card::{Card, NextStep, RankedCause, Section, Slowest, Verdict};
pub use cause::Cause;
pub use finding::{CheckKind, Finding, Flag, ProbeError, Severity, Subject};
pub use scope::Scope;
