//! Real local services for tests, benches and the demo.
//!
//! Every test that needs PostgreSQL, OpenBao, the AWS API or MongoDB gets a
//! private instance from here: its own temporary directory, its own free
//! ports on 127.0.0.1, TLS with a throw-away CA ([`LabPki`]) wherever the
//! service speaks TLS, and a process that is stopped (then killed) when the
//! handle is dropped — and killed by the kernel if the test process dies
//! first. Start-up waits on a readiness condition with a generous deadline,
//! never on a fixed sleep. If a test panics, the service's log tail is
//! printed, so the failure explains itself.
//!
//! | service | type | readiness |
//! |---|---|---|
//! | PostgreSQL (`initdb` + `postgres`, SCRAM, TLS) | [`Postgres`] | `postmaster.pid` says `ready` and the port accepts |
//! | OpenBao (`bao server`, raft storage, TLS, uninitialised) | [`OpenBao`] | "server started" logged and the port accepts |
//! | AWS API emulator (`moto_server`) | [`Moto`] | "Running on" logged and the port accepts |
//! | MongoDB member (`mongod`, else `mongo-sim`) | [`MongoMember`] | the port accepts |
//!
//! Programs are found by a [`Toolbox`], built from the environment the
//! caller hands in (the library reads no environment variables itself).
//! When a program is missing, starting fails with [`Error::ToolMissing`],
//! whose message says how to install it: tests never skip silently.
//!
//! PostgreSQL refuses to run as root; when the lab runs as root (as CI does)
//! it runs `initdb` and `postgres` as the `postgres` system user.
//!
//! # Example
//!
//! ```no_run
//! let tools = ha_lab::Toolbox::discover(std::env::vars_os());
//! let pki = ha_lab::LabPki::new()?;
//! let pg = ha_lab::Postgres::start(&tools, &pki, Default::default())?;
//! println!("postgres on {}:{} (CA {})", pg.host(), pg.port(), pg.ca_file().display());
//! # Ok::<(), ha_lab::Error>(())
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod error;
mod mongo;
mod moto;
mod openbao;
mod pki;
mod postgres;
mod process;
mod tools;

pub use config::{LAB_SECRETS, LabHosts, lab_ha_toml, members_toml};
pub use error::Error;
pub use mongo::{MongoMember, MongoMemberOptions, MongoTls, TlsMode};
pub use moto::{MOTO_ACCESS_KEY_ID, MOTO_REGION, MOTO_SECRET_ACCESS_KEY, Moto};
pub use openbao::{OpenBao, OpenBaoProcess};
pub use pki::{LAB_CLIENT_UNIT, LAB_HOST_UNIT, LAB_ORGANIZATION, LabPki};
pub use postgres::{Postgres, PostgresOptions};
pub use process::{free_port, random_password, write_executable};
pub use tools::{INSTALL_HINT, MongoImpl, TOOLS_DIR_IN_WORKSPACE, Toolbox};
