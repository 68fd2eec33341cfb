//! `aggregate`: the pipeline stages the tools and drivers send.

use std::cmp::Ordering;
use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, doc};

use super::Reply;
use super::{collection_name, cursor_reply, lookup, matches, select};
use crate::error::{Code, CommandError};
use crate::node::Node;
use crate::storage::compare_bson;

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
pub(in crate::commands) fn aggregate(
    node: &Node,
    db: &str,
    command: &Document,
) -> Result<Reply, CommandError> {
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
