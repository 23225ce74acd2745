//! The lines an incident message opens with (the card follows): what failed, where, when, the
//! error — every untrusted piece through the display boundary, for Discord or a log line.

use crate::domain::display::{show, Target};
use crate::domain::incident::{utc, Counted, Detail, Incident};
use crate::domain::text::{clip, first_line};

/// Characters of an error or annotation shown in the header (the card carries the rest).
const PIECE_MAX: usize = 300;

fn piece(s: &str, t: Target) -> String {
    show(&clip(s, PIECE_MAX), t)
}

/// Our own words emphasised (Discord markdown; plain text as is).
fn bold(s: String, t: Target) -> String {
    match t {
        Target::Discord => format!("**{s}**"),
        Target::Plain => s,
    }
}

/// " (critical)" for an alert's severity label, nothing without one.
fn severity_of(s: &str, t: Target) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({})", piece(s, t))
    }
}

/// The header of `i`: its first line says what happened; a resolution, when there is one, comes
/// first. Discord gets markdown emphasis on our own words only.
pub fn lines(i: &Incident, t: Target) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = &i.resolution {
        out.push(format!(
            "✅ {} {}",
            bold("Resolved:".into(), t),
            piece(r, t)
        ));
    }
    out.extend(detail_lines(&i.detail, &show(&i.cluster, t), t));
    out
}

/// What happened, on `cluster` (already shown): one variant's lines.
fn detail_lines(d: &Detail, cluster: &str, t: Target) -> Vec<String> {
    let bold = |s: String| bold(s, t);
    let mut out = Vec::new();
    match d {
        Detail::Operation {
            op,
            status,
            name,
            replicas,
            error,
            start,
            ..
        } => {
            out.push(format!(
                "🛑 {} {}",
                bold(format!("{} failed on cluster {cluster}:", op.verb())),
                piece(name, t)
            ));
            out.push(where_when(replicas, status, *start, t));
            if !error.is_empty() {
                out.push(format!("Error: {}", piece(&first_line(error, 2000), t)));
            }
        }
        Detail::Unreachable {
            replica,
            since,
            error,
        } => {
            out.push(format!(
                "🛑 {}",
                bold(format!(
                    "Replica {} of cluster {cluster} is not answering (since {})",
                    show(replica, t),
                    utc(*since)
                ))
            ));
            if !error.is_empty() {
                out.push(format!("Last error: {}", piece(error, t)));
            }
        }
        Detail::Alert {
            alertname,
            severity,
            summary,
            description,
            generator_url,
            starts_at,
            truncated,
            ..
        } => {
            out.push(format!(
                "🔥 {}{}",
                bold(format!(
                    "Alert {} on cluster {cluster}",
                    piece(alertname, t)
                )),
                severity_of(severity, t)
            ));
            for text in [summary, description] {
                if !text.is_empty() {
                    out.push(piece(&first_line(text, 2000), t));
                }
            }
            out.push(alert_source(starts_at, generator_url, t));
            out.extend((*truncated > 0).then(|| left_out(*truncated)));
        }
        Detail::Preflight {
            verdict,
            scheduled_for,
        } => {
            out.push(format!(
                "🕐 {} {}",
                bold(format!("Pre-flight of cluster {cluster}:")),
                show(verdict, t)
            ));
            out.push(format!("Scheduled for {}", show(scheduled_for, t)));
        }
    }
    out
}

/// A failed operation's replicas, status and start.
fn where_when(replicas: &[String], status: &str, start: i64, t: Target) -> String {
    format!(
        "{} · {} · started {}",
        replicas_shown(replicas, t),
        show(status, t),
        utc(start)
    )
}

/// "Replica a" / "Replicas a, b and 3 more" (ten names at most).
fn replicas_shown(replicas: &[String], t: Target) -> String {
    let shown: Vec<String> = replicas.iter().take(10).map(|r| show(r, t)).collect();
    let more = replicas.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let noun = if replicas.len() > 1 {
        "Replicas"
    } else {
        "Replica"
    };
    format!("{noun} {}{more}", shown.join(", "))
}

