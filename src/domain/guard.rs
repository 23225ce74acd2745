//! Guard decisions: where the bot may speak ([`may_speak_in`], [`may_speak`]) and whether an
//! action may run ([`may_act`]): one pure decision used by the card's "Not now" notes (through
//! [`restart_risk`]), the preview and execution alike.
//!
//! Speaking: the *place* (guild, DM) before anything reads the config or a secret, then the
//! *channel* of the resolved cluster. Refusals name no cluster.

use super::action::{Action, ActionKind};

/// Why a command is refused in a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A DM, or a guild not in `discord.guild_ids`.
    Place,
    /// Not a channel of the cluster's allow-list; carries the allowed channels.
    Channel { allowed: Vec<u64> },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Place => write!(
                f,
                "chops is not enabled here. Use it in a channel of your team's server."
            ),
            Refusal::Channel { allowed } => {
                let list: Vec<String> = allowed.iter().map(|c| format!("<#{c}>")).collect();
                write!(
                    f,
                    "This cluster can be checked only in {}.",
                    list.join(", ")
                )
            }
        }
    }
}

/// May chops answer in `guild` (None: a DM)? DMs never; `guild_ids` empty allows every guild.
pub fn may_speak_in(guild_ids: &[u64], guild: Option<u64>) -> Result<(), Refusal> {
    match guild {
        Some(g) if guild_ids.is_empty() || guild_ids.contains(&g) => Ok(()),
        _ => Err(Refusal::Place),
    }
}

/// May a command about a cluster run in `channel`? `allowed` empty allows every channel.
pub fn may_speak(channel: u64, allowed: &[u64]) -> Result<(), Refusal> {
    if !allowed.is_empty() && !allowed.contains(&channel) {
        return Err(Refusal::Channel {
            allowed: allowed.to_vec(),
        });
    }
    Ok(())
}

/// Who asks for an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// A Discord member: roles from the interaction's `member.roles`.
    Discord {
        id: u64,
        name: String,
        roles: Vec<u64>,
    },
    /// `chops act` on a terminal: the OS user.
    Cli { user: String },
}

impl Requester {
    /// How the audit log names it.
    pub fn label(&self) -> String {
        match self {
            Requester::Discord { id, name, .. } => format!("{name} ({id})"),
            Requester::Cli { user } => format!("cli:{user}"),
        }
    }
}

/// Who may do what on one cluster (`[clusters.X.actions]`). Default deny: nothing configured,
/// nothing allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub backup_roles: Vec<u64>,
    pub restart_roles: Vec<u64>,
    pub approver_roles: Vec<u64>,
    /// OS users that may run `chops act`.
    pub cli_users: Vec<String>,
    /// Kinds that need a second member's approval.
    pub two_person: Vec<ActionKind>,
    pub confirm_ttl_secs: i64,
    pub cooldown_secs: i64,
    /// The whole flow, audited, but nothing sent except read-only probes.
    pub dry_run: bool,
    /// An operator account is configured (actions run only as it).
    pub has_operator: bool,
}

impl Policy {
    /// Anyone at all may act (buttons are shown only then).
    pub fn enabled(&self) -> bool {
        self.has_operator
            && (!self.backup_roles.is_empty()
                || !self.restart_roles.is_empty()
                || !self.cli_users.is_empty())
    }

    pub fn allows(&self, kind: ActionKind, who: &Requester) -> bool {
        match who {
            Requester::Cli { user } => self.cli_users.iter().any(|u| u == user),
            Requester::Discord { roles, .. } => {
                let allowed = match kind {
                    ActionKind::Backup => &self.backup_roles,
                    ActionKind::Restart => &self.restart_roles,
                };
                roles.iter().any(|r| allowed.contains(r))
            }
        }
    }

    /// May mark one of the cluster's incidents resolved by hand (a retry under a new name, a
    /// replica taken out for good): a member holding any of the cluster's action roles.
    pub fn may_resolve(&self, who: &Requester) -> bool {
        self.holds_a_role(who)
    }

    /// May read the cluster's audit log in Discord: the same members as [`Policy::may_resolve`]
    /// (the log names who did what where).
    pub fn may_read_audit(&self, who: &Requester) -> bool {
        self.holds_a_role(who)
    }

