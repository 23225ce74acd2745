//! The command line: `chops check …` and `chops config check`. Parses, runs, prints, and maps the
//! outcome to an exit code (0 healthy, 1 degraded, 2 failing, 3 usage/config error).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::checks::{Cluster, SetupError};
use crate::config::{self, ConfigError, Loaded};
use crate::discord::{self, BotError};
use crate::domain::{CheckKind, Scope};
use crate::render;

pub const EXIT_USAGE: i32 = 3;
/// `chops act`: the backup was left running past `--follow-secs` (see `chops audit`).
pub const EXIT_STILL_RUNNING: i32 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "chops",
    version,
    about = "Diagnose ClickHouse backup/restore sync failures (code 655) and guide the fix"
)]
pub struct Cli {
    /// Config file [default: $CHOPS_CONFIG, else config/chops.toml]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the checks against a cluster and print the diagnosis card.
    Check {
        /// `backup` runs every check and ranks the causes; the others print one section.
        #[arg(value_enum, default_value_t = What::Backup)]
        what: What,
        /// Cluster name from the config (default: the only one configured).
        #[arg(long)]
        cluster: Option<String>,
        /// Print the card as JSON.
        #[arg(long)]
        json: bool,
        /// Deadline per check and probe in ms, overriding the config (100–60000).
        #[arg(long, value_parser = clap::value_parser!(u64).range(100..=60_000))]
        deadline_ms: Option<u64>,
        /// Colour: auto (only on a terminal), always, never.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
        /// Show why each cause ranks where it does (its score, fact by fact; also in --json).
        #[arg(long)]
        explain_ranking: bool,
    },
    /// Run the bot, the HTTP server (/livez, /readyz, /metrics, /alertmanager), the backup
    /// watcher and the pre-flight schedules until SIGINT/SIGTERM (token from `discord.token_env`).
    Serve {
        /// Do not connect to Discord: incidents are logged, not posted (metrics, webhooks, dry runs).
        #[arg(long)]
        no_discord: bool,
    },
    /// Ask a running `chops serve` whether it is up (for container health checks): exit 0 on a
    /// 2xx answer from the URL, 1 otherwise.
    Healthcheck {
        /// The URL to GET (http only).
        #[arg(long, default_value = "http://127.0.0.1:9187/livez")]
        url: String,
    },
    /// Register the slash commands (in each `discord.guild_ids` guild, else globally) and exit.
    RegisterCommands,
    /// Run a remediation on one replica, guarded like the bot's buttons: policy (`cli_users`),
    /// live preconditions, confirmation, lock, audit, progress.
    Act {
        #[command(subcommand)]
        what: ActCommand,
    },
    /// Classify one error text (a failed BACKUP/RESTORE message, a log line): category, causes,
    /// code, host, meaning, next steps. Exit 3 for an empty text.
    Explain {
        /// The error text, or `-` to read it from stdin.
        text: Option<String>,
        /// Print JSON: category, causes, code, code_name, host, meaning, next_steps.
        #[arg(long)]
        json: bool,
        /// Also run the full card on this cluster, with the text's evidence on it.
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Show the audit log of actions (newest first).
    Audit {
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// Rows to show.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Check the log's hash chain instead: exit 0 "N rows, chain intact", else 2 and the first
        /// row that does not verify.
        #[arg(long)]
        verify: bool,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ActCommand {
    /// BACKUP the replica's databases to the backup disk, without ON CLUSTER coordination.
    Backup {
        #[command(flatten)]
        common: ActArgs,
        /// Databases to back up, comma-separated (default: every user database of the replica).
        #[arg(long, value_delimiter = ',')]
        databases: Vec<String>,
    },
    /// SYSTEM RESTART REPLICA on one replicated table of one replica.
    RestartReplica {
        #[command(flatten)]
        common: ActArgs,
        /// The table as `database.table` (split at the first dot; or give --database).
        #[arg(long)]
        table: String,
        /// The database, when its name contains a dot.
        #[arg(long)]
        database: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ActArgs {
    /// Cluster name from the config (default: the only one configured).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Replica name (as in the card).
    #[arg(long)]
    pub replica: String,
    /// Go through every step and audit it, but send nothing that writes.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask: confirm at once (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Follow a backup this long at most; then leave it running and exit 4 (its end is recorded
    /// by the next `chops act` or start of `chops serve`, see `chops audit`).
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub follow_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config (unknown keys, values, password env vars) and report the exact key that is wrong.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    Backup,
    Keeper,
    Replicas,
    Lag,
    Blockers,
    Backups,
    Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Errors shown to the user as one line, exit code 3.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Bot(#[from] BotError),
    #[error(transparent)]
    Flow(#[from] crate::actions::FlowError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Run(#[from] crate::serve::RunError),
    #[error("{0}")]
    Usage(String),
}

impl UserError {
    /// One line per problem, shown: only a list of config problems spans lines; anything else
    /// (a name typed with a newline in it, too) stays one escaped line.
    fn lines(&self) -> Vec<String> {
        match self {
            UserError::Config(ConfigError::Many(list))
            | UserError::Run(crate::serve::RunError::Config(ConfigError::Many(list))) => list
                .iter()
                .map(|e| crate::domain::display::plain(&e.to_string()))
                .collect(),
            e => vec![crate::domain::display::plain(&e.to_string())],
        }
    }
}

impl What {
    fn scope(self) -> Scope {
        match self {
            What::Backup => Scope::Full,
            What::Keeper => Scope::One(CheckKind::Keeper),
            What::Replicas => Scope::One(CheckKind::Replicas),
            What::Lag => Scope::One(CheckKind::Lag),
            What::Blockers => Scope::One(CheckKind::Blockers),
            What::Backups => Scope::One(CheckKind::Backups),
            What::Settings => Scope::One(CheckKind::Settings),
        }
    }
}

/// Run a parsed command; returns the exit code. Output goes to stdout, errors to stderr.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            // One line per problem, each through the display boundary (config text is untrusted).
            for line in e.lines() {
                eprintln!("chops: {line}");
            }
            EXIT_USAGE
        }
    }
}

async fn execute(cli: Cli) -> Result<i32, UserError> {
    if let Command::Explain {
        text,
        json,
        cluster,
    } = cli.command
    {
        return explain(cli.config, text, json, cluster).await;
    }
    if let Command::Healthcheck { url } = &cli.command {
        return Ok(healthcheck(url).await);
    }
    let path = config::resolve_path(cli.config);
    let loaded = Loaded::load(&path)?;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            loaded.check_secrets(&config::process_env)?;
            if loaded.config.webhook.as_ref().is_some_and(|w| w.enabled) {
                loaded.webhook_token(&config::process_env)?;
            }
            println!(
                "{}: ok (clusters: {})",
                loaded.path,
                loaded.cluster_names().join(", ")
            );
            Ok(0)
        }
        Command::Serve { no_discord } => {
            let no_discord = no_discord || !loaded.config.discord.enabled;
            let token = if no_discord {
                None
            } else {
                Some(loaded.discord_token(&config::process_env)?)
            };
            let opts = crate::serve::Options {
                no_discord,
                token,
                listener: None,
                on_listen: Some(Box::new(|addr| {
                    use std::io::Write;
                    // One line scripts and tests can read (the port may have been 0).
                    println!("chops: listening on http://{addr}");
                    let _ = std::io::stdout().flush();
                })),
            };
            crate::serve::run(loaded, opts, shutdown_signal()).await?;
            Ok(0)
        }
        Command::Healthcheck { .. } => unreachable!("healthcheck runs before the config is loaded"),
        Command::RegisterCommands => {
            let token = loaded.discord_token(&config::process_env)?;
            let http = discord::http(&token, loaded.config.discord.proxy.as_deref());
            let n = discord::register(&http, &loaded.config.discord.guild_ids).await?;
            let scope = if loaded.config.discord.guild_ids.is_empty() {
                "globally".to_string()
            } else {
                format!("in {n} guild(s)")
            };
            println!("registered {} commands {scope}", discord::commands().len());
            Ok(0)
        }
        Command::Act { what } => act(&loaded, what).await,
        Command::Explain { .. } => unreachable!("explain runs before the config is loaded"),
        Command::Audit {
            cluster,
            limit,
            verify,
        } => {
            let store = crate::store::Store::open(&loaded.store_path())?;
            if verify {
                return verify_audit(&store).await;
            }
            let rows = store.audit_rows(cluster.as_deref(), limit as usize).await?;
            print!("{}", render::terminal::audit(&rows));
            Ok(0)
        }
        Command::Check {
            what,
            cluster,
            json,
            color,
            deadline_ms,
            explain_ranking,
        } => {
            let mut target = loaded.target(cluster.as_deref(), &config::process_env)?;
            if let Some(ms) = deadline_ms {
                target.deadline = std::time::Duration::from_millis(ms);
            }
            let cluster = Cluster::connect(&target).await?;
            let card = cluster.check(what.scope()).await;
            if json {
                println!("{}", render::json(&card));
            } else {
                let color = match color {
                    Color::Always => true,
                    Color::Never => false,
                    Color::Auto => {
                        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                    }
                };
                print!(
                    "{}",
                    render::terminal::render_with(&card, color, explain_ranking)
                );
            }
            Ok(card.verdict.exit_code())
        }
    }
}

/// The OS user running `chops act` (the requester in the audit log).
fn os_user() -> String {
    // The real user id's name, not $USER: the environment is the requester's to set.
    passwd_user()
}

/// The name of the real user id in the password database (`uid<N>` if it has none).
fn passwd_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid{uid}"),
    }
}

