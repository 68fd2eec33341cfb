//! Authentication (SCRAM, X.509) and user management.

use bson::{Binary, Bson, Document, doc, spec::BinarySubtype};

use super::Session;
use crate::auth::{
    Action, Principal, Resource, mechanisms_of, parse_roles, principal_of, roles_to_bson,
    user_document,
};
use crate::error::{Code, CommandError};
use crate::node::Node;
use crate::scram::{self, Credentials};

const USERS_NS: &str = "admin.system.users";

fn auth_failed() -> CommandError {
    CommandError::new(Code::AuthenticationFailed, "Authentication failed.")
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

fn payload(command: &Document) -> Result<Vec<u8>, CommandError> {
    match command.get("payload") {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        Some(Bson::String(s)) => Ok(s.clone().into_bytes()),
        _ => Err(CommandError::type_mismatch("payload", "binData")),
    }
}

/// The stored user document `db.user`.
fn user_doc(node: &Node, db: &str, user: &str) -> Option<Document> {
    let inner = node.lock();
    inner
        .data
        .collection("admin", "system.users")
        .and_then(|c| c.get(&Bson::String(format!("{db}.{user}"))))
        .and_then(|raw| raw.to_document().ok())
}

/// `saslStart` for SCRAM-SHA-1 / SCRAM-SHA-256.
pub(super) fn sasl_start(
    node: &Node,
    session: &mut Session,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let mechanism = command.get_str("mechanism").unwrap_or_default();
    if mechanism == "SCRAM-SHA-256" && !node.opts.version.has_scram_sha256() {
        return Err(CommandError::bad_value(
            "Unsupported mechanism SCRAM-SHA-256",
        ));
    }
    if mechanism != "SCRAM-SHA-1" && mechanism != "SCRAM-SHA-256" {
        return Err(CommandError::new(
            Code::MechanismUnavailable,
            format!(
                "Received authentication for mechanism {mechanism} which is unknown or not enabled"
            ),
        ));
    }
    let payload = payload(command)?;
    let user = scram::client_first_user(&payload).map_err(|_| auth_failed())?;
    let stored = user_doc(node, db, &user).ok_or_else(auth_failed)?;
    let credentials = stored
        .get_document("credentials")
        .ok()
        .and_then(|c| c.get_document(mechanism).ok())
        .and_then(|c| Credentials::from_doc(mechanism, c))
        .ok_or_else(auth_failed)?;
    let skip = command
        .get_document("options")
        .ok()
        .and_then(|o| o.get_bool("skipEmptyExchange").ok())
        .unwrap_or(false);
    let (conversation, server_first) =
        scram::start(mechanism, &payload, credentials, skip).map_err(|_| auth_failed())?;
    session.sasl = Some((1, db.to_owned(), conversation));
    Ok(doc! {"conversationId": 1, "done": false, "payload": binary(server_first)})
}

/// `saslContinue`. A correct proof authenticates the session at once; the
/// reply carries the server signature.
pub(super) fn sasl_continue(
    node: &Node,
    session: &mut Session,
    command: &Document,
) -> Result<Document, CommandError> {
    let Some((id, db, mut conversation)) = session.sasl.take() else {
        return Err(CommandError::new(
            Code::ProtocolError,
            "No SASL session state found",
        ));
    };
    if conversation.finished {
        // The client's empty last step.
        return Ok(doc! {"conversationId": id, "done": true, "payload": binary(Vec::new())});
    }
    let payload = payload(command)?;
    let server_final = scram::finish(&mut conversation, &payload).map_err(|_| auth_failed())?;
    let done = conversation.skip_empty_exchange;
    let user = conversation.user.clone();
    if let Some(doc) = user_doc(node, &db, &user) {
        let principal = principal_of(&doc);
        session.principals.retain(|p| p.db != principal.db);
        session.principals.push(principal);
    }
    if !done {
        session.sasl = Some((id, db, conversation));
    }
    Ok(doc! {"conversationId": id, "done": done, "payload": binary(server_final)})
}

/// `authenticate` with MONGODB-X509.
pub(super) fn authenticate(
    node: &Node,
    session: &mut Session,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let mechanism = command.get_str("mechanism").unwrap_or_default();
    if mechanism != "MONGODB-X509" {
        return Err(CommandError::new(
            Code::MechanismUnavailable,
            format!("Unsupported mechanism {mechanism} on authenticate command"),
        ));
    }
    if db != "$external" {
        return Err(CommandError::new(
            Code::ProtocolError,
            "X.509 authentication must always use the $external database.",
        ));
    }
    let Some((subject, attributes)) = session.client_cert.clone() else {
        return Err(CommandError::new(
            Code::AuthenticationFailed,
            "No verified subject name available from client",
        ));
    };
    if let Ok(user) = command.get_str("user")
        && user != subject
    {
        return Err(CommandError::new(
            Code::AuthenticationFailed,
            "There is no x.509 client certificate matching the user.",
        ));
    }
    let is_member = node.opts.cluster_auth_x509
        && node
            .tls
            .as_ref()
            .is_some_and(|tls| !attributes.is_empty() && tls.member_attributes == attributes);
    let principal = if is_member {
        Principal::system()
    } else {
        let doc = user_doc(node, "$external", &subject).ok_or_else(auth_failed)?;
        principal_of(&doc)
    };
    session.principals.retain(|p| p.db != principal.db);
    session.principals.push(principal);
    Ok(doc! {"dbname": "$external", "user": subject})
}

/// `connectionStatus`.
pub(super) fn connection_status(session: &Session) -> Document {
    let users: Vec<Bson> = session
        .principals
        .iter()
        .map(|p| Bson::Document(doc! {"user": &p.user, "db": &p.db}))
        .collect();
    let roles: Vec<Bson> = session
        .principals
        .iter()
        .flat_map(|p| p.roles.iter())
        .map(|(role, db)| Bson::Document(doc! {"role": role, "db": db}))
        .collect();
    doc! {"authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": roles}}
}

