//! Snapshots as the tool tags and reads them back, whatever stores them,
//! and the retention rule over them.

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;

use crate::guard::OpTime;

/// The tag every snapshot this tool makes carries, with [`TOOL`] as value.
/// Nothing without it is ever listed or deleted.
pub const TAG_TOOL: &str = "circle-ha:tool";
/// The value of [`TAG_TOOL`].
pub const TOOL: &str = "mongo-backup";
/// The replica set's name.
pub const TAG_SET: &str = "circle-ha:set";
/// The member that was stopped (`host:port`).
pub const TAG_MEMBER: &str = "circle-ha:member";
/// One run's id: the snapshots of several volumes taken together share it.
pub const TAG_GROUP: &str = "circle-ha:group";
/// How many volumes the group has.
pub const TAG_VOLUMES: &str = "circle-ha:volumes";
/// The member's last applied optime read immediately before it was
/// stopped (`secs.inc/term`): the snapshot holds every operation up to it,
/// and possibly the few the member applied in the instant before the stop.
pub const TAG_OPTIME: &str = "circle-ha:optime";
/// That optime's wall time (RFC 3339).
pub const TAG_OPTIME_WALL: &str = "circle-ha:optime-wall";
/// The tool's version.
pub const TAG_VERSION: &str = "circle-ha:version";

/// What a snapshot of one run is tagged with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    /// The run's id.
    pub group: String,
    /// The replica set.
    pub set: String,
    /// The stopped member.
    pub member: String,
    /// Its last applied optime before the stop.
    pub optime: Option<OpTime>,
    /// That optime's wall time, milliseconds since the epoch.
    pub optime_millis: Option<i64>,
    /// The tool's version.
    pub version: String,
}

impl Labels {
    /// The tags, `(key, value)`, for a group of `volumes` snapshots.
    pub fn tags(&self, volumes: usize) -> Vec<(String, String)> {
        let mut tags = vec![
            (TAG_TOOL.to_owned(), TOOL.to_owned()),
            (TAG_SET.to_owned(), self.set.clone()),
            (TAG_MEMBER.to_owned(), self.member.clone()),
            (TAG_GROUP.to_owned(), self.group.clone()),
            (TAG_VOLUMES.to_owned(), volumes.to_string()),
            (TAG_VERSION.to_owned(), self.version.clone()),
            (
                "Name".to_owned(),
                format!("{} {} {}", self.set, self.member, self.group),
            ),
        ];
        if let Some(optime) = self.optime {
            tags.push((TAG_OPTIME.to_owned(), optime.to_string()));
        }
        if let Some(wall) = self.optime_millis.and_then(rfc3339_millis) {
            tags.push((TAG_OPTIME_WALL.to_owned(), wall));
        }
        tags
    }
}

/// Milliseconds since the epoch as RFC 3339.
pub(crate) fn rfc3339_millis(millis: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A snapshot's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotState {
    /// Being copied; its point in time is already fixed.
    Pending,
    /// Done and usable.
    Completed,
    /// Failed: unusable.
    Error,
}

impl fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Error => "error",
        })
    }
}

/// One snapshot (of one volume) as a store lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The store's id (`snap-…` for EBS, the directory name otherwise).
    pub id: String,
    /// What was snapshotted (a volume id, a directory).
    pub source: String,
    /// When it was taken.
    pub created: OffsetDateTime,
    /// Its progress.
    pub state: SnapshotState,
    /// Its tags, parsed.
    pub labels: Labels,
    /// How many snapshots its group has.
    pub volumes: usize,
}

