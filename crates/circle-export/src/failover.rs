//! Writes to a replica set that ride through a failover: when the primary
//! goes away (killed, stepped down, unreachable) a write waits, within a
//! bound, for a new one and is sent again; a batch sent again after an
//! uncertain outcome finds some of its documents already there, and a
//! document already there counts as written only when it is byte for byte
//! the one the archive holds.

use std::time::{Duration, Instant};

use bson::{Bson, RawDocumentBuf, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::error::{ErrorKind, WriteFailure};

use crate::error::{Error, describe_mongo};

/// How writes behave when the set loses its primary.
#[derive(Clone, Copy)]
pub struct Failover<'a> {
    /// How long to wait for a new primary before giving up (from the
    /// first failure of one write; a success starts the count again).
    pub wait: Duration,
    /// Where "lost the primary, waiting" is said.
    pub progress: ha_plan::Progress<'a>,
}

impl std::fmt::Debug for Failover<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Server error codes that mean "this member is not (or no longer) the
/// primary, or is going away": the write may be sent again to a new one.
const LOST_PRIMARY_CODES: [i32; 11] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// What a failed write means for the restore.
enum Outcome {
    /// The primary went away: wait for a new one and send again.
    LostPrimary(String),
    /// Documents of the batch (their indexes) are already there; with
    /// `lost_primary`, the rest of the batch may not have been confirmed.
    Duplicates {
        indexes: Vec<usize>,
        lost_primary: Option<String>,
    },
    /// Anything else stops the restore.
    Fatal(String),
}

fn lost_primary(error: &mongodb::error::Error) -> Option<String> {
    if error.contains_label("RetryableWriteError") {
        return Some(cause(error));
    }
    match &*error.kind {
        ErrorKind::Io(e) => Some(format!("network error: {e}")),
        ErrorKind::ConnectionPoolCleared { .. } => Some("connection to the primary lost".into()),
        ErrorKind::ServerSelection { .. } => Some("no primary to write to".into()),
        ErrorKind::Command(c) if LOST_PRIMARY_CODES.contains(&c.code) => Some(cause(error)),
        ErrorKind::Write(WriteFailure::WriteConcernError(w))
            if LOST_PRIMARY_CODES.contains(&w.code) =>
        {
            Some(cause(error))
        }
        _ => None,
    }
}

/// The write concern's timeout (64 WriteConcernFailed) ran out: the
/// secondaries are not replicating.
fn replication_timeout(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::InsertMany(failure) => failure
            .write_concern_error
            .as_ref()
            .is_some_and(|w| w.code == 64),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => w.code == 64,
        _ => false,
    }
}

fn classify(error: &mongodb::error::Error) -> Outcome {
    if replication_timeout(error) {
        return Outcome::Fatal(
            "the secondaries did not confirm a batch within the write concern's timeout (w: \
             majority): the set is not replicating — check it with `mongo-rs-setup status`, \
             then run the same restore again (it resumes)"
                .to_owned(),
        );
    }
    if let ErrorKind::InsertMany(failure) = &*error.kind {
        let wc_lost = failure
            .write_concern_error
            .as_ref()
            .filter(|w| LOST_PRIMARY_CODES.contains(&w.code))
            .map(|w| format!("{} (code {} {})", w.message, w.code, w.code_name));
        if let Some(errors) = &failure.write_errors {
            if errors.iter().all(|e| e.code == 11000) {
                return Outcome::Duplicates {
                    indexes: errors.iter().map(|e| e.index).collect(),
                    lost_primary: wc_lost,
                };
            }
            // A write error that is not a duplicate key, alongside a lost
            // primary, is still a real error of that document.
            return Outcome::Fatal(cause(error));
        }
        if let Some(lost) = wc_lost {
            return Outcome::LostPrimary(lost);
        }
    }
    match lost_primary(error) {
        Some(lost) => Outcome::LostPrimary(lost),
        None => Outcome::Fatal(cause(error)),
    }
}

/// The driver's error in one line, without the server's raw reply.
fn cause(error: &mongodb::error::Error) -> String {
    match &*error.kind {
        ErrorKind::ServerSelection { .. } => "no primary could be selected".to_owned(),
        _ => {
            let text = describe_mongo(error);
            let line = text.lines().next().unwrap_or_default();
            line.chars().take(300).collect()
        }
    }
}

