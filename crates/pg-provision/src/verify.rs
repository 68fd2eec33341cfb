//! Checking the result the way the Services machine will use it: logged in
//! as the app role.

use futures_util::StreamExt as _;
use ha_plan::Document;
use schemars::JsonSchema;
use serde::Serialize;

use crate::connect::{Login, Server, SslMode};
use crate::error::describe_pg_error;
use crate::observe::PARALLELISM;
use crate::{DatabaseSpec, Error};

/// What the app role finds in one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseCheck {
    /// The database.
    pub database: String,
    /// Every problem found; empty when all is well.
    pub problems: Vec<String>,
}

/// `pg-provision verify`: what the app role found, database by database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct VerifyFindings {
    /// Whether every database passed.
    pub healthy: bool,
    /// `host:port`.
    pub server: String,
    /// The app role checked as.
    pub user: String,
    /// One entry per database, in the desired order.
    pub databases: Vec<DatabaseFinding>,
    /// Things the operator should know (loose TLS …).
    pub warnings: Vec<String>,
    /// The tool named in the summary line.
    #[serde(skip)]
    pub tool: String,
}

/// One database of [`VerifyFindings`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DatabaseFinding {
    /// The database.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Every problem found.
    pub problems: Vec<String>,
}

impl Document for VerifyFindings {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for warning in &self.warnings {
            text.push_str(&format!("warning: {warning}\n"));
        }
        for database in &self.databases {
            if database.problems.is_empty() {
                text.push_str(&format!("ok    {}\n", database.name));
            }
            for problem in &database.problems {
                text.push_str(&format!("FAIL  {}: {problem}\n", database.name));
            }
        }
        let summary = if self.healthy {
            format!(
                "verified as {} on {}: all {} databases reachable with their extensions",
                self.user,
                self.server,
                self.databases.len()
            )
        } else {
            format!(
                "problems found as {} on {}: {} problem(s)",
                self.user,
                self.server,
                self.databases
                    .iter()
                    .map(|d| d.problems.len())
                    .sum::<usize>()
            )
        };
        text.push_str(&format!("{}: {summary}\n", self.tool));
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// The result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// `host:port`.
    pub server: String,
    /// One entry per database, in the desired order.
    pub databases: Vec<DatabaseCheck>,
}

impl Verification {
    /// Whether every database passed.
    pub fn is_healthy(&self) -> bool {
        self.databases.iter().all(|d| d.problems.is_empty())
    }

    /// The verification as `pg-provision verify` shows it, for the app
    /// role `user`: JSON `{healthy, server, user, databases: [{name, ok,
    /// problems}], warnings}` and one line per database; `warnings` come
    /// first.
    pub fn to_findings(&self, tool: &str, user: &str, warnings: &[String]) -> VerifyFindings {
        VerifyFindings {
            healthy: self.is_healthy(),
            server: self.server.clone(),
            user: user.to_owned(),
            databases: self
                .databases
                .iter()
                .map(|d| DatabaseFinding {
                    name: d.database.clone(),
                    ok: d.problems.is_empty(),
                    problems: d.problems.clone(),
                })
                .collect(),
            warnings: warnings.to_vec(),
            tool: tool.to_owned(),
        }
    }

    /// Every problem, prefixed with its database.
    pub fn problems(&self) -> Vec<String> {
        self.databases
            .iter()
            .flat_map(|d| {
                d.problems
                    .iter()
                    .map(move |p| format!("database {}: {p}", d.database))
            })
            .collect()
    }
}

/// Logs in as `app` to every database in `databases` (concurrently) and
/// checks that it connects (over TLS unless `sslmode=disable`), that the
/// database has its extensions, and that the app role may create objects in
/// it and in its `public` schema, as CircleCI's migrations do.
pub async fn verify(server: &Server, app: &Login, databases: &[DatabaseSpec]) -> Verification {
    let checks = futures_util::stream::iter(databases)
        .map(|spec| async move {
            DatabaseCheck {
                database: spec.name.clone(),
                problems: check_database(server, app, spec).await,
            }
        })
        .buffered(PARALLELISM)
        .collect()
        .await;
    Verification {
        server: server.describe(),
        databases: checks,
    }
}

async fn check_database(server: &Server, app: &Login, spec: &DatabaseSpec) -> Vec<String> {
    let client = match server.connect(app, &spec.name).await {
        Ok(client) => client,
        Err(Error::Connect { detail, .. }) => return vec![format!("cannot connect: {detail}")],
        Err(other) => return vec![format!("cannot connect: {other}")],
    };
    let row = match client
        .query_one(
            "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                    has_database_privilege(current_database(), 'CREATE'),
                    has_schema_privilege('public', 'CREATE'),
                    coalesce((SELECT array_agg(extname::text) FROM pg_extension), '{}')",
            &[],
        )
        .await
    {
        Ok(row) => row,
        Err(e) => return vec![format!("cannot inspect: {}", describe_pg_error(&e))],
    };
    let mut problems = Vec::new();
    let ssl: bool = row.get(0);
    if !ssl && server.sslmode != SslMode::Disable {
        problems.push("the connection is not encrypted".to_owned());
    }
    if !row.get::<_, bool>(1) {
        problems.push(format!("role {} may not create schemas here", app.user));
    }
    if !row.get::<_, bool>(2) {
        problems.push(format!(
            "role {} may not create objects in schema public",
            app.user
        ));
    }
    let installed: Vec<String> = row.get(3);
    for extension in &spec.extensions {
        if !installed.contains(extension) {
            problems.push(format!("extension {extension} is missing"));
        }
    }
    problems
}
