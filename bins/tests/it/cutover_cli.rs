//! The cutover as an operator runs it (#31): `circle-export transfer
//! --live` while the old services run (the pre-copy), changes on the old
//! side, then `transfer --final` in the window — a dry run that writes
//! nothing, a pass after which every collection and table is identical
//! (digests computed here with pymongo and psql, not by the tool), a
//! second pass that changes nothing, a pass killed half-way and run again.
//! The old MongoDB is the 3.6 profile (read without the driver); the old
//! PostgreSQL is read by a role that may only SELECT, and the old side's
//! digests are the same before and after every final pass.

use std::process::Command;

use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Postgres, PostgresOptions, Toolbox};
use secrecy::ExposeSecret as _;

use crate::export_cli::{HOSTILE, json, new_target, pg_uri, psql, tool, wait_until};

/// Runs `script` with `python`, `args` after it; its stdout.
fn py(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Each collection of the databases named: its count, the SHA-256 of its
/// documents' bytes in `_id` order, and its index names (pymongo 3.13 or
/// 4, whichever `python` has).
const MONGO_DIGESTS: &str = r#"
import sys, json, hashlib
from pymongo import MongoClient
from bson.raw_bson import RawBSONDocument
from bson.codec_options import CodecOptions
client = MongoClient(sys.argv[1])
out = {}
for db in sys.argv[2:]:
    for name in sorted(client[db].list_collection_names()):
        coll = client[db].get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))
        digest, n = hashlib.sha256(), 0
        for doc in coll.find({}, sort=[("_id", 1)]):
            digest.update(doc.raw)
            n += 1
        out[db + "." + name] = [n, digest.hexdigest(), sorted(coll.index_information())]
print(json.dumps(out, sort_keys=True))
"#;

/// The old MongoDB's data before the pre-copy (pymongo 3.13, as an
/// operator's 3.6-era tooling would write it).
const MONGO_SEED: &str = r#"
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1])
c.circle_ghe.builds.insert_many([{"_id": i, "n": i, "s": "x" * (i % 50)} for i in range(300)])
logs = c.circle_ghe.action_logs
logs.insert_many([{"n": i, "s": str(i)} for i in range(200)])
logs.create_index("n")
logs.create_index("s")
c.build_state.states.insert_many([{"_id": i, "state": "done"} for i in range(100)])
"#;

/// What happens on the old MongoDB after the pre-copy: replaced, deleted
/// and new documents in several collections, a dropped index, a new
/// collection.
const MONGO_CHANGES: &str = r#"
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1])
builds = c.circle_ghe.builds
for i in range(10):
    builds.delete_one({"_id": i})
for i in range(10, 20):
    builds.delete_one({"_id": i})
    builds.insert_one({"_id": i, "n": -i, "changed": True})
builds.insert_many([{"_id": 1000 + i, "n": i, "new": True} for i in range(10)])
logs = c.circle_ghe.action_logs
for doc in list(logs.find({"n": {"$lt": 5}})):
    logs.delete_one({"_id": doc["_id"]})
    doc["s"] = "changed"
    logs.insert_one(doc)
logs.insert_many([{"n": 1000 + i, "s": "new"} for i in range(5)])
logs.drop_index("s_1")
c.circle_ghe.contexts.insert_many([{"_id": "ctx-%d" % i, "v": i} for i in range(20)])
c.build_state.states.delete_many({"_id": {"$lt": 3}})
"#;

/// Many more changes, so that a final pass takes long enough to be
/// killed half-way.
const MONGO_MANY_CHANGES: &str = r#"
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1])
c.circle_ghe.builds.insert_many([{"_id": 100000 + i, "n": i, "s": "y" * 900} for i in range(20000)])
"#;

const PG_TABLES: [(&str, &str); 4] = [
    ("circle", "builds"),
    ("circle", "events"),
    ("circle", "orgs"),
    ("vms", "machines"),
];

