//! The card as terminal text: a header with the verdict, the ranked causes with their evidence,
//! one block per check, and the next steps with their exact SQL. Colour only when asked (on a TTY).

use std::fmt::Write;

use crate::domain::display::plain;
use crate::domain::{Card, Section, Severity, Verdict};

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn severity(&self, s: Severity) -> String {
        let (code, mark) = match s {
            Severity::Ok => ("32", "[ok]  "),
            Severity::Unknown => ("35", "[??]  "),
            Severity::Warn => ("33", "[warn]"),
            Severity::Crit => ("31;1", "[crit]"),
        };
        self.paint(code, mark)
    }
    fn verdict(&self, v: Verdict) -> String {
        let code = match v {
            Verdict::Healthy => "32;1",
            Verdict::Degraded => "33;1",
            Verdict::Failing => "31;1",
        };
        self.paint(code, &v.label().to_uppercase())
    }
}

/// Render the whole card.
pub fn render(card: &Card, color: bool) -> String {
    render_with(card, color, false)
}

/// Render the whole card; `explain_ranking` adds each cause's score, fact by fact.
pub fn render_with(card: &Card, color: bool, explain_ranking: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} · cluster {} · {}",
        st.bold("chops"),
        card.scope.title(),
        st.bold(&plain(&card.cluster)),
        st.verdict(card.verdict)
    );
    let _ = writeln!(out, "{}", plain(&card.headline));
    causes(&mut out, &st, card, explain_ranking);
    for s in &card.sections {
        section(&mut out, &st, s);
    }
    next_steps(&mut out, &st, card);
    let _ = writeln!(
        out,
        "\n{}",
        st.dim(&format!(
            "{} · {} ms · chops {}",
            card.generated_at,
            card.elapsed_ms,
            env!("CARGO_PKG_VERSION")
        ))
    );
    out
}

/// The ranked causes, each with its evidence (or, explaining the ranking, its reasons).
fn causes(out: &mut String, st: &Style, card: &Card, explain_ranking: bool) {
    if card.causes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", st.bold("Likely causes"));
    for (i, c) in card.causes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {} {}",
            i + 1,
            plain(&c.title),
            st.dim(&format!("(score {})", c.score))
        );
        if explain_ranking {
            for r in &c.reasons {
                let _ = writeln!(out, "       {}", st.dim(&plain(r)));
            }
        } else {
            for e in &c.evidence {
                let _ = writeln!(out, "       - {}", plain(e));
            }
        }
    }
}

/// One check: its status, title and time, then its findings (evidence under the bad ones).
fn section(out: &mut String, st: &Style, s: &Section) {
    let _ = writeln!(
        out,
        "\n{} {} {}",
        st.severity(s.status),
        st.bold(&plain(&s.title)),
        st.dim(&match &s.slowest {
            // The critical path: which replica or node the section waited for.
            Some(w) => format!(
                "{} ms, slowest {} {} ms",
                s.elapsed_ms,
                plain(&w.name),
                w.elapsed_ms
            ),
            None => format!("{} ms", s.elapsed_ms),
        })
    );
    for f in &s.findings {
        let _ = writeln!(out, "  {} {}", st.severity(f.severity), plain(&f.summary));
        if f.severity > Severity::Ok {
            for e in &f.evidence {
                let _ = writeln!(out, "           {}", st.dim(&plain(e)));
            }
        }
    }
}

