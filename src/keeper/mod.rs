//! Keeper adapter: the four-letter-word TCP client (`ruok`, `mntr`, `srvr`, `isro` …).
//! Each word is one connection: send the word, read until the server closes, within a deadline.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clickhouse::{io_error, Budget};
use crate::domain::{text, ProbeError};

/// Answers are small (mntr is ~15 KiB); anything past this is not read.
const MAX_ANSWER: u64 = 256 * 1024;

/// Send `word` to `addr` (`host:port`) and return the answer text (invalid UTF-8 kept as raw bytes).
pub async fn four_letter(
    addr: &str,
    word: &str,
    deadline: Duration,
    budget: &Budget,
) -> Result<String, ProbeError> {
    let start = Instant::now();
    let end = tokio::time::Instant::now() + deadline;
    let _slot = budget.slot(end).await?;
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| io_error(&e, start))?;
        stream.set_nodelay(true).ok();
        stream
            .write_all(word.as_bytes())
            .await
            .map_err(|e| io_error(&e, start))?;
        let mut buf = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| io_error(&e, start))?;
        Ok(text::from_bytes(&buf))
    };
    let r = match tokio::time::timeout_at(end, work).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout {
            after_ms: start.elapsed().as_millis() as u64,
        }),
    };
    if let Err(e) = &r {
        crate::metrics::get().probe_error(e.kind(), addr);
    }
    r
}
