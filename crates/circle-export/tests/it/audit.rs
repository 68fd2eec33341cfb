//! The findings of the archive audit (#25), each as an attacker builds it:
//! hand-made archives whose manifest sizes and SHA-256 are honest, so only
//! what a restore does with their content can stop them. Each payload goes
//! through the streaming path (`.tar`) and the seek-index path (`.tar.zst`
//! whose PostgreSQL member is read by a loader of its own).

use std::path::{Path, PathBuf};

use circle_export::archive::{ArchiveWriter, Compression};
use circle_export::manifest::{CollectionEntry, DatabaseEntry, FileEntry, Manifest, TableEntry};
use circle_export::{inspect, restore};
use sha2::{Digest as _, Sha256};

use crate::{Pg, progress, restore_spec};

/// Writes `dir/name` (its extension chooses the compression) holding
/// `manifest`, its `files` filled in from `files` with honest sizes and
/// SHA-256s, then `files`.
fn archive(dir: &Path, name: &str, manifest: Manifest, files: &[(&str, &[u8])]) -> PathBuf {
    let manifest = crate::honest_manifest(manifest, files);
    let path = dir.join(name);
    let compression = Compression::from_path(&path).unwrap();
    let mut writer = ArchiveWriter::create(&path, compression, 1, None).unwrap();
    writer
        .append_bytes("manifest.json", &serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    // Through a file, as export writes members (a large one then starts
    // a zstd frame of its own and the seek index lists it).
    let staged = dir.join("staged-member");
    for (name, bytes) in files {
        std::fs::write(&staged, bytes).unwrap();
        writer
            .append_file(name, &staged, &circle_export::Meter::default())
            .unwrap();
    }
    writer.finish().unwrap()
}

/// Exports database `keep` of `source` alone to `out`.
async fn export_keep(source: &circle_export::PgClient, out: &Path) -> circle_export::ExportReport {
    circle_export::export(
        circle_export::ExportSpec {
            mongo: None,
            postgres: Some(circle_export::PgSource {
                client: source,
                databases: vec!["keep".to_owned()],
            }),
            encryption_keys: None,
            vault_data: None,
            danger_include_vault_init_output: false,
            out: out.to_owned(),
            seal: None,
            parallel: 2,
            tool: "circle-export test".to_owned(),
            meter: circle_export::Meter::default(),
        },
        &progress,
    )
    .await
    .unwrap()
}

/// A transfer of database `keep` from `source` to `target`, the archive
/// written to `out`.
fn transfer_keep<'a>(
    source: &'a circle_export::PgClient,
    target: &'a circle_export::PgClient,
    out: PathBuf,
    drop: bool,
) -> circle_export::TransferSpec<'a> {
    circle_export::TransferSpec {
        mongo: None,
        postgres: Some(circle_export::TransferPostgres {
            source,
            databases: vec!["keep".to_owned()],
            target,
        }),
        encryption_keys: None,
        vault_data: None,
        danger_include_vault_init_output: false,
        out,
        seal: None,
        drop,
        live: false,
        dry_run: false,
        parallel: 2,
        meter: circle_export::Meter::default(),
        failover_wait: std::time::Duration::from_secs(60),
        tool: "circle-export test".to_owned(),
    }
}

/// A dump of database `keep` large enough (> 1 MiB) for the seek index to
/// list it: a table and its rows, then `payload`.
fn dump_with(payload: &str) -> (Vec<u8>, u64) {
    let rows = 700_000_u64;
    let mut sql = String::from(
        "SET standard_conforming_strings = on;\nCREATE TABLE public.t (a int);\n\
         COPY public.t (a) FROM stdin;\n",
    );
    sql.push_str(&"1\n".repeat(rows as usize));
    sql.push_str("\\.\n");
    sql.push_str(payload);
    (sql.into_bytes(), rows)
}

