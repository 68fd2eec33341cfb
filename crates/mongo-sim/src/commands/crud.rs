//! Data commands: insert, find/getMore/killCursors, count, aggregate, and
//! the catalog (databases, collections, indexes).

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document, RawArrayBuf, RawBson, RawDocumentBuf, doc, oid::ObjectId};

use super::Reply;
use crate::auth::{Action, Resource};
use crate::error::{Code, CommandError};
use crate::node::{Cursor, CursorMismatch, CursorOwner, Node};
use crate::storage::{OpTime, Statement, compare_bson, uuid_bson};
use crate::wire::MAX_BSON_OBJECT_SIZE;

/// Room left in a reply for the envelope.
const BATCH_BYTES: usize = MAX_BSON_OBJECT_SIZE - 16 * 1024;

fn collection_name<'a>(command: &'a Document, field: &str) -> Result<&'a str, CommandError> {
    let name = command.get_str(field).map_err(|_| {
        CommandError::new(
            Code::InvalidNamespace,
            format!(
                "collection name has invalid type {}",
                command
                    .get(field)
                    .map(|v| format!("{:?}", v.element_type()))
                    .unwrap_or_default()
            ),
        )
    })?;
    if name.is_empty()
        || name.contains('\0')
        || name.starts_with('$')
        || name.contains('$') && !name.starts_with("oplog.")
    {
        return Err(CommandError::new(
            Code::InvalidNamespace,
            format!("Invalid collection name: {name}"),
        ));
    }
    Ok(name)
}

fn check_db_name(db: &str) -> Result<(), CommandError> {
    if db.is_empty()
        || db.len() > 63
        || db
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'))
    {
        return Err(CommandError::new(
            Code::InvalidNamespace,
            format!("Invalid database name: '{db}'"),
        ));
    }
    Ok(())
}

/// The value at a dotted path.
fn lookup<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut current = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = current.get(part)?;
        if parts.peek().is_none() {
            return Some(value);
        }
        current = value.as_document()?;
    }
    None
}

fn equal(a: &Bson, b: &Bson) -> bool {
    compare_bson(a, b) == Ordering::Equal
}

