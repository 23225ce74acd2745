//! A fake Discord on loopback: REST (`/api/v10/...`) and a `ws://` gateway, enough for the real
//! serenity/poise client. It records every REST call; tests inject gateway events (interactions)
//! built by the payload helpers below, never by hand. Every JSON body (or multipart `payload_json`)
//! is checked against Discord's OpenAPI request schemas as it is recorded; a multipart body also
//! against Discord's upload limits (files per message, bytes) and its `attachments[]` ids against
//! the `files[n]` parts. An upload over the limits is answered as Discord does (400/413).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::openapi;

pub const APP_ID: u64 = 900_000_000_000_000_001;
pub const GUILD_ID: u64 = 900_000_000_000_000_002;
pub const CHANNEL_ID: u64 = 900_000_000_000_000_003;
pub const OTHER_CHANNEL_ID: u64 = 900_000_000_000_000_004;
pub const USER_ID: u64 = 900_000_000_000_000_005;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// Files of a `multipart/form-data` request, as (filename, bytes); empty for JSON requests.
    pub files: Vec<(String, Vec<u8>)>,
    pub at: Instant,
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// "METHOD PATH: errors" for each recorded body Discord's schema rejects.
    invalid: Mutex<Vec<String>>,
    changed: Notify,
    ws_url: String,
    next_id: AtomicU64,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    identified: Notify,
    fail_edits: std::sync::atomic::AtomicBool,
    fail_registration: std::sync::atomic::AtomicBool,
    /// Ids of the attachments handed out (an edit may keep them by id).
    issued: Mutex<std::collections::BTreeSet<u64>>,
}

pub struct FakeDiscord {
    pub rest_url: String,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Value>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub fn user_json(id: u64, name: &str) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": null, "avatar": null, "bot": false})
}

/// A full Message object, as Discord answers webhook and channel message calls.
pub fn message_json(id: u64, channel: u64, body: &Value) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel.to_string(),
        "author": {"id": APP_ID.to_string(), "username": "chops", "discriminator": "0", "avatar": null, "bot": true},
        "content": body.get("content").cloned().unwrap_or(json!("")),
        "timestamp": "2026-11-25T22:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [],
        "embeds": body.get("embeds").cloned().unwrap_or(json!([])),
        "components": body.get("components").cloned().unwrap_or(json!([])),
        "pinned": false, "type": 0, "flags": body.get("flags").cloned().unwrap_or(json!(0)),
    })
}

/// An option of a command invocation: `("cluster", "local")`, string-typed unless it parses as a number.
pub fn options(opts: &[(&str, &str)], focused: Option<&str>) -> Value {
    Value::Array(
        opts.iter()
            .map(|(n, v)| {
                let mut o = match v.parse::<i64>() {
                    Ok(i) => json!({"name": n, "type": 4, "value": i}),
                    Err(_) => json!({"name": n, "type": 3, "value": v}),
                };
                if focused == Some(*n) {
                    o["focused"] = json!(true);
                }
                o
            })
            .collect(),
    )
}

/// INTERACTION_CREATE for a slash command (type 2) or its autocomplete (type 4) in a guild channel.
pub fn interaction(id: u64, kind: u8, channel: u64, command: &str, options: Value) -> Value {
    json!({
        "id": id.to_string(), "application_id": APP_ID.to_string(), "type": kind,
        "token": format!("tok-{id}"), "version": 1,
        "guild_id": GUILD_ID.to_string(), "channel_id": channel.to_string(),
        "channel": {"id": channel.to_string(), "type": 0},
        "locale": "en-US", "guild_locale": "en-US", "entitlements": [], "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        "app_permissions": "0",
        "member": {"user": user_json(USER_ID, "oncall"), "roles": [], "deaf": false, "mute": false, "flags": 0,
                   "joined_at": "2024-01-01T00:00:00.000000+00:00", "permissions": "0", "pending": false},
        "data": {"id": "910000000000000000", "name": command, "type": 1, "options": options},
    })
}

