//! The guards a snapshot run must pass before anything is touched: a pure
//! function of what `replSetGetStatus`/`replSetGetConfig` said and the
//! limits, so every rule is tested without a server.
//!
//! Stopping a member is safe only when the set keeps working without it:
//! a primary stays electable (a majority of the voting members is still
//! up), writes with `w: "majority"` still succeed (enough data-bearing
//! voting members, caught up, remain), and nothing else is already down —
//! a second member stopped on top of one that crashed is how a three-member
//! set loses its primary.

use std::fmt;
use std::time::Duration;

/// A member's position in the oplog: the timestamp (seconds, increment)
/// and term of its last applied operation, and that operation's wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpTime {
    /// Seconds part of the `ts` timestamp.
    pub secs: u32,
    /// Increment part of the `ts` timestamp.
    pub inc: u32,
    /// The election term (`t`).
    pub term: i64,
}

impl fmt::Display for OpTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}/{}", self.secs, self.inc, self.term)
    }
}

impl OpTime {
    /// Parses the [`Display`](fmt::Display) form, `secs.inc/term` (as the
    /// snapshot tags carry it).
    pub fn parse(text: &str) -> Option<OpTime> {
        let (ts, term) = text.split_once('/')?;
        let (secs, inc) = ts.split_once('.')?;
        Some(OpTime {
            secs: secs.parse().ok()?,
            inc: inc.parse().ok()?,
            term: term.parse().ok()?,
        })
    }
}

/// One member as the set reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    /// `host:port` as in the set's config.
    pub host: String,
    /// `stateStr`: PRIMARY, SECONDARY, ARBITER, RECOVERING, (not reachable/healthy) …
    pub state: String,
    /// `health == 1` (always true for the member answering).
    pub healthy: bool,
    /// Votes (0 or 1).
    pub votes: i64,
    /// Priority.
    pub priority: f64,
    /// Hidden.
    pub hidden: bool,
    /// Arbiter (holds no data).
    pub arbiter: bool,
    /// Last applied optime.
    pub optime: Option<OpTime>,
    /// Wall time of the last applied operation, milliseconds since the
    /// epoch.
    pub optime_millis: Option<i64>,
}

impl MemberView {
    fn up(&self) -> bool {
        self.healthy && matches!(self.state.as_str(), "PRIMARY" | "SECONDARY" | "ARBITER")
    }

    fn data_bearing_voter(&self) -> bool {
        self.votes > 0 && !self.arbiter
    }
}

/// The replica set as one member sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SetView {
    /// The set's name.
    pub name: String,
    /// Every member in the config.
    pub members: Vec<MemberView>,
}

impl SetView {
    /// The member `host` (case-insensitive).
    pub fn member(&self, host: &str) -> Option<&MemberView> {
        self.members
            .iter()
            .find(|m| m.host.eq_ignore_ascii_case(host))
    }

    /// The primary, if there is one.
    pub fn primary(&self) -> Option<&MemberView> {
        self.members
            .iter()
            .find(|m| m.state == "PRIMARY" && m.healthy)
    }

    /// How far `member` is behind the primary, in seconds (`None` without a
    /// primary or optimes).
    pub fn lag_seconds(&self, member: &MemberView) -> Option<i64> {
        let primary = self.primary()?;
        Some((primary.optime_millis? - member.optime_millis?).max(0) / 1000)
    }
}

/// The limits a run is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most this member (and every other member `w: "majority"` writes
    /// will need) may lag the primary.
    pub max_lag: Duration,
    /// Back up this member even when the set has a hidden or priority-0
    /// member meant for backups.
    pub any_member: bool,
}

impl Default for Limits {
    /// The runbook's: at most 30 seconds of lag, and a set's hidden or
    /// priority-0 member (one meant for backups) preferred.
    fn default() -> Limits {
        Limits {
            max_lag: Duration::from_secs(30),
            any_member: false,
        }
    }
}

