//! What the bundle is rendered from: typed values, secrets included.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;

/// The databases the five `CIRCLE_SECRETS_MONGODB_*_URI` variables name, in
/// the runbook's order: main and action logs share `circle_ghe`.
pub const MONGO_URI_DATABASES: [(&str, &str); 5] = [
    ("CIRCLE_SECRETS_MONGODB_MAIN_URI", "circle_ghe"),
    ("CIRCLE_SECRETS_MONGODB_ACTION_LOGS_URI", "circle_ghe"),
    (
        "CIRCLE_SECRETS_MONGODB_BUILD_STATE_URI",
        "build_state_dev_ghe",
    ),
    (
        "CIRCLE_SECRETS_MONGODB_CONTAINERS_URI",
        "containers_dev_ghe",
    ),
    (
        "CIRCLE_SECRETS_MONGODB_REMOTE_CONTAINERS_URI",
        "remote_containers_dev_ghe",
    ),
];

/// The replica set as CircleCI's services reach it.
#[derive(Clone)]
pub struct MongoSpec {
    /// The replica set's name (`replicaSet=`).
    pub replica_set: String,
    /// Every member, `host:port`.
    pub hosts: Vec<String>,
    /// The app user (the runbook's `circle`).
    pub user: String,
    /// Its password.
    pub password: SecretString,
    /// The databases the app user may use (its `readWrite` roles): every
    /// database the URIs name must be among them.
    pub databases: Vec<String>,
    /// Whether the set requires TLS (`ssl=true` in the URIs).
    pub tls: bool,
}

/// PostgreSQL as CircleCI's services reach it.
#[derive(Clone)]
pub struct PostgresSpec {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The app role.
    pub user: String,
    /// Its password.
    pub password: SecretString,
}

/// Vault as the contexts service reaches it.
#[derive(Clone)]
pub struct VaultSpec {
    /// `https` or `http`.
    pub scheme: String,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The app token (`vault-transit configure` wrote it).
    pub token: SecretString,
    /// The transit mount.
    pub transit_mount: String,
}

/// GitHub OAuth application settings.
#[derive(Clone)]
pub struct GithubSpec {
    /// `github_type_public` or `github_type_enterprise`.
    pub kind: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: SecretString,
}

/// Where build artifacts go.
#[derive(Clone)]
pub struct StorageSpec {
    /// E.g. `storage_backend_s3`.
    pub backend: String,
    /// The artifacts bucket.
    pub bucket: String,
    /// The SQS queue URL.
    pub sqs_queue_url: String,
}

/// Everything [`crate::render`] needs.
#[derive(Clone)]
pub struct BundleSpec {
    /// The CircleCI host name users browse to.
    pub hostname: String,
    /// AWS region of the bucket and the artifacts.
    pub aws_region: String,
    /// The bucket holding this bundle.
    pub s3_bucket: String,
    /// Key prefix in that bucket (empty or ending in `/`).
    pub s3_prefix: String,
    /// MongoDB.
    pub mongo: MongoSpec,
    /// PostgreSQL.
    pub postgres: PostgresSpec,
    /// Vault.
    pub vault: VaultSpec,
    /// Replicated's console password (`DaemonAuthenticationPassword`).
    pub replicated_password: SecretString,
    /// Replicated's `LogLevel` (the runbook: `debug`).
    pub replicated_log_level: String,
    /// A Replicated version to pin (`replicated_tag`), or the latest.
    pub replicated_version: Option<String>,
    /// CircleCI's `secret_passphrase`.
    pub secret_passphrase: SecretString,
    /// GitHub settings.
    pub github: GithubSpec,
    /// Artifact storage settings.
    pub storage: StorageSpec,
    /// Further `settings.conf` entries (e.g. from `import-settings`).
    pub extra_settings: BTreeMap<String, SecretString>,
    /// The CircleCI license (`license.rli`).
    pub license: Vec<u8>,
    /// CA certificates to install on the Services machine (PEM, one CA
    /// each), so the services trust MongoDB's, PostgreSQL's and Vault's
    /// certificates.
    pub ca_certificates: Vec<String>,
    /// Files of `/data/circle/circleci-encryption-keys/`, by name.
    pub encryption_keys: Vec<(String, Vec<u8>)>,
    /// `CIRCLE_SECRETS_SESSION_COOKIE_KEY`.
    pub session_cookie_key: SecretString,
}

impl fmt::Debug for BundleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleSpec")
            .field("hostname", &self.hostname)
            .field("s3_bucket", &self.s3_bucket)
            .field("mongo_hosts", &self.mongo.hosts)
            .field("postgres_host", &self.postgres.host)
            .field("vault_host", &self.vault.host)
            .finish_non_exhaustive()
    }
}
