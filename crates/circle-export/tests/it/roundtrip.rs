//! Export from an "old Services machine" (a lone MongoDB member without
//! auth, a PostgreSQL), restore onto the new hosts (a TLS replica set, a
//! PostgreSQL whose databases the app role owns), and compare everything.

use std::time::Duration;

use bson::spec::BinarySubtype;
use bson::{
    Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex, Timestamp, doc,
};
use circle_export::{Error, ExportSpec, MongoSource, RestoreSpec, export, inspect, restore};

use crate::{Pg, new_mongo, old_mongo, progress, raw_documents};

/// A document with every BSON type a driver can write (DBPointer cannot be
/// built through the Rust driver; everything else is here), unicode keys
/// and nested arrays.
pub(crate) fn everything(id: i32) -> Document {
    doc! {
        "_id": id,
        "double": 1.5_f64,
        "negative_zero": -0.0_f64,
        "string": "ünïcødé ✓ \u{0} inside",
        "document": {"a": {"b": [1, [2, [3, {"c": "deep"}]]]}},
        "array": [1, "two", 3.0, Bson::Null, [], {}],
        "binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
        "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "md5": Binary { subtype: BinarySubtype::Md5, bytes: vec![9; 16] },
        "user_binary": Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: vec![1, 2, 3] },
        "undefined": Bson::Undefined,
        "object_id": bson::oid::ObjectId::parse_str("5f1d7f3e9d1e8b2a4c6f0a1b").unwrap(),
        "bool": true,
        "date": DateTime::from_millis(-62_135_596_800_000),
        "null": Bson::Null,
        "regex": Regex { pattern: "^a.*b$".to_owned(), options: "imx".to_owned() },
        "javascript": Bson::JavaScriptCode("function () { return 1; }".to_owned()),
        "symbol": Bson::Symbol("sym".to_owned()),
        "javascript_with_scope": JavaScriptCodeWithScope { code: "x + 1".to_owned(), scope: doc! {"x": 1} },
        "int32": i32::MIN,
        "timestamp": Timestamp { time: 1_700_000_000, increment: 7 },
        "int64": i64::MAX,
        "decimal128": Decimal128::from_bytes([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x30]),
        "min_key": Bson::MinKey,
        "max_key": Bson::MaxKey,
        "ключ": "unicode key",
        "emoji 🔑": 1,
    }
}

const PG_SEED: &str = r#"
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE TYPE status AS ENUM ('queued', 'running', 'done');
CREATE TABLE builds (
    id bigserial PRIMARY KEY,
    uid uuid NOT NULL DEFAULT uuid_generate_v4(),
    payload jsonb,
    tags text[],
    data bytea,
    started timestamptz,
    amount numeric(40, 12),
    notes text,
    st status,
    nothing text
);
INSERT INTO builds (payload, tags, data, started, amount, notes, st, nothing)
SELECT jsonb_build_object('n', g, 'quote', E'it''s "x"\n\\', 'nested', jsonb_build_array(g, NULL, true)),
       ARRAY['a' || g, E'tab\there', NULL, 'ü'],
       decode(md5(g::text), 'hex') || '\x00ff5c0a'::bytea,
       timestamptz '2020-02-29 23:59:59.123456+05:30' + g * interval '1 minute',
       g * 3.141592653589793238462643,
       repeat('ü', g % 100) || E'\nline2\r\n\\.',
       (ARRAY['queued', 'running', 'done'])[1 + g % 3]::status,
       NULL
