//! One member change at a time — the runbook's `rs.add()` family — as a
//! plan of steps: observed, planned (a dry run prints it), applied as safe
//! single-change reconfigs on the primary. A change the set already has
//! plans nothing.

use std::fmt;

use bson::Document;

use crate::conn::{Session, number};
use crate::error::Error;
use crate::observe::config_members;
use crate::spec::{MemberSpec, SetSpec, UserKind};
use crate::{plan, reconfig};

/// The change an operator asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberChange {
    /// `rs.add()`: a new member, which must run with `--replSet` and have
    /// no config yet.
    Add(MemberSpec),
    /// `rs.remove()`.
    Remove(String),
    /// A member's priority (votes, hidden and arbiter stay as they are).
    SetPriority {
        /// The member.
        host: String,
        /// The new priority, 0–1000.
        priority: f64,
    },
}

/// One step of a member change.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberStep {
    /// Add the member and wait until it is SECONDARY.
    AddMember(MemberSpec),
    /// Remove the member from the set's config.
    RemoveMember {
        /// Its address.
        host: String,
    },
    /// Reconfigure the member's options.
    SetMemberOptions {
        /// The member as it should be.
        member: MemberSpec,
        /// What changes, for people.
        changes: Vec<String>,
    },
}

impl ha_plan::Change for MemberStep {
    fn kind(&self) -> &'static str {
        match self {
            MemberStep::AddMember(_) => "add-member",
            MemberStep::RemoveMember { .. } => "remove-member",
            MemberStep::SetMemberOptions { .. } => "set-member-options",
        }
    }

    fn target(&self) -> String {
        match self {
            MemberStep::AddMember(member) | MemberStep::SetMemberOptions { member, .. } => {
                format!("member {}", member.host)
            }
            MemberStep::RemoveMember { host } => format!("member {host}"),
        }
    }
}

impl fmt::Display for MemberStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberStep::AddMember(member) => write!(
                f,
                "add member {} and wait until it is SECONDARY",
                member.host
            ),
            MemberStep::RemoveMember { host } => {
                write!(f, "remove member {host} from the replica set")
            }
            MemberStep::SetMemberOptions { member, changes } => {
                write!(f, "change member {}: {}", member.host, changes.join(", "))
            }
        }
    }
}

/// What a member change will do, on which primary.
#[derive(Clone, Debug)]
pub struct MemberPlan {
    /// The primary the reconfigs go to.
    pub primary: String,
    /// The steps (none when the set already is that way) and what to tell
    /// the operator (the spec disagrees with the change …).
    pub plan: ha_plan::Plan<MemberStep>,
}

/// Observes the set and plans `change`. Refuses (nothing changed) when the
/// set has no primary, circle-admin cannot log in, a member to add is not
/// a fresh `--replSet` member, a member to change is not in the set, or a
/// member to remove is still in `spec` (the next `apply` would add it back).
pub async fn plan_member_change(
    session: &Session<'_>,
    spec: &SetSpec,
    change: &MemberChange,
    progress: ha_plan::Progress<'_>,
) -> Result<MemberPlan, Error> {
    if let MemberChange::Remove(host) = change
        && spec.member(host).is_some()
    {
        return Err(Error::Blocked(vec![format!(
            "{host} is listed in the spec's members: take it out first, or the next apply adds \
             it back"
        )]));
    }
    let observed = crate::observe(session, spec.wait_timeout, progress).await?;
    let Some(primary) = observed.primary.clone() else {
        return Err(Error::Blocked(vec![format!(
            "replica set {} has no primary: start it (and `mongo-rs-setup apply`) first",
            spec.name
        )]));
    };
    if !observed.logged_in(UserKind::Admin) {
        return Err(Error::Blocked(vec![format!(
            "{primary}: {} cannot log in; reconfiguring needs it",
            spec.admin.name
        )]));
    }
    let config = reconfig::current_config(session, &primary).await?;
    let current: Vec<Document> = config_members(&config);
    let find = |host: &str| {
        current
            .iter()
            .find(|m| {
                m.get_str("host")
                    .is_ok_and(|h| h.eq_ignore_ascii_case(host))
            })
            .cloned()
    };
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    match change {
        MemberChange::Add(member) => {
            if find(&member.host).is_none() {
                let hello = session.hello(&member.host).await?;
                if hello.set_name.is_some() || !hello.awaiting_config {
                    return Err(Error::Blocked(vec![format!(
                        "{}: it must run with --replSet {} and have no replica-set config yet \
                         (it reports set {:?})",
                        member.host, spec.name, hello.set_name
                    )]));
                }
                steps.push(MemberStep::AddMember(member.clone()));
            }
            if spec.member(&member.host).is_none() {
                warnings.push(format!(
                    "add {} to the spec's members, or status will list it as not configured and apply \
                     will warn about it",
                    member.host
                ));
            }
        }
        MemberChange::Remove(host) => {
            if find(host).is_some() {
                steps.push(MemberStep::RemoveMember { host: host.clone() });
            }
        }
        MemberChange::SetPriority { host, priority } => {
            let Some(member) = find(host) else {
                return Err(Error::Blocked(vec![format!(
                    "{host} is not a member of replica set {}",
                    spec.name
                )]));
            };
            let mut wanted = spec
                .member(host)
                .cloned()
                .unwrap_or_else(|| MemberSpec::new(host.clone()));
            wanted.votes = number(member.get("votes")).unwrap_or(1) as u8;
            wanted.hidden = member.get_bool("hidden").unwrap_or(false);
            wanted.arbiter_only = member.get_bool("arbiterOnly").unwrap_or(false);
            wanted.priority = *priority;
            let changes = plan::member_changes(&member, &wanted);
            if !changes.is_empty() {
                steps.push(MemberStep::SetMemberOptions {
                    member: wanted,
                    changes,
                });
            }
            if let Some(configured) = spec.member(host).map(|m| m.priority)
                && (configured - priority).abs() > f64::EPSILON
            {
                warnings.push(format!(
                    "the spec sets {host}'s priority to {configured}: the next apply changes it \
                     back unless the spec's members change too"
                ));
            }
        }
    }
    Ok(MemberPlan {
        primary,
        plan: ha_plan::Plan {
            steps,
            blockers: Vec::new(),
            warnings,
        },
    })
}

/// Carries out a [`MemberPlan`], one reconfig per step; an added member is
/// waited for until it is SECONDARY.
pub async fn apply_member_change(
    session: &Session<'_>,
    plan: &MemberPlan,
    progress: ha_plan::Progress<'_>,
) -> Result<(), Error> {
    for step in &plan.plan.steps {
        match step {
            MemberStep::AddMember(member) => {
                reconfig::add_member(session, &plan.primary, member).await?;
                reconfig::wait_until_ready(
                    session,
                    &plan.primary,
                    std::slice::from_ref(&member.host),
                    progress,
                )
                .await?;
            }
            MemberStep::RemoveMember { host } => {
                reconfig::remove_member(session, &plan.primary, host).await?;
            }
            MemberStep::SetMemberOptions { member, .. } => {
                reconfig::set_member_options(session, &plan.primary, member).await?;
            }
        }
    }
    Ok(())
}
