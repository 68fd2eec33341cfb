//! Plan: the steps from what was observed to what is desired, the problems
//! that block them, and warnings.

use std::fmt;

use bson::Document;

use crate::conn::number;
use crate::observe::{Login, Observed, config_members};
use crate::spec::{MemberSpec, Role, SetSpec, UserKind};

/// Who creates a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Nobody is logged in: the localhost exception (the first user).
    LocalhostException,
    /// Logged in as this user.
    User(UserKind),
}

/// One change.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `replSetInitiate` on the seed member, with only itself in the config
    /// (the rest are added one at a time).
    Initiate {
        /// The seed member.
        host: String,
        /// Log in as `circle-admin` (users already exist) rather than use
        /// the localhost exception.
        as_admin: bool,
    },
    /// `createUser` in `admin`.
    CreateUser {
        /// Which user.
        kind: UserKind,
        /// Its name.
        name: String,
        /// Who creates it.
        via: Via,
    },
    /// `grantRolesToUser`: roles the user lacks.
    GrantRoles {
        /// Which user.
        kind: UserKind,
        /// Its name.
        name: String,
        /// The missing roles.
        roles: Vec<Role>,
        /// Who grants them.
        via: UserKind,
    },
    /// `updateUser` with the configured password (the user exists but could
    /// not log in with it).
    SetPassword {
        /// Which user.
        kind: UserKind,
        /// Its name.
        name: String,
        /// Who changes it.
        via: UserKind,
    },
    /// A reconfig that adds one member, then waiting until it is SECONDARY.
    AddMember {
        /// The member.
        host: String,
    },
    /// A reconfig that changes a member's priority, votes or hidden flag.
    SetMemberOptions {
        /// The member.
        host: String,
        /// What changes, e.g. `priority 1 → 2`.
        changes: Vec<String>,
    },
    /// A reconfig that changes `settings`.
    SetSettings {
        /// What changes.
        changes: Vec<String>,
    },
}

impl ha_plan::Change for Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::Initiate { .. } => "initiate-replica-set",
            Step::CreateUser { .. } => "create-user",
            Step::GrantRoles { .. } => "grant-roles",
            Step::SetPassword { .. } => "set-password",
            Step::AddMember { .. } => "add-member",
            Step::SetMemberOptions { .. } => "set-member-options",
            Step::SetSettings { .. } => "set-settings",
        }
    }

    fn target(&self) -> String {
        match self {
            Step::Initiate { host, .. }
            | Step::AddMember { host }
            | Step::SetMemberOptions { host, .. } => format!("member {host}"),
            Step::CreateUser { name, .. }
            | Step::GrantRoles { name, .. }
            | Step::SetPassword { name, .. } => format!("user {name}@admin"),
            Step::SetSettings { .. } => "replica set settings".to_owned(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Initiate { host, as_admin } => write!(
                f,
                "initiate the replica set on {host}{}",
                if *as_admin {
                    " (as circle-admin)"
                } else {
                    " (localhost exception)"
                }
            ),
            Step::CreateUser { name, via, kind } => {
                write!(f, "create user {name} ({})", kind_roles(*kind))?;
                match via {
                    Via::LocalhostException => write!(f, " through the localhost exception"),
                    Via::User(_) => Ok(()),
                }
            }
            Step::GrantRoles { name, roles, .. } => {
                let roles: Vec<String> = roles.iter().map(Role::to_string).collect();
                write!(f, "grant {} to {name}", roles.join(", "))
            }
            Step::SetPassword { name, .. } => {
                write!(f, "set {name}'s password to the configured one")
            }
            Step::AddMember { host } => {
                write!(f, "add member {host} and wait until it is SECONDARY")
            }
            Step::SetMemberOptions { host, changes } => {
                write!(f, "change member {host}: {}", changes.join(", "))
            }
            Step::SetSettings { changes } => {
                write!(f, "change replica set settings: {}", changes.join(", "))
            }
        }
    }
}

fn kind_roles(kind: UserKind) -> &'static str {
    match kind {
        UserKind::SiteAdmin => "userAdminAnyDatabase",
        UserKind::Admin => "root, dbAdmin@admin",
        UserKind::App => "readWrite on the app databases",
    }
}

/// The outcome of planning: the steps, what blocks them, what the
/// operator should know (one line each in `--dry-run`).
pub type Plan = ha_plan::Plan<Step>;

