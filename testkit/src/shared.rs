//! The one local cluster shared by the read-only tests of a test process (started on first use,
//! stopped by PID when the process ends), plain SQL over HTTP, config files and scratch dirs.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::localcluster::{repo_root, LocalCluster};

/// The shared cluster, and the pipe whose closing at process exit tells the watchdog to stop it.
struct Shared {
    cluster: LocalCluster,
    _exit: ChildStdin,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Where the shared cluster is: its generated chops config, replica URLs and Keeper address.
pub struct SharedCluster {
    pub config: String,
    pub urls: Vec<String>,
    pub keeper: String,
}

/// One cluster shared by the read-only tests of this process; started on first use.
pub fn shared() -> SharedCluster {
    let s = SHARED.get_or_init(|| {
        let cluster = LocalCluster::start(3).expect("start the shared local cluster");
        let exit = watchdog(&cluster).expect("start the shared cluster's watchdog");
        Shared {
            cluster,
            _exit: exit,
        }
    });
    let c = &s.cluster;
    SharedCluster {
        config: c.config_path.display().to_string(),
        urls: c.urls.clone(),
        keeper: c.keeper_addr.clone(),
    }
}

/// A static is never dropped, so the shared cluster is stopped from outside: a shell that waits
/// for end-of-file on a pipe only this process holds (the kernel closes it when the process
/// ends, however it ends), then stops every server by the PID recorded at start
/// (`local-cluster.sh stop`) and removes the cluster's directory. Ctrl-C does not stop it early.
fn watchdog(cluster: &LocalCluster) -> io::Result<ChildStdin> {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(r#"trap '' INT HUP; read -r _; bash "$0" stop "$1"; rm -rf -- "$1""#)
        .arg(repo_root().join("scripts/local-cluster.sh"))
        .arg(&cluster.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(child.stdin.take().expect("stdin is piped"))
}

/// POST `sql` to a replica; returns the body, or Err(body) on an HTTP error.
pub fn sql(url: &str, sql: &str) -> Result<String, String> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    // Answers may name objects with invalid UTF-8.
    let buf = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    if head.starts_with("HTTP/1.1 200") {
        Ok(body.to_string())
    } else {
        Err(body.to_string())
    }
}

/// [`sql`] that must succeed.
pub fn must(url: &str, q: &str) -> String {
    sql(url, q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// Write `text` to `dir/name`; returns the path as a string (for `--config`).
pub fn write_config(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A fresh scratch directory, removed with everything in it when this is dropped.
pub struct Scratch(tempfile::TempDir);

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh scratch directory named after `tag` (under the system's temporary directory).
pub fn scratch(tag: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("chops-test-{tag}-"))
        .tempdir()
        .expect("create a scratch directory");
    Scratch(dir)
}

/// The name of the OS user running the tests, from the password database (never `$USER`).
pub fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .expect("read the password database")
        .expect("the test user has a passwd entry")
        .name
}

/// One test at a time of those that load the machine most or measure themselves against a
/// deadline: all integration tests share one process, and two of these at once on a 2-core
/// machine starve each other. Hold the guard for the whole test.
static SOLO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// [`SOLO`] for a plain `#[test]`.
pub fn solo() -> tokio::sync::MutexGuard<'static, ()> {
    SOLO.blocking_lock()
}

/// [`SOLO`] for a `#[tokio::test]`.
pub async fn solo_async() -> tokio::sync::MutexGuard<'static, ()> {
    SOLO.lock().await
}