/// Why a run refused to stop the member. Nothing was touched.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The member is not in the set's config.
    NotInSet {
        /// The member.
        member: String,
    },
    /// The member is the primary: stopping it would cost an election.
    IsPrimary {
        /// The member.
        member: String,
    },
    /// The member is not a healthy secondary (starting, recovering,
    /// arbiter …).
    NotSecondary {
        /// The member.
        member: String,
        /// Its state.
        state: String,
    },
    /// The member lags the primary too far (its snapshot would be stale,
    /// and it may be needed to catch others up).
    Lagging {
        /// The member.
        member: String,
        /// Its lag, seconds (`None`: unknown, no primary).
        seconds: Option<i64>,
        /// The limit.
        limit: u64,
    },
    /// Another member is down or not in a serving state.
    OtherMemberDown {
        /// That member.
        member: String,
        /// Its state.
        state: String,
    },
    /// Without this member, fewer than a majority of the voting members
    /// would remain up: no primary could be elected.
    NoVotingMajority {
        /// Voting members that would remain up.
        remaining: usize,
        /// A majority of the voting members.
        needed: usize,
    },
    /// Without this member, `w: "majority"` writes could not be
    /// acknowledged: too few data-bearing voting members would remain up
    /// and caught up.
    NoWriteMajority {
        /// Data-bearing voting members that would remain up and within the
        /// lag limit.
        remaining: usize,
        /// How many `w: "majority"` needs.
        needed: usize,
    },
    /// The set has a member meant for backups (hidden or priority 0) and it
    /// is healthy: back up there (or pass `--any-member`).
    PreferOther {
        /// The backup member.
        member: String,
    },
    /// The mongod this machine runs (the one the stop command stops) is
    /// not the member the guards checked: with one `ha.toml` shared by
    /// the hosts, a run on another host would stop its own mongod — maybe
    /// the primary — while guarding this member.
    NotThisMachine {
        /// The member the run guards.
        member: String,
        /// What the local mongod says it is (`hello.me`), if it answered.
        local: Option<String>,
        /// Where it was asked (`127.0.0.1:<port>`).
        address: String,
    },
    /// Another run holds the set's backup lock.
    Locked {
        /// Who holds it (member and process).
        holder: String,
        /// When the lease runs out (RFC 3339), after which a crashed
        /// holder's lock is taken over.
        expires: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotInSet { member } => write!(
                f,
                "{member} is not a member of the replica set (check the member to back up \
                 against the set's config: rs.conf())"
            ),
            Refusal::IsPrimary { member } => write!(
                f,
                "{member} is the PRIMARY: back up a SECONDARY (stopping the primary forces an \
                 election)"
            ),
            Refusal::NotSecondary { member, state } => {
                write!(f, "{member} is {state}, not a healthy SECONDARY")
            }
            Refusal::Lagging {
                member,
                seconds: Some(seconds),
                limit,
            } => write!(
                f,
                "{member} is {seconds}s behind the primary (limit {limit}s): wait until it has \
                 caught up"
            ),
            Refusal::Lagging {
                member,
                seconds: None,
                ..
            } => write!(
                f,
                "{member}'s lag cannot be measured (no primary, or no optimes): the set is not \
                 healthy"
            ),
            Refusal::OtherMemberDown { member, state } => write!(
                f,
                "{member} is {state}: with another member down, stopping this one could leave the \
                 set without a primary; bring {member} back first"
            ),
            Refusal::NoVotingMajority { remaining, needed } => write!(
                f,
                "without this member only {remaining} voting member(s) would remain up; a primary \
                 needs {needed}"
            ),
            Refusal::NoWriteMajority { remaining, needed } => write!(
                f,
                "without this member only {remaining} data-bearing voting member(s) would remain \
                 up and caught up; w: \"majority\" writes need {needed}"
            ),
            Refusal::PreferOther { member } => write!(
                f,
                "{member} is the set's backup member (hidden or priority 0) and healthy: back up \
                 there, or allow any member"
            ),
            Refusal::NotThisMachine {
                member,
                local: Some(local),
                address,
            } => write!(
                f,
                "this machine's mongod ({address}) is {local}, not {member}: the stop command \
                 would stop {local} while the guards checked {member}; run the backup on \
                 {member}'s own host, or name {local} as the member to \
                 back up"
            ),
            Refusal::NotThisMachine {
                member,
                local: None,
                address,
            } => write!(
                f,
                "no mongod answers on {address} on this machine, so it cannot be {member}: run \
                 the backup on {member}'s own host, or give the port its mongod listens on \
                 as the local port"
            ),
            Refusal::Locked { holder, expires } => write!(
                f,
                "another backup holds the set's lock ({holder}, until {expires}); a crashed \
                 run's lock is taken over once it expires"
            ),
        }
    }
}

