//! TLS for the adapters: the handshake over a connected TCP stream (bounded in time, verified
//! against the cluster's [`Tls`] settings) and rustls' errors said in words on-call can act on.
//!
//! The handshake runs under the capped transport (see `capped`): every byte of an answer is
//! counted after decryption, and rustls itself bounds what a handshake may buffer.

use std::io;
use std::time::Duration;

use rustls::pki_types::UnixTime;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub use crate::config::Tls;
use crate::domain::text;

/// Shake hands with `host` (from the URL, IPv6 without brackets) over `tcp` within `limit`.
pub async fn handshake(
    tls: &Tls,
    host: &str,
    tcp: TcpStream,
    limit: Duration,
) -> io::Result<TlsStream<TcpStream>> {
    let name = tls.server_name(host).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the host is not a valid TLS server name (set `tls.server_name`)",
        )
    })?;
    let connecting = TlsConnector::from(tls.config()).connect(name, tcp);
    match tokio::time::timeout(limit, connecting).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// What went wrong, if `e` carries a TLS failure.
pub fn failure(e: &io::Error) -> Option<String> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(text::clip(&words(tls), 300))
}

/// A rustls error as one line that says what is wrong and, where it is chops' side, what to set.
fn words(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => certificate(c),
        E::AlertReceived(a) => alert(*a),
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => {
            "the server does not speak TLS there (a plain http:// port?)".into()
        }
        E::PeerIncompatible(_) => {
            "the server offers no TLS version or cipher chops accepts (TLS 1.2 or 1.3)".into()
        }
        other => format!("TLS failed: {other}"),
    }
}

fn certificate(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => {
            "certificate not trusted (unknown issuer): set `tls.ca_file` to the CA that signed it"
                .into()
        }
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<String> = presented.iter().filter_map(|n| san(n)).collect();
            let shown = match names.len() {
                0 => "no host name".to_string(),
                1..=3 => names.join(", "),
                n => format!("{} (+{} more)", names[..3].join(", "), n - 3),
            };
            format!("certificate is for {shown}, not {}", expected.to_str())
        }
        C::NotValidForName => "certificate is not for this host name".into(),
        C::ExpiredContext { not_after, .. } => {
            format!("certificate expired on {}", date(*not_after))
        }
        C::Expired => "certificate expired".into(),
        C::NotValidYetContext { not_before, .. } => {
            format!("certificate not valid before {}", date(*not_before))
        }
        C::NotValidYet => "certificate not valid yet".into(),
        C::Revoked => "certificate revoked".into(),
        C::BadSignature => "certificate signature does not verify".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "certificate is not for TLS servers (extended key usage)".into()
        }
        other => format!("certificate rejected ({other:?})"),
    }
}

/// A subject alternative name as webpki reports it (`DnsName("h")`, `IpAddress(1.2.3.4)`).
fn san(n: &str) -> Option<String> {
    let inner = n
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            n.strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        })?;
    Some(text::clip(inner, 100))
}

fn alert(a: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match a {
        A::CertificateRequired => {
            "server wants a client certificate: set `tls.cert_file` and `tls.key_file`".into()
        }
        A::HandshakeFailure => "server refused the handshake (handshake_failure): it may want a \
             client certificate (`tls.cert_file`, `tls.key_file`)"
            .into(),
        A::BadCertificate
        | A::UnknownCA
        | A::CertificateUnknown
        | A::UnsupportedCertificate
        | A::CertificateExpired
        | A::CertificateRevoked
        | A::AccessDenied => format!("server refused chops' client certificate ({a:?})"),
        other => format!("server ended the TLS handshake ({other:?})"),
    }
}

/// `2024-01-31 23:59:59 UTC`.
fn date(t: UnixTime) -> String {
    let secs = t.as_secs().min(i64::MAX as u64) as i64;
    match jiff::Timestamp::from_second(secs) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("unix time {secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{AlertDescription, CertificateError, Error};

    #[test]
    fn failures_say_what_is_wrong() {
        let cases: Vec<(Error, &str)> = vec![
            (
                CertificateError::UnknownIssuer.into(),
                "certificate not trusted (unknown issuer)",
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("ch-1").unwrap(),
                    presented: vec![
                        "DnsName(\"other-host\")".into(),
                        "IpAddress(10.0.0.9)".into(),
                    ],
                }
                .into(),
                "certificate is for other-host, 10.0.0.9, not ch-1",
            ),
            (
                CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000)),
                    not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_704_067_199)),
                }
                .into(),
                "certificate expired on 2023-12-31 23:59:59 UTC",
            ),
            (
                Error::AlertReceived(AlertDescription::CertificateRequired),
                "server wants a client certificate",
            ),
            (
                Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "does not speak TLS",
            ),
        ];
        for (e, want) in cases {
            let io = io::Error::new(io::ErrorKind::InvalidData, e);
            let got = failure(&io).expect("a TLS failure");
            assert!(got.starts_with(want) || got.contains(want), "{got}");
        }
        assert_eq!(failure(&io::Error::other("plain")), None);
    }
}
