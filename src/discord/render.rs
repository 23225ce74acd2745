//! The card as a Discord embed — the only place that knows embeds. Colour by verdict, title with
//! cluster and verdict, the top cause and its evidence, one field per check, "Next steps" with the
//! exact SQL, and a footer with the time per check. Discord's limits are met by summarising.

use poise::serenity_prelude as serenity;

use crate::domain::display::{discord, plain};
use crate::domain::text::clip_chars;
use crate::domain::{Card, Finding, NextStep, Severity, Verdict};

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
    /// Files to attach to the message (name, text): statements too long to show in a field.
    pub attachments: Vec<(String, String)>,
}

impl Embed {
    /// The files as serenity attachments (never more than Discord takes in one message: it
    /// refuses the whole message otherwise).
    pub fn files(&self) -> Vec<serenity::CreateAttachment> {
        self.attachments
            .iter()
            .take(FILES_MAX)
            .map(|(name, text)| {
                serenity::CreateAttachment::bytes(text.as_bytes().to_vec(), name.clone())
            })
            .collect()
    }

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
    lines_shown(lines, max).0
}

/// [`lines_within`], and how many lines it shows whole.
fn lines_shown(lines: &[String], max: usize) -> (String, usize) {
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
                return (clip_chars(line, max), 0);
            }
            return if count(&out) + 1 + count(&tail) <= max {
                (format!("{out}\n{tail}"), i)
            } else {
                (clip_chars(&out, max), i.saturating_sub(1))
            };
        }
    }
    (out, lines.len())
}

fn finding_line(f: &Finding) -> String {
    let mut line = format!("{} {}", mark(f.severity), discord(&f.summary));
    if f.severity > Severity::Ok {
        if let Some(e) = f.evidence.first() {
            line.push_str(&format!("\n  ↳ {}", clip_chars(&discord(e), 160)));
        }
    }
    line
}

/// The one file a card's long statements go to (Discord takes at most [`FILES_MAX`] files a
/// message; one file per statement overflowed that on large clusters).
pub const STEPS_FILE: &str = "next-steps.sql";
/// Discord's limit of files per message.
pub const FILES_MAX: usize = 10;
/// Bytes of statements one attached file may hold: far under Discord's upload limits (MiB),
/// and more than anyone reads in chat; statements past it are named, not attached.
pub const FILE_BYTES_MAX: usize = 1 << 20;

/// Where a step's statement is, when it is attached instead of shown.
fn pointer(i: usize) -> String {
    format!("\n*(statement attached: {STEPS_FILE}, step {})*", i + 1)
}

/// A step's text within `max`, and whether its statement goes to [`STEPS_FILE`] (too long for
/// the field). The pointer to the file is never cut: the note, then the title, give way.
fn step_text(i: usize, s: &NextStep, max: usize) -> (String, bool) {
    let on = s
        .run_on
        .as_ref()
        .map(|r| format!(" — on **{}**", discord(r)))
        .unwrap_or_default();
    let head = clip_chars(&format!("**{}.** {}{on}", i + 1, discord(&s.title)), 200);
    let note = s
        .note
        .as_ref()
        .map(|n| format!("\n*{}*", clip_chars(&discord(n), 150)))
        .unwrap_or_default();
    // A statement is shown whole or not at all: a clipped one must never look runnable. One
    // that does not fit is attached whole (on-call may only have chat).
    // Inside a code block markdown is not read; `sql::ident`/`sql::string` never produce "```".
    let Some(code) = &s.sql else {
        return (format!("{head}{note}"), false);
    };
    let block = format!("\n```sql\n{}\n```", plain(code));
    if count(&head) + count(&block) + count(&note) <= max {
        return (format!("{head}{block}{note}"), false);
    }
    let pointer = pointer(i);
    let room = max.saturating_sub(count(&pointer));
    let text = if count(&head) + count(&note) <= room {
        format!("{head}{pointer}{note}")
    } else {
        format!("{}{pointer}", clip_chars(&head, room))
    };
    (text, true)
}