/// What the guards cleared: the member's position when checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cleared {
    /// Its last applied optime.
    pub optime: Option<OpTime>,
    /// That optime's wall time, milliseconds since the epoch.
    pub optime_millis: Option<i64>,
}

/// Checks that `member` may be stopped for a snapshot: every refusal at
/// once, or what was cleared.
pub fn check(view: &SetView, member: &str, limits: &Limits) -> Result<Cleared, Vec<Refusal>> {
    let Some(me) = view.member(member) else {
        return Err(vec![Refusal::NotInSet {
            member: member.to_owned(),
        }]);
    };
    let mut refusals = Vec::new();
    if me.state == "PRIMARY" {
        refusals.push(Refusal::IsPrimary {
            member: me.host.clone(),
        });
    } else if me.state != "SECONDARY" || !me.healthy {
        refusals.push(Refusal::NotSecondary {
            member: me.host.clone(),
            state: me.state.clone(),
        });
    }
    let limit = limits.max_lag.as_secs();
    let within_lag = |m: &MemberView| {
        m.state == "PRIMARY"
            || view
                .lag_seconds(m)
                .is_some_and(|lag| lag <= i64::try_from(limit).unwrap_or(i64::MAX))
    };
    if me.state == "SECONDARY" && !within_lag(me) {
        refusals.push(Refusal::Lagging {
            member: me.host.clone(),
            seconds: view.lag_seconds(me),
            limit,
        });
    }
    let others: Vec<&MemberView> = view.members.iter().filter(|m| m.host != me.host).collect();
    for other in &others {
        if !other.up() {
            refusals.push(Refusal::OtherMemberDown {
                member: other.host.clone(),
                state: other.state.clone(),
            });
        }
    }
    let voters = view.members.iter().filter(|m| m.votes > 0).count();
    let needed = voters / 2 + 1;
    let remaining = others.iter().filter(|m| m.votes > 0 && m.up()).count();
    if remaining < needed {
        refusals.push(Refusal::NoVotingMajority { remaining, needed });
    }
    // mongod: the write majority is a majority of the voting members, but
    // no more than the data-bearing voters there are.
    let data_voters = view
        .members
        .iter()
        .filter(|m| m.data_bearing_voter())
        .count();
    let write_needed = needed.min(data_voters);
    let write_remaining = others
        .iter()
        .filter(|m| m.data_bearing_voter() && m.up() && within_lag(m))
        .count();
    if write_remaining < write_needed {
        refusals.push(Refusal::NoWriteMajority {
            remaining: write_remaining,
            needed: write_needed,
        });
    }
    let backup_member = |m: &MemberView| {
        !m.arbiter && (m.hidden || m.priority == 0.0) && m.healthy && m.state == "SECONDARY"
    };
    if !limits.any_member
        && !backup_member(me)
        && let Some(preferred) = others.iter().find(|m| backup_member(m))
    {
        refusals.push(Refusal::PreferOther {
            member: preferred.host.clone(),
        });
    }
    if refusals.is_empty() {
        Ok(Cleared {
            optime: me.optime,
            optime_millis: me.optime_millis,
        })
    } else {
        Err(refusals)
    }
}

#[cfg(test)]
mod tests;
