//! The file as written: serde structs for every section. Unknown keys are
//! collected while parsing (every one of them, with its path) and reported
//! as problems, so that a typo never passes silently. Secrets are still
//! references (`env:NAME`, `file:PATH`) here; nothing is resolved.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file as written. Sections other tools own are kept as plain
/// tables until their tool reads them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawConfig {
    /// `[pki]`.
    pub pki: Option<RawPki>,
    /// `[mongo]`.
    pub mongo: Option<RawMongo>,
    /// `[postgres]`.
    pub postgres: Option<RawPostgres>,
    /// `[vault]`.
    pub vault: Option<RawVault>,
    /// `[services]`.
    pub services: Option<RawServices>,
    /// `[backup]`.
    pub backup: Option<RawBackup>,
    /// `[export]`.
    pub export: Option<RawExport>,
}

/// `[export]` as written: how `circle-export` reads the old machine.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawExport {
    /// An argv prefix `pg_dump` runs through, no shell (`["docker",
    /// "exec", "-i", "-e", "PGPASSWORD", "postgres"]`).
    pub pg_dump_command: Option<Vec<String>>,
}

/// `[backup]` as written: snapshots of a stopped MongoDB secondary.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawBackup {
    /// This machine's member, `host:port` as in `[mongo].members`
    /// (`--member` overrides it); absent: whatever this machine's mongod
    /// says it is.
    pub member: Option<String>,
    /// The port this machine's mongod listens on (default: the member's
    /// port, else 27017): asked who it is before anything is stopped.
    pub local_port: Option<u16>,
    /// Where a run keeps its marker while the member is stopped (default
    /// `/var/lib/mongo-backup`).
    pub state_dir: Option<PathBuf>,
    /// systemd: a file of `NAME=value` lines the units load
    /// (`EnvironmentFile=`), for `env:` secret references.
    pub environment_file: Option<PathBuf>,
    /// systemd: `NAME:PATH` credentials the units load (`LoadCredential=`),
    /// for `cred:NAME` secret references.
    pub credentials: Option<Vec<String>>,
    /// systemd: a unit to start when a run fails (`OnFailure=`).
    pub on_failure: Option<String>,
    /// `ebs` (default), `directory` or `command`.
    pub store: Option<String>,
    /// EBS: the volumes holding the dbPath (and journal/log if separate).
    pub volumes: Option<Vec<String>>,
    /// EBS: the region (default `[services].aws_region`).
    pub aws_region: Option<String>,
    /// Directory store: where copies go.
    pub directory: Option<PathBuf>,
    /// Command store: the operator's snapshot command (argv).
    pub snapshot_command: Option<Vec<String>>,
    /// The dbPath on this machine (default `[mongo.server].db_path`).
    pub db_path: Option<String>,
    /// The stop command, as argv (default `systemctl stop mongod`).
    pub stop_command: Option<Vec<String>>,
    /// The start command, as argv (default `systemctl start mongod`).
    pub start_command: Option<Vec<String>>,
    /// The most a member may lag, seconds (default 30).
    pub max_lag: Option<u64>,
    /// Keep the newest N complete runs.
    pub keep_last: Option<u32>,
    /// Keep every run younger than this many days.
    pub keep_days: Option<u32>,
    /// `status` is unhealthy when the newest complete run is older than
    /// this many hours (default 26).
    pub max_age_hours: Option<u64>,
    /// Back up this member even if the set has a hidden/priority-0 one.
    pub any_member: Option<bool>,
    /// How long a run may hold the set's lock, seconds (default 7200).
    pub lease: Option<u64>,
    /// systemd timer `OnCalendar=` (default `*-*-* 03:00:00`).
    pub on_calendar: Option<String>,
}

/// `[postgres]` as written.
#[derive(Clone, Debug, Deserialize)]
pub struct RawPostgres {
    /// Server host name (what TLS verifies) or IP address.
    pub host: Option<String>,
    /// Server port (default 5432).
    pub port: Option<u16>,
    /// Connect to this IP address instead of resolving `host`.
    pub hostaddr: Option<String>,
    /// The admin role (default `postgres`).
    pub admin_user: Option<String>,
    /// Secret reference to the admin's password.
    pub admin_password: Option<String>,
    /// The database the admin logs in to (default `postgres`).
    pub admin_database: Option<String>,
    /// The app role (default `circle`).
    pub app_user: Option<String>,
    /// Secret reference to the app role's password.
    pub app_password: Option<String>,
    /// `disable`, `require`, `verify-ca` or `verify-full` (default).
    pub sslmode: Option<String>,
    /// CA bundle for `verify-ca`/`verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for a connection (default 30).
    pub connect_timeout: Option<u64>,
    /// The databases (default: the eight the runbook lists).
    pub databases: Option<Vec<RawDatabase>>,
}

