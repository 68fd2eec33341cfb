use time::OffsetDateTime;

use super::{Labels, Retention, Snapshot, SnapshotState, TAG_SET, expired, groups};

fn snap(
    id: &str,
    set: &str,
    group: &str,
    created: OffsetDateTime,
    state: SnapshotState,
) -> Snapshot {
    Snapshot {
        id: id.to_owned(),
        source: "vol-1".to_owned(),
        created,
        state,
        labels: Labels {
            group: group.to_owned(),
            set: set.to_owned(),
            member: "m2:27017".to_owned(),
            optime: None,
            optime_millis: None,
            version: "0.0.0".to_owned(),
        },
        volumes: 1,
    }
}

fn daily(n: usize, set: &str) -> Vec<Snapshot> {
    let start = at(1793502000);
    (0..n)
        .map(|day| {
            snap(
                &format!("snap-{set}-{day}"),
                set,
                &format!("{set}-g{day:02}"),
                start + time::Duration::days(day as i64),
                SnapshotState::Completed,
            )
        })
        .collect()
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn ids(groups: &[super::Group]) -> Vec<String> {
    groups.iter().map(|g| g.id.clone()).collect()
}

#[test]
fn keep_last_keeps_the_newest_complete_runs_of_this_set_only() {
    let mut all = daily(10, "circle");
    all.extend(daily(10, "other"));
    let now = at(1796040000);
    let retention = Retention {
        keep_last: Some(7),
        keep_days: None,
    };
    let gone = expired(&all, "circle", &retention, now);
    assert_eq!(ids(&gone), ["circle-g02", "circle-g01", "circle-g00"]);
    assert!(
        gone.iter()
            .all(|g| g.snapshots.iter().all(|s| s.labels.set == "circle"))
    );
}

#[test]
fn either_limit_keeps_a_run_and_without_limits_nothing_goes() {
    let all = daily(10, "circle");
    let now = at(1794283200);
    let retention = Retention {
        keep_last: Some(2),
        keep_days: Some(5),
    };
    // The last five days (g05..g09) by age; g08, g09 also by count.
    let gone = expired(&all, "circle", &retention, now);
    assert_eq!(
        ids(&gone),
        [
            "circle-g04",
            "circle-g03",
            "circle-g02",
            "circle-g01",
            "circle-g00"
        ]
    );
    assert!(expired(&all, "circle", &Retention::default(), now).is_empty());
}

#[test]
fn pending_runs_and_the_newest_complete_run_are_never_deleted() {
    let mut all = daily(3, "circle");
    all[2].state = SnapshotState::Pending;
    let now = at(1811808000);
    let retention = Retention {
        keep_last: Some(0),
        keep_days: Some(1),
    };
    let gone = expired(&all, "circle", &retention, now);
    // g02 pending, g01 the newest complete one.
    assert_eq!(ids(&gone), ["circle-g00"]);
}

#[test]
fn failed_runs_older_than_the_newest_complete_one_go_and_do_not_count() {
    let mut all = daily(4, "circle");
    all[1].state = SnapshotState::Error;
    all[3].state = SnapshotState::Error;
    let now = at(1795996800);
    let retention = Retention {
        keep_last: Some(2),
        keep_days: None,
    };
    // g03 failed but is newer than any complete run (kept to be looked at);
    // g02 and g00 are the two complete ones; g01 failed and older.
    let gone = expired(&all, "circle", &retention, now);
    assert_eq!(ids(&gone), ["circle-g01"]);
}

#[test]
fn a_group_missing_a_volume_is_not_complete() {
    let mut all = daily(1, "circle");
    all[0].volumes = 2;
    let groups = groups(&all, "circle");
    assert!(!groups[0].is_complete());
}

#[test]
fn only_snapshots_tagged_by_this_tool_have_labels() {
    let tags = [
        ("circle-ha:tool", "mongo-backup"),
        (TAG_SET, "circle"),
        ("circle-ha:member", "m2:27017"),
        ("circle-ha:group", "g1"),
        ("circle-ha:optime", "10.2/3"),
        ("circle-ha:optime-wall", "2026-11-30T10:00:00Z"),
        ("circle-ha:volumes", "2"),
    ];
    let (labels, volumes) = Snapshot::labels_from_tags(tags).unwrap();
    assert_eq!(labels.optime.unwrap().inc, 2);
    assert_eq!(labels.optime_millis, Some(1_796_032_800_000));
    assert_eq!(volumes, 2);
    assert!(Snapshot::labels_from_tags([(TAG_SET, "circle"), ("circle-ha:group", "g")]).is_none());
    assert!(
        Snapshot::labels_from_tags([("circle-ha:tool", "someone-else"), (TAG_SET, "circle")])
            .is_none()
    );
}

#[test]
fn status_is_unhealthy_when_the_newest_complete_run_is_too_old_or_missing() {
    use crate::report::status_findings;
    let all = daily(3, "circle");
    let groups = groups(&all, "circle");
    let max_age = std::time::Duration::from_secs(26 * 3600);
    // The newest run was taken at 03:00 on day 2.
    let fresh = status_findings(
        "circle",
        &groups,
        max_age,
        at(1_793_502_000 + 2 * 86_400 + 3600),
    );
    assert!(fresh.healthy, "{fresh:?}");
    let stale = status_findings("circle", &groups, max_age, at(1_793_502_000 + 4 * 86_400));
    assert!(!stale.healthy);
    let text = ha_plan::Document::to_text(&stale);
    assert!(text.contains("TOO OLD"), "{text}");
    let none = status_findings("circle", &[], max_age, at(1_793_502_000));
    assert!(!none.healthy);
    assert_eq!(
        serde_json::to_value(&none).unwrap()["newest"],
        serde_json::Value::Null
    );
}
