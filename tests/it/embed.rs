//! The Discord embed of a card: Discord's limits hold even for a 12-replica failing card, and
//! the JSON sent to Discord is snapshot-tested.

use std::collections::BTreeMap;

use chops::discord::render::{self, Embed};
use chops::domain::diagnose::{diagnose, CheckResult, Context, ReplicaRef};
use chops::domain::{Cause, CheckKind, Finding, Flag, Scope, Severity, Subject};

fn ctx(n: usize) -> Context {
    Context {
        cluster: "prod-eu-west-analytics".into(),
        remote_cluster: String::new(),
        replicas: (1..=n)
            .map(|i| ReplicaRef {
                name: format!("clickhouse-prod-eu-west-{i:02}.internal:9000"),
                shard: Some(1 + i as u32 % 4),
            })
            .collect(),
        keeper_nodes: vec![
            "keeper-1:9181".into(),
            "keeper-2:9181".into(),
            "keeper-3:9181".into(),
        ],
        databases: (1..=n)
            .map(|i| {
                let dbs = (1..=30)
                    .map(|d| format!("tenant_database_number_{d:02}"))
                    .collect();
                (format!("clickhouse-prod-eu-west-{i:02}.internal:9000"), dbs)
            })
            .collect(),
        backup_disk: "backups".into(),
        settings: BTreeMap::new(),
        now_unix: 1_795_645_636,
        elapsed_ms: 2113,
    }
}

/// Twelve replicas, half unreachable, every table lagging, failed backups with long errors.
fn failing_12() -> chops::domain::Card {
    failing(12)
}

/// `n` replicas, half unreachable, every table of the others read-only, failed backups with
/// long errors: dozens of next steps whose statements do not fit their fields.
fn failing(n: usize) -> chops::domain::Card {
    let c = ctx(n);
    let mut results = Vec::new();
    let long = "Code: 655. DB::Exception: Got error from host clickhouse-prod-eu-west-03.internal:9000. Code: 999. Coordination::Exception: Session expired (Session expired) while waiting for stage 'completed' on every host of the cluster; this text goes on for a while to make the value long. (KEEPER_EXCEPTION)";
    for check in CheckKind::ALL {
        let mut findings = Vec::new();
        for (i, r) in c.replicas.iter().enumerate() {
            let name = &r.name;
            if i % 2 == 0 {
                findings.push(
                    Finding::new(
                        check,
                        Severity::Crit,
                        Subject::replica(name),
                        format!("{name}: no answer (timed out after 2000 ms)"),
                    )
                    .cause(Cause::ReplicaOffline)
                    .cause(Cause::Network),
                );
                continue;
            }
            for t in 0..6 {
                let f = match check {
                    CheckKind::Lag => Finding::new(
                        check,
                        Severity::Crit,
                        Subject::Table { replica: name.clone(), database: format!("tenant_database_number_{t:02}"), table: "events_local".into() },
                        format!("{name}: tenant_database_number_{t:02}.events_local read-only, major delay 20000 s"),
                    )
                    .cause(Cause::ReplicaLag)
                    .flag(Flag::ReadOnly),
                    CheckKind::Backups => Finding::new(
                        check,
                        Severity::Crit,
                        Subject::Backup { replica: name.clone(), id: format!("id-{i}-{t}"), name: format!("Disk('backups', 'nightly-{t}')") },
                        format!("{name}: backup Disk('backups', 'nightly-{t}') failed 300 s ago: Keeper error (code 999)"),
                    )
                    .evidence(long)
                    .cause(Cause::Keeper),
                    _ => Finding::new(check, Severity::Warn, Subject::replica(name), format!("{name}: finding {t} of {check:?} with some words")),
                };
                findings.push(f);
            }
        }
        results.push(CheckResult {
            check,
            elapsed_ms: 2001,
            findings,
            slowest: None,
        });
    }
    diagnose(&c, Scope::Full, results)
}

pub(crate) fn assert_limits(e: &Embed) {
    let n = |s: &str| s.chars().count();
    assert!(n(&e.title) <= render::TITLE_MAX);
    assert!(n(&e.description) <= render::DESCRIPTION_MAX);
    assert!(
        e.fields.len() <= render::FIELDS_MAX,
        "{} fields",
        e.fields.len()
    );
    for (name, value) in &e.fields {
        assert!(n(name) <= render::FIELD_NAME_MAX && !name.is_empty());
        assert!(
            n(value) <= render::FIELD_VALUE_MAX && !value.is_empty(),
            "{name}: {} chars",
            n(value)
        );
    }
    assert!(n(&e.footer) <= render::FOOTER_MAX);
    assert!(
        e.total_chars() <= render::TOTAL_MAX,
        "{} chars in all",
        e.total_chars()
    );
    for (name, value) in &e.fields {
        // Code blocks are whole: a statement is never cut.
        assert_eq!(value.matches("```").count() % 2, 0, "{name}: {value}");
        assert!(!value.contains("…\n```"), "{name}: {value}");
    }
}

