//! verify catches a flipped byte, a missing file and a truncated tail, and
//! restore writes nothing from a damaged archive.

use std::path::{Path, PathBuf};

use bson::{Document, doc};
use circle_export::{Error, inspect, restore};

use crate::{export_one_database, old_mongo, progress, restore_spec, tar_list};

/// Exports a small MongoDB-only archive to `name` in `dir`.
async fn small_archive(dir: &Path, name: &str) -> PathBuf {
    let (_member, old) = old_mongo();
    old.database("circle_ghe")
        .collection::<Document>("builds")
        .insert_many(
            (0..200).map(
                |i| doc! {"_id": i, "marker": format!("MARKER-{i:04}"), "pad": "y".repeat(500)},
            ),
        )
        .await
        .unwrap();
    let out = dir.join(name);
    export_one_database(&old, "circle_ghe", &out).await;
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_is_caught_and_nothing_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let archive = small_archive(dir.path(), "a.tar").await;
    assert!(inspect(&archive, None).unwrap().problems.is_empty());
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"MARKER-0100")
        .expect("the marker is in the plain tar");
    bytes[at + 7] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();
    let problems = inspect(&archive, None).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("mongo/circle_ghe/builds.bson") && problems[0].contains("SHA-256"),
        "{problems:?}"
    );

    // restore refuses before touching the target.
    let (_target_member, target) = old_mongo();
    let err = restore(
        restore_spec(archive.clone(), Some(&crate::standalone(&target)), None),
        &progress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Damaged(_)), "{err}");
    assert!(
        target
            .list_database_names()
            .await
            .unwrap()
            .iter()
            .all(|d| d != "circle_ghe"),
        "a damaged archive wrote to the target"
    );
    assert!(
        !dir.path().join("a.tar.restore.d").exists(),
        "the unpack directory is removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_file_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let archive = small_archive(dir.path(), "b.tar.gz").await;
    let listed = tar_list(&archive);
    assert_eq!(
        listed[0], "manifest.json",
        "the manifest comes first: {listed:?}"
    );
    // Rebuild the archive without the metadata file.
    let rebuilt = dir.path().join("c.tar");
    {
        let mut input = circle_export::archive::Source::open(&archive, None)
            .unwrap()
            .open_tar(&circle_export::Meter::default())
            .unwrap();
        let mut output = tar::Builder::new(std::fs::File::create(&rebuilt).unwrap());
        for entry in input.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            if path.ends_with(".metadata.json") {
                continue;
            }
            let mut header = entry.header().clone();
            output.append_data(&mut header, &path, &mut entry).unwrap();
        }
        output.finish().unwrap();
    }
    let problems = inspect(&rebuilt, None).unwrap().problems;
    assert_eq!(
        problems,
        ["mongo/circle_ghe/builds.metadata.json: missing from the archive"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_tail_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["d.tar.zst", "e.tar.gz", "f.tar"] {
        let archive = small_archive(dir.path(), name).await;
        let len = std::fs::metadata(&archive).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&archive)
            .unwrap();
        file.set_len(len * 2 / 3).unwrap();
        let problems = inspect(&archive, None).unwrap().problems;
        assert!(!problems.is_empty(), "{name}: a truncated archive passed");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("truncated") || p.contains("missing")),
            "{name}: {problems:?}"
        );
    }
}

/// A byte flipped in one PostgreSQL member: restore loads each database
/// while its member is read and commits it only once that member matches
/// the manifest — the damaged one is rolled back, the other is restored,
/// and the error names both.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_postgres_member_is_rolled_back_and_the_others_are_restored() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("pg.tar");
    two_databases_exported(20_000, "", &archive).await;
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"MARK-vms-12345")
        .expect("the marker is in the plain tar");
    bytes[at + 5] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();

    let text = restore_two_databases_with_vms_damaged(&archive, 20_000).await;
    assert!(text.contains("SHA-256"), "{text}");
}

/// Two databases, `circle` and `vms`, of `rows` rows each (`pad` added to
/// every row), exported by the library to `archive`.
async fn two_databases_exported(rows: u32, pad: &str, archive: &std::path::Path) {
    let source = crate::Pg::start();
    for db in ["circle", "vms"] {
        source.psql("postgres", &format!("CREATE DATABASE {db}"));
        source.psql(
            db,
            &format!(
                "CREATE TABLE t (id int PRIMARY KEY, v text); \
                 INSERT INTO t SELECT g, 'MARK-{db}-' || g || '{pad}' FROM generate_series(1, {rows}) g"
            ),
        );
    }
    let source_client = source.superuser_client();
    circle_export::export(
        circle_export::ExportSpec {
            mongo: None,
            postgres: Some(circle_export::PgSource {
                client: &source_client,
                databases: vec!["circle".to_owned(), "vms".to_owned()],
            }),
            encryption_keys: None,
            vault_data: None,
            danger_include_vault_init_output: false,
            out: archive.to_owned(),
            seal: None,
            parallel: 2,
            meter: circle_export::Meter::default(),
            tool: "circle-export test".to_owned(),
        },
        &progress,
    )
    .await
    .unwrap();
}

