//! `circle-export restore` into a three-member replica set whose primary is
//! killed mid-load (#17): it waits for the new primary and finishes (exit 0,
//! every document identical to the archive's), through one failover and
//! through two in a row; with the set left without a majority it stops
//! within `--failover-wait` (exit 1, saying so), and a rerun after the
//! members return finishes without `--drop`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bson::{Document, doc};
use ha_lab::{MongoMember, MongoMemberOptions, Toolbox};
use mongodb::Client;
use mongodb::options::{ClientOptions, ServerAddress};

fn tools() -> Toolbox {
    Toolbox::discover(std::env::vars_os())
}

fn client(ports: &[u16], set: Option<&str>) -> Client {
    let options = ClientOptions::builder()
        .hosts(
            ports
                .iter()
                .map(|p| ServerAddress::Tcp {
                    host: "localhost".to_owned(),
                    port: Some(*p),
                })
                .collect::<Vec<_>>(),
        )
        .repl_set_name(set.map(str::to_owned))
        .direct_connection(set.is_none())
        .server_selection_timeout(Duration::from_secs(5))
        .build();
    Client::with_options(options).unwrap()
}

/// Exports `documents` generated documents of `circle_ghe.builds` from an
/// old single member into an archive in `dir`; returns the archive and the
/// documents' raw bytes, sorted.
async fn archive_of(documents: i64, dir: &std::path::Path) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let old = MongoMember::start(&tools(), MongoMemberOptions::default()).unwrap();
    let old_client = client(&[old.port()], None);
    let builds = old_client
        .database("circle_ghe")
        .collection::<Document>("builds");
    for chunk in (0..documents).collect::<Vec<_>>().chunks(10_000) {
        builds
            .insert_many(chunk.iter().map(|i| {
                doc! {
                    "_id": *i,
                    "repo": format!("org/repo-{}", i % 97),
                    "status": if i % 5 == 0 { "failed" } else { "success" },
                    "log": format!("{i:08x}").repeat(12),
                }
            }))
            .await
            .unwrap();
    }
    let archive = dir.join("mongo.tar.gz");
    circle_export::export(
        circle_export::ExportSpec {
            mongo: Some(circle_export::MongoSource::Server {
                reader: &old_client.clone().into(),
                databases: vec!["circle_ghe".to_owned()],
            }),
            postgres: None,
            encryption_keys: None,
            vault_data: None,
            danger_include_vault_init_output: false,
            out: archive.clone(),
            seal: None,
            parallel: 2,
            meter: circle_export::Meter::default(),
            tool: "circle-export test".to_owned(),
        },
        &ha_plan::no_progress,
    )
    .await
    .unwrap();
    let raw = raw_documents(&old_client).await;
    (archive, raw)
}

async fn raw_documents(client: &Client) -> Vec<Vec<u8>> {
    let mut cursor = client
        .database("circle_ghe")
        .collection::<bson::RawDocumentBuf>("builds")
        .find(doc! {})
        .await
        .unwrap();
    let mut out = Vec::new();
    while cursor.advance().await.unwrap() {
        out.push(cursor.current().as_bytes().to_vec());
    }
    out.sort();
    out
}

/// Three plain members as set `name` (election timeout 2 s), once one is
/// primary.
async fn start_set(name: &str) -> Vec<MongoMember> {
    let members: Vec<MongoMember> = (0..3)
        .map(|_| {
            MongoMember::start(
                &tools(),
                MongoMemberOptions {
                    replica_set: Some(name.to_owned()),
                    ..MongoMemberOptions::default()
                },
            )
            .unwrap()
        })
        .collect();
    let first = client(&[members[0].port()], None);
    let config = doc! {
        "_id": name,
        "members": members.iter().enumerate().map(|(i, m)| doc! {"_id": i as i32, "host": m.host()}).collect::<Vec<Document>>(),
        "settings": {"electionTimeoutMillis": 2000},
    };
    first
        .database("admin")
        .run_command(doc! {"replSetInitiate": config})
        .await
        .unwrap();
    wait_for("a first primary", Duration::from_secs(60), || async {
        primary(&members).await.is_some()
    })
    .await;
    members
}

/// The index of the member that is a writable primary.
async fn primary(members: &[MongoMember]) -> Option<usize> {
    for (i, member) in members.iter().enumerate() {
        if member.pid().is_none() {
            continue;
        }
        let reply = client(&[member.port()], None)
            .database("admin")
            .run_command(doc! {"hello": 1})
            .await;
        if reply.is_ok_and(|r| r.get_bool("isWritablePrimary") == Ok(true)) {
            return Some(i);
        }
    }
    None
}

/// How many documents the primary holds.
async fn loaded(members: &[MongoMember]) -> u64 {
    let Some(i) = primary(members).await else {
        return 0;
    };
    client(&[members[i].port()], None)
        .database("circle_ghe")
        .collection::<Document>("builds")
        .estimated_document_count()
        .await
        .unwrap_or(0)
}

