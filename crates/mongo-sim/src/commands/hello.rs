//! `hello` / `isMaster`, `buildInfo`, `serverStatus`.

use bson::{Bson, Document, doc};

use super::Session;
use crate::auth::mechanisms_of;
use crate::node::Node;
use crate::replset::MemberState;
use crate::wire::{MAX_BSON_OBJECT_SIZE, MAX_MESSAGE_SIZE};

/// The handshake reply. `legacy` is true for `isMaster`/`ismaster`.
pub(super) fn hello(node: &Node, session: &Session, command: &Document, legacy: bool) -> Document {
    let writable_key = if legacy {
        "ismaster"
    } else {
        "isWritablePrimary"
    };
    let mut reply = Document::new();
    let inner = node.lock();
    match (&inner.config, inner.self_id, node.is_repl()) {
        (_, _, false) => {
            reply.insert(writable_key, true);
        }
        (Some(config), Some(self_id), true) if inner.state != MemberState::Removed => {
            let visible = |m: &&crate::replset::MemberConfig| !m.hidden && !m.arbiter_only;
            let hosts: Vec<Bson> = config
                .members
                .iter()
                .filter(visible)
                .filter(|m| m.priority > 0.0)
                .map(|m| Bson::String(m.host.clone()))
                .collect();
            let passives: Vec<Bson> = config
                .members
                .iter()
                .filter(visible)
                .filter(|m| m.priority == 0.0)
                .map(|m| Bson::String(m.host.clone()))
                .collect();
            let arbiters: Vec<Bson> = config
                .members
                .iter()
                .filter(|m| m.arbiter_only)
                .map(|m| Bson::String(m.host.clone()))
                .collect();
            reply.insert("hosts", hosts);
            if !passives.is_empty() {
                reply.insert("passives", passives);
            }
            if !arbiters.is_empty() {
                reply.insert("arbiters", arbiters);
            }
            reply.insert("setName", config.name.clone());
            reply.insert("setVersion", config.version);
            let primary = inner.state == MemberState::Primary;
            reply.insert(writable_key, primary);
            reply.insert("secondary", inner.state == MemberState::Secondary);
            if let Some(primary_host) = inner
                .primary_id
                .and_then(|id| config.member(id))
                .map(|m| m.host.clone())
            {
                reply.insert("primary", primary_host);
            }
            let me = config.member(self_id);
            if let Some(me) = me {
                if me.arbiter_only {
                    reply.insert("arbiterOnly", true);
                }
                if me.priority == 0.0 && !me.arbiter_only {
                    reply.insert("passive", true);
                }
                if me.hidden {
                    reply.insert("hidden", true);
                }
                if !me.tags.is_empty() {
                    reply.insert("tags", me.tags.clone());
                }
                reply.insert("me", me.host.clone());
            }
            if primary {
                reply.insert("electionId", inner.election_id());
            }
            let last = inner.last_applied();
            let majority = inner.commit_point;
            reply.insert(
                "lastWrite",
                doc! {
                    "opTime": last.to_doc(),
                    "lastWriteDate": bson::DateTime::from_millis(last.millis()),
                    "majorityOpTime": majority.to_doc(),
                    "majorityWriteDate": bson::DateTime::from_millis(majority.millis()),
                },
            );
        }
        (_, _, true) => {
            // Not initiated yet, or removed from the config.
            reply.insert(writable_key, false);
            reply.insert("secondary", false);
            reply.insert("info", "Does not have a valid replica set config");
            reply.insert("isreplicaset", true);
        }
    }
    drop(inner);
    let version = node.opts.version;
    // helloOk came with hello (4.4.2 and its backports).
    if version.has_hello() && command.get_bool("helloOk").unwrap_or(false) {
        reply.insert("helloOk", true);
    }
    if let Some(user) = command
        .get_str("saslSupportedMechs")
        .ok()
        .filter(|_| version.has_scram_sha256())
    {
        let inner = node.lock();
        if let Some(user_doc) = inner
            .data
            .collection("admin", "system.users")
            .and_then(|c| c.get(&Bson::String(user.to_owned())))
            .and_then(|raw| raw.to_document().ok())
        {
            let mechanisms: Vec<Bson> = mechanisms_of(&user_doc)
                .into_iter()
                .map(Bson::String)
                .collect();
            reply.insert("saslSupportedMechs", mechanisms);
        }
    }
    reply.insert("maxBsonObjectSize", MAX_BSON_OBJECT_SIZE as i32);
    reply.insert("maxMessageSizeBytes", MAX_MESSAGE_SIZE as i32);
    reply.insert("maxWriteBatchSize", 100_000_i32);
    reply.insert("localTime", bson::DateTime::now());
    // Sessions exist at FCV 3.6 and later only.
    if !node.opts.fcv_34 {
        reply.insert("logicalSessionTimeoutMinutes", 30_i32);
    }
    reply.insert("connectionId", session.connection_id as i32);
    reply.insert("minWireVersion", 0_i32);
    reply.insert("maxWireVersion", node.opts.version.max_wire_version());
    reply.insert("readOnly", false);
    reply
}

/// `buildInfo`.
pub(super) fn build_info(node: &Node) -> Document {
    let version = node.opts.version;
    doc! {
        "version": version.string(),
        "gitVersion": "mongo-sim",
        "versionArray": [version.major as i32, version.minor as i32, version.string().rsplit('.').next().and_then(|p| p.parse::<i32>().ok()).unwrap_or(0), 0],
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE as i32,
        "storageEngines": ["wiredTiger"],
        "modules": [],
        "openssl": {"running": "rustls (mongo-sim)"},
    }
}

/// A minimal `serverStatus`.
pub(super) fn server_status(node: &Node) -> Document {
    let inner = node.lock();
    let mut reply = doc! {
        "host": format!("localhost:{}", node.opts.port),
        "version": node.opts.version.string(),
        "process": "mongod",
        "pid": std::process::id() as i64,
        "uptime": node.started.elapsed().as_secs_f64(),
        "localTime": bson::DateTime::now(),
    };
    if let Some(config) = &inner.config {
        reply.insert(
            "repl",
            doc! {"setName": config.name.clone(), "setVersion": config.version, "isWritablePrimary": inner.state == MemberState::Primary},
        );
    }
    reply
}
