//! Command dispatch: authorization, replica-state checks, then the handler.

mod crud;
mod hello;
mod repl;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, doc};

use crate::auth::{Action, Principal, Resource};
use crate::error::{Code, CommandError};
use crate::node::Node;
use crate::replset::MemberState;
use crate::scram;

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct Session {
    /// `connectionId`.
    pub(crate) connection_id: i64,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Who is authenticated on this connection.
    pub(crate) principals: Vec<Principal>,
    /// A SCRAM conversation in progress: id, database, state.
    pub(crate) sasl: Option<(i32, String, scram::Conversation)>,
    /// The verified client certificate's subject and O/OU/DC.
    pub(crate) client_cert: Option<(String, crate::tls::MemberAttributes)>,
}

impl Session {
    /// A session for a new connection.
    pub(crate) fn new(
        connection_id: i64,
        peer: SocketAddr,
        client_cert: Option<(String, crate::tls::MemberAttributes)>,
    ) -> Session {
        Session {
            connection_id,
            peer,
            principals: Vec::new(),
            sasl: None,
            client_cert,
        }
    }

    fn is_system(&self) -> bool {
        self.principals.iter().any(|p| p.user == "__system")
    }
}

/// A reply: a document, or raw bytes (cursor batches are built raw so
/// documents are never re-encoded).
#[derive(Debug)]
pub(crate) enum Reply {
    /// A document.
    Doc(Document),
    /// Raw BSON.
    Raw(RawDocumentBuf),
    /// No reply at all (the server closes the connection, as `shutdown`
    /// does).
    Close,
}

/// Commands that need no authentication.
const OPEN: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "ping",
    "buildInfo",
    "buildinfo",
    "saslStart",
    "saslContinue",
    "authenticate",
    "logout",
    "endSessions",
    "connectionStatus",
    "getnonce",
    "whatsmyuri",
];

/// Commands allowed without authentication under the localhost exception
/// (no users yet, loopback client).
const LOCALHOST_EXCEPTION: &[&str] = &[
    "createUser",
    "replSetInitiate",
    "replSetGetStatus",
    "replSetReconfig",
];

/// What a command needs: `(action, resource)` pairs.
fn requirements(name: &str, db: &str, command: &Document) -> Vec<(Action, Resource)> {
    let on_db = |action| vec![(action, Resource::Db(db.to_owned()))];
    let cluster = |action| vec![(action, Resource::Cluster)];
    match name {
        "insert" => on_db(Action::Insert),
        "delete" => on_db(Action::Remove),
        "find" | "count" | "aggregate" | "getMore" | "killCursors" | "dbStats" => {
            if db == "local" && command.get_str(name).ok() == Some("oplog.rs") {
                cluster(Action::Internal)
            } else {
                on_db(Action::Find)
            }
        }
        "listCollections" => on_db(Action::ListCollections),
        "listIndexes" => on_db(Action::ListIndexes),
        "createIndexes" => on_db(Action::CreateIndex),
        "dropIndexes" => on_db(Action::DropIndex),
        "dbHash" => on_db(Action::DbHash),
        "create" => on_db(Action::CreateCollection),
        "drop" => on_db(Action::DropCollection),
        "dropDatabase" => on_db(Action::DropDatabase),
        "renameCollection" => {
            // As mongod asks for a rename across databases: read and drop
            // the source, insert and index into the target (and drop it,
            // with dropTarget).
            let ns = |field: &str| {
                let full = command.get_str(field).unwrap_or_default();
                full.split_once('.').map_or(full, |(d, _)| d).to_owned()
            };
            let (from, to) = (ns("renameCollection"), ns("to"));
            let mut needs = vec![
                (Action::Find, Resource::Db(from.clone())),
                (Action::DropCollection, Resource::Db(from)),
                (Action::Insert, Resource::Db(to.clone())),
                (Action::CreateIndex, Resource::Db(to.clone())),
            ];
            if command.get_bool("dropTarget").unwrap_or(false) {
                needs.push((Action::DropCollection, Resource::Db(to)));
            }
            needs
        }
        "listDatabases" => Vec::new(),
        "createUser" => on_db(Action::CreateUser),
        "updateUser" => on_db(Action::UpdateUser),
        "dropUser" => on_db(Action::DropUser),
        "grantRolesToUser" | "revokeRolesFromUser" => on_db(Action::GrantRole),
        "usersInfo" => Vec::new(),
        "replSetInitiate" | "replSetReconfig" => cluster(Action::ReplSetConfigure),
        "replSetGetStatus" => cluster(Action::ReplSetGetStatus),
        "replSetGetConfig" => cluster(Action::ReplSetGetConfig),
        "replSetStepDown" | "replSetFreeze" => cluster(Action::ReplSetStateChange),
        "shutdown" => cluster(Action::Shutdown),
        "serverStatus" => cluster(Action::ServerStatus),
        "replSetHeartbeat" | "replSetRequestVotes" | "replSetUpdatePosition" => {
            cluster(Action::Internal)
        }
        _ => cluster(Action::Internal),
    }
}

