//! circle-export against real PostgreSQL 15 and mongo-sim (or real mongod
//! with MONGOD_BIN): round trips of every BSON type and many PostgreSQL
//! types, damaged archives, and CircleCI's own archive layout.

mod audit;
mod damage;
mod hostile;
mod old_mongo;
mod oracle;
mod pg95;
mod resume;
mod roundtrip;
mod seal;
mod target;
mod vendor;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bson::{Document, RawDocumentBuf, doc};
use circle_export::{PgClient, PgConn};
use futures_util::TryStreamExt as _;
use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Postgres, PostgresOptions, Toolbox};
use mongo_rs_setup::{MemberSpec, Reach, SetSettings, SetSpec, TlsFiles, UserSpec};
use mongodb::Client;
use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use secrecy::{ExposeSecret as _, SecretString};

pub(crate) const HOSTILE: &str = "p'\"$@:/?#%&=+ \\wörd`;";

/// `client` as a restore target that is no replica set (inserts wait for
/// the default write concern).
pub(crate) fn standalone(client: &Client) -> circle_export::MongoConnection {
    circle_export::MongoConnection {
        client: client.clone(),
        replica_set: false,
    }
}

/// A plain restore of `archive` into these targets: nothing dropped, not
/// a dry run, two at a time, a 60 s failover wait.
pub(crate) fn restore_spec<'a>(
    archive: std::path::PathBuf,
    mongo: Option<&'a circle_export::MongoConnection>,
    postgres: Option<&'a PgClient>,
) -> circle_export::RestoreSpec<'a> {
    circle_export::RestoreSpec {
        archive,
        unsealing: None,
        mongo,
        postgres,
        drop: false,
        dry_run: false,
        parallel: 2,
        meter: circle_export::Meter::default(),
        failover_wait: Duration::from_secs(60),
    }
}

/// `manifest` made to describe `files` honestly (format, tool, every
/// file's size and SHA-256), as an attacker who recomputes them would.
pub(crate) fn honest_manifest(
    mut manifest: circle_export::Manifest,
    files: &[(&str, &[u8])],
) -> circle_export::Manifest {
    use sha2::Digest as _;
    manifest.format = circle_export::manifest::FORMAT;
    manifest.tool = "circle-export 0.0.0".to_owned();
    manifest.files = files
        .iter()
        .map(|(path, bytes)| circle_export::manifest::FileEntry {
            path: (*path).to_owned(),
            size: bytes.len() as u64,
            sha256: sha2::Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        })
        .collect();
    manifest
}

pub(crate) fn tools() -> Toolbox {
    Toolbox::discover(std::env::vars_os())
}

#[allow(clippy::print_stderr)]
pub(crate) fn progress(line: &str) {
    eprintln!("progress: {line}");
}

/// The old Services machine's MongoDB: one member, no auth, no TLS.
pub(crate) fn old_mongo() -> (MongoMember, Client) {
    let member = MongoMember::start(&tools(), MongoMemberOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let options = ClientOptions::builder()
        .hosts(vec![ServerAddress::Tcp {
            host: "localhost".to_owned(),
            port: Some(member.port()),
        }])
        .direct_connection(true)
        .server_selection_timeout(Duration::from_secs(30))
        .build();
    (member, Client::with_options(options).unwrap())
}

/// An export of these sources to `out`: no files, unsealed, two at a time.
pub(crate) fn export_spec<'a>(
    mongo: Option<circle_export::MongoSource<'a>>,
    postgres: Option<circle_export::PgSource<'a>>,
    out: &Path,
) -> circle_export::ExportSpec<'a> {
    circle_export::ExportSpec {
        mongo,
        postgres,
        encryption_keys: None,
        vault_data: None,
        danger_include_vault_init_output: false,
        out: out.to_owned(),
        seal: None,
        parallel: 2,
        meter: circle_export::Meter::default(),
        tool: "circle-export test".to_owned(),
    }
}

/// Exports database `db` of `client` alone to `out`.
pub(crate) async fn export_one_database(client: &Client, db: &str, out: &Path) {
    let reader = client.clone().into();
    let mongo = circle_export::MongoSource::Server {
        reader: &reader,
        databases: vec![db.to_owned()],
    };
    circle_export::export(export_spec(Some(mongo), None, out), &progress)
        .await
        .unwrap();
}

/// A new three-member replica set (TLS, x509 members, auth) bootstrapped
/// by mongo-rs-setup, and a replica-set client as circle-admin.
pub(crate) struct NewMongo {
    _members: Vec<MongoMember>,
    _pki: LabPki,
    pub client: Client,
}