/// When an alert started, and the host of its source (the full link is a button, not unfurled
/// into a preview).
fn alert_source(starts_at: &str, generator_url: &str, t: Target) -> String {
    let mut source = format!("Started {}", piece(starts_at, t));
    if let Some(host) = url_host(generator_url) {
        source.push_str(&format!(" · source {}", piece(host, t)));
    }
    source
}

/// Incidents of one kind shown in one message at most this many lines each.
const GROUP_LINES: usize = 15;

/// The header of one message for `all` (one incident, or several of one kind and cluster posted
/// together: an Alertmanager group, several replicas down at once): a title, then a line each.
pub fn group_lines(all: &[Incident], t: Target) -> Vec<String> {
    counted_lines(all, Counted::default(), t)
}

/// [`group_lines`] of a storm message: `all` listed, `counted` more in the title's numbers.
fn counted_lines(all: &[Incident], counted: Counted, t: Target) -> Vec<String> {
    let [first, ..] = all else {
        return Vec::new();
    };
    if all.len() == 1 && counted.alerts == 0 {
        return lines(first, t);
    }
    let bold = |s: String| bold(s, t);
    let cluster = show(&first.cluster, t);
    let n = all.len() + counted.alerts;
    let resolved = all.iter().filter(|i| i.resolution.is_some()).count() + counted.resolved;
    let what = match first.detail {
        Detail::Unreachable { .. } => format!("{n} replicas of cluster {cluster} not answering"),
        _ => format!("{} alerts on cluster {cluster}", thousands(n)),
    };
    let icon = if matches!(first.detail, Detail::Alert { .. }) {
        "🔥"
    } else {
        "🛑"
    };
    let title = match resolved {
        r if r == n => format!("✅ {} {what}", bold("Resolved:".into())),
        0 => format!("{icon} {}", bold(what)),
        r => format!("{icon} {} ({} resolved)", bold(what), thousands(r)),
    };
    let title = match truncated(all) {
        0 => title,
        n => format!("{title} · {}", left_out(n)),
    };
    let mut out = vec![title];
    for i in all {
        let mark = if i.resolution.is_some() { "✅" } else { "•" };
        let body = match &i.detail {
            Detail::Alert {
                alertname,
                severity,
                summary,
                ..
            } => {
                let sev = severity_of(severity, t);
                let summary = if summary.is_empty() {
                    String::new()
                } else {
                    format!(": {}", piece(&first_line(summary, 2000), t))
                };
                format!("{}{sev}{summary}", piece(alertname, t))
            }
            Detail::Unreachable {
                replica,
                since,
                error,
            } => format!(
                "{} since {} — {}",
                show(replica, t),
                utc(*since),
                piece(error, t)
            ),
            other => lines(
                &Incident {
                    detail: other.clone(),
                    resolution: None,
                    ..i.clone()
                },
                t,
            )
            .join(" "),
        };
        let done = i
            .resolution
            .as_ref()
            .map(|r| format!(" — {}", piece(r, t)))
            .unwrap_or_default();
        out.push(clip(&format!("{mark} {body}{done}"), LINE_MAX));
    }
    out
}