/// Every command the simulator knows.
const KNOWN: &[&str] = &[
    "insert",
    "delete",
    "find",
    "getMore",
    "killCursors",
    "count",
    "aggregate",
    "listDatabases",
    "listCollections",
    "listIndexes",
    "createIndexes",
    "dropIndexes",
    "create",
    "drop",
    "renameCollection",
    "dropDatabase",
    "dbStats",
    "dbHash",
    "createUser",
    "updateUser",
    "dropUser",
    "usersInfo",
    "grantRolesToUser",
    "revokeRolesFromUser",
    "replSetInitiate",
    "replSetGetStatus",
    "replSetGetConfig",
    "replSetReconfig",
    "replSetStepDown",
    "replSetFreeze",
    "replSetHeartbeat",
    "replSetRequestVotes",
    "replSetUpdatePosition",
    "shutdown",
    "serverStatus",
];

fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().is_loopback()
}

/// The users a cursor opened on `session` belongs to, `user@db`, sorted.
fn cursor_users(session: &Session) -> Vec<String> {
    let mut users: Vec<String> = session
        .principals
        .iter()
        .map(|p| format!("{}@{}", p.user, p.db))
        .collect();
    users.sort();
    users
}

/// Whether the localhost exception applies: auth on, no user yet, a
/// loopback client, and the bypass not disabled.
fn localhost_exception(node: &Node, session: &Session) -> bool {
    if !node.opts.localhost_auth_bypass || !is_loopback(&session.peer) {
        return false;
    }
    let inner = node.lock();
    inner
        .data
        .collection("admin", "system.users")
        .is_none_or(|c| c.is_empty())
}

fn unauthorized(
    node: &Node,
    session: &Session,
    name: &str,
    db: &str,
    command: &Document,
) -> CommandError {
    let _ = node;
    if session.principals.is_empty() {
        CommandError::new(
            Code::Unauthorized,
            format!("command {name} requires authentication"),
        )
    } else {
        let mut shown = command.clone();
        for secret in ["pwd", "payload"] {
            if shown.contains_key(secret) {
                shown.insert(secret, "xxx");
            }
        }
        shown.remove("lsid");
        shown.remove("$clusterTime");
        CommandError::new(
            Code::Unauthorized,
            format!("not authorized on {db} to execute command {shown}"),
        )
    }
}

/// Runs one command and returns the reply.
pub(crate) async fn dispatch(
    node: &Arc<Node>,
    session: &mut Session,
    command: Document,
    legacy: bool,
) -> Reply {
    let name = command.keys().next().cloned().unwrap_or_default();
    let db = command.get_str("$db").unwrap_or("admin").to_owned();
    let res = run(node, session, &name, &db, &command, legacy).await;
    match res {
        Ok(Reply::Doc(mut reply)) => {
            if !reply.contains_key("ok") {
                reply.insert("ok", 1.0);
            }
            node.gossip(&mut reply);
            Reply::Doc(reply)
        }
        Ok(Reply::Raw(mut raw)) => {
            let mut gossip = Document::new();
            node.gossip(&mut gossip);
            for (key, value) in gossip {
                if let Ok(value) = bson::RawBson::try_from(value) {
                    raw.append(key, value);
                }
            }
            Reply::Raw(raw)
        }
        Ok(Reply::Close) => Reply::Close,
        Err(error) => {
            let mut reply = error.to_reply(node.major());
            node.gossip(&mut reply);
            Reply::Doc(reply)
        }
    }
}

