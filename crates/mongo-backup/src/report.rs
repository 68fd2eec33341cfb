//! What `list` and `status` show: the runs of a set with their optime and
//! age, and whether the newest complete one is recent enough.

use std::time::Duration;

use ha_plan::Document;
use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;

use crate::snapshot::{Group, rfc3339_millis};

fn age_text(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn state(group: &Group) -> &'static str {
    if group.is_complete() {
        "complete"
    } else if group.is_pending() {
        "pending"
    } else {
        "failed"
    }
}

/// One backup run as `list` and `status` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RunSummary {
    /// The run's id.
    pub run: String,
    /// When its first snapshot was taken, seconds since the epoch.
    pub created: i64,
    /// How old it is, in seconds.
    pub age_seconds: i64,
    /// `complete`, `pending` or `failed`.
    pub state: String,
    /// The stopped member.
    pub member: Option<String>,
    /// The member's last applied optime the snapshots hold.
    pub optime: Option<String>,
    /// That optime's wall time (RFC 3339).
    pub optime_wall: Option<String>,
    /// Its snapshots.
    pub snapshots: Vec<SnapshotSummary>,
}

/// One snapshot of a [`RunSummary`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SnapshotSummary {
    /// The store's id.
    pub id: String,
    /// What was snapshotted.
    pub source: String,
    /// Its progress.
    pub state: String,
}

impl RunSummary {
    /// `group` as seen at `now`.
    pub fn of(group: &Group, now: OffsetDateTime) -> RunSummary {
        let labels = group.labels();
        RunSummary {
            run: group.id.clone(),
            created: group.created.unix_timestamp(),
            age_seconds: (now - group.created).whole_seconds(),
            state: state(group).to_owned(),
            member: labels.map(|l| l.member.clone()),
            optime: labels.and_then(|l| l.optime).map(|o| o.to_string()),
            optime_wall: labels
                .and_then(|l| l.optime_millis)
                .and_then(rfc3339_millis),
            snapshots: group
                .snapshots
                .iter()
                .map(|s| SnapshotSummary {
                    id: s.id.clone(),
                    source: s.source.clone(),
                    state: s.state.to_string(),
                })
                .collect(),
        }
    }
}

/// `mongo-backup list`: every run of a replica set, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RunList {
    /// The replica set.
    pub replica_set: String,
    /// Its runs, newest first.
    pub runs: Vec<RunSummary>,
}

/// `mongo-backup list`: every run of `set`, newest first (`groups` as
/// [`crate::snapshot::groups`] returns them).
pub fn list_findings(set: &str, groups: &[Group], now: OffsetDateTime) -> RunList {
    RunList {
        replica_set: set.to_owned(),
        runs: groups.iter().map(|g| RunSummary::of(g, now)).collect(),
    }
}

