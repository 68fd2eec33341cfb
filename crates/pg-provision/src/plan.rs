//! The difference between desired and observed state, as steps. Pure.

use std::fmt;

use crate::observe::{Observed, PasswordState};
use crate::sql::quote_ident;
use crate::{DatabaseSpec, Desired};

/// The first PostgreSQL version whose `pgcrypto` and `uuid-ossp` are
/// "trusted": a non-superuser with CREATE on the database may install them.
const TRUSTED_EXTENSIONS_SINCE: i32 = 130000;

/// One change to make. Every step is safe to repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `CREATE DATABASE … OWNER …` (UTF-8, from `template0`).
    CreateDatabase {
        /// The database.
        database: String,
        /// Its owner (the app role).
        owner: String,
    },
    /// `CREATE EXTENSION IF NOT EXISTS …`, connected to the database.
    CreateExtension {
        /// The database.
        database: String,
        /// The extension.
        extension: String,
    },
    /// `CREATE ROLE … LOGIN PASSWORD …`.
    CreateRole {
        /// The role.
        role: String,
    },
    /// `GRANT role TO member`: lets a non-superuser admin create databases
    /// owned by the app role (PostgreSQL requires membership).
    GrantRole {
        /// The role granted.
        role: String,
        /// Who receives it.
        member: String,
    },
    /// `ALTER DATABASE … OWNER TO …`.
    SetDatabaseOwner {
        /// The database.
        database: String,
        /// The desired owner.
        owner: String,
        /// The current owner.
        current: String,
    },
    /// `ALTER ROLE … LOGIN PASSWORD …`.
    SetPassword {
        /// The role.
        role: String,
        /// Why: the password differs, the role could not log in, or the
        /// check could not tell.
        reason: String,
    },
}

impl ha_plan::Change for Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::CreateDatabase { .. } => "create-database",
            Step::CreateExtension { .. } => "create-extension",
            Step::CreateRole { .. } => "create-role",
            Step::GrantRole { .. } => "grant-role",
            Step::SetDatabaseOwner { .. } => "set-database-owner",
            Step::SetPassword { .. } => "set-password",
        }
    }

    fn target(&self) -> String {
        match self {
            Step::CreateDatabase { database, .. } | Step::SetDatabaseOwner { database, .. } => {
                format!("database {database}")
            }
            Step::CreateExtension {
                database,
                extension,
            } => format!("extension {extension} in database {database}"),
            Step::CreateRole { role } | Step::SetPassword { role, .. } => format!("role {role}"),
            Step::GrantRole { role, member } => format!("role {role} to {member}"),
        }
    }
}

impl Step {
    /// The database the step must run in, if not the admin's maintenance
    /// database.
    pub(crate) fn database(&self) -> Option<&str> {
        match self {
            Step::CreateExtension { database, .. } => Some(database),
            _ => None,
        }
    }

    /// The SQL, with `password_sql` in place of the password (a verifier
    /// literal when applying, `<redacted>` when displaying).
    pub(crate) fn sql(&self, password_sql: &str) -> String {
        match self {
            Step::CreateDatabase { database, owner } => format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'",
                quote_ident(database),
                quote_ident(owner)
            ),
            Step::CreateExtension { extension, .. } => {
                format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(extension))
            }
            Step::CreateRole { role } => {
                format!(
                    "CREATE ROLE {} LOGIN PASSWORD {password_sql}",
                    quote_ident(role)
                )
            }
            Step::GrantRole { role, member } => {
                format!("GRANT {} TO {}", quote_ident(role), quote_ident(member))
            }
            Step::SetDatabaseOwner {
                database, owner, ..
            } => format!(
                "ALTER DATABASE {} OWNER TO {}",
                quote_ident(database),
                quote_ident(owner)
            ),
            Step::SetPassword { role, .. } => {
                format!(
                    "ALTER ROLE {} LOGIN PASSWORD {password_sql}",
                    quote_ident(role)
                )
            }
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sql = self.sql("<redacted>");
        match self {
            Step::CreateExtension { database, .. } => write!(f, "{sql} (in database {database})"),
            Step::SetDatabaseOwner { current, .. } => write!(f, "{sql} (owner now: {current})"),
            Step::SetPassword { reason, .. } => write!(f, "{sql} ({reason})"),
            _ => f.write_str(&sql),
        }
    }
}

/// What must change, in order; what forbids changing it (missing
/// privileges or packages: `apply` then refuses to start); what the
/// operator should know (a password that could not be checked from here is
/// reported, not reset on every run).
pub type Plan = ha_plan::Plan<Step>;

