//! `circle-export export --mongo-uri` against the old Services machine's
//! MongoDB as it is — mongod 3.6.6 with auth (mongo-sim's 3.6 profile),
//! which the driver refuses — run as an operator runs it: the URI through
//! the environment with a hostile password, `--dry-run`, `--json`, killed
//! with SIGKILL half-way and run again, then verified.

use std::process::Stdio;
use std::time::Duration;

use bson::doc;
use circle_export::wire::{Address, WireCredential, WireOptions, WireSource};
use ha_lab::{MongoMember, MongoMemberOptions, Toolbox};
use secrecy::SecretString;

use crate::export_cli::{HOSTILE, json, tool, wait_until};

/// A 3.6 member with auth, its first user created over the localhost
/// exception, and `circle_ghe.builds` (`documents` of about 4 KiB) and
/// `build_state.steps` written through the reader's own connection.
fn old_member(documents: i32) -> (MongoMember, String) {
    let tools = Toolbox::discover(std::env::vars_os()).simulator_only();
    let member = MongoMember::start(
        &tools,
        MongoMemberOptions {
            auth: true,
            extra_args: vec!["--simServerVersion".into(), "3.6".into()],
            ..MongoMemberOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let options = |credential| WireOptions {
        hosts: vec![Address {
            host: "localhost".to_owned(),
            port: member.port(),
        }],
        replica_set: None,
        credential,
        tls: None,
        connect_timeout: Duration::from_secs(10),
        socket_timeout: Duration::from_secs(60),
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let anonymous = WireSource::probe(options(None)).await.unwrap();
        anonymous
            .command(
                "admin",
                doc! {"createUser": "circle-export", "pwd": HOSTILE, "roles": ["root"]},
            )
            .await
            .unwrap();
        let source = WireSource::probe(options(Some(WireCredential {
            user: "circle-export".to_owned(),
            password: SecretString::from(HOSTILE),
            source: "admin".to_owned(),
        })))
        .await
        .unwrap();
        let filler = "ü".repeat(2000);
        for start in (0..documents).step_by(500) {
            let batch: Vec<bson::Document> = (start..(start + 500).min(documents))
                .map(|i| doc! {"_id": i, "n": i, "filler": &filler})
                .collect();
            source
                .command("circle_ghe", doc! {"insert": "builds", "documents": batch})
                .await
                .unwrap();
        }
        source
            .command(
                "build_state",
                doc! {"insert": "steps", "documents": [{"_id": 1}, {"_id": 2}]},
            )
            .await
            .unwrap();
    });
    let uri = format!(
        "mongodb://circle-export:{}@localhost:{}/?directConnection=true",
        percent_encoding::utf8_percent_encode(HOSTILE, percent_encoding::NON_ALPHANUMERIC),
        member.port()
    );
    (member, uri)
}

#[test]
fn an_export_from_mongodb_3_6_killed_at_any_moment_finishes_when_run_again() {
    let (_member, uri) = old_member(20_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("old.tar.zst");
    let export = || {
        let mut command = tool(&["export", "--mongo-uri", "env:OLD_MONGO_URI", "--out"]);
        command.arg(&out).env("OLD_MONGO_URI", &uri);
        command
    };

    let (code, plan, stderr) = json(export().arg("--dry-run"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan["collections"], 2, "{plan}");
    assert!(!out.exists());

    // Killed while the spool fills, at two points: as soon as the spool
    // exists, and once part of the collection is in it.
    let spool = dir.path().join("old.tar.zst.spool.d");
    let spooled = || {
        walk(&spool)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>()
    };
    for threshold in [0u64, 20 << 20] {
        let mut child = export().stderr(Stdio::piped()).spawn().unwrap();
        wait_until("the export to spool", Duration::from_secs(120), || {
            spool.exists() && spooled() >= threshold || child.try_wait().unwrap().is_some()
        });
        let _ = child.kill(); // SIGKILL: no handler runs
        let _ = child.wait();
        assert!(
            !out.exists(),
            "a killed export left an archive under its name"
        );
    }

    let output = export().output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("MongoDB 3.6.6, read by the old-server reader"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wörd") && !stderr.contains(HOSTILE),
        "{stderr}"
    );
    // Off a terminal, the progress is periodic lines (every 5 % here).
    let periodic = stderr
        .lines()
        .filter(|l| l.starts_with("circle-export: dumping ") && l.contains(" %)"))
        .count();
    assert!(periodic >= 2, "{stderr}");
    // The result on stdout, the progress on stderr.
    assert!(
        stdout.contains("2 collections (20002 documents)"),
        "{stdout}"
    );
    assert!(!spool.exists(), "the spool outlived a finished export");

    // --quiet: the result, and nothing on stderr.
    let output = export().arg("--quiet").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 collections (20002 documents)"));
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (code, verified, stderr) = json(tool(&["verify"]).arg(&out));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(verified["healthy"], true, "{verified}");
    assert_eq!(verified["collections"], 2, "{verified}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
