//! The checker of request bodies against Discord's OpenAPI spec (`testkit::openapi`), without
//! the bot: what Discord accepts passes, its limits fail with the pointer and rule named; and the
//! fake Discord records and validates JSON and multipart requests sent to it over plain HTTP.

use serde_json::{json, Value};
use testkit::discord::{FakeDiscord, APP_ID};
use testkit::openapi::validate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CALLBACK: &str = "/api/v10/interactions/1001/tok-1001/callback";

fn original() -> String {
    format!("/api/v10/webhooks/{APP_ID}/tok-1001/messages/@original")
}

/// The errors of a body that must be rejected.
fn rejected(method: &str, path: &str, body: &Value) -> Vec<String> {
    match validate(method, path, body) {
        Ok(()) => panic!("{method} {path} accepted: {body}"),
        Err(errors) => errors,
    }
}

fn accepted(method: &str, path: &str, body: &Value) {
    if let Err(errors) = validate(method, path, body) {
        panic!("{method} {path} rejected: {errors:#?}\nbody: {body}");
    }
}

fn has(errors: &[String], needle: &str) -> bool {
    errors.iter().any(|e| e.contains(needle))
}

fn embed() -> Value {
    json!({
        "title": "backup-check · local", "description": "All 3 replicas answered.", "color": 0x2e_cc_71,
        "fields": [{"name": "Replicas", "value": "3/3 up", "inline": true}],
        "footer": {"text": "chops"}, "timestamp": "2026-11-25T22:00:00Z",
    })
}

fn confirm_row(custom_id: &str) -> Value {
    json!([{"type": 1, "components": [
        {"type": 2, "style": 1, "label": "Confirm", "custom_id": custom_id}
    ]}])
}

#[test]
fn channel_message_with_source_with_embeds_ephemeral_and_no_mentions() {
    accepted(
        "POST",
        CALLBACK,
        &json!({"type": 4, "data": {
            "content": "Unknown cluster `nope`.", "embeds": [embed()], "flags": 64,
            "allowed_mentions": {"parse": []},
        }}),
    );
}

#[test]
fn deferred_responses_need_no_data() {
    accepted("POST", CALLBACK, &json!({"type": 5}));
    accepted("POST", CALLBACK, &json!({"type": 5, "data": {"flags": 64}}));
    accepted("POST", CALLBACK, &json!({"type": 6}));
}

#[test]
fn autocomplete_result() {
    accepted(
        "POST",
        CALLBACK,
        &json!({"type": 8, "data": {"choices": [
            {"name": "local", "value": "local"}, {"name": "prod-eu", "value": "prod-eu"}
        ]}}),
    );
    // Autocomplete needs its data; and a type Discord does not define matches no response kind.
    let errors = rejected("POST", CALLBACK, &json!({"type": 8}));
    assert!(
        has(&errors, "required: missing property \"data\""),
        "{errors:#?}"
    );
    let errors = rejected("POST", CALLBACK, &json!({"type": 3}));
    assert!(
        has(
            &errors,
            "#/type: oneOf: 3 is not one of [1,4,5,6,7,8,9,12,13]"
        ),
        "{errors:#?}"
    );
}

#[test]
fn a_query_string_and_the_api_prefix_do_not_change_the_endpoint() {
    accepted(
        "POST",
        &format!("{CALLBACK}?with_response=false"),
        &json!({"type": 5}),
    );
    accepted(
        "POST",
        "/interactions/1001/tok-1001/callback",
        &json!({"type": 5}),
    );
}

#[test]
fn embed_title_over_256_characters_is_rejected() {
    let mut e = embed();
    e["title"] = json!("t".repeat(257));
    let errors = rejected("PATCH", &original(), &json!({"embeds": [e]}));
    assert!(
        has(&errors, "#/embeds/0/title: maxLength 256"),
        "{errors:#?}"
    );
    // Characters, not bytes: 256 two-byte characters fit.
    e["title"] = json!("é".repeat(256));
    accepted("PATCH", &original(), &json!({"embeds": [e]}));
}