/// Restores `archive` (of [`two_databases_exported`], `vms` damaged) and
/// checks that `circle` was restored and `vms` rolled back; returns the
/// error's text.
async fn restore_two_databases_with_vms_damaged(archive: &std::path::Path, rows: u32) -> String {
    let target = crate::Pg::start();
    let client = target.provision(&["circle", "vms"]);
    let err = restore(
        restore_spec(archive.to_owned(), None, Some(&client)),
        &progress,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Damaged(_)), "{text}");
    assert!(text.contains("postgres/vms.sql"), "{text}");
    assert!(
        text.contains("postgres vms: not restored (rolled back)"),
        "{text}"
    );
    assert!(
        text.contains("restored, each from its own verified part: postgres circle"),
        "{text}"
    );
    assert_eq!(
        target.psql("circle", "SELECT count(*) FROM t"),
        rows.to_string()
    );
    assert_eq!(
        target.psql(
            "vms",
            "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
        ),
        "0",
        "the damaged database must not be committed"
    );
    text
}

/// The same with a `.tar.zst` whose databases are large enough to have
/// frames of their own: each is read by its own loader straight from the
/// archive (no unpacking), checked as it passes, and committed only once
/// it matched the manifest.
#[tokio::test(flavor = "multi_thread")]
async fn read_in_parallel_from_a_seekable_archive_a_damaged_database_is_rolled_back_too() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("pg.tar.zst");
    two_databases_exported(40_000, &"-padding".repeat(4), &archive).await;
    let index = circle_export::archive::Source::open(&archive, None)
        .unwrap()
        .seek_index()
        .unwrap()
        .expect("a seek index");
    let names: Vec<&str> = index.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["postgres/circle.sql", "postgres/vms.sql"]);
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = usize::try_from(index.members[1].offset).unwrap() + 4000;
    bytes[at] ^= 0x55;
    std::fs::write(&archive, &bytes).unwrap();
    let text = restore_two_databases_with_vms_damaged(&archive, 40_000).await;
    // Its own loader's verdict, with why.
    assert!(text.contains("postgres/vms.sql is damaged ("), "{text}");
}

/// An archive of the format before the seek index (one zstd frame, no
/// index) restores as before, through the streaming path: made here by
/// re-compressing a current archive's tar stream as a single frame.
#[tokio::test(flavor = "multi_thread")]
async fn an_archive_without_a_seek_index_restores_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current.tar.zst");
    two_databases_exported(40_000, &"-padding".repeat(4), &current).await;
    assert!(
        circle_export::archive::Source::open(&current, None)
            .unwrap()
            .seek_index()
            .unwrap()
            .is_some()
    );
    let tar = zstd::decode_all(std::fs::File::open(&current).unwrap()).unwrap();
    let old = dir.path().join("old.tar.zst");
    std::fs::write(&old, zstd::encode_all(tar.as_slice(), 3).unwrap()).unwrap();
    assert_eq!(
        circle_export::archive::Source::open(&old, None)
            .unwrap()
            .seek_index()
            .unwrap(),
        None
    );

    let target = crate::Pg::start();
    let client = target.provision(&["circle", "vms"]);
    let report = restore(restore_spec(old, None, Some(&client)), &progress)
        .await
        .unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    for db in ["circle", "vms"] {
        assert_eq!(target.psql(db, "SELECT count(*) FROM t"), "40000");
    }
}

/// A byte flipped in one MongoDB collection's member: the MongoDB part is
/// read and checked before anything is loaded, so that collection is left
/// out — nothing of it is written — while the others are restored, and the
/// error names both.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_mongo_collection_is_left_out_and_the_others_are_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (_member, old) = old_mongo();
    for (name, marker) in [("builds", "BUILD"), ("projects", "PROJT")] {
        old.database("circle_ghe")
            .collection::<Document>(name)
            .insert_many((0..300).map(
                |i| doc! {"_id": i, "marker": format!("{marker}-{i:04}"), "pad": "z".repeat(300)},
            ))
            .await
            .unwrap();
    }
    let archive = dir.path().join("two.tar");
    export_one_database(&old, "circle_ghe", &archive).await;
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes
        .windows(10)
        .position(|w| w == b"BUILD-0150")
        .expect("the marker is in the plain tar");
    bytes[at + 6] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();

    let (_target_member, target) = old_mongo();
    let err = restore(
        restore_spec(archive.clone(), Some(&crate::standalone(&target)), None),
        &progress,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Damaged(_)), "{text}");
    assert!(
        text.contains("mongo circle_ghe.builds: not restored (nothing of it was written)"),
        "{text}"
    );
    assert!(
        text.contains("restored, each from its own verified part: mongo circle_ghe.projects"),
        "{text}"
    );
    let names = target
        .database("circle_ghe")
        .list_collection_names()
        .await
        .unwrap();
    assert_eq!(names, ["projects"], "only the sound collection is there");
    assert_eq!(
        target
            .database("circle_ghe")
            .collection::<Document>("projects")
            .count_documents(doc! {})
            .await
            .unwrap(),
        300
    );
}
