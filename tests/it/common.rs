//! Helpers of the integration tests: the test kit's cluster helpers, and running the `chops`
//! binary built for these tests (its path is known only to this crate's tests), plain and as
//! `chops act` on a local cluster (the `act` and `act_hostile` modules).

pub use testkit::{must, scratch, shared, sql, write_config, LocalCluster};

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Output {
    pub code: i32,
    /// stdout as bytes (to look for raw control characters).
    pub raw: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Asserts the exit code is `code`, showing both streams when it is not.
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, code, "{}\n{}", self.stdout, self.stderr);
    }
}

/// Asserts that `text` (a stream of a run) contains `want`, showing `text` when it does not.
pub fn assert_contains(text: &str, want: &str) {
    assert!(text.contains(want), "{want:?} not in:\n{text}");
}

/// Asserts that `text` (a stream of a run) starts with `want`, showing `text` when it does not.
pub fn assert_starts_with(text: &str, want: &str) {
    assert!(text.starts_with(want), "{want:?} does not start:\n{text}");
}

/// Run the chops binary with `args`, and `env` added (the rest of the environment is kept).
pub fn chops(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chops"));
    cmd.args(args)
        .env_remove("CHOPS_CONFIG")
        .current_dir(std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run chops");
    Output {
        code: out.status.code().unwrap_or(-1),
        raw: out.stdout.clone(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `chops check WHAT --json` against `config`.
pub fn check_json(config: &str, what: &str) -> (i32, serde_json::Value) {
    let out = chops(&["--config", config, "check", what, "--json"], &[]);
    assert!(
        out.stderr.is_empty() || out.code <= 2,
        "stderr: {}",
        out.stderr
    );
    (out.code, out.json())
}

/// Every finding of a card JSON, as (check, severity, summary).
pub fn findings(card: &serde_json::Value) -> Vec<(String, String, String)> {
    card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().iter())
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The first finding of `check` whose summary contains `needle`.
pub fn find<'a>(
    card: &'a serde_json::Value,
    check: &str,
    needle: &str,
) -> Option<&'a serde_json::Value> {
    card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().iter())
        .find(|f| f["check"] == check && f["summary"].as_str().unwrap().contains(needle))
}

/// Appends `[clusters.local.actions]` to a local cluster's config, letting the OS user act (the
/// requester comes from the password database), plus `extra` (say, a cooldown).
pub fn allow_actions(c: &LocalCluster, extra: &str) {
    let mut text = std::fs::read_to_string(&c.config_path).unwrap();
    text.push_str(&format!(
        "\n[clusters.local.actions]\ncli_users = [\"{}\"]\n{extra}\n",
        testkit::os_user()
    ));
    std::fs::write(&c.config_path, text).unwrap();
}

/// `chops --config <c's config> act ARGS`, run to its end ($USER says someone else: it must not
/// matter).
pub fn act(c: &LocalCluster, args: &[&str]) -> Output {
    let config = c.config_path.to_str().unwrap();
    let mut all = vec!["--config", config, "act"];
    all.extend_from_slice(args);
    chops(&all, &[("USER", "mallory")])
}

/// `chops --config <c's config> act ARGS` as a process to start.
pub fn act_command(c: &LocalCluster, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chops"));
    cmd.arg("--config")
        .arg(&c.config_path)
        .arg("act")
        .args(args)
        .env_remove("CHOPS_CONFIG")
        .env("USER", "mallory")
        .current_dir(std::env::temp_dir());
    cmd
}

/// Every query replica `i` (1-based) received, as (user, query).
pub fn queries(c: &LocalCluster, i: usize) -> Vec<(String, String)> {
    let path = c.dir.join(format!("r{i}.queries.jsonl"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["user"].as_str().unwrap().to_string(),
                v["query"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Statements the operator account sent to replica `i`.
pub fn operator_statements(c: &LocalCluster, i: usize) -> Vec<String> {
    queries(c, i)
        .into_iter()
        .filter(|(u, _)| u == "chops_operator")
        .map(|(_, q)| q)
        .collect()
}

/// A `shop` database with one MergeTree table of `rows` rows (something to back up).
pub fn shop(url: &str, rows: u64) {
    must(url, "CREATE DATABASE IF NOT EXISTS shop");
    must(
        url,
        "CREATE TABLE IF NOT EXISTS shop.items (k UInt64, s String) ENGINE = MergeTree ORDER BY k",
    );
    must(
        url,
        &format!(
            "INSERT INTO shop.items SELECT number, randomPrintableASCII(100) FROM numbers({rows})"
        ),
    );
}

/// A `shop` database with one ReplicatedMergeTree table `shop.<t>` per name in `tables` (one
/// Keeper path per table for all replicas; read-only on the ClickHouse-engine gateway).
pub fn replicated_shop(url: &str, tables: &[&str]) {
    must(url, "CREATE DATABASE shop");
    for t in tables {
        must(url, &format!("CREATE TABLE shop.{t} (id UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/shop/{t}', '{{replica}}') ORDER BY id"));
    }
}

/// Waits until replica `i` received a statement from the operator account.
pub fn wait_for_statement(c: &LocalCluster, i: usize) {
    let start = Instant::now();
    while operator_statements(c, i).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "never sent");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `n` backups on `url` are `BACKUP_CREATED`.
pub fn wait_backups_created(url: &str, n: usize) {
    let start = Instant::now();
    let q = "SELECT count() FROM system.backups WHERE status = 'BACKUP_CREATED'";
    while must(url, q).trim().parse::<usize>().unwrap() < n {
        let all = "SELECT id, status, error FROM system.backups";
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no backup ended: {}",
            must(url, all)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` processes of `command()` started `gap` apart (each after its gap), run to their end:
/// exactly one succeeds (exit 0), every other is refused (exit 1).
pub fn race_one_winner(n: usize, gap: Duration, command: impl Fn() -> Command) {
    use std::process::Stdio;
    let children: Vec<std::process::Child> = (0..n)
        .map(|_| {
            std::thread::sleep(gap);
            command()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|ch| ch.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 0 || *c == 1), "{codes:?}");
}

/// `chops serve` in this process (`chops::serve::run`), HTTP on a port-0 listener (the `flood`
/// and `incidents` modules).
pub struct Serve {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Serve {
    /// Run `config` (TOML text) with the webhook token `token.1` in the variable `token.0`; with
    /// `fake`, the bot connects to it (and this waits for its commands), else `--no-discord`.
    pub async fn start(
        config: &str,
        fake: Option<&testkit::discord::FakeDiscord>,
        token: (&str, &str),
    ) -> Serve {
        // SAFETY (edition 2021 API): every test of a module sets the same value.
        std::env::set_var(token.0, token.1);
        let text = match fake {
            Some(f) => format!(
                "{config}\n[discord]\nguild_ids = [{}]\nproxy = \"{}\"\n",
                testkit::discord::GUILD_ID,
                f.rest_url
            ),
            None => config.to_string(),
        };
        let loaded = chops::config::Loaded::parse("serve.toml", &text).expect("serve config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = chops::serve::Options {
            no_discord: fake.is_none(),
            token: fake.map(|_| chops::config::Secret::new("fake-token")),
            listener: Some(listener),
            on_listen: None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            chops::serve::run(loaded, opts, shutdown)
                .await
                .expect("chops serve");
        });
        if let Some(f) = fake {
            f.registered(Duration::from_secs(30)).await;
        }
        Serve {
            addr,
            stop: Some(tx),
            task,
        }
    }

    /// Shut it down and wait (10 s at most) for it to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve stops")
            .expect("serve task");
    }
}
