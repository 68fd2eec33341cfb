//! The Services machine's files: present, readable, valid, and agreeing
//! with each other (the runbook's first troubleshooting point: they must be
//! there before Replicated is installed).

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};
use services_userdata::envfile::{EnvFile, parse_env};

use crate::{Ca, Cause, Report};

/// The five MongoDB URIs CircleCI reads from the customizations file.
pub(crate) const MONGO_URIS: [&str; 5] = [
    "CIRCLE_SECRETS_MONGODB_MAIN_URI",
    "CIRCLE_SECRETS_MONGODB_ACTION_LOGS_URI",
    "CIRCLE_SECRETS_MONGODB_BUILD_STATE_URI",
    "CIRCLE_SECRETS_MONGODB_CONTAINERS_URI",
    "CIRCLE_SECRETS_MONGODB_REMOTE_CONTAINERS_URI",
];

/// Where each file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineFiles {
    /// `/etc/circle-installation-customizations`.
    pub customizations: PathBuf,
    /// `/etc/circleconfig/shared/postgresql`.
    pub postgresql: PathBuf,
    /// `/etc/circleconfig/shared/vault`.
    pub vault: PathBuf,
    /// `/etc/replicated.conf`.
    pub replicated_conf: PathBuf,
    /// `/etc/settings.conf`.
    pub settings_conf: PathBuf,
    /// The directory with the installed CA certificates, and the prefix of
    /// their file names.
    pub ca_dir: (PathBuf, String),
    /// `/data/circle/circleci-encryption-keys`.
    pub keys_dir: PathBuf,
    /// The system's trusted roots (`/etc/ssl/certs/ca-certificates.crt`),
    /// what the services verify against when no CA of ours is installed;
    /// `None` for a bundle.
    pub system_roots: Option<PathBuf>,
}

impl MachineFiles {
    /// The installed paths on the Services machine.
    pub fn installed() -> MachineFiles {
        MachineFiles {
            customizations: "/etc/circle-installation-customizations".into(),
            postgresql: "/etc/circleconfig/shared/postgresql".into(),
            vault: "/etc/circleconfig/shared/vault".into(),
            replicated_conf: "/etc/replicated.conf".into(),
            settings_conf: "/etc/settings.conf".into(),
            ca_dir: (
                "/usr/local/share/ca-certificates".into(),
                "circle-ha-ca".into(),
            ),
            keys_dir: services_userdata::keys::KEYS_DIR.into(),
            system_roots: Some("/etc/ssl/certs/ca-certificates.crt".into()),
        }
    }

    /// The layout of a rendered bundle in `dir`.
    pub fn bundle(dir: &Path) -> MachineFiles {
        MachineFiles {
            customizations: dir.join("circle-installation-customizations"),
            postgresql: dir.join("circleconfig/shared/postgresql"),
            vault: dir.join("circleconfig/shared/vault"),
            replicated_conf: dir.join("replicated.conf"),
            settings_conf: dir.join("settings.conf"),
            ca_dir: (dir.to_owned(), "ca".into()),
            keys_dir: dir.join("circleci-encryption-keys"),
            system_roots: None,
        }
    }
}

/// PostgreSQL as `/etc/circleconfig/shared/postgresql` gives it.
#[derive(Debug)]
pub(crate) struct PgEnv {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: SecretString,
}

/// Vault as `/etc/circleconfig/shared/vault` gives it.
#[derive(Debug)]
pub(crate) struct VaultEnv {
    pub(crate) address: String,
    pub(crate) token: SecretString,
    pub(crate) mount: String,
}

/// What the files gave.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub(crate) mongo_uris: Vec<(String, SecretString)>,
    pub(crate) postgres: Option<PgEnv>,
    pub(crate) vault: Option<VaultEnv>,
    pub(crate) ca: Option<Ca>,
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// A file's text, or a finding saying why it cannot be read.
fn read_file(path: &Path, why_needed: &str, report: &mut Report) -> Option<String> {
    report.check("file", &shown(path));
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            report.find(
                Cause::MachineSetup,
                &shown(path),
                "",
                format!("cannot read it ({e}): {why_needed}"),
            );
            None
        }
    }
}

fn read_env(path: &Path, report: &mut Report) -> Option<EnvFile> {
    let text = read_file(
        path,
        "it must be on the Services machine before Replicated is installed (the user data \
         fetches it from the bundle)",
        report,
    )?;
    match parse_env(&text) {
        Ok(file) => Some(file),
        Err(problems) => {
            for problem in problems {
                report.find(
                    Cause::MachineSetup,
                    &shown(path),
                    &format!("line {}", problem.line),
                    format!("{}; the services source this file with sh", problem.message),
                );
            }
            None
        }
    }
}

fn var(file: &EnvFile, name: &str, path: &Path, report: &mut Report) -> Option<String> {
    match file.vars.get(name) {
        Some(value) if !value.expose_secret().is_empty() => {
            if !file.exported.iter().any(|n| n == name) {
                report.find(
                    Cause::MachineSetup,
                    &shown(path),
                    name,
                    "is set but not exported: the services do not see it (write `export`)",
                );
            }
            Some(value.expose_secret().to_owned())
        }
        _ => {
            report.find(Cause::MachineSetup, &shown(path), name, "is not set");
            None
        }
    }
}

