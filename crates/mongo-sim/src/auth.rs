//! Users, built-in roles and what they allow.
//!
//! Users live in `admin.system.users` as documents shaped like mongod's
//! (`{_id: "db.user", userId, user, db, credentials: {"SCRAM-SHA-1": …,
//! "SCRAM-SHA-256": …}, roles: [{role, db}]}`), so they replicate through
//! the oplog like any data. Privileges are checked per command against the
//! built-in roles the project uses.

use bson::{Bson, Document, doc};

use crate::error::{Code, CommandError};
use crate::scram;
use crate::storage::{random_uuid, uuid_bson};

/// What a command needs to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// `createCollection`.
    CreateCollection,
    /// `createIndex`.
    CreateIndex,
    /// `createUser`.
    CreateUser,
    /// `dropCollection`.
    DropCollection,
    /// `dropDatabase`.
    DropDatabase,
    /// `dropIndex` (the `dropIndexes` command).
    DropIndex,
    /// `dbHash`.
    DbHash,
    /// `dropUser`.
    DropUser,
    /// `find`.
    Find,
    /// `grantRole`.
    GrantRole,
    /// `insert`.
    Insert,
    /// `remove` (the `delete` command).
    Remove,
    /// Replica-set member traffic (heartbeats, votes, oplog reads).
    Internal,
    /// `listCollections`.
    ListCollections,
    /// `listDatabases` (cluster).
    ListDatabases,
    /// `listIndexes`.
    ListIndexes,
    /// `replSetConfigure` (cluster).
    ReplSetConfigure,
    /// `replSetGetConfig` (cluster).
    ReplSetGetConfig,
    /// `replSetGetStatus` (cluster).
    ReplSetGetStatus,
    /// `replSetStateChange` (cluster).
    ReplSetStateChange,
    /// `serverStatus` (cluster).
    ServerStatus,
    /// `shutdown` (cluster).
    Shutdown,
    /// `changePassword`, `changeCustomData` (updateUser).
    UpdateUser,
    /// `viewUser`.
    ViewUser,
}

/// What an action applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    /// A database.
    Db(String),
    /// The cluster.
    Cluster,
}

const READ: &[Action] = &[
    Action::Find,
    Action::ListCollections,
    Action::ListIndexes,
    Action::DbHash,
];
const READ_WRITE: &[Action] = &[
    Action::Find,
    Action::ListCollections,
    Action::ListIndexes,
    Action::DbHash,
    Action::Insert,
    Action::Remove,
    Action::CreateCollection,
    Action::CreateIndex,
    Action::DropCollection,
    Action::DropIndex,
];
const DB_ADMIN: &[Action] = &[
    Action::ListCollections,
    Action::ListIndexes,
    Action::DbHash,
    Action::CreateCollection,
    Action::CreateIndex,
    Action::DropCollection,
    Action::DropIndex,
    Action::DropDatabase,
];
const USER_ADMIN: &[Action] = &[
    Action::CreateUser,
    Action::DropUser,
    Action::UpdateUser,
    Action::GrantRole,
    Action::ViewUser,
];
const CLUSTER_MONITOR: &[Action] = &[
    Action::ReplSetGetStatus,
    Action::ReplSetGetConfig,
    Action::ServerStatus,
    Action::ListDatabases,
];
const CLUSTER_MANAGER: &[Action] = &[
    Action::ReplSetConfigure,
    Action::ReplSetStateChange,
    Action::ReplSetGetConfig,
    Action::ReplSetGetStatus,
];

/// Built-in roles that exist on every database.
const DB_ROLES: &[&str] = &["read", "readWrite", "dbAdmin", "userAdmin", "dbOwner"];
/// Built-in roles that exist only on `admin`.
const ADMIN_ROLES: &[&str] = &[
    "readAnyDatabase",
    "readWriteAnyDatabase",
    "userAdminAnyDatabase",
    "dbAdminAnyDatabase",
    "clusterAdmin",
    "clusterManager",
    "clusterMonitor",
    "hostManager",
    "backup",
    "restore",
    "root",
    "__system",
];

/// Whether `role` exists on `db`.
pub(crate) fn role_exists(role: &str, db: &str) -> bool {
    DB_ROLES.contains(&role) || (db == "admin" && ADMIN_ROLES.contains(&role))
}

