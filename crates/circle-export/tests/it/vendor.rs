//! CircleCI's own circleci_export.tar.gz (circle-database-export: a
//! mongodump directory, `pg_dumpall -c` into one circle.sql, the
//! encryption keys, the raw Vault data) restores onto the new hosts.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use bson::{Document, doc};
use circle_export::{Layout, inspect, restore};

use crate::{Pg, old_mongo, progress, raw_documents, restore_spec};

fn append(builder: &mut tar::Builder<impl std::io::Write>, path: &str, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, bytes).unwrap();
}

fn append_dir(builder: &mut tar::Builder<impl std::io::Write>, path: &str) {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Directory);
    builder
        .append_data(&mut header, path, std::io::empty())
        .unwrap();
}

fn bson_file(docs: impl IntoIterator<Item = Document>) -> Vec<u8> {
    docs.into_iter()
        .flat_map(|d| bson::to_vec(&d).unwrap())
        .collect()
}

/// `pg_dumpall -c` of `pg`, as the vendor script runs it.
fn dumpall(pg: &Pg) -> Vec<u8> {
    let output = Command::new(pg.server.bin_dir().join("pg_dumpall"))
        .arg("-c")
        .env_clear()
        .envs(pg.server.libpq_env("postgres").unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn vendor_archive(path: &Path, circle_sql: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for dir in [
        "circleci_export/",
        "circleci_export/circleci-mongo-export/",
        "circleci_export/circleci-mongo-export/circle_ghe/",
        "circleci_export/circleci-mongo-export/containers_dev_ghe/",
        "circleci_export/circleci-pg-export/",
        "circleci_export/circle-data/",
        "circleci_export/circleci-vault/",
    ] {
        append_dir(&mut b, dir);
    }
    append(
        &mut b,
        "circleci_export/circleci-mongo-export/circle_ghe/builds.bson",
        &bson_file((0..1500).map(
            |i| doc! {"_id": i, "vcs_url": format!("https://github.com/o/r{i}"), "n": i as i64},
        )),
    );
    append(
        &mut b,
        "circleci_export/circleci-mongo-export/circle_ghe/builds.metadata.json",
        br#"{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_","ns":"circle_ghe.builds"},{"v":2,"key":{"vcs_url":1},"name":"vcs_url_1","ns":"circle_ghe.builds"}]}"#,
    );
    append(
        &mut b,
        "circleci_export/circleci-mongo-export/containers_dev_ghe/containers.bson",
        &bson_file((0..10).map(|i| doc! {"_id": i, "image": "circleci/build-image"})),
    );
    append(
        &mut b,
        "circleci_export/circleci-pg-export/circle.sql",
        circle_sql,
    );
    append(&mut b, "circleci_export/circle-data/key-1", b"k");
    append(
        &mut b,
        "circleci_export/circleci-vault/vault-backup.tar.gz",
        &[0x1f, 0x8b, 0, 0],
    );
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn circleci_s_own_export_archive_restores() {
    let old_pg = Pg::start();
    for db in ["circle", "conductor_production"] {
        old_pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    }
    old_pg.psql(
        "circle",
        "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"; \
         CREATE TABLE circle_migrations (id text PRIMARY KEY, applied timestamptz DEFAULT now()); \
         INSERT INTO circle_migrations (id) SELECT 'm' || g FROM generate_series(1, 120) g; \
         CREATE TABLE notes (id uuid DEFAULT uuid_generate_v4(), body text); \
         INSERT INTO notes (body) VALUES (E'multi\\nline'), ('\\\\connect not_a_db'), (NULL)",
    );
    old_pg.psql(
        "conductor_production",
        "CREATE TABLE build_jobs (id bigserial PRIMARY KEY, payload jsonb); \
         INSERT INTO build_jobs (payload) SELECT jsonb_build_object('g', g) FROM generate_series(1, 700) g",
    );
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("circleci_export.tar.gz");
    vendor_archive(&archive, &dumpall(&old_pg));

    let inspection = inspect(&archive, None).unwrap();
    assert_eq!(inspection.layout, Layout::Vendor);
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    let dbs: Vec<&str> = inspection
        .manifest
        .postgres
        .iter()
        .map(|d| d.db.as_str())
        .collect();
    assert_eq!(dbs, ["circle", "conductor_production"]);

    let (_member, target) = old_mongo();
    let new_pg = Pg::start();
    let pg = new_pg.provision(&["circle", "conductor_production"]);
    let report = restore(
        restore_spec(
            archive.clone(),
            Some(&crate::standalone(&target)),
            Some(&pg),
        ),
        &progress,
    )
    .await
    .unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert_eq!(report.collections, 2);
    assert_eq!(report.documents, 1510);
    assert_eq!(
        raw_documents(&target, "circle_ghe", "builds").await.len(),
        1500
    );
    assert!(
        target
            .database("circle_ghe")
            .collection::<Document>("builds")
            .list_index_names()
            .await
            .unwrap()
            .contains(&"vcs_url_1".to_owned())
    );
    for db in ["circle", "conductor_production"] {
        assert_eq!(old_pg.checksum(db), new_pg.checksum(db), "{db}");
    }
}
