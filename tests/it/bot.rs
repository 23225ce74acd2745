//! The real serenity/poise bot against the fake Discord (REST + gateway on loopback) and the real
//! local cluster: defer then edit with the card, refusals, autocomplete, registration.

use std::time::Duration;

use crate::common::*;
use chops::config::{Loaded, Secret};
use serde_json::Value;
use testkit::discord::*;

const WAIT: Duration = Duration::from_secs(20);

struct Bot {
    fake: FakeDiscord,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// `config` plus a `[discord]` table that points the bot at `fake` (and `extra` keys).
fn with_discord(config: &str, fake: &FakeDiscord, extra: &str) -> String {
    format!(
        "{config}\n[discord]\nguild_ids = [{GUILD_ID}]\nproxy = \"{}\"\n{extra}",
        fake.rest_url
    )
}

/// The bot alone (no HTTP server, watcher or scheduler) on `config` with a fake token, until
/// `shutdown` completes: what `chops serve` runs of the bot.
async fn bot_alone(
    config: Loaded,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), chops::discord::BotError> {
    let store = chops::store::Store::open(&config.store_path())?;
    let speaker = std::sync::Arc::new(chops::discord::speak::Speaker::discord());
    let app = chops::app::App::new(std::sync::Arc::new(config), store, speaker.clone());
    chops::discord::bot(app, Secret::new("fake-token"), speaker, shutdown).await
}

impl Bot {
    /// Start the bot on `cluster_config` (a generated local-cluster config), allowed in CHANNEL_ID.
    async fn start(cluster_config: &str) -> Bot {
        Bot::start_on(FakeDiscord::start().await, cluster_config).await
    }

    async fn start_on(fake: FakeDiscord, cluster_config: &str) -> Bot {
        let text = std::fs::read_to_string(cluster_config).unwrap().replacen(
            "[clusters.local]\n",
            &format!("[clusters.local]\nchannels = [{CHANNEL_ID}]\n"),
            1,
        );
        // Each bot its own store, next to its config (never in the working directory).
        let dir = std::path::Path::new(cluster_config)
            .parent()
            .unwrap()
            .to_path_buf();
        static BOTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = BOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let store = dir.join(format!("bot-{}-{n}.db", std::process::id()));
        let text = format!("{text}\n[store]\npath = \"{}\"\n", store.display());
        let text = with_discord(&text, &fake, "");
        let loaded = Loaded::parse("bot.toml", &text).expect("bot config");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = bot_alone(loaded, shutdown).await {
                panic!("bot failed: {e}");
            }
        });
        fake.registered(WAIT).await;
        Bot {
            fake,
            stop: Some(tx),
            task,
        }
    }

    /// Stop the bot; every body it sent must be one Discord's OpenAPI spec accepts, and every
    /// request one the permissions of the invite URL allow.
    async fn stop(mut self) {
        self.fake.assert_bodies_valid();
        let needed = self.fake.permissions_needed();
        let granted = chops::discord::PERMISSIONS.bits();
        assert_eq!(
            needed & !granted,
            0,
            "needed {needed:#x}, granted {granted:#x}"
        );
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }

    /// The edited answer to interaction `id`, after asserting it was deferred first (type 5).
    async fn deferred(&self, id: u64) -> Recorded {
        assert_eq!(self.fake.callback(id, WAIT).await.body["type"], 5);
        self.fake.edited_original(id, WAIT).await
    }

    /// Invoke `/command` with options; returns the interaction id.
    fn invoke(&self, command: &str, opts: &[(&str, &str)], channel: u64) -> u64 {
        let id = self.fake.next_id();
        self.fake
            .dispatch(interaction(id, 2, channel, command, options(opts, None)));
        id
    }
}

fn embed_of(edit: &Recorded) -> &Value {
    &edit.body["embeds"][0]
}

/// The title of a message's first embed ("" when there is none).
fn title(edit: &Recorded) -> &str {
    embed_of(edit)["title"].as_str().unwrap_or_default()
}

/// The description of a message's first embed ("" when there is none).
fn description(edit: &Recorded) -> &str {
    embed_of(edit)["description"].as_str().unwrap_or_default()
}

/// The custom id of the button labelled `label` under a message; panics, with the message,
/// when there is none.
fn button(edit: &Recorded, label: &str) -> String {
    buttons(&edit.body)
        .into_iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no {label:?} button: {}", edit.body))
        .1
}