/// The most alerts a sender said it left out of the notifications of `all`.
fn truncated(all: &[Incident]) -> u64 {
    all.iter()
        .map(|i| match i.detail {
            Detail::Alert { truncated, .. } => truncated,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// What the sender left out of a notification (`truncatedAlerts`: its max_alerts).
fn left_out(n: u64) -> String {
    format!("{n} more alert(s) of this notification were left out by the sender (max_alerts)")
}

/// Characters of one incident's line in a group.
const LINE_MAX: usize = 200;

/// [`group_lines`] as one text of at most `max` characters: the title, then as many lines as fit
/// (at most [`GROUP_LINES`]), then "… and N more" for the rest — never a line cut in half.
pub fn group_text(all: &[Incident], t: Target, max: usize) -> String {
    storm_text(all, Counted::default(), t, max)
}

/// [`group_text`] of a message that lists `all` and counts `counted` more alerts: "… and 8,950
/// more alerts" (listed lines not shown included).
pub fn storm_text(all: &[Incident], counted: Counted, t: Target, max: usize) -> String {
    let mut lines = counted_lines(all, counted, t).into_iter();
    let Some(title) = lines.next() else {
        return String::new();
    };
    if all.len() == 1 && counted.alerts == 0 {
        return cut(
            std::iter::once(title)
                .chain(lines)
                .collect::<Vec<_>>()
                .join("\n"),
            max,
        );
    }
    let rest: Vec<String> = lines.collect();
    let mut out = cut(title, max);
    let reserve = 32; // "\n… and N,NNN,NNN more alerts"
    let mut shown = 0;
    for l in &rest {
        let next = out.chars().count() + 1 + l.chars().count();
        let more = rest.len() - shown - 1 + counted.alerts;
        if shown == GROUP_LINES || next + if more > 0 { reserve } else { 0 } > max {
            break;
        }
        out.push('\n');
        out.push_str(l);
        shown += 1;
    }
    let more = rest.len() - shown + counted.alerts;
    if more > 0 {
        let noun = match all[0].detail {
            Detail::Alert { .. } => " alerts",
            _ => "",
        };
        out.push_str(&format!("\n… and {} more{noun}", thousands(more)));
    }
    out
}

/// 8950 → "8,950".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cut(joined: String, max: usize) -> String {
    if joined.chars().count() <= max {
        return joined;
    }
    let mut out: String = joined.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `host[:port]` of an `http(s)://` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then_some(host)
}

/// The header as one text of at most `max` characters (Discord content: 2000).
pub fn text(i: &Incident, t: Target, max: usize) -> String {
    cut(lines(i, t).join("\n"), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::Op;

    fn incident(detail: Detail, resolution: Option<&str>) -> Incident {
        Incident {
            id: 1,
            cluster: "prod".into(),
            detail,
            channel_id: Some(5),
            message_id: None,
            posted: false,
            resolution: resolution.map(str::to_string),
            attempts: 0,
            edit_due: false,
            created_at: 0,
        }
    }

    #[test]
    fn operation_names_what_failed_first_and_escapes_server_text() {
        let i = incident(
            Detail::Operation {
                op: Op::Backup,
                status: "BACKUP_FAILED".into(),
                name: "Disk('backups', '@everyone **x**')".into(),
                replicas: vec!["r1".into(), "r2\n".into()],
                error: "Code: 499. DB::Exception: boom\nsecond line".into(),
                start: 0,
                end: 1,
            },
            None,
        );
        let l = lines(&i, Target::Discord);
        assert!(
            l[0].starts_with("🛑 **BACKUP failed on cluster prod:** Disk("),
            "{l:?}"
        );
        assert!(l[0].contains("@\u{200B}everyone \\*\\*x\\*\\*"), "{l:?}");
        assert_eq!(
            l[1],
            "Replicas r1, r2\\n · BACKUP\\_FAILED · started 1970-01-01 00:00:00 UTC"
        );
        assert!(l[2].starts_with("Error: Code: 499"));
        assert!(!l.concat().contains('\n'));
    }

    #[test]
    fn a_group_is_one_title_and_a_line_each() {
        let alert = |id: i64, name: &str, resolved: bool| Incident {
            id,
            ..incident(
                Detail::Alert {
                    alertname: name.into(),
                    severity: "critical".into(),
                    summary: "Backup *failed*".into(),
                    description: String::new(),
                    generator_url: String::new(),
                    starts_at: "t".into(),
                    links: Vec::new(),
                    truncated: 0,
                },
                resolved.then_some("alert resolved at t2"),
            )
        };
        let all = [alert(1, "A", false), alert(2, "B", true)];
        let l = group_lines(&all, Target::Discord);
        assert_eq!(l[0], "🔥 **2 alerts on cluster prod** (1 resolved)");
        let mut cut = all.clone();
        if let Detail::Alert { truncated, .. } = &mut cut[1].detail {
            *truncated = 40;
        }
        assert_eq!(
            group_lines(&cut, Target::Discord)[0],
            "🔥 **2 alerts on cluster prod** (1 resolved) · 40 more alert(s) of this notification were left out by the sender (max_alerts)"
        );
        assert!(lines(&cut[1], Target::Discord)
            .last()
            .unwrap()
            .starts_with("40 more alert(s)"));
        assert_eq!(l[1], "• A (critical): Backup \\*failed\\*");
        assert_eq!(
            l[2],
            "✅ B (critical): Backup \\*failed\\* — alert resolved at t2"
        );
        let many: Vec<Incident> = (0..20).map(|i| alert(i, "X", true)).collect();
        let text = group_text(&many, Target::Plain, 2000);
        assert!(text.starts_with("✅ Resolved: 20 alerts on cluster prod\n"));
        assert!(text.ends_with("\n… and 5 more alerts"), "{text}");
        // Whatever the limit, whole lines only, and the rest counted.
        let small = group_text(&many, Target::Plain, 200);
        assert!(small.chars().count() <= 200, "{small}");
        let last = small.lines().last().unwrap();
        assert!(
            last.starts_with("… and ") && last.ends_with(" more alerts"),
            "{small}"
        );
        assert!(small
            .lines()
            .skip(1)
            .all(|l| l.starts_with('✅') || l.starts_with('…')));
        assert_eq!(
            group_lines(&all[..1], Target::Plain),
            lines(&all[0], Target::Plain)
        );
    }

    #[test]
    fn resolution_comes_first() {
        let i = incident(
            Detail::Unreachable {
                replica: "r2".into(),
                since: 60,
                error: "connection refused".into(),
            },
            Some("answers again at 1970-01-01 00:05:00 UTC"),
        );
        let l = lines(&i, Target::Plain);
        assert_eq!(
            l[0],
            "✅ Resolved: answers again at 1970-01-01 00:05:00 UTC"
        );
        assert!(l[1].contains("Replica r2 of cluster prod is not answering"));
        assert!(text(&i, Target::Plain, 20).chars().count() <= 20);
    }

    #[test]
    fn a_storm_lists_a_few_and_counts_the_rest() {
        let alert = |id: i64, resolved: bool| Incident {
            id,
            ..incident(
                Detail::Alert {
                    alertname: format!("A{id}"),
                    severity: String::new(),
                    summary: String::new(),
                    description: String::new(),
                    generator_url: String::new(),
                    starts_at: "t".into(),
                    links: Vec::new(),
                    truncated: 0,
                },
                resolved.then_some("alert resolved at t2"),
            )
        };
        let listed: Vec<Incident> = (0..50).map(|i| alert(i, i == 0)).collect();
        let counted = Counted {
            alerts: 8_950,
            resolved: 9,
        };
        let text = storm_text(&listed, counted, Target::Plain, 2000);
        assert!(
            text.starts_with("🔥 9,000 alerts on cluster prod (10 resolved)\n"),
            "{text}"
        );
        assert!(text.ends_with("\n… and 8,985 more alerts"), "{text}");
        assert_eq!(text.lines().count(), 1 + GROUP_LINES + 1, "{text}");
        // One listed, the rest counted: still a storm title, not one alert's header.
        let one = storm_text(&listed[1..2], counted, Target::Plain, 2000);
        assert!(
            one.starts_with("🔥 8,951 alerts on cluster prod (9 resolved)"),
            "{one}"
        );
        assert!(one.ends_with("\n… and 8,950 more alerts"), "{one}");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
