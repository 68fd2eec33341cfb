//! Targets that are not ready: a PostgreSQL database missing on the new
//! server is created, owned by the restoring role — or, when that role may
//! not create databases, the restore says what to do and writes nothing.

use circle_export::{Error, ExportSpec, PgClient, PgConn, RestoreSpec, export, restore};

use crate::{HOSTILE, Pg, progress, restore_spec};

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_database_is_created_by_a_role_that_may_and_explained_to_one_that_may_not() {
    let old = Pg::start();
    old.psql("postgres", "CREATE DATABASE vms");
    old.psql(
        "vms",
        "CREATE TABLE machines (id int PRIMARY KEY, name text); \
         INSERT INTO machines SELECT g, 'm' || g FROM generate_series(1, 250) g",
    );
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("pg.tar");
    export(
        ExportSpec {
            mongo: None,
            postgres: Some(circle_export::PgSource {
                client: &old.superuser_client(),
                databases: vec!["vms".to_owned()],
            }),
            encryption_keys: None,
            vault_data: None,
            danger_include_vault_init_output: false,
            out: archive.clone(),
            seal: None,
            parallel: 2,
            tool: "circle-export test".to_owned(),
            meter: circle_export::Meter::default(),
        },
        &progress,
    )
    .await
    .unwrap();

    let new = Pg::start();
    let escaped = HOSTILE.replace('\'', "''");
    new.psql(
        "postgres",
        &format!("CREATE ROLE plain LOGIN PASSWORD '{escaped}'"),
    );
    new.psql(
        "postgres",
        &format!("CREATE ROLE creator LOGIN CREATEDB PASSWORD '{escaped}'"),
    );
    let client = |user: &str| {
        PgClient::new(
            PgConn::parse_uri(&new.uri(user, HOSTILE)).unwrap(),
            Some(new.server.bin_dir().to_owned()),
        )
        .unwrap()
    };
    let spec = |pg| restore_spec(archive.clone(), None, Some(pg));

    let plain = client("plain");
    let dry = restore(
        RestoreSpec {
            dry_run: true,
            ..spec(&plain)
        },
        &progress,
    )
    .await
    .unwrap_err();
    assert!(dry.to_string().contains("CREATEDB"), "{dry}");
    let err = restore(spec(&plain), &progress).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Invalid(_)), "{text}");
    assert!(
        text.contains("vms") && text.contains("pg-provision"),
        "{text}"
    );
    assert!(!text.contains("wörd"), "a password leaked: {text}");
    assert_eq!(
        new.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'vms'"
        ),
        "0"
    );

    let creator = client("creator");
    let report = restore(spec(&creator), &progress).await.unwrap();
    assert_eq!(report.restored, vec!["postgres vms (created)".to_owned()]);
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert_eq!(
        new.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'vms'"
        ),
        "creator"
    );
    assert_eq!(
        new.psql(
            "vms",
            "SELECT tableowner || ' ' || (SELECT count(*) FROM machines) FROM pg_tables WHERE tablename = 'machines'"
        ),
        "creator 250"
    );
    let again = restore(spec(&creator), &progress).await.unwrap();
    assert!(again.restored.is_empty(), "{:?}", again.restored);
}
