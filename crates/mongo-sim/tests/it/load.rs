//! Failover under write load (issue #17): four writers doing `w: majority`
//! batches for a minute on a healthy three-member set — the primary and the
//! term must not change — then `kill -9` of the primary: a new primary
//! within 15 s that stays primary, every acknowledged write found exactly
//! once, and no duplicate-key error seen by the writers (a batch the
//! failover cut is retried by the driver with the same `lsid` +
//! `txnNumber`, and the server must not run what it already ran). Once with
//! the Rust driver, once with pymongo, whose retry logic is independent of
//! ours. Timings follow mongod's: `electionTimeoutMillis` 2000 with the
//! default 2000 ms heartbeat interval, the edge where a member that does not
//! count replication traffic as a sign of life sees the primary vanish.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{Document, doc};
use ha_lab::MongoMember;
use mongodb::Client;
use mongodb::options::{Acknowledgment, ClientOptions, ServerAddress, WriteConcern};

use crate::{admin, direct, hello, plain_options, tools, wait_for};

/// How long the healthy set is loaded before the primary is killed.
const HEALTHY: Duration = Duration::from_secs(60);
/// How long the new primary is watched after it is elected.
const SETTLED: Duration = Duration::from_secs(10);
/// The deadline for a new primary after the kill.
const NEW_PRIMARY: Duration = Duration::from_secs(15);
/// Writers, and the documents in each of their batches.
const WRITERS: usize = 4;
const BATCH: usize = 50;

/// Starts three plain members as set `name` and returns them once one of
/// them is primary.
async fn start_set(name: &str) -> Vec<MongoMember> {
    let members: Vec<MongoMember> = (0..3)
        .map(|_| MongoMember::start(&tools(), plain_options(Some(name))).unwrap())
        .collect();
    let first = direct(&members[0], None, None).await;
    let config = doc! {
        "_id": name,
        "members": members.iter().enumerate().map(|(i, m)| doc! {"_id": i as i32, "host": m.host()}).collect::<Vec<Document>>(),
        "settings": {"electionTimeoutMillis": 2000},
    };
    admin(&first, doc! {"replSetInitiate": config})
        .await
        .unwrap();
    let clients = member_clients(&members).await;
    wait_for("the first primary", Duration::from_secs(60), || async {
        primary(&clients).await.is_some()
    })
    .await;
    members
}

async fn member_clients(members: &[MongoMember]) -> Vec<Client> {
    let mut clients = Vec::new();
    for member in members {
        clients.push(direct(member, None, None).await);
    }
    clients
}

/// The member that says it is a writable primary, as `(index, term)`.
async fn primary(clients: &[Client]) -> Option<(usize, i64)> {
    for (i, client) in clients.iter().enumerate() {
        let Some(reply) = hello(client).await else {
            continue;
        };
        if reply.get_bool("isWritablePrimary") == Ok(true) {
            let status = admin(client, doc! {"replSetGetStatus": 1}).await.ok()?;
            return Some((i, status.get_i64("term").ok()?));
        }
    }
    None
}

/// Watches the set for `how_long` and returns every primary seen, in order
/// (`None` for a moment without one).
async fn watch(clients: &[Client], how_long: Duration) -> Vec<Option<(usize, i64)>> {
    let mut seen: Vec<Option<(usize, i64)>> = Vec::new();
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        let now = primary(clients).await;
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen
}

#[derive(Default)]
struct Outcome {
    acknowledged: Vec<String>,
    errors: Vec<String>,
    duplicate_keys: usize,
}