fn value_matches(value: Option<&Bson>, condition: &Bson) -> Result<bool, CommandError> {
    let operators = match condition {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => d,
        other => {
            return Ok(match value {
                Some(Bson::Array(items)) => {
                    items.iter().any(|i| equal(i, other))
                        || equal(&Bson::Array(items.clone()), other)
                }
                Some(v) => equal(v, other),
                None => matches!(other, Bson::Null),
            });
        }
    };
    for (op, operand) in operators {
        let ok = match op.as_str() {
            "$eq" => value_matches(value, operand)?,
            "$ne" => !value_matches(value, operand)?,
            "$gt" | "$gte" | "$lt" | "$lte" => match value {
                None => false,
                Some(v) => {
                    let ord = compare_bson(v, operand);
                    match op.as_str() {
                        "$gt" => ord == Ordering::Greater,
                        "$gte" => ord != Ordering::Less,
                        "$lt" => ord == Ordering::Less,
                        _ => ord != Ordering::Greater,
                    }
                }
            },
            "$in" | "$nin" => {
                let Bson::Array(items) = operand else {
                    return Err(CommandError::bad_value(format!("{op} needs an array")));
                };
                let mut found = false;
                for item in items {
                    if value_matches(value, item)? {
                        found = true;
                        break;
                    }
                }
                if op == "$in" { found } else { !found }
            }
            "$exists" => value.is_some() == operand.as_bool().unwrap_or(true),
            other => {
                return Err(CommandError::bad_value(format!(
                    "unknown operator: {other}"
                )));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `doc` matches `filter` (equality, comparison, `$in`, `$exists`,
/// `$and`, `$or` — what the project's tools and tests use).
pub(crate) fn matches(doc: &Document, filter: &Document) -> Result<bool, CommandError> {
    for (key, condition) in filter {
        let ok = match key.as_str() {
            "$and" | "$or" => {
                let Bson::Array(parts) = condition else {
                    return Err(CommandError::bad_value(format!("{key} must be an array")));
                };
                let mut results = Vec::new();
                for part in parts {
                    let part = part.as_document().ok_or_else(|| {
                        CommandError::bad_value(format!("{key} entries must be objects"))
                    })?;
                    results.push(matches(doc, part)?);
                }
                if key == "$and" {
                    results.iter().all(|r| *r)
                } else {
                    results.iter().any(|r| *r)
                }
            }
            other if other.starts_with('$') => {
                return Err(CommandError::bad_value(format!(
                    "unknown top level operator: {other}"
                )));
            }
            path => value_matches(lookup(doc, path), condition)?,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Documents of `db.coll` matching `filter`, sorted by `sort`, as shared
/// raw documents.
fn select(
    node: &Node,
    db: &str,
    coll: &str,
    filter: &Document,
    sort: Option<&Document>,
) -> Result<Vec<Arc<RawDocumentBuf>>, CommandError> {
    let inner = node.lock();
    let Some(collection) = inner.data.collection(db, coll) else {
        return Ok(Vec::new());
    };
    if sort.is_none_or(|s| s.is_empty())
        && let Some(ids) = id_lookup(filter)
    {
        // `{_id: v}` and `{_id: {$in: [...]}}` go through the _id index,
        // as mongod's IXSCAN does, and come back in its order.
        let mut found: Vec<(&Bson, Arc<RawDocumentBuf>)> = ids
            .iter()
            .filter_map(|id| collection.get(id).map(|raw| (*id, raw.clone())))
            .collect();
        found.sort_by(|a, b| compare_bson(a.0, b.0));
        found.dedup_by(|a, b| Arc::ptr_eq(&a.1, &b.1));
        return Ok(found.into_iter().map(|(_, raw)| raw).collect());
    }
    let mut selected: Vec<(Option<Document>, Arc<RawDocumentBuf>)> = Vec::new();
    for raw in collection.documents() {
        if filter.is_empty() && sort.is_none_or(|s| s.is_empty()) {
            selected.push((None, raw.clone()));
            continue;
        }
        let doc = raw
            .to_document()
            .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))?;
        if matches(&doc, filter)? {
            selected.push((Some(doc), raw.clone()));
        }
    }
    std::mem::drop(inner);
    if let Some(sort) = sort.filter(|s| !s.is_empty()) {
        let keys: Vec<(String, bool)> = sort
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    !matches!(v, Bson::Int32(-1) | Bson::Int64(-1)) && v.as_f64() != Some(-1.0),
                )
            })
            .collect();
        let null = Bson::Null;
        selected.sort_by(|(a, _), (b, _)| {
            for (key, ascending) in &keys {
                let va = a.as_ref().and_then(|d| lookup(d, key)).unwrap_or(&null);
                let vb = b.as_ref().and_then(|d| lookup(d, key)).unwrap_or(&null);
                let ord = compare_bson(va, vb);
                if ord != Ordering::Equal {
                    return if *ascending { ord } else { ord.reverse() };
                }
            }
            Ordering::Equal
        });
    }
    Ok(selected.into_iter().map(|(_, raw)| raw).collect())
}

/// The `_id` values a filter that only names `_id` by equality or `$in`
/// asks for; `None` for any other filter (a regex, an operator, a
/// subdocument that could be an operator expression, other fields).
fn id_lookup(filter: &Document) -> Option<Vec<&Bson>> {
    if filter.len() != 1 {
        return None;
    }
    let value = filter.get("_id")?;
    let plain = |v: &Bson| {
        !matches!(
            v,
            Bson::Document(_) | Bson::RegularExpression(_) | Bson::Array(_)
        )
    };
    match value {
        Bson::Document(d) if d.len() == 1 => match d.get("$in") {
            Some(Bson::Array(values)) if values.iter().all(plain) => Some(values.iter().collect()),
            _ => None,
        },
        v if plain(v) => Some(vec![v]),
        _ => None,
    }
}

fn int(command: &Document, field: &str) -> Option<i64> {
    match command.get(field)? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(f) => Some(*f as i64),
        _ => None,
    }
}

/// Builds `{cursor: {<batch_name>: [...], id, ns}}` from raw documents,
/// taking up to `limit` documents and 16 MiB, leaving the rest in
/// `remaining`.
fn cursor_reply(
    batch_name: &str,
    ns: &str,
    id: i64,
    batch: &[Arc<RawDocumentBuf>],
) -> Result<RawDocumentBuf, CommandError> {
    let mut array = RawArrayBuf::new();
    for raw in batch {
        array.push(RawBson::Document((**raw).clone()));
    }
    let mut cursor = RawDocumentBuf::new();
    cursor.append(batch_name, array);
    cursor.append("id", id);
    cursor.append("ns", ns);
    let mut reply = RawDocumentBuf::new();
    reply.append("cursor", cursor);
    reply.append("ok", 1.0);
    Ok(reply)
}

/// Splits a batch off `docs`: at most `limit` documents and about 16 MiB
/// (always at least one document).
fn take_batch(
    docs: &mut VecDeque<Arc<RawDocumentBuf>>,
    limit: Option<usize>,
) -> Vec<Arc<RawDocumentBuf>> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(next) = docs.front() {
        if limit.is_some_and(|l| batch.len() >= l) {
            break;
        }
        let len = next.as_bytes().len();
        if !batch.is_empty() && bytes + len > BATCH_BYTES {
            break;
        }
        bytes += len;
        if let Some(doc) = docs.pop_front() {
            batch.push(doc);
        }
    }
    batch
}

fn oplog_entries_after(
    node: &Node,
    after: OpTime,
    inclusive: bool,
    limit: usize,
) -> (Vec<Arc<RawDocumentBuf>>, u64) {
    let inner = node.lock();
    let start = inner.oplog.partition_point(|e| {
        if inclusive {
            e.optime.time_key() < after.time_key()
        } else {
            e.optime.time_key() <= after.time_key()
        }
    });
    // At most `limit` entries and about 16 MiB, as mongod's batches (the
    // first entry always, however large).
    let mut batch = Vec::new();
    let mut bytes = 0;
    for entry in inner.oplog[start..].iter().take(limit) {
        let raw = entry.raw.clone();
        let len = raw.as_bytes().len();
        if !batch.is_empty() && bytes + len > BATCH_BYTES {
            break;
        }
        bytes += len;
        batch.push(Arc::new(raw));
    }
    (batch, inner.rollbacks)
}

fn last_optime_of(batch: &[Arc<RawDocumentBuf>]) -> Option<OpTime> {
    let doc = batch.last()?.to_document().ok()?;
    OpTime::from_doc(&doc)
}

/// `find`.
pub(super) async fn find(
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

fn project(raw: &RawDocumentBuf, projection: &Document) -> Result<RawDocumentBuf, CommandError> {
    let doc = raw
        .to_document()
        .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))?;
    let including = projection.iter().any(|(k, v)| {
        k != "_id"
            && (v.as_bool() == Some(true)
                || v.as_i32().is_some_and(|i| i != 0)
                || v.as_f64().is_some_and(|f| f != 0.0))
    });
    let id_excluded = projection
        .get("_id")
        .is_some_and(|v| v.as_bool() == Some(false) || v.as_i32() == Some(0));
    let mut out = Document::new();
    for (key, value) in &doc {
        let listed = projection.contains_key(key);
        let keep = if key == "_id" {
            !id_excluded
        } else if including {
            listed
        } else {
            !listed
        };
        if keep {
            out.insert(key.clone(), value.clone());
        }
    }
    RawDocumentBuf::from_document(&out)
        .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))
}

