//! Strict parsing of the few URL shapes chops accepts (`http[s]://host[:port][/path]`,
//! `[tls://]host:port`) and redaction of URL-like text for messages. Pure: no I/O, no DNS.
//!
//! Errors never contain the input: a config value may hold a password pasted by mistake, and
//! these messages end up on terminals, in logs and in Discord.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a URL or `host:port` was refused. The Display never repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// https where only plain http makes sense (a local health check, an HTTP proxy).
    #[error("https is not supported here; use http://")]
    Https,
    /// The scheme, if it looks like one (a scheme is never a secret; anything else might be).
    #[error("{}", scheme_message(.0))]
    Scheme(Option<String>),
    /// The same where only `http://` is accepted.
    #[error("{}", plain_scheme_message(.0))]
    PlainScheme(Option<String>),
    /// A Keeper node with a scheme other than `tls://`.
    #[error("{}", keeper_scheme_message(.0))]
    KeeperScheme(Option<String>),
    #[error("credentials do not belong in the URL; set `user` and `password_env`")]
    Credentials,
    /// Carries the redacted URL.
    #[error("query strings and fragments are not allowed (`{0}`)")]
    QueryOrFragment(String),
    #[error("contains whitespace or a control character")]
    Whitespace,
    #[error("has no host")]
    NoHost,
    #[error("the host is not a valid DNS name, IPv4 address or [IPv6] address")]
    BadHost,
    #[error("IPv6 addresses go in brackets, e.g. [::1]:8123")]
    Ipv6NeedsBrackets,
    #[error("has no port (expected host:port)")]
    NoPort,
    #[error("the port must be a number from 1 to 65535")]
    BadPort,
}

fn scheme_message(scheme: &Option<String>) -> String {
    match scheme {
        Some(s) => format!("only http:// and https:// URLs are supported, not {s}://"),
        None => "is not an http:// or https:// URL".into(),
    }
}

fn plain_scheme_message(scheme: &Option<String>) -> String {
    match scheme {
        Some(s) => format!("only http:// URLs are supported, not {s}://"),
        None => "is not an http:// URL".into(),
    }
}

fn keeper_scheme_message(scheme: &Option<String>) -> String {
    match scheme {
        Some(s) => format!("Keeper nodes are host:port or tls://host:port, not {s}://"),
        None => "Keeper nodes are host:port or tls://host:port".into(),
    }
}

/// A validated `http://` or `https://` URL: host (IPv6 without brackets), port (default 80, or
/// 443 with TLS), path (maybe "").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`: spoken over TLS.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HttpUrl {
    /// A plain `http://` URL (an https one is refused with [`UrlError::Https`]).
    pub fn parse(s: &str) -> Result<HttpUrl, UrlError> {
        match HttpUrl::parse_server(s) {
            Ok(u) if u.tls => Err(UrlError::Https),
            Err(UrlError::Scheme(shown)) => Err(UrlError::PlainScheme(shown)),
            r => r,
        }
    }

    /// A server URL: `http://` or `https://` (replicas, discovery seeds and hosts).
    pub fn parse_server(s: &str) -> Result<HttpUrl, UrlError> {
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Whitespace);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(UrlError::Scheme(None));
        };
        let tls = scheme.eq_ignore_ascii_case("https");
        if !tls && !scheme.eq_ignore_ascii_case("http") {
            let shown =
                (is_scheme(scheme) && scheme.len() <= 16).then(|| scheme.to_ascii_lowercase());
            return Err(UrlError::Scheme(shown));
        }
        // Any '@' after the scheme: a password may itself hold '/', '?' or '#', so we do not
        // try to find where the authority ends before refusing.
        if rest.contains('@') {
            return Err(UrlError::Credentials);
        }
        if rest.contains(['?', '#']) {
            return Err(UrlError::QueryOrFragment(redact(s)));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = split_authority(authority)?;
        Ok(HttpUrl {
            tls,
            host,
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            path: path.to_string(),
        })
    }

    /// `http[s]://host:port[/path]`, IPv6 in brackets; a bare "/" path is dropped.
    pub fn base(&self) -> String {
        let path = if self.path == "/" { "" } else { &self.path };
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority())
    }

    /// The host is this machine: `localhost`, 127.0.0.0/8 or ::1 (traffic never leaves it).
    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_end_matches('.');
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
            || h.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
    }

    /// `host:port`, IPv6 in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `host:port` with the port required (Keeper nodes); `[v6]:port` allowed. Host without brackets.
