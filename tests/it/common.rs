//! Helpers of the integration tests: the test kit's cluster helpers, and running the `chops`
//! binary built for these tests (its path is known only to this crate's tests).

pub use testkit::{must, scratch, shared, sql, write_config, LocalCluster};

use std::process::Command;

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