/// One `[[postgres.databases]]` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct RawDatabase {
    /// The database's name.
    pub name: String,
    /// Its extensions.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `[mongo]` as written.
#[derive(Clone, Debug, Deserialize)]
pub struct RawMongo {
    /// The replica set's name.
    pub replica_set: Option<String>,
    /// The MongoDB version the members run (selects the mongod.conf dialect).
    pub server_version: Option<String>,
    /// The members.
    #[serde(default)]
    pub members: Vec<RawMember>,
    /// TLS for clients; absent means plain connections.
    pub tls: Option<RawMongoTls>,
    /// The runbook's three users.
    pub users: Option<RawMongoUsers>,
    /// Replica-set settings to pin.
    pub settings: Option<RawMongoSettings>,
    /// Where files live on the members, for `render-config`.
    pub server: Option<RawMongoServer>,
    /// Seconds to wait for a member to answer (default 10).
    pub connect_timeout: Option<u64>,
    /// Seconds to wait for an election or a member's initial sync (default
    /// 900).
    pub wait_timeout: Option<u64>,
}

/// `[mongo.settings]`: replica-set settings to pin.
#[derive(Clone, Debug, Deserialize)]
pub struct RawMongoSettings {
    /// `settings.electionTimeoutMillis`.
    pub election_timeout_millis: Option<i64>,
    /// `settings.heartbeatIntervalMillis`.
    pub heartbeat_interval_millis: Option<i64>,
}

/// `[mongo.server]`: file locations on the members (each may contain
/// `{host}` and `{port}`).
#[derive(Clone, Debug, Deserialize)]
pub struct RawMongoServer {
    /// `storage.dbPath`.
    pub db_path: Option<String>,
    /// `systemLog.path`.
    pub log_path: Option<String>,
    /// The member's certificate and key (PEM).
    pub certificate_key_file: Option<String>,
    /// The certificate presented to other members.
    pub cluster_file: Option<String>,
    /// The CA certificate.
    pub ca_file: Option<String>,
    /// `net.bindIp` entries.
    pub bind_ip: Option<Vec<String>>,
}

/// One `[mongo].members` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct RawMember {
    /// `host:port`.
    pub host: String,
    /// Election priority (default 1).
    pub priority: Option<f64>,
    /// Votes (default 1).
    pub votes: Option<u8>,
    /// Hidden member.
    pub hidden: Option<bool>,
    /// Arbiter.
    pub arbiter_only: Option<bool>,
}

/// `[mongo].tls`.
#[derive(Clone, Debug, Deserialize)]
pub struct RawMongoTls {
    /// The CA the members' certificates chain to.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key (PEM) for the tools.
    pub certificate_key_file: Option<PathBuf>,
}

/// `[mongo].users`.
#[derive(Clone, Debug, Deserialize)]
pub struct RawMongoUsers {
    /// `siteUserAdmin` (userAdminAnyDatabase).
    pub site_admin: Option<RawMongoUser>,
    /// `circle-admin` (root + dbAdmin on admin).
    pub admin: Option<RawMongoUser>,
    /// `circle` (readWrite on the app databases).
    pub app: Option<RawMongoUser>,
}

/// One MongoDB user.
#[derive(Clone, Debug, Deserialize)]
pub struct RawMongoUser {
    /// The user name.
    pub name: Option<String>,
    /// Secret reference to the password.
    pub password: Option<String>,
    /// Databases (app user only).
    pub databases: Option<Vec<String>>,
}

/// `[pki]` as written.
#[derive(Clone, Debug, Deserialize)]
pub struct RawPki {
    /// Where the CA and the certificates live (relative to ha.toml).
    pub dir: Option<String>,
    /// The certificates' organization (identical on every member).
    pub organization: Option<String>,
    /// The members' organizational unit (clients get `<ou> clients`).
    pub organizational_unit: Option<String>,
}

/// `[vault]` as written.
#[derive(Clone, Debug, Deserialize)]
pub struct RawVault {
    /// `https://vault.internal:8200`.
    pub address: Option<String>,
    /// CA bundle that signed Vault's certificate.
    pub ca_file: Option<PathBuf>,
    /// Key shares (default 5).
    pub secret_shares: Option<u8>,
    /// Shares needed to unseal (default 3).
    pub secret_threshold: Option<u8>,
    /// Files with base64 PGP public keys, one per share (optional).
    pub pgp_keys: Option<Vec<PathBuf>>,
    /// Where init writes the shares and root token (default `secrets/vault`).
    pub keys_dir: Option<PathBuf>,
    /// Secret reference to the privileged token `configure` and `seal` use
    /// (default `file:<keys_dir>/root-token`).
    pub admin_token: Option<String>,
    /// Where `configure` writes the app token (default
    /// `<keys_dir>/circleci-token`).
    pub app_token_file: Option<PathBuf>,
    /// Transit mount path (default `transit`).
    pub transit_mount: Option<String>,
    /// App token period (default `1h`).
    pub token_period: Option<String>,
    /// The server's own configuration, for `render-config`.
    pub server: Option<RawVaultServer>,
    /// Accept an `http://` address: unseal shares and tokens then cross
    /// the network in clear text. For a throw-away test server only.
    pub danger_allow_plain_http: Option<bool>,
}

