//! `chops healthcheck`: ask a running `chops serve` whether it is up, for container health checks
//! (the image has no curl). GET the URL (http only) within 3 s: exit 0 on a 2xx status, 1
//! otherwise (the reason on stderr), 3 for a URL that is not `http://host[:port][/path]`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::domain::url::HttpUrl;

/// The whole request (connect, send, status line) fits in this, or the answer is "down".
const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to GET (http only).
    #[arg(long, default_value = "http://127.0.0.1:9187/livez")]
    pub url: String,
}

/// GET `url`: 0 on a 2xx status, 1 otherwise, [`super::EXIT_USAGE`] for a bad URL.
pub async fn run(url: &str) -> i32 {
    let uri = match HttpUrl::parse(url)
        .map_err(|e| e.to_string())
        .and_then(|u| uri(&u))
    {
        Ok(uri) => uri,
        Err(e) => {
            eprintln!("chops healthcheck: {e}");
            return super::EXIT_USAGE;
        }
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    match tokio::time::timeout(TIMEOUT, client.get(uri)).await {
        Ok(Ok(resp)) if resp.status().is_success() => 0,
        Ok(Ok(resp)) => {
            eprintln!(
                "chops healthcheck: {url}: status {}",
                resp.status().as_u16()
            );
            1
        }
        Ok(Err(e)) => {
            eprintln!("chops healthcheck: {url}: {}", root_cause(&e));
            1
        }
        Err(_) => {
            eprintln!("chops healthcheck: {url}: no answer within 3 s");
            1
        }
    }
}

/// The validated URL as a request URI (an IPv6 host back in brackets; an empty path is `/`).
fn uri(u: &HttpUrl) -> Result<hyper::Uri, String> {
    let host = if u.host.contains(':') {
        format!("[{}]", u.host)
    } else {
        u.host.clone()
    };
    let path = if u.path.is_empty() { "/" } else { &u.path };
    format!("http://{host}:{}{path}", u.port)
        .parse()
        .map_err(|_| "the path is not a valid request path".to_string())
}

/// The innermost cause ("Connection refused …"): the client's own text says only "client error".
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut e = e;
    while let Some(s) = e.source() {
        e = s;
    }
    e.to_string()
}