/// [`STEPS_FILE`] for a card: its header names the cluster, the verdict and the time.
fn card_steps_file(card: &Card, shown: &[usize]) -> Option<(String, String)> {
    let about = format!(
        "cluster {} ({}), {}",
        plain(&card.cluster),
        card.verdict.label(),
        plain(&card.generated_at)
    );
    steps_file(&about, &card.next_steps, shown)
}

/// [`STEPS_FILE`]: the statements of `shown` (indexes into `steps`), each under comments naming
/// its step, where it runs and its note; terminated, so the file runs as it is. None when
/// nothing is attached.
pub fn steps_file(about: &str, steps: &[NextStep], shown: &[usize]) -> Option<(String, String)> {
    if shown.is_empty() {
        return None;
    }
    // Comments go through the display boundary: a name cannot end its comment line.
    let mut out = format!(
        "-- chops: next steps for {about}\n-- Run each statement on the replica its step names (On:), else on any replica.\n"
    );
    for &i in shown {
        let Some(step) = steps.get(i) else {
            continue;
        };
        let Some(code) = &step.sql else { continue };
        let mut part = format!("\n-- Step {}: {}\n", i + 1, plain(&step.title));
        if let Some(on) = &step.run_on {
            part.push_str(&format!("-- On: {}\n", plain(on)));
        }
        if let Some(n) = &step.note {
            part.push_str(&format!("-- {}\n", plain(n)));
        }
        let code = plain(code);
        let end = if code.trim_end().ends_with(';') {
            ""
        } else {
            ";"
        };
        part.push_str(&format!("{code}{end}\n"));
        if out.len() + part.len() > FILE_BYTES_MAX {
            part = format!(
                "\n-- Step {}: its statement ({} bytes) does not fit in this file: run `chops check backup` for it\n",
                i + 1,
                code.len()
            );
        }
        out.push_str(&part);
    }
    Some((STEPS_FILE.to_string(), out))
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
    let mut fields = section_fields(card, per_field);
    let steps = step_fields(card, per_field);
    // Only the statements of the steps shown are attached, all in one file.
    let attached = push_steps(&mut fields, steps);
    let attachments = card_steps_file(card, &attached).into_iter().collect();
    Embed {
        title: title(card),
        description: description(card, per_field),
        color: color(card.verdict),
        fields,
        footer: footer(card),
        timestamp: card.generated_at.clone(),
        attachments,
    }
}

/// Mark, cluster, verdict and scope.
fn title(card: &Card) -> String {
    clip_chars(
        &format!(
            "{} {} · {} · {}",
            mark(card.worst()),
            plain(&card.cluster),
            card.verdict.label().to_uppercase(),
            card.scope.title()
        ),
        TITLE_MAX,
    )
}

/// The headline, the top cause's evidence (up to 5) and the other causes with their scores.
fn description(card: &Card, per_field: usize) -> String {
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
    clip_chars(&description, DESCRIPTION_MAX.min(per_field * 2))
}

/// One field per check: its findings, worst first, within `per_field`.
fn section_fields(card: &Card, per_field: usize) -> Vec<(String, String)> {
    card.sections
        .iter()
        .map(|s| {
            let lines: Vec<String> = s.findings.iter().map(finding_line).collect();
            let value = if lines.is_empty() {
                "no findings".to_string()
            } else {
                lines_within(&lines, per_field)
            };
            let name = clip_chars(
                &format!("{} {}", mark(s.status), discord(&s.title)),
                FIELD_NAME_MAX,
            );
            (name, value)
        })
        .collect()
}

/// The next steps packed into field values of at most `per_field` (a step is never split), each
/// with the steps whose statements it points to in [`STEPS_FILE`].
fn step_fields(card: &Card, per_field: usize) -> Vec<(String, Vec<usize>)> {
    let mut values: Vec<(String, Vec<usize>)> = Vec::new();
    let mut current = (String::new(), Vec::new());
    for (i, s) in card.next_steps.iter().enumerate() {
        let (st, attached) = step_text(i, s, per_field);
        if !current.0.is_empty() && count(&current.0) + 1 + count(&st) > per_field {
            values.push(std::mem::take(&mut current));
        }
        current.0 = if current.0.is_empty() {
            st
        } else {
            format!("{}\n{st}", current.0)
        };
        if attached {
            current.1.push(i);
        }
    }
    if !current.0.is_empty() {
        values.push(current);
    }
    values
}

