//! The card as a Discord embed — the only place that knows embeds. Colour by verdict, title with
//! cluster and verdict, the top cause and its evidence, one field per check, "Next steps" with the
//! exact SQL, and a footer with the time per check. Discord's limits are met by summarising.

use poise::serenity_prelude as serenity;

use crate::domain::{Card, Finding, NextStep, Severity, Verdict};
use crate::render::display::{discord, plain};

pub const TITLE_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4096;
pub const FIELD_NAME_MAX: usize = 256;
pub const FIELD_VALUE_MAX: usize = 1024;
pub const FOOTER_MAX: usize = 2048;
pub const FIELDS_MAX: usize = 25;
pub const TOTAL_MAX: usize = 6000;

/// The embed's content before it becomes a serenity builder (plain data, so limits are testable).
#[derive(Debug, Clone, PartialEq)]
pub struct Embed {
    pub title: String,
    pub description: String,
    pub color: u32,
    pub fields: Vec<(String, String)>,
    pub footer: String,
    pub timestamp: String,
}

impl Embed {
    /// Characters Discord counts toward the 6000 limit.
    pub fn total_chars(&self) -> usize {
        count(&self.title)
            + count(&self.description)
            + count(&self.footer)
            + self
                .fields
                .iter()
                .map(|(n, v)| count(n) + count(v))
                .sum::<usize>()
    }

    pub fn to_builder(&self) -> serenity::CreateEmbed {
        let mut e = serenity::CreateEmbed::new()
            .title(&self.title)
            .description(&self.description)
            .colour(self.color)
            .footer(serenity::CreateEmbedFooter::new(&self.footer));
        if let Ok(ts) = serenity::Timestamp::parse(&self.timestamp) {
            e = e.timestamp(ts);
        }
        for (name, value) in &self.fields {
            e = e.field(name, value, false);
        }
        e
    }
}

fn count(s: &str) -> usize {
    s.chars().count()
}

/// Cut `s` to at most `max` characters, marking the cut with "…".
pub fn clip(s: &str, max: usize) -> String {
    if count(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn color(v: Verdict) -> u32 {
    match v {
        Verdict::Healthy => 0x2e_cc_71,
        Verdict::Degraded => 0xe6_7e_22,
        Verdict::Failing => 0xe7_4c_3c,
    }
}

fn mark(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "✅",
        Severity::Unknown => "❔",
        Severity::Warn => "⚠️",
        Severity::Crit => "🛑",
    }
}

/// Lines (worst first) that fit in `max` characters, with "… and N more" when some do not.
fn lines_within(lines: &[String], max: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let rest = lines.len() - i;
        let more = if rest > 1 {
            format!("\n… and {} more", rest - 1)
        } else {
            String::new()
        };
        let candidate = if out.is_empty() {
            line.clone()
        } else {
            format!("{out}\n{line}")
        };
        if count(&candidate) + count(&more) <= max {
            out = candidate;
        } else {
            let tail = format!("… and {rest} more");
            if out.is_empty() {
                return clip(line, max);
            }
            return if count(&out) + 1 + count(&tail) <= max {
                format!("{out}\n{tail}")
            } else {
                clip(&out, max)
            };
        }
    }
    out
}

fn finding_line(f: &Finding) -> String {
    let mut line = format!("{} {}", mark(f.severity), discord(&f.summary));
    if f.severity > Severity::Ok {
        if let Some(e) = f.evidence.first() {
            line.push_str(&format!("\n  ↳ {}", clip(&discord(e), 160)));
        }
    }
    line
}

fn step_text(i: usize, s: &NextStep, max: usize, scope: &str, cluster: &str) -> String {
    let on = s
        .run_on
        .as_ref()
        .map(|r| format!(" — on **{}**", discord(r)))
        .unwrap_or_default();
    let head = clip(&format!("**{}.** {}{on}", i + 1, discord(&s.title)), 200);
    let note = s
        .note
        .as_ref()
        .map(|n| format!("\n*{}*", clip(&discord(n), 150)))
        .unwrap_or_default();
    let room = max.saturating_sub(count(&head) + count(&note));
    let mut body = String::new();
    // A statement is shown whole or not at all: a clipped one must never look runnable.
    // Inside a code block markdown is not read; `sql::ident`/`sql::string` never produce "```".
    if let Some(code) = &s.sql {
        let block = format!("\n```sql\n{}\n```", plain(code));
        let part = if count(&block) <= room {
            block
        } else {
            clip(&format!("\n*(too long for Discord: `chops check {scope} --cluster {cluster}` prints it in full)*"), room)
        };
        body.push_str(&part);
    }
    format!("{head}{body}{note}")
}

