//! `chops serve` as a child process: started with a config and an environment, its HTTP address
//! read from the one line it prints, its later stdout lines kept, its log (stderr) in a file;
//! stopped by its own PID when dropped (its [`ServeChild`] is). The binary's path is given by the caller (only the
//! integration tests know it). [`ServeChild`] is the bare child, for the callers that read its
//! stdout and time its exit themselves (the SIGTERM test, the benches).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `chops serve` (see the module).
pub struct ChopsProcess {
    pub addr: SocketAddr,
    /// Its stderr (the log).
    pub log_path: PathBuf,
    serve: ServeChild,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ChopsProcess {
    /// `bin --config config serve [args]` with `env` added; logs at info level into
    /// `dir/<name>.log`. Panics, with the log, when it does not say where it listens.
    pub fn start(
        bin: &Path,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        dir: &Path,
    ) -> ChopsProcess {
        let log_path = dir.join(format!("serve-{}.log", std::process::id()));
        // Info logs unless `env` says otherwise (a later entry wins).
        let env: Vec<(&str, &str)> = std::iter::once(("CHOPS_LOG", "info"))
            .chain(env.iter().copied())
            .collect();
        let mut cmd = ServeChild::command(bin, config, args, &env, &log_path);
        cmd.env_remove("CHOPS_CONFIG").current_dir(dir);
        let mut serve = ServeChild::start(cmd);
        let mut out = serve.stdout();
        let mut first = String::new();
        let _ = out.read_line(&mut first);
        let addr = first
            .trim()
            .strip_prefix("chops: listening on http://")
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            drop(serve); // stopped, so its log is complete
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("chops serve did not start: {first:?}\n{log}");
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        ChopsProcess {
            addr,
            log_path,
            serve,
            lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.serve.pid()
    }

    /// What it printed on stdout after the address line.
    pub fn stdout(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// One request to it ([`crate::http::request`]).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        crate::http::request(self.addr, method, path, headers, body)
    }

    /// The value of one sample of its `/metrics` (`name{labels}` exactly as rendered), or 0.
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.http("GET", "/metrics", &[], b"");
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// A bare `chops serve` child: stdout piped (take it with [`ServeChild::stdout`]), stderr in a
/// file. Dropped while still running, it is stopped by its own PID.
pub struct ServeChild {
    pub child: Child,
}

impl ServeChild {
    /// `bin --config config serve [args]` with `env` set (chops' own `CHOPS_LOG` and
    /// `CHOPS_LOG_FORMAT` only from `env`, never from the caller's environment) and stderr
    /// written to `stderr`.
    pub fn spawn(
        bin: impl AsRef<std::ffi::OsStr>,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: &Path,
    ) -> ServeChild {
        ServeChild::start(ServeChild::command(bin, config, args, env, stderr))
    }

    /// The command [`ServeChild::spawn`] starts, for a caller that adds to it (a lower
    /// descriptor limit, say) before [`ServeChild::start`].
    pub fn command(
        bin: impl AsRef<std::ffi::OsStr>,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: &Path,
    ) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(["--config", config, "serve"])
            .args(args)
            .env_remove("CHOPS_LOG")
            .env_remove("CHOPS_LOG_FORMAT")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).expect("stderr file"));
        cmd
    }

    /// Start `cmd` (made by [`ServeChild::command`]).
    pub fn start(mut cmd: Command) -> ServeChild {
        ServeChild {
            child: cmd.spawn().expect("start chops serve"),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Its stdout (once; the first line says where it listens, see [`listening_addr`]).
    pub fn stdout(&mut self) -> std::io::BufReader<ChildStdout> {
        std::io::BufReader::new(self.child.stdout.take().expect("stdout taken once"))
    }

    /// SIGTERM, then its exit status and how long it took to exit; panics when it has not
    /// exited within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        crate::localcluster::terminate(self.pid());
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, sent.elapsed());
            }
            assert!(
                sent.elapsed() <= limit,
                "chops serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        // Once reaped, its PID is no longer ours to signal.
        if matches!(self.child.try_wait(), Ok(None)) {
            crate::localcluster::stop_pid(self.pid());
            let _ = self.child.wait();
        }
    }
}

/// The address in the first line `chops serve` prints on `out` (its stdout); panics, with the
/// line, when there is none.
pub fn listening_addr(out: &mut impl BufRead) -> SocketAddr {
    let mut line = String::new();
    out.read_line(&mut line).expect("chops serve's stdout");
    line.trim()
        .strip_prefix("chops: listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}
