//! apply from a fresh set, a second run, drift, an interrupted run, and
//! the problems apply must refuse or explain.

use ha_plan::Change as _;
use std::time::Duration;

use bson::{Bson, Document, doc};
use mongo_rs_setup::{Error, Session, Step, apply, dry_run, observe};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{HOSTILE, Lab, progress, wait_for};

fn kinds(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(Step::kind).collect()
}

const FRESH: [&str; 6] = [
    "initiate-replica-set",
    "create-user",
    "create-user",
    "create-user",
    "add-member",
    "add-member",
];

#[tokio::test(flavor = "multi_thread")]
async fn fresh_set_is_bootstrapped_then_a_second_run_is_a_noop_and_drift_is_corrected() {
    let lab = Lab::start("circle");
    let spec = &lab.spec;

    // --dry-run lists the whole bootstrap and changes nothing.
    let plan = dry_run(&Session::new(spec), &progress).await.unwrap();
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);
    assert_eq!(kinds(&plan.steps), FRESH, "{:?}", plan.steps);
    let after = observe(&Session::new(spec), Duration::ZERO, &progress)
        .await
        .unwrap();
    assert!(!after.initiated, "a dry run initiated the set");

    let applied = apply(&Session::new(spec), &progress).await.unwrap();
    assert_eq!(applied.steps, plan.steps, "apply did what the dry run said");

    let config = lab.on_primary(doc! {"replSetGetConfig": 1}).await;
    let config = config.get_document("config").unwrap();
    let members: Vec<&Document> = config
        .get_array("members")
        .unwrap()
        .iter()
        .filter_map(Bson::as_document)
        .collect();
    let hosts: Vec<&str> = members.iter().map(|m| m.get_str("host").unwrap()).collect();
    let wanted: Vec<String> = lab.members.iter().map(|m| m.host()).collect();
    assert_eq!(hosts, wanted, "explicit host names, in order");
    assert_eq!(members[0].get_f64("priority"), Ok(2.0));
    let settings = config.get_document("settings").unwrap();
    assert_eq!(
        mongo_rs_setup::conn::number(settings.get("electionTimeoutMillis")),
        Some(2000)
    );
    let users = lab
        .on_primary(doc! {"usersInfo": {"user": "circle", "db": "admin"}})
        .await;
    let roles = users.get_array("users").unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("roles")
        .unwrap()
        .len();
    assert_eq!(roles, 4, "readWrite on all four app databases: {users}");

    let second = apply(&Session::new(spec), &progress).await.unwrap();
    assert!(second.steps.is_empty(), "second run: {:?}", second.steps);

    // Drift: a dropped role and a lowered priority.
    lab.on_primary(doc! {
        "revokeRolesFromUser": "circle",
        "roles": [{"role": "readWrite", "db": "remote_containers_dev_ghe"}],
    })
    .await;
    let mut config = lab
        .on_primary(doc! {"replSetGetConfig": 1})
        .await
        .get_document("config")
        .unwrap()
        .clone();
    let mut members: Vec<Document> = config
        .get_array("members")
        .unwrap()
        .iter()
        .filter_map(|m| m.as_document().cloned())
        .collect();
    members[0].insert("priority", 0.5);
    let version = config.get_i32("version").unwrap();
    config.insert("version", version + 1);
    config.remove("term");
    config.insert("members", members);
    lab.on_primary(doc! {"replSetReconfig": config}).await;

    let fixed = apply(&Session::new(spec), &progress).await.unwrap();
    assert_eq!(kinds(&fixed.steps), ["grant-roles", "set-member-options"]);
    let again = apply(&Session::new(spec), &progress).await.unwrap();
    assert!(again.steps.is_empty(), "after drift: {:?}", again.steps);

    app_user_can_write_app_databases_but_not_admin(&lab);
}

