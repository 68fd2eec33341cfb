//! Facts the project relies on, each pinned by a test that runs against
//! mongo-sim and, with MONGOD_BIN set, against real mongod.

use std::time::Duration;

use bson::{Bson, Document, doc};
use ha_lab::MongoMember;
use mongodb::Client;

use crate::{admin, code, direct, hello, plain_options, tools, wait_for};

async fn initiated_single(set: &str) -> (MongoMember, mongodb::Client) {
    let member = MongoMember::start(&tools(), plain_options(Some(set))).unwrap();
    let client = direct(&member, None, None).await;
    admin(
        &client,
        doc! {"replSetInitiate": {"_id": set, "members": [{"_id": 0, "host": member.host()}]}},
    )
    .await
    .unwrap();
    wait_for("a primary", Duration::from_secs(60), || async {
        hello(&client)
            .await
            .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    })
    .await;
    (member, client)
}

#[tokio::test]
async fn an_uninitialized_member_says_so() {
    let member = MongoMember::start(&tools(), plain_options(Some("rs"))).unwrap();
    let client = direct(&member, None, None).await;
    let reply = hello(&client).await.unwrap();
    assert_eq!(reply.get_bool("isWritablePrimary"), Ok(false));
    assert_eq!(reply.get_bool("secondary"), Ok(false));
    assert_eq!(reply.get_bool("isreplicaset"), Ok(true));
    assert_eq!(
        reply.get_str("info"),
        Ok("Does not have a valid replica set config")
    );
    assert!(!reply.contains_key("setName"));
    assert_eq!(reply.get_i32("maxBsonObjectSize"), Ok(16 * 1024 * 1024));
    assert_eq!(reply.get_i32("maxMessageSizeBytes"), Ok(48_000_000));
    assert!(reply.get_i32("maxWireVersion").unwrap() >= 9);

    let legacy = admin(&client, doc! {"isMaster": 1}).await.unwrap();
    assert_eq!(legacy.get_bool("ismaster"), Ok(false));

    for command in [doc! {"replSetGetStatus": 1}, doc! {"replSetGetConfig": 1}] {
        let err = admin(&client, command).await.unwrap_err();
        assert_eq!(code(&err), Some(94), "{err}");
    }
    let err = admin(&client, doc! {"replSetReconfig": {"_id": "rs", "version": 2, "members": [{"_id": 0, "host": member.host()}]}})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(94), "{err}");
    let err = client
        .database("app")
        .collection::<bson::Document>("c")
        .insert_one(doc! {"x": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(10107), "{err}");
}

#[tokio::test]
async fn a_standalone_refuses_replica_set_commands() {
    let member = MongoMember::start(&tools(), plain_options(None)).unwrap();
    let client = direct(&member, None, None).await;
    let err = admin(&client, doc! {"replSetInitiate": {}})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(76), "{err}");
    assert!(
        err.to_string()
            .contains("This node was not started with the replSet option"),
        "{err}"
    );
    let err = admin(&client, doc! {"replSetGetStatus": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(76), "{err}");
    let err = admin(&client, doc! {"noSuchCommand": 1}).await.unwrap_err();
    assert_eq!(code(&err), Some(59), "{err}");
    let reply = hello(&client).await.unwrap();
    assert_eq!(reply.get_bool("isWritablePrimary"), Ok(true));
    assert!(!reply.contains_key("setName") && !reply.contains_key("isreplicaset"));
}

#[tokio::test]
async fn initiate_once_and_validate_the_config() {
    let (member, client) = initiated_single("rs").await;
    let err = admin(
        &client,
        doc! {"replSetInitiate": {"_id": "rs", "members": [{"_id": 0, "host": member.host()}]}},
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Some(23), "{err}");
    let reply = hello(&client).await.unwrap();
    assert_eq!(reply.get_str("setName"), Ok("rs"));
    assert_eq!(reply.get_str("me"), Ok(member.host().as_str()));
    assert_eq!(
        reply.get_array("hosts").unwrap(),
        &vec![Bson::String(member.host())]
    );
    assert!(reply.get_object_id("electionId").is_ok());
    let status = admin(&client, doc! {"replSetGetStatus": 1}).await.unwrap();
    assert_eq!(status.get_i32("myState"), Ok(1));
    let me = status.get_array("members").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(me.get_str("stateStr"), Ok("PRIMARY"));
    assert_eq!(me.get_bool("self"), Ok(true));
    let config = admin(&client, doc! {"replSetGetConfig": 1}).await.unwrap();
    let config = config.get_document("config").unwrap();
    assert_eq!(config.get_i32("version"), Ok(1));
    assert!(
        config
            .get_document("settings")
            .unwrap()
            .get_object_id("replicaSetId")
            .is_ok()
    );

    let fresh = MongoMember::start(&tools(), plain_options(Some("rs2"))).unwrap();
    let fresh_client = direct(&fresh, None, None).await;
    let err = admin(
        &fresh_client,
        doc! {"replSetInitiate": {"_id": "other", "members": [{"_id": 0, "host": fresh.host()}]}},
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Some(93), "{err}");
    let err = admin(
        &fresh_client,
        doc! {"replSetInitiate": {"_id": "rs2", "members": [{"_id": 0, "host": "localhost:1"}]}},
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Some(93), "{err}");
    assert!(err.to_string().contains("maps to this node"), "{err}");
}