/// Next steps as fields after the sections, within 25 fields in all; what does not fit is
/// counted on the last field. Returns the steps shown whose statements are to be attached.
fn push_steps(fields: &mut Vec<(String, String)>, steps: Vec<(String, Vec<usize>)>) -> Vec<usize> {
    let room = FIELDS_MAX - fields.len();
    let shown = steps.len().min(room);
    let hidden = steps.len() - shown;
    let mut attached = Vec::new();
    for (i, (v, a)) in steps.into_iter().take(shown).enumerate() {
        let name = if i == 0 {
            "Next steps".to_string()
        } else {
            format!("Next steps (cont. {})", i + 1)
        };
        fields.push((name, v));
        attached.extend(a);
    }
    if hidden > 0 {
        if let Some(last) = fields.last_mut() {
            let more = format!("\n… {hidden} more: run `chops check backup` for all");
            // Never cut into a step (its pointer to the attached file): a full value says it
            // in its name instead.
            if count(&last.1) + count(&more) <= FIELD_VALUE_MAX {
                last.1.push_str(&more);
            } else {
                let name = format!("{} · {hidden} more: chops check backup", last.0);
                last.0 = clip_chars(&name, FIELD_NAME_MAX);
            }
        }
    }
    attached
}

/// Time per check (and its slowest replica), the total, and the version.
fn footer(card: &Card) -> String {
    let timings: Vec<String> = card
        .sections
        .iter()
        .map(|s| match &s.slowest {
            Some(w) => format!(
                "{} {} ms ({})",
                s.check.name(),
                s.elapsed_ms,
                plain(&w.name)
            ),
            None => format!("{} {} ms", s.check.name(), s.elapsed_ms),
        })
        .collect();
    clip_chars(
        &format!(
            "{} · total {} ms · chops {}",
            timings.join(" · "),
            card.elapsed_ms,
            env!("CARGO_PKG_VERSION")
        ),
        FOOTER_MAX,
    )
}

