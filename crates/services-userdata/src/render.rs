//! The bundle: every file the Services machine needs, and the userdata that
//! fetches them. Pure and deterministic.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};

use crate::spec::MONGO_URI_DATABASES;
use crate::text::{encode_userinfo, export_line, normalize_host, shell_quote};
use crate::{BundleSpec, Error};

/// EC2's limit on raw (pre-base64) user data.
pub const USERDATA_LIMIT: usize = 16 * 1024;

/// Where CA certificates go on the Services machine: `update-ca-certificates`
/// picks up `*.crt` there, one certificate per file.
pub const CA_DIRECTORY: &str = "/usr/local/share/ca-certificates";

/// The bundle path of the `index`th CA certificate: `ca.crt`, `ca-2.crt` …
fn ca_path(index: usize) -> String {
    if index == 0 {
        "ca.crt".to_owned()
    } else {
        format!("ca-{}.crt", index + 1)
    }
}

/// One file of the bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// Path inside the bundle and S3 key below the prefix, `/`-separated.
    pub path: String,
    /// The content.
    pub bytes: Vec<u8>,
    /// Whether it holds a secret (written 0600, never shown).
    pub secret: bool,
}

impl fmt::Debug for BundleFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("BundleFile");
        s.field("path", &self.path).field("len", &self.bytes.len());
        if !self.secret {
            s.field("text", &String::from_utf8_lossy(&self.bytes));
        }
        s.finish()
    }
}

/// The rendered bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The files uploaded to S3, sorted by path.
    pub files: Vec<BundleFile>,
    /// The EC2 user data (no secrets; it is readable through IMDS).
    pub userdata: String,
    /// Things the operator should know.
    pub warnings: Vec<String>,
}