fn mechanisms(command: &Document) -> Result<Vec<&'static str>, CommandError> {
    match command.get_array("mechanisms") {
        Err(_) => Ok(vec!["SCRAM-SHA-1", "SCRAM-SHA-256"]),
        Ok(items) => {
            let mut res = Vec::new();
            for item in items {
                match item.as_str() {
                    Some("SCRAM-SHA-1") => res.push("SCRAM-SHA-1"),
                    Some("SCRAM-SHA-256") => res.push("SCRAM-SHA-256"),
                    other => {
                        return Err(CommandError::bad_value(format!(
                            "Unknown auth mechanism '{}'",
                            other.unwrap_or("?")
                        )));
                    }
                }
            }
            if res.is_empty() {
                return Err(CommandError::bad_value(
                    "mechanisms field must not be empty",
                ));
            }
            Ok(res)
        }
    }
}

fn check_user_name(name: &str) -> Result<(), CommandError> {
    if name.is_empty() || name.contains('\0') {
        return Err(CommandError::bad_value(
            "User names must be non-empty and may not contain NUL",
        ));
    }
    Ok(())
}

async fn commit(
    node: &Node,
    command: &Document,
    f: impl FnOnce(&mut crate::node::Writer<'_>) -> Result<(), CommandError>,
) -> Result<Document, CommandError> {
    let (res, optime) = node.write(f)?;
    res?;
    let wc = command.get_document("writeConcern").ok();
    node.wait_for_write_concern(optime, wc).await?;
    Ok(doc! {})
}

/// `createUser`.
pub(super) async fn create_user(
    node: &Node,
    session: &Session,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let _ = session;
    let name = command
        .get_str("createUser")
        .map_err(|_| CommandError::type_mismatch("createUser", "string"))?
        .to_owned();
    check_user_name(&name)?;
    let roles = parse_roles(
        command.get("roles").ok_or_else(|| {
            CommandError::new(
                Code::BadValue,
                "\"createUser\" command requires a \"roles\" array",
            )
        })?,
        db,
    )?;
    let password = command.get_str("pwd").ok();
    if db == "$external" && password.is_some() {
        return Err(CommandError::bad_value(
            "Cannot set a password for users on $external",
        ));
    }
    if db != "$external" && password.is_none() {
        return Err(CommandError::bad_value(
            "Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db",
        ));
    }
    if password.is_some_and(str::is_empty) {
        return Err(CommandError::bad_value("Password cannot be empty"));
    }
    let mechanisms = if node.opts.version.has_scram_sha256() {
        mechanisms(command)?
    } else if command.contains_key("mechanisms") {
        // 3.6's createUser knows no mechanisms field.
        return Err(CommandError::bad_value(
            "\"mechanisms\" is not a valid argument to createUser",
        ));
    } else {
        vec!["SCRAM-SHA-1"]
    };
    if command.get_bool("digestPassword") == Ok(false) && mechanisms.contains(&"SCRAM-SHA-256") {
        return Err(CommandError::bad_value(
            "Use of SCRAM-SHA-256 requires undigested passwords",
        ));
    }
    if user_doc(node, db, &name).is_some() {
        return Err(CommandError::new(
            Code::Location51003,
            format!("User \"{name}@{db}\" already exists"),
        ));
    }
    let doc = user_document(&name, db, password, &mechanisms, &roles);
    commit(node, command, |w| w.emit("i", USERS_NS, doc, None)).await
}

fn existing_user(
    node: &Node,
    db: &str,
    command: &Document,
    field: &str,
) -> Result<(String, Document), CommandError> {
    let name = command
        .get_str(field)
        .map_err(|_| CommandError::type_mismatch(field, "string"))?
        .to_owned();
    let doc = user_doc(node, db, &name).ok_or_else(|| {
        CommandError::new(
            Code::UserNotFound,
            format!("Could not find user \"{name}\" for db \"{db}\""),
        )
    })?;
    Ok((name, doc))
}

/// `updateUser`.
pub(super) async fn update_user(
    node: &Node,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let (name, mut doc) = existing_user(node, db, command, "updateUser")?;
    if let Some(roles) = command.get("roles") {
        let roles = parse_roles(roles, db)?;
        doc.insert("roles", roles_to_bson(&roles));
    }
    if let Ok(password) = command.get_str("pwd") {
        if password.is_empty() {
            return Err(CommandError::bad_value("Password cannot be empty"));
        }
        let mechanisms = match command.get_array("mechanisms") {
            Ok(_) => mechanisms(command)?,
            Err(_) => {
                let current = mechanisms_of(&doc);
                let mut res: Vec<&'static str> = Vec::new();
                for m in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
                    if current.iter().any(|c| c == m) {
                        res.push(m);
                    }
                }
                if res.is_empty() {
                    res = vec!["SCRAM-SHA-1", "SCRAM-SHA-256"];
                }
                res
            }
        };
        let fresh = user_document(&name, db, Some(password), &mechanisms, &[]);
        doc.insert(
            "credentials",
            fresh
                .get_document("credentials")
                .cloned()
                .unwrap_or_default(),
        );
    }
    let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
    commit(node, command, |w| {
        w.emit("u", USERS_NS, doc, Some(doc! {"_id": id}))
    })
    .await
}

