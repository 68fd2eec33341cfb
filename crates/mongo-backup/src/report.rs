//! What `list` and `status` show: the runs of a set with their optime and
//! age, and whether the newest complete one is recent enough.

use std::time::Duration;

use ha_plan::Findings;
use serde_json::{Value, json};
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

fn run_json(group: &Group, now: OffsetDateTime) -> Value {
    let labels = group.labels();
    json!({
        "run": group.id,
        "created": group.created.unix_timestamp(),
        "age_seconds": (now - group.created).whole_seconds(),
        "state": state(group),
        "member": labels.map(|l| l.member.clone()),
        "optime": labels.and_then(|l| l.optime).map(|o| o.to_string()),
        "optime_wall": labels.and_then(|l| l.optime_millis).and_then(rfc3339_millis),
        "snapshots": group.snapshots.iter().map(|s| json!({
            "id": s.id, "source": s.source, "state": s.state.to_string(),
        })).collect::<Vec<_>>(),
    })
}

/// `mongo-backup list`: every run of `set`, newest first (`groups` as
/// [`crate::snapshot::groups`] returns them).
pub fn list_findings(set: &str, groups: &[Group], now: OffsetDateTime) -> Findings {
    let mut text = String::new();
    for group in groups {
        let labels = group.labels();
        text.push_str(&format!(
            "{:<28} {:<8} {:>5} ago  {}  optime {}  {}\n",
            group.id,
            state(group),
            age_text((now - group.created).whole_seconds()),
            labels.map_or("-", |l| l.member.as_str()),
            labels
                .and_then(|l| l.optime)
                .map_or("-".to_owned(), |o| o.to_string()),
            group
                .snapshots
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    text.push_str(&format!(
        "mongo-backup: {} run(s) of replica set {set}\n",
        groups.len()
    ));
    Findings::new(
        true,
        json!({
            "replica_set": set,
            "runs": groups.iter().map(|g| run_json(g, now)).collect::<Vec<_>>(),
        }),
        text,
    )
}

/// `mongo-backup status`: healthy when the newest complete run of `set`
/// is at most `max_age` old.
pub fn status_findings(
    set: &str,
    groups: &[Group],
    max_age: Duration,
    now: OffsetDateTime,
) -> Findings {
    let newest = groups.iter().find(|g| g.is_complete());
    let age = newest.map(|g| (now - g.created).whole_seconds());
    let limit = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let healthy = age.is_some_and(|a| a <= limit);
    let text = match (newest, age) {
        (Some(group), Some(age)) => format!(
            "mongo-backup: newest complete backup of {set} is {} ({} old, limit {}){}\n",
            group.id,
            age_text(age),
            age_text(limit),
            if healthy { "" } else { ": TOO OLD" }
        ),
        _ => format!("mongo-backup: no complete backup of {set}\n"),
    };
    Findings::new(
        healthy,
        json!({
            "healthy": healthy,
            "replica_set": set,
            "newest": newest.map(|g| run_json(g, now)),
            "age_seconds": age,
            "max_age_seconds": limit,
            "runs": groups.len(),
        }),
        text,
    )
}