/// Whether a role held on `role_db` grants `action` on `resource`.
fn role_grants(role: &str, role_db: &str, action: Action, resource: &Resource) -> bool {
    let on_db = |actions: &[Action]| match resource {
        Resource::Db(db) => db == role_db && actions.contains(&action),
        Resource::Cluster => false,
    };
    let on_any_db = |actions: &[Action]| match resource {
        Resource::Db(db) => db != "local" && db != "config" && actions.contains(&action),
        Resource::Cluster => false,
    };
    let on_cluster =
        |actions: &[Action]| *resource == Resource::Cluster && actions.contains(&action);
    match role {
        "read" => on_db(READ),
        "readWrite" => on_db(READ_WRITE),
        "dbAdmin" => on_db(DB_ADMIN),
        "userAdmin" => on_db(USER_ADMIN),
        "dbOwner" => on_db(READ_WRITE) || on_db(DB_ADMIN) || on_db(USER_ADMIN),
        "readAnyDatabase" => on_any_db(READ) || on_cluster(&[Action::ListDatabases]),
        "readWriteAnyDatabase" => on_any_db(READ_WRITE) || on_cluster(&[Action::ListDatabases]),
        "userAdminAnyDatabase" => on_any_db(USER_ADMIN) || on_cluster(&[Action::ListDatabases]),
        "dbAdminAnyDatabase" => on_any_db(DB_ADMIN) || on_cluster(&[Action::ListDatabases]),
        "clusterMonitor" => on_cluster(CLUSTER_MONITOR),
        "clusterManager" => on_cluster(CLUSTER_MANAGER),
        "hostManager" => on_cluster(&[Action::Shutdown]),
        "clusterAdmin" => {
            on_cluster(CLUSTER_MONITOR)
                || on_cluster(CLUSTER_MANAGER)
                || on_cluster(&[Action::Shutdown])
                || on_any_db(&[Action::DropDatabase])
        }
        "backup" => on_any_db(READ) || on_cluster(&[Action::ListDatabases]),
        "restore" => on_any_db(&[
            Action::Insert,
            Action::CreateCollection,
            Action::CreateIndex,
            Action::DropCollection,
            Action::CreateUser,
            Action::GrantRole,
        ]),
        "root" => [
            "readWriteAnyDatabase",
            "dbAdminAnyDatabase",
            "userAdminAnyDatabase",
            "clusterAdmin",
            "backup",
            "restore",
        ]
        .iter()
        .any(|inner| role_grants(inner, "admin", action, resource)),
        "__system" => true,
        _ => false,
    }
}

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The user name (for x509: the certificate subject).
    pub(crate) user: String,
    /// The authentication database.
    pub(crate) db: String,
    /// Roles as `(role, db)`.
    pub(crate) roles: Vec<(String, String)>,
}

impl Principal {
    /// The cluster-member identity (`__system@local`).
    pub(crate) fn system() -> Principal {
        Principal {
            user: "__system".to_owned(),
            db: "local".to_owned(),
            roles: vec![("__system".to_owned(), "admin".to_owned())],
        }
    }

    /// Whether this principal may perform `action` on `resource`.
    pub(crate) fn allows(&self, action: Action, resource: &Resource) -> bool {
        self.roles
            .iter()
            .any(|(role, db)| role_grants(role, db, action, resource))
    }

    /// Whether it holds any privilege on database `db` (what
    /// `listDatabases` with `authorizedDatabases` shows).
    pub(crate) fn has_any_on(&self, db: &str) -> bool {
        let resource = Resource::Db(db.to_owned());
        [
            Action::Find,
            Action::Insert,
            Action::ListCollections,
            Action::CreateUser,
        ]
        .iter()
        .any(|a| self.allows(*a, &resource))
    }
}

/// Parses a `roles` array (strings mean roles on `default_db`), checking
/// each role exists.
pub(crate) fn parse_roles(
    value: &Bson,
    default_db: &str,
) -> Result<Vec<(String, String)>, CommandError> {
    let Bson::Array(items) = value else {
        return Err(CommandError::type_mismatch("roles", "array"));
    };
    let mut roles = Vec::new();
    for item in items {
        let (role, db) = match item {
            Bson::String(name) => (name.clone(), default_db.to_owned()),
            Bson::Document(d) => (
                d.get_str("role")
                    .map_err(|_| CommandError::bad_value("role documents need a 'role' string"))?
                    .to_owned(),
                d.get_str("db")
                    .map_err(|_| CommandError::bad_value("role documents need a 'db' string"))?
                    .to_owned(),
            ),
            _ => {
                return Err(CommandError::bad_value(
                    "roles must be strings or {role, db} documents",
                ));
            }
        };
        if !role_exists(&role, &db) {
            return Err(CommandError::new(
                Code::RoleNotFound,
                format!("Could not find role: {role}@{db}"),
            ));
        }
        if !roles.contains(&(role.clone(), db.clone())) {
            roles.push((role, db));
        }
    }
    Ok(roles)
}

/// The roles array of a user document.
pub(crate) fn roles_to_bson(roles: &[(String, String)]) -> Bson {
    Bson::Array(
        roles
            .iter()
            .map(|(role, db)| Bson::Document(doc! {"role": role, "db": db}))
            .collect(),
    )
}

/// Builds an `admin.system.users` document.
pub(crate) fn user_document(
    user: &str,
    db: &str,
    password: Option<&str>,
    mechanisms: &[&str],
    roles: &[(String, String)],
) -> Document {
    let mut doc = doc! {
        "_id": format!("{db}.{user}"),
        "userId": uuid_bson(random_uuid()),
        "user": user,
        "db": db,
    };
    if let Some(password) = password {
        let mut credentials = Document::new();
        for mechanism in mechanisms {
            if let Some(creds) = scram::Credentials::derive(mechanism, user, password) {
                credentials.insert(*mechanism, creds.to_doc());
            }
        }
        doc.insert("credentials", credentials);
    } else {
        doc.insert("credentials", doc! {"external": true});
    }
    doc.insert("roles", roles_to_bson(roles));
    doc
}

/// The principal a user document describes.
pub(crate) fn principal_of(user_doc: &Document) -> Principal {
    let roles = user_doc
        .get_array("roles")
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let d = item.as_document()?;
                    Some((
                        d.get_str("role").ok()?.to_owned(),
                        d.get_str("db").ok()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Principal {
        user: user_doc.get_str("user").unwrap_or_default().to_owned(),
        db: user_doc.get_str("db").unwrap_or_default().to_owned(),
        roles,
    }
}

/// The mechanisms a user document has credentials for.
pub(crate) fn mechanisms_of(user_doc: &Document) -> Vec<String> {
    user_doc
        .get_document("credentials")
        .map(|c| {
            c.keys()
                .filter(|k| k.starts_with("SCRAM-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}