/// Build the embed within every limit. `budget` is the share of a field's value lines may use;
/// it shrinks until the whole embed fits in 6000 characters.
pub fn embed(card: &Card) -> Embed {
    let mut per_field = FIELD_VALUE_MAX;
    loop {
        let e = build(card, per_field);
        if e.total_chars() <= TOTAL_MAX || per_field <= 120 {
            return e;
        }
        per_field = per_field * 3 / 4;
    }
}

fn build(card: &Card, per_field: usize) -> Embed {
    let scope = if card.scope == "backup" {
        "backup check".to_string()
    } else {
        format!("{} check", card.scope)
    };
    let title = clip(
        &format!(
            "{} {} · {} · {}",
            mark(card.worst()),
            plain(&card.cluster),
            card.verdict.label().to_uppercase(),
            scope
        ),
        TITLE_MAX,
    );

    let mut description = format!("**{}**", discord(&card.headline));
    if let Some(top) = card.causes.first() {
        for e in top.evidence.iter().take(5) {
            description.push_str(&format!("\n• {}", discord(e)));
        }
        if card.causes.len() > 1 {
            let others: Vec<String> = card.causes[1..]
                .iter()
                .map(|c| format!("{} ({})", discord(&c.title), c.score))
                .collect();
            description.push_str(&format!("\nAlso possible: {}", others.join(", ")));
        }
    }
    let description = clip(&description, DESCRIPTION_MAX.min(per_field * 2));

    let mut fields: Vec<(String, String)> = Vec::new();
    for s in &card.sections {
        let lines: Vec<String> = s.findings.iter().map(finding_line).collect();
        let value = if lines.is_empty() {
            "no findings".to_string()
        } else {
            lines_within(&lines, per_field)
        };
        fields.push((
            clip(
                &format!("{} {}", mark(s.status), discord(&s.title)),
                FIELD_NAME_MAX,
            ),
            value,
        ));
    }
    // Next steps: as many fields as needed, each ≤ the field limit, within 25 fields in all.
    let steps: Vec<String> = card
        .next_steps
        .iter()
        .enumerate()
        .map(|(i, s)| step_text(i, s, per_field, &card.scope, &card.cluster))
        .collect();
    let mut current = String::new();
    let mut step_fields: Vec<String> = Vec::new();
    for st in steps {
        if !current.is_empty() && count(&current) + 1 + count(&st) > per_field {
            step_fields.push(std::mem::take(&mut current));
        }
        current = if current.is_empty() {
            st
        } else {
            format!("{current}\n{st}")
        };
    }
    if !current.is_empty() {
        step_fields.push(current);
    }
    let room = FIELDS_MAX - fields.len();
    let shown = step_fields.len().min(room);
    let hidden = step_fields.len() - shown;
    for (i, v) in step_fields.into_iter().take(shown).enumerate() {
        let name = if i == 0 {
            "Next steps".to_string()
        } else {
            format!("Next steps (cont. {})", i + 1)
        };
        fields.push((name, v));
    }
    if hidden > 0 {
        if let Some(last) = fields.last_mut() {
            last.1 = clip(
                &format!(
                    "{}\n… {hidden} more: run `chops check backup` for all",
                    last.1
                ),
                FIELD_VALUE_MAX,
            );
        }
    }

    let timings: Vec<String> = card
        .sections
        .iter()
        .map(|s| format!("{} {} ms", s.check.name(), s.elapsed_ms))
        .collect();
    let footer = clip(
        &format!(
            "{} · total {} ms · chops {}",
            timings.join(" · "),
            card.elapsed_ms,
            env!("CARGO_PKG_VERSION")
        ),
        FOOTER_MAX,
    );
    Embed {
        title,
        description,
        color: color(card.verdict),
        fields,
        footer,
        timestamp: card.generated_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_and_lines() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        let lines: Vec<String> = (0..50)
            .map(|i| format!("line {i:02} with some text"))
            .collect();
        let v = lines_within(&lines, 200);
        assert!(count(&v) <= 200, "{}", count(&v));
        assert!(v.ends_with("more"), "{v}");
        assert!(v.starts_with("line 00"));
    }
}