/// Each table's count and rows (in text, sorted) digest, and the
/// sequence's value, through psql.
fn pg_digests(pg: &Postgres) -> Vec<String> {
    let mut out: Vec<String> = PG_TABLES
        .iter()
        .map(|(db, table)| {
            psql(
                pg,
                db,
                &format!(
                    "SET extra_float_digits = 3; SELECT count(*) || ':' || \
                     coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {table} t"
                ),
            )
        })
        .collect();
    out.push(psql(
        pg,
        "circle",
        "SELECT last_value || ',' || is_called FROM build_numbers",
    ));
    out
}

fn old_postgres(tools: &Toolbox, pki: &LabPki) -> Postgres {
    let pg = Postgres::start(tools, pki, PostgresOptions::default()).unwrap();
    psql(&pg, "postgres", "CREATE DATABASE circle");
    psql(
        &pg,
        "circle",
        "CREATE TABLE builds (id bigint PRIMARY KEY, body text, score float8); \
         INSERT INTO builds SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, 300) g; \
         CREATE TABLE events (at timestamptz, kind text); \
         INSERT INTO events SELECT timestamptz '2020-01-01' + g * interval '1 hour', 'k' || g \
           FROM generate_series(1, 50) g; \
         CREATE TABLE orgs (id uuid PRIMARY KEY, name text); \
         INSERT INTO orgs SELECT md5(g::text)::uuid, 'org ' || g FROM generate_series(1, 20) g; \
         CREATE SEQUENCE build_numbers; \
         SELECT nextval('build_numbers') FROM generate_series(1, 5)",
    );
    psql(&pg, "postgres", "CREATE DATABASE vms");
    psql(
        &pg,
        "vms",
        "CREATE TABLE machines (id int PRIMARY KEY, image text); \
         INSERT INTO machines SELECT g, 'ubuntu-' || g FROM generate_series(1, 300) g",
    );
    pg
}

