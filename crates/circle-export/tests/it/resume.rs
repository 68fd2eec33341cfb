//! A restore stopped half-way never looks finished: PostgreSQL commits a
//! database only once its whole file went through, and a collection whose
//! documents are all there but whose indexes are not gets them on the next
//! run.

use bson::{Document, doc};
use circle_export::restore;

use crate::{Pg, export_one_database, old_mongo, progress, restore_spec};

#[tokio::test(flavor = "multi_thread")]
async fn a_collection_stopped_before_its_indexes_gets_them_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_old_member, old) = old_mongo();
    let builds = old.database("circle_ghe").collection::<Document>("builds");
    builds
        .insert_many((0..300).map(|i| doc! {"_id": i, "n": i % 7, "s": format!("s{i}")}))
        .await
        .unwrap();
    builds
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"n": 1, "s": -1})
                .build(),
        )
        .await
        .unwrap();
    let archive = dir.path().join("a.tar.gz");
    export_one_database(&old, "circle_ghe", &archive).await;

    let (_new_member, new) = old_mongo();
    let new_target = crate::standalone(&new);
    let spec = || restore_spec(archive.clone(), Some(&new_target), None);
    // What a run killed after its inserts, before its indexes, leaves.
    let target = new.database("circle_ghe").collection::<Document>("builds");
    target
        .insert_many((0..300).map(|i| doc! {"_id": i, "n": i % 7, "s": format!("s{i}")}))
        .await
        .unwrap();

    let second = restore(spec(), &progress).await.unwrap();
    assert_eq!(
        second.restored,
        vec!["mongo circle_ghe.builds (indexes)".to_owned()],
        "only the indexes are redone"
    );
    assert_eq!(second.documents, 0);
    assert!(second.mismatches.is_empty(), "{:?}", second.mismatches);
    let names = target.list_index_names().await.unwrap();
    assert!(names.contains(&"n_1_s_-1".to_owned()), "{names:?}");

    let third = restore(spec(), &progress).await.unwrap();
    assert!(third.restored.is_empty(), "{:?}", third.restored);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_file_cut_short_commits_nothing() {
    let pg = Pg::start();
    let client = pg.provision(&["circle"]);
    let dir = tempfile::tempdir().unwrap();
    // Complete statements, a COPY, then a statement the file cuts off:
    // what psql would read if the feeder died there.
    let sql = dir.path().join("cut.sql");
    std::fs::write(
        &sql,
        "CREATE TABLE kept_if_committed (a int);\n\
         COPY public.kept_if_committed (a) FROM stdin;\n1\n2\n\\.\n\
         CREATE TABLE cut_short (a int",
    )
    .unwrap();
    let err = client
        .restore_database(
            "circle",
            &sql,
            &circle_export::Meter::default(),
            false,
            circle_export::sqlsplit::Dialect::Own,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no closing semicolon"), "{text}");
    assert!(!text.contains(crate::HOSTILE), "{text}");
    assert_eq!(
        pg.psql(
            "circle",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'kept_if_committed'"
        ),
        "0",
        "a file that ends inside a statement must commit nothing"
    );

    // The same file completed restores, and its rows are there.
    std::fs::write(
        &sql,
        "CREATE TABLE kept_if_committed (a int);\n\
         COPY public.kept_if_committed (a) FROM stdin;\n1\n2\n\\.\n",
    )
    .unwrap();
    client
        .restore_database(
            "circle",
            &sql,
            &circle_export::Meter::default(),
            false,
            circle_export::sqlsplit::Dialect::Own,
        )
        .await
        .unwrap();
    assert_eq!(
        pg.psql("circle", "SELECT sum(a) FROM kept_if_committed"),
        "3"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_mongo_restore_resumes_without_drop_and_other_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_old_member, old) = old_mongo();
    let docs = |range: std::ops::Range<i32>| {
        range
            .map(|i| doc! {"_id": i, "s": format!("s{i}")})
            .collect::<Vec<_>>()
    };
    old.database("circle_ghe")
        .collection::<Document>("builds")
        .insert_many(docs(0..300))
        .await
        .unwrap();
    let archive = dir.path().join("a.tar.gz");
    export_one_database(&old, "circle_ghe", &archive).await;

    let (_new_member, new) = old_mongo();
    let new_target = crate::standalone(&new);
    let spec = || restore_spec(archive.clone(), Some(&new_target), None);
    let target = new.database("circle_ghe").collection::<Document>("builds");
    // What a run stopped after 120 documents leaves: resumed, not refused.
    target.insert_many(docs(0..120)).await.unwrap();
    let said = std::sync::Mutex::new(Vec::new());
    let report = restore(spec(), &|line: &str| {
        said.lock().unwrap().push(line.to_owned())
    })
    .await
    .unwrap();
    assert_eq!(report.documents, 300);
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert_eq!(target.count_documents(doc! {}).await.unwrap(), 300);
    let said = said.into_inner().unwrap().join("\n");
    assert!(
        said.contains("120 of the archive's 300 documents are already there"),
        "{said}"
    );

    // Fewer documents than the archive, but one is not the archive's:
    // other data, refused, nothing written.
    target.drop().await.unwrap();
    target
        .insert_many(vec![
            doc! {"_id": 0, "s": "changed"},
            doc! {"_id": 1, "s": "s1"},
        ])
        .await
        .unwrap();
    let err = restore(spec(), &progress).await.unwrap_err();
    assert!(err.to_string().contains("not only the archive's"), "{err}");
    assert_eq!(target.count_documents(doc! {}).await.unwrap(), 2);

    // A batch sent again finds its documents there: identical ones count
    // as written, a different one is named by its _id.
    let failover = circle_export::failover::Failover {
        wait: std::time::Duration::from_secs(5),
        progress: &progress,
    };
    let raw = new
        .database("circle_ghe")
        .collection::<bson::RawDocumentBuf>("builds");
    let batch: Vec<bson::RawDocumentBuf> = [doc! {"_id": 1, "s": "s1"}, doc! {"_id": 2, "s": "s2"}]
        .iter()
        .map(|d| bson::RawDocumentBuf::from_document(d).unwrap())
        .collect();
    let w1 = mongodb::options::WriteConcern::builder()
        .w(mongodb::options::Acknowledgment::Nodes(1))
        .build();
    let n = failover
        .insert_batch(&raw, &batch, &w1, "circle_ghe.builds")
        .await
        .unwrap();
    assert_eq!(n, 2);
    let changed = vec![bson::RawDocumentBuf::from_document(&doc! {"_id": 0, "s": "s0"}).unwrap()];
    let err = failover
        .insert_batch(&raw, &changed, &w1, "circle_ghe.builds")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("_id 0") && err.contains("differs from the archive's"),
        "{err}"
    );
}
