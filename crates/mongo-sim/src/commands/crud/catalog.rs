//! The catalog: databases, collections (options, views), indexes, `dbStats`.

use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, doc};

use super::Reply;
use super::{check_db_name, collection_name, cursor_reply, finish_write, matches, refuse_view};
use crate::auth::{Action, Resource};
use crate::error::{Code, CommandError};
use crate::node::Node;
use crate::storage::uuid_bson;

/// `listDatabases`.
pub(in crate::commands) fn list_databases(
    node: &Node,
    session: &crate::commands::Session,
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
pub(in crate::commands) fn list_collections(
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
pub(in crate::commands) fn list_indexes(
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

/// `createIndexes`.
pub(in crate::commands) async fn create_indexes(
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
pub(in crate::commands) async fn create(
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
pub(in crate::commands) async fn drop(
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
pub(in crate::commands) async fn rename_collection(
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
pub(in crate::commands) async fn drop_database(
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
pub(in crate::commands) fn db_stats(node: &Node, db: &str) -> Result<Document, CommandError> {
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

/// `dropIndexes`: `{dropIndexes: coll, index: name | keyPattern | "*"}`,
/// one `c` oplog entry per index dropped (`{dropIndexes: coll, index:
/// name}`, as mongod 3.6 logs it); `"*"` drops every index but `_id_`.
/// Errors as mongod's: the `_id` index (72 InvalidOptions), an index that
/// does not exist (27 IndexNotFound), a collection that does not exist
/// (26 NamespaceNotFound).
pub(in crate::commands) async fn drop_indexes(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let coll = collection_name(command, "dropIndexes")?.to_owned();
    refuse_view(node, db, &coll)?;
    let indexes = node
        .lock()
        .data
        .collection(db, &coll)
        .map(|c| c.indexes.clone())
        .ok_or_else(|| CommandError::new(Code::NamespaceNotFound, "ns not found"))?;
    let names: Vec<String> = match command.get("index") {
        Some(Bson::String(all)) if all == "*" => indexes
            .iter()
            .filter_map(|i| i.get_str("name").ok().map(str::to_owned))
            .collect(),
        Some(Bson::String(name)) if name == "_id_" => {
            return Err(CommandError::new(
                Code::InvalidOptions,
                "cannot drop _id index",
            ));
        }
        Some(Bson::String(name)) => match indexes
            .iter()
            .find(|i| i.get_str("name").ok() == Some(name))
        {
            Some(_) => vec![name.clone()],
            None => {
                return Err(CommandError::new(
                    Code::IndexNotFound,
                    format!("index not found with name [{name}]"),
                ));
            }
        },
        Some(Bson::Document(key)) => {
            if *key == doc! {"_id": 1} {
                return Err(CommandError::new(
                    Code::InvalidOptions,
                    "cannot drop _id index",
                ));
            }
            match indexes
                .iter()
                .find(|i| i.get_document("key").ok() == Some(key))
            {
                Some(index) => vec![index.get_str("name").unwrap_or_default().to_owned()],
                None => {
                    return Err(CommandError::new(
                        Code::IndexNotFound,
                        format!("can't find index with key: {key}"),
                    ));
                }
            }
        }
        _ => {
            return Err(CommandError::type_mismatch("index", "string or object"));
        }
    };
    let (res, optime) = node.write(|w| {
        for name in &names {
            w.emit(
                "c",
                &format!("{db}.$cmd"),
                doc! {"dropIndexes": &coll, "index": name},
                None,
            )?;
        }
        Ok::<(), CommandError>(())
    })?;
    res?;
    finish_write(
        node,
        optime,
        command,
        doc! {"nIndexesWas": (1 + indexes.len()) as i32},
    )
    .await
}
