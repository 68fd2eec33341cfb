//! The old Services machine's PostgreSQL 9.5, dumped by its own pg_dump
//! inside the `postgres` container (`--pg-dump-command`), restored into
//! PostgreSQL 15.
//!
//! `fixtures/pg95/circle.sql` is what pg_dump 9.5 writes for `pg_dump
//! --format=plain --no-owner --no-privileges --encoding=UTF8`, written by
//! hand from its source, `src/bin/pg_dump/pg_backup_archiver.c` of the 9.5
//! branch (the code-index copy read: `row_security` set, no
//! `idle_in_transaction_session_timeout`, which 9.6 added):
//!
//! - `_doSetFixedOutputState`: `SET statement_timeout = 0;`, `SET
//!   lock_timeout = 0;`, `SET client_encoding = '…';`, `SET
//!   standard_conforming_strings = on;`, `SET check_function_bodies =
//!   false;`, `SET client_min_messages = warning;`, `SET row_security =
//!   off;`;
//! - `_printTocEntry`: before each entry `_selectOutputSchema` (`SET
//!   search_path = <schema>, pg_catalog;` — tables are then named without
//!   their schema, in `CREATE TABLE` and in `COPY`), `_selectTablespace`
//!   (`SET default_tablespace = '';`) and, for a `TABLE` entry,
//!   `_setWithOids` → `_doSetWithOids`: `SET default_with_oids = true;`
//!   before a table created WITH OIDS, `false` before the next without
//!   (PostgreSQL 12+ refuses `true`);
//! - the header comment per entry, `Owner: -` under `--no-owner`;
//! - pg_dump.c's `dumpExtension`: `CREATE EXTENSION IF NOT EXISTS plpgsql
//!   WITH SCHEMA pg_catalog;` and its `COMMENT ON EXTENSION`.
//!
//! A stand-in for `docker exec -i -e PGPASSWORD postgres` prints it (and
//! records what it was given), so the whole export path runs as it would on
//! the old machine.

use std::path::Path;

use circle_export::restore;
use secrecy::ExposeSecret as _;

use crate::{Pg, progress, restore_spec};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/pg95/circle.sql"
);