/// `getMore`.
pub(super) async fn get_more(
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
pub(super) fn kill_cursors(
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

/// `count`.
pub(super) fn count(node: &Node, db: &str, command: &Document) -> Result<Document, CommandError> {
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

/// The documents flowing through an aggregation pipeline: as stored until
/// a stage needs their fields, then parsed.
enum Rows {
    /// As stored (what a reply sends back unchanged).
    Stored(Vec<Arc<RawDocumentBuf>>),
    /// Decoded, for stages that read fields or make new documents.
    Parsed(Vec<Document>),
}

impl Default for Rows {
    fn default() -> Rows {
        Rows::Parsed(Vec::new())
    }
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Stored(stored) => stored.len(),
            Rows::Parsed(docs) => docs.len(),
        }
    }

    fn skip(&mut self, n: usize) {
        match self {
            Rows::Stored(stored) => {
                stored.drain(..n.min(stored.len()));
            }
            Rows::Parsed(docs) => {
                docs.drain(..n.min(docs.len()));
            }
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Rows::Stored(stored) => stored.truncate(n),
            Rows::Parsed(docs) => docs.truncate(n),
        }
    }

    /// The documents with their fields, for a stage that reads them.
    fn parsed(self) -> Result<Vec<Document>, CommandError> {
        match self {
            Rows::Stored(stored) => stored
                .iter()
                .map(|raw| {
                    raw.to_document()
                        .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))
                })
                .collect(),
            Rows::Parsed(docs) => Ok(docs),
        }
    }
}