/// Computes the steps from `observed` to `spec`.
///
/// Where the current state cannot be fully read yet (no user can log in,
/// so neither the users nor the set's config are visible), the plan
/// assumes what a fresh set has: no users, and the config this tool
/// initiated. `apply` observes again after every step, so the assumption
/// is checked before anything depends on it.
pub fn plan(spec: &SetSpec, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    check_members(spec, observed, &mut plan);
    if !observed.initiated {
        match spec.seed() {
            Some(seed) => plan.steps.push(Step::Initiate {
                host: seed.host.clone(),
                as_admin: observed.logged_in(UserKind::Admin),
            }),
            None => plan.blockers.push(
                "the spec's members have no electable member to initiate the set on".to_owned(),
            ),
        }
    } else if observed.primary.is_none() {
        plan.blockers.push(format!(
            "replica set {} has no primary: a majority of its voting members must be up and \
             reachable from each other before anything can change",
            spec.name
        ));
        return plan;
    }
    plan_users(spec, observed, &mut plan);
    plan_members(spec, observed, &mut plan);
    plan
}

fn check_members(spec: &SetSpec, observed: &Observed, plan: &mut Plan) {
    let set_hosts = observed.set_hosts();
    for view in &observed.members {
        let in_set = set_hosts.iter().any(|h| h.eq_ignore_ascii_case(&view.host));
        match &view.hello {
            Err(e) => {
                if in_set {
                    plan.warnings
                        .push(format!("member {} is down or unreachable: {e}", view.host));
                } else {
                    plan.blockers.push(e.to_string());
                }
            }
            Ok(hello) => {
                if hello.set_name.is_none() && !hello.awaiting_config {
                    plan.blockers.push(format!(
                        "{} runs without a replica-set name: start it with --replSet {} \
                         (replication.replSetName; `mongo-rs-setup render-config` writes it)",
                        view.host, spec.name
                    ));
                } else if let Some(name) = &hello.set_name
                    && name != &spec.name
                {
                    plan.blockers.push(format!(
                        "{} belongs to replica set {name:?}, not {:?} (the spec's replica-set name)",
                        view.host, spec.name
                    ));
                } else if let Some(me) = &hello.me
                    && !me.eq_ignore_ascii_case(&view.host)
                {
                    plan.blockers.push(format!(
                        "{} calls itself {me} in the replica set's config: the config must use \
                         the names in the spec's members (MongoDB's \"change hostnames in a \
                         replica set\" procedure), or list {me} there instead",
                        view.host
                    ));
                } else if hello.set_name.is_some() && observed.primary.is_some() && !in_set {
                    plan.blockers.push(format!(
                        "{} has a replica-set config of its own (version {}) but is not a member \
                         of the primary's: it was initiated separately. Stop it, empty its dbPath \
                         and start it again, then re-run apply",
                        view.host,
                        hello.set_version.unwrap_or(0)
                    ));
                }
            }
        }
    }
}

fn plan_users(spec: &SetSpec, observed: &Observed, plan: &mut Plan) {
    let Some(users) = &observed.users else {
        // Nobody who may read users logged in: a fresh set (or wrong
        // passwords, which createUser will reveal and explain).
        if observed.primary.is_none()
            && (observed.logged_in(UserKind::Admin) || observed.logged_in(UserKind::SiteAdmin))
        {
            // Users exist on the uninitiated seed (created before
            // --replSet was turned on, as the runbook does); they are
            // read once the set is initiated.
            return;
        }
        if observed.logged_in(UserKind::App) {
            plan.blockers.push(format!(
                "neither {} nor {} can log in, so the users cannot be checked: fix their \
                 passwords",
                spec.site_admin.name, spec.admin.name
            ));
            return;
        }
        for kind in UserKind::ALL {
            plan.steps.push(Step::CreateUser {
                kind,
                name: spec.user(kind).name.clone(),
                via: if kind == UserKind::SiteAdmin {
                    Via::LocalhostException
                } else {
                    Via::User(UserKind::SiteAdmin)
                },
            });
        }
        return;
    };
    let manager = if observed.logged_in(UserKind::SiteAdmin) {
        UserKind::SiteAdmin
    } else {
        UserKind::Admin
    };
    for kind in UserKind::ALL {
        let name = spec.user(kind).name.clone();
        match users.get(&kind).cloned().flatten() {
            None => plan.steps.push(Step::CreateUser {
                kind,
                name,
                via: Via::User(manager),
            }),
            Some(info) => {
                let desired = spec.roles(kind);
                let missing: Vec<Role> = desired
                    .iter()
                    .filter(|r| !info.roles.contains(r))
                    .cloned()
                    .collect();
                let extra: Vec<String> = info
                    .roles
                    .iter()
                    .filter(|r| !desired.contains(r))
                    .map(Role::to_string)
                    .collect();
                if !extra.is_empty() {
                    plan.warnings.push(format!(
                        "user {name} has roles ha.toml does not ask for: {} (left as they are)",
                        extra.join(", ")
                    ));
                }
                if !missing.is_empty() {
                    plan.steps.push(Step::GrantRoles {
                        kind,
                        name: name.clone(),
                        roles: missing,
                        via: manager,
                    });
                }
                if observed.logins.get(&kind) == Some(&Login::Rejected) {
                    plan.steps.push(Step::SetPassword {
                        kind,
                        name,
                        via: manager,
                    });
                }
            }
        }
    }
}

