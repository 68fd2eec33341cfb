//! The 3.6 profile (`--simServerVersion 3.6`: mongod 3.6.6, as the old
//! Services machine runs it; MONGO-FACTS §8), driven by pymongo 3.13 — the
//! last pymongo line that speaks to 3.6, an independent client of that
//! era — and refused by the Rust driver, as a real 3.6 is.

use std::ffi::OsString;

use ha_lab::{MongoMember, MongoMemberOptions, Toolbox};

/// The lab's tools, always with this package's simulator: a real mongod
/// (MONGOD_BIN, or on PATH) is no 3.6.
fn sim_tools() -> Toolbox {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    vars.push((
        "CIRCLE_HA_TEST_MONGO_SIM".into(),
        env!("CARGO_BIN_EXE_mongo-sim").into(),
    ));
    Toolbox::discover(vars).simulator_only()
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
    .unwrap()
}

const SCRIPT: &str = r#"
import json, sys
import pymongo
from bson.decimal128 import Decimal128
port, auth, fcv = int(sys.argv[1]), sys.argv[2] == "auth", sys.argv[3]
password = "p'\"$@:/?#% wörd"
uri = f"mongodb://localhost:{port}/?directConnection=true"
out = {"pymongo": pymongo.version}
client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=20000)
hello = client.admin.command("isMaster")
out["wire"] = [hello["minWireVersion"], hello["maxWireVersion"]]
out["sessions"] = "logicalSessionTimeoutMinutes" in hello
out["limits"] = [hello["maxBsonObjectSize"], hello["maxMessageSizeBytes"], hello["maxWriteBatchSize"]]
out["sasl_mechs_in_hello"] = "saslSupportedMechs" in client.admin.command("isMaster", saslSupportedMechs="admin.x")
try:
    client.admin.command("hello")
    out["hello"] = None
except pymongo.errors.OperationFailure as e:
    out["hello"] = e.code
out["version"] = client.server_info()["version"]
if auth:
    # The localhost exception: the first user, on a connection not logged in.
    try:
        client.admin.command("createUser", "root", pwd=password, roles=["root"])
        out["create_user"] = "ok"
    except pymongo.errors.OperationFailure as e:
        out["create_user"] = [e.code, str(e)]
        print(json.dumps(out))
        sys.exit(0)
    try:
        pymongo.MongoClient(uri, username="root", password=password, authSource="admin",
                            authMechanism="SCRAM-SHA-256", serverSelectionTimeoutMS=20000).admin.command("ping")
        out["sha256"] = None
    except pymongo.errors.OperationFailure as e:
        out["sha256"] = e.code
    try:
        pymongo.MongoClient(uri, username="root", password="wrong", authSource="admin",
                            authMechanism="SCRAM-SHA-1", serverSelectionTimeoutMS=20000).admin.command("ping")
        out["wrong_password"] = None
    except pymongo.errors.OperationFailure as e:
        out["wrong_password"] = e.code
    client = pymongo.MongoClient(uri, username="root", password=password, authSource="admin",
                                 authMechanism="SCRAM-SHA-1", serverSelectionTimeoutMS=20000)
    out["mechanisms"] = client.admin.command("usersInfo", "root")["users"][0]["mechanisms"]
db = client.circle_ghe
db.builds.insert_many([{"_id": i, "n": i, "d": Decimal128("1.%d" % i), "s": "x" * 100} for i in range(250)])
db.builds.create_index([("n", 1)], unique=True, name="n_1")
got = list(db.builds.find({}, batch_size=40))
out["count"] = len(got)
out["decimal"] = str(got[7]["d"])
entries = db.command("listCollections", nameOnly=True)["cursor"]["firstBatch"]
out["collections"] = [[e["name"], "options" in e, "uuid" in e.get("info", {})] for e in entries]
out["indexes"] = sorted(ix["name"] for ix in db.builds.list_indexes())
out["index_ns"] = sorted(set(ix.get("ns") for ix in db.builds.list_indexes()))
out["databases"] = sorted(d["name"] for d in client.admin.command("listDatabases", nameOnly=True)["databases"])
print(json.dumps(out))
"#;

