//! Three members with TLS and x509 cluster authentication: initiate with the
//! Rust driver, write with `w: majority`, kill the primary, see a new one
//! elected, restart the old one and see it rejoin with all the data.

use std::time::{Duration, Instant};

use bson::{Document, doc};
use ha_lab::{LabPki, MongoMember};
use mongodb::Client;
use mongodb::options::{
    ClientOptions, Credential, ReadPreference, SelectionCriteria, ServerAddress, Tls, TlsOptions,
    WriteConcern,
};

use crate::{admin, direct, hello, secure_options, tools, wait_for};

const PASSWORD: &str = "r00t pa$$'\"wörd";

async fn set_client(members: &[&MongoMember], pki: &LabPki) -> Client {
    let options = ClientOptions::builder()
        .hosts(
            members
                .iter()
                .map(|m| ServerAddress::Tcp {
                    host: "localhost".to_owned(),
                    port: Some(m.port()),
                })
                .collect::<Vec<_>>(),
        )
        .repl_set_name("circle".to_owned())
        .tls(Tls::Enabled(
            TlsOptions::builder().ca_file_path(pki.ca_file()).build(),
        ))
        .credential(
            Credential::builder()
                .username("admin".to_owned())
                .password(PASSWORD.to_owned())
                .source("admin".to_owned())
                .build(),
        )
        .server_selection_timeout(Duration::from_secs(60))
        .build();
    Client::with_options(options).unwrap()
}

async fn is_primary(client: &Client) -> bool {
    hello(client)
        .await
        .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
}