/// `dropUser`.
pub(super) async fn drop_user(
    node: &Node,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let (_, doc) = existing_user(node, db, command, "dropUser")?;
    let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
    commit(node, command, |w| {
        w.emit("d", USERS_NS, doc! {"_id": id}, None)
    })
    .await
}

/// `grantRolesToUser` / `revokeRolesFromUser`.
pub(super) async fn change_roles(
    node: &Node,
    db: &str,
    command: &Document,
    grant: bool,
) -> Result<Document, CommandError> {
    let field = if grant {
        "grantRolesToUser"
    } else {
        "revokeRolesFromUser"
    };
    let (_, mut doc) = existing_user(node, db, command, field)?;
    let changes = parse_roles(
        command.get("roles").ok_or_else(|| {
            CommandError::bad_value(format!("\"{field}\" command requires a \"roles\" array"))
        })?,
        db,
    )?;
    let mut roles = principal_of(&doc).roles;
    for role in changes {
        if grant {
            if !roles.contains(&role) {
                roles.push(role);
            }
        } else {
            roles.retain(|r| *r != role);
        }
    }
    doc.insert("roles", roles_to_bson(&roles));
    let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
    commit(node, command, |w| {
        w.emit("u", USERS_NS, doc, Some(doc! {"_id": id}))
    })
    .await
}