impl Snapshot {
    /// Reads a snapshot's labels from its tags; `None` unless this tool
    /// made it (the [`TAG_TOOL`] tag) with a set, a member and a group.
    pub fn labels_from_tags<'a>(
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<(Labels, usize)> {
        let tags: BTreeMap<&str, &str> = tags.into_iter().collect();
        if tags.get(TAG_TOOL) != Some(&TOOL) {
            return None;
        }
        let labels = Labels {
            group: (*tags.get(TAG_GROUP)?).to_owned(),
            set: (*tags.get(TAG_SET)?).to_owned(),
            member: (*tags.get(TAG_MEMBER)?).to_owned(),
            optime: tags.get(TAG_OPTIME).and_then(|t| OpTime::parse(t)),
            optime_millis: tags
                .get(TAG_OPTIME_WALL)
                .and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })
                .map(|at| (at.unix_timestamp_nanos() / 1_000_000) as i64),
            version: tags
                .get(TAG_VERSION)
                .copied()
                .unwrap_or_default()
                .to_owned(),
        };
        let volumes = tags
            .get(TAG_VOLUMES)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        Some((labels, volumes))
    }
}

/// One run's snapshots (a group), oldest snapshot's time first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The run's id.
    pub id: String,
    /// When its first snapshot was taken.
    pub created: OffsetDateTime,
    /// Its snapshots.
    pub snapshots: Vec<Snapshot>,
}

impl Group {
    /// Every volume's snapshot is there and completed: restorable.
    pub fn is_complete(&self) -> bool {
        self.snapshots
            .iter()
            .all(|s| s.state == SnapshotState::Completed)
            && self
                .snapshots
                .first()
                .is_some_and(|s| self.snapshots.len() >= s.volumes)
    }

    /// Still being taken.
    pub fn is_pending(&self) -> bool {
        self.snapshots
            .iter()
            .any(|s| s.state == SnapshotState::Pending)
    }

    /// The labels of its first snapshot.
    pub fn labels(&self) -> Option<&Labels> {
        self.snapshots.first().map(|s| &s.labels)
    }
}

/// Groups `snapshots` of `set` by run, newest first. Snapshots of other
/// sets are left out.
pub fn groups(snapshots: &[Snapshot], set: &str) -> Vec<Group> {
    let mut by_id: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for snapshot in snapshots.iter().filter(|s| s.labels.set == set) {
        by_id
            .entry(snapshot.labels.group.as_str())
            .or_default()
            .push(snapshot);
    }
    let mut groups: Vec<Group> = by_id
        .into_iter()
        .filter_map(|(id, members)| {
            let created = members.iter().map(|s| s.created).min()?;
            Some(Group {
                id: id.to_owned(),
                created,
                snapshots: members.into_iter().cloned().collect(),
            })
        })
        .collect();
    groups.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    groups
}

/// How many snapshots to keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest N complete runs.
    pub keep_last: Option<u32>,
    /// Keep every run younger than this many days.
    pub keep_days: Option<u32>,
}

impl Retention {
    /// Whether any limit is set (without one, nothing is ever deleted).
    pub fn is_set(&self) -> bool {
        self.keep_last.is_some() || self.keep_days.is_some()
    }
}

/// The runs of `set` that `retention` lets go, as of `now`: a run is kept
/// when it is among the newest `keep_last` complete ones *or* younger than
/// `keep_days` (either reason keeps it); runs still pending are always
/// kept, and so is the newest complete run, whatever the limits say.
/// Failed runs older than the newest complete one go. Without a limit,
/// nothing goes. Only snapshots of `set` are considered.
pub fn expired(
    snapshots: &[Snapshot],
    set: &str,
    retention: &Retention,
    now: OffsetDateTime,
) -> Vec<Group> {
    if !retention.is_set() {
        return Vec::new();
    }
    let groups = groups(snapshots, set);
    let newest_complete = groups.iter().position(Group::is_complete);
    let mut complete_seen = 0_u32;
    let mut out = Vec::new();
    for (index, group) in groups.into_iter().enumerate() {
        let complete = group.is_complete();
        if complete {
            complete_seen += 1;
        }
        let young = retention
            .keep_days
            .is_some_and(|days| now - group.created < time::Duration::days(i64::from(days)));
        let among_last = complete && retention.keep_last.is_some_and(|n| complete_seen <= n);
        let keep = group.is_pending()
            || Some(index) == newest_complete
            || young
            || among_last
            || (!complete && newest_complete.is_none_or(|newest| index < newest));
        if !keep {
            out.push(group);
        }
    }
    out
}

#[cfg(test)]
mod tests;