#[tokio::test]
async fn reconfig_adds_one_voter_at_a_time() {
    let (member, client) = initiated_single("rs").await;
    let second = MongoMember::start(&tools(), plain_options(Some("rs"))).unwrap();
    let third = MongoMember::start(&tools(), plain_options(Some("rs"))).unwrap();
    let both = doc! {"replSetReconfig": {"_id": "rs", "version": 2, "members": [
    {"_id": 0, "host": member.host()}, {"_id": 1, "host": second.host()}, {"_id": 2, "host": third.host()}]}};
    let err = admin(&client, both).await.unwrap_err();
    assert_eq!(code(&err), Some(103), "{err}");
    assert!(err.to_string().contains("at most 1 voting member"), "{err}");
    let stale = doc! {"replSetReconfig": {"_id": "rs", "version": 1, "members": [
    {"_id": 0, "host": member.host()}, {"_id": 1, "host": second.host()}]}};
    let err = admin(&client, stale).await.unwrap_err();
    assert_eq!(code(&err), Some(103), "{err}");
    let one = doc! {"replSetReconfig": {"_id": "rs", "version": 2, "members": [
    {"_id": 0, "host": member.host()}, {"_id": 1, "host": second.host()}]}};
    admin(&client, one).await.unwrap();
    let second_client = direct(&second, None, None).await;
    wait_for(
        "the new member to become SECONDARY",
        Duration::from_secs(60),
        || async {
            hello(&second_client)
                .await
                .is_some_and(|h| h.get_bool("secondary") == Ok(true))
        },
    )
    .await;
}

