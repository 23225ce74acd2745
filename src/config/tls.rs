//! The TLS client settings of one cluster, built from `[clusters.X.tls]`: which CAs are trusted
//! (the certificates of `ca_file` *instead of* the Mozilla roots compiled into chops from
//! webpki-roots), an optional client certificate (mutual TLS), and an optional name to verify
//! servers against. Adapters take a built [`Tls`]; nothing here can turn verification off.
//!
//! Files are read with a size cap (a PEM file is small; `/dev/zero` must not hang `config check`)
//! and errors name the file, never its contents (a key file holds a secret).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

use super::TlsConfig;
use crate::domain::url;

mod sessions;
use sessions::Sessions;

/// A PEM file larger than this is refused (a full system CA bundle is ~220 KB).
const MAX_PEM_BYTES: u64 = 4 << 20;

/// What a cluster's TLS connections use: a rustls client config and an optional server name.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    roots: Roots,
    client_cert: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roots {
    /// Mozilla's root program, compiled in (webpki-roots).
    Builtin,
    /// Only the CAs of `ca_file`.
    CaFile,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("roots", &self.roots)
            .field("client_cert", &self.client_cert)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A `[clusters.X.tls]` key that is wrong, and why (the message names the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFileError {
    /// `ca_file`, `cert_file`, `key_file` or `server_name`.
    pub key: &'static str,
    pub message: String,
}

impl Default for Tls {
    /// The built-in roots, no client certificate: what an https:// URL gets without `[tls]`.
    fn default() -> Tls {
        static DEFAULT: OnceLock<Tls> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Tls {
                config: Arc::new(
                    client_config(builtin_roots(), None, &TlsConfig::default())
                        .expect("without a client certificate nothing can fail"),
                ),
                server_name: None,
                roots: Roots::Builtin,
                client_cert: false,
            })
            .clone()
    }
}

impl Tls {
    /// Build the settings of one cluster; relative paths are relative to `base` (the config
    /// file's directory). `None`: [`Tls::default`]. Every problem is returned, not the first.
    ///
    /// The same settings and file contents give the same [`Tls`] back: rustls resumes a session
    /// only under the config that verified it, so a cluster resolved again (`chops serve`)
    /// resumes its sessions instead of shaking hands in full. Changed files build a new one.
    pub fn load(settings: Option<&TlsConfig>, base: &Path) -> Result<Tls, Vec<TlsFileError>> {
        static BUILT: OnceLock<Mutex<HashMap<TlsConfig, (u64, Tls)>>> = OnceLock::new();
        let Some(s) = settings else {
            return Ok(Tls::default());
        };
        let resolved = resolve(s, base);
        // Taken before the files are parsed: a file changed in between is built again next time.
        let fingerprint = fingerprint(&resolved);
        let built = BUILT.get_or_init(Default::default);
        let lock = || built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((fp, tls)) = lock().get(&resolved) {
            if *fp == fingerprint {
                return Ok(tls.clone());
            }
        }
        let tls = build(&resolved)?;
        lock().insert(resolved, (fingerprint, tls.clone()));
        Ok(tls)
    }

    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name to verify `host` (from a URL, IPv6 without brackets) against, and to send as SNI.
    pub fn server_name(&self, host: &str) -> Option<ServerName<'static>> {
        match &self.server_name {
            Some(n) => Some(n.clone()),
            None => ServerName::try_from(host.to_string()).ok(),
        }
    }

    /// A client certificate is configured (mutual TLS).
    pub fn has_client_cert(&self) -> bool {
        self.client_cert
    }
}

/// Parse the files of `resolved` (paths absolute) and build the rustls config.
fn build(resolved: &TlsConfig) -> Result<Tls, Vec<TlsFileError>> {
    let server_name = resolved.server_name.as_ref().map(|n| {
        ServerName::try_from(n.clone()).map_err(|_| TlsFileError {
            key: "server_name",
            message: format!("'{}' is not a valid DNS name or IP address", url::shown(n)),
        })
    });
    let roots = match &resolved.ca_file {
        Some(p) => ca_roots(Path::new(p)).map(|r| (r, Roots::CaFile)),
        None => Ok((builtin_roots(), Roots::Builtin)),
    };
    let client = match (&resolved.cert_file, &resolved.key_file) {
        (Some(c), Some(k)) => client_cert(Path::new(c), Path::new(k)).map(Some),
        (None, None) => Ok(None),
        (Some(_), None) => Err(missing("key_file", "cert_file")),
        (None, Some(_)) => Err(missing("cert_file", "key_file")),
    };
    match (server_name.transpose(), roots, client) {
        (Ok(server_name), Ok((roots, kind)), Ok(client)) => {
            let client_cert = client.is_some();
            let config = client_config(roots, client, resolved).map_err(|e| vec![e])?;
            Ok(Tls {
                config: Arc::new(config),
                server_name,
                roots: kind,
                client_cert,
            })
        }
        (a, b, c) => Err([a.err(), b.err(), c.err()].into_iter().flatten().collect()),
    }
}

