//! Data commands through the Rust driver: what export/restore and the
//! drivers use.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use ha_lab::MongoMember;

use crate::{admin, code, direct, plain_options, tools};

#[tokio::test]
async fn insert_find_in_batches_count_aggregate_and_the_catalog() {
    let member = MongoMember::start(&tools(), plain_options(None)).unwrap();
    let client = direct(&member, None, None).await;
    let db = client.database("circle_ghe");
    let builds = db.collection::<Document>("builds");
    let docs: Vec<Document> = (0..1000)
        .map(|i| doc! {"_id": 999 - i, "n": i, "tag": if i % 2 == 0 { "even" } else { "odd" }, "blob": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![i as u8; 512] })})
        .collect();
    let result = builds.insert_many(docs).ordered(false).await.unwrap();
    assert_eq!(result.inserted_ids.len(), 1000);

    // Sorted by _id, fetched in several batches (getMore).
    let mut cursor = builds
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .batch_size(64)
        .await
        .unwrap();
    let mut ids = Vec::new();
    while let Some(doc) = cursor.try_next().await.unwrap() {
        ids.push(doc.get_i32("_id").unwrap());
    }
    assert_eq!(ids, (0..1000).collect::<Vec<i32>>());

    assert_eq!(
        builds.count_documents(doc! {"tag": "even"}).await.unwrap(),
        500
    );
    assert_eq!(
        builds
            .count_documents(doc! {"n": {"$gte": 990}})
            .await
            .unwrap(),
        10
    );
    assert_eq!(builds.estimated_document_count().await.unwrap(), 1000);
    let found = builds.find_one(doc! {"_id": 5}).await.unwrap().unwrap();
    assert_eq!(found.get_i32("n"), Ok(994));

    // Duplicate _id: a write error, the others still inserted (unordered).
    let err = builds
        .insert_many(vec![doc! {"_id": 1}, doc! {"_id": 5000}])
        .ordered(false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("E11000"), "{err}");
    assert_eq!(builds.count_documents(doc! {"_id": 5000}).await.unwrap(), 1);

    builds
        .create_index(mongodb::IndexModel::builder().keys(doc! {"tag": 1}).build())
        .await
        .unwrap();
    let indexes: Vec<String> = builds.list_index_names().await.unwrap();
    assert_eq!(indexes, ["_id_", "tag_1"]);

    let specs: Vec<Document> = db
        .run_command(doc! {"listCollections": 1})
        .await
        .unwrap()
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect();
    assert_eq!(specs.len(), 1);
    let info = specs[0].get_document("info").unwrap();
    assert!(
        matches!(info.get("uuid"), Some(Bson::Binary(b)) if b.subtype == bson::spec::BinarySubtype::Uuid)
    );

    let names = client.list_database_names().await.unwrap();
    assert!(names.contains(&"circle_ghe".to_owned()), "{names:?}");

    // A cursor can be killed; getMore on it then fails with CursorNotFound.
    let reply = db
        .run_command(doc! {"find": "builds", "batchSize": 2})
        .await
        .unwrap();
    let id = reply.get_document("cursor").unwrap().get_i64("id").unwrap();
    assert_ne!(id, 0);
    db.run_command(doc! {"killCursors": "builds", "cursors": [id]})
        .await
        .unwrap();
    let err = db
        .run_command(doc! {"getMore": id, "collection": "builds"})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(43), "{err}");

    builds.drop().await.unwrap();
    assert_eq!(builds.count_documents(doc! {}).await.unwrap(), 0);
    db.collection::<Document>("other")
        .insert_one(doc! {"x": 1})
        .await
        .unwrap();
    db.drop().await.unwrap();
    assert!(
        !client
            .list_database_names()
            .await
            .unwrap()
            .contains(&"circle_ghe".to_owned())
    );
    admin(&client, doc! {"endSessions": []}).await.unwrap();
}

#[tokio::test]
async fn every_bson_type_survives_a_round_trip_byte_for_byte() {
    let member = MongoMember::start(&tools(), plain_options(None)).unwrap();
    let client = direct(&member, None, None).await;
    let coll = client
        .database("types")
        .collection::<bson::RawDocumentBuf>("all");
    let original = doc! {
        "_id": bson::oid::ObjectId::new(),
        "double": 1.5,
        "string": "ünïcödé ✓",
        "doc": {"nested": {"deeper": [1, 2, 3]}},
        "array": [1, "two", {"three": 3.0}, [4]],
        "binary": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] }),
        "uuid": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] }),
        "md5": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Md5, bytes: vec![9; 16] }),
        "bool": true,
        "date": bson::DateTime::from_millis(1_700_000_000_123),
        "null": Bson::Null,
        "regex": Bson::RegularExpression(bson::Regex { pattern: "^a.*z$".to_owned(), options: "i".to_owned() }),
        "code": Bson::JavaScriptCode("function() {}".to_owned()),
        "int32": 42_i32,
        "timestamp": bson::Timestamp { time: 1, increment: 2 },
        "int64": 1_i64 << 40,
        "decimal": Bson::Decimal128("1234.5678".parse().unwrap()),
        "min": Bson::MinKey,
        "max": Bson::MaxKey,
        "ключ": "unicode key",
    };
    let raw = bson::RawDocumentBuf::from_document(&original).unwrap();
    coll.insert_one(raw.clone()).await.unwrap();
    let back = coll.find_one(doc! {}).await.unwrap().unwrap();
    assert_eq!(back.as_bytes(), raw.as_bytes());
}
