//! Data commands: insert, find/getMore/killCursors, count, aggregate, and
//! the catalog (databases, collections, indexes).
//!
//! Split by handler family: `query` (find, count), `cursor` (getMore,
//! killCursors), `aggregate`, `write` (insert, delete) and `catalog`
//! (databases, collections, indexes); the filters, batches and replies
//! they share are here.

mod aggregate;
mod catalog;
mod cursor;
mod hash;
mod query;
mod write;

pub(super) use aggregate::aggregate;
pub(super) use catalog::{
    create, create_indexes, db_stats, drop, drop_database, drop_indexes, list_collections,
    list_databases, list_indexes, rename_collection,
};
pub(super) use cursor::{get_more, kill_cursors};
pub(super) use hash::db_hash;
pub(super) use query::{count, find};
pub(super) use write::{delete, insert};

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

use bson::{Bson, Document, RawArrayBuf, RawBson, RawDocumentBuf, doc};

use super::Reply;
use crate::error::{Code, CommandError};
use crate::node::Node;
use crate::storage::{OpTime, compare_bson};
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
    if filter.is_empty()
        && let Some(sort) = sort.filter(|s| !s.is_empty() && s.keys().all(|k| !k.contains('.')))
    {
        // Sorted on top-level fields only: read just those from each
        // document (the order is the same as the general path's).
        let keys = sort_keys(sort);
        let mut keyed: Vec<(Vec<Bson>, Arc<RawDocumentBuf>)> = collection
            .documents()
            .map(|raw| {
                let values = keys
                    .iter()
                    .map(|(key, _)| {
                        raw.get(key)
                            .ok()
                            .flatten()
                            .and_then(|v| Bson::try_from(v).ok())
                            .unwrap_or(Bson::Null)
                    })
                    .collect();
                (values, raw.clone())
            })
            .collect();
        std::mem::drop(inner);
        keyed.sort_by(|(a, _), (b, _)| {
            for ((va, vb), (_, ascending)) in a.iter().zip(b).zip(&keys) {
                let ord = compare_bson(va, vb);
                if ord != Ordering::Equal {
                    return if *ascending { ord } else { ord.reverse() };
                }
            }
            Ordering::Equal
        });
        return Ok(keyed.into_iter().map(|(_, raw)| raw).collect());
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
        let keys = sort_keys(sort);
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

/// A sort's fields, each with whether it is ascending.
fn sort_keys(sort: &Document) -> Vec<(String, bool)> {
    sort.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                !matches!(v, Bson::Int32(-1) | Bson::Int64(-1)) && v.as_f64() != Some(-1.0),
            )
        })
        .collect()
}

/// The `_id` values a filter that only names `_id` by equality or `$in`
/// asks for; `None` for any other filter (a regex, an operator, a
/// subdocument that could be an operator expression, other fields).
pub(super) fn id_lookup(filter: &Document) -> Option<Vec<&Bson>> {
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
