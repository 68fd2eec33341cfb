//! PostgreSQL provisioning for circle-ha: the databases CircleCI Server 2.0
//! needs, their extensions, and the app role that owns them.
//!
//! The runbook asks for eight databases (`circle` with `pgcrypto` and
//! `uuid-ossp`; `conductor_production`, `contexts_service_production`,
//! `cron_service_production`, `domain`, `federations`, `permissions` and
//! `vms` with `uuid-ossp`) and a role `circle` the services log in as. This
//! crate brings a server to that state in three steps:
//!
//! 1. [`observe`] reads the server (roles, databases, extensions, whether the
//!    app role's password works) without changing anything;
//! 2. [`plan()`] computes the [`Step`]s that are missing — a pure function,
//!    printed by `--dry-run` — and any blockers (privileges or packages the
//!    admin lacks), all at once;
//! 3. [`apply`] runs the steps; each is safe to repeat, so after a success
//!    observe + plan is empty, and after a failure a new run continues.
//!
//! [`verify`] then logs in as the app role, as the Services machine will.
//!
//! It works with a superuser admin and with a managed-service admin that has
//! only CREATEDB and CREATEROLE (Amazon RDS style): it grants the app role
//! to the admin before creating databases owned by it, and relies on
//! PostgreSQL 13+'s trusted extensions (or RDS's `rds_superuser`). PostgreSQL
//! 9.5 syntax is respected (no `IF NOT EXISTS` on roles or databases: state
//! is read first). Identifiers are always quoted and literals escaped;
//! passwords are sent as SCRAM (or, before PostgreSQL 10, MD5) verifiers.
//!
//! It does not read configuration or environment, and never prints; the
//! `pg-provision` binary does that.
//!
//! # Example
//!
//! ```no_run
//! # async fn example(server: pg_provision::Server, admin: pg_provision::Login,
//! #                  app_password: secrecy::SecretString) -> Result<(), pg_provision::Error> {
//! let desired = pg_provision::Desired {
//!     app_role: "circle".to_owned(),
//!     app_password,
//!     databases: pg_provision::default_databases(),
//! };
//! desired.validate()?;
//! let observed = pg_provision::observe(&server, &admin, "postgres", &desired).await?;
//! let plan = pg_provision::plan(&desired, &observed);
//! print!("{plan}");
//! pg_provision::apply(&plan, &desired, &server, &admin, "postgres").await?;
//! # Ok(()) }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use {secrecy, tokio_postgres};

mod apply;
mod connect;
mod error;
mod observe;
mod plan;
pub mod scan;
mod spec;
pub mod sql;
mod verify;

pub use apply::{apply, provision};
pub use connect::{Login, Server, SslMode};
pub use error::{Error, describe_pg_error};
pub use observe::{AdminFacts, AppRoleFacts, DatabaseFacts, Observed, PasswordState, observe};
pub use plan::{Plan, Step, plan};
pub use spec::{DatabaseSpec, Desired, check_names, default_databases};
pub use verify::{DatabaseCheck, DatabaseFinding, Verification, VerifyFindings, verify};
