//! chops — ChatOps for ClickHouse backup/restore incidents (FAILED_TO_SYNC_BACKUP_OR_RESTORE, 655).
//!
//! # Layout
//!
//! - [`domain`]: pure data and decisions. Findings, the runbook's six causes, error
//!   classification, the diagnosis (`diagnose`), the [`domain::Card`]. No I/O.
//! - [`checks`]: one file per check (keeper, replicas, lag, blockers, backups, settings), each its
//!   SQL as named constants, its probe (`run`) and a pure `evaluate`; `checks/mod.rs` is the runner
//!   (`checks::Cluster` runs them concurrently, each under its own deadline); `discover` resolves
//!   a seed's replicas, `flight` shares one round among concurrent callers.
//! - [`actions`]: remediation. `actions/mod.rs` is the flow (request → confirm → lock → run →
//!   end); one file per action (`backup`, `restart_replica`), the live pre-checks the guard reads
//!   in `snapshot`, card buttons in `offer`.
//! - [`clickhouse`] and [`keeper`]: adapters. Per-replica HTTP clients with deadlines; the
//!   four-letter-word TCP client. Both map failures to [`domain::ProbeError`].
//! - [`config`]: `config/chops.toml` + secrets from the environment / `.env`.
//! - [`render`]: the card as terminal text or JSON.
//! - [`discord`]: the bot — poise commands as thin adapters, `discord::render` turns a card into an embed.
//! - [`cli`]: `chops check …`, `chops config check`, `chops serve`, `chops register-commands`.

pub mod actions;
pub mod app;
pub mod automation;
pub mod checks;
pub mod cli;
pub mod clickhouse;
pub mod clock;
pub mod config;
pub mod discord;
pub mod domain;
pub mod http;
pub mod keeper;
pub mod metrics;
pub mod render;
pub mod serve;
pub mod store;
