//! The local test cluster (real Apache ZooKeeper + ClickHouse-engine gateway replicas), started
//! through `scripts/local-cluster.sh`. Every server is stopped by its own PID when this is dropped.
//! Used by the integration tests and the benchmarks; faults (kill, freeze, stop Keeper) act on one PID.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

pub struct LocalCluster {
    pub dir: PathBuf,
    /// The chops config written for this cluster (cluster name `local`).
    pub config_path: PathBuf,
    pub keeper_addr: String,
    pub urls: Vec<String>,
    pids: Vec<(String, i32)>,
}

/// The repository root (where `scripts/` lives): the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ lies in the repository")
        .to_path_buf()
}

fn read_pid(path: &Path) -> io::Result<i32> {
    std::fs::read_to_string(path)?.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Whether `pid` exists (signal 0 checks without sending anything).
fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Send `sig` to `pid`, a process the caller started; a process already gone is not an error.
pub fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

/// Ask `pid` (a process the caller started) to shut down: SIGTERM.
pub fn terminate(pid: i32) {
    signal(pid, Signal::SIGTERM);
}

/// SIGCONT (a frozen server cannot act on SIGTERM), SIGTERM, wait up to 5 s, then SIGKILL.
pub fn stop_pid(pid: i32) {
    stop_pids(&[pid]);
}

/// [`stop_pid`] for several PIDs at once: each is signalled first, then all are waited for
/// together. A server takes a second or two to shut down; one after another, a cluster's
/// stop took the sum.
pub fn stop_pids(pids: &[i32]) {
    let live: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    for &pid in &live {
        signal(pid, Signal::SIGCONT);
        signal(pid, Signal::SIGTERM);
    }
    let until = Instant::now() + Duration::from_secs(5);
    let running = |live: &[i32]| {
        live.iter().for_each(|&p| reap(p));
        live.iter().any(|&p| alive(p))
    };
    while running(&live) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<i32> = live.into_iter().filter(|&p| alive(p)).collect();
    if !left.is_empty() {
        left.iter().for_each(|&p| signal(p, Signal::SIGKILL));
        std::thread::sleep(Duration::from_millis(20));
        left.iter().for_each(|&p| reap(p));
    }
}

fn reap(pid: i32) {
    // Servers are children of the start script, not of us; reaping only matters if we adopted them.
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

impl LocalCluster {
    /// Start ZooKeeper and `replicas` gateway replicas on free loopback ports in a fresh directory.
    pub fn start(replicas: usize) -> io::Result<LocalCluster> {
        LocalCluster::start_with_latency(replicas, 0)
    }

    /// The same, with every replica waiting `latency_ms` before answering each query (a
    /// stand-in for the network round trip and server wait of a real, remote replica).
    pub fn start_with_latency(replicas: usize, latency_ms: u32) -> io::Result<LocalCluster> {
        LocalCluster::start_with(replicas, latency_ms, false)
    }

    /// Many replicas in one engine process (`local-cluster.sh --one-engine`): every port answers
    /// as its own replica, identical SELECTs share one engine call. For clusters of 10–100.
    pub fn start_one_engine(replicas: usize, latency_ms: u32) -> io::Result<LocalCluster> {
        LocalCluster::start_with(replicas, latency_ms, true)
    }

    fn start_with(replicas: usize, latency_ms: u32, one_engine: bool) -> io::Result<LocalCluster> {
        // Free ports are picked before the servers bind them: another process (or a previous
        // cluster's socket) can take one in between. A failed start is cleaned up and retried.
        let mut last = None;
        for _ in 0..3 {
            match LocalCluster::start_once(replicas, latency_ms, one_engine) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("three tries"))
    }

    fn start_once(replicas: usize, latency_ms: u32, one_engine: bool) -> io::Result<LocalCluster> {
        // Kept (not removed when this handle goes): Drop, or the shared cluster's watchdog, does.
        let dir = tempfile::Builder::new()
            .prefix("chops-lc-")
            .tempdir()?
            .keep();
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/local-cluster.sh"))
            .args([
                "start",
                dir.to_str().expect("utf-8 temp dir"),
                "--replicas",
                &replicas.to_string(),
                "--latency-ms",
                &latency_ms.to_string(),
            ])
            .args(one_engine.then_some("--one-engine"))
            .output()?;
        // Collect whatever started, so that a failed start is cleaned up too.
        let mut pids = Vec::new();
        let mut names = vec!["zk".to_string()];
        names.extend((1..=replicas).map(|i| format!("r{i}")));
        for name in &names {
            if let Ok(pid) = read_pid(&dir.join(format!("{name}.pid"))) {
                pids.push((name.clone(), pid));
            }
        }
        let mut cluster = LocalCluster {
            config_path: dir.join("chops.toml"),
            dir,
            keeper_addr: String::new(),
            urls: Vec::new(),
            pids,
        };
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "local-cluster.sh failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let config = std::fs::read_to_string(&cluster.config_path)?;
        for line in config.lines() {
            if let Some(rest) = line.strip_prefix("url = \"") {
                cluster.urls.push(rest.trim_end_matches('"').to_string());
            }
            if let Some(rest) = line.strip_prefix("keeper = [\"") {
                cluster.keeper_addr = rest.trim_end_matches("\"]").to_string();
            }
        }
        Ok(cluster)
    }

    fn pid(&self, name: &str) -> i32 {
        self.pids
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// PID of replica `i` (1-based).
    pub fn replica_pid(&self, i: usize) -> i32 {
        self.pid(&format!("r{i}"))
    }

    pub fn keeper_pid(&self) -> i32 {
        self.pid("zk")
    }

    /// Kill replica `i` outright (its port then refuses connections).
    pub fn kill_replica(&self, i: usize) {
        let pid = self.replica_pid(i);
        signal(pid, Signal::SIGKILL);
        let until = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < until {
            reap(pid);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Freeze replica `i` with SIGSTOP: connections are accepted but never answered.
    pub fn freeze_replica(&self, i: usize) {
        signal(self.replica_pid(i), Signal::SIGSTOP);
    }

    pub fn thaw_replica(&self, i: usize) {
        signal(self.replica_pid(i), Signal::SIGCONT);
    }

    /// Stop ZooKeeper and wait until it is gone.
    pub fn stop_keeper(&self) {
        stop_pid(self.keeper_pid());
    }

    /// This cluster's config (TOML text) with only its first `reachable` replicas, then
    /// `refused` replicas (`down1`, …) at an address that refuses connections: a large failing
    /// cluster from one engine process ([`LocalCluster::start_one_engine`]).
    pub fn config_with(&self, reachable: usize, refused: usize) -> String {
        const BLOCK: &str = "[[clusters.local.replicas]]";
        let text = std::fs::read_to_string(&self.config_path).expect("the cluster's config");
        let mut blocks = text.split(BLOCK);
        let mut out = blocks.next().unwrap_or_default().to_string();
        for b in blocks.take(reachable) {
            out.push_str(BLOCK);
            out.push_str(b);
        }
        for i in 1..=refused {
            out.push_str(&format!(
                "\n{BLOCK}\nname = \"down{i}\"\nurl = \"http://127.0.0.1:1\"\nshard = 1\n"
            ));
        }
        out
    }

    /// `n` databases with long names, a table each, on replica 1 (on a one-engine cluster: on
    /// every replica): a per-replica backup of them all is a statement too long for a card's
    /// field and, from 70 on, for a preview's description.
    pub fn long_named_databases(&self, n: usize) {
        // A database counts once it has a table (`system.tables`).
        for i in 0..n {
            let db = format!("tenant_database_with_a_long_name_{i:02}");
            crate::must(
                &self.urls[0],
                &format!("CREATE DATABASE IF NOT EXISTS {db}"),
            );
            crate::must(
                &self.urls[0],
                &format!("CREATE TABLE IF NOT EXISTS {db}.t (x UInt8) ENGINE = Memory"),
            );
        }
    }

    /// Stop every server this cluster started, by PID.
    pub fn stop(&mut self) {
        let pids: Vec<i32> = self.pids.drain(..).map(|(_, pid)| pid).collect();
        stop_pids(&pids);
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