/// `aggregate` for the pipeline shapes drivers build (`countDocuments`:
/// `$match`, `$skip`, `$limit`, `$group` with `$sum`), plus `$sort` and
/// `$count`.
pub(super) fn aggregate(node: &Node, db: &str, command: &Document) -> Result<Reply, CommandError> {
    let coll = collection_name(command, "aggregate")?;
    if !command.contains_key("cursor") {
        return Err(CommandError::new(
            Code::FailedToParse,
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    let pipeline = command
        .get_array("pipeline")
        .map_err(|_| CommandError::type_mismatch("pipeline", "array"))?;
    // The documents stay as stored until a stage needs their fields (a
    // count — the drivers' countDocuments — needs none of them).
    let mut rows = Rows::Stored(select(node, db, coll, &Document::new(), None)?);
    for stage in pipeline {
        let stage = stage
            .as_document()
            .ok_or_else(|| CommandError::type_mismatch("pipeline", "object"))?;
        let (name, spec) = stage
            .iter()
            .next()
            .ok_or_else(|| CommandError::bad_value("empty pipeline stage"))?;
        match name.as_str() {
            "$match" => {
                let filter = spec.as_document().cloned().unwrap_or_default();
                if filter.is_empty() {
                    continue;
                }
                let mut kept = Vec::new();
                for doc in rows.parsed()? {
                    if matches(&doc, &filter)? {
                        kept.push(doc);
                    }
                }
                rows = Rows::Parsed(kept);
            }
            "$skip" => {
                let n = spec
                    .as_i64()
                    .or_else(|| spec.as_i32().map(i64::from))
                    .unwrap_or(0)
                    .max(0) as usize;
                rows.skip(n);
            }
            "$limit" => {
                let n = spec
                    .as_i64()
                    .or_else(|| spec.as_i32().map(i64::from))
                    .unwrap_or(0)
                    .max(0) as usize;
                rows.truncate(n);
            }
            "$sort" => {
                let sort = spec.as_document().cloned().unwrap_or_default();
                let mut docs = rows.parsed()?;
                docs.sort_by(|a, b| {
                    for (key, direction) in &sort {
                        let null = Bson::Null;
                        let ord = compare_bson(
                            lookup(a, key).unwrap_or(&null),
                            lookup(b, key).unwrap_or(&null),
                        );
                        if ord != Ordering::Equal {
                            return if direction.as_i32() == Some(-1) {
                                ord.reverse()
                            } else {
                                ord
                            };
                        }
                    }
                    Ordering::Equal
                });
                rows = Rows::Parsed(docs);
            }
            "$count" => {
                let field = spec.as_str().unwrap_or("count");
                rows = Rows::Parsed(vec![doc! {field: rows.len() as i32}]);
            }
            "$group" => {
                let spec = spec.as_document().cloned().unwrap_or_default();
                let id = spec.get("_id").cloned().unwrap_or(Bson::Null);
                if matches!(&id, Bson::String(s) if s.starts_with('$')) {
                    return Err(CommandError::bad_value(
                        "mongo-sim supports $group with a constant _id only",
                    ));
                }
                if rows.len() == 0 {
                    continue;
                }
                let mut out = doc! {"_id": id};
                let mut parsed: Option<Vec<Document>> = None;
                for (field, accumulator) in spec.iter().filter(|(k, _)| *k != "_id") {
                    let sum = accumulator
                        .as_document()
                        .and_then(|a| a.get("$sum"))
                        .ok_or_else(|| {
                            CommandError::bad_value("mongo-sim supports the $sum accumulator only")
                        })?;
                    let total: i64 = match sum {
                        Bson::String(path) if path.starts_with('$') => {
                            if parsed.is_none() {
                                parsed = Some(std::mem::take(&mut rows).parsed()?);
                            }
                            parsed
                                .iter()
                                .flatten()
                                .filter_map(|d| {
                                    lookup(d, &path[1..]).and_then(|v| {
                                        v.as_i64().or_else(|| v.as_i32().map(i64::from))
                                    })
                                })
                                .sum()
                        }
                        other => {
                            other
                                .as_i64()
                                .or_else(|| other.as_i32().map(i64::from))
                                .unwrap_or(0)
                                * parsed.as_ref().map_or(rows.len(), Vec::len) as i64
                        }
                    };
                    out.insert(
                        field.clone(),
                        if total <= i64::from(i32::MAX) {
                            Bson::Int32(total as i32)
                        } else {
                            Bson::Int64(total)
                        },
                    );
                }
                rows = Rows::Parsed(vec![out]);
            }
            other => {
                return Err(CommandError::new(
                    Code::UnrecognizedPipelineStage,
                    format!("Unrecognized pipeline stage name: '{other}'"),
                ));
            }
        }
    }
    let batch: Vec<Arc<RawDocumentBuf>> = match rows {
        Rows::Stored(stored) => stored,
        Rows::Parsed(docs) => docs
            .iter()
            .map(|d| {
                RawDocumentBuf::from_document(d)
                    .map(Arc::new)
                    .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))
            })
            .collect::<Result<_, _>>()?,
    };
    cursor_reply("firstBatch", &format!("{db}.{coll}"), 0, &batch).map(Reply::Raw)
}

/// A write command sent as a retryable write: `lsid` + `txnNumber` (drivers
/// add them on replica sets once `hello` shows
/// `logicalSessionTimeoutMinutes`). Statement `i` of the batch has
/// statement id `stmtIds[i]`, or `stmtId + i`, or `i`, as mongod numbers
/// them.
struct Retryable {
    lsid: Document,
    key: Vec<u8>,
    txn_number: i64,
    stmt_ids: Option<Vec<i32>>,
    first_stmt_id: i32,
}

impl Retryable {
    /// Reads the command's session fields; `None` for a plain write.
    fn of(node: &Node, command: &Document) -> Result<Option<Retryable>, CommandError> {
        let Some(txn) = command.get("txnNumber") else {
            return Ok(None);
        };
        let txn_number = match txn {
            Bson::Int64(n) => *n,
            Bson::Int32(n) => i64::from(*n),
            _ => return Err(CommandError::type_mismatch("txnNumber", "long")),
        };
        if !node.is_repl() {
            return Err(CommandError::new(
                Code::IllegalOperation,
                "Transaction numbers are only allowed on a replica set member or mongos",
            ));
        }
        let lsid = command.get_document("lsid").map_err(|_| {
            CommandError::new(
                Code::InvalidOptions,
                "Transaction number requires a session ID to also be specified",
            )
        })?;
        let stmt_ids = match command.get("stmtIds") {
            None => None,
            Some(Bson::Array(ids)) => Some(
                ids.iter()
                    .map(|id| match id {
                        Bson::Int32(n) => Ok(*n),
                        _ => Err(CommandError::type_mismatch("stmtIds", "int")),
                    })
                    .collect::<Result<Vec<i32>, _>>()?,
            ),
            Some(_) => return Err(CommandError::type_mismatch("stmtIds", "array")),
        };
        Ok(Some(Retryable {
            key: Statement::key_of(lsid),
            lsid: lsid.clone(),
            txn_number,
            stmt_ids,
            first_stmt_id: command.get_i32("stmtId").unwrap_or(0),
        }))
    }

    /// Statement `index` of the batch.
    fn statement(&self, index: usize) -> Statement {
        let stmt_id = match &self.stmt_ids {
            Some(ids) => ids.get(index).copied().unwrap_or(-1),
            None => self.first_stmt_id.saturating_add(index as i32),
        };
        Statement {
            lsid: self.lsid.clone(),
            key: self.key.clone(),
            txn_number: self.txn_number,
            stmt_id,
        }
    }

    /// Fails when a newer transaction number has already started on the
    /// session (mongod's TransactionTooOld).
    fn check_not_too_old(&self, data: &crate::storage::Data) -> Result<(), CommandError> {
        match data.executed(&self.key, self.txn_number, i32::MIN) {
            Ok(_) => Ok(()),
            Err(newest) => Err(CommandError::new(
                Code::TransactionTooOld,
                format!(
                    "Retryable write with txnNumber {} is prohibited on session because a \
                     newer retryable write with txnNumber {newest} has already started on \
                     this session.",
                    self.txn_number
                ),
            )),
        }
    }

    /// Whether statement `index` already ran; if not, tags the writer's
    /// next entries with it.
    fn begin(&self, w: &mut crate::node::Writer<'_>, index: usize) -> bool {
        let statement = self.statement(index);
        let done = w
            .data()
            .executed(&statement.key, statement.txn_number, statement.stmt_id)
            .unwrap_or(false);
        w.set_statement((!done).then_some(statement));
        done
    }
}

/// `insert`.
pub(super) async fn insert(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let (coll, documents) = write_batch(db, command, "insert", "documents")?;
    refuse_view(node, db, &coll)?;
    let ordered = command.get_bool("ordered").unwrap_or(true);
    let ns = format!("{db}.{coll}");
    let mut prepared: Vec<Result<(Option<Bson>, RawDocumentBuf), CommandError>> = Vec::new();
    for item in documents {
        let Bson::Document(doc) = item else {
            prepared.push(Err(CommandError::type_mismatch("documents", "object")));
            continue;
        };
        let with_id;
        let doc = if doc.contains_key("_id") {
            doc
        } else {
            let mut fresh = doc! {"_id": ObjectId::new()};
            fresh.extend(doc.clone());
            with_id = fresh;
            &with_id
        };
        let raw = match RawDocumentBuf::from_document(doc) {
            Ok(raw) => raw,
            Err(e) => {
                prepared.push(Err(CommandError::new(Code::InvalidBson, e.to_string())));
                continue;
            }
        };
        let size = raw.as_bytes().len();
        if size > MAX_BSON_OBJECT_SIZE {
            prepared.push(Err(CommandError::new(
                Code::BadValue,
                format!("object to insert too large. size in bytes: {size}, max size: {MAX_BSON_OBJECT_SIZE}"),
            )));
            continue;
        }
        prepared.push(Ok((doc.get("_id").cloned(), raw)));
    }
    let retry = Retryable::of(node, command)?;
    let (errors, optime) = node.write(|w| {
        let mut errors: Vec<(usize, CommandError, Option<Bson>)> = Vec::new();
        if let Some(retry) = &retry {
            retry.check_not_too_old(w.data())?;
        }
        for (index, doc) in prepared.into_iter().enumerate() {
            // A statement a retried batch already ran (here or on the
            // primary before a failover) counts as done and runs no more.
            if retry.as_ref().is_some_and(|r| r.begin(w, index)) {
                continue;
            }
            let res = match doc {
                Ok((id, raw)) => w.emit_insert(&ns, raw).map_err(|e| (e, id)),
                Err(e) => Err((e, None)),
            };
            if let Err((e, id)) = res {
                errors.push((index, e, id));
                if ordered {
                    break;
                }
            }
        }
        Ok(errors)
    })?;
    let errors = errors?;
    let attempted = documents.len();
    let failed_or_skipped = if ordered {
        errors.first().map_or(0, |(i, _, _)| attempted - i)
    } else {
        errors.len()
    };
    let mut reply = doc! {"n": (attempted - failed_or_skipped) as i32};
    if !errors.is_empty() {
        let write_errors: Vec<Bson> = errors
            .into_iter()
            .map(|(index, error, id)| {
                let mut e = doc! {"index": index as i32, "code": error.code.number()};
                if error.code == Code::DuplicateKey {
                    e.insert("keyPattern", doc! {"_id": 1});
                    e.insert("keyValue", doc! {"_id": id.clone().unwrap_or(Bson::Null)});
                    e.insert(
                        "errmsg",
                        format!(
                            "E11000 duplicate key error collection: {ns} index: _id_ dup key: {{ _id: {} }}",
                            id.unwrap_or(Bson::Null)
                        ),
                    );
                } else {
                    e.insert("errmsg", error.message);
                }
                Bson::Document(e)
            })
            .collect();
        reply.insert("writeErrors", write_errors);
    }
    wait_for_write_concern(node, optime, command, &mut reply).await;
    Ok(reply)
}

/// The `_id`s of the documents in `ns` that match `filter` (the first one
/// only with `just_one`), for a delete.
fn matching_ids(
    data: &crate::storage::Data,
    ns: &str,
    filter: &Document,
    just_one: bool,
) -> Result<Vec<Bson>, CommandError> {
    let (db, coll) = crate::storage::split_ns(ns);
    let Some(collection) = data.collection(db, coll) else {
        return Ok(Vec::new());
    };
    let mut ids = Vec::new();
    for raw in collection.documents() {
        let doc = raw
            .to_document()
            .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))?;
        if matches(&doc, filter)? {
            ids.push(doc.get("_id").cloned().unwrap_or(Bson::Null));
            if just_one {
                break;
            }
        }
    }
    Ok(ids)
}

