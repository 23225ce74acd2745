//! ClickHouse adapter: one HTTP client per replica, every call under a deadline, errors mapped
//! to [`ProbeError`] (refused, timed out, auth failed, server exception …).

use std::time::{Duration, Instant};

use ::clickhouse::{error::Error as ChError, Client, RowOwned, RowRead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Secret;
use crate::domain::finding::first_line;
use crate::domain::ProbeError;

/// A client for one replica.
#[derive(Clone)]
pub struct ReplicaClient {
    pub name: String,
    pub url: String,
    pub shard: Option<u32>,
    client: Client,
    deadline: Duration,
}

impl std::fmt::Debug for ReplicaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaClient")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

impl ReplicaClient {
    pub fn new(
        name: &str,
        url: &str,
        shard: Option<u32>,
        user: &str,
        password: &Secret,
        deadline: Duration,
    ) -> Self {
        // The server gives up on its own shortly after we do (at least 1 s).
        let server_limit = deadline.as_secs_f64().ceil().max(1.0) as u64;
        let client = Client::default()
            .with_url(url)
            .with_user(user)
            .with_password(password.expose())
            .with_setting("max_execution_time", server_limit.to_string());
        ReplicaClient {
            name: name.to_string(),
            url: url.to_string(),
            shard,
            client,
            deadline,
        }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Run a SELECT with `?` bindings and collect its rows, within the deadline.
    pub async fn fetch<T>(&self, sql: &str, binds: &[&str]) -> Result<Vec<T>, ProbeError>
    where
        T: RowOwned + RowRead,
    {
        let mut q = self.client.query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        match tokio::time::timeout(self.deadline, q.fetch_all::<T>()).await {
            Ok(r) => r.map_err(map_error),
            Err(_) => Err(timeout(self.deadline)),
        }
    }

    /// Run a statement that returns no rows we need, within `limit`.
    pub async fn execute(&self, sql: &str, limit: Duration) -> Result<(), ProbeError> {
        match tokio::time::timeout(limit, self.client.query(sql).execute()).await {
            Ok(r) => r.map_err(map_error),
            Err(_) => Err(timeout(limit)),
        }
    }

    /// `GET /ping` (expects `Ok.`), timed, within the deadline.
    pub async fn ping(&self) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        match tokio::time::timeout(self.deadline, http_get(&self.url, "/ping")).await {
            Ok(Ok(body)) if body.trim() == "Ok." => Ok(start.elapsed()),
            Ok(Ok(body)) => Err(ProbeError::Decode(format!(
                "/ping answered {:?}",
                body.chars().take(60).collect::<String>()
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timeout(self.deadline)),
        }
    }
}

fn timeout(d: Duration) -> ProbeError {
    ProbeError::Timeout {
        after_ms: d.as_millis() as u64,
    }
}

/// `host:port` of an `http://` URL.
pub fn authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let auth = rest.split('/').next()?;
    if auth.is_empty() {
        return None;
    }
    Some(
        if auth
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            && !auth.ends_with(']')
        {
            auth.to_string()
        } else {
            format!("{auth}:80")
        },
    )
}

/// A minimal HTTP/1.1 GET (for /ping): status line checked, body returned.
async fn http_get(url: &str, path: &str) -> Result<String, ProbeError> {
    let addr = authority(url).ok_or_else(|| ProbeError::Network(format!("bad URL {url}")))?;
    let mut stream = TcpStream::connect(&addr).await.map_err(io_error)?;
    stream.set_nodelay(true).ok();
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.map_err(io_error)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.map_err(io_error)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(ProbeError::Network(format!(
            "{path} answered HTTP {status}"
        )));
    }
    Ok(body.to_string())
}

pub fn io_error(e: std::io::Error) -> ProbeError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ProbeError::Refused,
        std::io::ErrorKind::TimedOut => ProbeError::Timeout { after_ms: 0 },
        _ => ProbeError::Network(e.to_string()),
    }
}

/// Map the crate's error to a [`ProbeError`]; server exceptions keep their code and name.
pub fn map_error(e: ChError) -> ProbeError {
    match e {
        ChError::BadResponse(text) => server_error(&text),
        ChError::TimedOut => ProbeError::Timeout { after_ms: 0 },
        ChError::Network(inner) => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
            while let Some(s) = src {
                if let Some(io) = s.downcast_ref::<std::io::Error>() {
                    return io_error(std::io::Error::new(io.kind(), io.to_string()));
                }
                src = s.source();
            }
            let msg = inner.to_string();
            if msg.to_ascii_lowercase().contains("connection refused") {
                ProbeError::Refused
            } else {
                ProbeError::Network(msg)
            }
        }
        other => ProbeError::Decode(other.to_string()),
    }
}

/// `Code: N. DB::Exception: message (NAME) (version …)` → code, name, message.
pub fn server_error(text: &str) -> ProbeError {
    let text = text.trim();
    let code = text
        .find("Code: ")
        .and_then(|i| text[i + 6..].split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(0);
    if matches!(code, 516 | 192 | 193 | 194) {
        return ProbeError::Auth { code };
    }
    let mut message = first_line(text, usize::MAX);
    if let Some(i) = message.rfind(" (version ") {
        message.truncate(i);
    }
    let mut name = String::new();
    if message.ends_with(')') {
        if let Some(open) = message.rfind(" (") {
            let candidate = &message[open + 2..message.len() - 1];
            if !candidate.is_empty()
                && candidate
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                name = candidate.to_string();
                message.truncate(open);
            }
        }
    }
    if let Some(rest) = message
        .split_once("DB::Exception: ")
        .map(|(_, r)| r.to_string())
    {
        message = rest;
    }
    ProbeError::Server {
        code,
        name,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_errors() {
        let e = server_error("Code: 60. DB::Exception: Unknown table expression identifier 'system.zookeeper'. (UNKNOWN_TABLE) (version 26.9.2.1)\n");
        assert_eq!(
            e,
            ProbeError::Server {
                code: 60,
                name: "UNKNOWN_TABLE".into(),
                message: "Unknown table expression identifier 'system.zookeeper'.".into()
            }
        );
        assert_eq!(
            server_error(
                "Code: 516. DB::Exception: default: Authentication failed (AUTHENTICATION_FAILED)"
            ),
            ProbeError::Auth { code: 516 }
        );
        assert_eq!(server_error("garbage").code(), Some(0));
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("http://h:8123").as_deref(), Some("h:8123"));
        assert_eq!(authority("http://h/").as_deref(), Some("h:80"));
        assert_eq!(
            authority("http://127.0.0.1:1/x").as_deref(),
            Some("127.0.0.1:1")
        );
        assert_eq!(authority("https://h"), None);
    }
}
