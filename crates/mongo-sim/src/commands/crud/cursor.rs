//! `getMore` and `killCursors`: the life of a cursor after its first batch.

use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document, doc};

use super::Reply;
use super::{collection_name, cursor_reply, int, last_optime_of, oplog_entries_after, take_batch};
use crate::error::{Code, CommandError};
use crate::node::{Cursor, CursorMismatch, Node};

/// `getMore`.
pub(in crate::commands) async fn get_more(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
    users: &[String],
) -> Result<Reply, CommandError> {
    let id = match command.get("getMore") {
        Some(Bson::Int64(id)) => *id,
        Some(Bson::Int32(id)) => i64::from(*id),
        _ => return Err(CommandError::type_mismatch("getMore", "long")),
    };
    let coll = collection_name(command, "collection")?;
    let ns = format!("{db}.{coll}");
    let batch_size = int(command, "batchSize").map(|b| b.max(1) as usize);
    let not_found = || CommandError::new(Code::CursorNotFound, format!("cursor id {id} not found"));
    let taken = node.lock().take_cursor(id, &ns, users);
    let cursor = match taken {
        Ok(Some(cursor)) => cursor,
        Ok(None) => return Err(not_found()),
        Err(CursorMismatch::Namespace) => {
            return Err(CommandError::new(
                Code::Unauthorized,
                format!(
                    "Requested getMore on namespace '{ns}', but cursor belongs to a different namespace"
                ),
            ));
        }
        Err(CursorMismatch::User) => {
            return Err(CommandError::new(
                Code::Unauthorized,
                format!("cursor id {id} was not created by the authenticated user"),
            ));
        }
    };
    match cursor {
        Cursor::Docs {
            ns: cursor_ns,
            mut remaining,
        } => {
            let batch = take_batch(&mut remaining, batch_size);
            let next_id = if remaining.is_empty() {
                node.lock().drop_cursor(id);
                0
            } else {
                node.lock().return_cursor(
                    id,
                    Cursor::Docs {
                        ns: cursor_ns,
                        remaining,
                    },
                );
                id
            };
            cursor_reply("nextBatch", &ns, next_id, &batch).map(Reply::Raw)
        }
        Cursor::Oplog { after, rollbacks } => {
            let wait = Duration::from_millis(
                int(command, "maxTimeMS").unwrap_or(1000).clamp(0, 60_000) as u64,
            );
            let deadline = tokio::time::Instant::now() + wait;
            let limit = batch_size.unwrap_or(1000);
            let batch = loop {
                let notified = node.oplog_changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let (batch, now_rollbacks) = oplog_entries_after(node, after, false, limit);
                if now_rollbacks != rollbacks {
                    // A rollback truncated the oplog under this cursor: what
                    // follows its position is another history. The reader
                    // must look for its common point again.
                    node.lock().drop_cursor(id);
                    return Err(CommandError::new(
                        Code::CappedPositionLost,
                        format!(
                            "CollectionScan died due to position in capped collection being \
                             deleted. Last seen record id: RecordId({})",
                            (i64::from(after.secs) << 32) | i64::from(after.inc)
                        ),
                    ));
                }
                if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                    break batch;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break Vec::new();
                }
            };
            let next_after = last_optime_of(&batch).unwrap_or(after);
            node.lock().return_cursor(
                id,
                Cursor::Oplog {
                    after: next_after,
                    rollbacks,
                },
            );
            cursor_reply("nextBatch", &ns, id, &batch).map(Reply::Raw)
        }
    }
}

/// `killCursors`: only cursors of this namespace that the same users
/// opened; any other id in the list refuses the whole command.
pub(in crate::commands) fn kill_cursors(
    node: &Node,
    db: &str,
    command: &Document,
    users: &[String],
) -> Result<Document, CommandError> {
    let coll = collection_name(command, "killCursors")?;
    let ns = format!("{db}.{coll}");
    let ids = command
        .get_array("cursors")
        .map_err(|_| CommandError::type_mismatch("cursors", "array"))?;
    let mut killed = Vec::new();
    let mut not_found = Vec::new();
    let mut inner = node.lock();
    let ids: Vec<i64> = ids
        .iter()
        .filter_map(|id| match id {
            Bson::Int64(i) => Some(*i),
            Bson::Int32(i) => Some(i64::from(*i)),
            _ => None,
        })
        .collect();
    for id in &ids {
        if let Some(owner) = inner.cursor_owners.get(id)
            && (owner.ns != ns || owner.users != users)
        {
            return Err(CommandError::new(
                Code::Unauthorized,
                format!("not authorized to kill cursor {id} on {ns}"),
            ));
        }
    }
    for id in ids {
        if inner.cursor_owners.contains_key(&id) {
            inner.drop_cursor(id);
            killed.push(Bson::Int64(id));
        } else {
            not_found.push(Bson::Int64(id));
        }
    }
    Ok(
        doc! {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []},
    )
}
