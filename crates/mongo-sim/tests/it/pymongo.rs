//! The same kind of set driven by pymongo, an independent client: initiate,
//! authenticate, insert and delete with `w: majority`, read back from a
//! secondary.

use std::time::Duration;

use ha_lab::{LabPki, MongoMember};

use crate::{secure_options, tools};

const SCRIPT: &str = r#"
import json, sys, time
import pymongo
ports, ca = [int(p) for p in sys.argv[1].split(",")], sys.argv[2]
tls = dict(tls=True, tlsCAFile=ca)
first = pymongo.MongoClient(f"mongodb://localhost:{ports[0]}/?directConnection=true", serverSelectionTimeoutMS=30000, **tls)
first.admin.command("replSetInitiate", {"_id": "pyset", "members": [{"_id": i, "host": f"localhost:{p}"} for i, p in enumerate(ports)],
                                        "settings": {"electionTimeoutMillis": 2000, "heartbeatIntervalMillis": 500}})
deadline = time.time() + 60
while not first.admin.command("hello").get("isWritablePrimary"):
    assert time.time() < deadline, "no primary"
    time.sleep(0.1)
first.admin.command("createUser", "root", pwd="py pw'\"$", roles=[{"role": "root", "db": "admin"}])
hosts = ",".join(f"localhost:{p}" for p in ports)
rs = pymongo.MongoClient(f"mongodb://{hosts}/?replicaSet=pyset", username="root", password="py pw'\"$", authSource="admin",
                         serverSelectionTimeoutMS=30000, **tls)
coll = rs.get_database("circle_ghe").get_collection("builds", write_concern=pymongo.WriteConcern(w="majority", wtimeout=30000))
coll.insert_many([{"_id": i, "n": i} for i in range(50)])
# delete: one, many by a range filter, and none; replicated like inserts.
# By _id (mongod's _id index): numbers by value across types, a string is
# not a number, an absent _id deletes nothing.
import bson
deleted = [coll.delete_one({"_id": 0}).deleted_count,
           coll.delete_many({"n": {"$gte": 40}}).deleted_count,
           coll.delete_many({"n": -1}).deleted_count,
           coll.delete_many({"_id": {"$in": [1, 2.0, bson.Int64(3), 999, "1"]}}).deleted_count,
           coll.delete_one({"_id": 4.0}).deleted_count]
try:
    rs.circle_ghe.command("delete", "builds", deletes=[])
    empty_batch = None
except pymongo.errors.OperationFailure as e:
    empty_batch = [e.code, e.details.get("codeName")]
secondary = rs.get_database("circle_ghe", read_preference=pymongo.ReadPreference.SECONDARY).builds
# w: majority is two of three: the secondary read may be the third, a
# moment behind; give it until a deadline to catch up.
deadline = time.time() + 30
while True:
    count = secondary.count_documents({})
    if count == 35 or time.time() > deadline:
        break
    time.sleep(0.1)
# The primary learns the others' states from heartbeats, so its view may
# lag the members' own for a heartbeat interval: wait for it to settle.
deadline = time.time() + 60
while True:
    states = sorted(m["stateStr"] for m in rs.admin.command("replSetGetStatus")["members"])
    if states == ["PRIMARY", "SECONDARY", "SECONDARY"] or time.time() > deadline:
        break
    time.sleep(0.1)
# renameCollection (pymongo sends it to admin): refused onto an existing
# target, then with dropTarget the staging collection replaces it whole.
db = rs.get_database("circle_ghe", write_concern=pymongo.WriteConcern(w="majority", wtimeout=30000))
db.staging.insert_many([{"_id": i} for i in range(3)])
db.final.insert_one({"_id": "old"})
try:
    db.staging.rename("final")
    exists = None
except pymongo.errors.OperationFailure as e:
    exists = [e.code, e.details.get("codeName")]
db.staging.rename("final", dropTarget=True)
renamed = [sorted(d["_id"] for d in db.final.find()), "staging" in db.list_collection_names()]
# dbHash: the MD5 of the documents' bytes in _id order (computed here from
# what find returns), the same when two are asked at once.
import hashlib, threading
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
raw = rs.get_database("circle_ghe", codec_options=CodecOptions(document_class=RawBSONDocument)).builds
md5 = hashlib.md5()
for d in raw.find().sort("_id", 1):
    md5.update(d.raw)
asked = []
def ask():
    asked.append(rs.circle_ghe.command("dbHash", collections=["builds"])["collections"]["builds"])
threads = [threading.Thread(target=ask) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"dbhash": [md5.hexdigest()] + asked, "count": count, "states": states, "deleted": deleted, "empty_batch": empty_batch,
                  "rename_exists": exists, "renamed": renamed,
                  "mechanisms": rs.admin.command("usersInfo", "root")["users"][0]["mechanisms"]}))
"#;

#[test]
fn pymongo_initiates_authenticates_writes_deletes_and_reads_from_a_secondary() {
    let pki = LabPki::new().unwrap();
    let members: Vec<MongoMember> = (0..3)
        .map(|_| MongoMember::start(&tools(), secure_options(&pki, "pyset")).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("check.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let ports: Vec<String> = members.iter().map(|m| m.port().to_string()).collect();
    let python = tools().python().unwrap();
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(ports.join(","))
        .arg(pki.ca_file())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pymongo script failed:\n{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["count"], 35, "{result}");
    let dbhash = result["dbhash"].as_array().unwrap();
    assert_eq!(dbhash.len(), 3, "{result}");
    assert!(dbhash.iter().all(|h| *h == dbhash[0]), "{result}");
    assert_eq!(
        result["deleted"],
        serde_json::json!([1, 10, 0, 3, 1]),
        "{result}"
    );
    assert_eq!(
        result["empty_batch"],
        serde_json::json!([16, "InvalidLength"]),
        "{result}"
    );
    assert_eq!(
        result["states"],
        serde_json::json!(["PRIMARY", "SECONDARY", "SECONDARY"])
    );
    assert_eq!(
        result["rename_exists"],
        serde_json::json!([48, "NamespaceExists"]),
        "{result}"
    );
    assert_eq!(
        result["renamed"],
        serde_json::json!([[0, 1, 2], false]),
        "{result}"
    );
    assert_eq!(
        result["mechanisms"],
        serde_json::json!(["SCRAM-SHA-1", "SCRAM-SHA-256"])
    );
    let _ = Duration::from_secs(0);
}