async fn run(
    node: &Arc<Node>,
    session: &mut Session,
    name: &str,
    db: &str,
    command: &Document,
    legacy: bool,
) -> Result<Reply, CommandError> {
    if legacy && !matches!(name, "isMaster" | "ismaster" | "hello") && node.major() >= 6 {
        return Err(CommandError::new(
            Code::UnsupportedOpQueryCommand,
            format!(
                "Unsupported OP_QUERY command: {name}. The client driver may require an upgrade. \
                 For more details see https://dochub.mongodb.org/core/legacy-opcode-removal"
            ),
        ));
    }
    if name == "hello" && !node.opts.version.has_hello() {
        return Err(CommandError::new(
            Code::CommandNotFound,
            format!("no such command: '{name}'"),
        ));
    }
    if node.opts.version.major < 4
        && node.opts.auth
        && !OPEN.contains(&name)
        && session.principals.is_empty()
        && !session.is_system()
        && command.contains_key("lsid")
    {
        // 3.6 derives a session's owner from the logged-in user before a
        // command that requires auth runs: with auth on, such a command
        // carrying an lsid before login fails — the localhost exception's
        // createUser included (MONGO-FACTS §8). Commands open to anyone
        // (isMaster, saslStart) skip the session.
        return Err(CommandError::new(
            Code::Unauthorized,
            "there are no users authenticated",
        ));
    }
    if !OPEN.contains(&name) && !KNOWN.contains(&name) {
        return Err(CommandError::new(
            Code::CommandNotFound,
            format!("no such command: '{name}'"),
        ));
    }
    if node.opts.auth && !OPEN.contains(&name) && !session.is_system() {
        // mongod grants createUser under the exception on `admin` and
        // `$external` only (AuthorizationSession::getDefaultPrivileges).
        let allowed_by_exception = LOCALHOST_EXCEPTION.contains(&name)
            && (name != "createUser" || matches!(db, "admin" | "$external"))
            && session.principals.is_empty()
            && localhost_exception(node, session);
        if !allowed_by_exception {
            if session.principals.is_empty() {
                return Err(unauthorized(node, session, name, db, command));
            }
            for (action, resource) in requirements(name, db, command) {
                if !session
                    .principals
                    .iter()
                    .any(|p| p.allows(action, &resource))
                {
                    return Err(unauthorized(node, session, name, db, command));
                }
            }
        }
    }
    check_replica_state(node, name, db, command)?;
    let doc = |d: Document| Ok(Reply::Doc(d));
    match name {
        "hello" | "isMaster" | "ismaster" => {
            doc(hello::hello(node, session, command, name != "hello"))
        }
        "ping" => doc(doc! {}),
        "buildInfo" | "buildinfo" => doc(hello::build_info(node)),
        "whatsmyuri" => doc(doc! {"you": session.peer.to_string()}),
        "getnonce" => Err(CommandError::new(
            Code::CommandNotFound,
            "no such command: 'getnonce'",
        )),
        "endSessions" => doc(doc! {}),
        "connectionStatus" => doc(users::connection_status(session)),
        "logout" => {
            session.principals.clear();
            doc(doc! {})
        }
        "saslStart" => users::sasl_start(node, session, db, command).map(Reply::Doc),
        "saslContinue" => users::sasl_continue(node, session, command).map(Reply::Doc),
        "authenticate" => users::authenticate(node, session, db, command).map(Reply::Doc),
        "createUser" => users::create_user(node, session, db, command)
            .await
            .map(Reply::Doc),
        "updateUser" => users::update_user(node, db, command).await.map(Reply::Doc),
        "dropUser" => users::drop_user(node, db, command).await.map(Reply::Doc),
        "grantRolesToUser" | "revokeRolesFromUser" => {
            users::change_roles(node, db, command, name == "grantRolesToUser")
                .await
                .map(Reply::Doc)
        }
        "usersInfo" => users::users_info(node, session, db, command).map(Reply::Doc),
        "insert" => crud::insert(node, db, command).await.map(Reply::Doc),
        "delete" => crud::delete(node, db, command).await.map(Reply::Doc),
        "find" => crud::find(node, db, command, &cursor_users(session)).await,
        "getMore" => crud::get_more(node, db, command, &cursor_users(session)).await,
        "killCursors" => {
            crud::kill_cursors(node, db, command, &cursor_users(session)).map(Reply::Doc)
        }
        "count" => crud::count(node, db, command).map(Reply::Doc),
        "aggregate" => crud::aggregate(node, db, command),
        "listDatabases" => crud::list_databases(node, session, command).map(Reply::Doc),
        "listCollections" => crud::list_collections(node, db, command),
        "listIndexes" => crud::list_indexes(node, db, command),
        "createIndexes" => crud::create_indexes(node, db, command)
            .await
            .map(Reply::Doc),
        "dropIndexes" => crud::drop_indexes(node, db, command).await.map(Reply::Doc),
        "dbHash" => crud::db_hash(node, db, command).map(Reply::Doc),
        "create" => crud::create(node, db, command).await.map(Reply::Doc),
        "drop" => crud::drop(node, db, command).await.map(Reply::Doc),
        "renameCollection" => crud::rename_collection(node, db, command)
            .await
            .map(Reply::Doc),
        "dropDatabase" => crud::drop_database(node, db, command).await.map(Reply::Doc),
        "dbStats" => crud::db_stats(node, db).map(Reply::Doc),
        "serverStatus" => doc(hello::server_status(node)),
        "replSetInitiate" => repl::initiate(node, command).await.map(Reply::Doc),
        "replSetGetStatus" => repl::get_status(node).map(Reply::Doc),
        "replSetGetConfig" => repl::get_config(node).map(Reply::Doc),
        "replSetReconfig" => repl::reconfig(node, command).await.map(Reply::Doc),
        "replSetStepDown" => repl::step_down(node, command).await.map(Reply::Doc),
        "replSetFreeze" => repl::freeze(node, command).map(Reply::Doc),
        "replSetHeartbeat" => repl::handle_heartbeat(node, command).map(Reply::Doc),
        "replSetRequestVotes" => repl::handle_request_votes(node, command).map(Reply::Doc),
        "replSetUpdatePosition" => repl::update_position(node, command).map(Reply::Doc),
        "shutdown" => repl::shutdown(node, db, command).await,
        other => Err(CommandError::new(
            Code::CommandNotFound,
            format!("no such command: '{other}'"),
        )),
    }
}

