//! Lag and queue thresholds (Altinity KB defaults) and the level a value falls into.

use serde::{Deserialize, Serialize};

use super::finding::Severity;

/// Three ascending limits: above the first is moderate, above the second major, above the third critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    pub moderate: u64,
    pub major: u64,
    pub critical: u64,
}

impl Levels {
    pub fn is_ascending(&self) -> bool {
        self.moderate < self.major && self.major < self.critical
    }

    /// The level `value` reaches, if above `moderate`.
    pub fn level(&self, value: u64) -> Option<Level> {
        if value > self.critical {
            Some(Level::Critical)
        } else if value > self.major {
            Some(Level::Major)
        } else if value > self.moderate {
            Some(Level::Moderate)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Moderate,
    Major,
    Critical,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Moderate => "moderate",
            Level::Major => "major",
            Level::Critical => "critical",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Level::Moderate => Severity::Warn,
            Level::Major | Level::Critical => Severity::Crit,
        }
    }
}

/// Replication delay (seconds) and queue size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    pub delay_secs: Levels,
    pub queue_size: Levels,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            delay_secs: Levels {
                moderate: 1800,
                major: 10800,
                critical: 86400,
            },
            queue_size: Levels {
                moderate: 200,
                major: 400,
                critical: 500,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_levels_follow_altinity() {
        let t = Thresholds::default();
        let cases: &[(u64, Option<Level>)] = &[
            (0, None),
            (1800, None),
            (1801, Some(Level::Moderate)),
            (10800, Some(Level::Moderate)),
            (10801, Some(Level::Major)),
            (86400, Some(Level::Major)),
            (86401, Some(Level::Critical)),
        ];
        for (v, want) in cases {
            assert_eq!(t.delay_secs.level(*v), *want, "delay {v}");
        }
        let cases: &[(u64, Option<Level>)] = &[
            (200, None),
            (201, Some(Level::Moderate)),
            (401, Some(Level::Major)),
            (500, Some(Level::Major)),
            (501, Some(Level::Critical)),
        ];
        for (v, want) in cases {
            assert_eq!(t.queue_size.level(*v), *want, "queue {v}");
        }
    }

    #[test]
    fn severities_of_levels() {
        assert_eq!(Level::Moderate.severity(), Severity::Warn);
        assert_eq!(Level::Major.severity(), Severity::Crit);
        assert_eq!(Level::Critical.severity(), Severity::Crit);
        assert!(Thresholds::default().delay_secs.is_ascending());
        assert!(!Levels {
            moderate: 5,
            major: 5,
            critical: 6
        }
        .is_ascending());
    }
}