/// A `shop` database with one empty MergeTree table on `url` (something to back up).
fn empty_shop(url: &str) {
    must(url, "CREATE DATABASE shop");
    must(
        url,
        "CREATE TABLE shop.t (x UInt64) ENGINE = MergeTree ORDER BY x",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_check_defers_then_edits_with_the_healthy_card() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    let id = bot.invoke("backup-check", &[("cluster", "local")], CHANNEL_ID);
    let cb = bot.fake.callback(id, WAIT).await;
    assert_eq!(cb.body["type"], 5, "deferred first: {}", cb.body);
    let edit = bot.fake.edited_original(id, WAIT).await;
    assert!(edit.at >= cb.at);
    // Whatever a name or an error says, the message can ping nobody.
    assert_eq!(
        edit.body["allowed_mentions"]["parse"],
        serde_json::json!([]),
        "{}",
        edit.body
    );
    let e = embed_of(&edit);
    assert!(
        e["title"]
            .as_str()
            .unwrap()
            .contains("local · HEALTHY · backup check"),
        "{e:#}"
    );
    assert_eq!(e["color"], 0x2ecc71);
    let names: Vec<&str> = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[..6],
        [
            "✅ Keeper",
            "✅ Replicas",
            "✅ Replication lag",
            "✅ Blocking operations",
            "✅ Recent backups",
            "✅ Backup sync settings"
        ]
    );
    assert!(
        e["footer"]["text"].as_str().unwrap().contains("chops "),
        "{e:#}"
    );
    assert!(e["timestamp"].is_string());

    // The channel's cluster is the default.
    let id = bot.invoke("replicas", &[], CHANNEL_ID);
    let e = bot.fake.edited_original(id, WAIT).await;
    assert!(
        title(&e).contains("local · HEALTHY · replicas check"),
        "{}",
        e.body
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_errors_are_short_and_ephemeral() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    let cases = vec![
        (
            "backup-check",
            vec![("cluster", "nope")],
            CHANNEL_ID,
            "unknown cluster 'nope' (configured: local)".into(),
        ),
        (
            "lag",
            vec![],
            OTHER_CHANNEL_ID,
            format!("This cluster can be checked only in <#{CHANNEL_ID}>."),
        ),
    ];
    for (cmd, opts, channel, want) in cases {
        assert_private(&answer(&bot, cmd, &opts, channel, &[]).await, &want);
    }
    assert!(
        !bot.fake.requests().iter().any(|r| r.method == "PATCH"),
        "nothing was run or posted"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocomplete_offers_configured_clusters() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    for (typed, want) in [("lo", vec!["local"]), ("", vec!["local"]), ("x", vec![])] {
        let id = bot.fake.next_id();
        bot.fake.dispatch(interaction(
            id,
            4,
            CHANNEL_ID,
            "backup-check",
            options(&[("cluster", typed)], Some("cluster")),
        ));
        let cb = bot.fake.callback(id, WAIT).await;
        assert_eq!(cb.body["type"], 8, "{}", cb.body);
        let names: Vec<&str> = cb.body["data"]["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, want, "typed {typed:?}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_sends_every_command_with_its_options() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    let reg = bot.fake.registered(WAIT).await;
    assert_eq!(
        reg.path,
        format!("/api/v10/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    );
    let cmds = reg.body.as_array().unwrap();
    let shape: Vec<(String, Vec<String>)> = cmds
        .iter()
        .map(|c| {
            let opts = c["options"]
                .as_array()
                .map(|o| {
                    o.iter()
                        .map(|o| o["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (c["name"].as_str().unwrap().to_string(), opts)
        })
        .collect();
    let want: Vec<(&str, Vec<&str>)> = vec![
        ("backup-check", vec!["cluster"]),
        ("keeper", vec!["cluster"]),
        ("replicas", vec!["cluster"]),
        ("lag", vec!["cluster", "min_delay"]),
        ("blockers", vec!["cluster"]),
        ("backups", vec!["cluster", "limit"]),
        ("settings", vec!["cluster"]),
        // Discord wants required options first.
        (
            "backup-replica",
            vec!["replica", "cluster", "databases", "dry_run"],
        ),
        (
            "restart-replica",
            vec!["replica", "table", "cluster", "dry_run"],
        ),
        ("audit", vec!["cluster", "limit"]),
        ("explain", vec!["error", "public"]),
        ("Explain this error", vec![]),
        ("chops", vec!["help"]),
    ];
    let got: Vec<(&str, Vec<&str>)> = shape
        .iter()
        .map(|(n, o)| (n.as_str(), o.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(got, want);
    // Message commands (type 3) have no description; every slash command has help text.
    for c in cmds.iter().filter(|c| c["type"] != 3) {
        assert!(
            !c["description"].as_str().unwrap_or("").is_empty(),
            "help text for {}",
            c["name"]
        );
    }
    let cluster_opt = &cmds[0]["options"][0];
    assert_eq!(cluster_opt["autocomplete"], true);
    assert_eq!(cluster_opt["required"], false);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_stopped_puts_keeper_first_in_the_embed() {
    let lc = LocalCluster::start(3).expect("cluster");
    lc.stop_keeper();
    let bot = Bot::start(lc.config_path.to_str().unwrap()).await;
    let id = bot.invoke("backup-check", &[], CHANNEL_ID);
    let edit = bot.deferred(id).await;
    let e = embed_of(&edit);
    assert!(e["title"].as_str().unwrap().contains("FAILING"), "{e:#}");
    assert_eq!(e["color"], 0xe74c3c);
    let d = e["description"].as_str().unwrap();
    assert!(
        d.starts_with("**Most likely: Keeper unavailable or unhealthy**"),
        "{d}"
    );
    assert!(
        d.contains(&format!(
            "Keeper {}: down (connection refused)",
            lc.keeper_addr
        )),
        "{d}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_until_sigterm_and_never_logs_the_token() {
    let c = shared();
    let fake = FakeDiscord::start().await;
    let dir = scratch("serve");
    let text = std::fs::read_to_string(&c.config).unwrap();
    let cfg = write_config(
        &dir,
        "serve.toml",
        &with_discord(
            // Port 0: tests run in parallel, the default port is not theirs.
            &format!("{text}\n[http]\nlisten = \"127.0.0.1:0\"\n"),
            &fake,
            "token_env = \"CHOPS_TEST_DISCORD_TOKEN\"\n",
        ),
    );
    let token = "MTIz.fake-token-never-print-me";
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chops"))
        .args(["--config", &cfg, "serve"])
        .env("CHOPS_TEST_DISCORD_TOKEN", token)
        .env("CHOPS_LOG", "trace")
        .current_dir(&dir)
        // Files, not pipes: trace logs would fill a pipe nobody reads yet and stall the bot.
        .stdout(std::fs::File::create(dir.join("serve.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("serve.err")).unwrap())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    fake.registered(WAIT).await;
    let id = fake.next_id();
    fake.dispatch(interaction(id, 2, CHANNEL_ID, "keeper", options(&[], None)));
    let answered = tokio::time::timeout(Duration::from_secs(10), fake.edited_original(id, WAIT))
        .await
        .is_ok();
    let child = guard.0.take().unwrap();
    testkit::localcluster::terminate(child.id() as i32);
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait()
    })
    .await
    .unwrap()
    .unwrap();
    let logs = std::fs::read_to_string(dir.join("serve.out")).unwrap()
        + &std::fs::read_to_string(dir.join("serve.err")).unwrap();
    let seen: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        answered,
        "no answer to /keeper; requests {seen:?}; logs:\n{}",
        logs.lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(status.success(), "exit {status:?}");
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(
        !logs.contains("fake-token-never-print-me"),
        "the token leaked into the logs"
    );
}

#[test]
fn serve_without_a_token_is_one_clear_line() {
    let c = shared();
    let out = chops(&["--config", &c.config, "serve"], &[("DISCORD_TOKEN", "")]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stderr.trim(), "chops: `discord.token_env` names DISCORD_TOKEN, which is not set in the environment or .env");
}

/// Kills the child process by its PID if the test fails before stopping it.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_commands_cli_registers_in_each_guild() {
    let c = shared();
    let fake = FakeDiscord::start().await;
    let dir = scratch("register");
    let text = std::fs::read_to_string(&c.config).unwrap();
    let cfg = write_config(&dir, "reg.toml", &with_discord(&text, &fake, ""));
    let out = tokio::task::spawn_blocking(move || {
        chops(
            &["--config", &cfg, "register-commands"],
            &[("DISCORD_TOKEN", "fake-token")],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "registered 13 commands in 1 guild(s)");
    let reg = fake.registered(WAIT).await;
    assert_eq!(
        reg.path,
        format!("/api/v10/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    );
    assert_eq!(reg.body.as_array().unwrap().len(), 13);
    fake.assert_bodies_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_answer_with_a_reference() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    bot.fake.fail_edits(true);
    let id = bot.invoke("keeper", &[], CHANNEL_ID);
    let followup = bot
        .fake
        .wait_for("the error follow-up", WAIT, |r| {
            r.method == "POST" && r.path == format!("/api/v10/webhooks/{APP_ID}/tok-{id}")
        })
        .await;
    let text = followup.body["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.starts_with("internal error, reference "),
        "{}",
        followup.body
    );
    assert!(
        !text.contains("fake failure"),
        "the detail goes to the log, not to the user"
    );
    assert_eq!(followup.body["flags"], 64, "ephemeral");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_does_not_stop_the_bot() {
    let c = shared();
    let fake = FakeDiscord::start().await;
    fake.fail_registration(true);
    let bot = Bot::start_on(fake, &c.config).await;
    let id = bot.invoke("keeper", &[], CHANNEL_ID);
    let edit = bot.deferred(id).await;
    assert!(title(&edit).contains("keeper check"), "{}", edit.body);
    bot.stop().await;
}

/// DMs and guilds outside `guild_ids` get one short refusal, before any config lookup: no cluster
/// name, no secret variable, nothing run. Autocomplete there offers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_and_foreign_guild_are_refused_before_anything_else() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    let refusal = "chops is not enabled here. Use it in a channel of your team's server.";
    for place in [None, Some(GUILD_ID + 1)] {
        for (cmd, opts) in [
            ("backup-check", vec![]),
            ("lag", vec![("cluster", "nope")]),
            ("keeper", vec![("cluster", "local")]),
        ] {
            let id = bot.fake.next_id();
            bot.fake.dispatch(elsewhere(
                interaction(id, 2, OTHER_CHANNEL_ID, cmd, options(&opts, None)),
                place,
            ));
            let cb = bot.fake.callback(id, WAIT).await;
            assert_eq!(cb.body["type"], 4, "{place:?} {cmd}: {}", cb.body);
            assert_eq!(cb.body["data"]["flags"], 64, "ephemeral: {}", cb.body);
            assert_eq!(cb.body["data"]["content"], refusal, "{place:?} {cmd}");
            assert_eq!(
                cb.body["data"]["allowed_mentions"]["parse"],
                serde_json::json!([])
            );
            assert!(
                !cb.body.to_string().contains("local"),
                "no cluster name: {}",
                cb.body
            );
        }
        let id = bot.fake.next_id();
        bot.fake.dispatch(elsewhere(
            interaction(
                id,
                4,
                OTHER_CHANNEL_ID,
                "backup-check",
                options(&[("cluster", "")], Some("cluster")),
            ),
            place,
        ));
        let cb = bot.fake.callback(id, WAIT).await;
        assert_eq!(cb.body["type"], 8, "{}", cb.body);
        assert_eq!(
            cb.body["data"]["choices"],
            serde_json::json!([]),
            "{}",
            cb.body
        );
    }
    assert!(
        !bot.fake.requests().iter().any(|r| r.method == "PATCH"),
        "nothing was run or posted"
    );
    bot.stop().await;
}

// ---- Actions from Discord: buttons, preview, confirm, refusals -----------------------------

const ROLE: u64 = 900_000_000_000_000_101;
const APPROVER: u64 = 900_000_000_000_000_102;
const OTHER_USER: u64 = 900_000_000_000_000_103;

/// The local cluster's config with `[clusters.local.actions]` = `actions`, as a new file.
fn with_actions(lc: &LocalCluster, actions: &str) -> String {
    let text = std::fs::read_to_string(&lc.config_path).unwrap();
    let path = lc.dir.join("actions.toml");
    std::fs::write(
        &path,
        format!("{text}\n[clusters.local.actions]\n{actions}\n"),
    )
    .unwrap();
    path.display().to_string()
}

/// The store of the bot started last on `lc` (each bot has its own file in the cluster's dir,
/// `bot-<pid>-<n>.db`, numbered in start order). By number, not by modification time: a store
/// closed after the next bot started is written last (its WAL is checkpointed on close).
fn bot_store(lc: &LocalCluster) -> chops::store::Store {
    let number = |p: &std::path::Path| -> Option<u64> {
        let stem = p.file_stem()?.to_str()?.strip_prefix("bot-")?;
        stem.rsplit('-').next()?.parse().ok()
    };
    let newest = std::fs::read_dir(&lc.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .filter_map(|p| Some((number(&p)?, p)))
        .max_by_key(|(n, _)| *n)
        .expect("a bot store")
        .1;
    chops::store::Store::open(&newest).unwrap()
}

impl Bot {
    fn click(&self, custom_id: &str, message: u64, user: u64, roles: &[u64]) -> u64 {
        let id = self.fake.next_id();
        self.fake
            .dispatch(click(id, custom_id, message, user, roles));
        id
    }

    fn invoke_as(&self, command: &str, opts: &[(&str, &str)], roles: &[u64]) -> u64 {
        let id = self.fake.next_id();
        let v = interaction(id, 2, CHANNEL_ID, command, options(opts, None));
        self.fake.dispatch(as_member(v, USER_ID, roles));
        id
    }

    /// The next edit of channel message `message` whose embed title starts with `prefix`.
    async fn message_edit(&self, message: u64, prefix: &str) -> Recorded {
        let path = format!("/api/v10/channels/{CHANNEL_ID}/messages/{message}");
        let prefix = prefix.to_string();
        self.fake
            .wait_for(
                &format!("edit of {message} titled {prefix}"),
                WAIT,
                move |r| {
                    r.method == "PATCH"
                        && r.path == path
                        && r.body["embeds"][0]["title"]
                            .as_str()
                            .is_some_and(|t| t.starts_with(&prefix))
                },
            )
            .await
    }

    /// The ephemeral follow-up answer to interaction `id`.
    async fn followup(&self, id: u64) -> Recorded {
        let path = format!("/api/v10/webhooks/{APP_ID}/tok-{id}");
        self.fake
            .wait_for(&format!("follow-up of {id}"), WAIT, move |r| {
                r.method == "POST" && r.path == path
            })
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_button_preview_confirm_runs_one_backup_and_audits_it() {
    let lc = LocalCluster::start(3).expect("cluster");
    empty_shop(&lc.urls[0]);
    // Keeper down: the card suggests per-replica backups, each a button.
    lc.stop_keeper();
    let cfg = with_actions(&lc, &format!("backup_roles = [{ROLE}]\ncooldown_secs = 0"));
    let bot = Bot::start(&cfg).await;
    let id = bot.invoke_as("backup-check", &[], &[ROLE]);
    let card = bot.fake.edited_original(id, WAIT).await;
    let offer = button(&card, "Back up r1");
    assert!(offer.starts_with("chops:offer:") && offer.len() <= 100);

    // Click → deferred, then the preview replaces the answer: exact SQL, checks, buttons.
    let c1 = bot.click(&offer, 7001, USER_ID, &[ROLE]);
    let preview = bot.deferred(c1).await;
    let e = &preview.body["embeds"][0];
    assert!(
        e["title"]
            .as_str()
            .unwrap()
            .starts_with("Preview · Back up r1 · local"),
        "{e:#}"
    );
    let d = e["description"].as_str().unwrap();
    assert!(
        d.contains("```sql\nBACKUP DATABASE `shop` TO Disk('backups', 'chops-local-r1-"),
        "{d}"
    );
    assert!(
        d.contains("✅ disk 'backups' exists on r1")
            && d.contains(&format!("Only <@{USER_ID}> can confirm")),
        "{d}"
    );
    assert_eq!(
        preview.body["allowed_mentions"]["parse"],
        serde_json::json!([])
    );
    let confirm = button(&preview, "Confirm");

    // Someone else's click is refused privately; the requester's runs it.
    let other = bot.click(&confirm, 7002, OTHER_USER, &[ROLE]);
    assert_eq!(bot.fake.callback(other, WAIT).await.body["type"], 6);
    let f = bot.followup(other).await;
    assert_eq!(
        f.body["content"],
        format!("Only <@{USER_ID}> can confirm or cancel this.")
    );
    assert_eq!(f.body["flags"], 64);
    let mine = bot.click(&confirm, 7002, USER_ID, &[ROLE]);
    assert_eq!(bot.fake.callback(mine, WAIT).await.body["type"], 6);
    let done = bot.message_edit(7002, "succeeded").await;
    // Progress was shown on the same message before the outcome.
    let running = bot.message_edit(7002, "Running · Back up r1").await;
    assert!(running.at <= done.at);
    let d = description(&done);
    assert!(d.contains("backup created on r1: BACKUP\\_CREATED"), "{d}");
    assert_eq!(
        done.body["components"],
        serde_json::json!([]),
        "buttons gone"
    );
    let sent = operator_statements(&lc, 1);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("BACKUP DATABASE `shop`"));
    assert!(operator_statements(&lc, 2).is_empty() && operator_statements(&lc, 3).is_empty());

    // A replayed click after success: refused with the reason, nothing sent.
    let again = bot.click(&confirm, 7002, USER_ID, &[ROLE]);
    assert_eq!(
        bot.followup(again).await.body["content"],
        "This action is already done."
    );
    assert_eq!(operator_statements(&lc, 1).len(), 1);

    // The audit: intent before outcome, the requester, the place.
    let store = bot_store(&lc);
    let rows = store.audit_rows(Some("local"), 50).await.unwrap();
    let decisions: Vec<&str> = rows.iter().map(|r| r.row.decision.as_str()).collect();
    assert_eq!(
        decisions,
        ["succeeded", "executing", "confirmed", "requested"],
        "{rows:#?}"
    );
    assert_eq!(rows[0].row.requester_id, Some(USER_ID));
    assert!(rows[0]
        .row
        .query_id
        .as_deref()
        .unwrap()
        .starts_with("chops-"));
    assert!(rows[0]
        .row
        .place
        .starts_with(&format!("guild:{GUILD_ID}/channel:{CHANNEL_ID}")));

    // A dry run from the command: the whole flow, audited, nothing sent.
    let id = bot.fake.next_id();
    let opts = serde_json::json!([
        {"name": "replica", "type": 3, "value": "r1"},
        {"name": "dry_run", "type": 5, "value": true},
    ]);
    bot.fake.dispatch(as_member(
        interaction(id, 2, CHANNEL_ID, "backup-replica", opts),
        USER_ID,
        &[ROLE],
    ));
    let preview = bot.fake.edited_original(id, WAIT).await;
    let d = description(&preview);
    assert!(
        d.contains("**Dry run**: nothing that writes will be sent."),
        "{d}"
    );
    let confirm = button(&preview, "Confirm");
    bot.click(&confirm, 7003, USER_ID, &[ROLE]);
    let done = bot.message_edit(7003, "dry run").await;
    let d = description(&done);
    assert!(d.contains("would run on r1"), "{d}");
    assert_eq!(
        operator_statements(&lc, 1).len(),
        1,
        "a dry run sends nothing"
    );
    bot.fake.assert_bodies_valid();
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_no_role_no_actions_dm_and_expiry() {
    let lc = LocalCluster::start(3).expect("cluster");
    empty_shop(&lc.urls[0]);
    lc.stop_keeper();
    // Default deny: without a policy there are no buttons, and the footer says why.
    let bot = Bot::start(lc.config_path.to_str().unwrap()).await;
    let id = bot.invoke_as("backup-check", &[], &[ROLE]);
    let card = bot.fake.edited_original(id, WAIT).await;
    assert!(buttons(&card.body).is_empty(), "{}", card.body);
    assert!(card.body["embeds"][0]["footer"]["text"]
        .as_str()
        .unwrap()
        .ends_with("actions are not enabled for local"));
    let id = bot.invoke_as("backup-replica", &[("replica", "r1")], &[ROLE]);
    let cb = bot.fake.callback(id, WAIT).await;
    assert_eq!(cb.body["data"]["flags"], 64);
    assert!(
        cb.body["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Actions are not enabled for local"),
        "{}",
        cb.body
    );
    bot.stop().await;

    let cfg = with_actions(
        &lc,
        &format!("backup_roles = [{ROLE}]\nconfirm_ttl_secs = 10"),
    );
    let bot = Bot::start(&cfg).await;
    // No role: an immediate private refusal, audited.
    let a = answer(
        &bot,
        "backup-replica",
        &[("replica", "r1")],
        CHANNEL_ID,
        &[],
    )
    .await;
    assert_private(
        &a,
        "You may not run backup actions here: ask someone with a backup role.",
    );
    // Unknown names are refused before any SQL exists.
    let id = bot.invoke_as(
        "backup-replica",
        &[("replica", "r1"), ("databases", "nope")],
        &[ROLE],
    );
    let e = bot.deferred(id).await;
    assert_eq!(e.body["content"], "Not now: r1 has no database nope.");
    // A click from a DM is refused like a command.
    let dm = bot.fake.next_id();
    bot.fake.dispatch(elsewhere(
        click(dm, "chops:confirm:x", 1, USER_ID, &[ROLE]),
        None,
    ));
    let cb = bot.fake.callback(dm, WAIT).await;
    assert_eq!(
        cb.body["data"]["content"],
        "chops is not enabled here. Use it in a channel of your team's server."
    );
    // A preview left alone expires: Confirm then says so and the preview says Expired.
    let id = bot.invoke_as("backup-replica", &[("replica", "r1")], &[ROLE]);
    let preview = bot.fake.edited_original(id, WAIT).await;
    let confirm = button(&preview, "Confirm");
    let conf_id = confirm.trim_start_matches("chops:confirm:").to_string();
    let store = bot_store(&lc);
    store
        .call(move |c| {
            c.execute(
                "UPDATE confirmations SET expires_at = 0 WHERE id = ?1",
                [conf_id],
            )
        })
        .await
        .unwrap();
    let late = bot.click(&confirm, 7101, USER_ID, &[ROLE]);
    assert_eq!(
        bot.followup(late).await.body["content"],
        "This confirmation expired: run it again."
    );
    bot.message_edit(7101, "Expired").await;
    assert!(operator_statements(&lc, 1).is_empty(), "nothing was sent");
    let rows = store.audit_rows(None, 50).await.unwrap();
    let decisions: Vec<&str> = rows.iter().map(|r| r.row.decision.as_str()).collect();
    assert!(
        decisions.contains(&"expired")
            && decisions.iter().filter(|d| **d == "refused").count() == 2,
        "{decisions:?}"
    );
    bot.fake.assert_bodies_valid();
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_two_person_rule_runs_on_that_replica() {
    let lc = LocalCluster::start(3).expect("cluster");
    for url in &lc.urls[1..] {
        replicated_shop(url, &["orders"]);
    }
    let cfg = with_actions(
        &lc,
        &format!("restart_roles = [{ROLE}]\napprover_roles = [{APPROVER}]\ntwo_person = [\"restart\"]\ncooldown_secs = 0"),
    );
    let bot = Bot::start(&cfg).await;
    // The table autocompletes from that replica's system.replicas.
    let ac = bot.fake.next_id();
    bot.fake.dispatch(as_member(
        interaction(
            ac,
            4,
            CHANNEL_ID,
            "restart-replica",
            options(&[("replica", "r2"), ("table", "sh")], Some("table")),
        ),
        USER_ID,
        &[ROLE],
    ));
    let cb = bot.fake.callback(ac, WAIT).await;
    assert_eq!(
        cb.body["data"]["choices"],
        serde_json::json!([{"name": "shop.orders", "value": "shop.orders"}])
    );

    let id = bot.invoke_as(
        "restart-replica",
        &[("replica", "r2"), ("table", "shop.orders")],
        &[ROLE],
    );
    let preview = bot.fake.edited_original(id, WAIT).await;
    let d = description(&preview);
    assert!(
        d.contains("SYSTEM RESTART REPLICA `shop`.`orders`")
            && d.contains("after a member with an approver role approves"),
        "{d}"
    );
    let b = buttons(&preview.body);
    let find = |l: &str| b.iter().find(|(x, _)| x == l).unwrap().1.clone();
    let (confirm, approve) = (find("Confirm"), find("Approve"));
    // Not yet approved; the requester cannot approve; an approver can.
    let c = bot.click(&confirm, 7201, USER_ID, &[ROLE]);
    assert_eq!(
        bot.followup(c).await.body["content"],
        "A second member with an approver role must approve first."
    );
    let a = bot.click(&approve, 7201, USER_ID, &[ROLE]);
    assert_eq!(
        bot.followup(a).await.body["content"],
        "Only members with an approver role can approve."
    );
    let a = bot.click(&approve, 7201, USER_ID, &[ROLE, APPROVER]);
    assert_eq!(
        bot.followup(a).await.body["content"],
        "The requester cannot approve their own action."
    );
    let a = bot.click(&approve, 7201, OTHER_USER, &[APPROVER]);
    assert_eq!(
        bot.followup(a).await.body["content"],
        format!("Approved: <@{USER_ID}> can confirm now.")
    );
    assert!(operator_statements(&lc, 2).is_empty());
    let c = bot.click(&confirm, 7201, USER_ID, &[ROLE]);
    assert_eq!(bot.fake.callback(c, WAIT).await.body["type"], 6);
    let done = bot.message_edit(7201, "succeeded").await;
    let d = description(&done);
    assert!(
        d.contains("shop.orders restarted on r2")
            && d.contains("shop.orders on r2: read-only, queue 0 → "),
        "{d}"
    );
    assert_eq!(
        operator_statements(&lc, 2),
        ["SYSTEM RESTART REPLICA `shop`.`orders`"]
    );
    assert!(operator_statements(&lc, 1).is_empty() && operator_statements(&lc, 3).is_empty());
    bot.fake.assert_bodies_valid();
    bot.stop().await;
}

/// `chops serve` killed (SIGKILL) while a backup it started runs: the next `chops serve` finishes
/// the audit record and puts the final status on the action's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_serve_finishes_its_action_when_started_again() {
    let lc = LocalCluster::start(3).expect("cluster");
    shop(&lc.urls[0], 1_000_000);
    let fake = FakeDiscord::start().await;
    let text = std::fs::read_to_string(with_actions(
        &lc,
        &format!("backup_roles = [{ROLE}]\ncooldown_secs = 0"),
    ))
    .unwrap();
    let store = lc.dir.join("serve.db");
    let cfg = write_config(
        &lc.dir,
        "serve.toml",
        &with_discord(
            &format!(
                "{text}\n[store]\npath = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
                store.display()
            ),
            &fake,
            "token_env = \"CHOPS_TEST_DISCORD_TOKEN\"\n",
        ),
    );
    let serve = |n: u32| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chops"))
            .args(["--config", &cfg, "serve"])
            .env("CHOPS_TEST_DISCORD_TOKEN", "fake-token")
            .stdout(std::fs::File::create(lc.dir.join(format!("serve{n}.out"))).unwrap())
            .stderr(std::fs::File::create(lc.dir.join(format!("serve{n}.err"))).unwrap())
            .spawn()
            .unwrap()
    };
    let mut first = ChildGuard(Some(serve(1)));
    fake.registered(WAIT).await;
    let id = fake.next_id();
    let opts = serde_json::json!([{"name": "replica", "type": 3, "value": "r1"}]);
    fake.dispatch(as_member(
        interaction(id, 2, CHANNEL_ID, "backup-replica", opts),
        USER_ID,
        &[ROLE],
    ));
    let preview = fake.edited_original(id, WAIT).await;
    let confirm = button(&preview, "Confirm");
    let click_id = fake.next_id();
    fake.dispatch(click(click_id, &confirm, 7401, USER_ID, &[ROLE]));
    let start = std::time::Instant::now();
    while operator_statements(&lc, 1).is_empty() {
        assert!(start.elapsed() < WAIT, "the backup was never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL, by its own PID: no chance to write the outcome.
    let mut child = first.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let rows = chops::store::Store::open(&store)
        .unwrap()
        .audit_rows(None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].row.decision, "executing", "{rows:#?}");

    let _second = ChildGuard(Some(serve(2)));
    let done = fake
        .wait_for("the reconciled outcome", WAIT, |r| {
            r.method == "PATCH"
                && r.path
                    .starts_with(&format!("/api/v10/channels/{CHANNEL_ID}/messages/"))
                && r.body["embeds"][0]["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("succeeded"))
        })
        .await;
    let d = description(&done);
    assert!(
        d.contains("after a restart of chops: backup created on r1"),
        "{d}"
    );
    let rows = chops::store::Store::open(&store)
        .unwrap()
        .audit_rows(None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].row.decision, "succeeded", "{rows:#?}");
    assert_eq!(operator_statements(&lc, 1).len(), 1, "not sent twice");
    fake.assert_bodies_valid();
}

/// `/explain` answers privately with the explained error (snapshot); the message command
/// "Explain this error" explains a message's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_answers_privately_and_from_a_message() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    let text = "Code: 655. DB::Exception: Failed to sync backup or restore: Got error from host node2:9000: Code: 999. Coordination::Exception: Session expired. (KEEPER_EXCEPTION) (version 24.12.1.1)";
    let id = bot.invoke("explain", &[("error", text)], CHANNEL_ID);
    let cb = bot.fake.callback(id, WAIT).await;
    assert_eq!(cb.body["type"], 4, "{}", cb.body);
    assert_eq!(cb.body["data"]["flags"], 64, "ephemeral by default");
    let mut embed = cb.body["data"]["embeds"][0].clone();
    embed["footer"]["text"] = embed["footer"]["text"]
        .as_str()
        .unwrap()
        .replace(env!("CARGO_PKG_VERSION"), "X.Y.Z")
        .into();
    insta::assert_json_snapshot!("explain_embed", embed);

    // Right-click → Apps → Explain this error, on another bot's message.
    let id = bot.fake.next_id();
    let mut v = interaction(
        id,
        2,
        CHANNEL_ID,
        "Explain this error",
        serde_json::json!([]),
    );
    let msg = message_json(
        555,
        CHANNEL_ID,
        &serde_json::json!({"content": "backup failed: Code: 598. DB::Exception: Backup Disk('backups', 'daily') already exists. (BACKUP_ALREADY_EXISTS)"}),
    );
    v["data"] = serde_json::json!({
        "id": "910000000000000001", "name": "Explain this error", "type": 3, "target_id": "555",
        "resolved": {"messages": {"555": msg}},
    });
    bot.fake.dispatch(v);
    let cb = bot.fake.callback(id, WAIT).await;
    assert_eq!(cb.body["data"]["flags"], 64);
    let d = cb.body["data"]["embeds"][0]["description"]
        .as_str()
        .unwrap();
    assert!(d.starts_with("**name\\_reuse**"), "{d}");
    bot.stop().await;
}

/// Lines chops' own account (`default`) left in each replica's query log.
fn probe_counts(lc: &LocalCluster) -> Vec<usize> {
    (1..=lc.urls.len())
        .map(|i| {
            std::fs::read_to_string(lc.dir.join(format!("r{i}.queries.jsonl")))
                .unwrap_or_default()
                .lines()
                .filter(|l| serde_json::from_str::<Value>(l).unwrap()["user"] == "default")
                .count()
        })
        .collect()
}

/// A storm: 50 `/backup-check`s for one cluster at once run one probe round — the replicas'
/// query logs grow by what one lone `/backup-check` adds, not fifty times it — and all 50 get the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_backup_checks_run_one_probe_round() {
    let _solo = testkit::solo_async().await;
    let lc = LocalCluster::start(3).expect("local cluster");
    let bot = Bot::start(&lc.config_path.display().to_string()).await;
    // A first check teaches chops which queries each replica answers in its batch (a cold round
    // asks the risky ones apart); both rounds measured below are warm.
    let id = bot.invoke("backup-check", &[("cluster", "local")], CHANNEL_ID);
    bot.fake.edited_original(id, WAIT).await;
    tokio::time::sleep(chops::checks::flight::SHARE_FOR + Duration::from_millis(500)).await;
    let before = probe_counts(&lc);
    let ids: Vec<u64> = (0..50)
        .map(|_| bot.invoke("backup-check", &[("cluster", "local")], CHANNEL_ID))
        .collect();
    for id in &ids {
        let edit = bot.fake.edited_original(*id, WAIT).await;
        assert!(
            title(&edit).contains("local"),
            "every caller gets the card: {}",
            edit.body
        );
    }
    let storm: Vec<usize> = probe_counts(&lc)
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();

    // After the short share window, one lone check: what one round costs.
    tokio::time::sleep(chops::checks::flight::SHARE_FOR + Duration::from_millis(500)).await;
    let before = probe_counts(&lc);
    let id = bot.invoke("backup-check", &[("cluster", "local")], CHANNEL_ID);
    bot.fake.edited_original(id, WAIT).await;
    let one: Vec<usize> = probe_counts(&lc)
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    assert!(
        one.iter().all(|n| *n > 0),
        "a round queries every replica: {one:?}"
    );
    // A round's count varies by what the replicas taught about batching (a risky query asked
    // apart when it answered slowly on a loaded machine): at most three more, never a second round.
    assert!(
        storm
            .iter()
            .zip(&one)
            .all(|(s, o)| *s <= o + 3 && *s < 2 * o),
        "50 concurrent checks cost one round per replica: {storm:?} against {one:?}"
    );
    bot.stop().await;
}

// ---- Large failing clusters: Discord's 10 files a message ----------------------------------

/// 12 and 64 replicas, one refusing connections: `/backup-check` answers with the failing card
/// and one file naming every long statement of the steps shown; a card's button opens a preview
/// whose too-long statement is attached; every multipart body is within Discord's limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_cards_of_12_and_64_replicas_attach_one_file() {
    let _solo = testkit::solo_async().await;
    let lc = LocalCluster::start_one_engine(63, 0).expect("63 replicas");
    lc.long_named_databases(70);
    for (reachable, refused) in [(11, 1), (63, 1)] {
        let n = reachable + refused;
        let text = format!(
            "{}\n[clusters.local.actions]\nbackup_roles = [{ROLE}]\n",
            lc.config_with(reachable, refused)
        );
        let cfg = write_config(&lc.dir, &format!("c{n}.toml"), &text);
        let bot = Bot::start(&cfg).await;
        let id = bot.invoke_as("backup-check", &[], &[ROLE]);
        let card = bot.fake.edited_original(id, WAIT).await;
        assert!(title(&card).contains("FAILING"), "{n}: {}", card.body);
        let (pointers, steps) = attached_steps(&card);
        assert!(pointers.len() > 10, "{n}: {pointers:?}");
        assert_eq!(
            pointers, steps,
            "{n}: the file holds the steps the embed names"
        );
        let file = String::from_utf8_lossy(&card.files[0].1).to_string();
        assert!(
            file.contains("BACKUP DATABASE `tenant_database_with_a_long_name_00`"),
            "{n}"
        );

        let offer = button(&card, "Back up r1");
        let c = bot.click(&offer, 7100 + n as u64, USER_ID, &[ROLE]);
        let preview = bot.deferred(c).await;
        let names: Vec<&str> = preview.files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["statement.sql"], "{n}: {}", preview.body);
        assert!(
            String::from_utf8_lossy(&preview.files[0].1)
                .starts_with("BACKUP DATABASE `tenant_database_with_a_long_name_00`"),
            "{n}"
        );
        bot.stop().await;
    }
}

// ---- Guards before anything reaches a replica ------------------------------------------------

/// Every query the replicas of `lc` logged so far (any account).
fn queries(lc: &LocalCluster) -> usize {
    (1..=lc.urls.len())
        .map(|i| {
            std::fs::read_to_string(lc.dir.join(format!("r{i}.queries.jsonl")))
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum()
}

/// The choices of an autocomplete of `command`'s `focused` option, sent by a member holding
/// `roles` in `channel`.
async fn autocomplete(
    bot: &Bot,
    command: &str,
    opts: &[(&str, &str)],
    focused: &str,
    channel: u64,
    roles: &[u64],
) -> Vec<String> {
    let id = bot.fake.next_id();
    let v = interaction(id, 4, channel, command, options(opts, Some(focused)));
    bot.fake.dispatch(as_member(v, USER_ID, roles));
    let cb = bot.fake.callback(id, WAIT).await;
    assert_eq!(cb.body["type"], 8, "{}", cb.body);
    cb.body["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap().to_string())
        .collect()
}

/// The immediate answer to `/command` sent by a member holding `roles` in `channel`.
async fn answer(
    bot: &Bot,
    command: &str,
    opts: &[(&str, &str)],
    channel: u64,
    roles: &[u64],
) -> Value {
    let id = bot.fake.next_id();
    let v = interaction(id, 2, channel, command, options(opts, None));
    bot.fake.dispatch(as_member(v, USER_ID, roles));
    bot.fake.callback(id, WAIT).await.body
}

/// Asserts that `a`, an immediate answer, is a private message (ephemeral) saying `want`.
fn assert_private(a: &Value, want: &str) {
    assert_eq!(a["type"], 4, "{a}");
    assert_eq!(a["data"]["flags"], 64, "ephemeral: {a}");
    assert_eq!(a["data"]["content"], want, "{a}");
}

/// The replica and table autocompletes and `/backup-replica` without databases check the
/// channel and the member's role before anything reaches a replica (they asked it first, and
/// offered a cluster's replica names in any channel, to anyone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_commands_check_channel_and_role_before_asking_a_replica() {
    let lc = LocalCluster::start(1).expect("cluster");
    empty_shop(&lc.urls[0]);
    let roles =
        format!("backup_roles = [{ROLE}]\nrestart_roles = [{ROLE}]\napprover_roles = [{APPROVER}]");
    let bot = Bot::start(&with_actions(&lc, &roles)).await;
    // What the bot asks when it starts (actions left running) is over before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = queries(&lc);
    let table = [("replica", "r1"), ("table", "")];
    for (command, opts, focused, channel, roles) in [
        (
            "restart-replica",
            &[("replica", "")][..],
            "replica",
            OTHER_CHANNEL_ID,
            &[ROLE][..],
        ),
        (
            "restart-replica",
            &[("replica", "")],
            "replica",
            CHANNEL_ID,
            &[],
        ),
        (
            "restart-replica",
            &table,
            "table",
            OTHER_CHANNEL_ID,
            &[ROLE],
        ),
        ("restart-replica", &table, "table", CHANNEL_ID, &[APPROVER]),
        (
            "backup-replica",
            &[("replica", "")],
            "replica",
            CHANNEL_ID,
            &[APPROVER],
        ),
    ] {
        let got = autocomplete(&bot, command, opts, focused, channel, roles).await;
        assert!(
            got.is_empty(),
            "{command} {focused} in {channel} as {roles:?}: {got:?}"
        );
    }
    for (channel, roles, want) in [
        (
            OTHER_CHANNEL_ID,
            &[ROLE][..],
            format!("This cluster can be checked only in <#{CHANNEL_ID}>."),
        ),
        (
            CHANNEL_ID,
            &[],
            "You may not run backup actions here: ask someone with a backup role.".to_string(),
        ),
    ] {
        let a = answer(&bot, "backup-replica", &[("replica", "r1")], channel, roles).await;
        assert_private(&a, &want);
    }
    assert_eq!(queries(&lc), before, "no replica was asked");
    // In the channel, with the role: the replicas are offered and a replica's tables asked for.
    let got = autocomplete(
        &bot,
        "restart-replica",
        &[("replica", "")],
        "replica",
        CHANNEL_ID,
        &[ROLE],
    )
    .await;
    assert_eq!(got, ["r1"]);
    autocomplete(
        &bot,
        "restart-replica",
        &table,
        "table",
        CHANNEL_ID,
        &[ROLE],
    )
    .await;
    assert!(queries(&lc) > before, "the table autocomplete asks r1");
    bot.stop().await;
}

/// `/audit` without a cluster answers the channel's cluster's log, in its channels, to members
/// holding one of its roles (it answered every cluster's log in any channel, to anyone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_guarded_like_the_checks() {
    let c = shared();
    let text = std::fs::read_to_string(&c.config).unwrap();
    let dir = scratch("audit-guard");
    let cfg = write_config(
        &dir,
        "audit.toml",
        &format!("{text}\n[clusters.local.actions]\nbackup_roles = [{ROLE}]\napprover_roles = [{APPROVER}]\n"),
    );
    let bot = Bot::start(&cfg).await;
    let refused = "The audit log needs one of the cluster's action or approver roles ([clusters.NAME.actions]).";
    for (opts, channel, roles, want) in [
        (
            &[][..],
            OTHER_CHANNEL_ID,
            &[ROLE][..],
            format!("This cluster can be checked only in <#{CHANNEL_ID}>."),
        ),
        (
            &[("cluster", "local")],
            OTHER_CHANNEL_ID,
            &[ROLE],
            format!("This cluster can be checked only in <#{CHANNEL_ID}>."),
        ),
        (&[], CHANNEL_ID, &[], refused.to_string()),
        (&[], CHANNEL_ID, &[ROLE + 1000], refused.to_string()),
    ] {
        let a = answer(&bot, "audit", opts, channel, roles).await;
        assert_eq!(a["data"]["content"], want.as_str(), "{a}");
        assert_eq!(a["data"]["flags"], 64, "ephemeral: {a}");
        assert!(
            a["data"]["embeds"].as_array().is_none_or(|e| e.is_empty()),
            "{a}"
        );
    }
    for roles in [&[ROLE][..], &[APPROVER]] {
        let a = answer(&bot, "audit", &[], CHANNEL_ID, roles).await;
        assert_eq!(a["data"]["embeds"][0]["title"], "Audit · local", "{a}");
        assert_eq!(a["data"]["flags"], 64, "ephemeral: {a}");
    }
    bot.stop().await;
}

/// Actions enabled for `chops act` only (`cli_users`, no role): no Discord button under a card,
/// none that no member could use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_users_alone_show_no_buttons() {
    let lc = LocalCluster::start(1).expect("cluster");
    empty_shop(&lc.urls[0]);
    // A replica that refuses connections: the card offers a per-replica backup of r1.
    let text = format!(
        "{}\n[clusters.local.actions]\ncli_users = [\"{}\"]\n",
        lc.config_with(1, 1),
        testkit::os_user()
    );
    let bot = Bot::start(&write_config(&lc.dir, "cli-only.toml", &text)).await;
    let id = bot.invoke_as("backup-check", &[], &[ROLE]);
    let card = bot.fake.edited_original(id, WAIT).await;
    let steps = embed_of(&card)["fields"].to_string();
    assert!(steps.contains("Back up r1 on its own"), "{}", card.body);
    assert_eq!(
        buttons(&card.body),
        Vec::<(String, String)>::new(),
        "{}",
        card.body
    );
    let footer = embed_of(&card)["footer"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        footer.ends_with("no Discord role may run some of these actions on local"),
        "{footer}"
    );
    bot.stop().await;
}