/// `usersInfo`.
pub(super) fn users_info(
    node: &Node,
    session: &Session,
    db: &str,
    command: &Document,
) -> Result<Document, CommandError> {
    let wanted: Vec<(String, String)> = match command.get("usersInfo") {
        Some(Bson::String(name)) => vec![(db.to_owned(), name.clone())],
        Some(Bson::Document(d)) if d.contains_key("user") => vec![(
            d.get_str("db").unwrap_or(db).to_owned(),
            d.get_str("user").unwrap_or_default().to_owned(),
        )],
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Bson::String(name) => Some((db.to_owned(), name.clone())),
                Bson::Document(d) => Some((
                    d.get_str("db").unwrap_or(db).to_owned(),
                    d.get_str("user").ok()?.to_owned(),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let all_of_db = wanted.is_empty();
    if node.opts.auth && !session.principals.iter().any(|p| p.user == "__system") {
        let own = |(d, u): &(String, String)| {
            session
                .principals
                .iter()
                .any(|p| &p.db == d && &p.user == u)
        };
        let may_view = |d: &str| {
            session
                .principals
                .iter()
                .any(|p| p.allows(Action::ViewUser, &Resource::Db(d.to_owned())))
        };
        let allowed = if all_of_db {
            may_view(db)
        } else {
            wanted.iter().all(|w| own(w) || may_view(&w.0))
        };
        if !allowed {
            return Err(if session.principals.is_empty() {
                CommandError::new(
                    Code::Unauthorized,
                    "command usersInfo requires authentication",
                )
            } else {
                CommandError::new(
                    Code::Unauthorized,
                    format!("not authorized on {db} to execute command {{ usersInfo: ... }}"),
                )
            });
        }
    }
    let show_credentials = command.get_bool("showCredentials").unwrap_or(false);
    let inner = node.lock();
    let mut users = Vec::new();
    if let Some(collection) = inner.data.collection("admin", "system.users") {
        for raw in collection.documents() {
            let Ok(doc) = raw.to_document() else { continue };
            let user = doc.get_str("user").unwrap_or_default().to_owned();
            let user_db = doc.get_str("db").unwrap_or_default().to_owned();
            let include = if all_of_db {
                user_db == db
            } else {
                wanted.iter().any(|(d, u)| *d == user_db && *u == user)
            };
            if !include {
                continue;
            }
            let mut shown = doc! {
                "_id": doc.get("_id").cloned().unwrap_or(Bson::Null),
                "userId": doc.get("userId").cloned().unwrap_or(Bson::Null),
                "user": user,
                "db": user_db,
                "roles": doc.get("roles").cloned().unwrap_or(Bson::Array(vec![])),
                "mechanisms": mechanisms_of(&doc),
            };
            if show_credentials {
                shown.insert(
                    "credentials",
                    doc.get("credentials").cloned().unwrap_or(Bson::Null),
                );
            }
            users.push(Bson::Document(shown));
        }
    }
    Ok(doc! {"users": users})
}
