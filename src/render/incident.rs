//! The lines an incident message opens with (the card follows): what failed, where, when, the
//! error — every untrusted piece through the display boundary, for Discord or a log line.

use super::display::{show, Target};
use crate::domain::incident::{utc, Detail, Incident};
use crate::domain::text::{clip, first_line};

/// Characters of an error or annotation shown in the header (the card carries the rest).
const PIECE_MAX: usize = 300;

fn piece(s: &str, t: Target) -> String {
    show(&clip(s, PIECE_MAX), t)
}

/// The header of `i`: its first line says what happened; a resolution, when there is one, comes
/// first. Discord gets markdown emphasis on our own words only.
pub fn lines(i: &Incident, t: Target) -> Vec<String> {
    let bold = |s: String| match t {
        Target::Discord => format!("**{s}**"),
        Target::Plain => s,
    };
    let cluster = show(&i.cluster, t);
    let mut out = Vec::new();
    if let Some(r) = &i.resolution {
        out.push(format!("✅ {} {}", bold("Resolved:".into()), piece(r, t)));
    }
    match &i.detail {
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
            let shown: Vec<String> = replicas.iter().take(10).map(|r| show(r, t)).collect();
            let more = replicas.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            out.push(format!(
                "{} {}{more} · {} · started {}",
                if replicas.len() > 1 {
                    "Replicas"
                } else {
                    "Replica"
                },
                shown.join(", "),
                show(status, t),
                utc(*start)
            ));
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
        } => {
            let sev = if severity.is_empty() {
                String::new()
            } else {
                format!(" ({})", piece(severity, t))
            };
            out.push(format!(
                "🔥 {}{sev}",
                bold(format!(
                    "Alert {} on cluster {cluster}",
                    piece(alertname, t)
                ))
            ));
            for text in [summary, description] {
                if !text.is_empty() {
                    out.push(piece(&first_line(text, 2000), t));
                }
            }
            let mut source = format!("Started {}", piece(starts_at, t));
            if let Some(host) = url_host(generator_url) {
                // The host only: the full link is a button (not unfurled into a preview).
                source.push_str(&format!(" · source {}", piece(host, t)));
            }
            out.push(source);
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

/// `host[:port]` of an `http(s)://` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then_some(host)
}

/// The header as one text of at most `max` characters (Discord content: 2000).
pub fn text(i: &Incident, t: Target, max: usize) -> String {
    let joined = lines(i, t).join("\n");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut out: String = joined.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
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
}
