//! One backup at a time per replica set: a lease document on the primary
//! (`circle_ha.backup_lock`, `_id` = the set's name), written and removed
//! with `w: "majority"`. A run that crashes leaves its lease behind; once
//! it has expired, the next run takes it over, so a lock is never held for
//! ever. The lease is compared with this machine's clock: keep the members'
//! clocks in sync (NTP), as mongod itself needs.

use std::time::{Duration, SystemTime};

use bson::{Bson, DateTime, Document, doc, oid::ObjectId};
use mongo_rs_setup::{Session, UserKind, Who};

use crate::Error;
use crate::guard::Refusal;

const ADMIN: Who = Who::User(UserKind::Admin);
/// The database holding the lock.
pub const LOCK_DATABASE: &str = "circle_ha";
/// The collection holding the lock.
pub const LOCK_COLLECTION: &str = "backup_lock";

/// A held lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The set's name (the document's `_id`).
    pub set: String,
    /// This run's token: only the holder's release matches it.
    pub token: ObjectId,
    /// When it runs out.
    pub expires: SystemTime,
}

/// Takes the set's backup lock on `primary` for `holder` (member and
/// process, for messages) for `lease`; [`Error::Refused`] with
/// [`Refusal::Locked`] when another run holds a lease that has not
/// expired. An expired lease is removed (only that exact lease: two runs
/// racing for it cannot both win) and taken over.
pub async fn acquire(
    session: &Session<'_>,
    primary: &str,
    set: &str,
    holder: &str,
    lease: Duration,
) -> Result<Lease, Error> {
    for _ in 0..2 {
        let now = SystemTime::now();
        let expires = now + lease;
        let token = ObjectId::new();
        let reply = session
            .command_on(
                primary,
                ADMIN,
                LOCK_DATABASE,
                doc! {
                    "insert": LOCK_COLLECTION,
                    "documents": [{
                        "_id": set,
                        "token": token,
                        "holder": holder,
                        "acquired": DateTime::from_system_time(now),
                        "expires": DateTime::from_system_time(expires),
                    }],
                    "writeConcern": {"w": "majority", "wtimeout": 60_000},
                },
            )
            .await?;
        match write_error(&reply) {
            None => {
                return Ok(Lease {
                    set: set.to_owned(),
                    token,
                    expires,
                });
            }
            Some((11000, _)) => {}
            Some((code, message)) => {
                return Err(Error::Reply {
                    host: primary.to_owned(),
                    command: "insert".to_owned(),
                    detail: format!("cannot take the backup lock: {message} (code {code})"),
                });
            }
        }
        let held = session
            .command_on(
                primary,
                ADMIN,
                LOCK_DATABASE,
                doc! {"find": LOCK_COLLECTION, "filter": {"_id": set}, "limit": 1, "singleBatch": true},
            )
            .await?;
        let Some(current) = first_batch(&held) else {
            // Released between our insert and our look: try again.
            continue;
        };
        let current_expires = current.get_datetime("expires").ok().copied();
        if current_expires.is_some_and(|e| e.to_system_time() > SystemTime::now()) {
            return Err(Error::Refused(vec![Refusal::Locked {
                holder: current.get_str("holder").unwrap_or("unknown").to_owned(),
                expires: current_expires
                    .and_then(|e| e.try_to_rfc3339_string().ok())
                    .unwrap_or_default(),
            }]));
        }
        // Expired: remove exactly that lease, then try once more.
        let mut filter = doc! {"_id": set};
        if let Some(token) = current.get("token") {
            filter.insert("token", token.clone());
        }
        delete(session, primary, filter).await?;
    }
    Err(Error::Reply {
        host: primary.to_owned(),
        command: "insert".to_owned(),
        detail: "the backup lock changed hands twice while it was being taken; run again"
            .to_owned(),
    })
}

/// Gives the lock back (only this lease; a lease taken over by another run
/// after expiring is left alone).
pub async fn release(session: &Session<'_>, primary: &str, lease: &Lease) -> Result<(), Error> {
    delete(
        session,
        primary,
        doc! {"_id": &lease.set, "token": lease.token},
    )
    .await
}

async fn delete(session: &Session<'_>, primary: &str, filter: Document) -> Result<(), Error> {
    let reply = session
        .command_on(
            primary,
            ADMIN,
            LOCK_DATABASE,
            doc! {
                "delete": LOCK_COLLECTION,
                "deletes": [{"q": filter, "limit": 1}],
                "writeConcern": {"w": "majority", "wtimeout": 60_000},
            },
        )
        .await?;
    match write_error(&reply) {
        None => Ok(()),
        Some((code, message)) => Err(Error::Reply {
            host: primary.to_owned(),
            command: "delete".to_owned(),
            detail: format!("cannot remove the backup lock: {message} (code {code})"),
        }),
    }
}

/// The first write error (or write-concern error) of a write reply.
fn write_error(reply: &Document) -> Option<(i32, String)> {
    let first = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|errors| errors.first())
        .and_then(Bson::as_document)
        .or_else(|| reply.get_document("writeConcernError").ok())?;
    Some((
        first.get_i32("code").unwrap_or(-1),
        first.get_str("errmsg").unwrap_or_default().to_owned(),
    ))
}

fn first_batch(reply: &Document) -> Option<Document> {
    reply
        .get_document("cursor")
        .ok()?
        .get_array("firstBatch")
        .ok()?
        .first()?
        .as_document()
        .cloned()
}