fn plan_members(spec: &SetSpec, observed: &Observed, plan: &mut Plan) {
    let set_hosts = if observed.initiated {
        observed.set_hosts()
    } else {
        spec.seed()
            .map(|s| vec![s.host.clone()])
            .unwrap_or_default()
    };
    for member in &spec.members {
        if !set_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&member.host))
        {
            plan.steps.push(Step::AddMember {
                host: member.host.clone(),
            });
        }
    }
    for host in &set_hosts {
        if spec.member(host).is_none() {
            plan.warnings.push(format!(
                "{host} is a member of the replica set but not in the spec's members: add it \
                 there, or remove it with `mongo-rs-setup remove-member --host {host}`"
            ));
        }
    }
    let Some(config) = &observed.config else {
        return;
    };
    for current in config_members(config) {
        let Ok(host) = current.get_str("host") else {
            continue;
        };
        let Some(wanted) = spec.member(host) else {
            continue;
        };
        let arbiter = current.get_bool("arbiterOnly").unwrap_or(false);
        if arbiter != wanted.arbiter_only {
            plan.blockers.push(format!(
                "{host} is {} in the replica set but {} in ha.toml: MongoDB cannot change that in \
                 place; remove the member (`mongo-rs-setup remove-member`), empty its dbPath and \
                 run apply again",
                if arbiter {
                    "an arbiter"
                } else {
                    "a data-bearing member"
                },
                if wanted.arbiter_only {
                    "an arbiter"
                } else {
                    "a data-bearing member"
                },
            ));
            continue;
        }
        let changes = member_changes(&current, wanted);
        if !changes.is_empty() {
            plan.steps.push(Step::SetMemberOptions {
                host: host.to_owned(),
                changes,
            });
        }
    }
    let settings = config.get_document("settings").cloned().unwrap_or_default();
    let changes = settings_changes(&settings, &spec.settings.to_doc());
    if !changes.is_empty() {
        plan.steps.push(Step::SetSettings { changes });
    }
}

/// Differences between a member document of a replica-set config and the
/// spec (priority, votes, hidden), as `key a → b`; empty when they agree.
pub fn member_changes(current: &Document, wanted: &MemberSpec) -> Vec<String> {
    let mut changes = Vec::new();
    let priority = current
        .get("priority")
        .and_then(|p| p.as_f64().or_else(|| number(Some(p)).map(|n| n as f64)))
        .unwrap_or(1.0);
    if !wanted.arbiter_only && (priority - wanted.priority).abs() > f64::EPSILON {
        changes.push(format!("priority {priority} → {}", wanted.priority));
    }
    let votes = number(current.get("votes")).unwrap_or(1);
    if votes != i64::from(wanted.votes) {
        changes.push(format!("votes {votes} → {}", wanted.votes));
    }
    let hidden = current.get_bool("hidden").unwrap_or(false);
    if hidden != wanted.hidden {
        changes.push(format!("hidden {hidden} → {}", wanted.hidden));
    }
    changes
}

fn settings_changes(current: &Document, wanted: &Document) -> Vec<String> {
    wanted
        .iter()
        .filter_map(|(key, value)| {
            let now = number(current.get(key));
            let want = number(Some(value));
            (now != want).then(|| {
                format!(
                    "{key} {} → {}",
                    now.map_or("default".to_owned(), |n| n.to_string()),
                    want.unwrap_or(0)
                )
            })
        })
        .collect()
}
