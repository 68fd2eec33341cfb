//! `insert` and `delete`: writes in batches, retryable writes, write concern.

use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, doc, oid::ObjectId};

use super::{check_db_name, collection_name, matches, refuse_view};
use crate::error::{Code, CommandError};
use crate::node::Node;
use crate::storage::Statement;
use crate::wire::MAX_BSON_OBJECT_SIZE;

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
pub(in crate::commands) async fn insert(
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
    if let Some(wanted) = super::id_lookup(filter) {
        // Through the _id index, as `find` does (and mongod's IDHACK): the
        // documents the scan below would match, in its (insertion) order.
        let mut found: Vec<(u64, Bson)> = wanted
            .into_iter()
            .filter_map(|id| collection.seq_of(id).map(|seq| (seq, id.clone())))
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        found.dedup_by_key(|(seq, _)| *seq);
        if just_one {
            found.truncate(1);
        }
        return Ok(found
            .into_iter()
            .map(|(seq, id)| {
                collection
                    .document_at(seq)
                    .and_then(|raw| raw.get("_id").ok().flatten())
                    .and_then(|v| Bson::try_from(v).ok())
                    .unwrap_or(id)
            })
            .collect());
    }
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
pub(in crate::commands) async fn delete(
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
