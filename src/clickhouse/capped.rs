//! A hyper connector whose connections stop reading an answer past a byte cap.
//!
//! The clickhouse crate collects error bodies whole and a hostile server can stream forever, so
//! the cap sits below every HTTP client chops uses: each TCP connection counts the bytes it reads
//! since the last request it wrote, looks at the response's status line, and fails the read with
//! [`TooLarge`] once the answer passes `max_answer_bytes` (200) or `max_error_bytes` (anything
//! else). Counting restarts with each request, so pooled keep-alive connections keep working.
//! An error body is also made valid UTF-8 in place (see `CappedStream::pass`).
//!
//! An `https://` URI gets a TLS handshake (see [`super::tls`]) over the TCP stream before the
//! caps: the bytes counted are the decrypted answer, so every cap holds over TLS as well.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::tls::{self, Tls};

/// Room for an answer's status line and headers on top of its body cap.
const HEAD_ALLOWANCE: u64 = 64 * 1024;

/// Bytes read from the socket at a time (hyper asks for its whole free buffer).
const SCRATCH: usize = 8 * 1024;

thread_local! {
    /// Where a read lands before it is counted and handed on: one per thread, not one per open
    /// connection (a card of 300 replicas opens thousands). `poll_read` never yields while it
    /// holds it.
    static SCRATCH_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Byte caps for one answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub answer_bytes: u64,
    pub error_bytes: u64,
}

/// The marker error a capped read fails with (found again through the error's source chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("answer too large (> {limit} bytes)")]
pub struct TooLarge {
    pub limit: u64,
}

/// `TooLarge` inside an I/O error, if that is what it is.
pub fn too_large(e: &io::Error) -> Option<TooLarge> {
    e.get_ref()?.downcast_ref::<TooLarge>().copied()
}

/// Wraps hyper-util's `HttpConnector`; every connection it makes is a [`CappedStream`].
#[derive(Clone)]
pub struct CappedConnector {
    inner: HttpConnector,
    caps: Caps,
    /// How `https://` URIs are verified.
    tls: Tls,
    /// The TLS handshake's own limit (a request's deadline also bounds it).
    handshake: std::time::Duration,
    /// Per server (see [`server_key`]), bumped each time a cap trips on a connection to it: lets
    /// the caller tell a cut error body from other failures (the clickhouse crate replaces a body
    /// it could not collect by the bare status line). One connector serves a whole cluster.
    trips: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
}

impl CappedConnector {
    pub fn new(caps: Caps, connect_timeout: std::time::Duration) -> Self {
        let mut inner = HttpConnector::new();
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(connect_timeout));
        // https:// is let through to `call`, which adds TLS itself.
        inner.enforce_http(false);
        CappedConnector {
            inner,
            caps,
            tls: Tls::default(),
            handshake: connect_timeout,
            trips: Arc::default(),
        }
    }

    /// Verify `https://` servers with `tls` (default: the built-in roots).
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// The trip counter of the server at `uri` (shared by every connection to it).
    pub fn trips(&self, uri: &Uri) -> Arc<AtomicU64> {
        let mut all = self.trips.lock().expect("trips lock");
        all.entry(server_key(uri)).or_default().clone()
    }
}

/// `scheme://host:port` with the host in lower case and the port made explicit: the key of one
/// server, the same for a replica's configured URL and the URI hyper connects to.
pub fn server_key(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    format!("{scheme}://{host}:{port}")
}

impl tower_service::Service<Uri> for CappedConnector {
    type Response = CappedStream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<CappedStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                let e = io::Error::new(io::ErrorKind::InvalidInput, "not an http(s) URI");
                return Box::pin(async move { Err(e.into()) });
            }
        };
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let trips = self.trips(&uri);
        let connecting = self.inner.call(uri);
        let (caps, tls, limit) = (self.caps, self.tls.clone(), self.handshake);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let io = if https {
                Transport::Tls(Box::new(tls::handshake(&tls, &host, tcp, limit).await?))
            } else {
                Transport::Plain(tcp)
            };
            Ok(CappedStream {
                io,
                caps,
                trips,
                read: 0,
                head: Vec::new(),
                limit: caps.answer_bytes.max(caps.error_bytes),
                window: 0,
                in_body: false,
                pending: 0,
            })
        })
    }
}

/// The bytes under the caps: plain TCP, or TLS over TCP.
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(t) => t,
            Transport::Tls(t) => t.get_ref().0,
        }
    }
}

/// One connection (TCP, maybe TLS) with a per-answer read cap.
pub struct CappedStream {
    io: Transport,
    caps: Caps,
    trips: Arc<AtomicU64>,
    /// Bytes read since the last request was written.
    read: u64,
    /// The first bytes of the answer, until the status code is known.
    head: Vec<u8>,
    limit: u64,
    /// The last bytes of the head, to find its end ("\r\n\r\n") across reads.
    window: u32,
    /// The head has ended: what follows is the body.
    in_body: bool,
    /// Continuation bytes still owed by a character the last read ended in.
    pending: usize,
}

impl CappedStream {
    fn is_error(&self) -> bool {
        self.head.len() == 12 && &self.head[9..12] != b"200"
    }