/// pymongo, an independent client, logs in as `circle` with the
/// replica-set URI the Services machine uses.
fn app_user_can_write_app_databases_but_not_admin(lab: &Lab) {
    const SCRIPT: &str = r#"
import json, os, sys, urllib.parse
import pymongo
from pymongo.errors import OperationFailure
hosts, ca = sys.argv[1], sys.argv[2]
password = urllib.parse.quote(os.environ["APP_PASSWORD"], safe="")
uri = f"mongodb://circle:{password}@{hosts}/circle_ghe?replicaSet=circle&ssl=true&authSource=admin"
client = pymongo.MongoClient(uri, tlsCAFile=ca, serverSelectionTimeoutMS=30000)
written = []
for db in ["circle_ghe", "build_state_dev_ghe", "containers_dev_ghe", "remote_containers_dev_ghe"]:
    client[db].things.insert_one({"written_by": "circle"})
    written.append(db)
try:
    client.admin.things.insert_one({"x": 1})
    refused = None
except OperationFailure as e:
    refused = e.code
print(json.dumps({"written": written, "admin_refused_code": refused}))
"#;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("app.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let hosts: Vec<String> = lab.members.iter().map(|m| m.host()).collect();
    let python = ha_lab::Toolbox::discover(std::env::vars_os())
        .python()
        .unwrap_or_else(|e| panic!("{e}"));
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(hosts.join(","))
        .arg(lab.pki.ca_file())
        .env("APP_PASSWORD", lab.spec.app.password.expose_secret())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pymongo failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["written"].as_array().unwrap().len(), 4, "{result}");
    assert_eq!(result["admin_refused_code"], 13, "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_interrupted_right_after_initiate_is_finished_by_the_next() {
    let lab = Lab::start("circle");
    let spec = &lab.spec;
    let seed = lab.members[0].host();
    let session = Session::new(spec);
    let watcher = async {
        wait_for(
            "the seed to be initiated",
            Duration::from_secs(60),
            || async {
                Session::new(spec)
                    .hello(&seed)
                    .await
                    .is_ok_and(|h| h.set_name.is_some())
            },
        )
        .await;
    };
    tokio::select! {
        result = apply(&session, &progress) => panic!("apply finished before it was interrupted: {result:?}"),
        () = watcher => {}
    }
    drop(session);
    let finished = apply(&Session::new(spec), &progress).await.unwrap();
    assert!(
        !finished
            .steps
            .iter()
            .any(|s| matches!(s, Step::Initiate { .. })),
        "{:?}",
        finished.steps
    );
    assert!(
        finished
            .steps
            .iter()
            .any(|s| matches!(s, Step::AddMember { .. })),
        "the interrupted run had not added members yet: {:?}",
        finished.steps
    );
    let status = mongo_rs_setup::status(&Session::new(spec), Duration::from_secs(60)).await;
    assert!(status.healthy(), "{:?}", status.problems);
    assert!(
        apply(&Session::new(spec), &progress)
            .await
            .unwrap()
            .steps
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_on_an_existing_set_are_explained_without_leaking_them() {
    let lab = Lab::start("circle");
    apply(&Session::new(&lab.spec), &progress).await.unwrap();
    let guess = format!("{HOSTILE}-guess");
    // Every password wrong: apply takes the set for fresh, and createUser
    // through the localhost exception is refused; the error says why.
    let mut wrong = lab.spec.clone();
    wrong.site_admin.password = SecretString::from(guess.clone());
    wrong.admin.password = SecretString::from(guess.clone());
    wrong.app.password = SecretString::from(guess.clone());
    let error = apply(&Session::new(&wrong), &progress).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::FirstUser(_)), "{text}");
    assert!(
        text.contains("localhost exception")
            && text.contains("site_admin and admin users' passwords"),
        "{text}"
    );
    assert!(!text.contains(&guess) && !text.contains(HOSTILE), "{text}");

    // The admins' passwords wrong but the app user's right: users exist,
    // so apply stops before changing anything and says which to fix.
    wrong.app.password = lab.spec.app.password.clone();
    let error = apply(&Session::new(&wrong), &progress).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Blocked(_)), "{text}");
    assert!(text.contains("fix their passwords"), "{text}");
    assert!(!text.contains(&guess) && !text.contains(HOSTILE), "{text}");

    // Only the app user's password is wrong: apply resets it.
    let mut drifted = lab.spec.clone();
    drifted.app.password = SecretString::from(guess);
    let applied = apply(&Session::new(&drifted), &progress).await.unwrap();
    assert_eq!(kinds(&applied.steps), ["set-password"]);
    assert!(
        apply(&Session::new(&drifted), &progress)
            .await
            .unwrap()
            .steps
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_member_blocks_a_fresh_bootstrap_before_anything_changes() {
    let lab = Lab::start("circle");
    let mut spec = lab.spec.clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spec.members[2].host = format!("localhost:{port}");
    spec.reach.connect_timeout = Duration::from_secs(2);
    let error = apply(&Session::new(&spec), &progress).await.unwrap_err();
    let Error::Blocked(problems) = &error else {
        panic!("{error}");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains(&format!("localhost:{port}: cannot connect")),
        "{error}"
    );
    let observed = observe(&Session::new(&spec), Duration::ZERO, &progress)
        .await
        .unwrap();
    assert!(!observed.initiated);
}
