//! Reading the server's current state. Read-only.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;
use tokio_postgres::Client;

use crate::connect::{Login, Server};
use crate::error::describe_pg_error;
use crate::{Desired, Error};

/// How many connections observe and apply open at once.
pub(crate) const PARALLELISM: usize = 4;

/// Facts about the admin role the tool logs in as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminFacts {
    /// Its name.
    pub name: String,
    /// `rolsuper`.
    pub superuser: bool,
    /// `rolcreatedb`.
    pub create_db: bool,
    /// `rolcreaterole`.
    pub create_role: bool,
    /// Whether it is a member of the app role (needed to create databases
    /// owned by it unless superuser).
    pub member_of_app_role: bool,
    /// Whether it is a member of Amazon RDS's `rds_superuser`, which may
    /// create the supported extensions on any version.
    pub rds_superuser: bool,
}

/// Whether the app role's password is the desired one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordState {
    /// Logging in with the desired password worked.
    Current,
    /// The server refused the desired password.
    Different,
    /// The check could not tell (e.g. `pg_hba.conf` refuses the app role
    /// from here); the reason says why.
    Unknown(String),
}

/// Facts about the app role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRoleFacts {
    /// `rolcanlogin`.
    pub can_login: bool,
    /// Whether its password is the desired one.
    pub password: PasswordState,
}

/// Facts about one of the desired databases that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseFacts {
    /// Its owner's name.
    pub owner: String,
    /// Installed extensions, or why they could not be read.
    pub extensions: Result<BTreeSet<String>, String>,
}

/// The server's current state, as far as the desired state cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `host:port`.
    pub server: String,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: i32,
    /// The admin role.
    pub admin: AdminFacts,
    /// The app role, if it exists.
    pub app_role: Option<AppRoleFacts>,
    /// The desired databases that exist, by name.
    pub databases: BTreeMap<String, DatabaseFacts>,
    /// Extensions the server's packages provide (`pg_available_extensions`).
    pub available_extensions: BTreeSet<String>,
}

/// Reads everything [`crate::plan`] needs, logged in as `admin` to
/// `admin_database` (and to each existing desired database, to list its
/// extensions). Also tries to log in as the app role with the desired
/// password, to know whether it must be set.
pub async fn observe(
    server: &Server,
    admin: &Login,
    admin_database: &str,
    desired: &Desired,
) -> Result<Observed, Error> {
    let client = server.connect(admin, admin_database).await?;
    let read = |what: &str| {
        let what = what.to_owned();
        let server = server.describe();
        move |source: tokio_postgres::Error| Error::Observe {
            what,
            server,
            detail: describe_pg_error(&source),
            source,
        }
    };

    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(read("the server version"))?;
    let server_version_num: i32 = row.get(0);

    let row = client
        .query_one(
            "SELECT r.rolname::text, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
                    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)
                      AND pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = $1), 'MEMBER'),
                    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_superuser')
                      AND pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = 'rds_superuser'), 'MEMBER')
               FROM pg_roles r WHERE r.rolname = current_user",
            &[&desired.app_role],
        )
        .await
        .map_err(read("the admin role's attributes"))?;
    let admin_facts = AdminFacts {
        name: row.get(0),
        superuser: row.get(1),
        create_db: row.get(2),
        create_role: row.get(3),
        member_of_app_role: row.get::<_, Option<bool>>(4).unwrap_or(false),
        rds_superuser: row.get::<_, Option<bool>>(5).unwrap_or(false),
    };

    let names: Vec<&str> = desired.databases.iter().map(|d| d.name.as_str()).collect();
    let rows = client
        .query(
            "SELECT datname::text, pg_get_userbyid(datdba)::text, datallowconn
               FROM pg_database WHERE datname = ANY($1)",
            &[&names],
        )
        .await
        .map_err(read("the list of databases"))?;
    let existing: Vec<(String, String, bool)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();

    let rows = client
        .query("SELECT name::text FROM pg_available_extensions", &[])
        .await
        .map_err(read("the available extensions"))?;
    let available_extensions = rows.iter().map(|row| row.get(0)).collect();

    let row = client
        .query_opt(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&desired.app_role],
        )
        .await
        .map_err(read("the app role"))?;
    let app_role = match row {
        None => None,
        Some(row) => {
            let can_login: bool = row.get(0);
            let password = if can_login {
                let probe_database = existing
                    .iter()
                    .find(|(_, _, allow)| *allow)
                    .map(|(name, _, _)| name.as_str())
                    .unwrap_or(admin_database);
                check_password(server, desired, probe_database).await
            } else {
                PasswordState::Unknown("the role cannot log in".to_owned())
            };
            Some(AppRoleFacts {
                can_login,
                password,
            })
        }
    };
    drop(client);

    let databases = futures_util::stream::iter(existing)
        .map(|(name, owner, allow_connections)| async move {
            let extensions = if allow_connections {
                list_extensions(server, admin, &name).await
            } else {
                Err("the database does not allow connections (datallowconn is false)".to_owned())
            };
            (name, DatabaseFacts { owner, extensions })
        })
        .buffer_unordered(PARALLELISM)
        .collect::<BTreeMap<_, _>>()
        .await;

    Ok(Observed {
        server: server.describe(),
        server_version_num,
        admin: admin_facts,
        app_role,
        databases,
        available_extensions,
    })
}

async fn check_password(server: &Server, desired: &Desired, database: &str) -> PasswordState {
    let login = Login {
        user: desired.app_role.clone(),
        password: desired.app_password.clone(),
    };
    match server.connect(&login, database).await {
        Ok(_) => PasswordState::Current,
        Err(Error::Connect { source, detail, .. }) => {
            if source.code().map(|c| c.code()) == Some("28P01") {
                PasswordState::Different
            } else {
                PasswordState::Unknown(detail)
            }
        }
        Err(other) => PasswordState::Unknown(other.to_string()),
    }
}

async fn list_extensions(
    server: &Server,
    admin: &Login,
    database: &str,
) -> Result<BTreeSet<String>, String> {
    let client: Client = server
        .connect(admin, database)
        .await
        .map_err(|e| e.to_string())?;
    let rows = client
        .query("SELECT extname::text FROM pg_extension", &[])
        .await
        .map_err(|e| describe_pg_error(&e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