fn keep_manifest(rows: u64) -> Manifest {
    Manifest {
        postgres: vec![DatabaseEntry {
            db: "keep".to_owned(),
            tables: vec![TableEntry {
                name: "public.t".to_owned(),
                rows,
                digest: None,
            }],
        }],
        ..Manifest::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_lexer_and_role_payloads_are_refused_on_both_paths_and_nothing_is_committed() {
    let pg = Pg::start();
    let client = pg.provision(&["keep"]);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let m = marker.display().to_string();
    let payloads = [
        // 1. Shell through the arguments of an "allowed" meta-command.
        format!("\\restrict `touch {m}; echo k1`\n"),
        format!("\\c keep `touch {m}`\n"),
        // 3. `\connect` in our own archive.
        "\\connect postgres\nCREATE TABLE public.elsewhere (a int);\n".to_owned(),
        // 2. Where the old scanner disagreed with psql's lexer.
        format!("SELECT (1; COPY t FROM stdin;\n\\! touch {m}\n"),
        format!("SELECT x$$$ \\! touch {m}\n"),
        // 4. Role and password statements.
        "ALTER ROLE CURRENT_USER PASSWORD 'x';\n".to_owned(),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let (sql, rows) = dump_with(payload);
        for name in ["a.tar", "a.tar.zst"] {
            let path = archive(
                dir.path(),
                name,
                keep_manifest(rows),
                &[("postgres/keep.sql", &sql)],
            );
            if name.ends_with(".zst") {
                let index = circle_export::archive::Source::open(&path, None)
                    .unwrap()
                    .seek_index()
                    .unwrap();
                assert!(
                    index.is_some_and(|i| i.members.iter().any(|m| m.name == "postgres/keep.sql")),
                    "the test must take the seek-index path"
                );
            }
            let inspection = inspect(&path, None).unwrap();
            assert!(
                !inspection.problems.is_empty(),
                "{i} {name}: verify passed {payload:?}"
            );
            let err = restore(restore_spec(path, None, Some(&client)), &progress)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("postgres/keep.sql"), "{i} {name}: {err}");
            assert!(!marker.exists(), "{i} {name}: the shell command ran");
            assert_eq!(
                pg.psql(
                    "keep",
                    "SELECT count(*) FROM pg_tables WHERE tablename IN ('t', 'elsewhere')"
                ),
                "0",
                "{i} {name}: something was committed"
            );
            assert_eq!(
                pg.psql(
                    "postgres",
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'elsewhere'"
                ),
                "0"
            );
        }
    }
    // The app role's password was never changed: it still logs in.
    assert!(client.databases(&[]).await.is_ok());
    // The same dump without a payload restores, on both paths.
    let (sql, rows) = dump_with("");
    for name in ["b.tar", "b.tar.zst"] {
        let path = archive(
            dir.path(),
            name,
            keep_manifest(rows),
            &[("postgres/keep.sql", &sql)],
        );
        let mut spec = restore_spec(path, None, Some(&client));
        spec.drop = true;
        let report = restore(spec, &progress).await.unwrap();
        assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
        assert_eq!(pg.psql("keep", "SELECT count(*) FROM public.t"), "700000");
    }
}

#[test]
fn system_namespaces_in_a_manifest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (db, collection) in [
        ("admin", "system.users"),
        ("local", "oplog.rs"),
        ("config", "system.sessions"),
        ("circle_ghe", "system.views"),
    ] {
        let bson = format!("mongo/{db}/{collection}.bson");
        let manifest = Manifest {
            mongo: vec![CollectionEntry {
                db: db.to_owned(),
                collection: collection.to_owned(),
                documents: 0,
            }],
            ..Manifest::default()
        };
        let path = archive(dir.path(), "sys.tar", manifest, &[(&bson, b"")]);
        let inspection = inspect(&path, None).unwrap();
        assert!(
            inspection
                .problems
                .iter()
                .any(|p| p.contains("system namespace")),
            "{db}.{collection}: {:?}",
            inspection.problems
        );
    }
}

/// A tar header written by hand: `kind`, `name`, a declared `size`.
fn header(kind: tar::EntryType, name: &str, size: u64) -> [u8; 512] {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_path(name).unwrap();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_cksum();
    *header.as_bytes()
}

