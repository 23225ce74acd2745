//! The integration tests, one binary (one link of the whole tree), one module per area. The
//! shared local cluster ([`testkit::shared`]) is started once per process, on first use, and
//! stopped by PID when the process ends; tests that break or write to a cluster start their own.

mod common;

mod act;
mod act_hostile;
mod alertmanager;
mod batch;
mod bot;
mod canned;
mod card_snapshots;
mod config_hostile;
mod corpus;
mod deploy;
mod discord_spec;
mod docker;
mod embed;
mod faults;
mod flood;
mod healthy;
mod hostile;
mod http_bounds;
mod incidents;
mod names;
mod readme;
mod tls;
mod webhook;