/// Computes the steps that bring `observed` to `desired`. Pure: no I/O, no
/// clock.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut warnings = Vec::new();
    let admin = &observed.admin;
    let app = &desired.app_role;
    let mut steps = Vec::new();
    let mut blockers = Vec::new();

    match &observed.app_role {
        None => {
            steps.push(Step::CreateRole { role: app.clone() });
            if !admin.superuser && !admin.create_role {
                blockers.push(format!(
                    "role {app} does not exist and {} may not create roles: grant it CREATEROLE \
                     (or run as a superuser)",
                    admin.name
                ));
            }
        }
        Some(role) => {
            let reason = if !role.can_login {
                Some("the role cannot log in".to_owned())
            } else {
                match &role.password {
                    PasswordState::Current => None,
                    PasswordState::Different => {
                        Some("the server refused the configured password".to_owned())
                    }
                    PasswordState::Unknown(why) => {
                        // Setting it again would not make the next check
                        // conclusive: every run would "change" it.
                        warnings.push(format!(
                            "could not check role {app}'s password from here ({why}); it was \
                             left as it is. Check that the Services machine can log in \
                             (pg-provision verify from there)"
                        ));
                        None
                    }
                }
            };
            if let Some(reason) = reason {
                steps.push(Step::SetPassword {
                    role: app.clone(),
                    reason,
                });
                if !admin.superuser && !admin.create_role {
                    blockers.push(format!(
                        "the password of role {app} must be set and {} may not alter roles: grant \
                         it CREATEROLE (or run as a superuser)",
                        admin.name
                    ));
                }
            }
        }
    }

    let missing_databases: Vec<&DatabaseSpec> = desired
        .databases
        .iter()
        .filter(|d| !observed.databases.contains_key(&d.name))
        .collect();
    let wrong_owner: Vec<(&DatabaseSpec, &str)> = desired
        .databases
        .iter()
        .filter_map(|d| {
            observed
                .databases
                .get(&d.name)
                .filter(|facts| &facts.owner != app)
                .map(|facts| (d, facts.owner.as_str()))
        })
        .collect();

    let mut extension_steps = Vec::new();
    let may_create_extensions = admin.superuser
        || admin.rds_superuser
        || observed.server_version_num >= TRUSTED_EXTENSIONS_SINCE;
    for database in &desired.databases {
        let installed = match observed.databases.get(&database.name) {
            None => None,
            Some(facts) => match &facts.extensions {
                Ok(installed) => Some(installed),
                Err(why) => {
                    blockers.push(format!(
                        "cannot list the extensions of database {}: {why}",
                        database.name
                    ));
                    continue;
                }
            },
        };
        for extension in &database.extensions {
            if installed.is_some_and(|set| set.contains(extension)) {
                continue;
            }
            if !observed.available_extensions.contains(extension) {
                blockers.push(format!(
                    "extension {extension} (for database {}) is not installed on the server: \
                     install the PostgreSQL contrib package (Debian/Ubuntu: postgresql-contrib)",
                    database.name
                ));
            } else if !may_create_extensions {
                blockers.push(format!(
                    "extension {extension} in database {} needs a superuser on PostgreSQL {} \
                     (trusted extensions start with 13; on RDS, grant rds_superuser to {})",
                    database.name,
                    observed.server_version_num / 10000,
                    admin.name
                ));
            }
            extension_steps.push(Step::CreateExtension {
                database: database.name.clone(),
                extension: extension.clone(),
            });
        }
    }

    // Creating a database owned by the app role, handing one over to it, or
    // creating an extension in one (which needs CREATE on the database, held
    // by its owner) requires membership in the app role unless superuser.
    let needs_membership = !admin.superuser
        && !admin.member_of_app_role
        && (!missing_databases.is_empty()
            || !wrong_owner.is_empty()
            || !extension_steps.is_empty());
    if needs_membership {
        steps.push(Step::GrantRole {
            role: app.clone(),
            member: admin.name.clone(),
        });
        if !admin.create_role {
            blockers.push(format!(
                "{} must be a member of role {app} to create databases it owns, and may not \
                 grant that itself: run `GRANT \"{app}\" TO \"{}\"` as a superuser, or grant \
                 it CREATEROLE",
                admin.name, admin.name
            ));
        }
    }

    for database in &missing_databases {
        steps.push(Step::CreateDatabase {
            database: database.name.clone(),
            owner: app.clone(),
        });
    }
    if !missing_databases.is_empty() && !admin.superuser && !admin.create_db {
        blockers.push(format!(
            "databases {} do not exist and {} may not create databases: grant it CREATEDB (or \
             run as a superuser)",
            missing_databases
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            admin.name
        ));
    }
    for (database, current) in &wrong_owner {
        steps.push(Step::SetDatabaseOwner {
            database: database.name.clone(),
            owner: app.clone(),
            current: (*current).to_owned(),
        });
    }

    steps.extend(extension_steps);

    Plan {
        steps,
        blockers,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::plan;
    use crate::{AdminFacts, AppRoleFacts, Desired, Observed, PasswordState};

    #[test]
    fn a_password_that_cannot_be_checked_is_a_warning_not_a_change_every_run() {
        let desired = Desired {
            app_role: "circle".to_owned(),
            app_password: "pw".to_owned().into(),
            databases: Vec::new(),
        };
        let observed = |password| Observed {
            server: "pg:5432".to_owned(),
            server_version_num: 150000,
            admin: AdminFacts {
                name: "postgres".to_owned(),
                superuser: true,
                create_db: true,
                create_role: true,
                member_of_app_role: true,
                rds_superuser: false,
            },
            app_role: Some(AppRoleFacts {
                can_login: true,
                password,
            }),
            databases: BTreeMap::new(),
            available_extensions: BTreeSet::new(),
        };
        let unknown = plan(
            &desired,
            &observed(PasswordState::Unknown("pg_hba.conf rejects".to_owned())),
        );
        assert!(unknown.steps.is_empty(), "{unknown}");
        assert!(unknown.warnings[0].contains("pg_hba.conf rejects"));
        let different = plan(&desired, &observed(PasswordState::Different));
        assert_eq!(different.steps.len(), 1);
        assert!(different.warnings.is_empty());
    }
}
