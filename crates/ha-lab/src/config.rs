//! An `ha.toml` for a lab: every section, pointing at the services this
//! crate starts, secrets as `env:` references. Used by the demo and by the
//! tests that run the binaries over a lab.

use std::path::Path;

/// Where a lab's services listen, for [`lab_ha_toml`].
#[derive(Clone, Copy, Debug)]
pub struct LabHosts<'a> {
    /// The MongoDB members, `host:port`; the first gets priority 2.
    pub members: &'a [String],
    /// The lab CA every service's certificate chains to.
    pub ca_file: &'a Path,
    /// PostgreSQL's port on localhost (127.0.0.1).
    pub pg_port: u16,
    /// PostgreSQL's superuser.
    pub pg_admin: &'a str,
    /// OpenBao's `https://localhost:PORT`.
    pub vault_address: &'a str,
}

/// The names of the secrets [`lab_ha_toml`] refers to with `env:`.
pub const LAB_SECRETS: [&str; 8] = [
    "MONGO_SITE_ADMIN_PASSWORD",
    "MONGO_ADMIN_PASSWORD",
    "MONGO_APP_PASSWORD",
    "PG_ADMIN_PASSWORD",
    "PG_APP_PASSWORD",
    "REPLICATED_PASSWORD",
    "CIRCLE_SECRET_PASSPHRASE",
    "GITHUB_CLIENT_SECRET",
];

/// The lines of `[mongo].members` for `hosts` (`host:port`), the first
/// with priority 2 (it is where the set is initiated).
pub fn members_toml(hosts: &[String]) -> String {
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let priority = if i == 0 { ", priority = 2" } else { "" };
            format!("  {{ host = \"{host}\"{priority} }},\n")
        })
        .collect()
}

/// An ha.toml with every section for a lab (the demo's, the lab tests'):
/// the three-member set `circle` with the runbook's users, PostgreSQL with
/// the app role `circle`, Vault (3 shares, threshold 2, files under
/// `secrets/vault`), and a Services bundle reading `license.rli` and
/// `circle-data/` next to the file. Secrets are `env:` references named in
/// [`LAB_SECRETS`].
pub fn lab_ha_toml(lab: &LabHosts<'_>) -> String {
    let members = members_toml(lab.members);
    let ca = lab.ca_file.display();
    format!(
        r#"# A circle-ha lab. Secrets are env: references.
[mongo]
replica_set = "circle"
server_version = "7.0"
members = [
{members}]
tls = {{ ca_file = "{ca}" }}
users.site_admin = {{ name = "siteUserAdmin", password = "env:MONGO_SITE_ADMIN_PASSWORD" }}
users.admin = {{ name = "circle-admin", password = "env:MONGO_ADMIN_PASSWORD" }}
users.app = {{ name = "circle", password = "env:MONGO_APP_PASSWORD" }}
settings = {{ election_timeout_millis = 2000, heartbeat_interval_millis = 500 }}
wait_timeout = 120

[postgres]
host = "localhost"
hostaddr = "127.0.0.1"
port = {pg_port}
admin_user = "{pg_admin}"
admin_password = "env:PG_ADMIN_PASSWORD"
app_user = "circle"
app_password = "env:PG_APP_PASSWORD"
sslmode = "verify-full"
ca_file = "{ca}"

[vault]
address = "{vault}"
ca_file = "{ca}"
secret_shares = 3
secret_threshold = 2
keys_dir = "secrets/vault"
admin_token = "file:secrets/vault/root-token"
app_token_file = "secrets/vault/circleci-token"
transit_mount = "transit"
token_period = "1h"

[services]
hostname = "circleci.example.com"
aws_region = "us-east-1"
s3_bucket = "circleci-ha-config"
launch_template = "circleci-services"
license_file = "license.rli"
replicated_password = "env:REPLICATED_PASSWORD"
secret_passphrase = "env:CIRCLE_SECRET_PASSPHRASE"
github = {{ type = "github_type_public", client_id = "lab", client_secret = "env:GITHUB_CLIENT_SECRET" }}
storage = {{ backend = "storage_backend_s3", bucket = "circleci-artifacts", sqs_queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/circleci" }}
encryption_keys_dir = "circle-data"
"#,
        pg_port = lab.pg_port,
        pg_admin = lab.pg_admin,
        vault = lab.vault_address,
    )
}