/// `chops act …`: exit 0 done (or dry run), 1 refused or not confirmed, 2 failed, 3 usage (or
/// the audit log does not verify), 4 still running after `--follow-secs`.
async fn act(loaded: &Loaded, what: ActCommand) -> Result<i32, UserError> {
    let common = match &what {
        ActCommand::Backup { common, .. } | ActCommand::RestartReplica { common, .. } => common,
    };
    let target = loaded.target(common.cluster.as_deref(), &config::process_env)?;
    let operator = loaded.operator(&target.name, &config::process_env).ok();
    // Actions need the operator account itself, not just its name in the config.
    let mut policy = target.policy.clone();
    policy.has_operator = operator.is_some();
    let cluster = Cluster::connect(&target).await?;
    let store = crate::store::Store::open(&loaded.store_path())?;
    if let Err(broken) = store.verify_audit().await? {
        return Err(UserError::Usage(format!(
            "the audit log does not verify ({broken}): actions are refused until it is looked at (chops audit --verify)"
        )));
    }
    let actor = crate::actions::Actor {
        cluster: &cluster,
        operator,
        policy: &policy,
        store: &store,
        follow_every: std::time::Duration::from_millis(500),
        follow_for: Some(std::time::Duration::from_secs(common.follow_secs)),
    };
    // An earlier `chops act` or `chops serve` whose process is gone left an action `executing`:
    // its record is finished alongside this one (a backup looked up by its id, a restart in the
    // query log), never holding this one up.
    let within = crate::actions::RECONCILE_WITHIN;
    let flow = act_flow(&actor, &cluster, &target, &what);
    let (code, recorded) = actor.alongside(within, flow).await;
    for o in recorded {
        eprintln!(
            "chops: action {} left unfinished earlier, now {}: {}",
            o.id,
            o.state_label(),
            crate::domain::display::plain(&o.summary)
        );
    }
    code
}

