//! The Docker packaging stays in sync with the crate: `Dockerfile`, `.dockerignore`,
//! `docker-compose.yml` and `deploy/compose/chops.toml` are read as text (no Docker engine, no
//! external process) and checked against `Cargo.toml` and `chops::config::DEFAULT_HTTP_LISTEN`.
//!
//! docker-compose.yml is parsed as YAML (`serde_norway`). The Dockerfile is read by the small
//! reader below, the way Docker reads it: comment lines dropped (also between continuation
//! lines), `\` continuation lines joined, the instruction keyword uppercased, stages split at
//! `FROM`. It stays hand-written: the Dockerfile parser crate there is would bring a PEG parser
//! generator and its own error stack into the tree for these few lines.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Files

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn cargo_toml() -> toml::Value {
    toml::from_str::<toml::Value>(&read("Cargo.toml")).expect("Cargo.toml parses as TOML")
}

/// The one `[[bin]] name` of Cargo.toml.
fn bin_name() -> String {
    let cargo = cargo_toml();
    let bins = cargo
        .get("bin")
        .and_then(|b| b.as_array())
        .expect("Cargo.toml has [[bin]] targets");
    assert_eq!(
        bins.len(),
        1,
        "Cargo.toml should declare exactly one [[bin]], the one the image ships"
    );
    bins[0]
        .get("name")
        .and_then(|n| n.as_str())
        .expect("[[bin]] has a name")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One instruction: its keyword uppercased, its arguments with continuation lines joined.
#[derive(Debug, Clone)]
struct Instr {
    /// 1-based line where the instruction starts.
    line: usize,
    keyword: String,
    args: String,
}

/// One build stage: `FROM <image> [AS <name>]` and the instructions after it.
#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    instrs: Vec<Instr>,
}

impl Stage {
    fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a Instr> + 'a {
        self.instrs.iter().filter(move |i| i.keyword == keyword)
    }

    fn last(&self, keyword: &str) -> Option<&Instr> {
        self.instrs.iter().rev().find(|i| i.keyword == keyword)
    }

    /// WORKDIR of this stage, else of the stage it starts FROM.
    fn workdir(&self, stages: &[Stage]) -> Option<String> {
        self.last("WORKDIR").map(|w| w.args.clone()).or_else(|| {
            stages
                .iter()
                .find(|s| s.name.as_deref() == Some(self.image.as_str()))
                .and_then(|parent| parent.workdir(stages))
        })
    }

    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.image.clone())
    }
}

/// Instructions in order. A line whose first non-blank character is `#` is a comment (parser
/// directives included), also between continuation lines, as Docker treats it; a line ending in
/// `\` continues on the next one. Only the default escape character is supported.
fn parse_dockerfile(text: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        assert!(
            !trimmed.to_ascii_lowercase().starts_with("# escape="),
            "Dockerfile:{}: only the default `\\` escape character is understood here",
            i + 1
        );
        // Blank lines, like comments, do not end a continuation.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (continues, body) = match trimmed.strip_suffix('\\') {
            Some(body) => (true, body.trim_end()),
            None => (false, trimmed),
        };
        let (line, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        if !body.is_empty() {
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(body);
        }
        if continues {
            pending = Some((line, joined));
        } else if !joined.is_empty() {
            out.push(split_instr(line, &joined));
        }
    }
    if let Some((line, joined)) = pending {
        panic!("Dockerfile:{line}: the last instruction ends in a `\\` continuation: `{joined}`");
    }
    out
}

fn split_instr(line: usize, text: &str) -> Instr {
    let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    Instr {
        line,
        keyword: keyword.to_ascii_uppercase(),
        args: args.trim().to_string(),
    }
}

/// Split at each `FROM`. Instructions before the first `FROM` (only `ARG` is allowed there) are
/// not part of any stage and are dropped.
fn stages(instrs: &[Instr]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for ins in instrs {
        if ins.keyword == "FROM" {
            let words: Vec<&str> = ins
                .args
                .split_whitespace()
                .filter(|w| !w.starts_with("--")) // --platform=...
                .collect();
            let image = words
                .first()
                .unwrap_or_else(|| panic!("Dockerfile:{}: FROM without an image", ins.line))
                .to_string();
            let name = match words.as_slice() {
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                _ => panic!("Dockerfile:{}: cannot read `FROM {}`", ins.line, ins.args),
            };
            out.push(Stage {
                image,
                name,
                instrs: Vec::new(),
            });
        } else if let Some(stage) = out.last_mut() {
            stage.instrs.push(ins.clone());
        } else {
            assert_eq!(
                ins.keyword, "ARG",
                "Dockerfile:{}: only ARG may come before the first FROM",
                ins.line
            );
        }
    }
    assert!(!out.is_empty(), "the Dockerfile has no FROM");
    out
}

