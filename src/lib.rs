//! chops — ChatOps for ClickHouse backup/restore incidents (FAILED_TO_SYNC_BACKUP_OR_RESTORE, 655).
//!
//! # Layout
//!
//! - [`domain`]: pure data and decisions. Findings, the runbook's six causes, error
//!   classification, the diagnosis (`diagnose`), the [`domain::Card`]. No I/O.
//! - [`checks`]: one file per check (keeper, replicas, lag, blockers, backups, settings), each the
//!   SQL as named constants plus a pure `evaluate`; `checks::Cluster` runs them concurrently, each
//!   under its own deadline.
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
pub mod config;
pub mod discord;
pub mod domain;
pub mod http;
pub mod keeper;
pub mod metrics;
pub mod render;
pub mod store;