/// The same interaction sent from a DM (no guild, no member: a bare user), or from `guild`.
pub fn elsewhere(mut interaction: Value, guild: Option<u64>) -> Value {
    let o = interaction.as_object_mut().expect("interaction object");
    match guild {
        Some(g) => {
            o.insert("guild_id".into(), json!(g.to_string()));
        }
        None => {
            o.remove("guild_id");
            o.remove("guild_locale");
            let member = o.remove("member").expect("member");
            o.insert("user".into(), member["user"].clone());
            o.insert(
                "channel".into(),
                json!({"id": o["channel_id"].clone(), "type": 1}),
            );
        }
    }
    interaction
}

/// `v` as sent by guild member `user` holding `roles`.
pub fn as_member(mut v: Value, user: u64, roles: &[u64]) -> Value {
    v["member"]["user"] = user_json(user, if user == USER_ID { "oncall" } else { "other" });
    v["member"]["roles"] = json!(roles.iter().map(|r| r.to_string()).collect::<Vec<_>>());
    v
}

/// A click on button `custom_id` of `message` by member `user` holding `roles`.
pub fn click(id: u64, custom_id: &str, message: u64, user: u64, roles: &[u64]) -> Value {
    let mut v = as_member(
        interaction(id, 3, CHANNEL_ID, "unused", json!([])),
        user,
        roles,
    );
    v["data"] = json!({"custom_id": custom_id, "component_type": 2});
    v["message"] = message_json(message, CHANNEL_ID, &json!({}));
    v
}

/// (label, custom_id) of every button of a message body (custom_id empty for link buttons).
pub fn buttons(body: &Value) -> Vec<(String, String)> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["label"].as_str().unwrap_or("").to_string(),
                b["custom_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A card message's "(statement attached: next-steps.sql, step N)" pointers and the
/// `-- Step N:` headers of its one file `next-steps.sql` (panics unless it carries exactly that
/// file): equal when the file holds what the embed names.
pub fn attached_steps(card: &Recorded) -> (Vec<String>, Vec<String>) {
    let fields = card.body["embeds"][0]["fields"].to_string();
    let pointers = fields
        .split("(statement attached: next-steps.sql, step ")
        .skip(1)
        .map(|r| r.split(')').next().unwrap_or_default().to_string())
        .collect();
    let names: Vec<&str> = card.files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["next-steps.sql"], "one file: {}", card.body);
    let text = String::from_utf8_lossy(&card.files[0].1);
    let steps = text
        .lines()
        .filter_map(|l| Some(l.strip_prefix("-- Step ")?.split(':').next()?.to_string()))
        .collect();
    (pointers, steps)
}

/// Discord's permission bits ("Permissions" in Discord's documentation), as the fake checks
/// requests against them: independent of the bot's own flags.
pub mod permission {
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const EMBED_LINKS: u64 = 1 << 14;
    pub const ATTACH_FILES: u64 = 1 << 15;
}

/// The permissions a bot needs in the channel for `r`, as Discord asks them: a channel message
/// needs View Channel and Send Messages (an edit of its own, View Channel), embeds Embed Links,
/// files Attach Files. Interaction callbacks and webhook calls (answers, follow-ups, their
/// edits) and command registration need none.
pub fn permissions_for(r: &Recorded) -> u64 {
    use permission::*;
    let Some(rest) = r.path.strip_prefix("/api/v10/channels/") else {
        return 0;
    };
    let mut need = match (r.method.as_str(), rest.contains("/messages")) {
        ("POST", true) => VIEW_CHANNEL | SEND_MESSAGES,
        (_, _) => VIEW_CHANNEL,
    };
    if r.body["embeds"].as_array().is_some_and(|e| !e.is_empty()) {
        need |= EMBED_LINKS;
    }
    if !r.files.is_empty() {
        need |= ATTACH_FILES;
    }
    need
}

impl FakeDiscord {
    /// Every permission the requests recorded so far needed in their channels.
    pub fn permissions_needed(&self) -> u64 {
        self.requests()
            .iter()
            .map(permissions_for)
            .fold(0, |a, p| a | p)
    }