impl Failover<'_> {
    /// How long the driver itself may wait for a primary (its server
    /// selection timeout) when writes wait `wait` for a failover: never
    /// longer than the wait, at most 30 s, at least 1 s. Give it to
    /// [`crate::MongoTarget::connect`] or [`crate::mongo_from_uri`].
    pub fn server_selection(wait: Duration) -> Duration {
        wait.clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Inserts `batch` into `collection` (unordered, with `concern`), as
    /// many times as a lost primary takes. Returns how many documents the
    /// batch had. `what` names the collection in messages.
    pub async fn insert_batch(
        &self,
        collection: &Collection<RawDocumentBuf>,
        batch: &[RawDocumentBuf],
        concern: &mongodb::options::WriteConcern,
        what: &str,
    ) -> Result<u64, Error> {
        let mut waiting_since: Option<Instant> = None;
        loop {
            let left = self.time_left(waiting_since);
            let attempt_started = Instant::now();
            let attempt = collection
                .insert_many(batch)
                .ordered(false)
                .write_concern(concern.clone());
            let lost = match tokio::time::timeout(left, attempt).await {
                Ok(Ok(_)) => return Ok(batch.len() as u64),
                Err(_) => format!("no answer within {} s", left.as_secs()),
                Ok(Err(error)) => match classify(&error) {
                    Outcome::Fatal(text) => {
                        return Err(Error::TargetWrite {
                            what: format!("insert into {what}"),
                            detail: text,
                        });
                    }
                    Outcome::Duplicates {
                        indexes,
                        lost_primary,
                    } => {
                        let all_there = check_duplicates(collection, batch, &indexes, what).await?;
                        match lost_primary {
                            None if all_there => return Ok(batch.len() as u64),
                            None => "a document went missing after a failover".to_owned(),
                            Some(lost) => lost,
                        }
                    }
                    Outcome::LostPrimary(lost) => lost,
                },
            };
            waiting_since =
                Some(self.wait_or_give_up(waiting_since, attempt_started, &lost, what)?);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `op` (a command that is safe to send again, such as `create`
    /// or `createIndexes`) as many times as a lost primary takes.
    pub async fn command<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::IntoFuture<Output = Result<T, mongodb::error::Error>>,
    {
        let mut waiting_since: Option<Instant> = None;
        loop {
            let left = self.time_left(waiting_since);
            let attempt_started = Instant::now();
            let lost = match tokio::time::timeout(left, std::future::IntoFuture::into_future(op()))
                .await
            {
                Ok(Ok(value)) => return Ok(value),
                Err(_) => format!("no answer within {} s", left.as_secs()),
                Ok(Err(error)) => match lost_primary(&error) {
                    Some(lost) => lost,
                    None => {
                        return Err(Error::TargetWrite {
                            what: what.to_owned(),
                            detail: cause(&error),
                        });
                    }
                },
            };
            waiting_since =
                Some(self.wait_or_give_up(waiting_since, attempt_started, &lost, what)?);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn time_left(&self, waiting_since: Option<Instant>) -> Duration {
        match waiting_since {
            // A write to a healthy set is bounded by the driver (server
            // selection, the write concern's timeout), not here.
            None => Duration::from_secs(24 * 3600),
            Some(since) => self
                .wait
                .saturating_sub(since.elapsed())
                .max(Duration::from_secs(1)),
        }
    }

    /// Notes a lost primary: says so the first time, fails once the wait
    /// is over. The wait counts from the start of the first attempt that
    /// failed: the driver's own wait for a primary (its server selection)
    /// is part of it.
    fn wait_or_give_up(
        &self,
        waiting_since: Option<Instant>,
        attempt_started: Instant,
        lost: &str,
        what: &str,
    ) -> Result<Instant, Error> {
        let since = waiting_since.unwrap_or(attempt_started);
        if waiting_since.is_none() {
            (self.progress)(&format!(
                "{what}: lost the primary ({lost}); waiting up to {} s for a new one",
                self.wait.as_secs()
            ));
        }
        let waited = since.elapsed();
        if waited >= self.wait {
            return Err(Error::NoPrimary {
                what: what.to_owned(),
                waited_secs: waited.as_secs(),
                lost: lost.to_owned(),
            });
        }
        Ok(since)
    }
}

/// Compares the documents of `batch` at `indexes` (refused as duplicate
/// keys) with the ones stored under the same `_id`: identical ones count as
/// written; a different one stops the restore, naming its `_id`. Returns
/// whether every one of them was found (one missing — rolled back by a
/// failover meanwhile — means the batch must be sent again).
async fn check_duplicates(
    collection: &Collection<RawDocumentBuf>,
    batch: &[RawDocumentBuf],
    indexes: &[usize],
    what: &str,
) -> Result<bool, Error> {
    let mut wanted: Vec<(Vec<u8>, Bson, &RawDocumentBuf)> = Vec::new();
    for index in indexes {
        let Some(document) = batch.get(*index) else {
            continue;
        };
        let id = document
            .get("_id")
            .ok()
            .flatten()
            .and_then(|id| Bson::try_from(id.to_raw_bson()).ok())
            .ok_or_else(|| Error::TargetWrite {
                what: format!("insert into {what}"),
                detail: "a document refused as a duplicate has no readable _id".to_owned(),
            })?;
        wanted.push((id_key(&id), id, document));
    }
    let ids: Vec<Bson> = wanted.iter().map(|(_, id, _)| id.clone()).collect();
    let mut stored: std::collections::HashMap<Vec<u8>, RawDocumentBuf> =
        std::collections::HashMap::new();
    let mut cursor = collection
        .find(doc! {"_id": {"$in": ids}})
        .await
        .map_err(|e| Error::TargetWrite {
            what: format!("reading back {what}"),
            detail: cause(&e),
        })?;
    while let Some(document) = cursor.try_next().await.map_err(|e| Error::TargetWrite {
        what: format!("reading back {what}"),
        detail: cause(&e),
    })? {
        if let Some(id) = document
            .get("_id")
            .ok()
            .flatten()
            .and_then(|id| Bson::try_from(id.to_raw_bson()).ok())
        {
            stored.insert(id_key(&id), document);
        }
    }
    let mut all_there = true;
    for (key, id, archived) in &wanted {
        match stored.get(key) {
            None => all_there = false,
            Some(present) if present.as_bytes() == archived.as_bytes() => {}
            Some(_) => {
                return Err(Error::Conflicting {
                    what: what.to_owned(),
                    id: id.to_string(),
                });
            }
        }
    }
    Ok(all_there)
}

/// A byte key for an `_id` value (its BSON encoding).
fn id_key(id: &Bson) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = doc! {"_id": id.clone()}.to_writer(&mut bytes);
    bytes
}
