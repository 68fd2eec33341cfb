//! Snapshots by an operator's own command (LVM, ZFS, a SAN's CLI …),
//! through a small protocol:
//!
//! - `<argv> create`: take the snapshots now. The run's tags are in the
//!   environment as `CIRCLE_HA_TAG_<KEY>` (`circle-ha:set` becomes
//!   `CIRCLE_HA_TAG_CIRCLE_HA_SET`) and, all together, as JSON in
//!   `CIRCLE_HA_TAGS`; the command prints one snapshot id per line and
//!   keeps the tags with the snapshots.
//! - `<argv> list`: prints a JSON array of `{"id", "source", "created"
//!   (Unix seconds), "state" ("pending" | "completed" | "error"), "tags"}`;
//!   an entry with another state or no `created` counts as pending: never
//!   complete, never deleted (retention fails closed)
//!   for every snapshot it keeps; this tool keeps only those with its tags.
//! - `<argv> delete ID`: deletes one.
//!
//! Every call runs without a shell and must exit 0; a non-zero exit fails
//! the step with the end of its standard error.

use std::process::Stdio;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;

use crate::Error;
use crate::snapshot::{Labels, Snapshot, SnapshotState};
use crate::store::SnapshotStore;

/// Snapshots by an operator's own command (LVM, ZFS, a SAN's CLI …),
/// through a small protocol:
///
/// - `<argv> create`: take the snapshots now. The run's tags are in the
///   environment as `CIRCLE_HA_TAG_<KEY>` (`circle-ha:set` becomes
///   `CIRCLE_HA_TAG_CIRCLE_HA_SET`) and, all together, as JSON in
///   `CIRCLE_HA_TAGS`; the command prints one snapshot id per line and
///   keeps the tags with the snapshots.
/// - `<argv> list`: prints a JSON array of `{"id", "source", "created"
///   (Unix seconds), "state" ("pending" | "completed" | "error"), "tags"}`
///   for every snapshot it keeps; this tool keeps only those with its tags.
/// - `<argv> delete ID`: deletes one.
///
/// Every call runs without a shell and must exit 0; a non-zero exit fails
/// the step with the end of its standard error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandStore {
    /// The command (argv), run with `create`, `list` or `delete ID`
    /// appended.
    pub command: Vec<String>,
    /// What it snapshots, for messages (e.g. the dbPath's volume group).
    pub source: String,
    /// How long one call may take.
    pub timeout: Duration,
}

impl CommandStore {
    async fn call(&self, args: &[&str], env: &[(String, String)]) -> Result<Vec<u8>, Error> {
        let shown = format!("{} {}", self.command.join(" "), args.join(" "));
        let fail = |detail: String| Error::Command {
            what: "snapshot",
            command: shown.clone(),
            detail,
        };
        let (program, fixed) = self
            .command
            .split_first()
            .ok_or_else(|| fail("the command is empty".to_owned()))?;
        let mut child = tokio::process::Command::new(program)
            .args(fixed)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run it: {e}")))?;
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let run = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            // Both pipes at once: a command filling one while this reads
            // the other would wait for ever.
            let read_out = async {
                if let Some(stdout) = stdout.as_mut() {
                    let _ = stdout.take(16 * 1024 * 1024).read_to_end(&mut out).await;
                }
            };
            let read_err = async {
                if let Some(stderr) = stderr.as_mut() {
                    let _ = stderr.take(64 * 1024).read_to_end(&mut err).await;
                }
            };
            tokio::join!(read_out, read_err);
            (child.wait().await, out, err)
        };
        let (status, out, err) = tokio::time::timeout(self.timeout, run).await.map_err(|_| {
            fail(format!(
                "still running after {}s; killed",
                self.timeout.as_secs()
            ))
        })?;
        let status = status.map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(fail(format!("{status}: {}", tail.join(" | "))));
        }
        Ok(out)
    }
}

fn env_key(key: &str) -> String {
    let mut out = String::from("CIRCLE_HA_TAG_");
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    out
}

impl SnapshotStore for CommandStore {
    fn describe(&self) -> String {
        format!("{} (by {})", self.source, self.command.join(" "))
    }

    fn sources(&self) -> Vec<String> {
        vec![self.source.clone()]
    }

    async fn create(&self, labels: &Labels) -> Result<Vec<Snapshot>, Error> {
        let tags = labels.tags(1);
        let mut env: Vec<(String, String)> =
            tags.iter().map(|(k, v)| (env_key(k), v.clone())).collect();
        let json: serde_json::Map<String, serde_json::Value> = tags
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        env.push((
            "CIRCLE_HA_TAGS".to_owned(),
            serde_json::Value::Object(json).to_string(),
        ));
        let out = self.call(&["create"], &env).await?;
        let created = OffsetDateTime::now_utc();
        let ids: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return Err(Error::Command {
                what: "snapshot",
                command: format!("{} create", self.command.join(" ")),
                detail: "it printed no snapshot id".to_owned(),
            });
        }
        Ok(ids
            .into_iter()
            .map(|id| Snapshot {
                id,
                source: self.source.clone(),
                created,
                state: SnapshotState::Completed,
                labels: labels.clone(),
                volumes: 1,
            })
            .collect())
    }

    async fn wait_completed(&self, _ids: &[String], _timeout: Duration) -> Result<(), Error> {
        Ok(())
    }

    async fn list(&self, set: &str) -> Result<Vec<Snapshot>, Error> {
        let out = self.call(&["list"], &[]).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| Error::Command {
                what: "snapshot",
                command: format!("{} list", self.command.join(" ")),
                detail: format!("its output is not a JSON array of snapshots: {e}"),
            })?;
        let mut snapshots = Vec::new();
        for item in value.as_array().into_iter().flatten() {
            let Some(tags) = item.get("tags").and_then(|t| t.as_object()) else {
                continue;
            };
            let Some((labels, volumes)) = Snapshot::labels_from_tags(
                tags.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))),
            ) else {
                continue;
            };
            if labels.set != set {
                continue;
            }
            let Some(id) = item.get("id").and_then(|v| v.as_str()) else {
                continue;
            };
            // Retention fails closed: a snapshot whose state this tool
            // cannot read, or that has no creation time, counts as pending
            // — never complete (so it pushes no good run out under
            // keep_last) and never deleted.
            let created = item
                .get("created")
                .and_then(serde_json::Value::as_i64)
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            let state = match (item.get("state").and_then(|v| v.as_str()), created) {
                (Some("completed"), Some(_)) => SnapshotState::Completed,
                (Some("error"), Some(_)) => SnapshotState::Error,
                _ => SnapshotState::Pending,
            };
            snapshots.push(Snapshot {
                id: id.to_owned(),
                source: item
                    .get("source")
                    .and_then(|v| v.as_str())
                    .unwrap_or(&self.source)
                    .to_owned(),
                created: created.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                state,
                labels,
                volumes,
            });
        }
        Ok(snapshots)
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.call(&["delete", id], &[]).await.map(|_| ())
    }
}
