//! EBS snapshots and volumes.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{Params, Reply, items, tags, text, text_of};
use crate::{Ec2, Error};

/// An EBS snapshot as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// `snap-…`.
    pub id: String,
    /// The volume it was taken of.
    pub volume_id: String,
    /// `pending`, `completed`, `error`, `recoverable` or `recovering`.
    pub state: String,
    /// Why it failed, when it did.
    pub state_message: Option<String>,
    /// How far it is, e.g. `74%`.
    pub progress: Option<String>,
    /// When it was started.
    pub start_time: Option<OffsetDateTime>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

impl Snapshot {
    pub(crate) fn from_item(item: roxmltree::Node<'_, '_>) -> Option<Snapshot> {
        Some(Snapshot {
            id: text(item, "snapshotId")?,
            volume_id: text(item, "volumeId").unwrap_or_default(),
            state: text(item, "status").unwrap_or_default(),
            state_message: text(item, "statusMessage").filter(|m| !m.is_empty()),
            progress: text(item, "progress").filter(|p| !p.is_empty()),
            start_time: text(item, "startTime")
                .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()),
            tags: tags(item),
        })
    }
}

/// Which snapshots [`Ec2::describe_snapshots`] returns: all that match
/// every condition given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotQuery {
    /// These snapshots (empty: any).
    pub ids: Vec<String>,
    /// Only the account's own (`Owner=self`).
    pub owned_by_me: bool,
    /// Only those carrying each of these tags with this value.
    pub tags: Vec<(String, String)>,
}

impl SnapshotQuery {
    /// The snapshots `ids`.
    pub fn ids(ids: &[String]) -> SnapshotQuery {
        SnapshotQuery {
            ids: ids.to_vec(),
            ..SnapshotQuery::default()
        }
    }

    /// The account's own snapshots carrying every tag of `tags`.
    pub fn own_tagged(tags: &[(&str, &str)]) -> SnapshotQuery {
        SnapshotQuery {
            owned_by_me: true,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..SnapshotQuery::default()
        }
    }
}

/// A volume to create: from a snapshot, or empty of a size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VolumeSpec {
    /// Where (the instance's availability zone).
    pub availability_zone: String,
    /// The snapshot to restore, if any.
    pub snapshot_id: Option<String>,
    /// Its size in GiB (needed without a snapshot).
    pub size_gib: Option<u32>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

impl VolumeSpec {
    /// A volume in `availability_zone` from `snapshot_id`, carrying `tags`.
    pub fn from_snapshot(
        snapshot_id: &str,
        availability_zone: &str,
        tags: Vec<(String, String)>,
    ) -> VolumeSpec {
        VolumeSpec {
            availability_zone: availability_zone.to_owned(),
            snapshot_id: Some(snapshot_id.to_owned()),
            size_gib: None,
            tags,
        }
    }

    /// An empty volume of `size_gib` in `availability_zone`.
    pub fn empty(size_gib: u32, availability_zone: &str) -> VolumeSpec {
        VolumeSpec {
            availability_zone: availability_zone.to_owned(),
            snapshot_id: None,
            size_gib: Some(size_gib),
            tags: Vec::new(),
        }
    }
}

/// An EBS volume as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Volume {
    /// `vol-…`.
    pub id: String,
    /// `creating`, `available`, `in-use`, …
    pub state: String,
    /// The snapshot it was made from, if any.
    pub snapshot_id: Option<String>,
    /// Its availability zone.
    pub availability_zone: String,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

impl Ec2 {
    /// `CreateSnapshot` of `volume_id` with `description`, tagged `tags`
    /// at creation: the new snapshot (usually `pending`).
    pub async fn create_snapshot(
        &self,
        volume_id: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<Snapshot, Error> {
        const ACTION: &str = "CreateSnapshot";
        let params = Params::default()
            .add("VolumeId", volume_id)
            .add("Description", description)
            .tag_specification("snapshot", tags);
        let body = self.call(ACTION, params).await?;
        let reply = Reply::parse(ACTION, &body)?;
        Snapshot::from_item(reply.root()).ok_or_else(|| reply.missing("snapshotId"))
    }

    /// `DescribeSnapshots`: every snapshot `query` matches, all pages read.
    /// An empty query matches every snapshot the account can see, public
    /// ones included: name ids, the owner or tags.
    pub async fn describe_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>, Error> {
        const ACTION: &str = "DescribeSnapshots";
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = Params::default().list("SnapshotId", &query.ids);
            if query.owned_by_me {
                params = params.add("Owner.1", "self");
            }
            for (i, (key, value)) in query.tags.iter().enumerate() {
                let n = i + 1;
                params = params
                    .add(format!("Filter.{n}.Name"), format!("tag:{key}"))
                    .add(format!("Filter.{n}.Value.1"), value);
            }
            if let Some(token) = &token {
                params = params.add("NextToken", token);
            }
            let body = self.call(ACTION, params).await?;
            let reply = Reply::parse(ACTION, &body)?;
            out.extend(items(reply.root(), "snapshotSet").filter_map(Snapshot::from_item));
            token = text_of(&reply, "nextToken");
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// `DeleteSnapshot` of `id`.
    pub async fn delete_snapshot(&self, id: &str) -> Result<(), Error> {
        self.call("DeleteSnapshot", Params::default().add("SnapshotId", id))
            .await
            .map(drop)
    }

    /// `CreateVolume` as `spec` says: the new volume's id.
    pub async fn create_volume(&self, spec: &VolumeSpec) -> Result<String, Error> {
        const ACTION: &str = "CreateVolume";
        let mut params = Params::default().add("AvailabilityZone", &spec.availability_zone);
        if let Some(snapshot) = &spec.snapshot_id {
            params = params.add("SnapshotId", snapshot);
        }
        if let Some(size) = spec.size_gib {
            params = params.add("Size", size.to_string());
        }
        let params = params.tag_specification("volume", &spec.tags);
        let body = self.call(ACTION, params).await?;
        let reply = Reply::parse(ACTION, &body)?;
        text_of(&reply, "volumeId").ok_or_else(|| reply.missing("volumeId"))
    }

    /// `DescribeVolumes` of `ids` (none: every volume of the account in the
    /// region).
    pub async fn describe_volumes(&self, ids: &[String]) -> Result<Vec<Volume>, Error> {
        const ACTION: &str = "DescribeVolumes";
        let body = self
            .call(ACTION, Params::default().list("VolumeId", ids))
            .await?;
        let reply = Reply::parse(ACTION, &body)?;
        Ok(items(reply.root(), "volumeSet")
            .filter_map(|item| {
                Some(Volume {
                    id: text(item, "volumeId")?,
                    state: text(item, "status").unwrap_or_default(),
                    snapshot_id: text(item, "snapshotId").filter(|s| !s.is_empty()),
                    availability_zone: text(item, "availabilityZone").unwrap_or_default(),
                    tags: tags(item),
                })
            })
            .collect())
    }
}