#[test]
fn oversized_name_headers_and_members_are_refused_at_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = keep_manifest(0);
    let five = b"x;\n\n\n";
    let listed = |size: u64| {
        let mut m = manifest.clone();
        m.format = circle_export::manifest::FORMAT;
        m.files = vec![FileEntry {
            path: "postgres/keep.sql".to_owned(),
            size,
            sha256: Sha256::digest(five)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }];
        serde_json::to_vec(&m).unwrap()
    };
    let tar_of = |blocks: &[&[u8]]| {
        let mut bytes = Vec::new();
        for block in blocks {
            bytes.extend_from_slice(block);
            bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        }
        bytes
    };
    let json = listed(5);
    let manifest_header = header(tar::EntryType::Regular, "manifest.json", json.len() as u64);
    // A 1 GiB GNU long name: refused before anything buffers it (the data
    // is not even there).
    let long = header(tar::EntryType::GNULongName, "././@LongLink", 1 << 30);
    let path = dir.path().join("long.tar");
    std::fs::write(&path, tar_of(&[&manifest_header, &json, &long])).unwrap();
    let problems = inspect(&path, None).unwrap().problems.join("\n");
    assert!(
        problems.contains("GNULongName header of 1073741824 bytes"),
        "{problems}"
    );

    // A member whose header says 2 GiB where the manifest says 5 bytes:
    // refused at its header, nothing of it read or written.
    let big = header(tar::EntryType::Regular, "postgres/keep.sql", 2 << 30);
    let path = dir.path().join("big.tar");
    std::fs::write(&path, tar_of(&[&manifest_header, &json, &big])).unwrap();
    let unpack = dir.path().join("unpacked");
    let problems = inspect(&path, Some(&unpack)).unwrap().problems.join("\n");
    assert!(
        problems.contains("its header says 2147483648 bytes"),
        "{problems}"
    );
    assert!(!unpack.join("postgres/keep.sql").exists());

    // A member the manifest does not list.
    let extra = header(tar::EntryType::Regular, "postgres/other.sql", 5);
    let path = dir.path().join("extra.tar");
    std::fs::write(&path, tar_of(&[&manifest_header, &json, &extra, five])).unwrap();
    let problems = inspect(&path, None).unwrap().problems.join("\n");
    assert!(
        problems.contains("not listed in the manifest"),
        "{problems}"
    );
}

