//! Behaviour of the simulator itself (its version profiles), run against
//! the `mongo-sim` binary even when MONGOD_BIN points at a real mongod.

use std::ffi::OsString;
use std::time::Duration;

use bson::doc;
use ha_lab::{MongoMember, MongoMemberOptions, Toolbox};

use crate::{admin, code, direct, hello, wait_for};

fn sim_tools() -> Toolbox {
    let vars: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), "/nonexistent".into()),
        (
            "CIRCLE_HA_TEST_MONGO_SIM".into(),
            env!("CARGO_BIN_EXE_mongo-sim").into(),
        ),
    ];
    Toolbox::discover(vars)
}

#[tokio::test]
async fn the_4_4_profile_reports_4_4_and_its_names() {
    let member = MongoMember::start(
        &sim_tools(),
        MongoMemberOptions {
            replica_set: Some("rs".to_owned()),
            extra_args: vec!["--simServerVersion".into(), "4.4".into()],
            ..MongoMemberOptions::default()
        },
    )
    .unwrap();
    let client = direct(&member, None, None).await;
    let reply = hello(&client).await.unwrap();
    assert_eq!(reply.get_i32("maxWireVersion"), Ok(9));
    let info = admin(&client, doc! {"buildInfo": 1}).await.unwrap();
    assert!(info.get_str("version").unwrap().starts_with("4.4."));
    // Before 5.0 NotWritablePrimary was called NotMaster.
    let err = client
        .database("d")
        .collection::<bson::Document>("c")
        .insert_one(doc! {})
        .await
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref e)) => {
            assert_eq!(e.code, 10107)
        }
        mongodb::error::ErrorKind::Command(ref e) => {
            assert_eq!((e.code, e.code_name.as_str()), (10107, "NotMaster"))
        }
        ref other => panic!("{other:?}"),
    }
    // 4.4's replSetGetStatus error carries the `info` hint.
    let err = admin(&client, doc! {"replSetGetStatus": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(94));
}

#[tokio::test]
async fn a_member_restarted_from_its_dbpath_keeps_config_and_data() {
    let mut member = MongoMember::start(
        &sim_tools(),
        MongoMemberOptions {
            replica_set: Some("rs".to_owned()),
            ..MongoMemberOptions::default()
        },
    )
    .unwrap();
    let client = direct(&member, None, None).await;
    admin(
        &client,
        doc! {"replSetInitiate": {"_id": "rs", "members": [{"_id": 0, "host": member.host()}]}},
    )
    .await
    .unwrap();
    wait_for("primary", Duration::from_secs(60), || async {
        hello(&client)
            .await
            .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    })
    .await;
    client
        .database("d")
        .collection("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    member.kill();
    member.restart().unwrap();
    let client = direct(&member, None, None).await;
    wait_for("primary again", Duration::from_secs(60), || async {
        hello(&client)
            .await
            .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    })
    .await;
    assert_eq!(
        client
            .database("d")
            .collection::<bson::Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        1
    );
    let config = admin(&client, doc! {"replSetGetConfig": 1}).await.unwrap();
    assert_eq!(
        config.get_document("config").unwrap().get_str("_id"),
        Ok("rs")
    );
}

#[test]
fn a_7_0_config_file_with_journal_enabled_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mongod.conf");
    std::fs::write(
        &conf,
        "storage:\n  dbPath: /tmp\n  journal:\n    enabled: true\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mongo-sim"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Unrecognized option: storage.journal.enabled")
    );
}
