//! The diagnosis card: what every renderer (terminal, JSON, Discord) shows.

use serde::Serialize;

use super::action::Action;
use super::cause::Cause;
use super::finding::{CheckKind, Finding, Severity};
use super::scope::Scope;

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Healthy,
    Degraded,
    Failing,
}

impl Verdict {
    /// From the worst severity seen: crit → failing, warn/unknown → degraded, ok → healthy.
    pub fn from_worst(worst: Severity) -> Verdict {
        match worst {
            Severity::Ok => Verdict::Healthy,
            Severity::Unknown | Severity::Warn => Verdict::Degraded,
            Severity::Crit => Verdict::Failing,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Failing => "failing",
        }
    }

    /// Process exit code of `chops check`: 0 healthy, 1 degraded, 2 failing.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Degraded => 1,
            Verdict::Failing => 2,
        }
    }
}

/// One check's part of the card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub check: CheckKind,
    pub title: String,
    pub status: Severity,
    pub elapsed_ms: u64,
    /// Which replica or Keeper node made this section slow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slowest: Option<Slowest>,
    pub findings: Vec<Finding>,
}

/// The slowest answer of a section: what to look at when the card was slow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slowest {
    pub name: String,
    pub elapsed_ms: u64,
}

/// A cause of the runbook with the evidence that supports it; `score` orders them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedCause {
    pub cause: Cause,
    pub title: String,
    pub score: u32,
    pub evidence: Vec<String>,
    /// Why the score: one line per fact, heaviest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// A concrete next step: exact one-line SQL (filled with real names) to run on a named replica,
/// or an instruction, with a note on when it is safe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextStep {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The remediation this step is, when chops can run it (button, `chops act`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

impl NextStep {
    pub fn text(title: impl Into<String>) -> Self {
        NextStep {
            title: title.into(),
            run_on: None,
            sql: None,
            note: None,
            action: None,
        }
    }
    pub fn sql(title: impl Into<String>, run_on: Option<&str>, sql: impl Into<String>) -> Self {
        NextStep {
            run_on: run_on.map(str::to_string),
            sql: Some(sql.into()),
            ..NextStep::text(title)
        }
    }
    pub fn action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub cluster: String,
    /// `backup` for the full diagnosis, or a check name for a single section.
    pub scope: Scope,
    pub verdict: Verdict,
    pub headline: String,
    pub causes: Vec<RankedCause>,
    pub sections: Vec<Section>,
    pub next_steps: Vec<NextStep>,
    pub generated_at: String,
    pub elapsed_ms: u64,
}

impl Card {
    pub fn worst(&self) -> Severity {
        self.sections
            .iter()
            .map(|s| s.status)
            .max()
            .unwrap_or(Severity::Ok)
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.sections.iter().flat_map(|s| s.findings.iter())
    }
}