#[test]
fn a_final_pass_after_changes_leaves_the_targets_identical_and_a_second_changes_nothing() {
    let tools = Toolbox::discover(std::env::vars_os());
    let pki = LabPki::new().unwrap();
    let python3 = tools.python_pymongo3().unwrap_or_else(|e| panic!("{e}"));
    let python = tools.python().unwrap_or_else(|e| panic!("{e}"));
    let old_mongo = MongoMember::start(
        &tools,
        MongoMemberOptions {
            extra_args: vec!["--simServerVersion".into(), "3.6".into()],
            ..MongoMemberOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let old_mongo_uri = format!(
        "mongodb://localhost:{}/?directConnection=true",
        old_mongo.port()
    );
    py(&python3, MONGO_SEED, &[&old_mongo_uri]);
    let old_pg = old_postgres(&tools, &pki);
    let new_pg = new_target(&tools, &pki);
    psql(&new_pg, "postgres", "ALTER ROLE circle CREATEDB");
    let new_mongo = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    let new_mongo_uri = format!(
        "mongodb://localhost:{}/?directConnection=true",
        new_mongo.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("precopy.tar.zst");
    let old_superuser = pg_uri(
        &old_pg,
        old_pg.superuser(),
        old_pg.superuser_password().expose_secret(),
    );
    let transfer = |old_pg_uri: &str| {
        let mut command = tool(&["transfer", "--out"]);
        command.arg(&archive).args([
            "--pg-uri",
            "env:OLD_PG_URI",
            "--to-pg-uri",
            "env:NEW_PG_URI",
            "--mongo-uri",
            &old_mongo_uri,
            "--to-mongo-uri",
            &new_mongo_uri,
        ]);
        command.env("OLD_PG_URI", old_pg_uri);
        command.env("NEW_PG_URI", pg_uri(&new_pg, "circle", HOSTILE));
        command
    };
    let dbs = ["circle_ghe", "build_state"];
    let source_mongo = |args: &[&str]| {
        let mut all = vec![old_mongo_uri.as_str()];
        all.extend(args);
        py(&python3, MONGO_DIGESTS, &all)
    };
    let target_mongo = |args: &[&str]| {
        let mut all = vec![new_mongo_uri.as_str()];
        all.extend(args);
        py(&python, MONGO_DIGESTS, &all)
    };

    // The pre-copy, with the old services still running.
    let (code, precopy, stderr) = json(transfer(&old_superuser).arg("--live"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(precopy["changed"], 5, "{precopy}");
    let state = circle_export::cutover::state_path(&archive);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(source_mongo(&dbs), target_mongo(&dbs));
    assert_eq!(pg_digests(&old_pg), pg_digests(&new_pg));
    // Beside it, the record of what the target holds, key by key: a key
    // file per collection and keyed table (0600, in a 0700 directory).
    let recorded = circle_export::CutoverState::read(&state)
        .unwrap()
        .digests
        .expect("the pre-copy records the target");
    assert_eq!(
        recorded.collections.keys().collect::<Vec<_>>(),
        [
            "build_state.states",
            "circle_ghe.action_logs",
            "circle_ghe.builds"
        ]
    );
    assert_eq!(
        recorded.databases["circle"].tables["public.builds"].rows,
        300
    );
    assert!(
        recorded.databases["circle"].tables["public.events"]
            .sum
            .is_some()
    );
    let keys = circle_export::cutover::keys_dir(&state);
    assert_eq!(
        std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(files.len(), 3 + 3, "{files:?}");
    for file in &files {
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }

    // The old side changes after the pre-copy.
    py(&python3, MONGO_CHANGES, &[&old_mongo_uri]);
    psql(
        &old_pg,
        "circle",
        "UPDATE builds SET body = 'changed ' || id WHERE id BETWEEN 11 AND 20; \
         DELETE FROM builds WHERE id <= 10; \
         INSERT INTO builds SELECT g, 'new', 0.1 + g FROM generate_series(1001, 1010) g; \
         INSERT INTO events VALUES ('2021-01-01', 'new'), ('2021-01-02', 'new2'); \
         DELETE FROM events WHERE kind = 'k1'; \
         UPDATE orgs SET name = name || ' renamed' WHERE name IN ('org 1', 'org 2'); \
         SELECT nextval('build_numbers') FROM generate_series(1, 7)",
    );
    psql(&old_pg, "vms", "DELETE FROM machines WHERE id <= 2");
    // From here on the old PostgreSQL is read by a role that may only read.
    for db in ["circle", "vms"] {
        psql(
            &old_pg,
            db,
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') THEN \
                 CREATE ROLE reader LOGIN PASSWORD '{}'; END IF; END $$; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader; \
                 GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO reader",
                HOSTILE.replace('\'', "''")
            ),
        );
    }
    let reader = pg_uri(&old_pg, "reader", HOSTILE);
    let source_before = (source_mongo(&dbs), pg_digests(&old_pg));
    let target_before = (target_mongo(&dbs), pg_digests(&new_pg));
    assert_ne!(source_before, target_before);

    // A dry run says what would move and writes nothing.
    let (code, dry, stderr) = json(transfer(&reader).args(["--final", "--dry-run"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dry["changed"], 0, "{dry}");
    assert!(dry["planned"].as_u64().unwrap() >= 8, "{dry}");
    assert_eq!(
        (target_mongo(&dbs), pg_digests(&new_pg)),
        target_before,
        "a dry run wrote"
    );
    let state_before = std::fs::read(&state).unwrap();

    // The final pass: the targets equal the sources, checked here.
    let (code, done, stderr) = json(transfer(&reader).arg("--final"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(done["healthy"], true, "{done}");
    assert_eq!(done["warnings"], serde_json::json!([]), "{done}");
    assert_eq!(done["changed"], dry["planned"], "{done}\n{dry}");
    let kinds: Vec<&str> = done["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    for kind in [
        "update-collection",
        "create-collection",
        "drop-index",
        "update-table",
        "replace-table",
        "set-sequence",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {done}");
    }
    assert_eq!(
        done["documents"],
        serde_json::json!({"inserted": 35, "replaced": 15, "deleted": 13}),
        "{done}"
    );
    let source_after = (source_mongo(&dbs), pg_digests(&old_pg));
    assert_eq!(
        source_after, source_before,
        "the final pass wrote to the source"
    );
    assert_eq!((target_mongo(&dbs), pg_digests(&new_pg)), source_after);
    assert_ne!(std::fs::read(&state).unwrap(), state_before);

    // Again: nothing to move.
    let (code, again, stderr) = json(transfer(&reader).arg("--final"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["changed"], 0, "{again}");
    assert_eq!(again["healthy"], true, "{again}");

    // A final pass after which the digests computed here are equal on both
    // sides, then one that finds nothing (and nothing to warn of).
    let final_until_identical = || {
        let (code, done, stderr) = json(transfer(&reader).arg("--final"));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            (target_mongo(&dbs), pg_digests(&new_pg)),
            (source_mongo(&dbs), pg_digests(&old_pg))
        );
        let (code, last, stderr) = json(transfer(&reader).arg("--final"));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(last["changed"], 0, "{last}");
        assert_eq!(last["warnings"], serde_json::json!([]), "{last}");
        done
    };

    // Many more changes; a final pass killed while it moves them, then
    // run again, leaves the targets identical too.
    py(&python3, MONGO_MANY_CHANGES, &[&old_mongo_uri]);
    psql(
        &old_pg,
        "vms",
        "INSERT INTO machines SELECT g, repeat('z', 200) FROM generate_series(1000, 150000) g",
    );
    let mut child = transfer(&reader)
        .arg("--final")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the final pass to copy rows into vms",
        std::time::Duration::from_secs(120),
        || {
            child.try_wait().unwrap().is_some()
                || psql(
                    &new_pg,
                    "postgres",
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'vms' \
                     AND query LIKE 'COPY circle_export_stage%'",
                ) != "0"
        },
    );
    let killed_early = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        killed_early,
        "the final pass ended before it could be killed"
    );
    assert_ne!(
        psql(&new_pg, "vms", "SELECT count(*) FROM machines"),
        psql(&old_pg, "vms", "SELECT count(*) FROM machines"),
        "the killed pass committed vms"
    );
    let rerun = final_until_identical();
    assert_eq!(rerun["healthy"], true, "{rerun}");

    // Something writes to the new side after its record was made: the
    // pass finds it (MongoDB: the MD5s after; PostgreSQL: row counts
    // before), says so, compares with the target itself, and heals it.
    py(
        &python,
        "import sys\nfrom pymongo import MongoClient\n\
         MongoClient(sys.argv[1]).circle_ghe.builds.delete_one({'_id': 50})",
        &[&new_mongo_uri],
    );
    psql(&new_pg, "circle", "DELETE FROM builds WHERE id = 50");
    let healed = final_until_identical();
    assert_eq!(healed["healthy"], true, "{healed}");
    let warnings = healed["warnings"].to_string();
    assert!(
        warnings.contains("mongo circle_ghe.builds") && warnings.contains("postgres circle"),
        "{healed}"
    );
}

#[test]
fn a_final_pass_without_a_pre_copy_or_with_other_flags_is_refused_before_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.tar.zst").display().to_string();
    let (code, refused, _) = json(&mut tool(&["transfer", "--final", "--drop", "--out", &out]));
    assert_eq!(code, 2, "{refused}");
    let (code, missing, _) = json(
        tool(&[
            "transfer",
            "--final",
            "--out",
            &out,
            "--pg-uri",
            "env:OLD_PG_URI",
            "--to-pg-uri",
            "env:NEW_PG_URI",
        ])
        .env(
            "OLD_PG_URI",
            "postgresql://old@localhost:1/postgres?sslmode=disable",
        )
        .env(
            "NEW_PG_URI",
            "postgresql://new@localhost:1/postgres?sslmode=disable",
        ),
    );
    assert_eq!(code, 1, "{missing}");
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("no pre-copy state"),
        "{missing}"
    );
}