fn dockerfile_stages() -> Vec<Stage> {
    stages(&parse_dockerfile(&read("Dockerfile")))
}

/// The stage the image is made of: the last one.
fn runtime(stages: &[Stage]) -> &Stage {
    stages.last().expect("at least one stage")
}

/// The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for the shell form.
fn exec_form(args: &str) -> Option<Vec<String>> {
    let args = args.trim();
    if !args.starts_with('[') {
        return None;
    }
    Some(
        serde_json::from_str::<Vec<String>>(args).unwrap_or_else(|e| {
            panic!("`{args}` starts like an exec-form JSON array but does not parse: {e}")
        }),
    )
}

/// `--flag value` or `--flag=value` among whitespace-separated words.
fn flag_value(words: &[&str], flag: &str) -> Option<String> {
    let with_eq = format!("{flag}=");
    words.iter().enumerate().find_map(|(i, w)| {
        if *w == flag {
            words.get(i + 1).map(|v| v.to_string())
        } else {
            w.strip_prefix(&with_eq).map(str::to_string)
        }
    })
}

/// The words of each `cargo <sub> ...` command in a RUN (shell form), up to `&&`, `;` or `|`.
fn cargo_invocations<'a>(run: &'a str, sub: &str) -> Vec<Vec<&'a str>> {
    let words: Vec<&str> = run.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if *w == "cargo" && words.get(i + 1) == Some(&sub) {
            let cmd = words[i..]
                .iter()
                .take_while(|w| !matches!(**w, "&&" | "||" | ";" | "|"))
                .copied()
                .collect();
            out.push(cmd);
        }
    }
    out
}

/// `ENV KEY=VALUE ...` (or the legacy `ENV KEY VALUE`) of a stage, the last setting winning.
fn env_value(stage: &Stage, key: &str) -> Option<String> {
    let mut value = None;
    for ins in stage.all("ENV") {
        if !ins.args.contains('=') {
            if let Some((k, v)) = ins.args.split_once(char::is_whitespace) {
                if k == key {
                    value = Some(v.trim().to_string());
                }
            }
            continue;
        }
        for pair in ins.args.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                if k == key {
                    value = Some(v.trim_matches('"').to_string());
                }
            }
        }
    }
    value
}

/// The single port of the runtime stage's `EXPOSE` (`9187` or `9187/tcp`).
fn exposed_port(stages: &[Stage]) -> u16 {
    let rt = runtime(stages);
    let ports: Vec<&str> = rt
        .all("EXPOSE")
        .flat_map(|i| i.args.split_whitespace())
        .collect();
    assert_eq!(
        ports.len(),
        1,
        "the runtime stage should EXPOSE exactly one port, found {ports:?}"
    );
    let port = ports[0].strip_suffix("/tcp").unwrap_or(ports[0]);
    port.parse()
        .unwrap_or_else(|e| panic!("EXPOSE `{}` is not a port: {e}", ports[0]))
}

// ---------------------------------------------------------------------------------------------
// Image references

/// An image reference split into repository, tag and digest, e.g.
/// `registry:5000/library/rust:1.89-slim@sha256:...`. The tag is what follows the last `:` after
/// the last `/` (a `:` before that is a registry port).
#[derive(Debug, PartialEq)]
struct ImageRef<'a> {
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

fn image_ref(reference: &str) -> ImageRef<'_> {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(c) => ImageRef {
            repository: &name[..last_slash + c],
            tag: Some(&name[last_slash + c + 1..]),
            digest,
        },
        None => ImageRef {
            repository: name,
            tag: None,
            digest,
        },
    }
}

/// Pinned: a digest, or a tag other than `latest` (an absent tag means `latest`).
fn is_pinned(reference: &str) -> bool {
    let r = image_ref(reference);
    r.digest.is_some() || r.tag.is_some_and(|t| !t.is_empty() && t != "latest")
}

/// The repository without registry host and `library/` prefix: `docker.io/library/rust` → `rust`.
fn short_repository(repository: &str) -> &str {
    let mut rest = repository;
    if let Some((first, after)) = rest.split_once('/') {
        if first.contains('.') || first.contains(':') || first == "localhost" {
            rest = after;
        }
    }
    rest.strip_prefix("library/").unwrap_or(rest)
}