    pub async fn start() -> FakeDiscord {
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rest = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_url = format!("ws://{}", ws.local_addr().unwrap());
        let rest_url = format!("http://{}", rest.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            invalid: Mutex::new(Vec::new()),
            changed: Notify::new(),
            ws_url,
            next_id: AtomicU64::new(1_000),
            events: tokio::sync::Mutex::new(rx),
            identified: Notify::new(),
            fail_edits: std::sync::atomic::AtomicBool::new(false),
            fail_registration: std::sync::atomic::AtomicBool::new(false),
            issued: Mutex::new(std::collections::BTreeSet::new()),
        });
        let app = Router::new()
            .route("/*path", any(rest_handler))
            // Bodies past Discord's upload limit reach the handler, which refuses them as Discord does.
            .layer(axum::extract::DefaultBodyLimit::max(2 * MAX_UPLOAD_BYTES))
            .with_state(shared.clone());
        let rest_task = tokio::spawn(async move {
            let _ = axum::serve(rest, app).await;
        });
        let s = shared.clone();
        let ws_task = tokio::spawn(async move {
            while let Ok((stream, _)) = ws.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = tokio_tungstenite::accept_async(stream).await {
                        gateway_session(conn, s).await;
                    }
                });
            }
        });
        FakeDiscord {
            rest_url,
            shared,
            events: tx,
            tasks: vec![rest_task, ws_task],
        }
    }

    pub fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Send an INTERACTION_CREATE through the gateway; returns when it was queued.
    pub fn dispatch(&self, event: Value) -> Instant {
        self.events.send(event).expect("gateway queue");
        Instant::now()
    }

    /// Make every edit of an original response fail with HTTP 500 (to exercise internal errors).
    pub fn fail_edits(&self, on: bool) {
        self.shared.fail_edits.store(on, Ordering::SeqCst);
    }

    /// Make command registration fail with HTTP 500.
    pub fn fail_registration(&self, on: bool) {
        self.shared.fail_registration.store(on, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The messages posted to `channel` (POST requests on its messages), in order.
    pub fn posts_to(&self, channel: u64) -> Vec<Recorded> {
        let path = format!("/api/v10/channels/{channel}/messages");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .collect()
    }

    /// Every recorded body that does not validate against Discord's OpenAPI request schema, as
    /// "METHOD PATH: error; error…", in the order they were sent.
    pub fn invalid_bodies(&self) -> Vec<String> {
        self.shared.invalid.lock().unwrap().clone()
    }

    /// Panic listing every body Discord's schema rejects (see [`FakeDiscord::invalid_bodies`]).
    pub fn assert_bodies_valid(&self) {
        let invalid = self.invalid_bodies();
        assert!(
            invalid.is_empty(),
            "request bodies Discord's OpenAPI spec rejects ({}):\n{}",
            invalid.len(),
            invalid.join("\n")
        );
    }

    /// Wait until a recorded request satisfies `pred` (checked on every new request).
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Recorded) -> bool,
    ) -> Recorded {
        let until = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                return r;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                let seen: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                panic!("timed out waiting for {what}; requests so far: {seen:#?}");
            }
        }
    }

    /// The interaction callback for interaction `id`.
    pub async fn callback(&self, id: u64, timeout: Duration) -> Recorded {
        let path = format!("/api/v10/interactions/{id}/tok-{id}/callback");
        self.wait_for(&format!("callback of {id}"), timeout, |r| {
            r.method == "POST" && r.path == path
        })
        .await
    }

    /// The edit of the original response of interaction `id`.
    pub async fn edited_original(&self, id: u64, timeout: Duration) -> Recorded {
        let path = format!("/api/v10/webhooks/{APP_ID}/tok-{id}/messages/@original");
        self.wait_for(&format!("edit of {id}"), timeout, |r| {
            r.method == "PATCH" && r.path == path
        })
        .await
    }

    /// Wait until the bot registered its commands (it then answers interactions).
    pub async fn registered(&self, timeout: Duration) -> Recorded {
        self.wait_for("command registration", timeout, |r| {
            r.method == "PUT" && r.path.ends_with("/commands")
        })
        .await
    }
}