/// Commands that write user data.
const WRITES: &[&str] = &[
    "insert",
    "delete",
    "createIndexes",
    "dropIndexes",
    "create",
    "drop",
    "renameCollection",
    "dropDatabase",
    "createUser",
    "updateUser",
    "dropUser",
    "grantRolesToUser",
    "revokeRolesFromUser",
];

/// Commands that read user data.
const READS: &[&str] = &[
    "find",
    "count",
    "aggregate",
    "listCollections",
    "listIndexes",
    "dbStats",
];

fn check_replica_state(
    node: &Node,
    name: &str,
    db: &str,
    command: &Document,
) -> Result<(), CommandError> {
    if !node.is_repl() || db == "local" {
        return Ok(());
    }
    let state = node.lock().state;
    if WRITES.contains(&name) && state != MemberState::Primary {
        return Err(node.not_primary());
    }
    if READS.contains(&name) && state != MemberState::Primary {
        if !matches!(state, MemberState::Secondary) {
            return Err(CommandError::new(
                Code::NotPrimaryOrSecondary,
                "node is not in primary or recovering state",
            ));
        }
        let secondary_ok = match command.get("$readPreference") {
            Some(Bson::Document(pref)) => pref.get_str("mode").is_ok_and(|m| m != "primary"),
            _ => false,
        } || command.get_bool("$secondaryOk").unwrap_or(false);
        if !secondary_ok {
            let message = if node.major() >= 5 {
                "not primary and secondaryOk=false"
            } else {
                "not master and slaveOk=false"
            };
            return Err(CommandError::new(Code::NotPrimaryNoSecondaryOk, message));
        }
    }
    Ok(())
}
