//! `chops config check` against hostile configs: each is refused with exit 3 and one line per
//! problem, and no secret from the config ever reaches stdout or stderr.
//! These need no cluster, only the binary.

use std::path::Path;
use std::process::Command;

use testkit::scratch;

const SECRET: &str = "S3cret";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `chops config check` on `text` written to `dir/name`; the binary runs in `dir` (a fresh
/// scratch directory per test), so no stray `.env` is picked up.
fn config_check(dir: &Path, name: &str, text: &str) -> Run {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chops"))
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .env_remove("CHOPS_CONFIG")
        .current_dir(dir)
        .output()
        .expect("run chops");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A TOML basic string, so test values with quotes or control characters stay one value.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn assert_refused(run: &Run, lines: usize, what: &str) {
    assert_eq!(
        run.code, 3,
        "{what}: stdout {} stderr {}",
        run.stdout, run.stderr
    );
    assert!(
        !run.stdout.contains(SECRET),
        "{what}: leaked on stdout: {}",
        run.stdout
    );
    assert!(
        !run.stderr.contains(SECRET),
        "{what}: leaked on stderr: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
    let got: Vec<&str> = run
        .stderr
        .strip_suffix('\n')
        .unwrap_or(&run.stderr)
        .split('\n')
        .collect();
    assert_eq!(got.len(), lines, "{what}: {:?}", run.stderr);
    assert!(
        got.iter().all(|l| !l.trim().is_empty()),
        "{what}: {:?}",
        run.stderr
    );
}

const BAD_URLS: &[&str] = &[
    "HTTP://user:S3cret@h:1",
    "ftp://user:S3cret@h",
    "socks5://u:S3cret@h:1",
    "http://h:8123/?password=S3cret",
    "http://h:99999",
    "http://:8123",
    "http://bad host:8123",
    "http://h:0",
    "http://h#frag",
    "http://u:pa#S3cret@h",
    "http://u:pa/S3cret@h:1",
    "https://user:S3cret@h:8443",
];

const GOOD_URLS: &[&str] = &[
    "http://[::1]:8123",
    "http://127.0.0.1:8123",
    "http://ch-1.example.com:8123/",
];

/// The same URL in each place a config holds one.
fn url_configs(u: &str) -> [(&'static str, String); 3] {
    let u = toml_str(u);
    [
        (
            "replica url",
            format!("[[clusters.a.replicas]]\nname = \"r1\"\nurl = {u}\n"),
        ),
        (
            "discover.seed",
            format!("[clusters.a]\ndiscover = {{ seed = {u} }}\n"),
        ),
        (
            "discord.proxy",
            format!("[discord]\nproxy = {u}\n[[clusters.a.replicas]]\nname = \"r1\"\nurl = \"http://h:1\"\n"),
        ),
    ]
}

#[test]
fn hostile_urls_are_refused_in_one_line_without_the_secret() {
    let dir = scratch("urls");
    for (i, u) in BAD_URLS.iter().enumerate() {
        for (place, text) in url_configs(u) {
            let run = config_check(&dir, &format!("bad{i}.toml"), &text);
            assert_refused(&run, 1, &format!("{u} as {place}"));
        }
    }
}

#[test]
fn good_urls_pass() {
    let dir = scratch("good");
    for (i, u) in GOOD_URLS.iter().enumerate() {
        for (place, text) in url_configs(u) {
            let run = config_check(&dir, &format!("good{i}.toml"), &text);
            assert_eq!(run.code, 0, "{u} as {place}: {}", run.stderr);
            assert!(run.stdout.contains("ok (clusters: a)"), "{}", run.stdout);
        }
    }
}

/// https:// is for ClickHouse servers (replicas, seeds); the Discord proxy stays plain http.
#[test]
fn https_is_for_servers_not_the_proxy() {
    let dir = scratch("https");
    let [replica, seed, proxy] = url_configs("https://ch-1.example.com:8443");
    for (place, text) in [replica, seed] {
        let run = config_check(&dir, "https.toml", &text);
        assert_eq!(run.code, 0, "https as {place}: {}", run.stderr);
    }
    let run = config_check(&dir, "https-proxy.toml", &proxy.1);
    assert_refused(&run, 1, "https as discord.proxy");
    assert!(
        run.stderr.contains("https is not supported here"),
        "{}",
        run.stderr
    );
}

#[test]
fn hostile_keeper_entries_and_replica_names_are_refused() {
    let dir = scratch("names");
    let replica = |name: &str, port: u16| {
        format!(
            "[[clusters.a.replicas]]\nname = {}\nurl = \"http://h:{port}\"\n",
            toml_str(name)
        )
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "keeper command injection",
            format!(
                "[clusters.a]\nkeeper = [\"x;touch pwned #:2181\"]\n{}",
                replica("r1", 1)
            ),
        ),
        (
            "keeper with credentials",
            format!(
                "[clusters.a]\nkeeper = [\"u:S3cret@zk:2181\"]\n{}",
                replica("r1", 1)
            ),
        ),
        ("newline in name", replica("a\nb", 1)),
        ("trailing space", replica("r", 1) + &replica("r ", 2)),
        ("empty name", replica("", 1)),
        ("duplicate", replica("r", 1) + &replica("r", 2)),
    ];
    for (what, text) in cases {
        let run = config_check(&dir, "names.toml", &text);
        assert_refused(&run, 1, what);
    }
    // The escaped entry is shown, not a raw newline.
    let run = config_check(&dir, "nl.toml", &replica("a\nb", 1));
    assert!(run.stderr.contains("'a\\nb'"), "{}", run.stderr);
}

#[test]
fn two_problems_give_two_lines() {
    let dir = scratch("two");
    let text = "[clusters.a]\nkeeper = [\"zk\"]\n[[clusters.a.replicas]]\nname = \"\"\nurl = \"http://u:S3cret@h:1\"\n";
    let run = config_check(&dir, "two.toml", text);
    assert_refused(&run, 3, "three problems");
    let text = "[clusters.a]\nkeeper = [\"zk\"]\n[[clusters.a.replicas]]\nname = \"\"\nurl = \"http://h:1\"\n";
    let run = config_check(&dir, "two.toml", text);
    assert_refused(&run, 2, "two problems");
    assert!(
        run.stderr.contains("`clusters.a.keeper[0]`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`clusters.a.replicas[0].name`"),
        "{}",
        run.stderr
    );
}
