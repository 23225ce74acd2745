//! Speaking first: the backup-failure watcher ([`watch`]), Alertmanager intake ([`alerts`]), the
//! scheduled pre-flight ([`schedule`]) record incidents in the store; the poster ([`outbox`])
//! runs the card for each and posts it to the cluster's incident channel, then edits it when the
//! incident is resolved.

pub mod alerts;
pub mod outbox;
pub mod schedule;
pub mod watch;