/// Writes the stand-in for the container's pg_dump into `dir`.
fn container(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("docker-exec-postgres");
    ha_lab::write_executable(
        &script,
        format!(
            "#!/bin/sh\n\
             # What `docker exec -i -e PGPASSWORD postgres` would run.\n\
             printf '%s\\n' \"$@\" > \"$0.args\"\n\
             printf '%s' \"$PGPASSWORD\" > \"$0.password\"\n\
             [ \"$1\" = pg_dump ] || exit 64\n\
             shift\n\
             [ \"$1\" = --version ] && {{ echo 'pg_dump (PostgreSQL) 9.5.25'; exit 0; }}\n\
             exec cat '{FIXTURE}'\n"
        ),
    )
    .unwrap();
    script
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pg_dump_9_5_file_restores_into_postgres_15_with_identical_rows() {
    let dir = tempfile::tempdir().unwrap();
    let script = container(dir.path());
    let old = Pg::start();
    old.psql("postgres", "CREATE DATABASE circle");
    let source = old
        .superuser_client()
        .with_dump_command(vec![script.display().to_string()])
        .unwrap();
    let out = dir.path().join("old.tar.zst");
    let report = circle_export::export(
        crate::export_spec(
            None,
            Some(circle_export::PgSource {
                client: &source,
                databases: vec!["circle".to_owned()],
            }),
            &out,
        ),
        &progress,
    )
    .await
    .unwrap();
    let m = &report.manifest;
    assert_eq!(
        m.postgres_dump_version.as_deref(),
        Some("pg_dump (PostgreSQL) 9.5.25")
    );
    // Tables named as pg_dump 10+ names them, schema first.
    let tables: Vec<(String, u64)> = m.postgres[0]
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.rows))
        .collect();
    assert_eq!(
        tables,
        [
            ("legacy.settings".to_owned(), 1),
            ("public.builds".to_owned(), 3),
            ("public.flags".to_owned(), 2)
        ]
    );
    // The connection went as one argument, the password only through the
    // environment.
    let args = std::fs::read_to_string(dir.path().join("docker-exec-postgres.args")).unwrap();
    let password = old.server.superuser_password().expose_secret().to_owned();
    assert!(args.starts_with("pg_dump\n"), "{args}");
    assert!(args.contains("--no-owner\n"), "{args}");
    assert!(
        args.lines()
            .any(|a| a.starts_with("--dbname=host='localhost'") && a.contains("dbname='circle'")),
        "{args}"
    );
    assert!(!args.contains(&password), "the password reached argv");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("docker-exec-postgres.password")).unwrap(),
        password
    );

    let new = Pg::start();
    let target = new.superuser_client();
    let restored = restore(restore_spec(out.clone(), None, Some(&target)), &progress)
        .await
        .unwrap();
    assert!(restored.mismatches.is_empty(), "{:?}", restored.mismatches);
    assert!(
        restored
            .warnings
            .iter()
            .any(|w| w.contains("public.flags had OIDs") && w.contains("without the hidden oid")),
        "{:?}",
        restored.warnings
    );
    let rows = new.psql(
        "circle",
        "SET TimeZone = 'UTC'; SELECT id, vcs_url, payload::text, started_at, updated_at FROM builds \
         ORDER BY id",
    );
    assert_eq!(
        rows,
        "1|https://github.com/circleci/one|{\"n\": 1, \"tags\": [\"a\", \"b\"]}|2016-03-01 10:00:00+00|\n\
         2|https://github.com/circleci/two|{\"q\": \"it's \\\"x\\\"\"}|2017-12-31 23:59:59.5+00|2018-01-01 00:00:00+00\n\
         3|https://github.com/circleci/tr\\tee|||"
    );
    assert_eq!(
        new.psql("circle", "SELECT name, enabled FROM flags ORDER BY name"),
        "dark_mode|t\nünïcode|"
    );
    assert_eq!(
        new.psql("circle", "SELECT key, value FROM legacy.settings"),
        "retention|30d"
    );
    // The sequence, the view, the trigger and its function came along.
    assert_eq!(
        new.psql(
            "circle",
            "INSERT INTO builds (vcs_url) VALUES ('x') RETURNING id; \
             SELECT count(*) FROM recent; \
             UPDATE builds SET vcs_url = 'y' WHERE id = 4 RETURNING updated_at IS NOT NULL"
        ),
        "4\n3\nt"
    );

    // A second restore onto another fresh server, then a third onto it:
    // the third finds it restored and changes nothing.
    let again = Pg::start();
    let target = again.superuser_client();
    restore(restore_spec(out.clone(), None, Some(&target)), &progress)
        .await
        .unwrap();
    let third = restore(restore_spec(out, None, Some(&target)), &progress)
        .await
        .unwrap();
    assert_eq!(third.skipped, ["postgres circle"], "{:?}", third.restored);
    assert!(third.restored.is_empty(), "{:?}", third.restored);

    // A transfer through the same container says the same.
    let moved = Pg::start();
    let target = moved.superuser_client();
    let report = circle_export::transfer(
        circle_export::TransferSpec {
            mongo: None,
            postgres: Some(circle_export::TransferPostgres {
                source: &source,
                databases: vec!["circle".to_owned()],
                target: &target,
            }),
            encryption_keys: None,
            vault_data: None,
            danger_include_vault_init_output: false,
            out: dir.path().join("moved.tar.zst"),
            seal: None,
            drop: false,
            live: false,
            dry_run: false,
            parallel: 2,
            meter: circle_export::Meter::default(),
            failover_wait: std::time::Duration::from_secs(60),
            tool: "circle-export test".to_owned(),
        },
        &progress,
    )
    .await
    .unwrap();
    assert!(
        report.restore.mismatches.is_empty(),
        "{:?}",
        report.restore.mismatches
    );
    assert!(
        report
            .restore
            .warnings
            .iter()
            .any(|w| w.contains("public.flags had OIDs")),
        "{:?}",
        report.restore.warnings
    );
    assert_eq!(moved.psql("circle", "SELECT count(*) FROM builds"), "3");
}
