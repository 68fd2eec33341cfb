//! Where snapshots go: the [`SnapshotStore`] trait, and [`DirectoryStore`]
//! (a copy of the stopped member's dbPath, for labs and for operators who
//! snapshot by other means). EBS is [`crate::EbsStore`].

use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use crate::Error;
use crate::snapshot::{Labels, Snapshot, SnapshotState};

/// A place that takes, lists and deletes snapshots of the member's
/// volumes. Implementations tag what they make with the run's [`Labels`]
/// and list only what carries this tool's tags.
pub trait SnapshotStore: Sync {
    /// What it snapshots, for messages (`EBS vol-1, vol-2`).
    fn describe(&self) -> String;

    /// The sources (volumes, directories), one snapshot each per run.
    fn sources(&self) -> Vec<String>;

    /// Takes one snapshot of every source, together, tagged with `labels`.
    /// When it returns, the snapshots' point in time is fixed (the member
    /// may be started again), though they may still be `pending`.
    fn create(&self, labels: &Labels) -> impl Future<Output = Result<Vec<Snapshot>, Error>> + Send;

    /// Waits until every snapshot in `ids` is completed (an `error` state
    /// fails), at most `timeout`.
    fn wait_completed(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every snapshot this tool made for replica set `set`.
    fn list(&self, set: &str) -> impl Future<Output = Result<Vec<Snapshot>, Error>> + Send;

    /// Deletes one snapshot (one this tool made: [`SnapshotStore::list`]
    /// is how callers find them).
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Snapshots as copies of the member's data directory: `<root>/<run>/data`
/// holds the copy, `<root>/<run>/snapshot.json` its tags. A copy is
/// completed when it returns (the member stays stopped while it runs).
#[derive(Clone, Debug)]
pub struct DirectoryStore {
    /// The member's dbPath.
    pub source: PathBuf,
    /// Where the copies go (created 0700).
    pub root: PathBuf,
}

const META: &str = "snapshot.json";
const DATA: &str = "data";
const PARTIAL: &str = "data.partial";

impl DirectoryStore {
    fn run_dir(&self, id: &str) -> Result<PathBuf, Error> {
        let mut parts = Path::new(id).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(_)), None) if !id.starts_with('.') => Ok(self.root.join(id)),
            _ => Err(Error::UnknownSnapshot {
                id: id.to_owned(),
                set: String::new(),
            }),
        }
    }

    /// Where the copy of snapshot `id` is (a directory a mongod can be
    /// started on, with `--dbpath`).
    pub fn data_dir(&self, id: &str) -> Result<PathBuf, Error> {
        Ok(self.run_dir(id)?.join(DATA))
    }
}

impl SnapshotStore for DirectoryStore {
    fn describe(&self) -> String {
        format!(
            "a copy of {} into {}",
            self.source.display(),
            self.root.display()
        )
    }

    fn sources(&self) -> Vec<String> {
        vec![self.source.display().to_string()]
    }

    async fn create(&self, labels: &Labels) -> Result<Vec<Snapshot>, Error> {
        let source = self.source.clone();
        let run = self.run_dir(&labels.group)?;
        let labels = labels.clone();
        tokio::task::spawn_blocking(move || copy_run(&source, &run, &labels))
            .await
            .map_err(|e| Error::Io {
                action: "copy",
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    async fn wait_completed(&self, _ids: &[String], _timeout: Duration) -> Result<(), Error> {
        Ok(())
    }

    async fn list(&self, set: &str) -> Result<Vec<Snapshot>, Error> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    action: "list",
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(text) = std::fs::read_to_string(dir.join(META)) else {
                continue;
            };
            let Some(snapshot) = parse_meta(&entry.file_name().to_string_lossy(), &dir, &text)
            else {
                continue;
            };
            if snapshot.labels.set == set {
                out.push(snapshot);
            }
        }
        Ok(out)
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let dir = self.run_dir(id)?;
        if !dir.join(META).is_file() {
            return Err(Error::UnknownSnapshot {
                id: id.to_owned(),
                set: String::new(),
            });
        }
        std::fs::remove_dir_all(&dir).map_err(|source| Error::Io {
            action: "delete",
            path: dir,
            source,
        })
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

fn copy_run(source: &Path, run: &Path, labels: &Labels) -> Result<Vec<Snapshot>, Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(run)
        .map_err(io("create", run))?;
    let created = OffsetDateTime::now_utc();
    let tags: serde_json::Map<String, serde_json::Value> = labels
        .tags(1)
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let meta = serde_json::json!({
        "source": source.display().to_string(),
        "created": created.unix_timestamp(),
        "tags": tags,
    });
    let partial = run.join(PARTIAL);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io("remove", &partial))?;
    }
    // The tags first: a copy cut short stays listed (as failed) so that
    // retention removes it.
    write_file(&run.join(META), meta.to_string().as_bytes())?;
    copy_tree(source, &partial)?;
    std::fs::rename(&partial, run.join(DATA)).map_err(io("rename", &partial))?;
    Ok(vec![Snapshot {
        id: labels.group.clone(),
        source: source.display().to_string(),
        created,
        state: SnapshotState::Completed,
        labels: labels.clone(),
        volumes: 1,
    }])
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(io("write", path))?;
    file.write_all(bytes).map_err(io("write", path))?;
    file.sync_all().map_err(io("sync", path))
}

/// Copies a directory tree (files and directories; modes kept, symlinks
/// and special files skipped), syncing each file.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .map_err(io("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let kind = entry.file_type().map_err(io("read", &entry.path()))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(io("copy", &entry.path()))?;
            let mode = entry
                .metadata()
                .map_err(io("read", &entry.path()))?
                .permissions()
                .mode();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(io("chmod", &target))?;
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(io("sync", &target))?;
        }
    }
    Ok(())
}