    /// Some member may run `kind` from Discord (an operator account and a role for it): a
    /// button no member can use is not shown (`cli_users` alone enables only `chops act`).
    pub fn offered_in_discord(&self, kind: ActionKind) -> bool {
        let roles = match kind {
            ActionKind::Backup => &self.backup_roles,
            ActionKind::Restart => &self.restart_roles,
        };
        self.has_operator && !roles.is_empty()
    }

    /// A Discord member holding one of the cluster's action or approver roles.
    fn holds_a_role(&self, who: &Requester) -> bool {
        match who {
            Requester::Discord { roles, .. } => roles.iter().any(|r| {
                self.backup_roles.contains(r)
                    || self.restart_roles.contains(r)
                    || self.approver_roles.contains(r)
            }),
            Requester::Cli { .. } => false,
        }
    }

    pub fn may_approve(&self, who: &Requester) -> bool {
        match who {
            Requester::Discord { roles, .. } => {
                roles.iter().any(|r| self.approver_roles.contains(r))
            }
            Requester::Cli { .. } => false,
        }
    }

    pub fn needs_approval(&self, kind: ActionKind, who: &Requester) -> bool {
        // A terminal has no second person to ask: two-person kinds are Discord-only.
        self.two_person.contains(&kind) && matches!(who, Requester::Discord { .. })
    }
}

/// A replicated table as its replica sees it (`system.replicas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableState {
    pub readonly: bool,
    pub session_expired: bool,
    pub active_replicas: u64,
    pub total_replicas: u64,
}

impl TableState {
    /// This replica is active (its Keeper session lives) and no other replica is.
    pub fn last_active(&self) -> bool {
        !self.session_expired && self.active_replicas == 1
    }
}

/// What a `SYSTEM RESTART REPLICA` would break now (the runbook's step 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartRisk {
    /// Keeper does not answer: the replica cannot re-initialise, the table stays read-only.
    KeeperDown,
    /// The replica is the table's last active one: the table would be unavailable.
    LastActive,
}

impl RestartRisk {
    /// The restart rules, in the order the guard checks them.
    pub const ALL: [RestartRisk; 2] = [RestartRisk::KeeperDown, RestartRisk::LastActive];

    /// Whether this risk is real, given whether Keeper answers and whether the replica is the
    /// last active one of the table ([`TableState::last_active`]).
    pub fn applies(self, keeper_answers: bool, last_active: bool) -> bool {
        match self {
            RestartRisk::KeeperDown => !keeper_answers,
            RestartRisk::LastActive => last_active,
        }
    }
}

/// The first restart rule broken: what the guard would refuse a restart for (None: Keeper and
/// the table allow it). The card's "Not now" notes read this; [`preconditions`] lists every rule.
pub fn restart_risk(keeper_answers: bool, last_active: bool) -> Option<RestartRisk> {
    RestartRisk::ALL
        .into_iter()
        .find(|r| r.applies(keeper_answers, last_active))
}

/// Live facts about an action's target, probed right before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Err: why the replica did not answer.
    pub replica: Result<(), String>,
    /// Backups/restores running on the replica (names).
    pub running: Vec<String>,
    /// The backup disk exists there (None: unknown).
    pub disk: Option<bool>,
    /// Databases of the action that the replica does not have.
    pub missing_databases: Vec<String>,
    /// A backup with this name already exists there.
    pub name_taken: bool,
    /// Restart: the table as that replica sees it; None: not a Replicated table there.
    pub table: Option<TableState>,
    /// Err: why Keeper does not answer.
    pub keeper: Result<(), String>,
    /// The per-target lock is held by this owner.
    pub locked_by: Option<String>,
    /// A cooldown on the target runs until then (unix seconds).
    pub cooldown_until: Option<i64>,
}

/// One precondition with its live status, for the preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    pub ok: bool,
    pub text: String,
}

fn pre(ok: bool, yes: impl Into<String>, no: impl Into<String>) -> Precondition {
    Precondition {
        ok,
        text: if ok { yes.into() } else { no.into() },
    }
}