/// Discord's limit of files in one message ("Uploading Files").
pub const MAX_FILES: usize = 10;
/// Discord's default upload limit, for all the files of one request together (25 MiB).
pub const MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;
/// The largest file an interaction's answer may carry, as the fake's interactions advertise it
/// (`attachment_size_limit`).
pub const ATTACHMENT_SIZE_LIMIT: usize = 8_388_608;

/// One file part of a multipart body: its form field name (`files[n]`), filename and bytes.
#[derive(Debug, Clone)]
struct FilePart {
    field: String,
    filename: String,
    data: Vec<u8>,
}

/// The `payload_json` part (if any) and the files of a `multipart/form-data` body; a part with
/// a filename is a file.
async fn parse_multipart(
    body: Bytes,
    boundary: String,
) -> Result<(Option<Bytes>, Vec<FilePart>), multer::Error> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let (mut payload, mut files) = (None, Vec::new());
    while let Some(field) = form.next_field().await? {
        let filename = field.file_name().map(str::to_string);
        let name = field.name().unwrap_or_default().to_string();
        let data = field.bytes().await?;
        match filename {
            Some(filename) => files.push(FilePart {
                field: name,
                filename,
                data: data.to_vec(),
            }),
            None if name == "payload_json" => payload = Some(data),
            None => {}
        }
    }
    Ok((payload, files))
}

/// A body as the fake read it: the JSON (for multipart, `payload_json`; None: no JSON body,
/// Err: not JSON or not well-formed multipart) and the file parts.
struct Body {
    json: Option<Result<Value, String>>,
    files: Vec<FilePart>,
    multipart: bool,
}

async fn read_body(content_type: &str, raw: Bytes) -> Body {
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        let json = (!raw.is_empty())
            .then(|| serde_json::from_slice(&raw).map_err(|e| format!("body is not JSON: {e}")));
        return Body {
            json,
            files: Vec::new(),
            multipart: false,
        };
    };
    let (json, files) = match parse_multipart(raw, boundary).await {
        Ok((payload, files)) => {
            let json = payload.map(|p| {
                serde_json::from_slice(&p).map_err(|e| format!("payload_json is not JSON: {e}"))
            });
            (json, files)
        }
        Err(e) => (
            Some(Err(format!("malformed multipart body: {e}"))),
            Vec::new(),
        ),
    };
    Body {
        json,
        files,
        multipart: true,
    }
}

/// What Discord refuses in a multipart message before reading it: more than [`MAX_FILES`] files
/// (400, code 50035), a file over [`ATTACHMENT_SIZE_LIMIT`] or all over [`MAX_UPLOAD_BYTES`]
/// (413, code 40005). Ok(()) when the upload is within the limits.
fn upload_limits(files: &[FilePart]) -> Result<(), (StatusCode, u32, String)> {
    if files.len() > MAX_FILES {
        return Err((
            StatusCode::BAD_REQUEST,
            50035,
            format!(
                "{} files: Discord takes at most {MAX_FILES} a message",
                files.len()
            ),
        ));
    }
    let total: usize = files.iter().map(|f| f.data.len()).sum();
    if let Some(f) = files.iter().find(|f| f.data.len() > ATTACHMENT_SIZE_LIMIT) {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            40005,
            format!(
                "{}: {} bytes, over the {ATTACHMENT_SIZE_LIMIT}-byte file limit",
                f.filename,
                f.data.len()
            ),
        ));
    }
    if total > MAX_UPLOAD_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            40005,
            format!("{total} bytes of files, over the {MAX_UPLOAD_BYTES}-byte upload limit"),
        ));
    }
    Ok(())
}

