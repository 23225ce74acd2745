//! What a card covers: the full diagnosis (every check, causes ranked) or one check's section.

use serde::{Serialize, Serializer};

use super::finding::CheckKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every check, the causes ranked, the next steps (`check backup`, `/backup-check`).
    Full,
    /// One check's section (`check lag`, `/lag` …).
    One(CheckKind),
}

impl Scope {
    /// The checks it runs.
    pub fn kinds(self) -> Vec<CheckKind> {
        match self {
            Scope::Full => CheckKind::ALL.to_vec(),
            Scope::One(k) => vec![k],
        }
    }

    /// Its name in commands and JSON: `backup`, or the check's name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Full => "backup",
            Scope::One(k) => k.name(),
        }
    }

    /// "backup check", "lag check".
    pub fn title(self) -> String {
        format!("{} check", self.name())
    }

    pub fn is_full(self) -> bool {
        self == Scope::Full
    }
}

/// As its name, so the JSON card keeps `"scope": "backup"`.
impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}
