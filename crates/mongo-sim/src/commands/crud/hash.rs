//! `dbHash`: an MD5 of each collection's documents, as mongod computes it
//! (`src/mongo/db/commands/dbhash.cpp`): the documents' bytes one after
//! another in `_id` index order, hex; the database's `md5` over the
//! collections' hex digests in name order. System collections are left
//! out but for those mongod replicates; views are not collections.

use std::time::Instant;

use bson::{Bson, Document, doc};
use md5::{Digest as _, Md5};

use crate::error::{Code, CommandError};
use crate::node::Node;
use crate::storage::{compare_bson, uuid_bson};

/// The system collections mongod replicates, and so hashes.
const REPLICATED_SYSTEM: [&str; 7] = [
    "system.backup_users",
    "system.js",
    "system.new_users",
    "system.roles",
    "system.users",
    "system.version",
    "system.views",
];

/// A collection as taken to be hashed: its name, UUID, whether capped,
/// and its documents (shared with the store, not copied).
type Taken = (
    String,
    [u8; 16],
    bool,
    Vec<std::sync::Arc<bson::RawDocumentBuf>>,
);

/// `dbHash`, with `collections: [names]` to hash only those.
pub(in crate::commands) fn db_hash(
    node: &Node,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let started = Instant::now();
    let desired: Option<Vec<String>> = match command.get("collections") {
        Some(Bson::Array(items)) => Some(
            items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        CommandError::new(Code::BadValue, "collections entries have to be strings")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => None,
    };
    // What is hashed is taken under the lock (the documents are shared,
    // not copied) and hashed after it is released: a consistent snapshot,
    // as mongod's (which holds its database lock in a shared mode, so
    // that other readers — another dbHash — go on meanwhile).
    let taken: Vec<Taken> = {
        let inner = node.lock();
        match inner.data.dbs.get(db) {
            None => Vec::new(),
            Some(names) => names
                .iter()
                .filter(|(name, collection)| {
                    !(collection.is_view()
                        || (name.starts_with("system.")
                            && !REPLICATED_SYSTEM.contains(&name.as_str()))
                        || desired.as_ref().is_some_and(|d| !d.contains(name)))
                })
                .map(|(name, collection)| {
                    (
                        name.clone(),
                        collection.uuid,
                        collection.options.get_bool("capped").unwrap_or(false),
                        collection.documents().cloned().collect(),
                    )
                })
                .collect(),
        }
    };
    let mut collections = Document::new();
    let mut uuids = Document::new();
    let mut capped = Vec::new();
    let mut all = Md5::new();
    for (name, uuid, is_capped, documents) in taken {
        let mut by_id: Vec<(Bson, &[u8])> = documents
            .iter()
            .map(|raw| {
                let id = raw
                    .get("_id")
                    .ok()
                    .flatten()
                    .and_then(|v| Bson::try_from(v).ok())
                    .unwrap_or(Bson::Null);
                (id, raw.as_bytes())
            })
            .collect();
        by_id.sort_by(|a, b| compare_bson(&a.0, &b.0));
        let mut md5 = Md5::new();
        for (_, bytes) in &by_id {
            md5.update(bytes);
        }
        let hex = hex(&md5.finalize());
        all.update(hex.as_bytes());
        collections.insert(name.clone(), hex);
        uuids.insert(name.clone(), uuid_bson(uuid));
        if is_capped {
            capped.push(Bson::String(name));
        }
    }
    Ok(doc! {
        "host": format!("localhost:{}", node.opts.port),
        "collections": collections,
        "capped": capped,
        "uuids": uuids,
        "md5": hex(&all.finalize()),
        "timeMillis": started.elapsed().as_millis() as i64,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
