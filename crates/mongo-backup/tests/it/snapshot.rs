//! Whole runs against the lab set: a snapshot under `w: "majority"`
//! writes and its restore drill; refusals that touch nothing; failures
//! after the stop that still restart the member.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bson::{Bson, Document, Timestamp, doc};
use ha_lab::{MongoMember, MongoMemberOptions};
use mongo_backup::guard::Refusal;
use mongo_backup::run::snapshot;
use mongo_backup::{Cancel, DirectoryStore, Error, Restart, SnapshotStore as _, lock};
use mongo_rs_setup::Session;

use crate::{Lab, LabProcess, progress, tools};

const ALL_UP: [&str; 3] = ["PRIMARY", "SECONDARY", "SECONDARY"];

/// Inserts `{_id: n}` one at a time with `w: "majority"` until told to
/// stop; returns each acknowledged id with its `operationTime`, and every
/// error.
async fn writer(
    client: mongodb::Client,
    stop: Arc<AtomicBool>,
) -> (Vec<(i64, Timestamp)>, Vec<String>) {
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    let mut n = 0_i64;
    while !stop.load(Ordering::SeqCst) {
        let reply = client
            .database("circle_ghe")
            .run_command(doc! {
                "insert": "probe",
                "documents": [{"_id": n}],
                "writeConcern": {"w": "majority", "wtimeout": 30_000},
            })
            .await;
        match reply {
            Ok(reply)
                if !reply.contains_key("writeErrors")
                    && !reply.contains_key("writeConcernError") =>
            {
                acked.push((n, reply.get_timestamp("operationTime").unwrap()));
            }
            Ok(reply) => errors.push(format!("{n}: {reply}")),
            Err(e) => errors.push(format!("{n}: {e}")),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (acked, errors)
}

/// The `_id`s of `circle_ghe.probe`, sorted.
async fn probe_ids(client: &mongodb::Client) -> Vec<i64> {
    use futures_util::TryStreamExt as _;
    let docs: Vec<Document> = client
        .database("circle_ghe")
        .collection::<Document>("probe")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut ids: Vec<i64> = docs.iter().filter_map(|d| d.get_i64("_id").ok()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secondary_is_stopped_snapshotted_and_restarted_while_majority_writes_go_on() {
    let lab = Lab::start("bk_run").await;
    let i = lab.secondary_index().await;
    let spec = lab.backup_spec(i);
    let root = tempfile::tempdir().unwrap();
    let store = DirectoryStore {
        source: lab.members[i].lock().unwrap().dbpath(),
        root: root.path().join("snapshots"),
    };
    let session = Session::new(&lab.spec);

    // The plan first: nothing touched.
    let planned = snapshot(
        &session,
        &spec,
        &mut LabProcess(lab.members[i].clone()),
        &store,
        true,
        &Cancel::never(),
        &progress,
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = planned.steps.iter().map(ha_plan::Change::kind).collect();
    assert_eq!(
        kinds,
        [
            "lock",
            "stop-member",
            "snapshot",
            "start-member",
            "wait-caught-up",
            "unlock"
        ]
    );
    assert!(store.list("bk_run").await.unwrap().is_empty());

    let stop = Arc::new(AtomicBool::new(false));
    let writes = tokio::spawn(writer(lab.set_client(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = snapshot(
        &session,
        &spec,
        &mut LabProcess(lab.members[i].clone()),
        &store,
        false,
        &Cancel::never(),
        &progress,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, errors) = writes.await.unwrap();

    let kinds: Vec<&str> = outcome.steps.iter().map(ha_plan::Change::kind).collect();
    assert_eq!(
        kinds,
        [
            "lock",
            "stop-member",
            "snapshot",
            "start-member",
            "wait-caught-up",
            "unlock"
        ]
    );
    assert!(
        errors.is_empty(),
        "majority writes failed during the backup: {errors:?}"
    );
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    assert_eq!(lab.settle(&ALL_UP).await, ALL_UP);

    // No acknowledged write is lost.
    let on_set = probe_ids(&lab.set_client()).await;
    for (id, _) in &acked {
        assert!(
            on_set.binary_search(id).is_ok(),
            "acknowledged write {id} lost"
        );
    }

    // The snapshot is listed with the member's optime, and the lock is free.
    let listed = store.list("bk_run").await.unwrap();
    assert_eq!(listed.len(), 1);
    let tagged = listed[0].labels.optime.expect("optime tag");
    assert_eq!(listed[0].labels.member, spec.member);
    let primary = lab.host(lab_primary(&lab).await);
    let lease = lock::acquire(
        &session,
        &primary,
        "bk_run",
        "test",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    lock::release(&session, &primary, &lease).await.unwrap();

    // Restore drill: a mongod started on the snapshot holds a prefix of
    // the writes with everything up to the tagged optime.
    let data = store.data_dir(&outcome.group).unwrap();
    let restored =
        MongoMember::start_with_data(&tools(), MongoMemberOptions::default(), &data).unwrap();
    let plain = mongodb::Client::with_uri_str(format!(
        "mongodb://localhost:{}/?directConnection=true",
        restored.port()
    ))
    .await
    .unwrap();
    let in_snapshot = probe_ids(&plain).await;
    assert!(!in_snapshot.is_empty());
    assert_eq!(
        in_snapshot,
        (0..in_snapshot.len() as i64).collect::<Vec<_>>(),
        "the snapshot is not a prefix of the writes"
    );
    let up_to_tag: Vec<i64> = acked
        .iter()
        .filter(|(_, at)| (at.time, at.increment) <= (tagged.secs, tagged.inc))
        .map(|(id, _)| *id)
        .collect();
    assert!(!up_to_tag.is_empty());
    for id in &up_to_tag {
        assert!(
            in_snapshot.binary_search(id).is_ok(),
            "write {id} (before the tagged optime) missing from the snapshot"
        );
    }
}

async fn lab_primary(lab: &Lab) -> usize {
    let session = Session::new(&lab.spec);
    loop {
        for i in 0..3 {
            if session.hello(&lab.host(i)).await.is_ok_and(|h| h.primary) {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn refusals(res: Result<mongo_backup::Outcome, Error>) -> Vec<Refusal> {
    match res {
        Err(Error::Refused(refusals)) => refusals,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_touch_nothing_on_the_primary_under_another_lock_and_with_a_member_down() {
    let lab = Lab::start("bk_refuse").await;
    let session = Session::new(&lab.spec);
    let root = tempfile::tempdir().unwrap();
    let p = lab_primary(&lab).await;
    let s = lab.secondary_index().await;
    let store = |i: usize| DirectoryStore {
        source: lab.members[i].lock().unwrap().dbpath(),
        root: root.path().to_owned(),
    };

    // On the primary.
    let res = snapshot(
        &session,
        &lab.backup_spec(p),
        &mut LabProcess(lab.members[p].clone()),
        &store(p),
        false,
        &Cancel::never(),
        &progress,
    )
    .await;
    assert!(refusals(res).contains(&Refusal::IsPrimary {
        member: lab.host(p)
    }));

    // While another run holds the lock.
    let primary = lab.host(p);
    let lease = lock::acquire(
        &session,
        &primary,
        "bk_refuse",
        "mongo-9:27017 (pid 1)",
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    let res = snapshot(
        &session,
        &lab.backup_spec(s),
        &mut LabProcess(lab.members[s].clone()),
        &store(s),
        false,
        &Cancel::never(),
        &progress,
    )
    .await;
    assert!(
        matches!(refusals(res).as_slice(), [Refusal::Locked { holder, .. }] if holder.starts_with("mongo-9"))
    );
    lock::release(&session, &primary, &lease).await.unwrap();

    // One ha.toml shared by the hosts: the primary's host runs the timer
    // guarding the secondary. Its stop command would stop the primary's
    // mongod; the local mongod says it is the primary, so nothing stops.
    let mut shared = lab.backup_spec(s);
    shared.local_port = Some(lab.members[p].lock().unwrap().port());
    let res = snapshot(
        &session,
        &shared,
        &mut LabProcess(lab.members[p].clone()),
        &store(s),
        false,
        &Cancel::never(),
        &progress,
    )
    .await;
    assert_eq!(
        refusals(res),
        [Refusal::NotThisMachine {
            member: lab.host(s),
            local: Some(lab.host(p)),
            address: format!("127.0.0.1:{}", lab.members[p].lock().unwrap().port()),
        }]
    );
    assert!(session.hello(&lab.host(p)).await.unwrap().primary);
    // A host where no mongod answers on the port cannot be the member.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    shared.local_port = Some(free);
    let found = refusals(
        snapshot(
            &session,
            &shared,
            &mut LabProcess(lab.members[p].clone()),
            &store(s),
            false,
            &Cancel::never(),
            &progress,
        )
        .await,
    );
    assert!(
        matches!(
            found.as_slice(),
            [Refusal::NotThisMachine { local: None, .. }]
        ),
        "{found:?}"
    );
    // No member named: the run takes the local mongod's own name (here
    // the primary's, which the guards then refuse to stop).
    let mut unnamed = lab.backup_spec(p);
    unnamed.member = String::new();
    let found = refusals(
        snapshot(
            &session,
            &unnamed,
            &mut LabProcess(lab.members[p].clone()),
            &store(p),
            false,
            &Cancel::never(),
            &progress,
        )
        .await,
    );
    assert!(
        found.contains(&Refusal::IsPrimary {
            member: lab.host(p)
        }),
        "{found:?}"
    );

    // With the other secondary down.
    let other = (0..3).find(|i| *i != p && *i != s).unwrap();
    lab.members[other].lock().unwrap().stop();
    let seen_down = lab
        .settle(&["(not reachable/healthy)", "PRIMARY", "SECONDARY"])
        .await;
    assert_eq!(
        seen_down,
        ["(not reachable/healthy)", "PRIMARY", "SECONDARY"]
    );
    let res = snapshot(
        &session,
        &lab.backup_spec(s),
        &mut LabProcess(lab.members[s].clone()),
        &store(s),
        false,
        &Cancel::never(),
        &progress,
    )
    .await;
    let found = refusals(res);
    assert!(
        found.iter().any(
            |r| matches!(r, Refusal::OtherMemberDown { member, .. } if *member == lab.host(other))
        ),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|r| matches!(r, Refusal::NoWriteMajority { .. })),
        "{found:?}"
    );

    // Nothing was touched: no snapshot, the secondary never stopped.
    assert!(std::fs::read_dir(root.path()).unwrap().next().is_none());
    assert!(session.hello(&lab.host(s)).await.unwrap().secondary);
    lab.members[other].lock().unwrap().restart().unwrap();
    assert_eq!(lab.settle(&ALL_UP).await, ALL_UP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_snapshot_or_an_interruption_after_the_stop_still_restarts_the_member() {
    let lab = Lab::start("bk_fail").await;
    let session = Session::new(&lab.spec);
    let root = tempfile::tempdir().unwrap();
    let s = lab.secondary_index().await;
    let spec = lab.backup_spec(s);

    // The snapshot call fails (its source is gone).
    let broken = DirectoryStore {
        source: root.path().join("no-such-dbpath"),
        root: root.path().join("snapshots"),
    };
    let res = snapshot(
        &session,
        &spec,
        &mut LabProcess(lab.members[s].clone()),
        &broken,
        false,
        &Cancel::never(),
        &progress,
    )
    .await;
    match res {
        Err(Error::AfterStop {
            stage: "snapshot",
            restart: Restart::CaughtUp,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(session.hello(&lab.host(s)).await.unwrap().secondary);

    // Interrupted (as SIGTERM does through the binary) once the member has
    // stopped: started again, lock released (the next run may take it).
    let store = DirectoryStore {
        source: lab.members[s].lock().unwrap().dbpath(),
        root: root.path().join("snapshots"),
    };
    let (handle, cancel) = Cancel::new();
    let progress_and_signal = move |line: &str| {
        progress(line);
        if line.contains("has stopped") {
            handle.cancel();
        }
    };
    let res = snapshot(
        &session,
        &spec,
        &mut LabProcess(lab.members[s].clone()),
        &store,
        false,
        &cancel,
        &progress_and_signal,
    )
    .await;
    match res {
        Err(Error::Interrupted {
            restart: Restart::CaughtUp,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.settle(&ALL_UP).await, ALL_UP);
    let primary = lab.host(lab_primary(&lab).await);
    let lease = lock::acquire(
        &session,
        &primary,
        "bk_fail",
        "test",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    lock::release(&session, &primary, &lease).await.unwrap();
    let _ = Bson::Null;
}

/// An operator's snapshot command (as an LVM or ZFS wrapper would be):
/// copies the dbPath, keeps the tags it was given, lists and deletes.
const HOOK: &str = r#"#!/bin/sh
set -eu
root="$HOOK_ROOT"
case "$1" in
create)
  id="snap-$(date +%s%N)"
  mkdir -p "$root/$id"
  cp -R "$HOOK_SOURCE" "$root/$id/data"
  printf '%s' "$CIRCLE_HA_TAGS" > "$root/$id/tags.json"
  date +%s > "$root/$id/created"
  echo "$id"
  ;;
list)
  printf '['
  sep=''
  for dir in "$root"/snap-*; do
    [ -d "$dir" ] || continue
    printf '%s{"id":"%s","created":%s,"state":"completed","tags":%s}' \
      "$sep" "$(basename "$dir")" "$(cat "$dir/created")" "$(cat "$dir/tags.json")"
    sep=','
  done
  printf ']'
  ;;
delete)
  rm -rf "$root/$2"
  ;;
*) echo "unknown: $1" >&2; exit 2 ;;
esac
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_hook_takes_lists_and_prunes_snapshots_with_the_runs_tags() {
    let lab = Lab::start("bk_hook").await;
    let session = Session::new(&lab.spec);
    let s = lab.secondary_index().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("snap.sh");
    std::fs::write(&hook, HOOK).unwrap();
    let root = dir.path().join("snapshots");
    std::fs::create_dir(&root).unwrap();
    // The hook reads its own settings from its environment, as an
    // operator's wrapper script would from its configuration.
    let store = mongo_backup::CommandStore {
        command: vec![
            "env".to_owned(),
            format!("HOOK_ROOT={}", root.display()),
            format!(
                "HOOK_SOURCE={}",
                lab.members[s].lock().unwrap().dbpath().display()
            ),
            "sh".to_owned(),
            hook.display().to_string(),
        ],
        source: "lab dbPath".to_owned(),
        timeout: Duration::from_secs(60),
    };
    let mut spec = lab.backup_spec(s);
    spec.retention = mongo_backup::snapshot::Retention {
        keep_last: Some(1),
        keep_days: None,
    };
    for _ in 0..2 {
        let outcome = snapshot(
            &session,
            &spec,
            &mut LabProcess(lab.members[s].clone()),
            &store,
            false,
            &Cancel::never(),
            &progress,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.snapshots.len(), 1);
        assert!(outcome.snapshots[0].id.starts_with("snap-"));
    }
    // Retention kept the newest run only, in the hook's own storage too.
    let listed = store.list("bk_hook").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    assert!(listed[0].labels.optime.is_some());
    assert_eq!(listed[0].labels.member, spec.member);
    assert!(store.list("another_set").await.unwrap().is_empty());
    assert_eq!(lab.settle(&ALL_UP).await, ALL_UP);
}

/// Retention with an operator's command fails closed: a run the command
/// reports in a state this tool cannot read, or without a creation time,
/// is kept and never counted as complete — it cannot push the good runs
/// out under keep_last.
#[tokio::test]
async fn retention_keeps_good_runs_when_the_command_reports_an_unreadable_one() {
    use mongo_backup::snapshot::{Labels, Retention};
    let dir = tempfile::tempdir().unwrap();
    let entry = |group: &str, created: Option<i64>, state: &str| {
        let labels = Labels {
            group: group.to_owned(),
            set: "bk_fail_closed".to_owned(),
            member: "mongo-2:27017".to_owned(),
            optime: None,
            optime_millis: None,
            version: "test".to_owned(),
        };
        let tags: serde_json::Map<String, serde_json::Value> = labels
            .tags(1)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let mut item = serde_json::json!({"id": format!("snap-{group}"), "source": "lv", "state": state, "tags": tags});
        if let Some(created) = created {
            item["created"] = serde_json::json!(created);
        }
        item
    };
    let listing = serde_json::json!([
        entry("g4", Some(4_000), "half-done"),
        entry("g3", None, "completed"),
        entry("g2", Some(2_000), "completed"),
        entry("g1", Some(1_000), "completed"),
    ]);
    let file = dir.path().join("listing.json");
    std::fs::write(&file, listing.to_string()).unwrap();
    let store = mongo_backup::CommandStore {
        command: vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("cat '{}'", file.display()),
            "hook".to_owned(),
        ],
        source: "lv".to_owned(),
        timeout: Duration::from_secs(30),
    };
    let steps = mongo_backup::run::prune(
        &store,
        "bk_fail_closed",
        &Retention {
            keep_last: Some(1),
            keep_days: None,
        },
        true,
    )
    .await
    .unwrap();
    let deleted: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
    // g2 is the newest complete run and stays; g4 and g3 are unreadable
    // and stay; only g1 goes.
    assert_eq!(deleted, ["delete snapshot snap-g1 (run g1)"], "{deleted:?}");
}