#[test]
fn embed_with_26_fields_is_rejected() {
    let mut e = embed();
    e["fields"] = (0..26)
        .map(|i| json!({"name": format!("f{i}"), "value": "v"}))
        .collect();
    let errors = rejected("PATCH", &original(), &json!({"embeds": [e]}));
    assert!(
        has(&errors, "#/embeds/0/fields: maxItems 25"),
        "{errors:#?}"
    );
    // The same limit on a followup and on a channel message.
    let followup = format!("/api/v10/webhooks/{APP_ID}/tok-1001");
    assert!(has(
        &rejected("POST", &followup, &json!({"embeds": [e]})),
        "maxItems 25"
    ));
    let errors = rejected(
        "POST",
        "/api/v10/channels/1/messages",
        &json!({"embeds": [e]}),
    );
    assert!(has(&errors, "maxItems 25"), "{errors:#?}");
}

#[test]
fn content_over_2000_characters_is_rejected() {
    let errors = rejected(
        "POST",
        CALLBACK,
        &json!({"type": 4, "data": {"content": "x".repeat(2001)}}),
    );
    assert!(
        has(&errors, "#/data/content: maxLength 2000"),
        "{errors:#?}"
    );
}

#[test]
fn a_confirm_button_in_an_action_row_is_valid() {
    let body =
        json!({"content": "Restart replica 2?", "components": confirm_row("chops:confirm:abc")});
    accepted("POST", "/api/v10/channels/1/messages", &body);
    accepted("PATCH", "/api/v10/channels/1/messages/2", &body);
    accepted("PATCH", &original(), &body);
    accepted(
        "PATCH",
        &format!("/api/v10/webhooks/{APP_ID}/tok-1001/messages/1234"),
        &body,
    );
}

#[test]
fn a_custom_id_over_100_characters_is_rejected_with_the_button_named() {
    let body = json!({"components": confirm_row(&"c".repeat(101))});
    let errors = rejected("PATCH", &original(), &body);
    assert!(
        has(
            &errors,
            "#/components/0/components/0/custom_id: maxLength 100"
        ),
        "{errors:#?}"
    );
    // The closest branch of each oneOf is the one reported, not every component kind.
    assert!(
        has(&errors, "closest is ButtonComponentForMessageRequest"),
        "{errors:#?}"
    );
    assert!(!has(&errors, "Select"), "{errors:#?}");
}

#[test]
fn a_button_without_a_known_style_and_an_empty_row_are_rejected() {
    let mut body = json!({"components": [{"type": 1, "components": [{"type": 2, "label": "x", "custom_id": "x"}]}]});
    let errors = rejected("PATCH", &original(), &body);
    assert!(
        has(&errors, "required: missing property \"style\""),
        "{errors:#?}"
    );
    body["components"][0]["components"][0]["style"] = json!(9);
    let errors = rejected("PATCH", &original(), &body);
    assert!(
        has(
            &errors,
            "#/components/0/components/0/style: oneOf: 9 is not one of [1,2,3,4,5,6]"
        ),
        "{errors:#?}"
    );
    let body = json!({"components": [{"type": 1, "components": []}]});
    let errors = rejected("PATCH", &original(), &body);
    assert!(
        has(&errors, "#/components/0/components: minItems 1"),
        "{errors:#?}"
    );
}

/// What serenity serializes for poise's commands: empty localization maps, every option field.
fn registration() -> Value {
    let option = |kind: u8, name: &str, autocomplete: bool| {
        json!({"type": kind, "name": name, "description": format!("The {name}"), "required": false,
               "choices": [], "options": [], "channel_types": [], "min_value": null, "max_value": null,
               "min_length": null, "max_length": null, "autocomplete": autocomplete})
    };
    let command = |name: &str, options: Vec<Value>| {
        json!({"name": name, "name_localizations": {}, "description": format!("Run {name}"),
               "description_localizations": {}, "options": options, "nsfw": false})
    };
    let mut limit = option(4, "limit", false);
    // poise sends integer bounds as floats; `1.0` is an integer to JSON Schema (and to Discord).
    limit["min_value"] = json!(1.0);
    limit["max_value"] = json!(20.0);
    let mut help = option(3, "help", false);
    help["required"] = json!(true);
    json!([
        command("backup-check", vec![option(3, "cluster", true)]),
        command("backups", vec![option(3, "cluster", true), limit]),
        command("chops", vec![help]),
    ])
}

