//! Export from the old Services machine's MongoDB as it is: mongod 3.6.6
//! (mongo-sim's 3.6 profile, MONGO-FACTS §8), which the driver refuses,
//! read by [`circle_export::wire`]. The data is written, and its digests
//! taken, by pymongo 3.13 — a client of that era, independent of the
//! reader — and compared with what the restore put on a modern server, read
//! back by the Rust driver.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use bson::{Document, doc};
use circle_export::{MongoReader, MongoSource};
use ha_lab::{MongoMember, MongoMemberOptions, Toolbox};
use secrecy::SecretString;

use crate::{HOSTILE, old_mongo, progress, raw_documents, restore_spec};

/// The lab's tools with mongo-sim as MongoDB: a real mongod is no 3.6.
fn sim_tools() -> Toolbox {
    Toolbox::discover(std::env::vars_os()).simulator_only()
}

fn member36(tools: &Toolbox, auth: bool, fcv: &str) -> MongoMember {
    MongoMember::start(
        tools,
        MongoMemberOptions {
            auth,
            extra_args: vec![
                "--simServerVersion".into(),
                "3.6".into(),
                "--simFeatureCompatibilityVersion".into(),
                fcv.into(),
            ],
            ..MongoMemberOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Seeds the 3.6 member through pymongo 3.13 (documents given as raw BSON
/// in `everything.bson`, written as they are; more generated), then prints
/// per collection its count, a digest of its documents' bytes and its
/// indexes, as pymongo reads them.
const SEED: &str = r#"
import hashlib, json, sys, datetime
import pymongo
from bson.raw_bson import RawBSONDocument
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
port, auth, everything = int(sys.argv[1]), sys.argv[2] == "auth", sys.argv[3]
password = sys.stdin.read()
uri = "mongodb://localhost:%d/?directConnection=true" % port
if auth:
    pymongo.MongoClient(uri, serverSelectionTimeoutMS=20000).admin.command(
        "createUser", "circle-export", pwd=password, roles=["root"])
    client = pymongo.MongoClient(uri, username="circle-export", password=password,
                                 authSource="admin", authMechanism="SCRAM-SHA-1",
                                 serverSelectionTimeoutMS=20000)
else:
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=20000)
raw = []
data = open(everything, "rb").read()
at = 0
while at < len(data):
    n = int.from_bytes(data[at:at + 4], "little")
    raw.append(RawBSONDocument(data[at:at + n]))
    at += n
ghe = client.circle_ghe
ghe.everything.insert_many(raw)
far = datetime.datetime(2100, 1, 1)
ghe.builds.insert_many([{"_id": i, "n": i, "a": i % 7, "b": "b%d" % (i % 11),
                         "d": Decimal128("%d.%02d" % (i, i % 100)), "expires": far,
                         "s": u"ü" * (i % 50)} for i in range(5000)])
ghe.builds.create_index([("n", 1)], unique=True, name="n_unique")
ghe.builds.create_index([("expires", 1)], expireAfterSeconds=3600, name="expires_ttl")
ghe.builds.create_index([("a", 1), ("b", -1)], name="a_b")
ghe.builds.create_index([("b", 1)], partialFilterExpression={"n": {"$gt": 100}}, name="b_partial")
ghe.big.insert_one({"_id": "big", "blob": b"x" * (16 * 1024 * 1024 - 200)})
state = client.build_state
for name in ["steps", "outputs"]:
    state[name].insert_many([{"k": "%s-%d" % (name, i)} for i in range(300)])
client.contexts.empty_with_index.create_index([("name", 1)], unique=True, name="name_1")
log = ghe.create_collection("log", capped=True, size=100000, max=500)
log.insert_many([{"line": i} for i in range(100)])
checked = ghe.create_collection("checked", validator={"n": {"$type": "int"}}, validationAction="error")
checked.insert_many([{"n": i} for i in range(10)])
ghe.command("create", "recent", viewOn="builds", pipeline=[{"$match": {"n": {"$gte": 4990}}}])
out = {}
options = CodecOptions(document_class=RawBSONDocument)
for db in ["circle_ghe", "build_state", "contexts"]:
    for entry in client[db].command("listCollections")["cursor"]["firstBatch"]:
        name = entry["name"]
        if entry["type"] == "view":
            out["%s.%s" % (db, name)] = {"type": "view", "options": json.loads(json.dumps(entry["options"], default=str))}
            continue
        c = client[db].get_collection(name, codec_options=options)
        hashes = sorted(hashlib.sha256(d.raw).digest() for d in c.find({}))
        indexes = []
        for ix in client[db][name].list_indexes():
            indexes.append({k: ix[k] for k in ["name", "key", "unique", "expireAfterSeconds",
                                                "partialFilterExpression"] if k in ix})
        out["%s.%s" % (db, name)] = {
            "type": "collection",
            "options": json.loads(json.dumps(entry["options"], default=str)),
            "count": len(hashes),
            "digest": hashlib.sha256(b"".join(hashes)).hexdigest(),
            "indexes": json.loads(json.dumps(sorted(indexes, key=lambda i: i["name"]), default=str)),
        }
print(json.dumps(out))
"#;

/// Seeds `member`, returning what pymongo read back per collection.
fn seed(tools: &Toolbox, member: &MongoMember, password: Option<&str>) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("seed.py");
    std::fs::write(&script, SEED).unwrap();
    let everything = dir.path().join("everything.bson");
    let mut bytes = Vec::new();
    for id in 0..200 {
        bson::to_document(&crate::roundtrip::everything(id))
            .unwrap()
            .to_writer(&mut bytes)
            .unwrap();
    }
    std::fs::write(&everything, bytes).unwrap();
    let python = tools.python_pymongo3().unwrap_or_else(|e| panic!("{e}"));
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .arg(member.port().to_string())
        .arg(if password.is_some() { "auth" } else { "noauth" })
        .arg(&everything)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.unwrap_or("").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the pymongo 3.13 seed failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What the target holds, shaped as the seed's output.
async fn read_target(client: &mongodb::Client, wanted: &serde_json::Value) -> serde_json::Value {
    use sha2::Digest as _;
    let mut out = serde_json::Map::new();
    for (name, expected) in wanted.as_object().unwrap() {
        let (db, collection) = name.split_once('.').unwrap();
        let listed = client
            .database(db)
            .run_command(doc! {"listCollections": 1, "filter": {"name": collection}})
            .await
            .unwrap();
        let entry = listed
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .first()
            .and_then(|e| e.as_document())
            .unwrap_or_else(|| panic!("{name} is not on the target"))
            .clone();
        let options = bson::Bson::Document(entry.get_document("options").unwrap().clone())
            .into_relaxed_extjson();
        if expected["type"] == "view" {
            out.insert(
                name.clone(),
                serde_json::json!({"type": entry.get_str("type").unwrap(), "options": options}),
            );
            continue;
        }
        let mut hashes: Vec<[u8; 32]> = raw_documents(client, db, collection)
            .await
            .iter()
            .map(|d| sha2::Sha256::digest(d).into())
            .collect();
        hashes.sort();
        let mut indexes: Vec<serde_json::Value> = Vec::new();
        let reply = client
            .database(db)
            .run_command(doc! {"listIndexes": collection})
            .await
            .unwrap();
        for ix in reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
        {
            let ix = ix.as_document().unwrap();
            let mut kept = Document::new();
            for k in [
                "name",
                "key",
                "unique",
                "expireAfterSeconds",
                "partialFilterExpression",
            ] {
                if let Some(v) = ix.get(k) {
                    kept.insert(k, v.clone());
                }
            }
            indexes.push(bson::Bson::Document(kept).into_relaxed_extjson());
        }
        indexes.sort_by_key(|i| i["name"].as_str().unwrap().to_owned());
        out.insert(
            name.clone(),
            serde_json::json!({
                "type": entry.get_str("type").unwrap(),
                "options": options,
                "count": hashes.len(),
                "digest": hashes.iter().fold(sha2::Sha256::new(), |h, d| h.chain_update(d))
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
                "indexes": indexes,
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// Numbers as pymongo's `json.dumps` and relaxed extended JSON both write
/// them: 3600 and 3600.0 are the same index option.
fn normalize(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        serde_json::Value::Array(a) => a.iter().map(normalize).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), normalize(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

async fn export_and_restore(
    port: u16,
    user: Option<&str>,
    wanted: &serde_json::Value,
    fcv36: bool,
) {
    let uri = match user {
        None => format!("mongodb://localhost:{port}/?directConnection=true"),
        Some(password) => format!(
            "mongodb://circle-export:{}@localhost:{port}/?directConnection=true&authMechanism=SCRAM-SHA-1",
            percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC)
        ),
    };
    let reader = MongoReader::from_uri(&SecretString::from(uri), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(matches!(reader, MongoReader::Wire(_)), "{reader:?}");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("old.tar.zst");
    let report = circle_export::export(
        crate::export_spec(
            Some(MongoSource::Server {
                reader: &reader,
                databases: Vec::new(),
            }),
            None,
            &out,
        ),
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(
        report.manifest.mongo_server_version.as_deref(),
        Some("3.6.6")
    );
    let inspection = circle_export::inspect(&out, None).unwrap();
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    // mongodump 3.6's metadata: options, indexes as listIndexes gave
    // them (with ns), uuid only where the collection has one.
    let metadata = member_text(&out, "mongo/circle_ghe/builds.metadata.json");
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    let mut keys: Vec<&str> = metadata
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    let expected: &[&str] = if fcv36 {
        &["indexes", "options", "uuid"]
    } else {
        &["indexes", "options"]
    };
    assert_eq!(keys, expected, "{metadata}");
    assert_eq!(
        metadata["indexes"][0]["ns"], "circle_ghe.builds",
        "{metadata}"
    );

    // Onto the lab's new set (three TLS members, x509, auth, w:
    // majority) with auth on the source; else onto a lone member.
    let (lone, set);
    let (target, majority) = if user.is_some() {
        set = crate::new_mongo().await;
        (&set.client, true)
    } else {
        lone = old_mongo();
        (&lone.1, false)
    };
    let restored = circle_export::restore(
        restore_spec(
            out.clone(),
            Some(&circle_export::MongoConnection {
                client: target.clone(),
                replica_set: majority,
            }),
            None,
        ),
        &progress,
    )
    .await
    .unwrap();
    assert!(restored.mismatches.is_empty(), "{:?}", restored.mismatches);
    let got = read_target(target, wanted).await;
    for (name, expected) in wanted.as_object().unwrap() {
        assert_eq!(
            normalize(&got[name]),
            normalize(expected),
            "{name}: the target differs from what pymongo 3.13 read on the 3.6 source"
        );
    }

    // The same dump in CircleCI's own layout (circleci_export.tar.gz, the
    // mongodump directory its script writes) restores the same.
    let vendor = work.path().join("circleci_export.tar.gz");
    vendor_from(&out, &vendor);
    let (_target, target) = old_mongo();
    let restored = circle_export::restore(
        restore_spec(vendor, Some(&crate::standalone(&target)), None),
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(restored.layout, circle_export::Layout::Vendor);
    assert!(restored.mismatches.is_empty(), "{:?}", restored.mismatches);
    let collections: serde_json::Map<String, serde_json::Value> = wanted
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let collections = serde_json::Value::Object(collections);
    let got = read_target(&target, &collections).await;
    for (name, expected) in collections.as_object().unwrap() {
        assert_eq!(
            normalize(&got[name]),
            normalize(expected),
            "{name}: the vendor layout restored something else"
        );
    }
}

/// CircleCI's `circleci_export.tar.gz` holding the collections and views
/// of our archive `from` as its mongodump directory (a view as its
/// `.metadata.json` alone, as mongodump writes it) and an empty PostgreSQL
/// part.
fn vendor_from(from: &std::path::Path, to: &std::path::Path) {
    let mut tar =
        tar::Archive::new(zstd::Decoder::new(std::fs::File::open(from).unwrap()).unwrap());
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::fast(),
    );
    let mut out = tar::Builder::new(gz);
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let Some(rest) = path.strip_prefix("mongo/") else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.append_data(
            &mut header,
            format!("circleci_export/circleci-mongo-export/{rest}"),
            &bytes[..],
        )
        .unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o644);
    header.set_cksum();
    out.append_data(
        &mut header,
        "circleci_export/circleci-pg-export/circle.sql",
        &[][..],
    )
    .unwrap();
    out.into_inner().unwrap().finish().unwrap();
}

/// The text of one member of a `.tar.zst` archive.
fn member_text(archive: &std::path::Path, path: &str) -> String {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(zstd::Decoder::new(file).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(path) {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return text;
        }
    }
    panic!("{path} is not in {}", archive.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_3_6_server_without_auth_at_fcv_3_6_is_exported_byte_for_byte() {
    let tools = sim_tools();
    let member = member36(&tools, false, "3.6");
    let wanted = seed(&tools, &member, None);
    assert_eq!(wanted["circle_ghe.builds"]["count"], 5000, "{wanted}");
    assert_eq!(wanted["circle_ghe.big"]["count"], 1, "{wanted}");
    // mongod rounds a capped size up to a multiple of 256.
    assert_eq!(
        wanted["circle_ghe.log"]["options"],
        serde_json::json!({"capped": true, "size": 100096, "max": 500}),
        "{wanted}"
    );
    assert_eq!(wanted["circle_ghe.log"]["count"], 100, "{wanted}");
    assert_eq!(wanted["circle_ghe.recent"]["type"], "view", "{wanted}");
    assert_eq!(
        wanted["circle_ghe.recent"]["options"]["viewOn"], "builds",
        "{wanted}"
    );
    assert!(
        wanted["circle_ghe.checked"]["options"]["validator"].is_object(),
        "{wanted}"
    );
    export_and_restore(member.port(), None, &wanted, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_3_6_server_with_scram_sha_1_at_fcv_3_4_is_exported_byte_for_byte() {
    let tools = sim_tools();
    let member = member36(&tools, true, "3.4");
    let password = format!("{HOSTILE}ü");
    let wanted = seed(&tools, &member, Some(&password));
    export_and_restore(member.port(), Some(&password), &wanted, false).await;

    // A wrong password is an authentication error naming the server, not
    // the password.
    let uri = format!(
        "mongodb://circle-export:wrong@localhost:{}/?directConnection=true",
        member.port()
    );
    let reader = MongoReader::from_uri(&SecretString::from(uri), Duration::from_secs(30))
        .await
        .unwrap();
    let error = plan_of(&reader).await.unwrap_err().to_string();
    assert!(
        error.contains("authentication failed")
            && error.contains(&format!("localhost:{}", member.port())),
        "{error}"
    );
    assert!(
        !error.contains("wrong") && !error.contains(HOSTILE),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_modern_server_is_still_read_by_the_driver() {
    let (member, _) = old_mongo();
    let uri = format!(
        "mongodb://localhost:{}/?directConnection=true",
        member.port()
    );
    let reader = MongoReader::from_uri(&SecretString::from(uri), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(matches!(reader, MongoReader::Driver(_)), "{reader:?}");
}

/// The dry run of an export of every database `reader` reads.
async fn plan_of(reader: &MongoReader) -> Result<circle_export::ExportPlan, circle_export::Error> {
    let out = tempfile::tempdir().unwrap();
    let mongo = MongoSource::Server {
        reader,
        databases: Vec::new(),
    };
    circle_export::export::plan(&crate::export_spec(
        Some(mongo),
        None,
        &out.path().join("x.tar"),
    ))
    .await
}

/// A fake server answering the handshake with `reply` (then silence).
async fn fake_server(reply: Vec<u8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut socket, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(&reply).await;
                // Hold the connection open without a further byte.
                tokio::time::sleep(Duration::from_secs(120)).await;
            });
        }
    });
    port
}

fn options(port: u16) -> circle_export::wire::WireOptions {
    circle_export::wire::WireOptions {
        hosts: vec![circle_export::wire::Address {
            host: "127.0.0.1".to_owned(),
            port,
        }],
        replica_set: None,
        credential: None,
        tls: None,
        connect_timeout: Duration::from_secs(10),
        socket_timeout: Duration::from_secs(3),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_answering_garbage_or_too_much_gets_an_error_naming_it_within_the_timeout() {
    let header = |length: i32, response_to: i32, op: i32| {
        let mut h = Vec::new();
        for v in [length, 99, response_to, op] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "2 GiB announced",
            header(i32::MAX, 1, 1),
            "impossible length 2147483647",
        ),
        ("negative length", header(-5, 1, 1), "impossible length -5"),
        (
            "49 MB announced",
            header(49_000_000, 1, 1),
            "impossible length 49000000",
        ),
        (
            "text",
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            "impossible length",
        ),
        (
            "another request's reply",
            header(36, 7, 1),
            "reply to request 7",
        ),
        ("compressed", header(36, 1, 2012), "compressed"),
        (
            "a body shorter than announced",
            header(1000, 1, 1),
            "no answer within 3 s",
        ),
        ("nothing", Vec::new(), "no answer within 3 s"),
        (
            "a reply of two documents",
            {
                let mut m = header(16 + 20, 1, 1);
                m.extend_from_slice(&[0; 16]);
                m.extend_from_slice(&2i32.to_le_bytes());
                m
            },
            "2 documents",
        ),
        (
            "a document longer than the message",
            {
                let mut m = header(16 + 16 + 4 + 5, 1, 1);
                m.extend_from_slice(&[0; 16]);
                m.extend_from_slice(&1i32.to_le_bytes());
                m.extend_from_slice(&1000i32.to_le_bytes());
                m.push(0);
                m
            },
            "length 1000",
        ),
    ];
    for (what, reply, expected) in cases {
        let port = fake_server(reply).await;
        let started = Instant::now();
        let error = circle_export::wire::WireSource::probe(options(port))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected) && error.contains(&format!("127.0.0.1:{port}")),
            "{what}: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_3_6_server_behind_tls_is_read_with_its_ca_and_refused_with_another() {
    let pki = ha_lab::LabPki::new().unwrap();
    let other = ha_lab::LabPki::new().unwrap();
    let tools = sim_tools();
    let member = MongoMember::start(
        &tools,
        MongoMemberOptions {
            tls: Some(ha_lab::MongoTls {
                mode: ha_lab::TlsMode::Require,
                certificate_key_file: pki.server().combined.clone(),
                ca_file: pki.ca_file(),
                cluster_file: None,
                allow_connections_without_certificates: true,
            }),
            extra_args: vec!["--simServerVersion".into(), "3.6".into()],
            ..MongoMemberOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let uri = |ca: &std::path::Path| {
        SecretString::from(format!(
            "mongodb://localhost:{}/?directConnection=true&tls=true&tlsCAFile={}",
            member.port(),
            percent_encoding::utf8_percent_encode(
                &ca.display().to_string(),
                percent_encoding::NON_ALPHANUMERIC
            )
        ))
    };
    let reader = MongoReader::from_uri(&uri(&pki.ca_file()), Duration::from_secs(30))
        .await
        .unwrap();
    let MongoReader::Wire(source) = &reader else {
        panic!("{reader:?}");
    };
    source
        .command(
            "circle_ghe",
            doc! {"insert": "builds", "documents": [{"_id": 1}, {"_id": 2}]},
        )
        .await
        .unwrap();
    let plan = plan_of(&reader).await.unwrap();
    assert_eq!(
        plan.collections,
        [("circle_ghe".to_owned(), "builds".to_owned())]
    );
    // Another CA: the certificate is refused, naming the server.
    let error = MongoReader::from_uri(&uri(&other.ca_file()), Duration::from_secs(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("TLS") && error.contains(&format!("localhost:{}", member.port())),
        "{error}"
    );
}