/// The ids of `payload_json`'s `attachments[]` against the file parts: every `files[n]` part is
/// listed with id n (and its filename), every listed id is a part sent now or an attachment the
/// fake handed out before (an edit keeping it); part names are `files[n]`, each n once.
fn attachment_ids(s: &Shared, payload: &Value, files: &[FilePart]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut parts = std::collections::BTreeMap::new();
    for f in files {
        let n = f
            .field
            .strip_prefix("files[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok());
        match n {
            Some(n) if parts.insert(n, f).is_none() => {}
            Some(n) => errors.push(format!("files[{n}] sent twice")),
            None => errors.push(format!("file part named {:?}, not files[n]", f.field)),
        }
    }
    let listed: Vec<&Value> = payload["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let id_of = |a: &Value| match &a["id"] {
        Value::Number(n) => n.as_u64(),
        Value::String(t) => t.parse::<u64>().ok(),
        _ => None,
    };
    for (n, f) in &parts {
        match listed.iter().find(|a| id_of(a) == Some(*n)) {
            None => errors.push(format!(
                "files[{n}] ({}) has no attachments[] entry with id {n}",
                f.filename
            )),
            Some(a)
                if a["filename"]
                    .as_str()
                    .is_some_and(|name| name != f.filename) =>
            {
                errors.push(format!(
                    "attachments[] id {n} is named {} but files[{n}] is {}",
                    a["filename"], f.filename
                ))
            }
            Some(_) => {}
        }
    }
    let issued = s.issued.lock().unwrap();
    for a in &listed {
        match id_of(a) {
            Some(id) if parts.contains_key(&id) || issued.contains(&id) => {}
            _ => errors.push(format!(
                "attachments[] id {} names no file part and no earlier attachment",
                a["id"]
            )),
        }
    }
    errors
}

/// Discord's Attachment objects for uploaded files, as message responses carry them.
fn attachments_json(s: &Shared, files: &[(String, Vec<u8>)]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|(name, data)| {
                let id = s.next_id.fetch_add(1, Ordering::SeqCst) + 2_000_000;
                s.issued.lock().unwrap().insert(id);
                let url = format!("https://cdn.discordapp.com/attachments/{CHANNEL_ID}/{id}/{name}");
                json!({"id": id.to_string(), "filename": name, "size": data.len(),
                       "url": url, "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net")})
            })
            .collect(),
    )
}

/// Check a body against Discord's spec, upload limits and attachment ids; every finding is kept
/// as an invalid body. Returns the upload limits' verdict (an upload over them is refused).
fn check_body(
    s: &Shared,
    method: &Method,
    path: &str,
    read: &Body,
) -> Result<(), (StatusCode, u32, String)> {
    let mut errors = match &read.json {
        None => Vec::new(),
        Some(Ok(v)) => openapi::validate(method.as_str(), path, v)
            .err()
            .unwrap_or_default(),
        Some(Err(e)) => vec![e.clone()],
    };
    let limits = upload_limits(&read.files);
    if let Err((_, _, why)) = &limits {
        errors.push(why.clone());
    }
    if read.multipart {
        let payload = read
            .json
            .as_ref()
            .and_then(|j| j.as_ref().ok())
            .unwrap_or(&Value::Null);
        errors.extend(attachment_ids(s, payload, &read.files));
    }
    if !errors.is_empty() {
        let line = format!("{method} {path}: {}", errors.join("; "));
        // Also on stderr: shown with the output of a test that fails for another reason.
        eprintln!("fake Discord: invalid body: {line}");
        s.invalid.lock().unwrap().push(line);
    }
    limits
}

