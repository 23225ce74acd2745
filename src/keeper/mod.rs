//! Keeper adapter: the four-letter-word TCP client (`ruok`, `mntr`, `srvr`, `isro` …).
//! Each word is one connection: send the word, read until the server closes, within a deadline.
//! A `tls://host:port` node gets the words over TLS, verified with the cluster's settings.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clickhouse::{io_error, tls, Budget, Lane};
use crate::domain::{text, url, ProbeError};

/// Answers are small (mntr is ~15 KiB); anything past this is not read.
const MAX_ANSWER: u64 = 256 * 1024;

/// Send `word` to `addr` (`host:port` or `tls://host:port`) and return the answer text (invalid
/// UTF-8 kept as raw bytes).
pub async fn four_letter(
    addr: &str,
    word: &str,
    deadline: Duration,
    budget: &Budget,
) -> Result<String, ProbeError> {
    let start = Instant::now();
    let end = crate::clock::by(tokio::time::Instant::now() + deadline);
    // The quick lane: a Keeper hang holds the other lane's slots with the replicas' Keeper reads,
    // and these words are what tells the card Keeper is the trouble.
    let _slot = budget.slot(Lane::Quick, end).await?;
    let work = async {
        let (secure, host, port) = url::parse_keeper(addr)
            .map_err(|e| ProbeError::Local(format!("not a Keeper address: {e}")))?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| io_error(&e, start))?;
        tcp.set_nodelay(true).ok();
        if secure {
            let stream = tls::handshake(&budget.tls, &host, tcp, deadline)
                .await
                .map_err(|e| io_error(&e, start))?;
            ask(stream, word, true, start).await
        } else {
            ask(tcp, word, false, start).await
        }
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

/// Write the word, read the answer until the server closes (at most [`MAX_ANSWER`] bytes).
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    word: &str,
    secure: bool,
    start: Instant,
) -> Result<String, ProbeError> {
    stream
        .write_all(word.as_bytes())
        .await
        .map_err(|e| io_error(&e, start))?;
    stream.flush().await.map_err(|e| io_error(&e, start))?;
    let mut buf = Vec::new();
    match (&mut stream).take(MAX_ANSWER).read_to_end(&mut buf).await {
        Ok(_) => {}
        // Servers often close a TLS connection without close_notify once the answer is out;
        // a four-letter answer has no framing to cut short, so what came is the answer.
        Err(e) if secure && e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(io_error(&e, start)),
    }
    Ok(text::from_bytes(&buf))
}