#[test]
fn command_registration_as_poise_sends_it_is_valid() {
    let guild = format!("/api/v10/applications/{APP_ID}/guilds/1/commands");
    let global = format!("/api/v10/applications/{APP_ID}/commands");
    accepted("PUT", &guild, &registration());
    accepted("PUT", &global, &registration());
    let mut bad = registration();
    bad[0]["name"] = json!("n".repeat(33));
    bad[1]["options"][0]["description"] = json!("");
    bad[1]["options"][1]["min_value"] = json!(1.5);
    let errors = rejected("PUT", &guild, &bad);
    assert!(has(&errors, "#/0/name: maxLength 32"), "{errors:#?}");
    assert!(
        has(
            &errors,
            "#/1/options/1/min_value: type: expected integer, got number"
        ),
        "{errors:#?}"
    );
    assert!(
        has(&errors, "#/1/options/0/description: minLength 1"),
        "{errors:#?}"
    );
}

#[test]
fn an_endpoint_outside_the_subset_is_an_error() {
    let errors = rejected("POST", "/api/v10/guilds/1/roles", &json!({"name": "x"}));
    assert_eq!(
        errors,
        vec!["no schema for POST /api/v10/guilds/1/roles".to_string()]
    );
    let errors = rejected("DELETE", CALLBACK, &json!({}));
    assert!(has(&errors, "no schema for DELETE"), "{errors:#?}");
}

/// Send one HTTP/1.1 request to the fake; returns the status code and the response body.
async fn send(
    fake: &FakeDiscord,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let addr = fake.rest_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn the_fake_lists_only_the_invalid_body() {
    let fake = FakeDiscord::start().await;
    let good = json!({"type": 5}).to_string();
    let (status, _) = send(&fake, "POST", CALLBACK, "application/json", good.as_bytes()).await;
    assert_eq!(status, 204);
    let bad_path = original();
    let bad = json!({"embeds": [{"title": "t".repeat(257)}]}).to_string();
    let (status, _) = send(
        &fake,
        "PATCH",
        &bad_path,
        "application/json",
        bad.as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.requests().len(), 2);
    let invalid = fake.invalid_bodies();
    assert_eq!(invalid.len(), 1, "{invalid:#?}");
    assert!(
        invalid[0].starts_with(&format!(
            "PATCH {bad_path}: #/embeds/0/title: maxLength 256"
        )),
        "{invalid:#?}"
    );
}

#[tokio::test]
#[should_panic(
    expected = "request bodies Discord's OpenAPI spec rejects (1):\nPOST /api/v10/channels/1/messages: \
                           #/embeds/0/fields: maxItems 25"
)]
async fn assert_bodies_valid_panics_listing_the_rejected_bodies() {
    let fake = FakeDiscord::start().await;
    let fields: Vec<Value> = (0..26)
        .map(|_| json!({"name": "n", "value": "v"}))
        .collect();
    let bad = json!({"embeds": [{"fields": fields}]}).to_string();
    send(
        &fake,
        "POST",
        "/api/v10/channels/1/messages",
        "application/json",
        bad.as_bytes(),
    )
    .await;
    fake.assert_bodies_valid();
}

