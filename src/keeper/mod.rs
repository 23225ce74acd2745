//! Keeper adapter: the four-letter-word TCP client (`ruok`, `mntr`, `srvr`, `isro` …).
//! Each word is one connection: send the word, read until the server closes, within a deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clickhouse::io_error;
use crate::domain::ProbeError;

/// Answers are small (mntr is ~15 KiB); anything past this is cut.
const MAX_ANSWER: u64 = 256 * 1024;

/// Send `word` to `addr` (`host:port`) and return the answer text.
pub async fn four_letter(addr: &str, word: &str, deadline: Duration) -> Result<String, ProbeError> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await.map_err(io_error)?;
        stream.set_nodelay(true).ok();
        stream.write_all(word.as_bytes()).await.map_err(io_error)?;
        let mut buf = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER)
            .read_to_end(&mut buf)
            .await
            .map_err(io_error)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout {
            after_ms: deadline.as_millis() as u64,
        }),
    }
}