/// `[vault.server]` as written.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawVaultServer {
    /// `openbao`, `vault` or `vault-0.7` (default `openbao`).
    pub flavor: Option<String>,
    /// `raft` (default), `consul` or `file`.
    pub storage: Option<String>,
    /// Storage path (raft, file).
    pub path: Option<String>,
    /// Raft node id (default `vault-1`).
    pub node_id: Option<String>,
    /// Consul address (default `127.0.0.1:8500`).
    pub consul_address: Option<String>,
    /// Consul key prefix (default `vault`).
    pub consul_path: Option<String>,
    /// Listener address (default `0.0.0.0:8200`).
    pub listen_address: Option<String>,
    /// Cluster listener address (default `0.0.0.0:8201`).
    pub cluster_listen_address: Option<String>,
    /// Address clients use (default: `[vault].address`).
    pub api_addr: Option<String>,
    /// Address peers use (default: api_addr's host on port 8201).
    pub cluster_addr: Option<String>,
    /// Listener certificate file (on the Vault host).
    pub tls_cert_file: Option<String>,
    /// Listener key file (on the Vault host).
    pub tls_key_file: Option<String>,
    /// Allow a listener without TLS (test instances only).
    pub allow_plain_http: Option<bool>,
    /// Unseal with an AWS KMS key (`seal "awskms"`; Vault 1.0+, OpenBao).
    pub seal_awskms: Option<RawAwsKmsSeal>,
}

/// `[vault.server.seal_awskms]` as written.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawAwsKmsSeal {
    /// The key's region.
    pub region: Option<String>,
    /// The key: id, ARN or alias.
    pub kms_key_id: Option<String>,
    /// A KMS endpoint (a VPC endpoint).
    pub endpoint: Option<String>,
}

/// `[services]` as written.
#[derive(Clone, Debug, Deserialize)]
pub struct RawServices {
    /// The CircleCI host name.
    pub hostname: Option<String>,
    /// AWS region of the bundle bucket and the artifacts.
    pub aws_region: Option<String>,
    /// The bucket for this bundle.
    pub s3_bucket: Option<String>,
    /// Key prefix in it (default none).
    pub s3_prefix: Option<String>,
    /// The Services machine's launch template.
    pub launch_template: Option<String>,
    /// Make the new launch-template version the default (default true;
    /// false when Terraform or another tool manages the default version).
    pub set_default_version: Option<bool>,
    /// The CircleCI license file.
    pub license_file: Option<PathBuf>,
    /// Secret reference: Replicated's console password.
    pub replicated_password: Option<String>,
    /// Secret reference: CircleCI's `secret_passphrase`.
    pub secret_passphrase: Option<String>,
    /// GitHub OAuth app.
    pub github: Option<RawGithub>,
    /// Artifact storage.
    pub storage: Option<RawStorage>,
    /// Secret reference for `CIRCLE_SECRETS_SESSION_COOKIE_KEY`; default: kept
    /// from the last render, or generated.
    pub session_cookie_key: Option<String>,
    /// Replicated's `LogLevel` (default `debug`, as the runbook).
    pub replicated_log_level: Option<String>,
    /// Pin Replicated to this version.
    pub replicated_version: Option<String>,
    /// A copy of the old Services machine's
    /// `/data/circle/circleci-encryption-keys`.
    pub encryption_keys_dir: Option<PathBuf>,
    /// CA certificates to install (default: the distinct `ca_file`s of
    /// `[mongo].tls`, `[postgres]` and `[vault]`).
    pub ca_files: Option<Vec<PathBuf>>,
    /// KMS key for the bundle objects (default SSE-S3).
    pub kms_key_id: Option<String>,
    /// Further `settings.conf` entries; `env:`/`file:` values are resolved.
    pub extra_settings: Option<BTreeMap<String, String>>,
}

/// `[services].github`.
#[derive(Clone, Debug, Deserialize)]
pub struct RawGithub {
    /// `github_type_public` or `github_type_enterprise`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// Secret reference: OAuth client secret.
    pub client_secret: Option<String>,
}

/// `[services].storage`.
#[derive(Clone, Debug, Deserialize)]
pub struct RawStorage {
    /// E.g. `storage_backend_s3`.
    pub backend: Option<String>,
    /// The artifacts bucket.
    pub bucket: Option<String>,
    /// The SQS queue URL.
    pub sqs_queue_url: Option<String>,
}