impl Document for RunList {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for run in &self.runs {
            text.push_str(&format!(
                "{:<28} {:<8} {:>5} ago  {}  optime {}  {}\n",
                run.run,
                run.state,
                age_text(run.age_seconds),
                run.member.as_deref().unwrap_or("-"),
                run.optime.as_deref().unwrap_or("-"),
                run.snapshots
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        text.push_str(&format!(
            "mongo-backup: {} run(s) of replica set {}\n",
            self.runs.len(),
            self.replica_set
        ));
        text
    }
}

/// `mongo-backup status`: whether the newest complete run is recent enough.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct BackupHealth {
    /// The newest complete run is at most `max_age_seconds` old.
    pub healthy: bool,
    /// The replica set.
    pub replica_set: String,
    /// The newest complete run.
    pub newest: Option<RunSummary>,
    /// Its age in seconds.
    pub age_seconds: Option<i64>,
    /// The limit.
    pub max_age_seconds: i64,
    /// Runs found, complete or not.
    pub runs: usize,
    /// Each member's newest complete run: when it was taken, seconds since
    /// the epoch (members never backed up are absent).
    pub last_complete_by_member: std::collections::BTreeMap<String, i64>,
}

/// `mongo-backup status`: healthy when the newest complete run of `set`
/// is at most `max_age` old.
pub fn status_findings(
    set: &str,
    groups: &[Group],
    max_age: Duration,
    now: OffsetDateTime,
) -> BackupHealth {
    let newest = groups.iter().find(|g| g.is_complete());
    let age = newest.map(|g| (now - g.created).whole_seconds());
    let limit = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let mut last_complete_by_member = std::collections::BTreeMap::new();
    for group in groups.iter().filter(|g| g.is_complete()) {
        if let Some(member) = RunSummary::of(group, now).member {
            let created = group.created.unix_timestamp();
            let newest = last_complete_by_member.entry(member).or_insert(created);
            *newest = (*newest).max(created);
        }
    }
    BackupHealth {
        healthy: age.is_some_and(|a| a <= limit),
        replica_set: set.to_owned(),
        newest: newest.map(|g| RunSummary::of(g, now)),
        age_seconds: age,
        max_age_seconds: limit,
        runs: groups.len(),
        last_complete_by_member,
    }
}

impl BackupHealth {
    /// These findings for Prometheus' node_exporter textfile collector (the
    /// text exposition format 0.0.4), `now` in seconds since the epoch:
    /// `mongo_backup_healthy`, `mongo_backup_newest_complete_age_seconds`
    /// (absent without a complete run), `mongo_backup_max_age_seconds`,
    /// `mongo_backup_runs`, `mongo_backup_last_complete_timestamp_seconds`
    /// per member, and `mongo_backup_status_last_run_timestamp_seconds`
    /// (so that a check that stopped running shows) — every series
    /// labelled with the replica set.
    pub fn metrics(&self, now: i64) -> String {
        use ha_plan::exposition::{gauge, label};
        let this = format!("replica_set=\"{}\"", label(&self.replica_set));
        let mut out = String::new();
        gauge(
            &mut out,
            "mongo_backup_healthy",
            "Whether the newest complete backup run is within max_age (mongo-backup status).",
            &[(this.clone(), i64::from(self.healthy))],
        );
        if let Some(age) = self.age_seconds {
            gauge(
                &mut out,
                "mongo_backup_newest_complete_age_seconds",
                "Age of the newest complete backup run.",
                &[(this.clone(), age)],
            );
        }
        gauge(
            &mut out,
            "mongo_backup_max_age_seconds",
            "The oldest the newest complete run may be.",
            &[(this.clone(), self.max_age_seconds)],
        );
        gauge(
            &mut out,
            "mongo_backup_runs",
            "Backup runs found, complete or not.",
            &[(this.clone(), i64::try_from(self.runs).unwrap_or(i64::MAX))],
        );
        gauge(
            &mut out,
            "mongo_backup_last_complete_timestamp_seconds",
            "When each member's newest complete backup run was taken.",
            &self.member_samples(&this),
        );
        gauge(
            &mut out,
            "mongo_backup_status_last_run_timestamp_seconds",
            "When mongo-backup status last ran.",
            &[(this, now)],
        );
        out
    }

    /// `(labels, taken)` per member for the `…_last_complete_timestamp_seconds`
    /// series: `set` (the replica set's label) and the member's.
    pub fn member_samples(&self, set: &str) -> Vec<(String, i64)> {
        self.last_complete_by_member
            .iter()
            .map(|(member, at)| {
                (
                    format!("{set},member=\"{}\"", ha_plan::exposition::label(member)),
                    *at,
                )
            })
            .collect()
    }
}

impl Document for BackupHealth {
    fn to_text(&self) -> String {
        let set = &self.replica_set;
        match (&self.newest, self.age_seconds) {
            (Some(run), Some(age)) => format!(
                "mongo-backup: newest complete backup of {set} is {} ({} old, limit {}){}\n",
                run.run,
                age_text(age),
                age_text(self.max_age_seconds),
                if self.healthy { "" } else { ": TOO OLD" }
            ),
            _ => format!("mongo-backup: no complete backup of {set}\n"),
        }
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}