#[tokio::test]
async fn a_multipart_message_is_recorded_with_its_file_and_validated() {
    let fake = FakeDiscord::start().await;
    let boundary = "chops-test-boundary-7f3a";
    let payload = json!({"content": "Statement attached.", "allowed_mentions": {"parse": []},
                         "attachments": [{"id": 0, "filename": "statement.sql", "description": null}]});
    let sql = b"SYSTEM RESTART REPLICA db.events;\n";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{payload}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"statement.sql\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(sql);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, answer) = send(
        &fake,
        "POST",
        "/api/v10/channels/1/messages",
        &format!("multipart/form-data; boundary={boundary}"),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let rec = fake.requests().pop().unwrap();
    assert_eq!(
        (rec.method.as_str(), rec.path.as_str()),
        ("POST", "/api/v10/channels/1/messages")
    );
    assert_eq!(rec.body, payload);
    assert_eq!(rec.files, vec![("statement.sql".to_string(), sql.to_vec())]);
    assert_eq!(fake.invalid_bodies(), Vec::<String>::new());
    let message: Value = serde_json::from_str(&answer).unwrap();
    let att = &message["attachments"][0];
    assert_eq!(att["filename"], "statement.sql");
    assert_eq!(att["size"], sql.len());
    assert!(
        att["id"].is_string() && att["url"].is_string() && att["proxy_url"].is_string(),
        "{att}"
    );
    assert_eq!(message["content"], "Statement attached.");
    // JSON requests keep recording no files.
    let (status, _) = send(
        &fake,
        "POST",
        "/api/v10/channels/1/messages",
        "application/json",
        br#"{"content":"x"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(fake.requests().pop().unwrap().files.is_empty());
    fake.assert_bodies_valid();
}

/// A multipart body: `payload` as `payload_json`, then each (field, filename, bytes) as a file.
fn multipart(boundary: &str, payload: &Value, files: &[(String, String, Vec<u8>)]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{payload}\r\n"
    )
    .into_bytes();
    for (field, filename, data) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// `n` files named `files[i]` of `size` bytes each, and the payload listing them.
fn files(n: usize, size: usize) -> (Value, Vec<(String, String, Vec<u8>)>) {
    let parts: Vec<(String, String, Vec<u8>)> = (0..n)
        .map(|i| (format!("files[{i}]"), format!("f{i}.sql"), vec![b'x'; size]))
        .collect();
    let listed: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "filename": format!("f{i}.sql")}))
        .collect();
    (json!({"content": "files", "attachments": listed}), parts)
}

async fn post_files(
    fake: &FakeDiscord,
    payload: &Value,
    parts: &[(String, String, Vec<u8>)],
) -> (u16, String) {
    let boundary = "chops-limits-boundary";
    let body = multipart(boundary, payload, parts);
    send(
        fake,
        "POST",
        "/api/v10/channels/1/messages",
        &format!("multipart/form-data; boundary={boundary}"),
        &body,
    )
    .await
}

/// Discord's upload limits, as the fake applies them: 10 files a message pass, 11 are refused
/// (400, 50035); a file over the interaction's 8 MiB `attachment_size_limit` or files over the
/// 25 MiB upload limit together are refused (413, 40005). Each refusal is an invalid body.
#[tokio::test]
async fn the_fake_discord_applies_discords_upload_limits() {
    use testkit::discord::{ATTACHMENT_SIZE_LIMIT, MAX_FILES, MAX_UPLOAD_BYTES};
    let fake = FakeDiscord::start().await;
    let (payload, parts) = files(MAX_FILES, 100);
    assert_eq!(post_files(&fake, &payload, &parts).await.0, 200);
    assert_eq!(fake.invalid_bodies(), Vec::<String>::new());

    let (payload, parts) = files(MAX_FILES + 1, 100);
    let (status, answer) = post_files(&fake, &payload, &parts).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("50035"), "{answer}");
    let (payload, parts) = files(1, ATTACHMENT_SIZE_LIMIT + 1);
    let (status, answer) = post_files(&fake, &payload, &parts).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("40005"), "{answer}");
    let (payload, parts) = files(4, MAX_UPLOAD_BYTES / 4 + 1);
    assert_eq!(post_files(&fake, &payload, &parts).await.0, 413);
    let invalid = fake.invalid_bodies();
    assert_eq!(invalid.len(), 3, "{invalid:#?}");
    assert!(invalid[0].contains("11 files"), "{}", invalid[0]);
    assert!(invalid[1].contains("file limit"), "{}", invalid[1]);
    assert!(invalid[2].contains("upload limit"), "{}", invalid[2]);
}