pub fn parse_host_port(s: &str) -> Result<(String, u16), UrlError> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::Whitespace);
    }
    match split_authority(s)? {
        (host, Some(port)) => Ok((host, port)),
        (_, None) => Err(UrlError::NoPort),
    }
}

/// A Keeper node: `host:port`, or `tls://host:port` for the four-letter words over TLS.
/// Returns (tls, host without brackets, port).
pub fn parse_keeper(s: &str) -> Result<(bool, String, u16), UrlError> {
    let (tls, rest) = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tls") => (true, rest),
        Some((scheme, _)) => {
            let shown =
                (is_scheme(scheme) && scheme.len() <= 16).then(|| scheme.to_ascii_lowercase());
            return Err(UrlError::KeeperScheme(shown));
        }
        None => (false, s),
    };
    let (host, port) = parse_host_port(rest)?;
    Ok((tls, host, port))
}

/// A DNS name, an IPv4 literal or a bare (unbracketed) IPv6 literal.
pub fn valid_host(h: &str) -> bool {
    h.parse::<Ipv4Addr>().is_ok() || h.parse::<Ipv6Addr>().is_ok() || valid_dns_name(h)
}

fn valid_dns_name(h: &str) -> bool {
    let name = h.strip_suffix('.').unwrap_or(h);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels_ok = name.split('.').all(|l| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    // An all-digit last label is not a name: resolvers would read "10.1" or "999.0.0.1" as
    // (odd or invalid) IPv4, so only real IPv4 literals may look like that.
    let last = name.rsplit('.').next().unwrap_or("");
    labels_ok && !last.bytes().all(|b| b.is_ascii_digit())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`. Host returned without brackets.
fn split_authority(a: &str) -> Result<(String, Option<u16>), UrlError> {
    if a.is_empty() {
        return Err(UrlError::NoHost);
    }
    let (host, port) = if let Some(inner) = a.strip_prefix('[') {
        let (v6, after) = inner.split_once(']').ok_or(UrlError::BadHost)?;
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(UrlError::BadHost);
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::BadHost)?),
        };
        (v6, port)
    } else {
        match a.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                // Bare IPv6 (or garbage): say how to write it only if it really is IPv6.
                let v6 = |x: &str| x.parse::<Ipv6Addr>().is_ok();
                return Err(if v6(a) || a.rsplit_once(':').is_some_and(|(x, _)| v6(x)) {
                    UrlError::Ipv6NeedsBrackets
                } else {
                    UrlError::BadHost
                });
            }
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if !(host.contains(':') || host.parse::<Ipv4Addr>().is_ok() || valid_dns_name(host)) {
        return Err(UrlError::BadHost);
    }
    let port = port.map(parse_port).transpose()?;
    Ok((host.to_string(), port))
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    // Digits only (no '+', no sign), and few enough that the parse cannot overflow.
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::BadPort);
    }
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(UrlError::BadPort),
    }
}

fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// URL-like text made safe to show: userinfo becomes `***@`, a query `?***`, a fragment `#***`,
/// control characters are escaped. Errs towards hiding too much; never panics.
pub fn redact(s: &str) -> String {
    let (scheme, rest) = match s.find("://") {
        Some(i) if is_scheme(&s[..i]) => s.split_at(i + 3),
        _ => ("", s),
    };
    let (head, tail) = match rest.find(['?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if tail.contains('@') {
        // Either the '@' is in the query, or the '?'/'#' is inside a password: we cannot tell,
        // so show nothing past the scheme.
        return format!("{}***", escape(scheme));
    }
    // The last '@' before any query, even past a '/': a raw password may contain '/'.
    let head = match head.rfind('@') {
        Some(i) => format!("***@{}", &head[i + 1..]),
        None => head.to_string(),
    };
    let tail = tail
        .chars()
        .next()
        .map(|c| format!("{c}***"))
        .unwrap_or_default();
    escape(&format!("{scheme}{head}{tail}"))
}

/// `s` fit for a one-line message: control and invisible/bidi characters escaped, clipped to
/// 100 characters. Not a redaction: use [`redact`] first for anything that may hold a secret.
pub fn shown(s: &str) -> String {
    const MAX: usize = 100;
    let clipped: String = s.chars().take(MAX).collect();
    let more = if s.chars().nth(MAX).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", escape(&clipped))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            // Line/paragraph separators, zero-width and bidi controls: they can break a line
            // or make a message read differently from what it says.
            '\u{2028}'
            | '\u{2029}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}' => out.push_str(&format!("\\u{{{:X}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host: &str, port: u16, path: &str) -> Result<HttpUrl, UrlError> {
        Ok(HttpUrl {
            tls: false,
            host: host.into(),
            port,
            path: path.into(),
        })
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<HttpUrl, UrlError>)] = &[
            ("HTTP://user:S3cret@h:1", Err(UrlError::Credentials)),
            (
                "ftp://user:S3cret@h",
                Err(UrlError::PlainScheme(Some("ftp".into()))),
            ),
            (
                "socks5://u:S3cret@h:1",
                Err(UrlError::PlainScheme(Some("socks5".into()))),
            ),
            ("https://h:8443", Err(UrlError::Https)),
            ("HTTPS://h", Err(UrlError::Https)),
            ("S3cret", Err(UrlError::PlainScheme(None))),
            ("S3cret!x://h", Err(UrlError::PlainScheme(None))),
            (
                "http://h:8123/?password=S3cret",
                Err(UrlError::QueryOrFragment("http://h:8123/?***".into())),
            ),
            (
                "http://h#frag",
                Err(UrlError::QueryOrFragment("http://h#***".into())),
            ),
            ("http://u:pa#S3cret@h", Err(UrlError::Credentials)),
            ("http://u:pa/S3cret@h", Err(UrlError::Credentials)),
            ("http://h:99999", Err(UrlError::BadPort)),
            ("http://h:123456", Err(UrlError::BadPort)),
            ("http://h:0", Err(UrlError::BadPort)),
            ("http://h:", Err(UrlError::BadPort)),
            ("http://h:+80", Err(UrlError::BadPort)),
            ("http://user:S3cret", Err(UrlError::BadPort)),
            ("http://:8123", Err(UrlError::NoHost)),
            ("http://", Err(UrlError::NoHost)),
            ("http:///x", Err(UrlError::NoHost)),
            ("http://bad host:8123", Err(UrlError::Whitespace)),
            (" http://h:1", Err(UrlError::Whitespace)),
            ("http://h:1\n", Err(UrlError::Whitespace)),
            ("http://h\u{7f}:1", Err(UrlError::Whitespace)),
            ("http://bad_host!:1", Err(UrlError::BadHost)),
            ("http://-h:1", Err(UrlError::BadHost)),
            ("http://h..x:1", Err(UrlError::BadHost)),
            ("http://999.0.0.1:1", Err(UrlError::BadHost)),
            ("http://::1:8123", Err(UrlError::Ipv6NeedsBrackets)),
            ("http://[::1", Err(UrlError::BadHost)),
            ("http://[::1]x", Err(UrlError::BadHost)),
            ("http://[zz]:1", Err(UrlError::BadHost)),
            ("http://[::1]:8123", ok("::1", 8123, "")),
            ("http://[::1]", ok("::1", 80, "")),
            ("http://127.0.0.1:8123", ok("127.0.0.1", 8123, "")),
            (
                "http://ch-1.example.com:8123/",
                ok("ch-1.example.com", 8123, "/"),
            ),
            (
                "HtTp://ch_1.example.com.:65535/ch/",
                ok("ch_1.example.com.", 65535, "/ch/"),
            ),
            ("http://h", ok("h", 80, "")),
        ];
        for (input, want) in cases {
            let got = HttpUrl::parse(input);
            assert_eq!(&got, want, "{input:?}");
            if let Err(e) = got {
                let msg = e.to_string();
                assert!(
                    !msg.contains("S3cret") && !msg.contains("user:"),
                    "{input:?}: {msg}"
                );
                assert!(!msg.contains(input), "{input:?} echoed: {msg}");
            }
        }
    }

    #[test]
    fn server_urls_take_https() {
        let u = HttpUrl::parse_server("HTTPS://ch-1.example.com:8443/").unwrap();
        assert!(u.tls && u.port == 8443, "{u:?}");
        assert_eq!(u.base(), "https://ch-1.example.com:8443");
        assert_eq!(HttpUrl::parse_server("https://h").unwrap().port, 443);
        assert!(!HttpUrl::parse_server("http://h").unwrap().tls);
        assert_eq!(
            HttpUrl::parse_server("https://u:S3cret@h"),
            Err(UrlError::Credentials)
        );
        let e = HttpUrl::parse_server("ftp://h").unwrap_err().to_string();
        assert_eq!(
            e,
            "only http:// and https:// URLs are supported, not ftp://"
        );
        for (h, local) in [
            ("http://127.0.0.9:1", true),
            ("http://localhost", true),
            ("http://[::1]:1", true),
            ("http://10.0.0.1", false),
            ("http://ch-1", false),
        ] {
            assert_eq!(HttpUrl::parse(h).unwrap().is_loopback(), local, "{h}");
        }
    }

    #[test]
    fn keeper_nodes() {
        assert_eq!(parse_keeper("zk:2181"), Ok((false, "zk".into(), 2181)));
        assert_eq!(
            parse_keeper("TLS://[::1]:2281"),
            Ok((true, "::1".into(), 2281))
        );
        assert_eq!(parse_keeper("tls://zk"), Err(UrlError::NoPort));
        assert_eq!(
            parse_keeper("https://zk:1"),
            Err(UrlError::KeeperScheme(Some("https".into())))
        );
        let e = parse_keeper("u:S3cret!://zk:1").unwrap_err().to_string();
        assert!(!e.contains("S3cret"), "{e}");
    }

    #[test]
    fn base_and_authority() {
        let u = HttpUrl::parse("http://[::1]:8123/").unwrap();
        assert_eq!(
            (u.base(), u.authority()),
            ("http://[::1]:8123".into(), "[::1]:8123".into())
        );
        let u = HttpUrl::parse("HTTP://ch-1:8123/ch").unwrap();
        assert_eq!(u.base(), "http://ch-1:8123/ch");
        assert_eq!(HttpUrl::parse("http://h").unwrap().base(), "http://h:80");
    }

    #[test]
    fn host_port_table() {
        let good: &[(&str, (&str, u16))] = &[
            ("zk1:2181", ("zk1", 2181)),
            ("10.0.0.1:9181", ("10.0.0.1", 9181)),
            ("[::1]:2181", ("::1", 2181)),
            (
                "keeper-1.example.com.:9181",
                ("keeper-1.example.com.", 9181),
            ),
        ];
        for (s, (h, p)) in good {
            assert_eq!(parse_host_port(s), Ok((h.to_string(), *p)), "{s}");
        }
        let bad: &[(&str, UrlError)] = &[
            ("x;touch pwned #:2181", UrlError::Whitespace),
            ("x;touch:2181", UrlError::BadHost),
            ("zk", UrlError::NoPort),
            ("zk:", UrlError::BadPort),
            ("zk:0", UrlError::BadPort),
            ("zk:70000", UrlError::BadPort),
            (":2181", UrlError::NoHost),
            ("::1:2181", UrlError::Ipv6NeedsBrackets),
            ("[::1]", UrlError::NoPort),
            ("u:S3cret@zk:2181", UrlError::BadHost),
            ("", UrlError::NoHost),
        ];
        for (s, want) in bad {
            let got = parse_host_port(s);
            assert_eq!(got.as_ref(), Err(want), "{s:?}");
            assert!(!got.unwrap_err().to_string().contains("S3cret"));
        }
    }

    #[test]
    fn hosts() {
        for h in [
            "h",
            "ch-1.example.com",
            "a_b",
            "x.",
            "127.0.0.1",
            "::1",
            "fe80::1",
            &"a".repeat(63),
        ] {
            assert!(valid_host(h), "{h}");
        }
        let long = ["a"; 127].join(".") + ".bb"; // 256 chars
        for h in [
            "",
            ".",
            "-a",
            "a-",
            "a..b",
            "a b",
            "h;x",
            "[::1]",
            "1.2.3",
            "300.1.1.1",
            "ä.com",
            &"a".repeat(64),
            &long,
        ] {
            assert!(!valid_host(h), "{h}");
        }
    }

    #[test]
    fn redact_table() {
        let cases = [
            ("HTTP://user:S3cret@h:1", "HTTP://***@h:1"),
            ("ftp://user:S3cret@h", "ftp://***@h"),
            ("http://h:8123/?password=S3cret", "http://h:8123/?***"),
            ("http://h#frag", "http://h#***"),
            ("http://u:pa/S3cret@h:1/x", "http://***@h:1/x"),
            ("http://u:pa#S3cret@h", "http://***"),
            ("http://h/?next=a@b&password=S3cret", "http://***"),
            ("user:S3cret@zk:2181", "***@zk:2181"),
            ("http://a@b@h", "http://***@h"),
            ("http://h:1\nx", "http://h:1\\nx"),
            ("http://h:1", "http://h:1"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input:?}");
        }
    }

    #[test]
    fn redact_never_panics_or_leaks() {
        // A small deterministic fuzz over awkward pieces, including multi-byte characters next
        // to every separator the redactor splits on.
        let parts = [
            "http",
            "://",
            ":",
            "@",
            "?",
            "#",
            "/",
            "[",
            "]",
            "S3cret",
            "é",
            "\u{1F600}",
            "\n",
            "\u{202E}",
            " ",
            "",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(seed % 9) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(parts[(seed % parts.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(1);
            let r = redact(&s);
            assert!(
                !r.contains('\n') && !r.contains('\u{202E}'),
                "{s:?} -> {r:?}"
            );
            // Whatever sits before the last '@' (after the scheme) never survives.
            let (scheme, rest) = match s.find("://") {
                Some(j) if is_scheme(&s[..j]) => s.split_at(j + 3),
                _ => ("", s.as_str()),
            };
            if let Some(at) = rest.rfind('@') {
                let visible = format!("{scheme}{}", &rest[at + 1..]);
                let n = |x: &str| x.matches("S3cret").count();
                assert!(n(&r) <= n(&visible), "{s:?} -> {r:?}");
            }
            let _ = HttpUrl::parse(&s);
            let _ = parse_host_port(&s);
            let _ = shown(&s);
        }
    }

    #[test]
    fn shown_escapes_and_clips() {
        assert_eq!(shown("a\nb\x01"), "a\\nb\\x01");
        let long = "x".repeat(150);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(100)));
        assert_eq!(shown(&"é".repeat(100)), "é".repeat(100));
    }
}
