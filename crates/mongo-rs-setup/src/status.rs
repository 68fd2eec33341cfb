//! Health of the replica set, for people, cron and monitoring.

use std::time::Duration;

use futures_util::future::join_all;
use ha_plan::Document;
use schemars::JsonSchema;
use serde::Serialize;

use crate::conn::Session;
use crate::reconfig::{StatusEntry, set_status};
use crate::spec::UserKind;

/// One member's health.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberHealth {
    /// `host:port`.
    pub host: String,
    /// Whether it is listed in the spec (`[mongo].members`).
    pub configured: bool,
    /// Its state (`PRIMARY`, `SECONDARY`, `STARTUP2` …), `UNREACHABLE` when
    /// this run could not connect to it, `NOT IN SET` when it is not in the
    /// set's config.
    pub state: String,
    /// How far its last applied operation is behind the primary's, in
    /// seconds.
    pub lag_seconds: Option<i64>,
    /// The member it replicates from.
    pub sync_source: Option<String>,
    /// Whether a connection (with TLS when configured) could be made from
    /// here.
    pub reachable: bool,
    /// Whether `circle-admin` could log in on it (`None` for arbiters and
    /// unreachable members).
    pub auth_ok: Option<bool>,
    /// What is wrong with it, if anything.
    pub problem: Option<String>,
}

/// The whole set's health.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The replica set's name.
    pub set_name: String,
    /// The primary, if there is one.
    pub primary: Option<String>,
    /// Each member: the configured ones in spec order, then members the
    /// set has that the spec does not list.
    pub members: Vec<MemberHealth>,
    /// Everything that makes the set unhealthy.
    pub problems: Vec<String>,
}

impl Status {
    /// No problems.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The status as `mongo-rs-setup status` shows it: JSON `{healthy,
    /// replica_set, primary, members: [{host, configured, state, healthy,
    /// lag_seconds, sync_source, reachable, tls, auth_ok, problem}],
    /// problems, warnings}` and an aligned table. `tls` says whether the
    /// connections were made with TLS; `warnings` (about the spec) are
    /// shown first.
    pub fn to_findings(&self, tool: &str, tls: bool, warnings: &[String]) -> SetFindings {
        SetFindings {
            healthy: self.healthy(),
            replica_set: self.set_name.clone(),
            primary: self.primary.clone(),
            members: self
                .members
                .iter()
                .map(|m| MemberFinding {
                    host: m.host.clone(),
                    configured: m.configured,
                    state: m.state.clone(),
                    healthy: m.problem.is_none() && m.configured,
                    lag_seconds: m.lag_seconds,
                    sync_source: m.sync_source.clone(),
                    reachable: m.reachable,
                    tls: tls && m.reachable,
                    auth_ok: m.auth_ok,
                    problem: m.problem.clone(),
                })
                .collect(),
            problems: self.problems.clone(),
            warnings: warnings.to_vec(),
            tool: tool.to_owned(),
        }
    }
}

/// `mongo-rs-setup status`: the replica set's health, member by member.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SetFindings {
    /// No problems.
    pub healthy: bool,
    /// The replica set's name.
    pub replica_set: String,
    /// The primary, if there is one.
    pub primary: Option<String>,
    /// Each member: the configured ones in spec order, then those the set
    /// has that the spec does not list.
    pub members: Vec<MemberFinding>,
    /// Everything that makes the set unhealthy.
    pub problems: Vec<String>,
    /// Things to know about the spec.
    pub warnings: Vec<String>,
    /// The tool named in the summary line.
    #[serde(skip)]
    pub tool: String,
}