fn read_json(path: &Path, report: &mut Report) -> Option<serde_json::Value> {
    let text = read_file(path, "Replicated reads it when it is installed", report)?;
    match serde_json::from_str(&text) {
        Ok(value) => Some(value),
        Err(e) => {
            report.find(
                Cause::MachineSetup,
                &shown(path),
                &format!("line {}", e.line()),
                "is not valid JSON",
            );
            None
        }
    }
}

pub(crate) fn check(files: &MachineFiles, report: &mut Report) -> Read {
    let mut read = Read::default();
    if let Some(env) = read_env(&files.customizations, report) {
        for name in MONGO_URIS {
            if let Some(uri) = var(&env, name, &files.customizations, report) {
                read.mongo_uris
                    .push((name.to_owned(), SecretString::from(uri)));
            }
        }
    }
    if let Some(env) = read_env(&files.postgresql, report) {
        let path = &files.postgresql;
        let host = var(&env, "POSTGRES_HOST", path, report);
        let port = var(&env, "POSTGRES_PORT", path, report);
        let user = var(&env, "POSTGRES_USER", path, report);
        let password = var(&env, "POSTGRES_PASSWORD", path, report);
        let port = port.and_then(|p| match p.parse::<u16>() {
            Ok(port) => Some(port),
            Err(_) => {
                report.find(
                    Cause::MachineSetup,
                    &shown(path),
                    "POSTGRES_PORT",
                    "is not a port number",
                );
                None
            }
        });
        if let (Some(host), Some(port), Some(user), Some(password)) = (host, port, user, password) {
            read.postgres = Some(PgEnv {
                host,
                port,
                user,
                password: SecretString::from(password),
            });
        }
    }
    if let Some(env) = read_env(&files.vault, report) {
        let path = &files.vault;
        let scheme = var(&env, "VAULT__SCHEME", path, report);
        let host = var(&env, "VAULT__HOST", path, report);
        let port = var(&env, "VAULT__PORT", path, report);
        let token = var(&env, "VAULT__CLIENT_TOKEN", path, report);
        let mount = var(&env, "VAULT__TRANSIT_MOUNT", path, report);
        if let (Some(scheme), Some(host), Some(port), Some(token), Some(mount)) =
            (scheme, host, port, token, mount)
        {
            read.vault = Some(VaultEnv {
                address: format!("{scheme}://{host}:{port}"),
                token: SecretString::from(token),
                mount,
            });
        }
    }
    let settings = read_json(&files.settings_conf, report);
    let replicated = read_json(&files.replicated_conf, report);
    if let (Some(settings), Some(replicated)) = (&settings, &replicated) {
        let hostname = settings["hostname"]["value"].as_str();
        let bootstrap = replicated["TlsBootstrapHostname"].as_str();
        if hostname.is_none() || hostname != bootstrap {
            report.find(
                Cause::MachineSetup,
                &shown(&files.replicated_conf),
                "TlsBootstrapHostname",
                "differs from settings.conf's hostname: Replicated's certificate would not match \
                 the name users browse to",
            );
        }
        if replicated["ImportSettingsFrom"].as_str() != Some("/etc/settings.conf") {
            report.find(
                Cause::MachineSetup,
                &shown(&files.replicated_conf),
                "ImportSettingsFrom",
                "is not /etc/settings.conf: Replicated would not import the settings",
            );
        }
    }
    // The CA the services trust for the databases.
    let (dir, prefix) = &files.ca_dir;
    report.check("CA certificates", &shown(dir));
    let mut pems: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .is_some_and(|n| n.starts_with(prefix.as_str()) && n.ends_with(".crt"))
        })
        .collect();
    pems.sort();
    match pems.first() {
        Some(first) => {
            let mut pem = Vec::new();
            for path in &pems {
                pem.extend(std::fs::read(path).unwrap_or_default());
            }
            read.ca = Some(Ca {
                pem,
                path: first.clone(),
            });
        }
        None => {
            report.find(
                Cause::Tls,
                &shown(dir),
                &format!("{prefix}*.crt"),
                "no CA certificate installed: the services cannot verify the databases' \
                 certificates (the user data installs it with update-ca-certificates)",
            );
            // Then verify as the services would: against the system's roots.
            if let Some(roots) = &files.system_roots
                && let Ok(pem) = std::fs::read(roots)
                && !pem.is_empty()
            {
                read.ca = Some(Ca {
                    pem,
                    path: roots.clone(),
                });
            }
        }
    }
    report.check("encryption keys", &shown(&files.keys_dir));
    let keys = services_userdata::keys::read_keys(&files.keys_dir);
    if !keys.is_ok_and(|k| !k.is_empty()) {
        report.find(
            Cause::MachineSetup,
            &shown(&files.keys_dir),
            "",
            "no encryption keys there: CircleCI cannot decrypt its data; restore them (circle-ha \
             keys restore) before it starts",
        );
    }
    read
}