async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn restore(archive: &std::path::Path, members: &[MongoMember], set: &str, wait: u64) -> Command {
    let hosts: Vec<String> = members.iter().map(MongoMember::host).collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_circle-export"));
    command
        .arg("restore")
        .arg(archive)
        .arg("--mongo-uri")
        .arg(format!("mongodb://{}/?replicaSet={set}", hosts.join(",")))
        .args(["--failover-wait", &wait.to_string(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for a restore started with [`restore`]; returns its exit code,
/// its JSON report and its stderr.
async fn finish(child: Child) -> (i32, serde_json::Value, String) {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let names: &[&str] = if document.get("error").is_some() {
            &["error"]
        } else {
            &["restore"]
        };
        crate::validate(&document, names).unwrap_or_else(|why| panic!("{why}\n{stdout}"));
    }
    (
        output.status.code().unwrap_or(-1),
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Kills the primary once it holds `at_least` documents, while `restore`
/// still runs; returns which member it was.
async fn kill_primary_at(members: &mut [MongoMember], at_least: u64, restore: &mut Child) -> usize {
    wait_for(
        &format!("{at_least} documents loaded"),
        Duration::from_secs(600),
        || async { loaded(members).await >= at_least },
    )
    .await;
    let victim = primary(members).await.expect("a primary to kill");
    members[victim].kill();
    assert!(
        restore.try_wait().unwrap().is_none(),
        "the restore ended before the primary was killed: the test proves nothing"
    );
    victim
}

const DOCUMENTS: i64 = 200_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_rides_through_one_and_then_two_killed_primaries() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, wanted) = archive_of(DOCUMENTS, dir.path()).await;

    // One failover.
    let mut members = start_set("ride1").await;
    let mut child = restore(&archive, &members, "ride1", 60).spawn().unwrap();
    let victim = kill_primary_at(&mut members, 60_000, &mut child).await;
    let (code, report, stderr) = finish(child).await;
    assert_eq!(
        code, 0,
        "the restore did not ride through the failover: {stderr}"
    );
    assert_eq!(report["documents"], DOCUMENTS, "{report}");
    let survivors: Vec<u16> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| members[i].port())
        .collect();
    let set = client(&survivors, Some("ride1"));
    assert_eq!(
        raw_documents(&set).await,
        wanted,
        "the restored documents differ from the archive's"
    );
    drop(members);

    // Two failovers in a row: the first victim comes back before the
    // second primary is killed, so the set keeps its majority.
    let mut members = start_set("ride2").await;
    let mut child = restore(&archive, &members, "ride2", 60).spawn().unwrap();
    let first = kill_primary_at(&mut members, 50_000, &mut child).await;
    wait_for("the second primary", Duration::from_secs(30), || async {
        primary(&members).await.is_some()
    })
    .await;
    members[first].restart().unwrap();
    let second = kill_primary_at(&mut members, 120_000, &mut child).await;
    assert_ne!(first, second);
    let (code, _, stderr) = finish(child).await;
    assert_eq!(
        code, 0,
        "the restore did not ride through two failovers: {stderr}"
    );
    let survivors: Vec<u16> = (0..3)
        .filter(|i| *i != second)
        .map(|i| members[i].port())
        .collect();
    assert_eq!(
        raw_documents(&client(&survivors, Some("ride2"))).await,
        wanted
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_majority_the_restore_stops_within_its_wait_and_a_rerun_finishes_without_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, wanted) = archive_of(40_000, dir.path()).await;
    let mut members = start_set("nomaj").await;
    let mut child = restore(&archive, &members, "nomaj", 10).spawn().unwrap();
    // The primary and one secondary go: one member of three is left.
    let victim = kill_primary_at(&mut members, 10_000, &mut child).await;
    let other = (0..3).find(|i| *i != victim).unwrap();
    members[other].kill();
    let killed = Instant::now();
    let (code, report, stderr) = finish(child).await;
    let took = killed.elapsed();
    assert_eq!(code, 1, "{report} {stderr}");
    assert!(
        took < Duration::from_secs(30),
        "the restore took {took:?} to give up with a 10 s wait"
    );
    let said = format!("{report}{stderr}");
    assert!(
        said.contains("no primary for ") && said.contains("dropping nothing"),
        "{said}"
    );
    assert!(!said.contains("RawDocumentBuf"), "{said}");

    members[victim].restart().unwrap();
    members[other].restart().unwrap();
    wait_for("a primary again", Duration::from_secs(60), || async {
        primary(&members).await.is_some()
    })
    .await;
    let (code, report, stderr) =
        finish(restore(&archive, &members, "nomaj", 60).spawn().unwrap()).await;
    assert_eq!(code, 0, "the rerun did not finish: {report} {stderr}");
    let ports: Vec<u16> = members.iter().map(MongoMember::port).collect();
    assert_eq!(raw_documents(&client(&ports, Some("nomaj"))).await, wanted);
}