    fn reset(&mut self) {
        self.read = 0;
        self.head.clear();
        self.limit = self.caps.answer_bytes.max(self.caps.error_bytes);
        self.window = 0;
        self.in_body = false;
        self.pending = 0;
    }

    /// Hand `got` to the reader. An error body is made valid UTF-8 byte for byte (invalid bytes
    /// become `?`, lengths and so HTTP framing unchanged): the clickhouse crate drops an error
    /// text that is not UTF-8, and the server's message is what on-call needs to read. A 200
    /// answer passes as it is, without a copy of its own.
    fn pass(&mut self, got: &[u8], buf: &mut ReadBufCursor<'_>) {
        let mut start = got.len();
        if self.in_body {
            start = 0;
        } else {
            for (i, &b) in got.iter().enumerate() {
                self.window = (self.window << 8) | b as u32;
                if self.window == u32::from_be_bytes(*b"\r\n\r\n") {
                    self.in_body = true;
                    start = i + 1;
                    break;
                }
            }
        }
        if !self.is_error() || start == got.len() {
            buf.put_slice(got);
            return;
        }
        let mut out = got[..start].to_vec();
        sanitize(&mut self.pending, &got[start..], &mut out);
        buf.put_slice(&out);
    }

    fn account(&mut self, got: &[u8]) -> io::Result<()> {
        if self.head.len() < 12 {
            let take = (12 - self.head.len()).min(got.len());
            self.head.extend_from_slice(&got[..take]);
            if self.head.len() == 12 {
                // "HTTP/1.1 200": anything but 200 is an error body, which gets the small cap.
                self.limit = if &self.head[9..12] == b"200" {
                    self.caps.answer_bytes
                } else {
                    self.caps.error_bytes
                };
            }
        }
        self.read += got.len() as u64;
        if self.read > self.limit + HEAD_ALLOWANCE {
            self.trips.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other(TooLarge { limit: self.limit }));
        }
        Ok(())
    }
}

/// Append `data` to `out` as valid UTF-8 of the same length: invalid bytes become `?`; a character
/// cut at the end passes as it is and `pending` says how many continuation bytes the next read
/// owes it (held back instead, it could stall a body whose length is already complete).
fn sanitize(pending: &mut usize, data: &[u8], out: &mut Vec<u8>) {
    let mut rest = data;
    while *pending > 0 && rest.first().is_some_and(|b| (0x80..=0xBF).contains(b)) {
        out.push(rest[0]);
        rest = &rest[1..];
        *pending -= 1;
    }
    *pending = 0;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.extend_from_slice(s.as_bytes());
                return;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.extend_from_slice(&rest[..valid]);
                match e.error_len() {
                    Some(bad) => {
                        out.extend(std::iter::repeat_n(b'?', bad));
                        rest = &rest[valid + bad..];
                    }
                    None => {
                        let tail = &rest[valid..];
                        let need = match tail[0] {
                            0xC0..=0xDF => 2,
                            0xE0..=0xEF => 3,
                            _ => 4,
                        };
                        *pending = need - tail.len();
                        out.extend_from_slice(tail);
                        return;
                    }
                }
            }
        }
    }
}

impl Read for CappedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        SCRATCH_BUF.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let want = buf.remaining().min(scratch.len());
            let mut rb = ReadBuf::new(&mut scratch[..want]);
            ready!(match &mut this.io {
                Transport::Plain(t) => Pin::new(t).poll_read(cx, &mut rb),
                Transport::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, &mut rb),
            })?;
            let got = rb.filled();
            this.account(got)?;
            // Same length as read: invalid bytes are replaced one for one.
            this.pass(got, &mut buf);
            Poll::Ready(Ok(()))
        })
    }
}

impl Write for CappedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(match &mut this.io {
            Transport::Plain(t) => Pin::new(t).poll_write(cx, buf),
            Transport::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        })?;
        if n > 0 {
            // A new request: the next answer is counted from zero.
            this.reset();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Transport::Plain(t) => Pin::new(t).poll_flush(cx),
            Transport::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Transport::Plain(t) => Pin::new(t).poll_shutdown(cx),
            Transport::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for CappedStream {
    fn connected(&self) -> Connected {
        self.io.tcp().connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(reads: &[&[u8]]) -> Vec<u8> {
        let (mut pending, mut out) = (0, Vec::new());
        for r in reads {
            sanitize(&mut pending, r, &mut out);
        }
        out
    }

    #[test]
    fn error_bodies_become_utf8_of_the_same_length() {
        assert_eq!(run(&[b"ok \xff\xfe end"]), b"ok ?? end");
        // A character split between two reads stays whole.
        let e = "é".as_bytes();
        assert_eq!(run(&[&[b'a', e[0]], &[e[1], b'b']]), "aéb".as_bytes());
        // Cut at the very end: passed on (never held back), same length.
        assert_eq!(run(&[&[b'x', 0xE2, 0x82]]).len(), 3);
        // A continuation byte the last read did not promise is invalid.
        assert_eq!(run(&[b"a", &[0x80]]), b"a?");
    }
}
