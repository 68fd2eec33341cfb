//! `find` and `count`: reading a collection (and the oplog) with a filter.

use std::collections::VecDeque;
use std::sync::Arc;

use bson::{Document, RawDocumentBuf, doc};

use super::Reply;
use super::{
    collection_name, cursor_reply, int, last_optime_of, oplog_entries_after, project, refuse_view,
    select, take_batch,
};
use crate::error::CommandError;
use crate::node::{Cursor, CursorOwner, Node};
use crate::storage::OpTime;

/// `find`.
pub(in crate::commands) async fn find(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
    users: &[String],
) -> Result<Reply, CommandError> {
    let coll = collection_name(command, "find")?;
    // Reading a view runs its pipeline in mongod; nothing here reads one.
    refuse_view(node, db, coll)?;
    let ns = format!("{db}.{coll}");
    let filter = command.get_document("filter").cloned().unwrap_or_default();
    if db == "local" && coll == "oplog.rs" {
        // Replication's oplog reads: `{ts: {$gte|$gt: <Timestamp>}}`.
        let (after, inclusive) = match filter.get_document("ts") {
            Ok(condition) => match (
                condition.get_timestamp("$gte"),
                condition.get_timestamp("$gt"),
            ) {
                (Ok(ts), _) => (
                    OpTime {
                        term: 0,
                        secs: ts.time,
                        inc: ts.increment,
                    },
                    true,
                ),
                (_, Ok(ts)) => (
                    OpTime {
                        term: 0,
                        secs: ts.time,
                        inc: ts.increment,
                    },
                    false,
                ),
                _ => (OpTime::default(), true),
            },
            Err(_) => (OpTime::default(), true),
        };
        let limit = int(command, "batchSize").unwrap_or(1000).max(1) as usize;
        let (batch, rollbacks) = oplog_entries_after(node, after, inclusive, limit);
        let tailable = command.get_bool("tailable").unwrap_or(false);
        let id = if tailable {
            let next_after = last_optime_of(&batch).unwrap_or(if inclusive {
                // Nothing at or after `after` yet: the next read starts there.
                OpTime {
                    term: 0,
                    secs: after.secs,
                    inc: after.inc.saturating_sub(1),
                }
            } else {
                after
            });
            node.lock().add_cursor(
                Cursor::Oplog {
                    after: next_after,
                    rollbacks,
                },
                CursorOwner {
                    ns: ns.clone(),
                    users: users.to_vec(),
                },
            )
        } else {
            0
        };
        return cursor_reply("firstBatch", &ns, id, &batch).map(Reply::Raw);
    }
    let sort = command.get_document("sort").ok();
    let mut docs: VecDeque<Arc<RawDocumentBuf>> = select(node, db, coll, &filter, sort)?.into();
    let skip = int(command, "skip").unwrap_or(0).max(0) as usize;
    docs.drain(..skip.min(docs.len()));
    let limit = int(command, "limit").unwrap_or(0);
    let single_batch = command.get_bool("singleBatch").unwrap_or(false) || limit < 0;
    if limit != 0 {
        docs.truncate(limit.unsigned_abs() as usize);
    }
    let projection = command
        .get_document("projection")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(projection) = projection {
        docs = docs
            .into_iter()
            .map(|raw| project(&raw, projection).map(Arc::new))
            .collect::<Result<_, _>>()?;
    }
    let batch_size = int(command, "batchSize")
        .map(|b| b.max(0) as usize)
        .unwrap_or(101);
    let batch = take_batch(&mut docs, Some(batch_size));
    let id = if docs.is_empty() || single_batch {
        0
    } else {
        node.lock().add_cursor(
            Cursor::Docs {
                ns: ns.clone(),
                remaining: docs,
            },
            CursorOwner {
                ns: ns.clone(),
                users: users.to_vec(),
            },
        )
    };
    cursor_reply("firstBatch", &ns, id, &batch).map(Reply::Raw)
}

/// `count`.
pub(in crate::commands) fn count(
    node: &Node,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let coll = collection_name(command, "count")?;
    let filter = command.get_document("query").cloned().unwrap_or_default();
    let mut n = select(node, db, coll, &filter, None)?.len() as i64;
    if let Some(skip) = int(command, "skip") {
        n = (n - skip.max(0)).max(0);
    }
    if let Some(limit) = int(command, "limit").filter(|l| *l != 0) {
        n = n.min(limit.abs());
    }
    Ok(doc! {"n": n as i32})
}