/// Leading `major.minor` of a version or tag: `1.89-slim-bookworm` → (1, 89).
fn major_minor(s: &str) -> Option<(u32, u32)> {
    let (major, rest) = s.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The Debian release a tag names (`rust:1.89-slim-bookworm`, `debian:bookworm-slim`).
fn debian_codename(tag: &str) -> Option<&'static str> {
    ["buster", "bullseye", "bookworm", "trixie", "forky"]
        .into_iter()
        .find(|c| tag.split(['-', '.', '_']).any(|part| part == *c))
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// docker-compose.yml parsed as YAML, anchors resolved and `<<` merge keys applied.
fn compose_yaml(text: &str) -> serde_norway::Value {
    let mut v: serde_norway::Value =
        serde_norway::from_str(text).unwrap_or_else(|e| panic!("docker-compose.yml: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("docker-compose.yml: merge keys: {e}"));
    v
}

/// One service of docker-compose.yml, as these tests read it: scalars, and lists in the short
/// syntax (`- "127.0.0.1:1:2"`, `- ./a:/b:ro`, flow or block); a long-syntax item (a mapping)
/// fails loudly rather than being misread.
#[derive(Debug)]
struct ComposeService(serde_norway::Value);

impl ComposeService {
    fn from_compose(text: &str, service: &str) -> ComposeService {
        let yaml = compose_yaml(text);
        let services = yaml
            .get("services")
            .expect("docker-compose.yml has `services:`");
        let body = services
            .get(service)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service `{service}:`"));
        assert!(body.is_mapping(), "service `{service}` is not a mapping");
        ComposeService(body.clone())
    }

    /// `key: value` for a scalar value, as text; None for a missing key or a list or mapping.
    fn scalar(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            serde_norway::Value::String(s) => Some(s.clone()),
            serde_norway::Value::Number(n) => Some(n.to_string()),
            serde_norway::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A list-valued key (empty when missing): its items, each a short-syntax string.
    fn list(&self, key: &str) -> Vec<String> {
        let Some(v) = self.0.get(key) else {
            return Vec::new();
        };
        let items = v
            .as_sequence()
            .unwrap_or_else(|| panic!("compose `{key}` is not a list: {v:?}"));
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .unwrap_or_else(|| {
                        panic!(
                            "compose `{key}` item {item:?}: only the short syntax is understood here"
                        )
                    })
                    .to_string()
            })
            .collect()
    }
}

fn compose_text() -> String {
    read("docker-compose.yml")
}

fn chops_service() -> ComposeService {
    ComposeService::from_compose(&compose_text(), "chops")
}

/// `HOST:CONTAINER[:MODE]` of a short-syntax volume.
fn volume_parts(v: &str) -> (&str, &str, Option<&str>) {
    let parts: Vec<&str> = v.split(':').collect();
    match parts.as_slice() {
        [src, dst] => (*src, *dst, None),
        [src, dst, mode] => (*src, *dst, Some(*mode)),
        _ => panic!("compose volume `{v}` is not HOST:CONTAINER[:MODE]"),
    }
}

/// A short-syntax port: (host IP, container port) of `[IP:][HOST:]CONTAINER[/PROTO]` (IPv4).
fn port_parts(p: &str) -> (Option<&str>, u16) {
    let p = p.split('/').next().unwrap_or(p);
    let parts: Vec<&str> = p.split(':').collect();
    let ip = (parts.len() == 3).then(|| parts[0]);
    let container = parts.last().expect("split yields one part");
    let port = container.parse().unwrap_or_else(|e| {
        panic!("compose port `{p}`: container side `{container}` is not a port: {e}")
    });
    (ip, port)
}

/// The `image:` of every service (merge keys applied: a service inherits its anchor's image).
fn compose_images(text: &str) -> Vec<String> {
    let yaml = compose_yaml(text);
    yaml.get("services")
        .and_then(|s| s.as_mapping())
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|svc| svc.get("image")?.as_str().map(str::to_string))
        .collect()
}

/// The chops config the compose service mounts (its host path, relative to the repository) and
/// where it goes in the container.
fn compose_config_mount() -> (String, String) {
    let svc = chops_service();
    let mounts: Vec<(String, String)> = svc
        .list("volumes")
        .iter()
        .map(|v| volume_parts(v))
        .filter(|(src, _, _)| src.ends_with(".toml"))
        .map(|(src, dst, mode)| {
            assert_eq!(
                mode,
                Some("ro"),
                "the config `{src}` should be mounted read-only (`:ro`)"
            );
            (src.trim_start_matches("./").to_string(), dst.to_string())
        })
        .collect();
    assert_eq!(
        mounts.len(),
        1,
        "the chops service should mount exactly one .toml config, found {mounts:?}"
    );
    mounts.into_iter().next().expect("checked above")
}

fn listen_port(listen: &str) -> u16 {
    listen
        .parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("`{listen}` is not host:port: {e}"))
        .port()
}