/// `attachments[]` must list every `files[n]` part by id n (with its filename), and name no
/// file that was not sent.
#[tokio::test]
async fn attachment_ids_must_match_the_file_parts() {
    let fake = FakeDiscord::start().await;
    let (_, parts) = files(2, 10);
    let wrong = json!({"content": "x", "attachments": [
        {"id": 0, "filename": "other.sql"}, {"id": 7, "filename": "f1.sql"}]});
    assert_eq!(post_files(&fake, &wrong, &parts).await.0, 200);
    let renamed = vec![("file".to_string(), "f0.sql".to_string(), b"x".to_vec())];
    let (payload, _) = files(1, 1);
    assert_eq!(post_files(&fake, &payload, &renamed).await.0, 200);
    let invalid = fake.invalid_bodies();
    assert_eq!(invalid.len(), 2, "{invalid:#?}");
    for needle in [
        "attachments[] id 0 is named \"other.sql\" but files[0] is f0.sql",
        "files[1] (f1.sql) has no attachments[] entry with id 1",
        "attachments[] id 7 names no file part",
    ] {
        assert!(invalid[0].contains(needle), "{needle}: {}", invalid[0]);
    }
    assert!(
        invalid[1].contains("file part named \"file\""),
        "{}",
        invalid[1]
    );
    assert!(
        invalid[1].contains("attachments[] id 0 names no file part"),
        "{}",
        invalid[1]
    );
}

/// The README's invite URL grants exactly what chops uses (`chops::discord::PERMISSIONS`), and
/// those are Discord's bits for View Channel, Send Messages, Embed Links and Attach Files —
/// what the fake Discord requires of the requests chops sends (see `permissions_for`).
#[test]
fn the_readme_invite_url_grants_exactly_the_permissions_chops_uses() {
    use testkit::discord::permission::*;
    let granted = chops::discord::PERMISSIONS.bits();
    assert_eq!(
        granted,
        VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES
    );
    let readme = std::fs::read_to_string(testkit::repo_root().join("README.md")).unwrap();
    let urls: Vec<&str> = readme
        .split_whitespace()
        .filter(|w| w.contains("discord.com/oauth2/authorize"))
        .collect();
    assert!(!urls.is_empty(), "README has an invite URL");
    for url in urls {
        let perms: Vec<u64> = url
            .split(['?', '&'])
            .filter_map(|p| p.strip_prefix("permissions="))
            .map(|p| {
                p.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(perms, [granted], "{url}");
        assert!(url.contains("scope=bot%20applications.commands"), "{url}");
    }
    assert!(
        readme.contains(&format!("permissions integer {granted}")),
        "the text names the integer too"
    );
}

/// The permissions the fake asks of each kind of request chops sends.
#[test]
fn permissions_follow_the_request() {
    use testkit::discord::{permission::*, permissions_for, Recorded};
    let rec = |method: &str, path: &str, body: Value, files: usize| Recorded {
        method: method.into(),
        path: path.into(),
        body,
        files: vec![("f.sql".into(), b"x".to_vec()); files],
        at: std::time::Instant::now(),
    };
    let post = "/api/v10/channels/1/messages";
    assert_eq!(
        permissions_for(&rec("POST", post, json!({"content": "x"}), 0)),
        VIEW_CHANNEL | SEND_MESSAGES
    );
    assert_eq!(
        permissions_for(&rec("POST", post, json!({"embeds": [embed()]}), 1)),
        VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES
    );
    assert_eq!(
        permissions_for(&rec(
            "PATCH",
            "/api/v10/channels/1/messages/2",
            json!({"embeds": [embed()]}),
            0
        )),
        VIEW_CHANNEL | EMBED_LINKS
    );
    assert_eq!(
        permissions_for(&rec("PATCH", &original(), json!({"embeds": [embed()]}), 1)),
        0
    );
    assert_eq!(
        permissions_for(&rec("POST", CALLBACK, json!({"type": 5}), 0)),
        0
    );
}