/// `chops act …` once the actor is set up: the action, its preview, the confirmation, the run.
async fn act_flow(
    actor: &crate::actions::Actor<'_>,
    cluster: &Cluster,
    target: &config::ClusterTarget,
    what: &ActCommand,
) -> Result<i32, UserError> {
    use crate::domain::action::Action;
    let common = match what {
        ActCommand::Backup { common, .. } | ActCommand::RestartReplica { common, .. } => common,
    };
    let action = match what {
        ActCommand::Backup { databases, .. } => {
            let databases = if databases.is_empty() {
                user_databases(cluster, &common.replica).await?
            } else {
                databases.clone()
            };
            Action::BackupReplica {
                cluster: target.name.clone(),
                replica: common.replica.clone(),
                databases,
                disk: target.backup_disk.clone(),
            }
        }
        ActCommand::RestartReplica {
            table, database, ..
        } => {
            let (db, t) = match database {
                Some(db) => (
                    db.clone(),
                    table
                        .strip_prefix(&format!("{db}."))
                        .unwrap_or(table)
                        .to_string(),
                ),
                None => match table.split_once('.') {
                    Some((db, t)) if !db.is_empty() && !t.is_empty() => {
                        (db.to_string(), t.to_string())
                    }
                    _ => {
                        return Err(UserError::Usage(
                            "--table must be database.table (or give --database)".into(),
                        ))
                    }
                },
            };
            Action::RestartReplica {
                cluster: target.name.clone(),
                replica: common.replica.clone(),
                database: db,
                table: t,
            }
        }
    };
    let who = crate::domain::guard::Requester::Cli { user: os_user() };
    let place = format!("cli:{}", os_user());
    let preview = match actor.request(action, &who, &place, common.dry_run).await {
        Ok(p) => p,
        Err(crate::actions::FlowError::Refused(r)) => {
            eprintln!("chops: {}", crate::domain::display::plain(&r.to_string()));
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    eprint!("{}", render::terminal::preview(&preview));
    if !common.yes {
        if !std::io::stdin().is_terminal() {
            // Nothing can confirm it later: no pending confirmation is left behind.
            actor.cancel(&preview.id, &who).await?;
            eprintln!("chops: not confirmed: add --yes to run without a prompt");
            return Ok(1);
        }
        eprint!("Type yes to run it: ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            let _ = actor.cancel(&preview.id, &who).await;
            eprintln!("chops: cancelled");
            return Ok(1);
        }
    }
    let tty = std::io::stderr().is_terminal();
    let mut show = move |line: &str| {
        // A progress line on a terminal; quiet when not a TTY (logs, CI).
        if tty {
            eprint!("\r\x1b[2K{}", crate::domain::display::plain(line));
        }
    };
    let result = actor.confirm(&preview.id, &who, &mut show).await?;
    if tty {
        eprintln!();
    }
    match result {
        Ok(outcome) => {
            print!("{}", render::terminal::outcome(&outcome));
            Ok(match outcome.state {
                crate::store::FinalState::Succeeded | crate::store::FinalState::DryRun => 0,
                crate::store::FinalState::Refused => 1,
                crate::store::FinalState::Failed => 2,
                crate::store::FinalState::Running => EXIT_STILL_RUNNING,
            })
        }
        Err(t) => {
            eprintln!(
                "chops: {}",
                crate::actions::transition_text(t, &preview.requester)
            );
            Ok(1)
        }
    }
}

/// `chops audit --verify`: 0 and "N rows, chain intact", or 2 and the first row that does not
/// verify.
async fn verify_audit(store: &crate::store::Store) -> Result<i32, UserError> {
    match store.verify_audit().await? {
        Ok(intact) => {
            println!("{intact}");
            Ok(0)
        }
        Err(broken) => {
            println!("audit chain broken: {broken}");
            Ok(2)
        }
    }
}

/// The user databases a replica has (what a per-replica backup covers by default).
async fn user_databases(cluster: &Cluster, replica: &str) -> Result<Vec<String>, UserError> {
    use crate::checks::DatabasesError;
    cluster.user_databases(replica).await.map_err(|e| {
        UserError::Usage(match e {
            DatabasesError::NoReplica => {
                format!("no replica '{replica}' in cluster {}", cluster.name)
            }
            DatabasesError::Probe(e) => format!("cannot list the databases of {replica}: {e}"),
            DatabasesError::Empty => format!("{replica} has no user databases: nothing to back up"),
        })
    })
}

/// `chops explain`: pure unless `--cluster` is given (then the config is read and the card run).
async fn explain(
    config_flag: Option<PathBuf>,
    text: Option<String>,
    json: bool,
    cluster: Option<String>,
) -> Result<i32, UserError> {
    use std::io::Read;
    let text = match text.as_deref() {
        Some("-") => {
            let mut buf = Vec::new();
            // Bounded: what explain reads, and a little more to know it was longer.
            std::io::stdin()
                .take((crate::domain::explain::MAX_TEXT + 1) as u64)
                .read_to_end(&mut buf)
                .map_err(|e| UserError::Usage(format!("cannot read stdin: {e}")))?;
            crate::domain::text::from_bytes(&buf)
        }
        Some(t) => t.to_string(),
        None => {
            return Err(UserError::Usage(
                "no error text: pass it as an argument, or `-` to read stdin".into(),
            ))
        }
    };
    if text.trim().is_empty() {
        return Err(UserError::Usage("the error text is empty".into()));
    }
    let e = crate::domain::explain::explain(&text);
    if json {
        let mut v = serde_json::to_value(&e).expect("an explanation serialises");
        if let Some(name) = cluster.as_deref() {
            v["card"] =
                serde_json::from_str(&render::json(&explain_card(config_flag, name, &e).await?))
                    .expect("a card is JSON");
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", render::terminal::explanation(&e, color));
        if let Some(name) = cluster.as_deref() {
            let card = explain_card(config_flag, name, &e).await?;
            print!("\n{}", render::terminal::render(&card, color));
        }
    }
    Ok(0)
}

async fn explain_card(
    config_flag: Option<PathBuf>,
    cluster: &str,
    e: &crate::domain::explain::Explanation,
) -> Result<crate::domain::Card, UserError> {
    let loaded = Loaded::load(&config::resolve_path(config_flag))?;
    let target = loaded.target(Some(cluster), &config::process_env)?;
    let cl = Cluster::connect(&target).await?;
    Ok(cl
        .check_with(Scope::Full, vec![crate::domain::explain::finding(e)])
        .await)
}

/// GET `url` (http only, 3 s): 0 on a 2xx status, 1 otherwise (the reason on stderr).
async fn healthcheck(url: &str) -> i32 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = match crate::domain::url::HttpUrl::parse(url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("chops healthcheck: {e}");
            return EXIT_USAGE;
        }
    };
    let ask = async {
        let mut s = tokio::net::TcpStream::connect((u.host.as_str(), u.port)).await?;
        let path = if u.path.is_empty() { "/" } else { &u.path };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
            u.host, u.port
        );
        s.write_all(req.as_bytes()).await?;
        let mut head = vec![0u8; 64];
        let n = s.read(&mut head).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..n]).into_owned())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), ask).await {
        Ok(Ok(head)) => {
            let status = head.split_whitespace().nth(1).unwrap_or("");
            if status.starts_with('2') && status.len() == 3 {
                0
            } else {
                eprintln!(
                    "chops healthcheck: {url}: status {}",
                    crate::domain::display::plain(status)
                );
                1
            }
        }
        Ok(Err(e)) => {
            eprintln!("chops healthcheck: {url}: {e}");
            1
        }
        Err(_) => {
            eprintln!("chops healthcheck: {url}: no answer within 3 s");
            1
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