/// Waits for the command's write concern; a failure becomes the reply's
/// `writeConcernError` (the writes themselves stand), as mongod reports it.
async fn wait_for_write_concern(
    node: &Node,
    optime: crate::storage::OpTime,
    command: &Document,
    reply: &mut Document,
) {
    if let Err(e) = node
        .wait_for_write_concern(optime, command.get_document("writeConcern").ok())
        .await
    {
        reply.insert(
            "writeConcernError",
            doc! {
                "code": e.code.number(),
                "codeName": e.code.name(),
                "errmsg": e.message,
                "errInfo": e.extra.get_document("errInfo").cloned().unwrap_or_default(),
            },
        );
    }
}

/// A write command's target collection and its statements (`documents`,
/// `deletes` …), checked as mongod checks them: a valid namespace, not a
/// `system.` collection, between 1 and 100,000 statements.
fn write_batch<'a>(
    db: &str,
    command: &'a Document,
    name: &str,
    field: &str,
) -> Result<(String, &'a bson::Array), CommandError> {
    check_db_name(db)?;
    let coll = collection_name(command, name)?.to_owned();
    if coll.starts_with("system.") {
        return Err(CommandError::new(
            Code::InvalidNamespace,
            format!("cannot write to '{db}.{coll}'"),
        ));
    }
    let statements = command
        .get_array(field)
        .map_err(|_| CommandError::type_mismatch(field, "array"))?;
    let n = statements.len();
    if n == 0 || n > 100_000 {
        return Err(CommandError::new(
            Code::InvalidLength,
            format!("Write batch sizes must be between 1 and 100000. Got {n} operations."),
        ));
    }
    Ok((coll, statements))
}

/// `delete`: `{delete: <coll>, deletes: [{q: <filter>, limit: 0 | 1}],
/// ordered}`. Each removed document becomes a `d` oplog entry; the reply
/// is `{n}` (documents removed), with `writeErrors` for statements that
/// could not run, as mongod's.
pub(super) async fn delete(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let (coll, statements) = write_batch(db, command, "delete", "deletes")?;
    refuse_view(node, db, &coll)?;
    let ordered = command.get_bool("ordered").unwrap_or(true);
    let ns = format!("{db}.{coll}");
    let mut parsed: Vec<Result<(Document, bool), CommandError>> = Vec::new();
    for statement in statements {
        let Bson::Document(statement) = statement else {
            parsed.push(Err(CommandError::type_mismatch("deletes", "object")));
            continue;
        };
        let Ok(filter) = statement.get_document("q") else {
            parsed.push(Err(CommandError::new(
                Code::FailedToParse,
                "BSON field 'delete.deletes.q' is missing but a required field",
            )));
            continue;
        };
        let limit = match statement.get("limit") {
            Some(value) => match value.as_i64().or_else(|| value.as_i32().map(i64::from)) {
                Some(0) => false,
                Some(1) => true,
                _ => {
                    parsed.push(Err(CommandError::new(
                        Code::FailedToParse,
                        "The limit field in delete objects must be 0 or 1.",
                    )));
                    continue;
                }
            },
            None => {
                parsed.push(Err(CommandError::new(
                    Code::FailedToParse,
                    "BSON field 'delete.deletes.limit' is missing but a required field",
                )));
                continue;
            }
        };
        parsed.push(Ok((filter.clone(), limit)));
    }
    let retry = Retryable::of(node, command)?;
    if retry.is_some() && parsed.iter().any(|p| matches!(p, Ok((_, false)))) {
        return Err(CommandError::new(
            Code::InvalidOptions,
            "Cannot use (or request) retryable writes with limit=0",
        ));
    }
    let (removed, errors, optime) = {
        let (result, optime) = node.write(|w| {
            let mut removed = 0_i64;
            let mut errors: Vec<(usize, CommandError)> = Vec::new();
            if let Some(retry) = &retry {
                retry.check_not_too_old(w.data())?;
            }
            for (index, statement) in parsed.into_iter().enumerate() {
                // A retried single delete that already ran removed its
                // one document then.
                if retry.as_ref().is_some_and(|r| r.begin(w, index)) {
                    removed += 1;
                    continue;
                }
                let res = statement.and_then(|(filter, just_one)| {
                    let ids = matching_ids(w.data(), &ns, &filter, just_one)?;
                    for id in &ids {
                        w.emit("d", &ns, doc! {"_id": id.clone()}, None)?;
                    }
                    Ok(ids.len() as i64)
                });
                match res {
                    Ok(n) => removed += n,
                    Err(e) => {
                        errors.push((index, e));
                        if ordered {
                            break;
                        }
                    }
                }
            }
            Ok((removed, errors))
        })?;
        let (removed, errors) = result?;
        (removed, errors, optime)
    };
    let mut reply = doc! {"n": removed as i32};
    if !errors.is_empty() {
        let write_errors: Vec<Bson> = errors
            .into_iter()
            .map(|(index, error)| {
                Bson::Document(doc! {
                    "index": index as i32,
                    "code": error.code.number(),
                    "errmsg": error.message,
                })
            })
            .collect();
        reply.insert("writeErrors", write_errors);
    }
    wait_for_write_concern(node, optime, command, &mut reply).await;
    Ok(reply)
}

