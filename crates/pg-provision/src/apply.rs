//! Carrying out a plan.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use secrecy::{ExposeSecret as _, SecretString};

use crate::connect::{Login, Server};
use crate::error::describe_pg_error;
use crate::observe::PARALLELISM;
use crate::sql::quote_literal;
use crate::{Desired, Error, Plan, Step};

/// First PostgreSQL version that stores SCRAM-SHA-256 verifiers.
const SCRAM_SINCE: i32 = 100000;

/// Applies `plan`, logged in as `admin`. Refuses if the plan has blockers.
///
/// Role steps run first, in order, on one connection. Databases are then
/// created concurrently (PostgreSQL allows that; each `CREATE DATABASE`
/// runs outside a transaction on its own connection), owners are fixed, and
/// extensions are created concurrently across databases. Passwords are sent
/// as verifiers computed here (SCRAM-SHA-256, or MD5 before PostgreSQL 10),
/// as `psql`'s `\password` does, so the clear text never reaches the server
/// or its logs.
///
/// Returns the steps applied, in plan order. On failure, the steps before
/// the failing one are applied; running observe, plan and apply again
/// continues from there.
pub async fn apply(
    plan: &Plan,
    desired: &Desired,
    server: &Server,
    admin: &Login,
    admin_database: &str,
) -> Result<Vec<Step>, Error> {
    if plan.is_blocked() {
        return Err(Error::Blocked {
            server: server.describe(),
            problems: plan.blockers.clone(),
        });
    }
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let client = server.connect(admin, admin_database).await?;
    // The password's format follows the server that will store it.
    let server_version_num: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|source| Error::Observe {
            what: "the server version".to_owned(),
            server: server.describe(),
            detail: describe_pg_error(&source),
            source,
        })?
        .get(0);
    let verifier = if server_version_num >= SCRAM_SINCE {
        postgres_protocol::password::scram_sha_256(desired.app_password.expose_secret().as_bytes())
    } else {
        postgres_protocol::password::md5(
            desired.app_password.expose_secret().as_bytes(),
            &desired.app_role,
        )
    };
    let password_sql = SecretString::from(quote_literal(&verifier));
    let password_sql = password_sql.expose_secret();
    let server_name = server.describe();
    let server_name = server_name.as_str();

    // Roles and membership, in order.
    for step in plan.steps.iter().filter(|s| {
        matches!(
            s,
            Step::CreateRole { .. } | Step::SetPassword { .. } | Step::GrantRole { .. }
        )
    }) {
        run_step(&client, step, password_sql, server_name).await?;
    }

    // Databases, concurrently: the creations are dealt round-robin to at
    // most PARALLELISM connections, each working through its share in turn.
    let creates: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::CreateDatabase { .. }))
        .collect();
    let n_connections = creates.len().min(PARALLELISM);
    let mut shares: Vec<Vec<&Step>> = vec![Vec::new(); n_connections];
    for (i, step) in creates.into_iter().enumerate() {
        shares[i % n_connections.max(1)].push(step);
    }
    let results = futures_util::future::join_all(shares.into_iter().map(|share| async move {
        let client = server.connect(admin, admin_database).await?;
        for step in share {
            run_step(&client, step, password_sql, server_name).await?;
        }
        Ok::<(), Error>(())
    }))
    .await;
    results.into_iter().collect::<Result<Vec<()>, Error>>()?;

    for step in plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::SetDatabaseOwner { .. }))
    {
        run_step(&client, step, password_sql, server_name).await?;
    }

    // Extensions, grouped by database, concurrently across databases.
    let mut by_database: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    for step in &plan.steps {
        if let Some(database) = step.database() {
            by_database.entry(database).or_default().push(step);
        }
    }
    let results: Vec<Result<(), Error>> = futures_util::stream::iter(by_database)
        .map(|(database, steps)| async move {
            let client = server.connect(admin, database).await?;
            for step in steps {
                run_step(&client, step, password_sql, server_name).await?;
            }
            Ok(())
        })
        .buffer_unordered(PARALLELISM)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, Error>>()?;

    Ok(plan.steps.clone())
}

/// Runs one step's SQL. The statement text (which may hold the password
/// verifier) never goes into the error: the step's display form does.
async fn run_step(
    client: &tokio_postgres::Client,
    step: &Step,
    password_sql: &str,
    server: &str,
) -> Result<(), Error> {
    client
        .batch_execute(&step.sql(password_sql))
        .await
        .map_err(|source| Error::Step {
            step: step.to_string(),
            server: server.to_owned(),
            detail: describe_pg_error(&source),
            source,
        })
}

/// The whole `pg-provision apply` in one call: observes `server` as
/// `admin`, plans what `desired` still needs, refuses (before changing
/// anything) when the plan has blockers, and applies it unless `dry_run`.
/// Returns the plan: what was done, or with `dry_run` what would be.
pub async fn provision(
    server: &Server,
    admin: &Login,
    admin_database: &str,
    desired: &Desired,
    dry_run: bool,
) -> Result<Plan, Error> {
    desired.validate()?;
    let observed = crate::observe(server, admin, admin_database, desired).await?;
    let plan = crate::plan(desired, &observed);
    if plan.is_blocked() {
        return Err(Error::Blocked {
            server: server.describe(),
            problems: plan.blockers.clone(),
        });
    }
    if !dry_run {
        apply(&plan, desired, server, admin, admin_database).await?;
    }
    Ok(plan)
}