/// Buttons under a card: one per next step chops can run, `custom_id` = `chops:offer:<stored id>`
/// (the action itself stays in the store; nothing in a custom_id is trusted).
pub fn card_buttons(offers: &[(String, String)]) -> Vec<serenity::CreateActionRow> {
    offers
        .chunks(5)
        .take(5)
        .map(|row| {
            serenity::CreateActionRow::Buttons(
                row.iter()
                    .map(|(id, label)| {
                        serenity::CreateButton::new(format!("chops:offer:{id}"))
                            .label(clip_chars(&plain(label), 80))
                            .style(serenity::ButtonStyle::Secondary)
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Under an incident: the alert's source and Grafana's silence/dashboard/panel links as link
/// buttons (a link in the text would be unfurled by Discord into a preview the sender controls; a
/// button is not). Only valid http(s) URLs without credentials, of at most Discord's 512
/// characters, reach here (see `automation::alerts`); the length is checked again all the same.
pub fn incident_buttons(i: &crate::domain::incident::Incident) -> Vec<serenity::CreateActionRow> {
    let crate::domain::incident::Detail::Alert {
        generator_url,
        links,
        ..
    } = &i.detail
    else {
        return Vec::new();
    };
    let source = std::iter::once(("Open the alert's source", generator_url.as_str()));
    let others = links.iter().map(|l| (l.label.as_str(), l.url.as_str()));
    let buttons: Vec<serenity::CreateButton> = source
        .chain(others)
        .filter(|(_, url)| !url.is_empty() && url.chars().count() <= 512)
        .take(5)
        .map(|(label, url)| serenity::CreateButton::new_link(url).label(label))
        .collect();
    if buttons.is_empty() {
        return Vec::new();
    }
    vec![serenity::CreateActionRow::Buttons(buttons)]
}

/// Every row under an incident: its link, then the card's action buttons (Discord allows 5 rows).
pub fn incident_rows(
    i: Option<&crate::domain::incident::Incident>,
    offers: &[(String, String)],
) -> Vec<serenity::CreateActionRow> {
    let mut rows = i.map(incident_buttons).unwrap_or_default();
    // A failed operation or a silent replica can be closed by hand (a retry under a new name,
    // a replica taken out for good); alerts close from Alertmanager.
    if let Some(i) = i.filter(|i| {
        i.resolution.is_none()
            && matches!(
                i.detail,
                crate::domain::incident::Detail::Operation { .. }
                    | crate::domain::incident::Detail::Unreachable { .. }
            )
    }) {
        rows.push(serenity::CreateActionRow::Buttons(vec![
            serenity::CreateButton::new(format!("chops:resolve:{}", i.id))
                .label("Mark resolved")
                .style(serenity::ButtonStyle::Secondary),
        ]));
    }
    let room = 5 - rows.len();
    rows.extend(card_buttons(offers).into_iter().take(room));
    rows
}

/// Confirm / Cancel (and Approve under the two-person rule) for a preview.
pub fn preview_buttons(
    id: &str,
    needs_approval: bool,
    can_run: bool,
) -> Vec<serenity::CreateActionRow> {
    let mut b = vec![serenity::CreateButton::new(format!("chops:confirm:{id}"))
        .label("Confirm")
        .style(serenity::ButtonStyle::Danger)
        .disabled(!can_run)];
    if needs_approval {
        b.push(
            serenity::CreateButton::new(format!("chops:approve:{id}"))
                .label("Approve")
                .style(serenity::ButtonStyle::Primary),
        );
    }
    b.push(
        serenity::CreateButton::new(format!("chops:cancel:{id}"))
            .label("Cancel")
            .style(serenity::ButtonStyle::Secondary),
    );
    vec![serenity::CreateActionRow::Buttons(b)]
}

const BLUE: u32 = 0x34_98_db;
const ORANGE: u32 = 0xe6_7e_22;
const GREEN: u32 = 0x2e_cc_71;
const RED: u32 = 0xe7_4c_3c;
const GREY: u32 = 0x95_a5_a6;

/// The statement as a code block, or a pointer to the attached file when it is too long.
fn statement(sql: &str, room: usize) -> (String, Vec<(String, String)>) {
    let block = format!("```sql\n{}\n```", plain(sql));
    if count(&block) <= room {
        (block, vec![])
    } else {
        (
            "*(statement attached: statement.sql)*".to_string(),
            vec![("statement.sql".to_string(), format!("{}\n", plain(sql)))],
        )
    }
}

/// The preview: what will run where, each precondition live, who may confirm, until when.
pub fn preview_embed(p: &crate::actions::Preview, requester_id: Option<u64>) -> Embed {
    let (code, attachments) = statement(&p.sql, 3000);
    let mut description = format!("{code}\n{}\n", discord(&p.effect));
    for c in &p.checks {
        let mark = if c.ok { "✅" } else { "❌" };
        description.push_str(&format!("\n{mark} {}", discord(&c.text)));
    }
    let who = match requester_id {
        Some(id) => format!("<@{id}>"),
        None => discord(&p.requester),
    };
    let mut who_line = format!("\n\nOnly {who} can confirm");
    if p.needs_approval {
        who_line.push_str(", after a member with an approver role approves");
    }
    who_line.push_str(&format!("; expires <t:{}:R>.", p.expires_at));
    if p.dry_run {
        who_line.push_str(" **Dry run**: nothing that writes will be sent.");
    }
    description.push_str(&who_line);
    Embed {
        title: clip_chars(
            &format!(
                "Preview · {} · {}",
                plain(&p.action.title()),
                plain(p.action.cluster())
            ),
            TITLE_MAX,
        ),
        description: clip_chars(&description, DESCRIPTION_MAX),
        color: BLUE,
        fields: vec![],
        footer: format!("action {} · chops {}", p.id, env!("CARGO_PKG_VERSION")),
        timestamp: String::new(),
        attachments,
    }
}

/// A running action: the statement and the latest progress line.
pub fn progress_embed(title: &str, sql: &str, id: &str, line: &str) -> Embed {
    let (code, _) = statement(sql, 3000);
    Embed {
        title: clip_chars(&format!("Running · {}", plain(title)), TITLE_MAX),
        description: clip_chars(&format!("{code}\n⏳ {}", discord(line)), DESCRIPTION_MAX),
        color: ORANGE,
        fields: vec![],
        footer: format!("action {id}"),
        timestamp: String::new(),
        attachments: vec![],
    }
}

/// How an action ended, with the re-check's before → after.
pub fn outcome_embed(title: &str, sql: &str, o: &crate::actions::Outcome) -> Embed {
    use crate::store::FinalState;
    let (mark, color) = match o.state {
        FinalState::Succeeded => ("✅", GREEN),
        FinalState::Failed => ("🛑", RED),
        FinalState::Refused => ("⛔", GREY),
        FinalState::DryRun => ("🧪", GREY),
        FinalState::Running => ("⏳", ORANGE),
    };
    let (code, _) = statement(sql, 2500);
    let mut description = format!("{code}\n{mark} {}", discord(&o.summary));
    for d in &o.details {
        description.push_str(&format!("\n{}", discord(d)));
    }
    let footer = match &o.query_id {
        Some(q) => format!("action {} · query_id {}", o.id, plain(q)),
        None => format!("action {}", o.id),
    };
    Embed {
        title: clip_chars(
            &format!("{} · {}", o.state_label(), plain(title)),
            TITLE_MAX,
        ),
        description: clip_chars(&description, DESCRIPTION_MAX),
        color,
        fields: vec![],
        footer,
        timestamp: String::new(),
        attachments: vec![],
    }
}

/// A short state line replacing a preview (cancelled, expired).
pub fn closed_embed(title: &str, id: &str, why: &str) -> Embed {
    Embed {
        title: clip_chars(&format!("{} · {}", plain(why), plain(title)), TITLE_MAX),
        description: String::new(),
        color: GREY,
        fields: vec![],
        footer: format!("action {id}"),
        timestamp: String::new(),
        attachments: vec![],
    }
}

/// The audit log as an embed (newest first, one line each).
pub fn audit_embed(cluster: Option<&str>, rows: &[crate::store::AuditRecord]) -> Embed {
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let a = &r.row;
            let mut line = format!(
                "<t:{}:f> **{}** {} by {}",
                a.time,
                discord(&a.decision),
                discord(&a.action_key),
                discord(&a.requester_name)
            );
            if let Some(x) = a.reason.as_ref().or(a.outcome.as_ref()) {
                line.push_str(&format!(" — {}", clip_chars(&discord(x), 150)));
            }
            line
        })
        .collect();
    let description = if lines.is_empty() {
        "No actions recorded.".to_string()
    } else {
        lines_within(&lines, DESCRIPTION_MAX)
    };
    Embed {
        title: match cluster {
            Some(c) => clip_chars(&format!("Audit · {}", plain(c)), TITLE_MAX),
            None => "Audit".to_string(),
        },
        description,
        color: GREY,
        fields: vec![],
        footer: format!("{} rows · newest first", rows.len()),
        timestamp: String::new(),
        attachments: vec![],
    }
}

/// An explained error text (`/explain`, "Explain this error").
pub fn explain_embed(e: &crate::domain::explain::Explanation) -> Embed {
    let mut fields = Vec::new();
    let code = match (e.code, &e.code_name) {
        (Some(c), Some(n)) => format!("{c} {}", discord(n)),
        (Some(c), None) => c.to_string(),
        (None, Some(n)) => discord(n),
        (None, None) => "none".into(),
    };
    fields.push(("Code".to_string(), code));
    if let Some(k) = e.kind {
        fields.push(("Kind".to_string(), discord(k)));
    }
    if let Some(h) = &e.host {
        fields.push(("Host".to_string(), clip_chars(&discord(h), FIELD_VALUE_MAX)));
    }
    if !e.unrecognised.is_empty() {
        let parts: Vec<String> = e.unrecognised.iter().map(|u| discord(u)).collect();
        fields.push((
            "Not recognised".to_string(),
            lines_within(&parts, FIELD_VALUE_MAX),
        ));
    }
    let causes: Vec<&str> = e.causes.iter().map(|c| c.title()).collect();
    if !causes.is_empty() {
        fields.push(("Evidence for".to_string(), causes.join("\n")));
    }
    let steps: Vec<(String, bool)> = e
        .next_steps
        .iter()
        .enumerate()
        .map(|(i, s)| step_text(i, s, FIELD_VALUE_MAX))
        .collect();
    let texts: Vec<String> = steps.iter().map(|(t, _)| t.clone()).collect();
    let (value, shown) = lines_shown(&texts, FIELD_VALUE_MAX);
    fields.push(("Next steps".to_string(), value));
    let attached: Vec<usize> = (0..shown).filter(|&i| steps[i].1).collect();
    let mut description = format!(
        "**{}**\n{}\n\n{}",
        discord(e.category.name()),
        discord(&e.meaning),
        clip_chars(&discord(&e.message), 1500)
    );
    if let Some(a) = e.also {
        description.push_str(&format!("\n\nor: {}", discord(a.name())));
    }
    if e.clipped {
        description.push_str("\n*(only the first MiB of the text was read)*");
    }
    Embed {
        title: clip_chars(&format!("Explained · {}", e.category.label()), TITLE_MAX),
        description: clip_chars(&description, DESCRIPTION_MAX),
        color: match e.category {
            crate::domain::classify::ErrorKind::Other => GREY,
            _ => ORANGE,
        },
        fields,
        footer: format!("chops {}", env!("CARGO_PKG_VERSION")),
        timestamp: String::new(),
        attachments: steps_file("an explained error", &e.next_steps, &attached)
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_within_counts_the_rest() {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("line {i:02} with some text"))
            .collect();
        let v = lines_within(&lines, 200);
        assert!(count(&v) <= 200, "{}", count(&v));
        assert!(v.ends_with("more"), "{v}");
        assert!(v.starts_with("line 00"));
    }

    fn long_step() -> NextStep {
        NextStep::sql(
            format!("Back up {} on its own", "r".repeat(300)),
            Some("r1\nDROP TABLE x; --"),
            format!(
                "BACKUP DATABASE `{}` TO Disk('b', 'n') ASYNC",
                "d".repeat(1000)
            ),
        )
        .note("a note that says when it is safe")
    }

    #[test]
    fn the_pointer_to_the_file_survives_when_space_is_short() {
        for max in [120, 300, 1024] {
            let (text, attached) = step_text(6, &long_step(), max);
            assert!(attached);
            assert!(count(&text) <= max, "{max}: {}", count(&text));
            assert!(
                text.contains("*(statement attached: next-steps.sql, step 7)*"),
                "{max}: {text}"
            );
            assert!(text.starts_with("**7.** "), "{max}: {text}");
        }
    }

    #[test]
    fn the_steps_file_keeps_names_inside_their_comments() {
        let steps = vec![NextStep::text("no statement"), long_step()];
        let (name, text) = steps_file("cluster c", &steps, &[1]).expect("a file");
        assert_eq!(name, STEPS_FILE);
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("--") && !l.is_empty())
            .collect();
        assert_eq!(code.len(), 1, "{text}");
        assert!(
            code[0].starts_with("BACKUP DATABASE `ddd") && code[0].ends_with("ASYNC;"),
            "{text}"
        );
        assert!(text.contains("-- Step 2: Back up rrr"), "{text}");
        assert!(text.contains("-- On: r1\\nDROP TABLE x; --\n"), "{text}");
        assert_eq!(steps_file("cluster c", &steps, &[]), None);
    }
}