/// A hash of the files' bytes (capped as when parsed; an unreadable file hashes as absent).
fn fingerprint(resolved: &TlsConfig) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in [&resolved.ca_file, &resolved.cert_file, &resolved.key_file] {
        p.as_ref()
            .and_then(|p| read_capped("ca_file", Path::new(p)).ok())
            .hash(&mut h);
    }
    h.finish()
}

/// `settings` with its paths made absolute (the key of built configs).
fn resolve(s: &TlsConfig, base: &Path) -> TlsConfig {
    let abs = |p: &Option<String>| {
        p.as_ref().map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
                .display()
                .to_string()
        })
    };
    TlsConfig {
        ca_file: abs(&s.ca_file),
        cert_file: abs(&s.cert_file),
        key_file: abs(&s.key_file),
        server_name: s.server_name.clone(),
    }
}

fn missing(key: &'static str, other: &str) -> TlsFileError {
    TlsFileError {
        key,
        message: format!("is needed with `{other}` (a client certificate and its key)"),
    }
}

fn builtin_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A rustls config with ring, TLS 1.2 and 1.3, and a session store of its own (see `sessions`).
fn client_config(
    roots: RootCertStore,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    key: &TlsConfig,
) -> Result<ClientConfig, TlsFileError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, private)) => builder.with_client_auth_cert(chain, private).map_err(|e| {
            let path = |p: &Option<String>| PathBuf::from(p.as_deref().unwrap_or(""));
            key_problem(&e, &path(&key.key_file), &path(&key.cert_file))
        })?,
    };
    config.resumption = Resumption::store(Arc::new(Sessions::default()));
    Ok(config)
}

fn key_problem(e: &rustls::Error, key: &Path, cert: &Path) -> TlsFileError {
    let key = url::shown(&key.display().to_string());
    let cert = url::shown(&cert.display().to_string());
    let message = match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{key}: the key does not match the certificate in {cert}")
        }
        _ => format!("{key}: the key cannot sign for {cert} ({e})"),
    };
    TlsFileError {
        key: "key_file",
        message,
    }
}