#[test]
fn limits_hold_for_a_12_replica_failing_card() {
    let card = failing_12();
    assert!(
        card.next_steps.len() > 20,
        "many next steps: {}",
        card.next_steps.len()
    );
    let e = render::embed(&card);
    assert_limits(&e);
    // Summarised, not dropped: every check still has its field, and the top cause leads.
    assert_eq!(
        e.fields
            .iter()
            .filter(|(n, _)| !n.starts_with("Next steps"))
            .count(),
        6
    );
    assert!(e.fields.iter().any(|(n, _)| n == "Next steps"));
    assert!(
        e.fields.iter().any(|(_, v)| v.contains("more")),
        "long sections say how much is left out"
    );
    assert!(
        e.description.starts_with("**Most likely: "),
        "{}",
        e.description
    );
    // The builder Discord receives carries the same content.
    let json = serde_json::to_value(e.to_builder()).unwrap();
    assert_eq!(json["fields"].as_array().unwrap().len(), e.fields.len());
}

/// The step numbers an embed's "Next steps" fields show, and those whose statement they say is
/// attached (in the order shown).
fn shown_and_pointed(e: &Embed) -> (Vec<usize>, Vec<usize>) {
    let steps: Vec<&str> = e
        .fields
        .iter()
        .filter(|(n, _)| n.starts_with("Next steps"))
        .map(|(_, v)| v.as_str())
        .collect();
    let numbers = |text: &str, marker: &str, end: char| -> Vec<usize> {
        text.split(marker)
            .skip(1)
            .filter_map(|rest| rest.split(end).next()?.parse().ok())
            .collect()
    };
    let all = steps.join("\n");
    (
        numbers(&all, "**", '.'),
        numbers(&all, "(statement attached: next-steps.sql, step ", ')'),
    )
}

/// Discord takes at most 10 files a message: 12 and 64 failing replicas attach one file, with
/// exactly the statements of the steps shown whose statement did not fit, each named in the
/// embed, whole, and none of a hidden step.
#[test]
fn long_statements_of_the_steps_shown_go_to_one_file() {
    for n in [12, 64] {
        let card = failing(n);
        let e = render::embed(&card);
        assert_limits(&e);
        assert_eq!(e.attachments.len(), 1, "{n} replicas: one file");
        let (name, file) = &e.attachments[0];
        assert_eq!(name, render::STEPS_FILE);
        let (shown, pointed) = shown_and_pointed(&e);
        assert!(pointed.len() > 10, "{n}: {pointed:?}");
        assert!(
            shown.len() < card.next_steps.len(),
            "{n}: some steps hidden"
        );
        // Every shown step with a statement has it whole in its field or a pointer to the file.
        for k in &shown {
            let step = &card.next_steps[k - 1];
            let Some(sql) = &step.sql else { continue };
            let in_field = e
                .fields
                .iter()
                .any(|(_, v)| v.contains(&format!("```sql\n{sql}\n```")));
            assert!(in_field ^ pointed.contains(k), "{n}: step {k}");
        }
        let in_file: Vec<usize> = file
            .lines()
            .filter_map(|l| l.strip_prefix("-- Step ")?.split(':').next()?.parse().ok())
            .collect();
        assert_eq!(in_file, pointed, "{n}: the file holds what the embed names");
        for k in &pointed {
            let sql = card.next_steps[k - 1].sql.as_ref().unwrap();
            assert!(file.contains(&format!("\n{sql};\n")), "{n}: step {k} whole");
        }
        let statements = file
            .lines()
            .filter(|l| !l.starts_with("--") && !l.is_empty())
            .count();
        assert_eq!(statements, pointed.len(), "{n}: one line per statement");
    }
}