/// One member of [`SetFindings`].
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct MemberFinding {
    /// `host:port`.
    pub host: String,
    /// Whether `[mongo].members` lists it.
    pub configured: bool,
    /// `PRIMARY`, `SECONDARY` …, `UNREACHABLE`, `NOT IN SET`.
    pub state: String,
    /// Configured and without a problem.
    pub healthy: bool,
    /// Seconds behind the primary.
    pub lag_seconds: Option<i64>,
    /// The member it replicates from.
    pub sync_source: Option<String>,
    /// Whether a connection could be made from here.
    pub reachable: bool,
    /// Whether that connection used TLS.
    pub tls: bool,
    /// Whether `circle-admin` could log in (absent for arbiters and
    /// unreachable members).
    pub auth_ok: Option<bool>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

impl Document for SetFindings {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for warning in &self.warnings {
            text.push_str(&format!("warning: {warning}\n"));
        }
        let width = self.members.iter().map(|m| m.host.len()).max().unwrap_or(4);
        let state_width = self
            .members
            .iter()
            .map(|m| m.state.len())
            .max()
            .unwrap_or(9);
        for m in &self.members {
            let lag = m.lag_seconds.map_or("-".to_owned(), |l| format!("{l}s"));
            let sync = m.sync_source.as_deref().unwrap_or("-");
            let link = match (m.reachable, m.tls) {
                _ if !m.configured => "not probed",
                (false, _) => "unreachable",
                (true, true) => "tls ok",
                (true, false) => "plain",
            };
            let auth = match m.auth_ok {
                Some(true) => "auth ok",
                Some(false) => "AUTH FAILED",
                None => "auth -",
            };
            let extra = if m.configured {
                ""
            } else {
                "  (not in ha.toml)"
            };
            text.push_str(&format!(
                "{:<width$}  {:<state_width$}  lag {:<6} sync {:<width$}  {link}, {auth}{extra}\n",
                m.host, m.state, lag, sync,
            ));
        }
        for problem in &self.problems {
            text.push_str(&format!("problem: {problem}\n"));
        }
        text.push_str(&if self.healthy {
            format!(
                "{}: replica set {} is healthy\n",
                self.tool, self.replica_set
            )
        } else {
            format!(
                "{}: replica set {} is unhealthy ({} problem(s))\n",
                self.tool,
                self.replica_set,
                self.problems.len()
            )
        });
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// Collects the set's health: `replSetGetStatus` as `circle-admin` (from
/// the primary, else any member that answers), plus a direct connection
/// and login on every member. Never fails: whatever cannot be read becomes
/// a problem.
pub async fn status(session: &Session<'_>, max_lag: Duration) -> Status {
    let spec = session.spec();
    let hosts: Vec<String> = spec.members.iter().map(|m| m.host.clone()).collect();
    let hellos = join_all(hosts.iter().map(|h| session.hello(h))).await;
    let logins = join_all(hosts.iter().zip(&hellos).map(|(h, hello)| async move {
        match hello {
            Ok(hello) if !hello.arbiter => Some(session.can_log_in(h, UserKind::Admin).await),
            _ => None,
        }
    }))
    .await;
    let mut problems = Vec::new();
    let reachable = hellos.iter().filter(|h| h.is_ok()).count();
    if reachable > 0 && !hellos.iter().flatten().any(|h| h.set_name.is_some()) {
        // Nothing to log in to or ask yet: say that, once.
        let members = hosts
            .iter()
            .zip(&hellos)
            .map(|(host, hello)| MemberHealth {
                host: host.clone(),
                configured: true,
                state: if hello.is_ok() {
                    "NOT INITIATED"
                } else {
                    "UNREACHABLE"
                }
                .to_owned(),
                lag_seconds: None,
                sync_source: None,
                reachable: hello.is_ok(),
                auth_ok: None,
                problem: hello.as_ref().err().map(ToString::to_string),
            })
            .collect::<Vec<_>>();
        problems.push(format!(
            "replica set {} is not initiated: run `mongo-rs-setup apply`",
            spec.name
        ));
        problems.extend(members.iter().filter_map(|m| m.problem.clone()));
        return Status {
            set_name: spec.name.clone(),
            primary: None,
            members,
            problems,
        };
    }
    // The set's view, from the primary first.
    let mut order: Vec<usize> = (0..hosts.len()).collect();
    order.sort_by_key(|i| !hellos[*i].as_ref().is_ok_and(|h| h.primary));
    let mut entries: Option<Vec<StatusEntry>> = None;
    let mut last_error = None;
    for i in order {
        if !matches!(logins[i], Some(Ok(true))) {
            continue;
        }
        match set_status(session, &hosts[i]).await {
            Ok(e) => {
                entries = Some(e);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let entries = match entries {
        Some(entries) => entries,
        None => {
            problems.push(match last_error {
                Some(e) => format!("cannot read the replica set's status: {e}"),
                None => format!(
                    "cannot read the replica set's status: {} could not log in on any reachable \
                     member",
                    spec.admin.name
                ),
            });
            Vec::new()
        }
    };
    let primary = entries
        .iter()
        .find(|e| e.state == "PRIMARY")
        .map(|e| e.host.clone());
    if primary.is_none() {
        problems.push(format!("replica set {} has no primary", spec.name));
    }
    let primary_optime = entries
        .iter()
        .find(|e| e.state == "PRIMARY")
        .and_then(|e| e.optime_millis);
    let mut members = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let entry = entries.iter().find(|e| e.host.eq_ignore_ascii_case(host));
        let reachable = hellos[i].is_ok();
        let auth_ok = match &logins[i] {
            Some(Ok(ok)) => Some(*ok),
            _ => None,
        };
        let mut health = health(host, true, entry, primary_optime, reachable, auth_ok);
        if let Err(e) = &hellos[i] {
            health.problem = Some(e.to_string());
        } else if auth_ok == Some(false) {
            health.problem = Some(format!(
                "{} cannot log in on {host}: check its password",
                spec.admin.name
            ));
        } else if let Some(Err(e)) = &logins[i] {
            health.problem = Some(e.to_string());
        } else if !entries.is_empty() && entry.is_none() {
            health.problem = Some(format!(
                "{host} is not a member of the replica set (run `mongo-rs-setup apply`)"
            ));
        } else if let Some(entry) = entry
            && !entry.ready()
        {
            health.problem = Some(format!(
                "{host} is {}{}",
                entry.state,
                entry
                    .message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ));
        } else if let Some(lag) = health.lag_seconds
            && lag > max_lag.as_secs() as i64
        {
            health.problem = Some(format!(
                "{host} is {lag}s behind the primary (threshold {}s)",
                max_lag.as_secs()
            ));
        }
        if let Some(problem) = &health.problem {
            problems.push(problem.clone());
        }
        members.push(health);
    }
    for entry in &entries {
        if spec.member(&entry.host).is_none() {
            members.push(health(
                &entry.host,
                false,
                Some(entry),
                primary_optime,
                false,
                None,
            ));
        }
    }
    Status {
        set_name: spec.name.clone(),
        primary,
        members,
        problems,
    }
}

fn health(
    host: &str,
    configured: bool,
    entry: Option<&StatusEntry>,
    primary_optime: Option<i64>,
    reachable: bool,
    auth_ok: Option<bool>,
) -> MemberHealth {
    let state = match entry {
        Some(e) => e.state.clone(),
        None if configured && !reachable => "UNREACHABLE".to_owned(),
        None => "NOT IN SET".to_owned(),
    };
    let lag_seconds = match (entry, primary_optime) {
        (Some(e), Some(p)) if e.ready() && e.state != "ARBITER" => {
            e.optime_millis.map(|m| ((p - m) / 1000).max(0))
        }
        _ => None,
    };
    MemberHealth {
        host: host.to_owned(),
        configured,
        state,
        lag_seconds,
        sync_source: entry
            .filter(|e| e.healthy)
            .and_then(|e| e.sync_source.clone()),
        reachable,
        auth_ok,
        problem: None,
    }
}