/// The file's bytes, at most [`MAX_PEM_BYTES`].
fn read_capped(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let shown = url::shown(&path.display().to_string());
    let fail = |message: String| TlsFileError { key, message };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("{shown}: cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("{shown}: cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(fail(format!(
            "{shown}: larger than {} MiB; not a PEM file",
            MAX_PEM_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Every CERTIFICATE block of the PEM file at `path` (at least one).
fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let shown = url::shown(&path.display().to_string());
    let bytes = read_capped(key, path)?;
    // The parser's own messages may quote a line of the file: say only that it is not PEM.
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsFileError {
            key,
            message: format!("{shown}: not a valid PEM file"),
        })?;
    if certs.is_empty() {
        return Err(TlsFileError {
            key,
            message: format!("{shown}: holds no PEM certificate (BEGIN CERTIFICATE)"),
        });
    }
    Ok(certs)
}

fn ca_roots(path: &Path) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for (i, der) in certificates("ca_file", path)?.into_iter().enumerate() {
        roots.add(der).map_err(|e| TlsFileError {
            key: "ca_file",
            message: format!(
                "{}: certificate {} cannot be a trust anchor ({e})",
                url::shown(&path.display().to_string()),
                i + 1
            ),
        })?;
    }
    Ok(roots)
}

fn client_cert(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsFileError> {
    let chain = certificates("cert_file", cert)?;
    let shown = url::shown(&key.display().to_string());
    let bytes = read_capped("key_file", key)?;
    let private = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsFileError {
        key: "key_file",
        message: format!("{shown}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
    })?;
    // The key must match the certificate: checked here, so it is reported with other problems.
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain.clone(), private.clone_key(), &provider)
        .map_err(|e| key_problem(&e, key, cert))?;
    Ok((chain, private))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a CA, a client certificate it signed, a key that matches, and one
    /// that does not.
    fn files(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chops-tls-unit-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["chops".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        for (name, text) in [
            ("ca.pem", ca.pem()),
            ("cert.pem", cert.pem()),
            ("key.pem", key.serialize_pem()),
            ("other-key.pem", other.serialize_pem()),
            (
                "junk.pem",
                "-----BEGIN CERTIFICATE-----\nnot base64!\n".to_string(),
            ),
            ("empty.pem", "# nothing here\n".to_string()),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn settings(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsConfig {
        TlsConfig {
            ca_file: ca.map(String::from),
            cert_file: cert.map(String::from),
            key_file: key.map(String::from),
            server_name: None,
        }
    }

    fn problems(s: &TlsConfig, dir: &Path) -> Vec<String> {
        match Tls::load(Some(s), dir) {
            Ok(_) => Vec::new(),
            Err(list) => list
                .into_iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect(),
        }
    }

    #[test]
    fn good_files_load() {
        let dir = files("good");
        let s = settings(Some("ca.pem"), Some("cert.pem"), Some("key.pem"));
        let tls = Tls::load(Some(&s), &dir).expect("loads");
        assert!(tls.has_client_cert());
        assert_eq!(tls.roots, Roots::CaFile);
        assert!(Tls::default().roots == Roots::Builtin && !Tls::default().has_client_cert());
        // Loaded again unchanged (a cluster resolved again): the same config, so sessions resume.
        let again = Tls::load(Some(&s), &dir).unwrap();
        assert!(Arc::ptr_eq(&tls.config, &again.config));
        // A changed file: a new config.
        let other = rcgen::KeyPair::generate().unwrap();
        let ca2 = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&other)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca2.pem()).unwrap();
        let changed = Tls::load(Some(&s), &dir).unwrap();
        assert!(!Arc::ptr_eq(&tls.config, &changed.config));
    }

    #[test]
    fn problems_name_the_file_and_never_its_contents() {
        let dir = files("bad");
        let d = dir.display();
        let cases: Vec<(TlsConfig, Vec<String>)> = vec![
            (
                settings(Some("ca.pem"), Some("cert.pem"), Some("other-key.pem")),
                vec![format!(
                    "key_file: {d}/other-key.pem: the key does not match the certificate in {d}/cert.pem"
                )],
            ),
            (
                settings(Some("missing.pem"), Some("cert.pem"), Some("empty.pem")),
                vec![
                    format!("ca_file: {d}/missing.pem: cannot read: No such file or directory (os error 2)"),
                    format!("key_file: {d}/empty.pem: holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
                ],
            ),
            (
                settings(Some("junk.pem"), None, None),
                vec![format!("ca_file: {d}/junk.pem: not a valid PEM file")],
            ),
            (
                settings(Some("empty.pem"), None, Some("key.pem")),
                vec![
                    format!("ca_file: {d}/empty.pem: holds no PEM certificate (BEGIN CERTIFICATE)"),
                    "cert_file: is needed with `key_file` (a client certificate and its key)".into(),
                ],
            ),
            (
                settings(Some("/dev/zero"), None, None),
                vec!["ca_file: /dev/zero: larger than 4 MiB; not a PEM file".into()],
            ),
        ];
        for (s, want) in cases {
            assert_eq!(problems(&s, &dir), want, "{s:?}");
        }
        let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
        let secret_line = key.lines().nth(1).unwrap();
        let shown = problems(&settings(Some("key.pem"), None, None), &dir).join("\n");
        assert!(!shown.contains(secret_line), "{shown}");
    }

    #[test]
    fn server_name_overrides_the_host() {
        let mut s = settings(None, None, None);
        s.server_name = Some("ch.example.com".into());
        let tls = Tls::load(Some(&s), Path::new("")).unwrap();
        assert_eq!(
            tls.server_name("10.0.0.1").unwrap().to_str(),
            "ch.example.com"
        );
        assert_eq!(Tls::default().server_name("::1").unwrap().to_str(), "::1");
    }
}
