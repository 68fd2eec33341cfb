//! mongo-sim's test suite: the conformance facts it relies on (run against
//! real mongod too when MONGOD_BIN is set), a three-member TLS + x509 set
//! with failover driven by the Rust driver, the same set driven by pymongo,
//! and hostile input.

mod cluster;
mod conformance;
mod data;
mod hostile;
mod load;
mod profile36;
mod pymongo;
mod sim_only;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use bson::{Document, doc};
use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Toolbox};
use mongodb::Client;
use mongodb::options::{ClientOptions, ServerAddress, Tls, TlsOptions};

/// The lab's tools, with this package's own `mongo-sim` binary (a real
/// mongod still wins when MONGOD_BIN or a mongod on PATH exists).
pub(crate) fn tools() -> Toolbox {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    vars.push((
        "CIRCLE_HA_TEST_MONGO_SIM".into(),
        env!("CARGO_BIN_EXE_mongo-sim").into(),
    ));
    Toolbox::discover(vars)
}

/// Options for a member with TLS required and x509 cluster auth.
pub(crate) fn secure_options(pki: &LabPki, set: &str) -> MongoMemberOptions {
    MongoMemberOptions::secure(pki, set)
}

/// Arguments only the simulator takes (none for real mongod).
pub(crate) fn sim_args() -> Vec<OsString> {
    Vec::new()
}

/// A plain member (no TLS, no auth).
pub(crate) fn plain_options(set: Option<&str>) -> MongoMemberOptions {
    MongoMemberOptions {
        replica_set: set.map(str::to_owned),
        extra_args: sim_args(),
        ..MongoMemberOptions::default()
    }
}

/// A client for one member, direct connection.
pub(crate) async fn direct(
    member: &MongoMember,
    tls: Option<&LabPki>,
    credentials: Option<(&str, &str)>,
) -> Client {
    let mut options = ClientOptions::builder()
        .hosts(vec![ServerAddress::Tcp {
            host: "localhost".to_owned(),
            port: Some(member.port()),
        }])
        .direct_connection(true)
        .server_selection_timeout(Duration::from_secs(30))
        .build();
    if let Some(pki) = tls {
        options.tls = Some(Tls::Enabled(
            TlsOptions::builder().ca_file_path(pki.ca_file()).build(),
        ));
    }
    if let Some((user, password)) = credentials {
        options.credential = Some(
            mongodb::options::Credential::builder()
                .username(user.to_owned())
                .password(password.to_owned())
                .source("admin".to_owned())
                .build(),
        );
    }
    Client::with_options(options).unwrap()
}

/// Runs a command on `admin` and returns the reply or the server's error.
pub(crate) async fn admin(
    client: &Client,
    command: Document,
) -> Result<Document, mongodb::error::Error> {
    client.database("admin").run_command(command).await
}

/// The server error code of a failed command.
pub(crate) fn code(error: &mongodb::error::Error) -> Option<i32> {
    match *error.kind {
        mongodb::error::ErrorKind::Command(ref e) => Some(e.code),
        _ => None,
    }
}

/// Polls `check` until it is true or `deadline` passes.
pub(crate) async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The member's hello reply.
pub(crate) async fn hello(client: &Client) -> Option<Document> {
    admin(client, doc! {"hello": 1}).await.ok()
}
