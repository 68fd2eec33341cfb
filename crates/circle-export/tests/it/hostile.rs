//! Archives an attacker builds, with checksums that match (they prove only
//! that an archive is self-consistent): a restore loads data and nothing
//! else, and refuses before it writes anything.

use std::path::{Path, PathBuf};

use circle_export::manifest::{DatabaseEntry, Manifest, TableEntry};
use circle_export::{RestoreSpec, inspect, restore};

use crate::{Pg, progress};

/// Writes `dir/name.tar` holding `manifest` (its `files` filled in from
/// `files` with honest sizes and SHA-256s) and `files`.
fn archive(dir: &Path, manifest: Manifest, files: &[(&str, &[u8])]) -> PathBuf {
    let manifest = crate::honest_manifest(manifest, files);
    let path = dir.join("hostile.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let json = serde_json::to_vec(&manifest).unwrap();
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).unwrap();
    };
    add("manifest.json", &json);
    for (name, bytes) in files {
        add(name, bytes);
    }
    tar.into_inner().unwrap();
    path
}

fn one_database(db: &str, tables: &[(&str, u64)]) -> Manifest {
    Manifest {
        postgres: vec![DatabaseEntry {
            db: db.to_owned(),
            tables: tables
                .iter()
                .map(|(name, rows)| TableEntry {
                    name: (*name).to_owned(),
                    rows: *rows,
                    digest: None,
                })
                .collect(),
        }],
        ..Manifest::default()
    }
}

fn spec<'a>(archive: PathBuf, pg: &'a circle_export::PgClient, dry_run: bool) -> RestoreSpec<'a> {
    RestoreSpec {
        archive,
        unsealing: None,
        mongo: None,
        postgres: Some(pg),
        drop: false,
        dry_run,
        parallel: 2,
        meter: circle_export::Meter::new(),
        failover_wait: std::time::Duration::from_secs(60),
    }
}

#[tokio::test]
async fn a_psql_shell_escape_in_a_dump_is_refused_before_anything_runs() {
    let pg = Pg::start();
    let client = pg.provision(&["keep"]);
    let dir = tempfile::tempdir().unwrap();
    for (i, payload) in [
        "\\! touch {marker}\n",
        "SELECT 1; \\! touch {marker}\n",
        "\\connect keep \\\\ \\! touch {marker}\n",
        "SELECT E'a''b\\'c'; \\! touch {marker}\n",
        "\\o |touch {marker}\nSELECT 1;\n",
    ]
    .iter()
    .enumerate()
    {
        let marker = dir.path().join(format!("pwned-{i}"));
        let sql = format!(
            "SET standard_conforming_strings = on;\nCREATE TABLE public.t (a int);\n{}",
            payload.replace("{marker}", &marker.display().to_string())
        );
        let path = archive(
            dir.path(),
            one_database("keep", &[]),
            &[("postgres/keep.sql", sql.as_bytes())],
        );
        let inspection = inspect(&path, None).unwrap();
        assert!(
            inspection
                .problems
                .iter()
                .any(|p| p.contains("postgres/keep.sql line")
                    && (p.contains("meta-command") || p.contains("backslash"))),
            "{payload}: {:?}",
            inspection.problems
        );
        let err = restore(spec(path, &client, false), &progress)
            .await
            .unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("meta-command") || err.contains("backslash"),
            "{err}"
        );
        assert!(!marker.exists(), "{payload}: the shell command ran");
        assert_eq!(
            pg.psql(
                "keep",
                "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
            ),
            "0",
            "{payload}: something was written"
        );
    }
}

#[tokio::test]
async fn a_table_name_built_to_inject_sql_never_reaches_the_server_even_in_a_dry_run() {
    let pg = Pg::start();
    let client = pg.provision(&["keep"]);
    pg.psql(
        "keep",
        "CREATE TABLE public.keep (a int); INSERT INTO public.keep VALUES (1)",
    );
    let dir = tempfile::tempdir().unwrap();
    let sql = b"SET standard_conforming_strings = on;\n";
    let path = archive(
        dir.path(),
        one_database("keep", &[("public.keep; DROP TABLE public.keep; --", 0)]),
        &[("postgres/keep.sql", sql)],
    );
    let inspection = inspect(&path, None).unwrap();
    assert!(
        inspection
            .problems
            .iter()
            .any(|p| p.contains("is not a table name")),
        "{:?}",
        inspection.problems
    );
    let err = restore(spec(path.clone(), &client, true), &progress).await;
    assert!(err.is_err(), "the dry run accepted the archive");
    assert_eq!(pg.psql("keep", "SELECT count(*) FROM public.keep"), "1");
    // The count query itself refuses such a name, whoever calls it.
    let refused = client
        .count_rows(
            "keep",
            &["public.keep; DROP TABLE public.keep; --".to_owned()],
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(pg.psql("keep", "SELECT count(*) FROM public.keep"), "1");
    // Quoted names that hold anything are names, and are counted as such.
    pg.psql(
        "keep",
        "CREATE TABLE public.\"a (b; c\" (x int); ALTER TABLE public.\"a (b; c\" OWNER TO circle",
    );
    let counted = client
        .count_rows("keep", &["public.\"a (b; c\"".to_owned()])
        .await
        .unwrap();
    assert_eq!(counted, [("public.\"a (b; c\"".to_owned(), 0)]);
}

#[tokio::test]
async fn manifest_names_cannot_reach_outside_the_archive_or_go_unlisted() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = one_database("../../../etc/passwd", &[]);
    manifest.mongo = vec![circle_export::manifest::CollectionEntry {
        db: "..".to_owned(),
        collection: "../../x".to_owned(),
        documents: 1,
    }];
    let path = archive(dir.path(), manifest, &[]);
    let inspection = inspect(&path, None).unwrap();
    let problems = inspection.problems.join("\n");
    assert!(
        problems.contains("collection ...../../x has no data file mongo/%2E./%2E.%2F..%2Fx.bson"),
        "{problems}"
    );
    assert!(
        problems.contains("has no SQL file postgres/%2E.%2F..%2F..%2Fetc%2Fpasswd.sql"),
        "{problems}"
    );
}