/// Renders the bundle. Checks first, all at once: host names (punycode is
/// applied; unusable names are refused), the app user's databases against
/// the URIs, the userdata's size.
pub fn render(spec: &BundleSpec) -> Result<Bundle, Error> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut host = |what: &str, value: &str| match normalize_host(value) {
        Ok(host) => host,
        Err(why) => {
            problems.push(format!("{what} {value:?} {why}"));
            String::new()
        }
    };
    let hostname = host("the CircleCI hostname", &spec.hostname);
    let postgres_host = host("the PostgreSQL host", &spec.postgres.host);
    let vault_host = host("the Vault host", &spec.vault.host);
    let mut mongo_hosts = Vec::new();
    for member in &spec.mongo.hosts {
        let (name, port) = match member.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => (name, port),
            _ => (member.as_str(), "27017"),
        };
        mongo_hosts.push(format!("{}:{port}", host("the MongoDB member", name)));
    }
    if spec.mongo.hosts.is_empty() {
        problems.push("no MongoDB members".to_owned());
    }
    let mut needed: Vec<&str> = MONGO_URI_DATABASES.iter().map(|(_, db)| *db).collect();
    needed.dedup();
    for database in needed {
        if !spec.mongo.databases.iter().any(|d| d == database) {
            problems.push(format!(
                "the MongoDB app user {} has no role on {database}, which \
                 CIRCLE_SECRETS_MONGODB_*_URI names: add it to the app user's databases (the \
                 runbook's createUser forgets remote_containers_dev_ghe)",
                spec.mongo.user
            ));
        }
    }
    if !spec.s3_prefix.is_empty() && !spec.s3_prefix.ends_with('/') {
        problems.push(format!(
            "the S3 prefix {:?} must end with '/'",
            spec.s3_prefix
        ));
    }
    if !matches!(spec.vault.scheme.as_str(), "https" | "http") {
        problems.push(format!(
            "Vault scheme {:?} is not https or http",
            spec.vault.scheme
        ));
    }
    if spec.vault.scheme == "http" {
        warnings.push(
            "Vault is reached over plain http: the contexts token travels in clear".to_owned(),
        );
    }
    if !spec.mongo.tls {
        warnings.push(
            "MongoDB URIs have no ssl=true: the spec has no MongoDB TLS, so passwords travel in \
             clear"
                .to_owned(),
        );
    }
    if spec.encryption_keys.is_empty() {
        warnings.push(
            "no encryption keys in the bundle: CircleCI 1.48.4+ cannot decrypt its data without \
             /data/circle/circleci-encryption-keys (give the bundle its encryption keys)"
                .to_owned(),
        );
    }
    if spec.session_cookie_key.expose_secret().chars().count() < 16 {
        problems.push("the session cookie key must be at least 16 characters".to_owned());
    }
    for (name, _) in &spec.encryption_keys {
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            problems.push(format!(
                "encryption key file name {name:?} is not a plain file name"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid { problems });
    }

    let mut files = vec![
        secret_file("settings.conf", settings_conf(spec, &hostname)),
        secret_file("replicated.conf", replicated_conf(spec, &hostname)),
        BundleFile {
            path: "license.rli".to_owned(),
            bytes: spec.license.clone(),
            secret: true,
        },
        secret_file(
            "circle-installation-customizations",
            customizations(spec, &mongo_hosts),
        ),
        secret_file(
            "circleconfig/shared/postgresql",
            postgres_env(spec, &postgres_host),
        ),
        secret_file("circleconfig/shared/vault", vault_env(spec, &vault_host)),
    ];
    for (name, bytes) in &spec.encryption_keys {
        files.push(BundleFile {
            path: format!("circleci-encryption-keys/{name}"),
            bytes: bytes.clone(),
            secret: true,
        });
    }
    for (index, ca) in spec.ca_certificates.iter().enumerate() {
        files.push(BundleFile {
            path: ca_path(index),
            bytes: ca.as_bytes().to_vec(),
            secret: false,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let userdata = userdata(spec, &files);
    if userdata.len() > USERDATA_LIMIT {
        return Err(Error::UserdataTooLarge {
            bytes: userdata.len(),
        });
    }
    Ok(Bundle {
        files,
        userdata,
        warnings,
    })
}

fn secret_file(path: &str, text: String) -> BundleFile {
    BundleFile {
        path: path.to_owned(),
        bytes: text.into_bytes(),
        secret: true,
    }
}

fn value(text: &str) -> Value {
    json!({ "value": text })
}

/// `settings.conf`: every value a string, as Replicated requires.
fn settings_conf(spec: &BundleSpec, hostname: &str) -> String {
    let mut settings: Map<String, Value> = Map::new();
    for (key, secret) in &spec.extra_settings {
        settings.insert(key.clone(), value(secret.expose_secret()));
    }
    let fixed = [
        ("hostname", hostname),
        ("allow_cluster", "1"),
        ("secret_passphrase", spec.secret_passphrase.expose_secret()),
        ("ghe_type", &spec.github.kind),
        ("ghe_client_id", &spec.github.client_id),
        (
            "ghe_client_secret",
            spec.github.client_secret.expose_secret(),
        ),
        ("storage_backend", &spec.storage.backend),
        ("aws_region", &spec.aws_region),
        ("s3_bucket", &spec.storage.bucket),
        ("sqs_queue_url", &spec.storage.sqs_queue_url),
        ("license_agreement", "license_agreement_agree"),
    ];
    for (key, text) in fixed {
        settings.insert(key.to_owned(), value(text));
    }
    pretty(&Value::Object(settings))
}

/// `replicated.conf`, read once by Replicated's installer.
fn replicated_conf(spec: &BundleSpec, hostname: &str) -> String {
    pretty(&json!({
        "BypassPreflightChecks": true,
        "Channel": "stable",
        "DaemonAuthenticationPassword": spec.replicated_password.expose_secret(),
        "DaemonAuthenticationType": "password",
        "ImportSettingsFrom": "/etc/settings.conf",
        "LicenseFileLocation": "/etc/license.rli",
        "LogLevel": spec.replicated_log_level,
        "TlsBootstrapHostname": hostname,
        "TlsBootstrapType": "self-signed",
    }))
}

fn pretty(value: &Value) -> String {
    // Serialising a Value cannot fail: its maps have string keys.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The five MongoDB URIs and the session cookie key.
fn customizations(spec: &BundleSpec, hosts: &[String]) -> String {
    let mongo = &spec.mongo;
    let mut options = vec![format!(
        "replicaSet={}",
        encode_userinfo(&mongo.replica_set)
    )];
    if mongo.tls {
        options.push("ssl=true".to_owned());
    }
    options.push("authSource=admin".to_owned());
    let mut text = String::from(
        "# CircleCI installation customizations, rendered by circle-ha services-userdata.\n\
         # Holds secrets: keep it mode 0600.\n",
    );
    for (variable, database) in MONGO_URI_DATABASES {
        let uri = format!(
            "mongodb://{}:{}@{}/{database}?{}",
            encode_userinfo(&mongo.user),
            encode_userinfo(mongo.password.expose_secret()),
            hosts.join(","),
            options.join("&")
        );
        text.push_str(&export_line(variable, &uri));
    }
    text.push_str(&export_line(
        "CIRCLE_SECRETS_SESSION_COOKIE_KEY",
        spec.session_cookie_key.expose_secret(),
    ));
    text
}

fn postgres_env(spec: &BundleSpec, host: &str) -> String {
    let mut text = String::from("# Rendered by circle-ha services-userdata. Holds secrets.\n");
    text.push_str(&export_line("POSTGRES_HOST", host));
    text.push_str(&export_line(
        "POSTGRES_PORT",
        &spec.postgres.port.to_string(),
    ));
    text.push_str(&export_line(
        "POSTGRES_PASSWORD",
        spec.postgres.password.expose_secret(),
    ));
    text.push_str(&export_line("POSTGRES_USER", &spec.postgres.user));
    text
}

fn vault_env(spec: &BundleSpec, host: &str) -> String {
    let vault = &spec.vault;
    let mut text = String::from("# Rendered by circle-ha services-userdata. Holds secrets.\n");
    text.push_str(&export_line("VAULT__SCHEME", &vault.scheme));
    text.push_str(&export_line("VAULT__HOST", host));
    text.push_str(&export_line("VAULT__PORT", &vault.port.to_string()));
    text.push_str(&export_line(
        "VAULT__CLIENT_TOKEN",
        vault.token.expose_secret(),
    ));
    text.push_str(&export_line("VAULT__TRANSIT_MOUNT", &vault.transit_mount));
    text
}

/// Where each bundle file goes on the Services machine.
fn destination(path: &str) -> Option<&'static str> {
    match path {
        "settings.conf" => Some("/etc/settings.conf"),
        "replicated.conf" => Some("/etc/replicated.conf"),
        "license.rli" => Some("/etc/license.rli"),
        "circle-installation-customizations" => Some("/etc/circle-installation-customizations"),
        _ => None,
    }
}

/// The EC2 user data. Values are shell-quoted; nothing secret is in it.
fn userdata(spec: &BundleSpec, files: &[BundleFile]) -> String {
    let mut replicated_url = String::from("https://get.replicated.com/docker");
    if let Some(version) = &spec.replicated_version {
        replicated_url.push_str("?replicated_tag=");
        replicated_url.push_str(&encode_userinfo(version));
    }
    let mut script = String::new();
    let _ = write!(
        script,
        r#"#!/bin/bash
# CircleCI Services machine bootstrap, rendered by circle-ha services-userdata.
# EC2 user data is readable through the instance metadata service, so no
# secret is written here: they are fetched from the S3 bundle below.
# Values are single-quoted on purpose: a '$' or '`' in them stays literal.
# shellcheck disable=SC2016
set -euo pipefail
umask 077
export PATH="$PATH:/usr/local/bin:/snap/bin"

readonly BUCKET={bucket}
readonly PREFIX={prefix}
readonly REGION={region}
readonly REPLICATED_URL={replicated_url}

log() {{
  printf '%s circle-ha-userdata: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}}

retry() {{
  local attempt=1
  until "$@"; do
    if [ "$attempt" -ge 10 ]; then
      log "giving up after $attempt attempts: $*"
      return 1
    fi
    sleep $((attempt * 3))
    attempt=$((attempt + 1))
  done
}}

# IMDSv2: a session token first, then the metadata item.
metadata() {{
  local token
  token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    http://169.254.169.254/latest/api/token)
  curl -fsS -H "X-aws-ec2-metadata-token: $token" \
    "http://169.254.169.254/latest/meta-data/$1"
}}

# The distribution's package where it exists, else the snap, else pip in a
# venv (PEP 668 forbids a system-wide pip install on current images).
install_aws_cli() {{
  if command -v aws >/dev/null 2>&1; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  retry apt-get update -q
  if apt-get install -y -q --no-install-recommends awscli; then
    return 0
  fi
  if command -v snap >/dev/null 2>&1 && snap install aws-cli --classic; then
    return 0
  fi
  retry apt-get install -y -q --no-install-recommends python3-venv
  python3 -m venv /opt/circle-ha-awscli
  retry /opt/circle-ha-awscli/bin/pip install --quiet awscli
  ln -sf /opt/circle-ha-awscli/bin/aws /usr/local/bin/aws
}}

fetch() {{
  retry aws s3 cp --only-show-errors --region "$REGION" "s3://$BUCKET/$PREFIX$1" "$2"
}}

fetch_dir() {{
  retry aws s3 cp --only-show-errors --region "$REGION" --recursive \
    "s3://$BUCKET/$PREFIX$1" "$2"
}}

main() {{
  if ! command -v curl >/dev/null 2>&1; then
    retry apt-get update -q
    retry apt-get install -y -q --no-install-recommends curl ca-certificates
  fi
  log "installing the AWS CLI"
  install_aws_cli
  log "fetching the bundle from s3://$BUCKET/$PREFIX"
  install -d -m 0755 /etc/circleconfig
  install -d -m 0700 /etc/circleconfig/shared
"#,
        bucket = shell_quote(&spec.s3_bucket),
        prefix = shell_quote(&spec.s3_prefix),
        region = shell_quote(&spec.aws_region),
        replicated_url = shell_quote(&replicated_url),
    );
    for file in files {
        if let Some(destination) = destination(&file.path) {
            let _ = writeln!(
                script,
                "  fetch {} {}",
                shell_quote(&file.path),
                shell_quote(destination)
            );
        }
    }
    let _ = writeln!(
        script,
        "  fetch_dir 'circleconfig/shared/' '/etc/circleconfig/shared/'"
    );
    if files
        .iter()
        .any(|f| f.path.starts_with("circleci-encryption-keys/"))
    {
        // The same place and modes as `circle-ha keys restore`.
        let dir = crate::keys::KEYS_DIR;
        let _ = writeln!(
            script,
            "  install -d -m 0700 /data/circle {dir}\n  \
             fetch_dir '{prefix}' '{dir}/'\n  \
             find {dir} -type f -exec chmod {mode:o} {{}} +",
            prefix = crate::keys::KEYS_PREFIX,
            mode = crate::keys::KEY_MODE,
        );
    }
    if !spec.ca_certificates.is_empty() {
        let _ = writeln!(script, "  log \"installing the CA certificates\"");
        for index in 0..spec.ca_certificates.len() {
            let path = ca_path(index);
            let destination = format!("{CA_DIRECTORY}/circle-ha-{path}");
            let _ = writeln!(
                script,
                "  fetch {} {dest}\n  chmod 0644 {dest}",
                shell_quote(&path),
                dest = shell_quote(&destination)
            );
        }
        let _ = writeln!(script, "  update-ca-certificates");
    }
    script.push_str(
        r#"  local local_ip
  local_ip=$(retry metadata local-ipv4)
  log "installing Replicated (local address $local_ip)"
  curl -fsSL "$REPLICATED_URL" | bash -s local-address="$local_ip" no-proxy
  log "done in $SECONDS s"
}

main "$@"
"#,
    );
    script
}

/// Every secret value in `spec`, for tests and checks that output holds
/// none of them.
pub fn secret_values(spec: &BundleSpec) -> Vec<SecretString> {
    let mut res = vec![
        spec.mongo.password.clone(),
        spec.postgres.password.clone(),
        spec.vault.token.clone(),
        spec.replicated_password.clone(),
        spec.secret_passphrase.clone(),
        spec.github.client_secret.clone(),
        spec.session_cookie_key.clone(),
    ];
    res.extend(spec.extra_settings.values().cloned());
    res
}

/// The file names and sizes, for human output.
pub fn describe(bundle: &Bundle) -> BTreeMap<String, usize> {
    bundle
        .files
        .iter()
        .map(|f| (f.path.clone(), f.bytes.len()))
        .collect()
}