#[tokio::test]
async fn users_roles_and_the_localhost_exception() {
    let options = ha_lab::MongoMemberOptions {
        auth: true,
        ..plain_options(None)
    };
    let member = MongoMember::start(&tools(), options).unwrap();
    let anonymous = direct(&member, None, None).await;
    // Before any user: the exception allows only creating the first user.
    let err = admin(&anonymous, doc! {"usersInfo": 1}).await.unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");
    // … and only in admin (mongod's getDefaultPrivileges under the
    // exception: createUser and grantRole on admin, createUser on $external).
    let err = anonymous
        .database("circle_ghe")
        .run_command(doc! {"createUser": "sneaky", "pwd": "x", "roles": []})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");
    admin(
        &anonymous,
        doc! {"createUser": "siteUserAdmin", "pwd": "p'w\"d$ü", "roles": [{"role": "userAdminAnyDatabase", "db": "admin"}]},
    )
    .await
    .unwrap();
    // The exception is closed now.
    let err = admin(
        &anonymous,
        doc! {"createUser": "x", "pwd": "y", "roles": []},
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");

    let wrong = direct(&member, None, Some(("siteUserAdmin", "wrong"))).await;
    let err = admin(&wrong, doc! {"ping": 1}).await.unwrap_err();
    assert!(
        matches!(*err.kind, mongodb::error::ErrorKind::Authentication { .. }),
        "{err}"
    );

    let user_admin = direct(&member, None, Some(("siteUserAdmin", "p'w\"d$ü"))).await;
    let err = admin(
        &user_admin,
        doc! {"createUser": "siteUserAdmin", "pwd": "x", "roles": []},
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Some(51003), "{err}");
    let err = user_admin
        .database("circle_ghe")
        .run_command(doc! {"createUser": "bad", "pwd": "x", "roles": ["root"]})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(31), "{err}");
    admin(
        &user_admin,
        doc! {"createUser": "circle", "pwd": "app-pw", "roles": [{"role": "readWrite", "db": "circle_ghe"}]},
    )
    .await
    .unwrap();
    let info = admin(
        &user_admin,
        doc! {"usersInfo": {"user": "circle", "db": "admin"}},
    )
    .await
    .unwrap();
    let user = info.get_array("users").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(user.get_str("_id"), Ok("admin.circle"));
    let mechanisms: Vec<&str> = user
        .get_array("mechanisms")
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert_eq!(mechanisms, ["SCRAM-SHA-1", "SCRAM-SHA-256"]);
    // userAdminAnyDatabase may not read data.
    let err = user_admin
        .database("circle_ghe")
        .collection::<bson::Document>("builds")
        .find_one(doc! {})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");

    let app = direct(&member, None, Some(("circle", "app-pw"))).await;
    app.database("circle_ghe")
        .collection("builds")
        .insert_one(doc! {"n": 1})
        .await
        .unwrap();
    let err = app
        .database("admin")
        .collection("x")
        .insert_one(doc! {"n": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");
    assert!(err.to_string().contains("not authorized on admin"), "{err}");
}

#[test]
fn unknown_options_fail_at_start_with_exit_code_2() {
    let program = tools().mongo().unwrap().program().to_owned();
    let output = std::process::Command::new(&program)
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("unrecognised option '--frobnicate'"),
        "{text}"
    );
}

/// A cursor is its opener's: another user, or the same user naming another
/// collection, gets Unauthorized (13) from getMore and killCursors, and
/// ids are random, so one cannot be guessed from another (as in mongod).
#[tokio::test]
async fn cursors_belong_to_their_namespace_and_user_and_ids_are_unguessable() {
    let options = ha_lab::MongoMemberOptions {
        auth: true,
        ..plain_options(None)
    };
    let member = MongoMember::start(&tools(), options).unwrap();
    let anonymous = direct(&member, None, None).await;
    admin(
        &anonymous,
        doc! {"createUser": "root", "pwd": "pw", "roles": [{"role": "root", "db": "admin"}]},
    )
    .await
    .unwrap();
    let root = direct(&member, None, Some(("root", "pw"))).await;
    for user in ["alice", "bob"] {
        admin(
            &root,
            doc! {"createUser": user, "pwd": "pw", "roles": [{"role": "readWrite", "db": "app"}]},
        )
        .await
        .unwrap();
    }
    let docs: Vec<Document> = (0..10).map(|i| doc! {"_id": i}).collect();
    root.database("app")
        .collection::<Document>("c")
        .insert_many(docs)
        .await
        .unwrap();
    let alice = direct(&member, None, Some(("alice", "pw"))).await;
    let bob = direct(&member, None, Some(("bob", "pw"))).await;
    let open = |client: Client| async move {
        let reply = client
            .database("app")
            .run_command(doc! {"find": "c", "batchSize": 1})
            .await
            .unwrap();
        reply.get_document("cursor").unwrap().get_i64("id").unwrap()
    };
    let first = open(alice.clone()).await;
    let second = open(alice.clone()).await;
    assert!(first > 1 << 20 && second > 1 << 20, "{first} {second}");
    assert_ne!(first.abs_diff(second), 1, "sequential cursor ids");

    let get_more = |client: Client, collection: &'static str, id: i64| async move {
        client
            .database("app")
            .run_command(doc! {"getMore": id, "collection": collection, "batchSize": 1})
            .await
    };
    let err = get_more(bob.clone(), "c", first).await.unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");
    let err = get_more(alice.clone(), "other", first).await.unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");
    let err = bob
        .database("app")
        .run_command(doc! {"killCursors": "c", "cursors": [first]})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13), "{err}");
    // The owner still can.
    let reply = get_more(alice.clone(), "c", first).await.unwrap();
    assert_eq!(
        reply.get_document("cursor").unwrap().get_i64("id"),
        Ok(first)
    );
    let killed = alice
        .database("app")
        .run_command(doc! {"killCursors": "c", "cursors": [first, second]})
        .await
        .unwrap();
    assert_eq!(killed.get_array("cursorsKilled").unwrap().len(), 2);
}

/// The runbook's `rs.initiate()` with no argument: the shell sends an empty
/// config, and mongod builds the default one (`_id` = replSetName, this
/// member alone, named as the server names itself).
#[tokio::test]
async fn initiate_without_a_config_uses_the_default_one() {
    let member = MongoMember::start(&tools(), plain_options(Some("rs0"))).unwrap();
    let client = direct(&member, None, None).await;
    let reply = admin(&client, doc! {"replSetInitiate": {}}).await.unwrap();
    assert_eq!(
        reply.get_str("info2"),
        Ok("no configuration specified. Using a default configuration for the set"),
        "{reply}"
    );
    wait_for("a primary", Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            hello(&client)
                .await
                .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
        }
    })
    .await;
    let config = admin(&client, doc! {"replSetGetConfig": 1}).await.unwrap();
    let config = config.get_document("config").unwrap();
    assert_eq!(config.get_str("_id"), Ok("rs0"));
    let members = config.get_array("members").unwrap();
    assert_eq!(members.len(), 1);
    let host = members[0].as_document().unwrap().get_str("host").unwrap();
    assert!(host.ends_with(&format!(":{}", member.port())), "{host}");
}