/// `listDatabases`.
pub(super) fn list_databases(
    node: &Node,
    session: &super::Session,
    command: &Document,
) -> Result<Document, CommandError> {
    let name_only = command.get_bool("nameOnly").unwrap_or(false);
    let filter = command.get_document("filter").cloned().unwrap_or_default();
    let restricted = node.opts.auth
        && !session
            .principals
            .iter()
            .any(|p| p.allows(Action::ListDatabases, &Resource::Cluster) || p.user == "__system");
    let inner = node.lock();
    let mut databases = Vec::new();
    let mut total: i64 = 0;
    let mut names: Vec<(String, i64)> = inner
        .data
        .dbs
        .iter()
        .map(|(name, collections)| {
            (
                name.clone(),
                collections.values().map(|c| c.data_size as i64).sum(),
            )
        })
        .collect();
    if inner.config.is_some() {
        let oplog_size = inner.oplog.len() as i64 * 128;
        names.push(("local".to_owned(), oplog_size));
        names.sort();
    }
    for (name, size) in names {
        if restricted && !session.principals.iter().any(|p| p.has_any_on(&name)) {
            continue;
        }
        let size_on_disk = size.max(4096);
        let entry = if name_only {
            doc! {"name": &name}
        } else {
            doc! {"name": &name, "sizeOnDisk": size_on_disk, "empty": false}
        };
        if !matches(&entry, &filter)? {
            continue;
        }
        total += size_on_disk;
        databases.push(Bson::Document(entry));
    }
    let mut reply = doc! {"databases": databases};
    if !name_only {
        reply.insert("totalSize", total);
        reply.insert("totalSizeMb", total / (1024 * 1024));
    }
    Ok(reply)
}

/// `listCollections`.
pub(super) fn list_collections(
    node: &Node,
    db: &str,
    command: &Document,
) -> Result<Reply, CommandError> {
    // 3.6 ignores nameOnly (4.0+) and answers whole entries.
    let name_only = command.get_bool("nameOnly").unwrap_or(false)
        && node.opts.version.list_collections_name_only();
    let filter = command.get_document("filter").cloned().unwrap_or_default();
    let inner = node.lock();
    let mut batch = Vec::new();
    if let Some(collections) = inner.data.dbs.get(db) {
        for (name, collection) in collections {
            let kind = if collection.is_view() {
                "view"
            } else {
                "collection"
            };
            let entry = if name_only {
                doc! {"name": name, "type": kind}
            } else if collection.is_view() {
                doc! {
                    "name": name,
                    "type": "view",
                    "options": collection.options.clone(),
                    "info": {"readOnly": true},
                }
            } else {
                // Collections have UUIDs from FCV 3.6 on.
                let info = if node.opts.fcv_34 {
                    doc! {"readOnly": false}
                } else {
                    doc! {"readOnly": false, "uuid": uuid_bson(collection.uuid)}
                };
                let mut id_index = doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"};
                if node.opts.version.index_specs_have_ns() {
                    id_index.insert("ns", format!("{db}.{name}"));
                }
                doc! {
                    "name": name,
                    "type": "collection",
                    "options": collection.options.clone(),
                    "info": info,
                    "idIndex": id_index,
                }
            };
            if matches(&entry, &filter)? {
                batch.push(Arc::new(RawDocumentBuf::from_document(&entry).map_err(
                    |e| CommandError::new(Code::InvalidBson, e.to_string()),
                )?));
            }
        }
    }
    cursor_reply(
        "firstBatch",
        &format!("{db}.$cmd.listCollections"),
        0,
        &batch,
    )
    .map(Reply::Raw)
}