/// `--drop` replaces a database's objects in the load's own transaction: a
/// load that fails leaves the old data where it was.
#[tokio::test]
async fn a_failing_load_with_drop_leaves_the_old_database_intact() {
    let pg = Pg::start();
    let client = pg.provision(&["keep"]);
    pg.psql(
        "keep",
        "CREATE TABLE public.old (a int); INSERT INTO public.old VALUES (1); \
         ALTER TABLE public.old OWNER TO circle",
    );
    let dir = tempfile::tempdir().unwrap();
    let sql = b"SET standard_conforming_strings = on;\nCREATE TABLE public.t (a int);\n\
                INSERT INTO public.t VALUES (1/0);\n";
    let path = archive(
        dir.path(),
        one_database("keep", &[]),
        &[("postgres/keep.sql", sql)],
    );
    let mut spec = spec(path, &client, false);
    spec.drop = true;
    let err = restore(spec, &progress).await.unwrap_err();
    assert!(err.to_string().contains("division by zero"), "{err}");
    assert_eq!(pg.psql("keep", "SELECT count(*) FROM public.old"), "1");
    assert_eq!(
        pg.psql(
            "keep",
            "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
        ),
        "0"
    );
}

/// CircleCI's Vault container writes `vault init` output (unseal keys,
/// root token) into its data directory: export leaves such a file out and
/// says so; kept on purpose, verify warns about it.
#[tokio::test]
async fn vault_init_output_is_left_out_of_an_export_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    let vault = dir.path().join("vault");
    std::fs::create_dir_all(vault.join("core")).unwrap();
    std::fs::write(vault.join("core/_keyring"), b"{\"Value\":\"AAAA\"}").unwrap();
    std::fs::write(
        vault.join("init.txt"),
        "Unseal Key 1: 4f3c-secret-share\nInitial Root Token: s.root-wörd\n",
    )
    .unwrap();
    let export = |danger: bool, out: PathBuf| {
        let dump = dump.clone();
        let vault = vault.clone();
        async move {
            circle_export::export(
                circle_export::ExportSpec {
                    mongo: Some(circle_export::MongoSource::DumpDir(dump)),
                    postgres: None,
                    encryption_keys: None,
                    vault_data: Some(vault),
                    danger_include_vault_init_output: danger,
                    out,
                    seal: None,
                    parallel: 2,
                    tool: "test".to_owned(),
                    meter: circle_export::Meter::new(),
                },
                &progress,
            )
            .await
            .unwrap()
        }
    };
    let safe = export(false, dir.path().join("safe.tar")).await;
    assert_eq!(safe.left_out.len(), 1, "{:?}", safe.left_out);
    assert!(safe.left_out[0].contains("init.txt"));
    let listed = crate::tar_list(&safe.archive);
    assert!(
        listed
            .iter()
            .any(|p| p.ends_with("vault-data/core/_keyring")),
        "{listed:?}"
    );
    assert!(!listed.iter().any(|p| p.contains("init.txt")), "{listed:?}");
    assert!(inspect(&safe.archive, None).unwrap().warnings.is_empty());

    let kept = export(true, dir.path().join("kept.tar")).await;
    assert!(kept.left_out.is_empty());
    let inspection = inspect(&kept.archive, None).unwrap();
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    assert_eq!(inspection.warnings.len(), 1, "{:?}", inspection.warnings);
    assert!(inspection.warnings[0].contains("vault-data/init.txt"));
    assert!(!inspection.warnings[0].contains("secret-share"));
}

