//! EBS snapshots of the member's volumes (aws-sdk-ec2), and volumes made
//! from them for a restore.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, ResourceType, SnapshotState as Ec2State, Tag, TagSpecification};
use time::OffsetDateTime;

use crate::Error;
use crate::error::aws;
use crate::snapshot::{Labels, Snapshot, SnapshotState, TAG_SET, TAG_TOOL, TOOL};
use crate::store::SnapshotStore;

/// Snapshots of EBS volumes (the ones that hold the member's dbPath, and its
/// journal or log when they are separate).
#[derive(Clone, Debug)]
pub struct EbsStore {
    /// The EC2 client (the binary builds it: region, credentials,
    /// endpoint).
    pub ec2: aws_sdk_ec2::Client,
    /// The volumes (`vol-…`).
    pub volumes: Vec<String>,
    /// How often to poll while waiting.
    pub poll: Duration,
}

impl EbsStore {
    /// Creates a volume in `availability_zone` from snapshot `snapshot_id`
    /// (one this tool made for `set`), tagged with the snapshot's tags and
    /// `circle-ha:restored-from`; returns the new volume's id.
    pub async fn restore_volume(
        &self,
        set: &str,
        snapshot_id: &str,
        availability_zone: &str,
    ) -> Result<String, Error> {
        let snapshot = self
            .list(set)
            .await?
            .into_iter()
            .find(|s| s.id == snapshot_id)
            .ok_or_else(|| Error::UnknownSnapshot {
                id: snapshot_id.to_owned(),
                set: set.to_owned(),
            })?;
        let mut tags = TagSpecification::builder().resource_type(ResourceType::Volume);
        for (key, value) in snapshot.labels.tags(snapshot.volumes) {
            tags = tags.tags(Tag::builder().key(key).value(value).build());
        }
        tags = tags.tags(
            Tag::builder()
                .key("circle-ha:restored-from")
                .value(snapshot_id)
                .build(),
        );
        let created = self
            .ec2
            .create_volume()
            .snapshot_id(snapshot_id)
            .availability_zone(availability_zone)
            .tag_specifications(tags.build())
            .send()
            .await
            .map_err(|e| aws("CreateVolume", snapshot_id, e))?;
        created.volume_id.ok_or_else(|| Error::Aws {
            operation: "CreateVolume",
            target: snapshot_id.to_owned(),
            detail: "no volume id in the reply".to_owned(),
        })
    }
}

fn state(state: Option<&Ec2State>) -> SnapshotState {
    match state {
        Some(Ec2State::Completed) => SnapshotState::Completed,
        Some(Ec2State::Error | Ec2State::Recoverable) => SnapshotState::Error,
        _ => SnapshotState::Pending,
    }
}

fn created(time: Option<&aws_sdk_ec2::primitives::DateTime>) -> OffsetDateTime {
    time.and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
        .unwrap_or_else(OffsetDateTime::now_utc)
}

impl SnapshotStore for EbsStore {
    fn describe(&self) -> String {
        format!("EBS {}", self.volumes.join(", "))
    }

    fn sources(&self) -> Vec<String> {
        self.volumes.clone()
    }

    async fn create(&self, labels: &Labels) -> Result<Vec<Snapshot>, Error> {
        // mongod is stopped, so the volumes are at rest: snapshots taken
        // one after another are consistent with each other.
        let mut out = Vec::new();
        for volume in &self.volumes {
            let mut tags = TagSpecification::builder().resource_type(ResourceType::Snapshot);
            for (key, value) in labels.tags(self.volumes.len()) {
                tags = tags.tags(Tag::builder().key(key).value(value).build());
            }
            let reply = self
                .ec2
                .create_snapshot()
                .volume_id(volume)
                .description(format!(
                    "mongo-backup {} {} {}",
                    labels.set, labels.member, labels.group
                ))
                .tag_specifications(tags.build())
                .send()
                .await
                .map_err(|e| aws("CreateSnapshot", volume, e))?;
            let id = reply.snapshot_id.clone().ok_or_else(|| Error::Aws {
                operation: "CreateSnapshot",
                target: volume.clone(),
                detail: "no snapshot id in the reply".to_owned(),
            })?;
            out.push(Snapshot {
                id,
                source: volume.clone(),
                created: created(reply.start_time.as_ref()),
                state: state(reply.state.as_ref()),
                labels: labels.clone(),
                volumes: self.volumes.len(),
            });
        }
        Ok(out)
    }

    async fn wait_completed(&self, ids: &[String], timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let reply = self
                .ec2
                .describe_snapshots()
                .set_snapshot_ids(Some(ids.to_vec()))
                .send()
                .await
                .map_err(|e| aws("DescribeSnapshots", &ids.join(","), e))?;
            let mut waiting = Vec::new();
            for snapshot in reply.snapshots() {
                let id = snapshot.snapshot_id().unwrap_or_default();
                match state(snapshot.state()) {
                    SnapshotState::Completed => {}
                    SnapshotState::Error => {
                        return Err(Error::Aws {
                            operation: "CreateSnapshot",
                            target: id.to_owned(),
                            detail: format!(
                                "the snapshot failed: {}",
                                snapshot.state_message().unwrap_or("no message")
                            ),
                        });
                    }
                    SnapshotState::Pending => {
                        waiting.push(format!("{id} {}", snapshot.progress().unwrap_or("0%")))
                    }
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: "the snapshots to complete".to_owned(),
                    waited: timeout,
                    last: waiting.join(", "),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn list(&self, set: &str) -> Result<Vec<Snapshot>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let reply = self
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(
                    Filter::builder()
                        .name(format!("tag:{TAG_TOOL}"))
                        .values(TOOL)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name(format!("tag:{TAG_SET}"))
                        .values(set)
                        .build(),
                )
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws("DescribeSnapshots", set, e))?;
            for snapshot in reply.snapshots() {
                let tags = snapshot
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?)));
                // The filter is the server's; the tags are checked again here.
                let Some((labels, volumes)) = Snapshot::labels_from_tags(tags) else {
                    continue;
                };
                if labels.set != set {
                    continue;
                }
                out.push(Snapshot {
                    id: snapshot.snapshot_id().unwrap_or_default().to_owned(),
                    source: snapshot.volume_id().unwrap_or_default().to_owned(),
                    created: created(snapshot.start_time()),
                    state: state(snapshot.state()),
                    labels,
                    volumes,
                });
            }
            token = reply.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.ec2
            .delete_snapshot()
            .snapshot_id(id)
            .send()
            .await
            .map_err(|e| aws("DeleteSnapshot", id, e))?;
        Ok(())
    }
}
