//! Data commands through the Rust driver: what export/restore and the
//! drivers use.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use ha_lab::MongoMember;

use std::time::Duration;

use ha_lab::LabPki;

use crate::{admin, code, direct, plain_options, secure_options, tools};

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
    // Pipelines: stages that need no fields ($match {}, $skip, $limit,
    // $count, a constant $sum) and stages that read them.
    let aggregate = |pipeline: Vec<Document>| {
        let builds = builds.clone();
        async move {
            builds
                .aggregate(pipeline)
                .await
                .unwrap()
                .try_collect::<Vec<Document>>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        aggregate(vec![
            doc! {"$match": {}},
            doc! {"$skip": 10},
            doc! {"$limit": 25},
            doc! {"$count": "n"}
        ])
        .await,
        [doc! {"n": 25}]
    );
    assert_eq!(
        aggregate(vec![
            doc! {"$match": {"tag": "odd"}},
            doc! {"$group": {"_id": 1, "n": {"$sum": 1}, "total": {"$sum": "$n"}}}
        ])
        .await,
        [doc! {"_id": 1, "n": 500, "total": 250_000}]
    );
    let first = aggregate(vec![doc! {"$sort": {"n": -1}}, doc! {"$limit": 2}]).await;
    let ns: Vec<i32> = first.iter().map(|d| d.get_i32("n").unwrap()).collect();
    assert_eq!(ns, [999, 998]);
    assert_eq!(first[0].get_i32("_id"), Ok(0));
    let stored = aggregate(vec![doc! {"$match": {}}, doc! {"$limit": 1}]).await;
    assert_eq!(stored[0].get_i32("_id"), Ok(999), "insertion order");
    assert!(matches!(stored[0].get("blob"), Some(Bson::Binary(b)) if b.bytes.len() == 512));
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

/// A reply larger than the socket buffers, read slowly over a real TLS
/// socket, arrives whole (end to end; the unit test of `server::send`
/// catches a missing flush deterministically, which real sockets only
/// show now and then — as secondaries that stop fetching the oplog).
#[tokio::test(flavor = "multi_thread")]
async fn a_large_reply_read_slowly_over_tls_arrives_whole() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let pki = LabPki::new().unwrap();
    let mut options = secure_options(&pki, "unused");
    options.replica_set = None;
    options.auth = false;
    options.cluster_auth_x509 = false;
    let member = MongoMember::start(&tools(), options).unwrap();
    let client = direct(&member, Some(&pki), None).await;
    // About 6 MiB in one first batch.
    let big = client.database("t").collection::<Document>("big");
    big.insert_many((0..96).map(|i| doc! {"_id": i, "pad": "p".repeat(64 * 1024)}))
        .await
        .unwrap();

    let ca = std::fs::read(pki.ca_file()).unwrap();
    let config = ha_tls::client_config(
        Some((&ca, "the lab CA")),
        ha_tls::ServerVerification::Full,
        None,
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    // A small receive window keeps the server's socket full, so its last
    // write of the reply is the one that would block.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], member.port())))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let find =
        bson::RawDocumentBuf::from_document(&doc! {"find": "big", "batchSize": 1000, "$db": "t"})
            .unwrap();
    stream
        .write_all(&mongo_sim::wire::encode_msg(1, 0, 0, &find))
        .await
        .unwrap();
    stream.flush().await.unwrap();

    let read_all = async {
        // Let the server fill the socket, then drain it slowly.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut header = [0u8; 16];
        stream.read_exact(&mut header).await.unwrap();
        let length = i32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let mut body = vec![0u8; length - 16];
        let mut read = 0;
        while read < body.len() {
            let end = (read + 16 * 1024).min(body.len());
            read += stream.read(&mut body[read..end]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (header, body)
    };
    let (header, body) = tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the reply's tail never came: the server did not flush its TLS stream");
    let header = mongo_sim::wire::Header::parse(&header).unwrap();
    let mongo_sim::wire::Request::Msg { command: reply, .. } =
        mongo_sim::wire::parse_body(&header, &body).unwrap()
    else {
        panic!("not an OP_MSG reply");
    };
    let batch = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch.len(), 96);
}
