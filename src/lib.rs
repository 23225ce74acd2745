//! chops — ChatOps for ClickHouse backup/restore incidents (FAILED_TO_SYNC_BACKUP_OR_RESTORE, 655).
//!
//! # Layout
//!
//! Imports point down only: `main → cli → serve → {http, discord, automation} → app → actions →
//! render/checks → {clickhouse, keeper, store, config, metrics} → clock → domain`. Nothing imports
//! `serve` back; the bot's `Data = App` alias is the only name a room takes from above it.
//!
//! - [`domain`]: pure data and decisions, no I/O. Findings, the runbook's six causes, error
//!   classification (`classify/`: every ClickHouse code, object stores, OS errors, wordings), the
//!   diagnosis (`diagnose/`: ranking, one next-steps file per cause), the [`domain::Card`],
//!   `Scope`, typed `Action`s, the guard (`may_speak`/`may_act`), the one display boundary
//!   (`display`), SQL quoting (`sql`), URLs, incidents, time formatting.
//! - [`clock`]: the one wall clock and the one source of unguessable ids.
//! - [`config`]: `chops.toml` schema, `validate/` (one validator per section, every problem at
//!   once), `Secret`, the limits of one answer; secrets from the environment / `.env` (`env`:
//!   the working directory's `.env` only, a variable's name echoed only when it looks like one).
//! - [`metrics`]: the Prometheus families (prometheus-client).
//! - [`store`]: SQLite on its own thread: offers, confirmations, locks, incidents; the audit as a
//!   SHA-256 hash chain (`audit`), the claims of running actions as OS file locks (`claim`).
//! - [`clickhouse`] and [`keeper`]: adapters. Per-replica HTTP clients over one capped transport
//!   (`clickhouse/capped.rs`); the four-letter-word TCP client. Failures become
//!   [`domain::ProbeError`].
//! - [`checks`]: one file per check (keeper, replicas, lag, blockers, backups, settings), each its
//!   SQL as named constants, its probe (`run`) and a pure `evaluate`; `checks/mod.rs` is the runner
//!   (`checks::Cluster` runs them concurrently, each under its own deadline); `discover` resolves
//!   a seed's replicas, `flight` shares one round among concurrent callers.
//! - [`render`]: the card as terminal text or JSON; incident headers.
//! - [`actions`]: remediation. `actions/mod.rs` is the flow (request → confirm → lock → run →
//!   end); one file per action (`backup`, `restart_replica`), finishing the records of actions
//!   whose process is gone in `reconcile`, the live pre-checks the guard reads in `snapshot`,
//!   card buttons in `offer`.
//! - [`app`]: the state `chops serve` shares (config, store, rounds, where incidents go — the
//!   `Speak` trait —, health).
//! - [`automation`]: speaking first: the backup-failure watcher, Alertmanager intake, the
//!   pre-flight schedule, the incident poster (outbox).
//! - [`http`]: `/livez`, `/readyz`, `/metrics`, `POST /alertmanager`, on bounded connections;
//!   `throttle` slows peers that keep failing the token.
//! - [`discord`]: the bot — `commands/` (poise adapters, one file per group), `buttons`,
//!   `render` (card → embed), `speak` (incident posts).
//! - [`serve`]: the composition root of `chops serve`: builds the [`app::App`] and starts the parts.
//! - [`logging`]: the binary's log format (one record, one line; colour only on a terminal).
//! - [`cli`]: one file per subcommand group (check, act, audit, explain, serve, register,
//!   healthcheck, config).
//!
//! The test kit (local cluster, fake Discord, hostile servers) is the `testkit` dev-crate.

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
pub mod logging;
pub mod metrics;
pub mod render;
pub mod serve;
pub mod store;
