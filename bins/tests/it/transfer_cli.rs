//! `circle-export transfer` run as an operator would (#18): the old
//! databases straight into the new hosts with the archive written
//! alongside — a dry run that writes nothing, a transfer that creates a
//! missing database, a second run that changes nothing, an archive that
//! verifies, a target holding other data refused before anything is
//! touched, and a transfer killed while loading that leaves no database
//! half-committed and finishes when run again.

use std::process::Command;

use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Postgres, PostgresOptions, Toolbox};
use secrecy::ExposeSecret as _;

use crate::export_cli::{
    HOSTILE, json, kill_while_copying, mongo_with_builds, new_target, pg_uri, psql, tool,
};

/// The old PostgreSQL: `circle` (`builds`, `rows` rows) and `vms`
/// (`machines`, 300 rows).
fn old_postgres(tools: &Toolbox, pki: &LabPki, rows: u32) -> Postgres {
    let pg = Postgres::start(tools, pki, PostgresOptions::default()).unwrap();
    psql(&pg, "postgres", "CREATE DATABASE circle");
    psql(
        &pg,
        "circle",
        &format!(
            "CREATE TABLE builds (id int PRIMARY KEY, body text); \
             INSERT INTO builds SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, {rows}) g"
        ),
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

/// `circle-export transfer …` from `old_pg` (and `old_mongo`) into
/// `new_pg` (and `new_mongo`), writing `archive`.
fn transfer(
    old_pg: &Postgres,
    new_pg: &Postgres,
    mongo: Option<(&str, &str)>,
    archive: &std::path::Path,
) -> Command {
    let mut command = tool(&["transfer", "--out"]);
    command.arg(archive);
    command.args([
        "--pg-uri",
        "env:OLD_PG_URI",
        "--to-pg-uri",
        "env:NEW_PG_URI",
    ]);
    if let Some((from, to)) = mongo {
        command.args(["--mongo-uri", from, "--to-mongo-uri", to]);
    }
    command.env(
        "OLD_PG_URI",
        pg_uri(
            old_pg,
            old_pg.superuser(),
            old_pg.superuser_password().expose_secret(),
        ),
    );
    command.env("NEW_PG_URI", pg_uri(new_pg, "circle", HOSTILE));
    command
}

#[test]
fn transfer_twice_the_archive_verifies_and_other_data_is_refused_first() {
    let tools = Toolbox::discover(std::env::vars_os());
    let pki = LabPki::new().unwrap();
    let old_pg = old_postgres(&tools, &pki, 400);
    let old_mongo = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    let old_mongo_uri = mongo_with_builds(&old_mongo);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The new hosts: `circle` exists (pg-provision's), `vms` does not and
    // the app role may create it.
    let new_pg = new_target(&tools, &pki);
    psql(&new_pg, "postgres", "ALTER ROLE circle CREATEDB");
    let new_mongo = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    let new_mongo_uri = format!(
        "mongodb://localhost:{}/?directConnection=true",
        new_mongo.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("moved.tar.zst");
    let mongo = Some((old_mongo_uri.as_str(), new_mongo_uri.as_str()));

    let (code, dry, stderr) = json(transfer(&old_pg, &new_pg, mongo, &archive).arg("--dry-run"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (dry["changed"].clone(), dry["planned"].clone()),
        (0.into(), 3.into()),
        "{dry}"
    );
    assert!(!archive.exists(), "a dry run wrote the archive");
    // A program linking the crates, from typed values (no flags): the
    // same plan.
    let typed = runtime.block_on(async {
        let pg_client = |pg: &Postgres, user: &str, password: &str| {
            let conn = circle_export::PgConn::parse_uri(&pg_uri(pg, user, password)).unwrap();
            circle_export::PgClient::new(conn, Some(pg.bin_dir().to_path_buf())).unwrap()
        };
        let wait = std::time::Duration::from_secs(30);
        let reader = circle_export::MongoReader::from_uri(&old_mongo_uri.clone().into(), wait)
            .await
            .unwrap();
        let target = circle_export::mongo_from_uri(&new_mongo_uri.clone().into(), wait)
            .await
            .unwrap();
        let old_password = old_pg.superuser_password().expose_secret().to_owned();
        let (source_pg, target_pg) = (
            pg_client(&old_pg, old_pg.superuser(), &old_password),
            pg_client(&new_pg, "circle", HOSTILE),
        );
        let spec = circle_export::TransferSpec {
            mongo: Some(circle_export::TransferMongo {
                source: &reader,
                databases: Vec::new(),
                target: &target,
            }),
            postgres: Some(circle_export::TransferPostgres {
                source: &source_pg,
                databases: Vec::new(),
                target: &target_pg,
            }),
            encryption_keys: None,
            vault_data: None,
            danger_include_vault_init_output: false,
            out: archive.clone(),
            seal: None,
            drop: false,
            live: false,
            dry_run: true,
            parallel: 4,
            meter: circle_export::Meter::new(),
            failover_wait: std::time::Duration::from_secs(60),
            tool: "a program".to_owned(),
        };
        let report = circle_export::transfer(spec, &|_| {}).await.unwrap();
        serde_json::to_value(report.to_findings()).unwrap()
    });
    let mut cli = dry.clone();
    for envelope in ["schema_version", "tool"] {
        cli.as_object_mut().unwrap().remove(envelope);
    }
    assert_eq!(typed, cli);
    assert!(!archive.exists(), "a dry run wrote the archive");
    assert_eq!(
        psql(
            &new_pg,
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'vms'"
        ),
        "0",
        "a dry run created a database"
    );

    let (code, moved, stderr) = json(&mut transfer(&old_pg, &new_pg, mongo, &archive));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(moved["changed"], 3, "{moved}");
    assert_eq!(moved["documents"], 250, "{moved}");
    assert!(
        moved["mismatches"].as_array().unwrap().is_empty(),
        "{moved}"
    );
    let targets: Vec<&str> = moved["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["target"].as_str())
        .collect();
    assert!(targets.contains(&"postgres vms (created)"), "{moved}");
    assert_eq!(
        psql(&new_pg, "circle", "SELECT count(*) FROM builds"),
        "400"
    );
    assert_eq!(psql(&new_pg, "vms", "SELECT count(*) FROM machines"), "300");
    assert_eq!(
        psql(
            &new_pg,
            "vms",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'machines'"
        ),
        "circle"
    );
    let new_count = || {
        runtime.block_on(async {
            mongodb::Client::with_uri_str(&new_mongo_uri)
                .await
                .unwrap()
                .database("circle_ghe")
                .collection::<bson::Document>("builds")
                .count_documents(bson::doc! {})
                .await
                .unwrap()
        })
    };
    assert_eq!(new_count(), 250);
    assert_eq!(moved["archive"], archive.display().to_string(), "{moved}");
    let (code, verified, _) = json(&mut tool(&["verify", &archive.display().to_string()]));
    assert_eq!(code, 0, "{verified}");
    assert_eq!(verified["databases"], 2, "{verified}");

    // Again: everything is there, nothing changes.
    let (code, again, stderr) = json(&mut transfer(&old_pg, &new_pg, mongo, &archive));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["changed"], 0, "second transfer: {again}");

    // A target holding other data is refused before anything is written.
    psql(
        &new_pg,
        "circle",
        "INSERT INTO builds VALUES (100000, 'not from the source')",
    );
    psql(
        &old_pg,
        "vms",
        "INSERT INTO machines VALUES (301, 'new on the old side')",
    );
    let (code, refused, _) = json(&mut transfer(&old_pg, &new_pg, mongo, &archive));
    assert_eq!(code, 1, "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("circle") && error.contains("differ"),
        "{refused}"
    );
    assert_eq!(psql(&new_pg, "vms", "SELECT count(*) FROM machines"), "300");
}

#[test]
fn a_transfer_killed_while_loading_commits_no_partial_database_and_the_rerun_finishes() {
    let tools = Toolbox::discover(std::env::vars_os());
    let pki = LabPki::new().unwrap();
    // Big enough that loading takes a while; small enough for a busy CI.
    let old_pg = old_postgres(&tools, &pki, 300_000);
    let new_pg = new_target(&tools, &pki);
    psql(&new_pg, "postgres", "ALTER ROLE circle CREATEDB");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("moved.tar");
    let mut child = transfer(&old_pg, &new_pg, None, &archive)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_while_copying(&mut child, &new_pg, &["circle", "vms"], 300_000);

    let (code, rerun, stderr) = json(&mut transfer(&old_pg, &new_pg, None, &archive));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        rerun["mismatches"].as_array().unwrap().is_empty(),
        "{rerun}"
    );
    assert_eq!(
        psql(&new_pg, "circle", "SELECT count(*) FROM builds"),
        "300000"
    );
    assert_eq!(psql(&new_pg, "vms", "SELECT count(*) FROM machines"), "300");
    assert!(archive.exists());
}

#[test]
fn usage_errors_exit_2_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("moved.tar.zst");
    let out = archive.display().to_string();
    let (code, none, _) = json(&mut tool(&["transfer", "--out", &out]));
    assert_eq!(code, 2, "{none}");
    assert!(
        none["error"]
            .as_str()
            .unwrap()
            .contains("nothing to transfer"),
        "{none}"
    );
    let (code, half, _) = json(
        tool(&["transfer", "--out", &out, "--pg-uri", "env:OLD_PG_URI"]).env(
            "OLD_PG_URI",
            "postgresql://old@localhost:1/postgres?sslmode=disable",
        ),
    );
    assert_eq!(code, 2, "{half}");
    assert!(
        half["error"]
            .as_str()
            .unwrap()
            .contains("a PostgreSQL source needs a target: give --to-pg-uri or --config"),
        "{half}"
    );
    let (code, argv, _) = json(
        tool(&[
            "transfer",
            "--out",
            &out,
            "--pg-uri",
            "env:OLD_PG_URI",
            "--to-pg-uri",
            &format!("postgresql://circle:{HOSTILE}@localhost/circle"),
        ])
        .env(
            "OLD_PG_URI",
            "postgresql://old@localhost:1/postgres?sslmode=disable",
        ),
    );
    assert_eq!(code, 2, "{argv}");
    assert!(
        argv["error"].as_str().unwrap().contains("env:NAME"),
        "{argv}"
    );
    assert!(!archive.exists());
}