/// `listIndexes`.
pub(super) fn list_indexes(
    node: &Node,
    db: &str,
    command: &Document,
) -> Result<Reply, CommandError> {
    let coll = collection_name(command, "listIndexes")?;
    refuse_view(node, db, coll)?;
    let inner = node.lock();
    let collection = inner.data.collection(db, coll).ok_or_else(|| {
        CommandError::new(
            Code::NamespaceNotFound,
            format!("ns does not exist: {db}.{coll}"),
        )
    })?;
    // Below 4.4 every spec names its namespace after `name`.
    let ns = node
        .opts
        .version
        .index_specs_have_ns()
        .then(|| format!("{db}.{coll}"));
    let spec = |index: &Document| {
        let mut out = Document::new();
        for (k, v) in index {
            out.insert(k.clone(), v.clone());
            if let (Some(ns), "name") = (&ns, k.as_str()) {
                out.insert("ns", ns.as_str());
            }
        }
        RawDocumentBuf::from_document(&out)
            .map(Arc::new)
            .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))
    };
    let mut batch = vec![spec(&doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"})?];
    for index in &collection.indexes {
        batch.push(spec(index)?);
    }
    cursor_reply("firstBatch", &format!("{db}.{coll}"), 0, &batch).map(Reply::Raw)
}

async fn finish_write(
    node: &Node,
    optime: OpTime,
    command: &Document,
    mut reply: Document,
) -> Result<Document, CommandError> {
    if let Err(e) = node
        .wait_for_write_concern(optime, command.get_document("writeConcern").ok())
        .await
    {
        reply.insert(
            "writeConcernError",
            doc! {"code": e.code.number(), "codeName": e.code.name(), "errmsg": e.message},
        );
    }
    Ok(reply)
}

/// `createIndexes`.
pub(super) async fn create_indexes(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    check_db_name(db)?;
    let coll = collection_name(command, "createIndexes")?.to_owned();
    refuse_view(node, db, &coll)?;
    let specs = command
        .get_array("indexes")
        .map_err(|_| CommandError::type_mismatch("indexes", "array"))?;
    let ns = format!("{db}.{coll}");
    let (existed, before) = {
        let inner = node.lock();
        match inner.data.collection(db, &coll) {
            Some(c) => (true, 1 + c.indexes.len()),
            None => (false, 1),
        }
    };
    let mut to_create = Vec::new();
    {
        let inner = node.lock();
        let existing = inner
            .data
            .collection(db, &coll)
            .map(|c| c.indexes.clone())
            .unwrap_or_default();
        for spec in specs {
            let spec = spec
                .as_document()
                .ok_or_else(|| CommandError::type_mismatch("indexes", "object"))?;
            let key = spec.get_document("key").map_err(|_| {
                CommandError::new(
                    Code::FailedToParse,
                    "The 'key' field is a required property of an index specification",
                )
            })?;
            let name = spec.get_str("name").map_err(|_| {
                CommandError::new(
                    Code::FailedToParse,
                    "The 'name' field is a required property of an index specification",
                )
            })?;
            if name == "_id_" || *key == doc! {"_id": 1} {
                continue;
            }
            if let Some(current) = existing
                .iter()
                .find(|i| i.get_str("name").ok() == Some(name))
            {
                if current.get_document("key").ok() != Some(key) {
                    return Err(CommandError::new(
                        Code::IndexKeySpecsConflict,
                        format!(
                            "An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: {spec}, existing index: {current}"
                        ),
                    ));
                }
                continue;
            }
            let mut full = doc! {"v": 2, "key": key.clone(), "name": name};
            for (k, v) in spec {
                if !matches!(k.as_str(), "key" | "name" | "v" | "ns") {
                    full.insert(k.clone(), v.clone());
                }
            }
            to_create.push(full);
        }
    }
    let n_new = to_create.len();
    let (res, optime) = node.write(|w| {
        if !existed {
            w.emit("c", &format!("{db}.$cmd"), doc! {"create": &coll}, None)?;
        }
        for spec in to_create {
            w.emit(
                "c",
                &format!("{db}.$cmd"),
                doc! {"createIndexes": &coll, "spec": spec},
                None,
            )?;
        }
        Ok::<(), CommandError>(())
    })?;
    res?;
    let _ = ns;
    let mut reply = doc! {
        "numIndexesBefore": before as i32,
        "numIndexesAfter": (before + n_new) as i32,
        "createdCollectionAutomatically": !existed,
    };
    if n_new == 0 {
        reply.insert("note", "all indexes already exist");
    }
    if node.is_repl() {
        reply.insert("commitQuorum", "votingMembers");
    }
    finish_write(node, optime, command, reply).await
}

/// A view cannot be written to, indexed or listed as a collection:
/// mongod's 166 CommandNotSupportedOnView.
fn refuse_view(node: &Node, db: &str, coll: &str) -> Result<(), CommandError> {
    if node
        .lock()
        .data
        .collection(db, coll)
        .is_some_and(|c| c.is_view())
    {
        return Err(CommandError::new(
            Code::CommandNotSupportedOnView,
            format!("Namespace {db}.{coll} is a view, not a collection"),
        ));
    }
    Ok(())
}

/// The options of a `create` as mongod stores them
/// (`CollectionOptions::parse`/`toBSON`): a capped collection's `size`
/// rounded up to a multiple of 256, `max` only when given; a view's
/// `viewOn` and `pipeline`; `validator`, `validationLevel`,
/// `validationAction`, `collation`, `storageEngine` and
/// `indexOptionDefaults` as given. Anything else that is not a generic
/// command argument is 72 InvalidOptions.
fn collection_options(command: &Document) -> Result<Document, CommandError> {
    const GENERIC: [&str; 12] = [
        "create",
        "$db",
        "lsid",
        "txnNumber",
        "writeConcern",
        "comment",
        "$readPreference",
        "$clusterTime",
        "maxTimeMS",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
    ];
    const PASSED: [&str; 6] = [
        "validator",
        "validationLevel",
        "validationAction",
        "collation",
        "storageEngine",
        "indexOptionDefaults",
    ];
    let invalid = |m: String| CommandError::new(Code::InvalidOptions, m);
    let number = |key: &str| match command.get(key) {
        Some(Bson::Int32(i)) => Some(i64::from(*i)),
        Some(Bson::Int64(i)) => Some(*i),
        Some(Bson::Double(d)) => Some(*d as i64),
        _ => None,
    };
    let mut options = Document::new();
    if let Some(view_on) = command.get("viewOn") {
        let Bson::String(view_on) = view_on else {
            return Err(CommandError::type_mismatch("viewOn", "string"));
        };
        if command.get_bool("capped").unwrap_or(false) {
            return Err(invalid(
                "'capped' is not a valid option for a view".to_owned(),
            ));
        }
        options.insert("viewOn", view_on.as_str());
        let pipeline = match command.get("pipeline") {
            None => Vec::new(),
            Some(Bson::Array(stages)) => stages.clone(),
            Some(_) => return Err(CommandError::type_mismatch("pipeline", "array")),
        };
        options.insert("pipeline", pipeline);
    } else if command.contains_key("pipeline") {
        return Err(invalid(
            "'pipeline' requires 'viewOn' to also be specified".to_owned(),
        ));
    }
    if command.get_bool("capped").unwrap_or(false) {
        let Some(size) = number("size") else {
            return Err(invalid(
                "the 'size' field is required when 'capped' is true".to_owned(),
            ));
        };
        if size < 0 {
            return Err(CommandError::bad_value("size has to be >= 0".to_owned()));
        }
        let size = (size + 0xff) & !0xff;
        options.insert("capped", true);
        match i32::try_from(size) {
            Ok(size) => options.insert("size", size),
            Err(_) => options.insert("size", size),
        };
        if let Some(max) = number("max").filter(|m| *m > 0) {
            match i32::try_from(max) {
                Ok(max) => options.insert("max", max),
                Err(_) => options.insert("max", max),
            };
        }
    }
    for (key, value) in command {
        if PASSED.contains(&key.as_str()) {
            options.insert(key.clone(), value.clone());
        } else if !GENERIC.contains(&key.as_str())
            && !["viewOn", "pipeline", "capped", "size", "max", "autoIndexId"]
                .contains(&key.as_str())
        {
            return Err(invalid(format!(
                "The field '{key}' is not a valid collection option. Options: {command}"
            )));
        }
    }
    Ok(options)
}

/// `create`: a collection (with its options) or a view.
pub(super) async fn create(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    check_db_name(db)?;
    let coll = collection_name(command, "create")?.to_owned();
    let options = collection_options(command)?;
    if let Some(existing) = node.lock().data.collection(db, &coll) {
        if node.major() >= 7 && existing.options == options {
            return Ok(doc! {});
        }
        return Err(CommandError::new(
            Code::NamespaceExists,
            format!("Collection {db}.{coll} already exists."),
        ));
    }
    let mut entry = doc! {"create": &coll};
    entry.extend(options);
    let (res, optime) = node.write(|w| w.emit("c", &format!("{db}.$cmd"), entry, None))?;
    res?;
    finish_write(node, optime, command, doc! {}).await
}

/// `drop`.
pub(super) async fn drop(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let coll = collection_name(command, "drop")?.to_owned();
    let indexes = node
        .lock()
        .data
        .collection(db, &coll)
        .map(|c| 1 + c.indexes.len());
    let Some(indexes) = indexes else {
        if node.major() >= 7 {
            return Ok(doc! {});
        }
        return Err(CommandError::new(Code::NamespaceNotFound, "ns not found"));
    };
    let (res, optime) =
        node.write(|w| w.emit("c", &format!("{db}.$cmd"), doc! {"drop": &coll}, None))?;
    res?;
    finish_write(
        node,
        optime,
        command,
        doc! {"nIndexesWas": indexes as i32, "ns": format!("{db}.{coll}")},
    )
    .await
}

/// `renameCollection` (on `admin`): `{renameCollection: "db.from", to:
/// "db.to", dropTarget}`, one `c` oplog entry as mongod writes it; the
/// collection keeps its UUID, documents and indexes. Errors as mongod's:
/// run elsewhere than `admin`, a source that does not exist, a target
/// that exists without `dropTarget`, a rename onto itself.
pub(super) async fn rename_collection(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    if db != "admin" {
        return Err(CommandError::new(
            Code::Unauthorized,
            "renameCollection may only be run against the admin database.",
        ));
    }
    let namespace = |field: &str| -> Result<(String, String), CommandError> {
        let full = command
            .get_str(field)
            .map_err(|_| CommandError::type_mismatch(field, "string"))?;
        match full.split_once('.') {
            Some((d, c)) if !d.is_empty() && !c.is_empty() => {
                check_db_name(d)?;
                Ok((d.to_owned(), c.to_owned()))
            }
            _ => Err(CommandError::new(
                Code::InvalidNamespace,
                format!("Invalid {field} namespace: {full}"),
            )),
        }
    };
    let (from_db, from_coll) = namespace("renameCollection")?;
    let (to_db, to_coll) = namespace("to")?;
    let drop_target = command.get_bool("dropTarget").unwrap_or(false);
    let (from, to) = (
        format!("{from_db}.{from_coll}"),
        format!("{to_db}.{to_coll}"),
    );
    if from == to {
        return Err(CommandError::new(
            Code::IllegalOperation,
            "Can't rename a collection to itself",
        ));
    }
    if from_coll.starts_with("system.") || to_coll.starts_with("system.") {
        return Err(CommandError::new(
            Code::IllegalOperation,
            format!("error with source namespace: cannot rename {from} to {to}"),
        ));
    }
    let (res, optime) = node.write(|w| {
        if w.data().collection(&from_db, &from_coll).is_none() {
            return Err(CommandError::new(
                Code::NamespaceNotFound,
                format!("Source collection {from} does not exist"),
            ));
        }
        if w.data().collection(&to_db, &to_coll).is_some() && !drop_target {
            return Err(CommandError::new(
                Code::NamespaceExists,
                "target namespace exists",
            ));
        }
        w.emit(
            "c",
            &format!("{from_db}.$cmd"),
            doc! {"renameCollection": &from, "to": &to, "stayTemp": false, "dropTarget": drop_target},
            None,
        )
    })?;
    res?;
    finish_write(node, optime, command, doc! {}).await
}

/// `dropDatabase`.
pub(super) async fn drop_database(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    if db == "local" || db == "admin" || db == "config" {
        return Err(CommandError::new(
            Code::IllegalOperation,
            format!("Cannot drop '{db}' database while replication is active"),
        ));
    }
    if !node.lock().data.dbs.contains_key(db) {
        return Ok(doc! {});
    }
    let (res, optime) =
        node.write(|w| w.emit("c", &format!("{db}.$cmd"), doc! {"dropDatabase": 1}, None))?;
    res?;
    finish_write(node, optime, command, doc! {"dropped": db}).await
}

/// `dbStats`.
pub(super) fn db_stats(node: &Node, db: &str) -> Result<Document, CommandError> {
    let inner = node.lock();
    let (collections, objects, data_size) = inner
        .data
        .dbs
        .get(db)
        .map(|c| {
            (
                c.len() as i64,
                c.values().map(|c| c.len() as i64).sum::<i64>(),
                c.values().map(|c| c.data_size as i64).sum::<i64>(),
            )
        })
        .unwrap_or((0, 0, 0));
    Ok(
        doc! {"db": db, "collections": collections, "objects": objects, "dataSize": data_size as f64, "storageSize": data_size as f64, "indexes": collections},
    )
}
