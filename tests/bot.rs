//! The real serenity/poise bot against the fake Discord (REST + gateway on loopback) and the real
//! local cluster: defer then edit with the card, refusals, autocomplete, registration.

mod common;
use std::time::Duration;

use chops::config::{Loaded, Secret};
use common::discord::*;
use common::*;
use serde_json::Value;

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
        let text = with_discord(&text, &fake, "");
        let loaded = Loaded::parse("bot.toml", &text).expect("bot config");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = chops::discord::serve(loaded, Secret::new("fake-token"), shutdown).await
            {
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

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
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
        embed_of(&e)["title"]
            .as_str()
            .unwrap()
            .contains("local · HEALTHY · replicas check"),
        "{}",
        e.body
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_errors_are_short_and_ephemeral() {
    let c = shared();
    let bot = Bot::start(&c.config).await;
    let cases: Vec<(&str, Vec<(&str, &str)>, u64, String)> = vec![
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
        let id = bot.invoke(cmd, &opts, channel);
        let cb = bot.fake.callback(id, WAIT).await;
        assert_eq!(cb.body["type"], 4, "{}", cb.body);
        assert_eq!(cb.body["data"]["flags"], 64, "ephemeral: {}", cb.body);
        assert_eq!(cb.body["data"]["content"], want);
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
        ("chops", vec!["help"]),
    ];
    let got: Vec<(&str, Vec<&str>)> = shape
        .iter()
        .map(|(n, o)| (n.as_str(), o.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(got, want);
    for c in cmds {
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
    assert_eq!(bot.fake.callback(id, WAIT).await.body["type"], 5);
    let edit = bot.fake.edited_original(id, WAIT).await;
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
        &with_discord(&text, &fake, "token_env = \"CHOPS_TEST_DISCORD_TOKEN\"\n"),
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
    // SAFETY: signals the child this test spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
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
    assert_eq!(out.stdout.trim(), "registered 7 commands in 1 guild(s)");
    let reg = fake.registered(WAIT).await;
    assert_eq!(
        reg.path,
        format!("/api/v10/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    );
    assert_eq!(reg.body.as_array().unwrap().len(), 7);
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
    assert_eq!(bot.fake.callback(id, WAIT).await.body["type"], 5);
    let edit = bot.fake.edited_original(id, WAIT).await;
    assert!(
        embed_of(&edit)["title"]
            .as_str()
            .unwrap()
            .contains("keeper check"),
        "{}",
        edit.body
    );
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