/// "Already restored" is decided by content: a target holding as many
/// documents as the archive, but other ones, is not skipped as done.
#[tokio::test]
async fn a_target_with_the_same_count_but_other_documents_is_not_already_restored() {
    use bson::doc;
    let dir = tempfile::tempdir().unwrap();
    let archived = bson::to_vec(&doc! {"_id": 1, "v": "archived"}).unwrap();
    let manifest = Manifest {
        mongo: vec![circle_export::manifest::CollectionEntry {
            db: "app".to_owned(),
            collection: "c".to_owned(),
            documents: 1,
        }],
        ..Manifest::default()
    };
    let path = archive(dir.path(), manifest, &[("mongo/app/c.bson", &archived)]);
    let (_member, target) = crate::old_mongo();
    let c = target.database("app").collection::<bson::Document>("c");
    c.insert_one(doc! {"_id": 2, "v": "unrelated"})
        .await
        .unwrap();
    let target = circle_export::MongoConnection {
        client: target,
        replica_set: false,
    };
    let spec = || RestoreSpec {
        archive: path.clone(),
        unsealing: None,
        mongo: Some(&target),
        postgres: None,
        drop: false,
        dry_run: false,
        parallel: 2,
        meter: circle_export::Meter::new(),
        failover_wait: std::time::Duration::from_secs(60),
    };
    let err = restore(spec(), &progress).await.unwrap_err();
    assert!(err.to_string().contains("not the same ones"), "{err}");
    assert_eq!(c.count_documents(doc! {}).await.unwrap(), 1);

    // The same document: an earlier restore's work, skipped.
    c.drop().await.unwrap();
    c.insert_one(doc! {"_id": 1, "v": "archived"})
        .await
        .unwrap();
    let report = restore(spec(), &progress).await.unwrap();
    assert_eq!(report.skipped, ["mongo app.c"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_javascript_in_options_indexes_or_views_is_refused_before_anything_is_written()
{
    use bson::doc;
    let data = bson::to_vec(&doc! {"_id": 1}).unwrap();
    let collection = |db: &str, c: &str| circle_export::manifest::CollectionEntry {
        db: db.to_owned(),
        collection: c.to_owned(),
        documents: 1,
    };
    let view = |db: &str, v: &str| circle_export::manifest::ViewEntry {
        db: db.to_owned(),
        view: v.to_owned(),
    };
    /// What, the manifest, its files, what the refusal names.
    type Case<'a> = (&'a str, Manifest, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "a validator running $where on every insert",
            Manifest {
                mongo: vec![collection("app", "c")],
                ..Manifest::default()
            },
            vec![(
                "mongo/app/c.metadata.json",
                r#"{"options":{"validator":{"$where":"sleep(1) || true"}},"indexes":[]}"#.to_owned(),
            )],
            "options.validator.$where",
        ),
        (
            "a partial index filter with $function",
            Manifest {
                mongo: vec![collection("app", "c")],
                ..Manifest::default()
            },
            vec![(
                "mongo/app/c.metadata.json",
                r#"{"options":{},"indexes":[{"v":2,"key":{"a":1},"name":"a","partialFilterExpression":{"$expr":{"$function":{"body":"x","args":[],"lang":"js"}}}}]}"#.to_owned(),
            )],
            "indexes.0.partialFilterExpression.$expr.$function",
        ),
        (
            "a view whose pipeline runs $accumulator",
            Manifest {
                mongo: vec![collection("app", "c")],
                mongo_views: vec![view("app", "v")],
                ..Manifest::default()
            },
            vec![
                ("mongo/app/c.metadata.json", r#"{"options":{},"indexes":[]}"#.to_owned()),
                (
                    "mongo/app/v.metadata.json",
                    r#"{"options":{"viewOn":"c","pipeline":[{"$group":{"_id":1,"x":{"$accumulator":{"init":"function(){}"}}}}]},"indexes":[]}"#.to_owned(),
                ),
            ],
            "options.pipeline.0.$group.x.$accumulator",
        ),
        (
            "a view on the users",
            Manifest {
                mongo_views: vec![view("app", "v")],
                ..Manifest::default()
            },
            vec![(
                "mongo/app/v.metadata.json",
                r#"{"options":{"viewOn":"system.users","pipeline":[]},"indexes":[]}"#.to_owned(),
            )],
            "names no collection a view may read",
        ),
    ];
    let (_member, target) = crate::old_mongo();
    for (what, manifest, extra, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<(&str, &[u8])> = extra.iter().map(|(n, b)| (*n, b.as_bytes())).collect();
        if !manifest.mongo.is_empty() {
            files.push(("mongo/app/c.bson", &data));
        }
        let path = archive(dir.path(), manifest, &files);
        for dry_run in [true, false] {
            let err = restore(
                RestoreSpec {
                    dry_run,
                    ..crate::restore_spec(path.clone(), Some(&crate::standalone(&target)), None)
                },
                &progress,
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{what}: {err}");
        }
        let names = target.list_database_names().await.unwrap();
        assert!(!names.contains(&"app".to_owned()), "{what}: {names:?}");
    }
}