#[test]
fn limits_hold_for_pathological_names() {
    let mut c = ctx(3);
    c.cluster = "x".repeat(400);
    let big = "y".repeat(5000);
    let findings = vec![Finding::new(
        CheckKind::Replicas,
        Severity::Crit,
        Subject::replica(&big),
        big.clone(),
    )
    .evidence(big.clone())
    .cause(Cause::ReplicaOffline)];
    let card = diagnose(
        &c,
        Scope::Full,
        vec![CheckResult {
            check: CheckKind::Replicas,
            elapsed_ms: 1,
            findings,
            slowest: None,
        }],
    );
    assert_limits(&render::embed(&card));
}

#[test]
fn healthy_embed_json() {
    let c = ctx(3);
    let findings = c
        .replicas
        .iter()
        .map(|r| {
            Finding::new(
                CheckKind::Replicas,
                Severity::Ok,
                Subject::replica(&r.name),
                format!("{}: up, 26.9.2.1, uptime 25h 0m, answered in 2 ms", r.name),
            )
        })
        .collect();
    let card = diagnose(
        &c,
        Scope::Full,
        vec![CheckResult {
            check: CheckKind::Replicas,
            elapsed_ms: 9,
            findings,
            slowest: None,
        }],
    );
    let mut json = serde_json::to_value(render::embed(&card).to_builder()).unwrap();
    // The footer names the version, which changes with every release.
    json["footer"]["text"] = json["footer"]["text"]
        .as_str()
        .unwrap()
        .replace(env!("CARGO_PKG_VERSION"), "X.Y.Z")
        .into();
    insta::assert_json_snapshot!("healthy_embed", json);
}

/// The action messages: preview (with a statement too long for the embed: attached), progress,
/// and the outcome with its before → after, as the JSON sent to Discord.
#[test]
fn action_embeds_json() {
    use chops::actions::{Outcome, Preview};
    use chops::domain::action::Action;
    use chops::domain::guard::Precondition;
    use chops::store::FinalState;

    let restart = Action::RestartReplica {
        cluster: "prod".into(),
        replica: "ch-2".into(),
        database: "shop".into(),
        table: "orders_*v2*".into(),
    };
    let preview = Preview {
        id: "0123456789abcdef".into(),
        sql: restart.sql(""),
        effect: restart.effect(),
        action: restart.clone(),
        checks: vec![
            Precondition {
                ok: true,
                text: "no other action on this target".into(),
            },
            Precondition {
                ok: true,
                text: "ch-2 answers".into(),
            },
            Precondition {
                ok: false,
                text: "Keeper does not answer (connection refused): the table would stay read-only"
                    .into(),
            },
        ],
        requester: "oncall".into(),
        needs_approval: true,
        dry_run: false,
        expires_at: 1_795_645_756,
    };
    let json = |e: &Embed| {
        let mut v = serde_json::to_value(e.to_builder()).unwrap();
        if let Some(t) = v["footer"]["text"].as_str() {
            v["footer"]["text"] = t.replace(env!("CARGO_PKG_VERSION"), "X.Y.Z").into();
        }
        v
    };
    let p = render::preview_embed(&preview, Some(42));
    assert!(p.attachments.is_empty());
    insta::assert_json_snapshot!("preview_embed", json(&p));

    let running = render::progress_embed(
        &restart.title(),
        &preview.sql,
        &preview.id,
        "restarting shop.orders_*v2* on ch-2",
    );
    insta::assert_json_snapshot!("progress_embed", json(&running));

    let done = Outcome {
        id: preview.id.clone(),
        state: FinalState::Succeeded,
        summary: "shop.orders_*v2* restarted on ch-2".into(),
        details: vec!["shop.orders_*v2* on ch-2: read-only, queue 340 → writable, queue 12".into()],
        query_id: Some("chops-0123456789abcdef".into()),
    };
    insta::assert_json_snapshot!(
        "outcome_embed",
        json(&render::outcome_embed(
            &restart.title(),
            &preview.sql,
            &done
        ))
    );

    // A backup of 300 databases: the statement does not fit, so it is attached whole.
    let big = Action::BackupReplica {
        cluster: "prod".into(),
        replica: "ch-1".into(),
        databases: (0..300)
            .map(|i| format!("tenant_database_{i:03}"))
            .collect(),
        disk: "backups".into(),
    };
    let sql = big.sql("chops-prod-ch-1-20261126T000000");
    let p = render::preview_embed(
        &Preview {
            sql: sql.clone(),
            action: big,
            ..preview
        },
        Some(42),
    );
    assert!(
        p.description
            .contains("*(statement attached: statement.sql)*"),
        "{}",
        p.description
    );
    assert_eq!(
        p.attachments,
        vec![("statement.sql".to_string(), format!("{sql}\n"))]
    );
    assert_limits(&p);
}
