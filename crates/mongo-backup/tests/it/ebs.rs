//! The EBS store against the AWS emulator: tags, listing only this tool's
//! snapshots of this set, retention, and a volume made from a snapshot.
//! What the store leaves in the emulator, and the snapshots it must leave
//! alone, are made and read back through boto3 (moto's own client), not
//! through the EC2 calls under test.

use ha_lab::Moto;
use mongo_backup::guard::OpTime;
use mongo_backup::run::prune;
use mongo_backup::snapshot::{Labels, Retention};
use mongo_backup::{EbsStore, SnapshotStore as _};
use serde_json::{Value, json};

use crate::tools;

fn volume(moto: &Moto) -> String {
    let made = moto
        .boto3(
            "ec2",
            "create_volume",
            &json!({ "AvailabilityZone": "us-east-1a", "Size": 8 }),
        )
        .unwrap();
    made["VolumeId"].as_str().unwrap().to_owned()
}

/// `create_snapshot` through boto3 with `params` besides the volume: the
/// snapshot's id.
fn foreign_snapshot(moto: &Moto, volume: &str, mut params: Value) -> String {
    params["VolumeId"] = json!(volume);
    let made = moto.boto3("ec2", "create_snapshot", &params).unwrap();
    made["SnapshotId"].as_str().unwrap().to_owned()
}

fn labels(set: &str, group: &str) -> Labels {
    Labels {
        group: group.to_owned(),
        set: set.to_owned(),
        member: "mongo-2:27017".to_owned(),
        optime: Some(OpTime {
            secs: 1_800_000_000,
            inc: 3,
            term: 2,
        }),
        optime_millis: Some(1_800_000_000_000),
        version: "test".to_owned(),
    }
}

#[tokio::test]
async fn retention_deletes_only_this_sets_old_snapshots_and_a_volume_is_made_from_one() {
    let moto = Moto::start(&tools()).unwrap();
    let (data, journal) = (volume(&moto), volume(&moto));
    let store = EbsStore {
        ec2: moto.ec2(),
        volumes: vec![data.clone(), journal.clone()],
        poll: std::time::Duration::from_millis(100),
    };
    // Three runs of our set, one of another set, one snapshot nobody tagged
    // and one tagged by someone else for our set's name.
    let mut ours = Vec::new();
    for group in ["g1", "g2", "g3"] {
        let taken = store.create(&labels("circle", group)).await.unwrap();
        assert_eq!(taken.len(), 2);
        let ids: Vec<String> = taken.iter().map(|s| s.id.clone()).collect();
        store
            .wait_completed(&ids, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        ours.push(ids);
    }
    // The tags, as EC2 holds them.
    let first = moto
        .boto3(
            "ec2",
            "describe_snapshots",
            &json!({ "SnapshotIds": [ours[0][0]] }),
        )
        .unwrap();
    let tags = &first["Snapshots"][0]["Tags"];
    for (key, value) in [
        ("circle-ha:set", "circle"),
        ("circle-ha:group", "g1"),
        ("circle-ha:volumes", "2"),
    ] {
        assert!(
            tags.as_array()
                .unwrap()
                .iter()
                .any(|t| t["Key"] == key && t["Value"] == value),
            "{key}={value} missing: {first}"
        );
    }
    store.create(&labels("other", "g9")).await.unwrap();
    let untagged = foreign_snapshot(&moto, &data, json!({}));
    let foreign = foreign_snapshot(
        &moto,
        &data,
        json!({ "TagSpecifications": [{
            "ResourceType": "snapshot",
            "Tags": [{ "Key": "circle-ha:set", "Value": "circle" }],
        }] }),
    );

    let listed = store.list("circle").await.unwrap();
    assert_eq!(listed.len(), 6, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|s| s.labels.optime.unwrap().inc == 3 && s.volumes == 2)
    );

    let retention = Retention {
        keep_last: Some(1),
        keep_days: None,
    };
    let planned = prune(&store, "circle", &retention, true).await.unwrap();
    assert_eq!(planned.len(), 4, "{planned:?}");
    assert_eq!(
        store.list("circle").await.unwrap().len(),
        6,
        "a dry run deleted something"
    );
    prune(&store, "circle", &retention, false).await.unwrap();
    let mut left: Vec<String> = store
        .list("circle")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    left.sort();
    // Which run is newest depends on creation times that may tie; exactly
    // one whole run of ours is left.
    assert!(
        ours.iter().any(|run| {
            let mut run = run.clone();
            run.sort();
            run == left
        }),
        "left {left:?} of {ours:?}"
    );
    assert_eq!(store.list("other").await.unwrap().len(), 2);
    let all = moto
        .boto3(
            "ec2",
            "describe_snapshots",
            &json!({ "OwnerIds": ["self"] }),
        )
        .unwrap();
    let all: Vec<&str> = all["Snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["SnapshotId"].as_str())
        .collect();
    assert!(all.contains(&untagged.as_str()) && all.contains(&foreign.as_str()));

    let volume = store
        .restore_volume("circle", &left[0], "us-east-1b")
        .await
        .unwrap();
    let made = moto
        .boto3("ec2", "describe_volumes", &json!({ "VolumeIds": [volume] }))
        .unwrap();
    let made = &made["Volumes"][0];
    assert_eq!(made["SnapshotId"], left[0].as_str(), "{made}");
    assert_eq!(made["AvailabilityZone"], "us-east-1b");
    assert!(
        made["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["Key"] == "circle-ha:restored-from" && t["Value"] == left[0].as_str()),
        "{made}"
    );
    assert!(matches!(
        store
            .restore_volume("circle", &untagged, "us-east-1b")
            .await,
        Err(mongo_backup::Error::UnknownSnapshot { .. })
    ));
}
