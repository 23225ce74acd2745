//! A test CA (rcgen) and a TLS front (tokio-rustls): it terminates TLS on a loopback port and
//! relays the plain bytes to a backend (a local replica's HTTP port, ZooKeeper's client port,
//! a hostile server), counting the handshakes it completed and how many of them were resumed.
//! Each front is a [`Loopback`]: its own thread and runtime, stopped when dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{HandshakeKind, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::loopback::Loopback;

/// A certificate authority made for one test.
pub struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A certificate the CA issued, with its key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        Ca {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `names` (DNS names or IP literals); `expired`: valid only in 2019.
    pub fn issue(&self, names: &[&str], expired: bool) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut r = RootCertStore::empty();
        r.add(self.cert.der().clone()).unwrap();
        r
    }

    /// Write the CA's PEM to `dir/name`; returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.pem()).unwrap();
        p
    }
}

impl Issued {
    /// Write `cert` and `key` PEM files into `dir` as `<name>.pem` and `<name>.key`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, &self.cert_pem).unwrap();
        std::fs::write(&k, &self.key_pem).unwrap();
        (c, k)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config presenting `cert`; with `clients`, a client certificate from that CA is
/// required (mutual TLS).
pub fn server_config(cert: &Issued, clients: Option<&Ca>) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider())
                .build()
                .unwrap(),
        ),
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
    Arc::new(
        builder
            .with_single_cert(vec![cert.der.clone()], key)
            .unwrap(),
    )
}

/// Handshakes a front completed (all, and the resumed ones among them).
#[derive(Debug, Default)]
pub struct Counts {
    pub handshakes: AtomicU64,
    pub resumed: AtomicU64,
    pub failed: AtomicU64,
}

impl Counts {
    /// (handshakes, resumed, failed) so far.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.handshakes.load(Ordering::SeqCst),
            self.resumed.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

pub struct Front {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    _server: Loopback,
}

impl Front {
    /// TLS on 127.0.0.1:0 with `config`, relaying to `backend`.
    pub fn start(backend: SocketAddr, config: Arc<ServerConfig>) -> Front {
        Front::start_on("127.0.0.1", backend, config)
    }

    /// The same on `ip` (another loopback address is another server name for TLS sessions).
    pub fn start_on(ip: &str, backend: SocketAddr, config: Arc<ServerConfig>) -> Front {
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let acceptor = TlsAcceptor::from(config);
        let server = Loopback::serve((ip, 0), move |sock| {
            relay(sock, acceptor.clone(), backend, c.clone())
        });
        Front {
            addr: server.addr,
            counts,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

async fn relay(sock: TcpStream, acceptor: TlsAcceptor, backend: SocketAddr, counts: Arc<Counts>) {
    let mut tls = match acceptor.accept(sock).await {
        Ok(t) => t,
        Err(_) => {
            counts.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    counts.handshakes.fetch_add(1, Ordering::SeqCst);
    if tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
        counts.resumed.fetch_add(1, Ordering::SeqCst);
    }
    let Ok(mut plain) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}

/// `http://127.0.0.1:8123` (or `127.0.0.1:2181`) → its socket address.
pub fn backend(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}