/// The next steps, each with where it runs, its statement and its note.
fn next_steps(out: &mut String, st: &Style, card: &Card) {
    if card.next_steps.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", st.bold("Next steps"));
    for (i, n) in card.next_steps.iter().enumerate() {
        let on = n
            .run_on
            .as_ref()
            .map(|r| format!(" (on {})", plain(r)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {}. {}{on}", i + 1, plain(&n.title));
        // One line, shown whole: what is copied is exactly what chops built.
        if let Some(sql) = &n.sql {
            let _ = writeln!(out, "       {}", st.paint("36", &plain(sql)));
        }
        if let Some(note) = &n.note {
            let _ = writeln!(out, "       {}", st.dim(&format!("note: {}", plain(note))));
        }
    }
}

/// An action's preview: what will run where, each precondition with its live status.
pub fn preview(p: &crate::actions::Preview) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", plain(&p.action.title()));
    let _ = writeln!(out, "  on {}: {}", plain(p.action.replica()), plain(&p.sql));
    let _ = writeln!(out, "  {}", plain(&p.effect));
    for c in &p.checks {
        let mark = if c.ok { "[ok]  " } else { "[no]  " };
        let _ = writeln!(out, "  {mark}{}", plain(&c.text));
    }
    if p.dry_run {
        let _ = writeln!(out, "  dry run: nothing that writes will be sent");
    }
    out
}

/// How an action ended.
pub fn outcome(o: &crate::actions::Outcome) -> String {
    let mut out = format!("{}: {}\n", o.state_label(), plain(&o.summary));
    for d in &o.details {
        let _ = writeln!(out, "  {}", plain(d));
    }
    if let Some(q) = &o.query_id {
        let _ = writeln!(out, "  query_id {}, audit id {}", plain(q), plain(&o.id));
    } else {
        let _ = writeln!(out, "  audit id {}", plain(&o.id));
    }
    out
}

/// The audit log, newest first: one line per event.
pub fn audit(rows: &[crate::store::AuditRecord]) -> String {
    let mut out = String::new();
    for r in rows {
        let a = &r.row;
        let mut line = format!(
            "{} {} {} {} by {}",
            crate::domain::time::rfc3339(a.time.max(0) as u64),
            a.action_id,
            a.decision,
            a.action_key,
            a.requester_name
        );
        if let Some(ap) = &a.approver {
            line.push_str(&format!(" (approved by {ap})"));
        }
        line.push_str(&format!(" in {}", a.place));
        for (k, v) in [
            ("reason", &a.reason),
            ("outcome", &a.outcome),
            ("query_id", &a.query_id),
        ] {
            if let Some(v) = v {
                line.push_str(&format!("; {k}: {v}"));
            }
        }
        if let Some(ms) = a.duration_ms {
            line.push_str(&format!("; {ms} ms"));
        }
        if !a.sql.is_empty() {
            line.push_str(&format!("; statement: {}", a.sql));
        }
        let _ = writeln!(out, "{}", plain(&line));
    }
    if rows.is_empty() {
        out.push_str("no actions recorded\n");
    }
    out
}

/// An explained error text (`chops explain`).
pub fn explanation(e: &crate::domain::explain::Explanation, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", st.bold("category:"), e.category.name());
    if let Some(k) = e.kind {
        let _ = writeln!(out, "{} {k}", st.bold("kind:"));
    }
    if let Some(a) = e.also {
        let _ = writeln!(out, "{} {}", st.bold("or:"), a.name());
    }
    let causes: Vec<&str> = e.causes.iter().map(|c| c.title()).collect();
    if !causes.is_empty() {
        let _ = writeln!(out, "{} {}", st.bold("evidence for:"), causes.join("; "));
    }
    let code = match (e.code, &e.code_name) {
        (Some(c), Some(n)) => format!("{c} {}", plain(n)),
        (Some(c), None) => c.to_string(),
        (None, Some(n)) => plain(n),
        (None, None) => "none".into(),
    };
    let _ = writeln!(out, "{} {code}", st.bold("code:"));
    if let Some(h) = &e.host {
        let _ = writeln!(out, "{} {}", st.bold("host:"), plain(h));
    }
    let _ = writeln!(out, "{} {}", st.bold("meaning:"), plain(&e.meaning));
    let _ = writeln!(out, "{} {}", st.bold("error:"), plain(&e.message));
    for part in &e.unrecognised {
        let _ = writeln!(out, "{} {}", st.bold("not recognised:"), plain(part));
    }
    if e.clipped {
        let _ = writeln!(
            out,
            "{}",
            st.dim("(only the first MiB of the text was read)")
        );
    }
    let _ = writeln!(out, "\n{}", st.bold("Next steps"));
    for (i, n) in e.next_steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, plain(&n.title));
        if let Some(sql) = &n.sql {
            let _ = writeln!(out, "       {}", st.paint("36", &plain(sql)));
        }
        if let Some(note) = &n.note {
            let _ = writeln!(out, "       {}", st.dim(&format!("note: {}", plain(note))));
        }
    }
    out
}