fn parse_meta(id: &str, dir: &Path, text: &str) -> Option<Snapshot> {
    let meta: serde_json::Value = serde_json::from_str(text).ok()?;
    let tags = meta.get("tags")?.as_object()?;
    let (labels, volumes) = Snapshot::labels_from_tags(
        tags.iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))),
    )?;
    let state = if dir.join(DATA).is_dir() {
        SnapshotState::Completed
    } else {
        SnapshotState::Error
    };
    Some(Snapshot {
        id: id.to_owned(),
        source: meta.get("source")?.as_str()?.to_owned(),
        created: OffsetDateTime::from_unix_timestamp(meta.get("created")?.as_i64()?).ok()?,
        state,
        labels,
        volumes,
    })
}

/// Which store a backup uses, as data: what a configuration names before
/// any client exists. [`StoreSpec::open`] makes the store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreSpec {
    /// EBS snapshots of these volumes, in this region.
    Ebs {
        /// `vol-…`.
        volumes: Vec<String>,
        /// The AWS region.
        region: String,
    },
    /// Copies of the dbPath under this directory.
    Directory {
        /// Where copies go.
        root: PathBuf,
    },
    /// An operator's command (LVM, ZFS, a SAN's CLI), speaking
    /// [`crate::CommandStore`]'s protocol.
    Command {
        /// Its argv (`create`, `list`, `delete ID` are appended).
        command: Vec<String>,
    },
}

impl StoreSpec {
    /// The AWS region of an EBS store (the region of the EC2 client
    /// [`StoreSpec::open`] needs); `None` for the others.
    pub fn region(&self) -> Option<&str> {
        match self {
            StoreSpec::Ebs { region, .. } => Some(region),
            _ => None,
        }
    }

    /// The store, ready to use. `source` is the member's dbPath; `ec2` the
    /// client for an EBS store's region (the program builds it:
    /// credentials, endpoint), which the other stores do not need. An EBS
    /// store without one is [`Error::NoClient`].
    pub fn open(&self, source: &Path, ec2: Option<ha_ec2::Ec2>) -> Result<AnyStore, Error> {
        Ok(match self {
            StoreSpec::Ebs { volumes, .. } => AnyStore::Ebs(crate::EbsStore {
                ec2: ec2.ok_or(Error::NoClient {
                    what: "EC2 client for the EBS snapshots",
                })?,
                volumes: volumes.clone(),
                poll: Duration::from_secs(15),
            }),
            StoreSpec::Directory { root } => AnyStore::Directory(DirectoryStore {
                source: source.to_path_buf(),
                root: root.clone(),
            }),
            StoreSpec::Command { command } => AnyStore::Command(crate::CommandStore {
                command: command.clone(),
                source: source.display().to_string(),
                timeout: Duration::from_secs(3600),
            }),
        })
    }
}

/// Any of this crate's stores, chosen at run time (from `[backup].store`,
/// say) without the caller writing the dispatch.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// EBS snapshots.
    Ebs(crate::EbsStore),
    /// Copies of the dbPath.
    Directory(DirectoryStore),
    /// An operator's snapshot command.
    Command(crate::CommandStore),
}

impl AnyStore {
    /// [`crate::EbsStore::restore_volume`]; the other stores restore by
    /// their own means, said in the error.
    pub async fn restore_volume(
        &self,
        set: &str,
        snapshot_id: &str,
        availability_zone: &str,
    ) -> Result<String, Error> {
        match self {
            AnyStore::Ebs(store) => {
                store
                    .restore_volume(set, snapshot_id, availability_zone)
                    .await
            }
            AnyStore::Directory(_) => Err(Error::RestoreNotEbs {
                how: "a directory snapshot is restored by copying its data/ directory into the \
                      member's dbPath",
            }),
            AnyStore::Command(_) => Err(Error::RestoreNotEbs {
                how: "restore a snapshot taken by the snapshot command with the same tool",
            }),
        }
    }
}

impl SnapshotStore for AnyStore {
    fn describe(&self) -> String {
        match self {
            AnyStore::Ebs(s) => s.describe(),
            AnyStore::Directory(s) => s.describe(),
            AnyStore::Command(s) => s.describe(),
        }
    }

    fn sources(&self) -> Vec<String> {
        match self {
            AnyStore::Ebs(s) => s.sources(),
            AnyStore::Directory(s) => s.sources(),
            AnyStore::Command(s) => s.sources(),
        }
    }

    async fn create(&self, labels: &Labels) -> Result<Vec<Snapshot>, Error> {
        match self {
            AnyStore::Ebs(s) => s.create(labels).await,
            AnyStore::Directory(s) => s.create(labels).await,
            AnyStore::Command(s) => s.create(labels).await,
        }
    }

    async fn wait_completed(&self, ids: &[String], timeout: Duration) -> Result<(), Error> {
        match self {
            AnyStore::Ebs(s) => s.wait_completed(ids, timeout).await,
            AnyStore::Directory(s) => s.wait_completed(ids, timeout).await,
            AnyStore::Command(s) => s.wait_completed(ids, timeout).await,
        }
    }

    async fn list(&self, set: &str) -> Result<Vec<Snapshot>, Error> {
        match self {
            AnyStore::Ebs(s) => s.list(set).await,
            AnyStore::Directory(s) => s.list(set).await,
            AnyStore::Command(s) => s.list(set).await,
        }
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        match self {
            AnyStore::Ebs(s) => s.delete(id).await,
            AnyStore::Directory(s) => s.delete(id).await,
            AnyStore::Command(s) => s.delete(id).await,
        }
    }
}