#[tokio::test(flavor = "multi_thread")]
async fn four_writers_keep_the_primary_and_a_killed_primary_is_replaced_without_lost_or_repeated_writes()
 {
    let mut members = start_set("load").await;
    let clients = member_clients(&members).await;
    let options = ClientOptions::builder()
        .hosts(
            members
                .iter()
                .map(|m| ServerAddress::Tcp {
                    host: "localhost".to_owned(),
                    port: Some(m.port()),
                })
                .collect::<Vec<_>>(),
        )
        .repl_set_name("load".to_owned())
        .server_selection_timeout(Duration::from_secs(30))
        .build();
    let set = Client::with_options(options).unwrap();
    let majority = WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .w_timeout(Duration::from_secs(30))
        .build();
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let coll = set.database("load").collection::<Document>("docs");
        let (outcome, stop, majority) = (outcome.clone(), stop.clone(), majority.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ids: Vec<String> = (n..n + BATCH).map(|i| format!("{w}-{i}")).collect();
                n += BATCH;
                let docs = ids.iter().map(|id| doc! {"_id": id, "writer": w as i32});
                let result = coll.insert_many(docs).write_concern(majority.clone()).await;
                {
                    let mut outcome = outcome.lock().unwrap();
                    match result {
                        Ok(_) => outcome.acknowledged.extend(ids),
                        Err(e) => {
                            let text = e.to_string();
                            if text.contains("E11000") || text.contains("11000") {
                                outcome.duplicate_keys += 1;
                            }
                            outcome.errors.push(text.chars().take(300).collect());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let first = primary(&clients).await.expect("a primary before the load");
    let healthy = watch(&clients, HEALTHY).await;
    assert_eq!(
        healthy,
        vec![Some(first)],
        "the primary or its term changed under write load alone"
    );

    members[first.0].kill();
    let killed = Instant::now();
    let survivors: Vec<Client> = clients
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != first.0)
        .map(|(_, c)| c.clone())
        .collect();
    wait_for("a new primary after the kill", NEW_PRIMARY, || async {
        primary(&survivors).await.is_some()
    })
    .await;
    let elected_after = killed.elapsed();
    let new = primary(&survivors).await.expect("the new primary");
    let after = watch(&survivors, SETTLED).await;
    assert_eq!(
        after,
        vec![Some(new)],
        "the new primary (elected {elected_after:?} after the kill) did not stay primary"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let outcome = std::mem::take(&mut *outcome.lock().unwrap());
    assert_eq!(
        outcome.duplicate_keys, 0,
        "a retried batch hit documents its first attempt wrote: {:?}",
        outcome.errors
    );
    // The driver retries once; a batch may still fail if the retry found
    // no primary yet, but never more than once per writer.
    assert!(
        outcome.errors.len() <= WRITERS,
        "writes failed: {:?}",
        outcome.errors
    );
    let stored: Vec<Document> = {
        use futures_util::TryStreamExt as _;
        let coll = set.database("load").collection::<Document>("docs");
        coll.find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    let stored_ids: BTreeSet<String> = stored
        .iter()
        .map(|d| d.get_str("_id").unwrap().to_owned())
        .collect();
    assert_eq!(stored_ids.len(), stored.len(), "a document is stored twice");
    let missing: Vec<&String> = outcome
        .acknowledged
        .iter()
        .filter(|id| !stored_ids.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing after the failover, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        outcome.acknowledged.len() > 1000,
        "too few writes to mean anything: {}",
        outcome.acknowledged.len()
    );
}

const PYMONGO_WRITERS: &str = r#"
import json, sys, threading, time
import pymongo
from pymongo.errors import PyMongoError
ports = [int(p) for p in sys.argv[1].split(",")]
healthy, settled, new_primary = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
writers, batch = int(sys.argv[5]), int(sys.argv[6])
hosts = ",".join(f"localhost:{p}" for p in ports)
rs = pymongo.MongoClient(f"mongodb://{hosts}/?replicaSet=pyload", serverSelectionTimeoutMS=30000)
members = [pymongo.MongoClient(f"mongodb://localhost:{p}/?directConnection=true", serverSelectionTimeoutMS=1000)
           for p in ports]

def primary(indexes):
    for i in indexes:
        try:
            if members[i].admin.command("hello").get("isWritablePrimary"):
                return [i, members[i].admin.command("replSetGetStatus")["term"]]
        except PyMongoError:
            pass
    return None

def watch(indexes, seconds):
    seen, until = [], time.time() + seconds
    while time.time() < until:
        now = primary(indexes)
        if not seen or seen[-1] != now:
            seen.append(now)
        time.sleep(0.25)
    return seen

stop, acked, errors, dups, lock = False, [], [], 0, threading.Lock()
def writer(w):
    global dups
    coll = rs.load.get_collection("docs", write_concern=pymongo.WriteConcern(w="majority", wtimeout=30000))
    n = 0
    while not stop:
        ids = [f"{w}-{i}" for i in range(n, n + batch)]
        n += batch
        try:
            coll.insert_many([{"_id": i, "writer": w} for i in ids])
            with lock:
                acked.extend(ids)
        except PyMongoError as e:
            with lock:
                errors.append(str(e)[:300])
                if "E11000" in str(e):
                    dups += 1
        time.sleep(0.02)

first = primary(range(3))
threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
for t in threads:
    t.start()
before = watch(range(3), healthy)
print(json.dumps({"kill": first[0]}), flush=True)
assert sys.stdin.readline().strip() == "killed"
killed = time.time()
survivors = [i for i in range(3) if i != first[0]]
while primary(survivors) is None and time.time() - killed < new_primary:
    time.sleep(0.1)
elected_after = time.time() - killed
after = watch(survivors, settled)
stop = True
for t in threads:
    t.join()
stored = [d["_id"] for d in rs.load.docs.find({}, {"_id": 1})]
print(json.dumps({"first": first, "before": before, "elected_after": elected_after, "after": after,
                  "acked": len(acked), "missing": len(set(acked) - set(stored)),
                  "stored": len(stored), "distinct": len(set(stored)), "errors": errors, "dups": dups}), flush=True)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_same_with_pymongo_as_the_writer() {
    let mut members = start_set("pyload").await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("writers.py");
    std::fs::write(&script, PYMONGO_WRITERS).unwrap();
    let ports: Vec<String> = members.iter().map(|m| m.port().to_string()).collect();
    let mut child = std::process::Command::new(tools().python().unwrap())
        .arg(&script)
        .arg(ports.join(","))
        .arg(HEALTHY.as_secs().to_string())
        .arg(SETTLED.as_secs().to_string())
        .arg(NEW_PRIMARY.as_secs().to_string())
        .arg(WRITERS.to_string())
        .arg(BATCH.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut lines, kill_line) = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        (lines, line)
    })
    .await
    .unwrap();
    let kill: serde_json::Value =
        serde_json::from_str(&kill_line.expect("the script's kill request").unwrap()).unwrap();
    let victim = kill["kill"].as_u64().expect("which member to kill") as usize;
    members[victim].kill();
    writeln!(stdin, "killed").unwrap();
    let result = tokio::task::spawn_blocking(move || lines.next())
        .await
        .unwrap()
        .expect("the script's result")
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the pymongo script failed: {result}");
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(
        result["before"],
        serde_json::json!([result["first"]]),
        "the primary or its term changed under pymongo's write load alone: {result}"
    );
    assert!(
        result["elected_after"].as_f64().unwrap() < NEW_PRIMARY.as_secs_f64(),
        "no new primary within {NEW_PRIMARY:?}: {result}"
    );
    let after = result["after"].as_array().unwrap();
    assert!(
        after.len() == 1 && !after[0].is_null(),
        "the new primary did not stay primary: {result}"
    );
    assert_eq!(
        result["dups"], 0,
        "pymongo's retry hit a duplicate key: {result}"
    );
    assert_eq!(
        result["missing"], 0,
        "acknowledged writes are missing: {result}"
    );
    assert_eq!(result["stored"], result["distinct"], "{result}");
    assert!(
        result["errors"].as_array().unwrap().len() <= WRITERS,
        "writes failed: {result}"
    );
    assert!(result["acked"].as_u64().unwrap() > 1000, "{result}");
}

/// "election succeeded" lines in every member's log (mongod writes
/// "Election succeeded, assuming primary role" too).
fn elections_won(members: &[MongoMember]) -> usize {
    members
        .iter()
        .map(|m| {
            std::fs::read_to_string(m.log_file())
                .unwrap_or_default()
                .to_lowercase()
                .matches("election succeeded")
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_members_restarted_together_elect_one_primary_that_stays() {
    let mut members = start_set("restart2").await;
    let clients = member_clients(&members).await;
    let (first, _) = primary(&clients).await.expect("a primary");
    // Every member holds every entry (w: 3): none of the restarted ones is
    // ahead of the others, so one election is all it takes (a member with
    // entries the others lack would rightly stand again and win).
    clients[first]
        .database("restart2")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .write_concern(WriteConcern::builder().w(Acknowledgment::Nodes(3)).build())
        .await
        .unwrap();
    let other = (0..3).find(|i| *i != first).unwrap();
    members[first].kill();
    members[other].kill();
    let survivor = (0..3).find(|i| *i != first && *i != other).unwrap();
    let lone = vec![clients[survivor].clone()];
    wait_for(
        "the lone survivor to step down",
        Duration::from_secs(30),
        || async { primary(&lone).await.is_none() },
    )
    .await;
    let before = elections_won(&members);
    members[first].restart().unwrap();
    members[other].restart().unwrap();
    let clients = member_clients(&members).await;
    wait_for("a primary after the restart", NEW_PRIMARY, || async {
        primary(&clients).await.is_some()
    })
    .await;
    let elected = primary(&clients).await.expect("the new primary");
    let seen = watch(&clients, Duration::from_secs(6)).await;
    assert_eq!(seen, vec![Some(elected)], "the new primary did not stay");
    // Both restarted members time out together; the one that voted for
    // the other must give it an election timeout to take office (mongod
    // resets its election timer when it grants a vote), not depose it.
    assert_eq!(
        elections_won(&members) - before,
        1,
        "more than one election was won after the restart"
    );
}

/// Retryable writes seen through mongosh, the shell operators use (its own
/// driver, independent of ours and pymongo's): a batch sent again with the
/// same `lsid` + `txnNumber` — on the new primary, after a step-down — is
/// answered as done and not run twice; an older `txnNumber` is refused.
///
/// The batches go through an explicit session: mongosh's driver replaces
/// any `lsid` a command carries with its session's id, and an implicit
/// session is taken from a pool per command and thrown away after a network
/// error — so a retry could leave under a new `lsid` and rightly be run
/// again (this test failed 1 of 2 runs so: `again: 0`, one duplicate-key
/// error).
const MONGOSH_RETRY: &str = r#"
const session = db.getMongo().startSession({causalConsistency: false});
const r = session.getDatabase("retry");
const cmd = (docs, txn) => r.runCommand({insert: "c", documents: docs,
                                         txnNumber: NumberLong(String(txn)), writeConcern: {w: "majority"}});
const first = cmd([{_id: 1}, {_id: 2}], 1);
const before = db.hello().me;
try { db.adminCommand({replSetStepDown: 30, secondaryCatchUpPeriodSecs: 20}); } catch (e) {}
let t = Date.now();
while (true) {
  try { if (db.hello().isWritablePrimary && db.hello().me !== before) break; } catch (e) {}
  if (Date.now() - t > 30000) throw new Error("no new primary");
  sleep(200);
}
const again = cmd([{_id: 1}, {_id: 2}], 1);
const next = cmd([{_id: 3}], 2);
let old;
try { old = cmd([{_id: 4}], 1).code; } catch (e) { old = e.codeName; }
const plain = r.runCommand({insert: "c", documents: [{_id: 1}]});
print(JSON.stringify({first: first.n, again: again.n, againErrors: (again.writeErrors || []).length,
                      next: next.n, old: old, plain: plain.writeErrors ? plain.writeErrors[0].code : 0,
                      moved: db.hello().me !== before, count: r.c.countDocuments({})}));
"#;

#[tokio::test(flavor = "multi_thread")]
async fn mongosh_sees_a_retried_batch_answered_once_on_the_new_primary() {
    let members = start_set("shretry").await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("retry.js");
    std::fs::write(&script, MONGOSH_RETRY).unwrap();
    let hosts: Vec<String> = members.iter().map(MongoMember::host).collect();
    let output = std::process::Command::new(tools().mongosh().unwrap_or_else(|e| panic!("{e}")))
        .args(["--quiet", "--norc"])
        .arg(format!(
            "mongodb://{}/?replicaSet=shretry&retryWrites=false",
            hosts.join(",")
        ))
        .arg("--file")
        .arg(&script)
        .env("DO_NOT_TRACK", "1")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mongosh failed: {stdout}\n{stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    let result: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(
        result,
        serde_json::json!({
            "first": 2, "again": 2, "againErrors": 0, "next": 1, "old": "TransactionTooOld",
            "plain": 11000, "moved": true, "count": 3
        }),
        "{stderr}"
    );
}

/// A member that rolls back ends the oplog cursors opened on it before the
/// rollback: what follows their position is another history (mongod's
/// tailing readers die with `CappedPositionLost` when the capped oplog is
/// truncated under them, and its oplog fetcher checks the source's rollback
/// id). A member tailing a former primary that rolls back must look for its
/// common point again — carrying on would apply the new history on top of
/// the old one (the E11000 loop #17's restore test once met).
#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_rolls_back_ends_the_oplog_cursors_opened_on_it() {
    let mut members = start_set("rbcursor").await;
    let clients = member_clients(&members).await;
    let (old, _) = primary(&clients).await.expect("a primary");
    // The other two go: what the primary writes now reaches no one.
    for i in (0..3).filter(|i| *i != old) {
        members[i].kill();
    }
    let lonely = clients[old]
        .database("rbcursor")
        .collection::<Document>("c");
    lonely
        .insert_many((0..5).map(|i| doc! {"_id": i}))
        .write_concern(WriteConcern::builder().w(Acknowledgment::Nodes(1)).build())
        .await
        .expect("a w: 1 write to the primary before it notices it is alone");
    let alone = vec![clients[old].clone()];
    wait_for(
        "the lone primary to step down",
        Duration::from_secs(30),
        || async { primary(&alone).await.is_none() },
    )
    .await;
    // It must not stand again (it is ahead of the others and would win).
    admin(&clients[old], doc! {"replSetFreeze": 600})
        .await
        .unwrap();
    let local = clients[old].database("local");
    let opened = local
        .run_command(doc! {
            "find": "oplog.rs",
            "filter": {"ts": {"$gte": bson::Timestamp { time: 0, increment: 0 }}},
            "tailable": true,
            "awaitData": true,
            "batchSize": 1,
        })
        .await
        .unwrap();
    let cursor = opened
        .get_document("cursor")
        .unwrap()
        .get_i64("id")
        .unwrap();
    assert_ne!(cursor, 0, "{opened}");

    for i in (0..3).filter(|i| *i != old) {
        members[i].restart().unwrap();
    }
    // The others elect one of them; the old primary then finds its last
    // entries missing there and rolls them back.
    let deadline = Instant::now() + Duration::from_secs(90);
    let code = loop {
        let reply = local
            .run_command(doc! {"getMore": cursor, "collection": "oplog.rs", "maxTimeMS": 500_i64})
            .await;
        match reply {
            Ok(_) if Instant::now() < deadline => continue,
            Ok(reply) => panic!("the cursor outlived the rollback: {reply}"),
            Err(e) => match *e.kind {
                mongodb::error::ErrorKind::Command(ref c) => break (c.code, c.code_name.clone()),
                _ => panic!("getMore failed otherwise: {e}"),
            },
        }
    };
    assert_eq!(code, (136, "CappedPositionLost".to_owned()));
    wait_for(
        "the rolled-back documents to be gone",
        Duration::from_secs(30),
        || async { lonely.count_documents(doc! {}).await.ok() == Some(0) },
    )
    .await;
    assert!(
        std::fs::read_to_string(members[old].log_file())
            .unwrap_or_default()
            .contains("rolled back"),
        "the old primary did not roll back"
    );
}