// ---------------------------------------------------------------------------------------------
// .dockerignore

/// Patterns of .dockerignore, anchored at the root, without leading `/` and trailing `/`.
fn dockerignore_patterns() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            assert!(
                !l.starts_with('!'),
                ".dockerignore: `{l}`: exceptions are not understood here"
            );
            l.trim_start_matches('/').trim_end_matches('/').to_string()
        })
        .collect()
}

/// Glob match of one path segment: `*` any run of characters, `?` one character.
fn segment_matches(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            segment_matches(&pat[1..], s) || (!s.is_empty() && segment_matches(pat, &s[1..]))
        }
        (Some(b'?'), Some(_)) => segment_matches(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => segment_matches(&pat[1..], &s[1..]),
        _ => false,
    }
}

/// Docker's rule: a pattern matches the whole path, segment by segment, `**` standing for any
/// number of segments.
fn path_matches(pat: &[&str], path: &[&str]) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            path_matches(&pat[1..], path) || (!path.is_empty() && path_matches(pat, &path[1..]))
        }
        (Some(p), Some(s)) => {
            segment_matches(p.as_bytes(), s.as_bytes()) && path_matches(&pat[1..], &path[1..])
        }
        _ => false,
    }
}

/// Whether `rel` (a repository-relative path) is left out of the build context: a pattern
/// matches it or one of its parent directories.
fn is_ignored(patterns: &[String], rel: &str) -> bool {
    let segs: Vec<&str> = rel.split('/').collect();
    (1..=segs.len()).any(|n| {
        patterns.iter().any(|p| {
            let pat: Vec<&str> = p.split('/').collect();
            path_matches(&pat, &segs[..n])
        })
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The literal paths of `include_str!("...")` / `include_bytes!("...")` in one source file,
/// resolved against its directory and made relative to the repository.
fn included_files(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("source file reads");
    let mut out = Vec::new();
    for mac in ["include_str!(", "include_bytes!("] {
        for (at, _) in text.match_indices(mac) {
            let rest = text[at + mac.len()..].trim_start();
            // Only plain string literals: concat!/env! forms are not resolved here.
            let Some(lit) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                continue;
            };
            let mut p = file.parent().expect("file has a directory").to_path_buf();
            for c in Path::new(lit).components() {
                match c {
                    Component::ParentDir => {
                        p.pop();
                    }
                    Component::Normal(s) => p.push(s),
                    _ => {}
                }
            }
            let rel = p.strip_prefix(root()).unwrap_or_else(|_| {
                panic!(
                    "{} includes `{lit}`, outside the repository",
                    file.display()
                )
            });
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn dockerfile_parser_joins_continuations_and_drops_comments() {
    let text =
        "# syntax=docker/dockerfile:1\nfrom rust:1 as b\nrun a \\\n  # note\n    && b\nUSER x\n";
    let instrs = parse_dockerfile(text);
    let got: Vec<(usize, &str, &str)> = instrs
        .iter()
        .map(|i| (i.line, i.keyword.as_str(), i.args.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "FROM", "rust:1 as b"),
            (3, "RUN", "a && b"),
            (6, "USER", "x")
        ]
    );
    let st = stages(&instrs);
    assert_eq!(
        (st[0].image.as_str(), st[0].name.as_deref()),
        ("rust:1", Some("b"))
    );
    assert_eq!(st[0].instrs.len(), 2);
}

#[test]
fn image_reference_helpers() {
    assert!(is_pinned("rust:1.89-slim-bookworm"));
    assert!(is_pinned("clickhouse/clickhouse-server:26.8"));
    assert!(is_pinned("debian@sha256:0123abcd"));
    assert!(
        !is_pinned("clickhouse/clickhouse-server"),
        "no tag means latest"
    );
    assert!(!is_pinned("clickhouse/clickhouse-server:latest"));
    assert!(
        !is_pinned("localhost:5000/chops"),
        "a registry port is not a tag"
    );
    assert_eq!(
        image_ref("localhost:5000/chops:1.2@sha256:ab"),
        ImageRef {
            repository: "localhost:5000/chops",
            tag: Some("1.2"),
            digest: Some("sha256:ab")
        }
    );
    assert_eq!(short_repository("docker.io/library/rust"), "rust");
    assert_eq!(short_repository("rust"), "rust");
    assert_eq!(
        short_repository("clickhouse/clickhouse-server"),
        "clickhouse/clickhouse-server"
    );
    assert_eq!(major_minor("1.89-slim-bookworm"), Some((1, 89)));
    assert_eq!(major_minor("1.89.0"), Some((1, 89)));
    assert_eq!(major_minor("slim-bookworm"), None);
    assert_eq!(debian_codename("1.89-slim-bookworm"), Some("bookworm"));
    assert_eq!(debian_codename("bookworm-slim"), Some("bookworm"));
    assert_eq!(debian_codename("1.89-slim"), None);
}

#[test]
fn compose_and_dockerignore_helpers() {
    let yaml = "services:\n  a:\n    image: x:1 # pinned\n    ports:\n      - \"127.0.0.1:1:2\"\n  \
                chops:\n    command: [\"serve\", 'x']\n    volumes:\n      - ./c.toml:/etc/c.toml:ro\n\n      \
                - data:/d\nvolumes:\n  data:\n";
    let svc = ComposeService::from_compose(yaml, "chops");
    assert_eq!(svc.list("command"), ["serve", "x"]);
    assert_eq!(svc.list("volumes"), ["./c.toml:/etc/c.toml:ro", "data:/d"]);
    assert!(
        svc.list("ports").is_empty(),
        "service a's ports are not chops'"
    );
    assert_eq!(compose_images(yaml), ["x:1"]);
    assert_eq!(
        port_parts("127.0.0.1:9187:9188/tcp"),
        (Some("127.0.0.1"), 9188)
    );
    assert_eq!(port_parts("9187"), (None, 9187));

    let pats: Vec<String> = ["target", "**/*.db", ".env"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(is_ignored(&pats, "target/release/chops"));
    assert!(is_ignored(&pats, "chops.db"));
    assert!(is_ignored(&pats, "config/state/chops.db"));
    assert!(is_ignored(&pats, ".env"));
    assert!(
        !is_ignored(&pats, ".env.example"),
        "patterns match whole segments"
    );
    assert!(!is_ignored(&pats, "src/target.rs"));
}

#[test]
fn dockerfile_builds_and_ships_the_cargo_bin() {
    let bin = bin_name();
    let st = dockerfile_stages();
    let rt = runtime(&st);

    // The stage that runs `cargo build --release --locked --bin <bin>`.
    let builds: Vec<(&Stage, Vec<&str>)> = st
        .iter()
        .flat_map(|s| {
            s.all("RUN").flat_map(move |r| {
                cargo_invocations(&r.args, "build")
                    .into_iter()
                    .map(move |c| (s, c))
            })
        })
        .collect();
    assert_eq!(
        builds.len(),
        1,
        "expected one `cargo build` in the Dockerfile, found {}",
        builds.len()
    );
    let (builder, build) = &builds[0];
    assert_eq!(
        flag_value(build, "--bin").as_deref(),
        Some(bin.as_str()),
        "`{}` should build the [[bin]] of Cargo.toml",
        build.join(" ")
    );
    for flag in ["--release", "--locked"] {
        assert!(build.contains(&flag), "`{}` lacks {flag}", build.join(" "));
    }

    // cargo-chef cooks the dependencies of the same binary before the sources are copied.
    let cooks: Vec<Vec<&str>> = builder
        .all("RUN")
        .flat_map(|r| cargo_invocations(&r.args, "chef"))
        .filter(|c| c.get(2) == Some(&"cook"))
        .collect();
    assert_eq!(
        cooks.len(),
        1,
        "stage {} should run `cargo chef cook` once",
        builder.label()
    );
    let cook = &cooks[0];
    assert!(
        cook.contains(&"--release"),
        "`{}` should cook the release profile",
        cook.join(" ")
    );
    if let Some(b) = flag_value(cook, "--bin") {
        assert_eq!(
            b,
            bin,
            "`{}` cooks another binary than the one built",
            cook.join(" ")
        );
    }

    // The runtime stage copies exactly that artifact from that stage onto the PATH.
    let copy = rt
        .all("COPY")
        .find(|c| c.args.contains("--from="))
        .unwrap_or_else(|| panic!("runtime stage {} has no COPY --from", rt.label()));
    let words: Vec<&str> = copy.args.split_whitespace().collect();
    let from = flag_value(&words, "--from").expect("--from has a value");
    assert_eq!(
        Some(from.as_str()),
        builder.name.as_deref(),
        "Dockerfile:{}: COPY --from should name the stage that runs cargo build",
        copy.line
    );
    let paths: Vec<&str> = words
        .iter()
        .filter(|w| !w.starts_with("--"))
        .copied()
        .collect();
    assert_eq!(
        paths,
        [
            format!("/app/target/release/{bin}"),
            format!("/usr/local/bin/{bin}")
        ],
        "Dockerfile:{}: should copy the release binary to /usr/local/bin",
        copy.line
    );
    assert_eq!(
        builder.workdir(&st).as_deref(),
        Some("/app"),
        "the build runs in /app, where COPY --from looks"
    );

    let entry = exec_form(
        &rt.last("ENTRYPOINT")
            .expect("runtime has an ENTRYPOINT")
            .args,
    )
    .expect("ENTRYPOINT uses the JSON (exec) form (DL3025)");
    assert_eq!(
        entry,
        [bin.as_str()],
        "ENTRYPOINT runs the shipped binary by name, from the PATH"
    );
}

#[test]
fn cmd_is_serve_in_image_and_compose() {
    let st = dockerfile_stages();
    let cmd = exec_form(&runtime(&st).last("CMD").expect("runtime has a CMD").args)
        .expect("CMD uses the JSON (exec) form (DL3025)");
    assert_eq!(cmd, ["serve"], "the image's default command runs the bot");
    assert_eq!(
        chops_service().list("command"),
        cmd,
        "compose `command` should match the image's CMD"
    );
}

#[test]
fn http_port_agrees_everywhere() {
    let st = dockerfile_stages();
    let exposed = exposed_port(&st);

    let default = listen_port(chops::config::DEFAULT_HTTP_LISTEN);
    assert_eq!(
        exposed, default,
        "Dockerfile EXPOSE vs chops::config::DEFAULT_HTTP_LISTEN"
    );

    let (config_path, _) = compose_config_mount();
    let config: toml::Value = toml::from_str(&read(&config_path))
        .unwrap_or_else(|e| panic!("{config_path} parses as TOML: {e}"));
    let listen = config
        .get("http")
        .and_then(|h| h.get("listen"))
        .and_then(|l| l.as_str())
        .unwrap_or_else(|| panic!("{config_path} should set [http] listen for the container"));
    let addr: SocketAddr = listen.parse().expect("[http] listen is host:port");
    assert_eq!(
        addr.port(),
        exposed,
        "{config_path} [http] listen vs Dockerfile EXPOSE"
    );
    assert!(
        addr.ip().is_unspecified(),
        "{config_path} [http] listen = {listen}: inside a container a loopback listener cannot be \
         reached through the published port; use 0.0.0.0:{exposed}"
    );

    let ports = chops_service().list("ports");
    assert_eq!(
        ports.len(),
        1,
        "the chops service should publish one port, found {ports:?}"
    );
    let (host_ip, container) = port_parts(&ports[0]);
    assert_eq!(
        container, exposed,
        "compose chops port `{}` vs Dockerfile EXPOSE",
        ports[0]
    );
    assert_eq!(
        host_ip,
        Some("127.0.0.1"),
        "compose publishes `{}`: keep /metrics and the webhook on the host's loopback",
        ports[0]
    );
}

#[test]
fn config_and_state_paths_agree() {
    let st = dockerfile_stages();
    let rt = runtime(&st);

    let config_env = env_value(rt, "CHOPS_CONFIG").expect("runtime stage sets ENV CHOPS_CONFIG");
    let (config_src, config_dst) = compose_config_mount();
    assert_eq!(
        config_dst, config_env,
        "compose mounts the config where CHOPS_CONFIG points"
    );
    assert!(
        root().join(&config_src).is_file(),
        "compose mounts {config_src}, which does not exist"
    );

    // The working directory (the store, .env) is a named volume declared at the top level.
    let workdir = rt
        .last("WORKDIR")
        .expect("runtime stage sets WORKDIR")
        .args
        .clone();
    let svc = chops_service();
    let named: Vec<String> = svc
        .list("volumes")
        .iter()
        .map(|v| volume_parts(v))
        .filter(|(_, dst, _)| *dst == workdir)
        .map(|(src, _, _)| src.to_string())
        .collect();
    assert_eq!(
        named.len(),
        1,
        "compose should mount one volume on the WORKDIR {workdir}, found {named:?}"
    );
    let volume = &named[0];
    assert!(
        !volume.starts_with('.') && !volume.starts_with('/'),
        "{workdir} should be a named volume, not the bind mount `{volume}`"
    );
    let compose = compose_yaml(&compose_text());
    assert!(
        compose
            .get("volumes")
            .and_then(|v| v.get(volume.as_str()))
            .is_some(),
        "named volume `{volume}` is not declared under the top-level `volumes:`"
    );

    assert_eq!(
        svc.scalar("build").as_deref(),
        Some("."),
        "compose builds chops from this Dockerfile"
    );
}

#[test]
fn healthcheck_runs_the_binary() {
    let bin = bin_name();
    let st = dockerfile_stages();
    let rt = runtime(&st);
    let checks: Vec<&Instr> = rt.all("HEALTHCHECK").collect();
    assert_eq!(
        checks.len(),
        1,
        "the runtime stage should have one HEALTHCHECK"
    );
    let hc = &checks[0].args;
    let (_, cmd) = hc
        .split_once("CMD ")
        .unwrap_or_else(|| panic!("HEALTHCHECK `{hc}` has no CMD"));
    let argv = exec_form(cmd).expect("HEALTHCHECK CMD uses the JSON form: there is no shell need");
    assert_eq!(
        argv.get(..2),
        Some(&[bin.clone(), "healthcheck".to_string()][..]),
        "HEALTHCHECK should run `{bin} healthcheck` (the image has no curl)"
    );
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    if let Some(url) = flag_value(&words, "--url") {
        let authority = url
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("healthcheck --url {url} is not http://host:port/path"));
        let addr: SocketAddr = authority
            .parse()
            .unwrap_or_else(|e| panic!("healthcheck --url {url}: {e}"));
        assert!(
            addr.ip().is_loopback(),
            "healthcheck --url {url} should probe the container itself"
        );
        assert_eq!(
            addr.port(),
            exposed_port(&st),
            "healthcheck --url {url} vs EXPOSE"
        );
    }
}

#[test]
fn runtime_runs_as_a_created_non_root_user() {
    let st = dockerfile_stages();
    let rt = runtime(&st);
    let user = rt.last("USER").unwrap_or_else(|| {
        panic!(
            "runtime stage {} sets no USER: it would run as root",
            rt.label()
        )
    });
    let name = user.args.split(':').next().unwrap_or_default().trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "Dockerfile:{}: the last USER `{}` is root (DL3002)",
        user.line,
        user.args
    );
    // The user exists in the image: created by useradd in this stage, by name or by uid.
    let useradd = rt
        .all("RUN")
        .find(|r| r.args.contains("useradd"))
        .unwrap_or_else(|| panic!("runtime stage creates no user for USER {name}"));
    let words: Vec<&str> = useradd.args.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "useradd")
        .expect("found above");
    let cmd: Vec<&str> = words[at..]
        .iter()
        .take_while(|w| !matches!(**w, "&&" | ";"))
        .copied()
        .collect();
    let uid = flag_value(&cmd, "--uid").or_else(|| flag_value(&cmd, "-u"));
    let login = cmd.last().copied();
    assert!(
        login == Some(name) || uid.as_deref() == Some(name),
        "USER `{name}` is neither the login nor the uid of `{}`",
        cmd.join(" ")
    );
    assert_ne!(
        uid.as_deref(),
        Some("0"),
        "useradd must not create a second root"
    );
    // USER comes after the last RUN, so every RUN had root and the process has not.
    assert!(
        rt.all("RUN").all(|r| r.line < user.line),
        "a RUN after USER {name} would run unprivileged or need root back"
    );
}

#[test]
fn every_image_reference_is_pinned() {
    let st = dockerfile_stages();
    let stage_names: Vec<&str> = st.iter().filter_map(|s| s.name.as_deref()).collect();
    let mut refs: Vec<String> = st
        .iter()
        .filter(|s| !stage_names.contains(&s.image.as_str()))
        .map(|s| format!("Dockerfile FROM {}", s.image))
        .collect();
    for s in &st {
        for c in s.all("COPY") {
            let words: Vec<&str> = c.args.split_whitespace().collect();
            if let Some(from) = flag_value(&words, "--from") {
                if !stage_names.contains(&from.as_str()) && from.parse::<usize>().is_err() {
                    refs.push(format!("Dockerfile COPY --from={from}"));
                }
            }
        }
    }
    let images = compose_images(&compose_text());
    assert!(
        !images.is_empty(),
        "docker-compose.yml has no image: lines to check"
    );
    refs.extend(
        images
            .iter()
            .map(|i| format!("docker-compose.yml image: {i}")),
    );
    assert!(
        refs.iter().any(|r| r.starts_with("Dockerfile FROM")),
        "no base image found in the Dockerfile"
    );

    let unpinned: Vec<&String> = refs
        .iter()
        .filter(|r| !is_pinned(r.rsplit([' ', '=']).next().unwrap_or_default()))
        .collect();
    assert!(
        unpinned.is_empty(),
        "unpinned (no tag, or :latest; DL3006/DL3007): {unpinned:?}"
    );
}

#[test]
fn rust_image_meets_rust_version_and_matches_runtime_debian() {
    let cargo = cargo_toml();
    let rust_version = cargo
        .get("package")
        .and_then(|p| p.get("rust-version"))
        .and_then(|v| v.as_str())
        .expect("Cargo.toml [package] has rust-version");
    let msrv = major_minor(rust_version)
        .unwrap_or_else(|| panic!("rust-version `{rust_version}` is not major.minor"));

    let st = dockerfile_stages();
    let rust: Vec<&Stage> = st
        .iter()
        .filter(|s| short_repository(image_ref(&s.image).repository) == "rust")
        .collect();
    assert!(!rust.is_empty(), "no stage builds FROM the rust image");
    let rt_tag = image_ref(&runtime(&st).image)
        .tag
        .unwrap_or_default()
        .to_string();
    let rt_codename = debian_codename(&rt_tag);
    for s in rust {
        let tag = image_ref(&s.image)
            .tag
            .unwrap_or_else(|| panic!("FROM {} has no tag", s.image));
        let v = major_minor(tag)
            .unwrap_or_else(|| panic!("FROM {}: the tag names no Rust major.minor", s.image));
        assert!(
            v >= msrv,
            "FROM {}: Rust {}.{} is older than Cargo.toml's rust-version {rust_version}",
            s.image,
            v.0,
            v.1
        );
        assert!(
            debian_codename(tag).is_some() && debian_codename(tag) == rt_codename,
            "FROM {} and the runtime {} should name the same Debian release: the binary links the \
             builder's glibc",
            s.image,
            runtime(&st).image
        );
    }
}

#[test]
fn dockerignore_keeps_what_the_build_needs() {
    let pats = dockerignore_patterns();
    for must_go in [
        "target",
        ".git",
        ".env",
        ".venv",
        "chops.db",
        ".local-cluster",
    ] {
        assert!(
            is_ignored(&pats, must_go),
            ".dockerignore should leave `{must_go}` out of the build context"
        );
    }

    let mut needed: Vec<String> = vec!["Cargo.toml".into(), "Cargo.lock".into(), "src".into()];
    // Every target Cargo.toml names must be in the context, or the manifest does not load
    // (benches/ is why: Cargo.toml lists [[bench]] targets); so must every workspace member and
    // path dependency (dev ones too: cargo loads them to resolve the lockfile).
    let cargo = cargo_toml();
    let members = cargo
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .filter(|m| *m != ".");
    let path_deps = ["dependencies", "dev-dependencies", "build-dependencies"]
        .into_iter()
        .filter_map(|t| cargo.get(t).and_then(|d| d.as_table()))
        .flat_map(|d| d.values())
        .filter_map(|d| d.get("path").and_then(|p| p.as_str()));
    for dir in members.chain(path_deps) {
        needed.push(format!("{dir}/Cargo.toml"));
        needed.push(format!("{dir}/src/lib.rs"));
    }
    let package = cargo
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .expect("Cargo.toml has [package] name");
    if let Some(lib) = cargo
        .get("lib")
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
    {
        needed.push(lib.to_string());
    }
    for kind in ["bin", "bench", "test", "example"] {
        for t in cargo
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let explicit = t.get("path").and_then(|p| p.as_str()).map(str::to_string);
            let path = explicit.unwrap_or_else(|| {
                let name = t
                    .get("name")
                    .and_then(|n| n.as_str())
                    .expect("target has a name");
                match kind {
                    "bin" if name == package => "src/main.rs".to_string(),
                    "bin" => format!("src/bin/{name}.rs"),
                    "bench" => format!("benches/{name}.rs"),
                    _ => format!("{kind}s/{name}.rs"),
                }
            });
            needed.push(path);
        }
    }
    // And whatever the sources embed at compile time.
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    assert!(files.len() > 1, "found no sources under src/");
    for f in &files {
        needed.extend(included_files(f));
    }
    for rel in &needed {
        assert!(
            root().join(rel).exists(),
            "{rel} (needed by the build) does not exist"
        );
        assert!(
            !is_ignored(&pats, rel),
            ".dockerignore leaves out {rel}, which `cargo build` needs"
        );
    }
}