async fn rest_handler(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The JSON body (or, for multipart, the `payload_json` part) to record and validate. A body
    // that is not JSON is kept as an invalid one.
    let read = read_body(content_type, raw).await;
    let limits = check_body(&s, &method, &path, &read);
    let body = read.json.and_then(Result::ok).unwrap_or(Value::Null);
    let files: Vec<(String, Vec<u8>)> = read
        .files
        .into_iter()
        .map(|f| (f.filename, f.data))
        .collect();
    let attachments = attachments_json(&s, &files);
    s.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        body: body.clone(),
        files,
        at: Instant::now(),
    });
    s.changed.notify_waiters();
    // As Discord: an upload over its limits is refused whole (the message is not sent).
    if let Err((status, code, why)) = limits {
        return (status, Json(json!({"message": why, "code": code}))).into_response();
    }
    let id = s.next_id.fetch_add(1, Ordering::SeqCst) + 1_000_000;
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/v10/gateway") => Json(json!({"url": s.ws_url})).into_response(),
        ("GET", "/api/v10/gateway/bot") => Json(json!({"url": s.ws_url, "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}}))
        .into_response(),
        ("GET", "/api/v10/users/@me") => {
            Json(json!({"id": APP_ID.to_string(), "username": "chops", "discriminator": "0", "avatar": null, "bot": true})).into_response()
        }
        ("GET", "/api/v10/oauth2/applications/@me") => Json(json!({
            "id": APP_ID.to_string(), "name": "chops", "icon": null, "description": "", "bot_public": true,
            "bot_require_code_grant": false, "verify_key": "", "flags": 0, "team": null,
            "owner": {"id": USER_ID.to_string(), "username": "owner", "discriminator": "0", "avatar": null}}))
        .into_response(),
        ("PUT", p) if p.ends_with("/commands") && s.fail_registration.load(Ordering::SeqCst) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"message": "fake failure", "code": 0}))).into_response()
        }
        ("PUT", p) if p.ends_with("/commands") => {
            let cmds: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["id"] = json!((920_000_000_000_000_000u64 + i as u64).to_string());
                    c["application_id"] = json!(APP_ID.to_string());
                    c["version"] = json!("1");
                    if c.get("type").is_none() {
                        c["type"] = json!(1);
                    }
                    // Discord answers message commands with an empty description.
                    if c.get("description").is_none() {
                        c["description"] = json!("");
                    }
                    c["default_member_permissions"] = c.get("default_member_permissions").cloned().unwrap_or(Value::Null);
                    c
                })
                .collect();
            Json(Value::Array(cmds)).into_response()
        }
        ("POST", p) if p.starts_with("/api/v10/interactions/") && p.ends_with("/callback") => StatusCode::NO_CONTENT.into_response(),
        ("PATCH", p) if p.ends_with("/messages/@original") && s.fail_edits.load(Ordering::SeqCst) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"message": "fake failure", "code": 0}))).into_response()
        }
        ("PATCH", p) | ("POST", p) if p.starts_with("/api/v10/webhooks/") || p.starts_with("/api/v10/channels/") => {
            let mut message = message_json(id, CHANNEL_ID, &body);
            message["attachments"] = attachments;
            Json(message).into_response()
        }
        ("GET", p) if p.starts_with("/api/v10/webhooks/") => Json(message_json(id, CHANNEL_ID, &json!({}))).into_response(),
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "Unknown route in fake Discord", "code": 0}))).into_response(),
    }
}

async fn gateway_session(
    conn: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    s: Arc<Shared>,
) {
    let (mut tx, mut rx) = conn.split();
    let send = |v: Value| WsMessage::Text(v.to_string());
    if tx
        .send(send(json!({"op": 10, "d": {"heartbeat_interval": 41250}})))
        .await
        .is_err()
    {
        return;
    }
    let mut seq = 0u64;
    let mut events = s.events.lock().await;
    loop {
        tokio::select! {
            frame = rx.next() => {
                let Some(Ok(frame)) = frame else { return };
                let WsMessage::Text(text) = frame else { continue }; // keep reading after Close/Ping frames
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["op"].as_u64() {
                    Some(2) => {
                        seq += 1;
                        let ready = json!({"op": 0, "t": "READY", "s": seq, "d": {
                            "v": 10,
                            "user": {"id": APP_ID.to_string(), "username": "chops", "discriminator": "0", "avatar": null, "bot": true,
                                     "verified": true, "mfa_enabled": false, "flags": 0},
                            "guilds": [{"id": GUILD_ID.to_string(), "unavailable": true}],
                            "session_id": "fake-session", "resume_gateway_url": s.ws_url, "shard": [0, 1],
                            "application": {"id": APP_ID.to_string(), "flags": 0}}});
                        if tx.send(send(ready)).await.is_err() { return; }
                        s.identified.notify_waiters();
                    }
                    Some(1) if tx.send(send(json!({"op": 11}))).await.is_err() => return,
                    Some(6) if tx.send(send(json!({"op": 9, "d": false}))).await.is_err() => return,
                    _ => {}
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                seq += 1;
                if tx.send(send(json!({"op": 0, "t": "INTERACTION_CREATE", "s": seq, "d": ev}))).await.is_err() { return; }
            }
        }
    }
}