fn run_script(tools: &Toolbox, member: &MongoMember, auth: bool, fcv: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("profile36.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let python = tools.python_pymongo3().unwrap_or_else(|e| panic!("{e}"));
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(member.port().to_string())
        .arg(if auth { "auth" } else { "noauth" })
        .arg(fcv)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pymongo 3.13 script failed:\n{stderr}"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn pymongo_3_13_reads_and_writes_the_3_6_profile_without_auth() {
    let tools = sim_tools();
    let member = member36(&tools, false, "3.6");
    let out = run_script(&tools, &member, false, "3.6");
    assert!(
        out["pymongo"].as_str().unwrap().starts_with("3.13"),
        "{out}"
    );
    assert_eq!(out["version"], "3.6.6", "{out}");
    assert_eq!(out["wire"], serde_json::json!([0, 6]), "{out}");
    assert_eq!(out["hello"], 59, "hello is no 3.6.6 command: {out}");
    assert_eq!(out["sessions"], true, "{out}");
    assert_eq!(out["sasl_mechs_in_hello"], false, "{out}");
    assert_eq!(
        out["limits"],
        serde_json::json!([16 * 1024 * 1024, 48_000_000, 100_000]),
        "{out}"
    );
    assert_eq!(out["count"], 250, "{out}");
    assert_eq!(out["decimal"], "1.7", "{out}");
    // nameOnly is 4.0+: 3.6 answers whole entries, with UUIDs at FCV 3.6.
    assert_eq!(
        out["collections"],
        serde_json::json!([["builds", true, true]]),
        "{out}"
    );
    assert_eq!(out["indexes"], serde_json::json!(["_id_", "n_1"]), "{out}");
    // Index specs name their namespace below 4.4 (SERVER-41696).
    assert_eq!(
        out["index_ns"],
        serde_json::json!(["circle_ghe.builds"]),
        "{out}"
    );
    assert_eq!(out["databases"], serde_json::json!(["circle_ghe"]), "{out}");
}

#[test]
fn with_auth_3_6_speaks_scram_sha_1_only_and_fcv_3_4_has_no_uuids_or_sessions() {
    let tools = sim_tools();
    // FCV 3.4: no sessions, so pymongo sends no lsid, and the localhost
    // exception lets it create the first user.
    let member = member36(&tools, true, "3.4");
    let out = run_script(&tools, &member, true, "3.4");
    assert_eq!(out["sessions"], false, "{out}");
    assert_eq!(out["create_user"], "ok", "{out}");
    assert_eq!(
        out["mechanisms"],
        serde_json::json!(["SCRAM-SHA-1"]),
        "{out}"
    );
    assert_eq!(out["sha256"], 2, "SCRAM-SHA-256 is 4.0+: {out}");
    assert_eq!(out["wrong_password"], 18, "{out}");
    assert_eq!(out["count"], 250, "{out}");
    assert_eq!(
        out["collections"],
        serde_json::json!([["builds", true, false]]),
        "no UUIDs below FCV 3.6: {out}"
    );
    // FCV 3.6 with auth: pymongo's implicit session (an lsid on every
    // command) before login is refused, as 3.6 refuses it.
    let member = member36(&tools, true, "3.6");
    let out = run_script(&tools, &member, true, "3.6");
    assert_eq!(out["create_user"][0], 13, "{out}");
    assert!(
        out["create_user"][1]
            .as_str()
            .unwrap()
            .contains("there are no users authenticated"),
        "{out}"
    );
}

#[test]
fn the_rust_driver_refuses_the_3_6_profile_as_it_refuses_a_real_3_6() {
    let tools = sim_tools();
    let member = member36(&tools, false, "3.6");
    let error = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = mongodb::Client::with_uri_str(format!(
            "mongodb://localhost:{}/?directConnection=true&serverSelectionTimeoutMS=20000",
            member.port()
        ))
        .await
        .unwrap();
        client
            .database("admin")
            .run_command(bson::doc! {"ping": 1})
            .await
            .unwrap_err()
    });
    let text = error.to_string();
    assert!(
        text.contains("wire version 6") && text.contains("requires at least 9"),
        "{text}"
    );
}
