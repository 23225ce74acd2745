//! Plain data stored by [`super::Store`]: confirmations, their states and transitions, locks, audit rows.

use std::fmt;

/// A requested write action, as handed to [`super::Store::create_confirmation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConfirmation {
    pub action_key: String,
    pub action_json: String,
    pub cluster: String,
    pub replica: String,
    pub sql: String,
    pub requester_id: u64,
    pub requester_name: String,
    /// Where it was asked: `guild:1/channel:2` or `cli:alice`.
    pub place: String,
    pub two_person: bool,
    pub dry_run: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A stored confirmation: the request plus where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub id: String,
    pub action_key: String,
    pub action_json: String,
    pub cluster: String,
    pub replica: String,
    pub sql: String,
    pub requester_id: u64,
    pub requester_name: String,
    pub place: String,
    pub two_person: bool,
    pub dry_run: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: ConfirmationState,
    pub approver_id: Option<u64>,
    pub approver_name: Option<String>,
    pub channel_id: Option<u64>,
    pub message_id: Option<u64>,
}

/// Lifecycle of a confirmation. Stored as the text of [`ConfirmationState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfirmationState {
    Pending,
    Approved,
    Executing,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
    Refused,
    DryRun,
}

impl ConfirmationState {
    pub const ALL: [ConfirmationState; 9] = [
        Self::Pending,
        Self::Approved,
        Self::Executing,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Expired,
        Self::Refused,
        Self::DryRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Executing => "executing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Refused => "refused",
            Self::DryRun => "dry_run",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Still waiting for a click (Confirm, Approve or Cancel).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Approved)
    }
}

impl fmt::Display for ConfirmationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an executing action ended: the states [`super::Store::finish`] accepts — and `Running`,
/// which is no end: following it stopped while it still ran (a backup past the follow limit),
/// so its row stays `executing` until a later start of chops learns how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalState {
    Succeeded,
    Failed,
    Refused,
    DryRun,
    Running,
}

impl From<FinalState> for ConfirmationState {
    fn from(state: FinalState) -> Self {
        match state {
            FinalState::Succeeded => Self::Succeeded,
            FinalState::Failed => Self::Failed,
            FinalState::Refused => Self::Refused,
            FinalState::DryRun => Self::DryRun,
            FinalState::Running => Self::Executing,
        }
    }
}

/// What an approve / confirm / cancel click did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// This call made the change.
    Done,
    NotRequester,
    /// Two-person rule applies and nobody has approved yet.
    NeedsApproval,
    ApproverIsRequester,
    /// Approve on a confirmation that is not two-person.
    ApprovalNotRequired,
    /// Past `expires_at`; the row is now in state `expired`.
    Expired,
    /// A replayed click: the confirmation has already moved on to this state.
    AlreadyDone(ConfirmationState),
    Unknown,
}

/// Why [`super::Store::try_lock`] was refused: who holds the lock, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHeld {
    pub owner: String,
    pub expires_at: i64,
}

/// One append-only audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub action_id: String,
    pub time: i64,
    pub cluster: String,
    pub replica: String,
    pub action_key: String,
    pub sql: String,
    pub requester_id: Option<u64>,
    pub requester_name: String,
    pub approver: Option<String>,
    pub place: String,
    /// requested | refused | expired | confirmed | approved | cancelled | executing | succeeded |
    /// failed | dry-run | still-running
    pub decision: String,
    pub reason: Option<String>,
    pub query_id: Option<String>,
    pub outcome: Option<String>,
    pub duration_ms: Option<i64>,
}

/// An audit entry as read back, with its sequence number (increasing, never reused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub row: AuditRow,
}
