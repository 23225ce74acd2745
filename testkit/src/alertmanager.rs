//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) for tests: its own
//! directory and free port, no clustering (`--cluster.listen-address=` empty), one route to a
//! webhook with a bearer token from a `credentials_file`, short group timers so a test takes
//! seconds; stopped by its PID when dropped. Alerts are pushed through its API v2.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where Debian installs it.
pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager (see the module).
pub struct Alertmanager {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
}

/// A port free now (bound, then released), below the kernel's ephemeral range: Alertmanager binds
/// it a moment later, and in between no other test's `bind(0)` or outgoing connection is given it.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    for i in 0..1000u64 {
        let port = if low > 11_000 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            10_000 + (h.finish() % u64::from(low - 10_000)) as u16
        } else {
            0
        };
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().expect("local addr").port();
        }
    }
    panic!("no free port below the ephemeral range")
}

/// The config: everything to `webhook` (send_resolved), grouped by `group_by`, group_wait and
/// group_interval 1 s, the bearer token read from `token_file`.
pub fn config(webhook: &str, token_file: &Path, group_by: &[&str]) -> String {
    let group_by: Vec<String> = group_by.iter().map(|l| format!("'{l}'")).collect();
    format!(
        "route:
  receiver: chops
  group_by: [{}]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: chops
    webhook_configs:
      - url: '{webhook}'
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: '{}'
",
        group_by.join(", "),
        token_file.display()
    )
}

impl Alertmanager {
    /// Start it in `dir` with `config` (YAML); waits until `/-/ready` answers.
    pub fn start(dir: &Path, config: &str) -> Alertmanager {
        let file = dir.join("alertmanager.yml");
        std::fs::write(&file, config).expect("write alertmanager.yml");
        let port = free_port();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("alertmanager.log")).expect("log"))
            .spawn()
            .expect("start prometheus-alertmanager (Debian package prometheus-alertmanager)");
        let am = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let until = Instant::now() + Duration::from_secs(20);
        while am.get("/-/ready").is_none_or(|(s, _)| s != 200) {
            let log = std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default();
            assert!(Instant::now() < until, "Alertmanager not ready:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("http://")
            .parse()
            .expect("an address")
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        std::net::TcpStream::connect(self.addr()).ok()?;
        Some(crate::http::request(self.addr(), "GET", path, &[], b""))
    }

    /// `POST /api/v2/alerts` with `alerts` (an array of postable alerts).
    pub fn push(&self, alerts: &Value) {
        let body = serde_json::to_vec(alerts).expect("JSON");
        let (status, text) = crate::http::request(
            self.addr(),
            "POST",
            "/api/v2/alerts",
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(status, 200, "Alertmanager refused the alerts: {text}");
    }

    /// The value of one sample of its own `/metrics` (`name{labels}` exactly as rendered), or 0.
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.get("/metrics").unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        crate::localcluster::stop_pid(self.child.id() as i32);
        let _ = self.child.wait();
    }
}