FROM generate_series(1, 5000) g;
INSERT INTO builds (payload, notes) VALUES ('{"big": true}', repeat('x', 1000000));
CREATE INDEX builds_started ON builds (started);
CREATE VIEW recent AS SELECT id FROM builds WHERE started > timestamptz '2020-03-01';
CREATE FUNCTION double_it(i int) RETURNS int LANGUAGE sql AS 'SELECT i * 2';
COMMENT ON TABLE builds IS 'builds, with a comment';
CREATE TABLE "Odd Name" ("Mixed Case" int);
INSERT INTO "Odd Name" VALUES (1), (NULL);
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_bson_type_and_many_postgres_types_survive_export_and_restore() {
    // The old machine.
    let (_old_member, old) = old_mongo();
    let builds = old
        .database("circle_ghe")
        .collection::<Document>("everything");
    builds.insert_many((1..=20).map(everything)).await.unwrap();
    // A document at the 16 MiB limit.
    let big = doc! {"_id": 100, "blob": Binary { subtype: BinarySubtype::Generic, bytes: vec![0xab; 16 * 1024 * 1024 - 64] }};
    assert!(bson::to_vec(&big).unwrap().len() <= 16 * 1024 * 1024);
    builds.insert_one(big).await.unwrap();
    let states = old
        .database("build_state_dev_ghe")
        .collection::<Document>("states");
    states
        .insert_many((0..5000).map(|i| doc! {"_id": i, "state": format!("s{}", i % 7), "n": i}))
        .await
        .unwrap();
    old.database("build_state_dev_ghe")
        .run_command(
            doc! {"createIndexes": "states", "indexes": [{"key": {"state": 1}, "name": "state_1"}]},
        )
        .await
        .unwrap();
    let old_pg = Pg::start();
    for db in ["circle", "vms"] {
        old_pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    }
    old_pg.psql("circle", PG_SEED);
    old_pg.psql(
        "vms",
        "CREATE TABLE tasks (id serial PRIMARY KEY, name text); \
         INSERT INTO tasks (name) SELECT 'task ' || g FROM generate_series(1, 300) g",
    );
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("circleci-encryption-keys");
    std::fs::create_dir_all(keys.join("sub")).unwrap();
    std::fs::write(keys.join("key-1"), b"secret key material\n").unwrap();
    std::fs::write(keys.join("sub/key-2"), [0u8, 1, 2, 255]).unwrap();

    let source_pg = old_pg.superuser_client();
    let out = dir.path().join("export.tar.zst");
    let export_meter = circle_export::Meter::new();
    let report = export(
        ExportSpec {
            mongo: Some(MongoSource::Server {
                reader: &old.clone().into(),
                databases: Vec::new(),
            }),
            postgres: Some(circle_export::PgSource {
                client: &source_pg,
                databases: Vec::new(),
            }),
            encryption_keys: Some(keys.clone()),
            vault_data: None,
            danger_include_vault_init_output: false,
            out: out.clone(),
            seal: None,
            parallel: 4,
            meter: export_meter.clone(),
            tool: "circle-export test".to_owned(),
        },
        &progress,
    )
    .await
    .unwrap();
    assert!(out.exists() && !dir.path().join("export.tar.zst.partial").exists());
    // The meter saw every byte that went into the archive.
    let reading = export_meter.read();
    assert_eq!(reading.stage, circle_export::Stage::Idle);
    assert_eq!(
        (reading.done, reading.total),
        (report.data_bytes, report.data_bytes)
    );
    let m = &report.manifest;
    let count = |db: &str, c: &str| {
        m.mongo
            .iter()
            .find(|e| e.db == db && e.collection == c)
            .map(|e| e.documents)
    };
    assert_eq!(count("circle_ghe", "everything"), Some(21));
    assert_eq!(count("build_state_dev_ghe", "states"), Some(5000));
    let circle = m.postgres.iter().find(|d| d.db == "circle").unwrap();
    assert!(
        circle
            .tables
            .iter()
            .any(|t| t.name == "public.builds" && t.rows == 5001),
        "{circle:?}"
    );
    assert!(m.file("encryption-keys/sub/key-2").is_some());
    assert!(m.postgres.iter().all(|d| d.db != "postgres"));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the archive holds secrets");
    }
    let inspection = inspect(&out, None).unwrap();
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    // No password anywhere in the archive.
    let manifest_text = serde_json::to_string(&inspection.manifest).unwrap();
    assert!(!manifest_text.contains(old_pg.server.superuser_password().expose_secret_str()));

    // The new hosts.
    let new = new_mongo().await;
    let new_pg = Pg::start();
    let target_pg = new_pg.provision(&["circle", "vms"]);
    let restore_meter = circle_export::Meter::new();
    let target_mongo = circle_export::MongoConnection {
        client: new.client.clone(),
        replica_set: true,
    };
    let spec = |drop: bool, dry_run: bool| RestoreSpec {
        archive: out.clone(),
        unsealing: None,
        mongo: Some(&target_mongo),
        postgres: Some(&target_pg),
        drop,
        dry_run,
        parallel: 4,
        meter: restore_meter.clone(),
        failover_wait: std::time::Duration::from_secs(60),
    };
    let dry = restore(spec(false, true), &progress).await.unwrap();
    assert_eq!((dry.collections, dry.databases), (2, 2));
    assert_eq!(
        new.client
            .database("circle_ghe")
            .collection::<Document>("everything")
            .estimated_document_count()
            .await
            .unwrap(),
        0,
        "a dry run wrote"
    );
    let restored = restore(spec(false, false), &progress).await.unwrap();
    assert!(restored.mismatches.is_empty(), "{:?}", restored.mismatches);
    assert_eq!(restored.documents, 5021);
    // The meter counted every byte loaded: the BSON and SQL files.
    let loaded: u64 = m
        .files
        .iter()
        .filter(|f| f.path.ends_with(".bson") || f.path.ends_with(".sql"))
        .map(|f| f.size)
        .sum();
    let reading = restore_meter.read();
    assert_eq!((reading.done, reading.total), (loaded, loaded));

    for (db, c) in [
        ("circle_ghe", "everything"),
        ("build_state_dev_ghe", "states"),
    ] {
        let before = raw_documents(&old, db, c).await;
        let after = raw_documents(&new.client, db, c).await;
        assert_eq!(before.len(), after.len(), "{db}.{c}");
        assert!(before == after, "{db}.{c}: documents differ byte for byte");
    }
    let indexes = new
        .client
        .database("build_state_dev_ghe")
        .collection::<Document>("states")
        .list_index_names()
        .await
        .unwrap();
    assert!(indexes.contains(&"state_1".to_owned()), "{indexes:?}");
    for db in ["circle", "vms"] {
        assert_eq!(old_pg.checksum(db), new_pg.checksum(db), "{db}");
    }
    assert_eq!(
        new_pg.psql(
            "circle",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'builds'"
        ),
        "circle",
        "restored objects belong to the app role"
    );
    assert_eq!(new_pg.psql("circle", "SELECT double_it(21)"), "42");

    // Again: everything is already there (same counts): nothing to do.
    let second = restore(spec(false, false), &progress).await.unwrap();
    assert!(second.restored.is_empty(), "{:?}", second.restored);
    assert_eq!(second.skipped.len(), 4, "{:?}", second.skipped);
    // A target that holds something else: refused, nothing written.
    new.client
        .database("circle_ghe")
        .collection::<Document>("everything")
        .insert_one(doc! {"_id": 1000, "written": "by the new installation"})
        .await
        .unwrap();
    let err = restore(spec(false, false), &progress).await.unwrap_err();
    assert!(matches!(err, Error::NotEmpty(_)), "{err}");
    assert!(err.to_string().contains("circle_ghe.everything"), "{err}");
    // With --drop: replaced, still equal.
    let again = restore(spec(true, false), &progress).await.unwrap();
    assert!(again.mismatches.is_empty(), "{:?}", again.mismatches);
    assert_eq!(old_pg.checksum("circle"), new_pg.checksum("circle"));
    assert_eq!(
        raw_documents(&old, "circle_ghe", "everything").await,
        raw_documents(&new.client, "circle_ghe", "everything").await
    );
    let _ = Duration::ZERO;
}

trait ExposeStr {
    fn expose_secret_str(&self) -> &str;
}

impl ExposeStr for secrecy::SecretString {
    fn expose_secret_str(&self) -> &str {
        use secrecy::ExposeSecret as _;
        self.expose_secret()
    }
}