/// Every precondition of `action`, in the order the preview lists them.
pub fn preconditions(action: &Action, s: &Snapshot, now: i64) -> Vec<Precondition> {
    let r = action.replica();
    // Policy first (another run of it, its cooldown), then the live state of the target.
    let mut out = vec![pre(
        s.locked_by.is_none(),
        "no other action on this target",
        format!(
            "already running — started by {}",
            s.locked_by.as_deref().unwrap_or("someone")
        ),
    )];
    if let Some(until) = s.cooldown_until.filter(|u| *u > now) {
        out.push(pre(
            false,
            "",
            format!("cooling down: again in {} s", until - now),
        ));
    }
    out.push(match &s.replica {
        Ok(()) => pre(true, format!("{r} answers"), ""),
        Err(e) => pre(false, "", format!("{r} does not answer ({e})")),
    });
    match action {
        Action::BackupReplica { disk, .. } => out.extend(backup_preconditions(r, disk, s)),
        Action::RestartReplica {
            database, table, ..
        } => out.extend(restart_preconditions(r, &format!("{database}.{table}"), s)),
    }
    out
}

/// What a per-replica backup on `r` to `disk` needs of the replica.
fn backup_preconditions(r: &str, disk: &str, s: &Snapshot) -> [Precondition; 4] {
    [
        pre(
            s.running.is_empty(),
            format!("no backup or restore running on {r}"),
            format!("{r} is running {}", s.running.join(", ")),
        ),
        match s.disk {
            Some(true) => pre(true, format!("disk '{disk}' exists on {r}"), ""),
            Some(false) => pre(false, "", format!("{r} has no disk '{disk}'")),
            None => pre(false, "", format!("disk '{disk}' on {r}: unknown")),
        },
        pre(
            s.missing_databases.is_empty(),
            format!("every database exists on {r}"),
            format!("{r} has no database {}", s.missing_databases.join(", ")),
        ),
        pre(
            !s.name_taken,
            "the backup name is new",
            "a backup with this name already exists",
        ),
    ]
}

/// What restarting `table` (`db.table`) on `r` needs: a Replicated table, then the restart
/// rules ([`RestartRisk::ALL`]), then no backup running there.
fn restart_preconditions(r: &str, table: &str, s: &Snapshot) -> Vec<Precondition> {
    let mut out = vec![match s.table {
        Some(_) => pre(true, format!("{table} is Replicated on {r}"), ""),
        None => pre(
            false,
            "",
            format!("{table} is not a Replicated table on {r}"),
        ),
    }];
    let keeper_answers = s.keeper.is_ok();
    let last = s.table.is_some_and(|t| t.last_active());
    for risk in RestartRisk::ALL {
        let ok = !risk.applies(keeper_answers, last);
        out.push(match risk {
            RestartRisk::KeeperDown => pre(
                ok,
                "Keeper answers",
                format!(
                    "Keeper does not answer ({}): the table would stay read-only",
                    s.keeper.as_ref().err().map_or("", String::as_str)
                ),
            ),
            RestartRisk::LastActive => pre(
                ok,
                format!("{r} is not the last active replica of {table}"),
                format!(
                    "{r} is the last active replica of {table}: the table would be unavailable"
                ),
            ),
        });
    }
    out.push(pre(
        s.running.is_empty(),
        format!("no backup running on {r}"),
        format!("{r} is running {}", s.running.join(", ")),
    ));
    out
}

/// Why an action may not run now: short, and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActRefusal {
    /// No operator account or no roles configured for the cluster.
    NotEnabled { cluster: String },
    /// The requester holds none of the roles the policy allows.
    NoRole { kind: ActionKind },
    /// The OS user running `chops act` is not in `cli_users`.
    NotCliUser { user: String, cluster: String },
    /// A precondition does not hold.
    Precondition(String),
}

impl std::fmt::Display for ActRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActRefusal::NotEnabled { cluster } => write!(
                f,
                "Actions are not enabled for {cluster}: configure an operator account and roles in [clusters.{cluster}.actions]."
            ),
            ActRefusal::NoRole { kind } => write!(
                f,
                "You may not run {} actions here: ask someone with a {} role.",
                kind.name(),
                kind.name()
            ),
            ActRefusal::NotCliUser { user, cluster } => write!(
                f,
                "OS user '{user}' may not run actions on {cluster}: add it to cli_users in [clusters.{cluster}.actions]."
            ),
            ActRefusal::Precondition(why) => write!(f, "Not now: {why}."),
        }
    }
}