/// 7. A target table with the archive's row count but other rows is not
/// "already restored": restore and transfer refuse it without `--drop`;
/// the same rows (after a real restore, or a transfer) are left alone.
#[tokio::test(flavor = "multi_thread")]
async fn equal_counts_but_other_rows_are_refused_by_restore_and_transfer() {
    let old = Pg::start();
    let new = Pg::start();
    let source = old.superuser_client();
    old.psql("postgres", "CREATE DATABASE keep");
    old.psql(
        "keep",
        "CREATE TABLE public.t (a int, b text); INSERT INTO public.t VALUES (1, 'x'), (2, 'y')",
    );
    let target = new.provision(&["keep"]);
    new.psql(
        "keep",
        "CREATE TABLE public.t (a int, b text); INSERT INTO public.t VALUES (98, 'x'), (99, 'y'); \
         ALTER TABLE public.t OWNER TO circle",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keep.tar.zst");
    let export = export_keep(&source, &out).await;
    let table = &export.manifest.postgres[0].tables[0];
    assert_eq!(table.rows, 2);
    assert_eq!(table.digest.as_deref().map(str::len), Some(32));

    let err = restore(restore_spec(out.clone(), None, Some(&target)), &progress)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rows differ from the archive's"), "{err}");
    assert_eq!(
        new.psql(
            "keep",
            "SELECT string_agg(a::text, ',' ORDER BY a) FROM public.t"
        ),
        "98,99"
    );

    let transfer =
        |drop: bool, name: &str| transfer_keep(&source, &target, dir.path().join(name), drop);
    let err = circle_export::transfer(transfer(false, "t1.tar.zst"), &progress)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rows differ from the source's"), "{err}");
    assert_eq!(
        new.psql(
            "keep",
            "SELECT string_agg(a::text, ',' ORDER BY a) FROM public.t"
        ),
        "98,99"
    );

    // With --drop the archive's rows replace them; then both see the same
    // rows and leave them.
    let mut spec = restore_spec(out.clone(), None, Some(&target));
    spec.drop = true;
    restore(spec, &progress).await.unwrap();
    assert_eq!(
        new.psql(
            "keep",
            "SELECT string_agg(a::text, ',' ORDER BY a) FROM public.t"
        ),
        "1,2"
    );
    let again = restore(restore_spec(out, None, Some(&target)), &progress)
        .await
        .unwrap();
    assert!(again.restored.is_empty(), "{:?}", again.restored);
    assert_eq!(again.skipped, ["postgres keep"]);
    let again = circle_export::transfer(transfer(false, "t2.tar.zst"), &progress)
        .await
        .unwrap();
    assert!(
        again.restore.restored.is_empty(),
        "{:?}",
        again.restore.restored
    );
}

/// Restore and transfer start no `psql`: every PostgreSQL program the
/// client starts comes from its bin dir, here wrappers that log their name
/// and run the real program. Export and transfer start `pg_dump` (it reads
/// the source); nothing starts `psql`.
#[tokio::test(flavor = "multi_thread")]
async fn restore_and_transfer_start_no_psql() {
    let old = Pg::start();
    let new = Pg::start();
    old.psql("postgres", "CREATE DATABASE keep");
    old.psql(
        "keep",
        "CREATE TABLE public.t (a int); INSERT INTO public.t SELECT generate_series(1, 1000)",
    );
    let dir = tempfile::tempdir().unwrap();
    let wrappers = dir.path().join("bin");
    std::fs::create_dir(&wrappers).unwrap();
    let log = dir.path().join("started.log");
    for program in ["pg_dump", "psql", "pg_dumpall", "pg_restore"] {
        let path = wrappers.join(program);
        ha_lab::write_executable(
            &path,
            format!(
                "#!/bin/sh\necho {program} >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                old.server.bin_dir().join(program).display()
            ),
        )
        .unwrap();
    }
    let wrap = |client: circle_export::PgClient| {
        circle_export::PgClient::new(client.conn().clone(), Some(wrappers.clone())).unwrap()
    };
    let source = wrap(old.superuser_client());
    let target = wrap(new.provision(&[]));
    new.psql("postgres", "ALTER ROLE circle CREATEDB");
    let out = dir.path().join("keep.tar.zst");
    export_keep(&source, &out).await;
    let started = |what: &str| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains("psql"), "{what} started psql: {text}");
        std::fs::remove_file(&log).ok();
        text
    };
    assert!(started("export").contains("pg_dump"));
    restore(restore_spec(out, None, Some(&target)), &progress)
        .await
        .unwrap();
    assert_eq!(started("restore"), "");
    assert_eq!(new.psql("keep", "SELECT count(*) FROM public.t"), "1000");
    new.psql("postgres", "DROP DATABASE keep");
    // The transfer's archive, sealed: it opens with the identity only.
    let identity = circle_export::seal::Identity::generate().unwrap();
    let sealing = circle_export::seal::Sealing::Recipients(vec![identity.recipient()]);
    let moved = dir.path().join("moved.tar.zst.age");
    let mut spec = transfer_keep(&source, &target, moved.clone(), false);
    spec.seal = Some(&sealing);
    let report = circle_export::transfer(spec, &progress).await.unwrap();
    assert!(report.restore.sealed);
    assert!(started("transfer").contains("pg_dump"));
    assert_eq!(new.psql("keep", "SELECT count(*) FROM public.t"), "1000");
    assert!(
        circle_export::archive::Source::open(&moved, None)
            .unwrap_err()
            .is_key_needed()
    );
    let unsealing = circle_export::seal::Unsealing::Identities(vec![identity]);
    let source = circle_export::archive::Source::open(&moved, Some(&unsealing)).unwrap();
    let inspection =
        circle_export::inspect_metered(&source, None, &circle_export::Meter::default()).unwrap();
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    assert_eq!(inspection.manifest.postgres[0].tables[0].rows, 1000);
}
