//! Failed backups whose errors are not a sync problem (a reused name, a destination, mixed
//! versions, missing grants) have their own fix, whatever cause ranks first.

use super::{Facts, Steps};
use crate::domain::card::NextStep;
use crate::domain::classify::{self, ErrorKind};
use crate::domain::finding::{CheckKind, Finding, Flag, Subject};

pub(super) fn steps(facts: &Facts<'_>, steps: &mut Steps) {
    for f in facts.problems(CheckKind::Backups) {
        if let Some(step) = fix(facts, f).map(NextStep::text) {
            if !steps.list.contains(&step) {
                steps.push(step);
            }
        }
    }
}

/// The fix for one failed backup, when its error kind has one.
fn fix(facts: &Facts<'_>, f: &Finding) -> Option<String> {
    let Subject::Backup { replica, name, .. } = &f.subject else {
        return None;
    };
    let kind = f.flags.iter().find_map(|fl| match fl {
        Flag::BackupError(k) => Some(*k),
        _ => None,
    })?;
    // The finer kind's advice (which grant, which bucket, which throttle setting) before the
    // category's general fix.
    let advice = f.flags.iter().find_map(|fl| match fl {
        Flag::BackupDetail(d) => classify::advice(d),
        _ => None,
    });
    let special = kind == ErrorKind::NameReuse
        || f.has(Flag::DestinationNotShared)
        || f.has(Flag::BackupNotFound);
    if let (Some(a), false) = (advice, special) {
        return Some(format!("{name} on {replica}: {a}"));
    }
    Some(match kind {
        ErrorKind::NameReuse => format!("{name} already exists on {replica}: retry with a new, unique name"),
        ErrorKind::Destination if f.has(Flag::DestinationNotShared) => format!("{name}: ON CLUSTER needs a destination every host shares (S3 or a shared disk)"),
        // A restore from a backup that is not there: a name or a destination to check.
        ErrorKind::Destination if f.has(Flag::BackupNotFound) => format!("{name} on {replica}: no backup there by that name: check the name and the destination it was written to"),
        ErrorKind::Destination => {
            format!("{name} on {replica}: back up to a disk listed in <backups><allowed_disk>, e.g. Disk('{}', …)", facts.ctx.backup_disk)
        }
        ErrorKind::VersionMismatch => "Upgrade every host to the same server version before an ON CLUSTER backup".to_string(),
        ErrorKind::Access => format!("{name} on {replica}: grant BACKUP and the needed SELECT rights to the user that ran it"),
        _ => return None,
    })
}