/// May `who` run `action` now, given the live `snapshot`? The first failing rule is the reason.
pub fn may_act(
    action: &Action,
    snapshot: &Snapshot,
    policy: &Policy,
    who: &Requester,
    now: i64,
) -> Result<(), ActRefusal> {
    if !policy.enabled() {
        return Err(ActRefusal::NotEnabled {
            cluster: action.cluster().to_string(),
        });
    }
    if !policy.allows(action.kind(), who) {
        return Err(match who {
            Requester::Cli { user } => ActRefusal::NotCliUser {
                user: user.clone(),
                cluster: action.cluster().to_string(),
            },
            Requester::Discord { .. } => ActRefusal::NoRole {
                kind: action.kind(),
            },
        });
    }
    match preconditions(action, snapshot, now)
        .into_iter()
        .find(|p| !p.ok)
    {
        Some(p) => Err(ActRefusal::Precondition(p.text)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_rules() {
        let cases: Vec<(&[u64], Option<u64>, bool)> = vec![
            (&[], None, false),
            (&[], Some(7), true),
            (&[10], Some(10), true),
            (&[10], Some(11), false),
            (&[10], None, false),
        ];
        for (guilds, guild, ok) in cases {
            assert_eq!(
                may_speak_in(guilds, guild).is_ok(),
                ok,
                "{guilds:?} {guild:?}"
            );
        }
    }

    #[test]
    fn channel_rules() {
        assert_eq!(may_speak(1, &[]), Ok(()));
        assert_eq!(may_speak(1, &[1, 2]), Ok(()));
        let r = may_speak(3, &[1, 2]).unwrap_err();
        assert_eq!(
            r.to_string(),
            "This cluster can be checked only in <#1>, <#2>."
        );
    }

    fn restart() -> Action {
        Action::RestartReplica {
            cluster: "prod".into(),
            replica: "ch-2".into(),
            database: "shop".into(),
            table: "orders".into(),
        }
    }

    fn healthy() -> Snapshot {
        Snapshot {
            replica: Ok(()),
            running: vec![],
            disk: Some(true),
            missing_databases: vec![],
            name_taken: false,
            table: Some(TableState {
                readonly: true,
                session_expired: true,
                active_replicas: 1,
                total_replicas: 2,
            }),
            keeper: Ok(()),
            locked_by: None,
            cooldown_until: None,
        }
    }

    fn policy() -> Policy {
        Policy {
            restart_roles: vec![7],
            backup_roles: vec![8],
            confirm_ttl_secs: 120,
            cooldown_secs: 600,
            has_operator: true,
            ..Policy::default()
        }
    }

    fn member(roles: &[u64]) -> Requester {
        Requester::Discord {
            id: 1,
            name: "oncall".into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn acting_rules() {
        let ok = |s: &Snapshot, p: &Policy, r: &Requester| may_act(&restart(), s, p, r, 1000);
        assert_eq!(ok(&healthy(), &policy(), &member(&[7])), Ok(()));
        // Default deny: no roles, or no operator account.
        assert!(matches!(
            ok(&healthy(), &Policy::default(), &member(&[7])),
            Err(ActRefusal::NotEnabled { .. })
        ));
        let no_op = Policy {
            has_operator: false,
            ..policy()
        };
        assert!(matches!(
            ok(&healthy(), &no_op, &member(&[7])),
            Err(ActRefusal::NotEnabled { .. })
        ));
        assert_eq!(
            ok(&healthy(), &policy(), &member(&[8])),
            Err(ActRefusal::NoRole {
                kind: ActionKind::Restart
            })
        );
        assert!(matches!(
            ok(&healthy(), &policy(), &Requester::Cli { user: "x".into() }),
            Err(ActRefusal::NotCliUser { .. })
        ));
        let refused = |s: Snapshot| match ok(&s, &policy(), &member(&[7])) {
            Err(ActRefusal::Precondition(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(Snapshot {
            keeper: Err("connection refused".into()),
            ..healthy()
        })
        .contains("Keeper does not answer"));
        assert!(refused(Snapshot {
            table: None,
            ..healthy()
        })
        .contains("not a Replicated table"));
        assert!(refused(Snapshot {
            locked_by: Some("alice".into()),
            ..healthy()
        })
        .contains("already running"));
        assert!(refused(Snapshot {
            cooldown_until: Some(1300),
            ..healthy()
        })
        .contains("again in 300 s"));
        assert!(refused(Snapshot {
            running: vec!["b1".into()],
            ..healthy()
        })
        .contains("running b1"));
        assert!(refused(Snapshot {
            replica: Err("timed out".into()),
            ..healthy()
        })
        .contains("does not answer"));
        // A realistic last active replica: writable, its session alive, the other replica down.
        let last = TableState {
            readonly: false,
            session_expired: false,
            active_replicas: 1,
            total_replicas: 2,
        };
        assert!(refused(Snapshot {
            table: Some(last),
            ..healthy()
        })
        .contains("last active replica"));
        // Read-only with an expired session is not active: restarting it is the fix.
        assert!(!healthy().table.unwrap().last_active());
    }

    /// The card's "Not now" note and the guard name the same first reason.
    #[test]
    fn restart_risk_is_what_the_guard_refuses_first() {
        let last = TableState {
            readonly: false,
            session_expired: false,
            active_replicas: 1,
            total_replicas: 2,
        };
        for (keeper_answers, last_active, want) in [
            (true, false, None),
            (true, true, Some(RestartRisk::LastActive)),
            (false, false, Some(RestartRisk::KeeperDown)),
            (false, true, Some(RestartRisk::KeeperDown)),
        ] {
            assert_eq!(restart_risk(keeper_answers, last_active), want);
            let s = Snapshot {
                keeper: if keeper_answers {
                    Ok(())
                } else {
                    Err("connection refused".into())
                },
                table: Some(if last_active {
                    last
                } else {
                    healthy().table.unwrap()
                }),
                ..healthy()
            };
            let why = match may_act(&restart(), &s, &policy(), &member(&[7]), 1000) {
                Ok(()) => None,
                Err(ActRefusal::Precondition(why)) => Some(why),
                Err(other) => panic!("{other:?}"),
            };
            let named = match want {
                None => None,
                Some(RestartRisk::KeeperDown) => Some("Keeper does not answer"),
                Some(RestartRisk::LastActive) => Some("last active replica"),
            };
            assert_eq!(
                why.as_deref().map(|w| named.is_some_and(|n| w.contains(n))),
                named.map(|_| true),
                "{keeper_answers} {last_active}: {why:?}"
            );
        }
    }

    #[test]
    fn approval_rules() {
        let p = Policy {
            two_person: vec![ActionKind::Restart],
            approver_roles: vec![9],
            ..policy()
        };
        assert!(p.needs_approval(ActionKind::Restart, &member(&[7])));
        assert!(!p.needs_approval(ActionKind::Backup, &member(&[8])));
        assert!(p.may_approve(&member(&[9])));
        assert!(!p.may_approve(&member(&[7])));
    }

    #[test]
    fn resolving_by_hand_needs_one_of_the_clusters_roles() {
        let p = Policy {
            backup_roles: vec![8],
            approver_roles: vec![9],
            ..Policy::default()
        };
        assert!(p.may_resolve(&member(&[8])));
        assert!(p.may_resolve(&member(&[1, 9])));
        assert!(!p.may_resolve(&member(&[1])));
        assert!(
            !Policy::default().may_resolve(&member(&[8])),
            "default deny"
        );
        assert!(!p.may_resolve(&Requester::Cli { user: "a".into() }));
    }

    #[test]
    fn discord_offers_need_a_role_for_the_kind_and_an_operator() {
        let cli_only = Policy {
            cli_users: vec!["ops".into()],
            has_operator: true,
            ..Policy::default()
        };
        assert!(cli_only.enabled(), "chops act may run");
        assert!(!cli_only.offered_in_discord(ActionKind::Backup));
        let backup = Policy {
            backup_roles: vec![1],
            ..cli_only.clone()
        };
        assert!(backup.offered_in_discord(ActionKind::Backup));
        assert!(!backup.offered_in_discord(ActionKind::Restart));
        let no_operator = Policy {
            has_operator: false,
            ..backup
        };
        assert!(!no_operator.offered_in_discord(ActionKind::Backup));
    }
}
