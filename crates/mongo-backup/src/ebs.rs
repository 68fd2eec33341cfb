//! EBS snapshots of the member's volumes (through `ha-ec2`), and volumes made
//! from them for a restore.

use std::time::{Duration, Instant};

use ha_ec2::{SnapshotQuery, VolumeSpec};
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
    pub ec2: ha_ec2::Ec2,
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
        let mut tags = snapshot.labels.tags(snapshot.volumes);
        tags.push(("circle-ha:restored-from".to_owned(), snapshot_id.to_owned()));
        self.ec2
            .create_volume(&VolumeSpec::from_snapshot(
                snapshot_id,
                availability_zone,
                tags,
            ))
            .await
            .map_err(|e| aws("CreateVolume", snapshot_id, &e))
    }
}

fn state(state: &str) -> SnapshotState {
    match state {
        "completed" => SnapshotState::Completed,
        "error" | "recoverable" => SnapshotState::Error,
        _ => SnapshotState::Pending,
    }
}

fn created(time: Option<OffsetDateTime>) -> OffsetDateTime {
    time.unwrap_or_else(OffsetDateTime::now_utc)
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
        let tags = labels.tags(self.volumes.len());
        for volume in &self.volumes {
            let description = format!(
                "mongo-backup {} {} {}",
                labels.set, labels.member, labels.group
            );
            let made = self
                .ec2
                .create_snapshot(volume, &description, &tags)
                .await
                .map_err(|e| aws("CreateSnapshot", volume, &e))?;
            out.push(Snapshot {
                id: made.id,
                source: volume.clone(),
                created: created(made.start_time),
                state: state(&made.state),
                labels: labels.clone(),
                volumes: self.volumes.len(),
            });
        }
        Ok(out)
    }

    async fn wait_completed(&self, ids: &[String], timeout: Duration) -> Result<(), Error> {
        // No ids would describe every snapshot the account can see.
        if ids.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            let snapshots = self
                .ec2
                .describe_snapshots(&SnapshotQuery::ids(ids))
                .await
                .map_err(|e| aws("DescribeSnapshots", &ids.join(","), &e))?;
            let mut waiting = Vec::new();
            for snapshot in snapshots {
                match state(&snapshot.state) {
                    SnapshotState::Completed => {}
                    SnapshotState::Error => {
                        return Err(Error::Aws {
                            operation: "CreateSnapshot",
                            target: snapshot.id,
                            detail: format!(
                                "the snapshot failed: {}",
                                snapshot.state_message.as_deref().unwrap_or("no message")
                            ),
                        });
                    }
                    SnapshotState::Pending => waiting.push(format!(
                        "{} {}",
                        snapshot.id,
                        snapshot.progress.as_deref().unwrap_or("0%")
                    )),
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
        let query = SnapshotQuery::own_tagged(&[(TAG_TOOL, TOOL), (TAG_SET, set)]);
        let snapshots = self
            .ec2
            .describe_snapshots(&query)
            .await
            .map_err(|e| aws("DescribeSnapshots", set, &e))?;
        let mut out = Vec::new();
        for snapshot in snapshots {
            let tags = snapshot.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            // The filter is the server's; the tags are checked again here.
            let Some((labels, volumes)) = Snapshot::labels_from_tags(tags) else {
                continue;
            };
            if labels.set != set {
                continue;
            }
            out.push(Snapshot {
                state: state(&snapshot.state),
                created: created(snapshot.start_time),
                id: snapshot.id,
                source: snapshot.volume_id,
                labels,
                volumes,
            });
        }
        Ok(out)
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.ec2
            .delete_snapshot(id)
            .await
            .map_err(|e| aws("DeleteSnapshot", id, &e))
    }
}