/// Starts three secure members and initiates them as set "circle" with
/// short election settings; returns the members and an admin client to the
/// set once a primary exists and the admin user is created.
async fn start_set(pki: &LabPki) -> (Vec<MongoMember>, Client) {
    let members: Vec<MongoMember> = (0..3)
        .map(|_| MongoMember::start(&tools(), secure_options(pki, "circle")).unwrap())
        .collect();
    let first = direct(&members[0], Some(pki), None).await;
    let config = doc! {
        "_id": "circle",
        "members": members.iter().enumerate().map(|(i, m)| doc! {"_id": i as i32, "host": m.host()}).collect::<Vec<Document>>(),
        "settings": {"electionTimeoutMillis": 2000, "heartbeatIntervalMillis": 500},
    };
    admin(&first, doc! {"replSetInitiate": config})
        .await
        .unwrap();
    wait_for("the first primary", Duration::from_secs(60), || {
        is_primary(&first)
    })
    .await;
    // The localhost exception: create the first user on the primary.
    admin(
        &first,
        doc! {"createUser": "admin", "pwd": PASSWORD, "roles": [{"role": "root", "db": "admin"}]},
    )
    .await
    .unwrap();
    let refs: Vec<&MongoMember> = members.iter().collect();
    let client = set_client(&refs, pki).await;
    (members, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_elects_a_new_primary_and_the_old_one_rejoins_with_all_data() {
    let pki = LabPki::new().unwrap();
    let (mut members, client) = start_set(&pki).await;
    let majority = WriteConcern::builder()
        .w(mongodb::options::Acknowledgment::Majority)
        .build();
    let things = client.database("app").collection::<Document>("things");
    things
        .insert_many((0..100).map(|i| doc! {"_id": i, "payload": "x".repeat(100)}))
        .write_concern(majority.clone())
        .await
        .unwrap();

    // The primary's replSetGetStatus shows each secondary's sync source,
    // learnt from heartbeats (`syncingTo`), as mongod's does.
    wait_for(
        "secondaries' sync sources in the primary's status",
        Duration::from_secs(60),
        || async {
            let Ok(status) = admin(&client, doc! {"replSetGetStatus": 1}).await else {
                return false;
            };
            let members = status.get_array("members").unwrap();
            let primary = members
                .iter()
                .filter_map(|m| m.as_document())
                .find(|m| m.get_str("stateStr") == Ok("PRIMARY"))
                .and_then(|m| m.get_str("name").ok().map(str::to_owned));
            members
                .iter()
                .filter_map(|m| m.as_document())
                .filter(|m| m.get_str("stateStr") == Ok("SECONDARY"))
                .all(|m| primary.as_deref() == m.get_str("syncSourceHost").ok())
        },
    )
    .await;

    // Which member is primary?
    let mut primary_index = None;
    for (i, member) in members.iter().enumerate() {
        let c = direct(member, Some(&pki), Some(("admin", PASSWORD))).await;
        if is_primary(&c).await {
            primary_index = Some(i);
        }
    }
    let primary_index = primary_index.expect("one member is primary");
    members[primary_index].kill();
    let killed_at = Instant::now();

    let survivors: Vec<usize> = (0..3).filter(|i| *i != primary_index).collect();
    let mut clients = Vec::new();
    for i in &survivors {
        clients.push(direct(&members[*i], Some(&pki), Some(("admin", PASSWORD))).await);
    }
    wait_for(
        "a new primary among the survivors",
        Duration::from_secs(60),
        || async {
            for c in &clients {
                if is_primary(c).await {
                    return true;
                }
            }
            false
        },
    )
    .await;
    let elected_after = killed_at.elapsed();
    assert!(
        elected_after < Duration::from_secs(30),
        "election took {elected_after:?}"
    );

    // Majority writes work again (2 of 3 members).
    let mut written = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !written && Instant::now() < deadline {
        written = things
            .insert_one(doc! {"_id": 100, "after": "failover"})
            .write_concern(majority.clone())
            .await
            .is_ok()
            || things.count_documents(doc! {"_id": 100}).await.unwrap_or(0) == 1;
    }
    assert!(written, "no majority write after the failover");

    // The old primary comes back as a secondary and catches up.
    members[primary_index].restart().unwrap();
    let old = direct(
        &members[primary_index],
        Some(&pki),
        Some(("admin", PASSWORD)),
    )
    .await;
    wait_for(
        "the old primary to rejoin",
        Duration::from_secs(60),
        || async {
            hello(&old).await.is_some_and(|h| {
                h.get_bool("secondary") == Ok(true) || h.get_bool("isWritablePrimary") == Ok(true)
            })
        },
    )
    .await;
    let secondary_read =
        SelectionCriteria::ReadPreference(ReadPreference::SecondaryPreferred { options: None });
    let old_things = old.database("app").collection::<Document>("things");
    wait_for(
        "the old primary to hold all 101 documents",
        Duration::from_secs(60),
        || async {
            old_things
                .count_documents(doc! {})
                .selection_criteria(secondary_read.clone())
                .await
                .unwrap_or(0)
                == 101
        },
    )
    .await;
    let status = admin(&old, doc! {"replSetGetStatus": 1}).await.unwrap();
    let healthy = status
        .get_array("members")
        .unwrap()
        .iter()
        .filter(|m| m.as_document().unwrap().get_f64("health") == Ok(1.0))
        .count();
    assert_eq!(healthy, 3, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_with_another_ou_cannot_join() {
    let pki = LabPki::new().unwrap();
    let (members, client) = start_set(&pki).await;
    // A certificate from the same CA whose OU differs from the members'.
    let dir = tempfile::tempdir().unwrap();
    let store = ha_tls::PkiDir::new(dir.path());
    let spec = ha_tls::LeafSpec::host(
        &["localhost", "127.0.0.1"],
        ha_lab::LAB_ORGANIZATION,
        "intruders",
    )
    .unwrap();
    let (paths, _) = store
        .ensure_leaf(pki.ca(), "intruder", &spec, time_now())
        .unwrap();
    let mut options = secure_options(&pki, "circle");
    if let Some(tls) = options.tls.as_mut() {
        tls.certificate_key_file = paths.combined.clone();
    }
    let intruder = MongoMember::start(&tools(), options).unwrap();
    let mut config = admin(&client, doc! {"replSetGetConfig": 1})
        .await
        .unwrap()
        .get_document("config")
        .unwrap()
        .clone();
    let version = config.get_i32("version").unwrap();
    config.insert("version", version + 1);
    let mut list = config.get_array("members").unwrap().clone();
    list.push(bson::Bson::Document(
        doc! {"_id": 9, "host": intruder.host(), "priority": 0, "votes": 0},
    ));
    config.insert("members", list);
    admin(&client, doc! {"replSetReconfig": config})
        .await
        .unwrap();
    let _ = members;
    wait_for(
        "the primary to report the intruder as unreachable",
        Duration::from_secs(60),
        || async {
            let Ok(status) = admin(&client, doc! {"replSetGetStatus": 1}).await else {
                return false;
            };
            status.get_array("members").unwrap().iter().any(|m| {
                let m = m.as_document().unwrap();
                m.get_i32("_id") == Ok(9)
                    && m.get_f64("health") == Ok(0.0)
                    && m.get_str("lastHeartbeatMessage")
                        .is_ok_and(|msg| !msg.is_empty())
            })
        },
    )
    .await;
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
