//! The EBS store against the AWS emulator: tags, listing only this tool's
//! snapshots of this set, retention, and a volume made from a snapshot.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use ha_lab::Moto;
use mongo_backup::guard::OpTime;
use mongo_backup::run::prune;
use mongo_backup::snapshot::{Labels, Retention};
use mongo_backup::{EbsStore, SnapshotStore as _};

use crate::tools;

async fn volume(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.create_volume()
        .availability_zone("us-east-1a")
        .size(8)
        .send()
        .await
        .unwrap()
        .volume_id
        .unwrap()
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
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
    let (data, journal) = (volume(&ec2).await, volume(&ec2).await);
    let store = EbsStore {
        ec2: ec2.clone(),
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
    store.create(&labels("other", "g9")).await.unwrap();
    let untagged = ec2
        .create_snapshot()
        .volume_id(&data)
        .send()
        .await
        .unwrap()
        .snapshot_id
        .unwrap();
    let foreign = ec2
        .create_snapshot()
        .volume_id(&data)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(Tag::builder().key("circle-ha:set").value("circle").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .snapshot_id
        .unwrap();

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
    let all: Vec<String> = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    assert!(all.contains(&untagged) && all.contains(&foreign));

    let volume = store
        .restore_volume("circle", &left[0], "us-east-1b")
        .await
        .unwrap();
    let made = ec2
        .describe_volumes()
        .volume_ids(&volume)
        .send()
        .await
        .unwrap();
    let made = &made.volumes()[0];
    assert_eq!(made.snapshot_id(), Some(left[0].as_str()));
    assert_eq!(made.availability_zone(), Some("us-east-1b"));
    assert!(
        made.tags()
            .iter()
            .any(|t| t.key() == Some("circle-ha:restored-from"))
    );
    assert!(matches!(
        store
            .restore_volume("circle", &untagged, "us-east-1b")
            .await,
        Err(mongo_backup::Error::UnknownSnapshot { .. })
    ));
}