pub(crate) async fn new_mongo() -> NewMongo {
    let pki = LabPki::new().unwrap();
    let members: Vec<MongoMember> = (0..3)
        .map(|_| {
            MongoMember::start(&tools(), MongoMemberOptions::secure(&pki, "circle"))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let user = |name: &str| UserSpec {
        name: name.to_owned(),
        password: SecretString::from(format!("{HOSTILE}{name}")),
    };
    let spec = SetSpec {
        name: "circle".to_owned(),
        members: members.iter().map(|m| MemberSpec::new(m.host())).collect(),
        settings: SetSettings {
            election_timeout_millis: Some(2000),
            heartbeat_interval_millis: Some(500),
        },
        site_admin: user("siteUserAdmin"),
        admin: user("circle-admin"),
        app: user("circle"),
        app_databases: vec!["circle_ghe".to_owned()],
        reach: Reach {
            tls: Some(TlsFiles {
                ca_file: pki.ca_file(),
                certificate_key_file: None,
            }),
            ..Reach::default()
        },
        wait_timeout: Duration::from_secs(120),
    };
    mongo_rs_setup::apply(&mongo_rs_setup::Session::new(&spec), &|_| {})
        .await
        .unwrap();
    let options = ClientOptions::builder()
        .hosts(
            members
                .iter()
                .map(|m| ServerAddress::Tcp {
                    host: "localhost".to_owned(),
                    port: Some(m.port()),
                })
                .collect::<Vec<_>>(),
        )
        .repl_set_name("circle".to_owned())
        .tls(Tls::Enabled(
            TlsOptions::builder().ca_file_path(pki.ca_file()).build(),
        ))
        .credential(
            Credential::builder()
                .username(spec.admin.name.clone())
                .password(spec.admin.password.expose_secret().to_owned())
                .source("admin".to_owned())
                .build(),
        )
        .server_selection_timeout(Duration::from_secs(60))
        .build();
    NewMongo {
        _members: members,
        _pki: pki,
        client: Client::with_options(options).unwrap(),
    }
}

/// A PostgreSQL 15 with TLS, and how to reach it as `user`.
pub(crate) struct Pg {
    pub server: Postgres,
    _pki: LabPki,
}

impl Pg {
    pub(crate) fn start() -> Pg {
        let pki = LabPki::new().unwrap();
        let server = Postgres::start(&tools(), &pki, PostgresOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        Pg { server, _pki: pki }
    }

    /// A URI for `user` (percent-encoding the password).
    pub(crate) fn uri(&self, user: &str, password: &str) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "postgresql://{}:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
            enc(user),
            enc(password),
            self.server.port(),
            enc(&self.server.ca_file().display().to_string())
        )
    }

    pub(crate) fn superuser_client(&self) -> PgClient {
        let uri = self.uri(
            self.server.superuser(),
            self.server.superuser_password().expose_secret(),
        );
        PgClient::new(
            PgConn::parse_uri(&uri).unwrap(),
            Some(self.server.bin_dir().to_owned()),
        )
        .unwrap()
    }

    /// Runs SQL as the superuser; panics with psql's stderr on failure.
    pub(crate) fn psql(&self, db: &str, sql: &str) -> String {
        let output = Command::new(self.server.bin_dir().join("psql"))
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env_clear()
            .envs(self.server.libpq_env(db).unwrap())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql on {db} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The target as pg-provision leaves it: role `circle` owning
    /// `databases`, each with pgcrypto and uuid-ossp.
    pub(crate) fn provision(&self, databases: &[&str]) -> PgClient {
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE circle LOGIN PASSWORD '{}'",
                HOSTILE.replace('\'', "''")
            ),
        );
        for db in databases {
            self.psql("postgres", &format!("CREATE DATABASE {db} OWNER circle"));
            self.psql(
                db,
                "CREATE EXTENSION IF NOT EXISTS pgcrypto; CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"",
            );
        }
        PgClient::new(
            PgConn::parse_uri(&self.uri("circle", HOSTILE)).unwrap(),
            Some(self.server.bin_dir().to_owned()),
        )
        .unwrap()
    }

    /// A checksum of every row of every user table in `db`.
    pub(crate) fn checksum(&self, db: &str) -> String {
        let tables = self.psql(
            db,
            "SELECT string_agg(format('%I.%I', schemaname, tablename), ',' ORDER BY 1) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        );
        let mut sums = Vec::new();
        let mut tables: Vec<&str> = tables.split(',').filter(|t| !t.is_empty()).collect();
        tables.sort_unstable();
        for table in tables {
            sums.push(format!(
                "{table}={}",
                self.psql(
                    db,
                    &format!("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t")
                )
            ));
        }
        sums.join(" ")
    }
}

/// Every document of `db.collection`, as raw bytes, in `_id` order.
pub(crate) async fn raw_documents(client: &Client, db: &str, collection: &str) -> Vec<Vec<u8>> {
    let mut docs: Vec<Vec<u8>> = client
        .database(db)
        .collection::<RawDocumentBuf>(collection)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.into_bytes())
        .collect();
    docs.sort_by_key(|d| {
        bson::from_slice::<Document>(d)
            .ok()
            .and_then(|d| d.get_i32("_id").ok())
            .unwrap_or(i32::MAX)
    });
    docs
}

/// Runs `tar` to list an archive (an independent reader).
pub(crate) fn tar_list(path: &Path) -> Vec<String> {
    let output = Command::new("tar").arg("tf").arg(path).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
