//! `circle-ha pki`: the CA and the certificates of every host `ha.toml`
//! names, with ha-tls.
//!
//! - `init` creates the CA in `[pki].dir` (kept when it exists);
//! - `issue` issues or keeps a certificate for each MongoDB member (the
//!   `<host>.pem` mongod's `tlsCertificateKeyFile` and mongo-rs-setup
//!   expect; identical O/OU for x509 membership), for the PostgreSQL and
//!   Vault hosts, and — when `[mongo].tls.certificate_key_file` lies in the
//!   PKI directory — the tools' client certificate (its own OU, so it can
//!   never pass as a member);
//! - `lint` checks all of them against MongoDB's member rules, host-name
//!   coverage and expiry, and reports every problem at once.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::{ConfigFile, Problems, UsageError};
use crate::exit::Exit;
use crate::output::{Action, ChangeReport};

const TOOL: &str = "circle-ha pki";

/// One certificate `ha.toml` calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The file stem in the PKI directory (`<name>.crt/.key/.pem`).
    pub name: String,
    /// What it is for.
    pub role: ha_tls::Role,
    /// The host names it must cover (empty for a client).
    pub hosts: Vec<String>,
    /// Which `ha.toml` keys call for it, for messages.
    pub used_by: Vec<String>,
}

/// `[pki]` and the certificates the rest of the file calls for.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `[pki].dir`, resolved against the file's directory.
    pub dir: PathBuf,
    /// `[pki].organization`.
    pub organization: String,
    /// `[pki].organizational_unit` (the members'; clients get
    /// `<ou> clients`).
    pub organizational_unit: String,
    /// Every certificate to issue, members first.
    pub wanted: Vec<Wanted>,
}

/// Reads `[pki]` and collects the hosts of `[mongo]`, `[postgres]` and
/// `[vault]`. Every problem is reported at once.
pub fn settings(file: &ConfigFile) -> Result<Settings, UsageError> {
    let mut problems = Problems::default();
    let Some(pki) = file.raw.pki.as_ref() else {
        return Err(UsageError::new(format!(
            "{}: no [pki] section (write dir, organization and organizational_unit)",
            file.path.display()
        )));
    };
    let mut text = |key: &str| match pki.get(key) {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            problems.push(format!("[pki].{key} must be a non-empty string"));
            None
        }
        None => {
            problems.push(format!("[pki].{key} is missing"));
            None
        }
    };
    let dir = text("dir").map(|d| file.path_of(Path::new(&d)));
    let organization = text("organization");
    let organizational_unit = text("organizational_unit");
    for key in pki.keys() {
        if !["dir", "organization", "organizational_unit"].contains(&key.as_str()) {
            problems.push(format!(
                "[pki].{key}: unknown key (dir, organization, organizational_unit)"
            ));
        }
    }

    let mut wanted: Vec<Wanted> = Vec::new();
    let mut want = |name: &str, role: ha_tls::Role, used_by: String| {
        // The file is named as the host is written (mongo-rs-setup looks
        // for `<dir>/<host>.pem`); names differing in case are one host.
        let name = name.to_owned();
        if let Some(existing) = wanted
            .iter_mut()
            .find(|w| w.name.eq_ignore_ascii_case(&name))
        {
            // A member certificate serves as a server certificate too.
            existing.used_by.push(used_by);
            return;
        }
        let hosts = if role == ha_tls::Role::Client {
            Vec::new()
        } else {
            vec![name.clone()]
        };
        wanted.push(Wanted {
            name,
            role,
            hosts,
            used_by: vec![used_by],
        });
    };
    if let Some(mongo) = &file.raw.mongo {
        for (i, member) in mongo.members.iter().enumerate() {
            match mongo_rs_setup::spec::parse_member_host(&member.host) {
                Ok((host, _)) => want(&host, ha_tls::Role::Member, format!("[mongo].members[{i}]")),
                Err(e) => problems.push(format!("[mongo].members[{i}].host: {e}")),
            }
        }
    }
    if let Some(host) = file.raw.postgres.as_ref().and_then(|p| p.host.as_deref()) {
        want(host, ha_tls::Role::Server, "[postgres].host".to_owned());
    }
    if let Some(address) = file
        .raw
        .vault
        .as_ref()
        .and_then(|v| v.get("address"))
        .and_then(|a| a.as_str())
    {
        match reqwest::Url::parse(address) {
            Ok(url) => match url.host_str() {
                Some(host) => want(
                    host.trim_start_matches('[').trim_end_matches(']'),
                    ha_tls::Role::Server,
                    "[vault].address".to_owned(),
                ),
                None => problems.push(format!("[vault].address {address}: no host")),
            },
            Err(e) => problems.push(format!("[vault].address {address}: {e}")),
        }
    }
    if let (Some(dir), Some(client)) = (
        &dir,
        file.raw
            .mongo
            .as_ref()
            .and_then(|m| m.tls.as_ref())
            .and_then(|t| t.certificate_key_file.as_ref()),
    ) {
        let client = file.path_of(client);
        if client.parent() == Some(dir.as_path())
            && let Some(stem) = client
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pem"))
        {
            want(
                stem,
                ha_tls::Role::Client,
                "[mongo].tls.certificate_key_file".to_owned(),
            );
        }
    }
    for w in &wanted {
        if let Err(e) = ha_tls::PkiDir::new(".").leaf_paths(&w.name) {
            problems.push(format!("{}: {e}", w.used_by.join(", ")));
        }
    }
    problems.finish(())?;
    Ok(Settings {
        dir: dir.unwrap_or_default(),
        organization: organization.unwrap_or_default(),
        organizational_unit: organizational_unit.unwrap_or_default(),
        wanted,
    })
}

impl Settings {
    fn pki_dir(&self) -> ha_tls::PkiDir {
        ha_tls::PkiDir::new(&self.dir)
    }

    fn spec(&self, wanted: &Wanted) -> Result<ha_tls::LeafSpec, ha_tls::Error> {
        match wanted.role {
            ha_tls::Role::Client => ha_tls::LeafSpec::client(
                &wanted.name,
                &self.organization,
                &format!("{} clients", self.organizational_unit),
            ),
            ha_tls::Role::Member | ha_tls::Role::Server => {
                let hosts: Vec<&str> = wanted.hosts.iter().map(String::as_str).collect();
                ha_tls::LeafSpec::host(&hosts, &self.organization, &self.organizational_unit)
            }
        }
    }
}

/// `pki init`: creates the CA unless one exists.
pub fn init(settings: &Settings, dry_run: bool) -> anyhow::Result<ChangeReport> {
    let pki = settings.pki_dir();
    let paths = pki.ca_paths();
    let mut actions = Vec::new();
    if !pki.has_ca() {
        actions.push(Action {
            kind: "create-ca".to_owned(),
            target: paths.cert.display().to_string(),
            detail: format!(
                "create the CA {} (key {}, 0600) for O={} OU={}",
                paths.cert.display(),
                paths.key.display(),
                settings.organization,
                settings.organizational_unit
            ),
        });
        if !dry_run {
            let spec = ha_tls::CaSpec::new(&settings.organization, &settings.organizational_unit);
            pki.ensure_ca(&spec, OffsetDateTime::now_utc())?;
        }
    } else if !dry_run {
        // Loads and checks it; rewrites ca.crt if it went missing.
        let spec = ha_tls::CaSpec::new(&settings.organization, &settings.organizational_unit);
        pki.ensure_ca(&spec, OffsetDateTime::now_utc())?;
    }
    Ok(ChangeReport {
        tool: TOOL,
        dry_run,
        actions,
        warnings: Vec::new(),
    })
}

/// `pki issue`: issues each wanted certificate that is missing or unfit,
/// keeps the others byte for byte. Needs the CA (`pki init`).
pub fn issue(settings: &Settings, dry_run: bool) -> anyhow::Result<ChangeReport> {
    let pki = settings.pki_dir();
    if !pki.has_ca() {
        if dry_run {
            // After `init` (as `circle-ha apply` runs it), every one is new.
            let actions = settings
                .wanted
                .iter()
                .map(|wanted| {
                    let target = pki.leaf_paths(&wanted.name)?.combined;
                    Ok(Action {
                        kind: "issue-certificate".to_owned(),
                        target: target.display().to_string(),
                        detail: format!(
                            "issue {} for {} ({}: no CA yet)",
                            target.display(),
                            wanted.used_by.join(", "),
                            role_name(wanted.role)
                        ),
                    })
                })
                .collect::<Result<Vec<_>, ha_tls::Error>>()?;
            return Ok(ChangeReport {
                tool: TOOL,
                dry_run,
                actions,
                warnings: Vec::new(),
            });
        }
        anyhow::bail!(
            "no CA in {}: run `circle-ha pki init --config …` first",
            settings.dir.display()
        );
    }
    let now = OffsetDateTime::now_utc();
    let ca = pki.load_ca(now)?;
    let mut actions = Vec::new();
    for wanted in &settings.wanted {
        let spec = settings.spec(wanted)?;
        let reason = match pki.inspect_leaf(ca.certificate(), &wanted.name, &spec, now)? {
            ha_tls::LeafState::Valid => continue,
            ha_tls::LeafState::Missing => "missing".to_owned(),
            ha_tls::LeafState::Invalid { reasons } => reasons.join("; "),
        };
        let paths = pki.leaf_paths(&wanted.name)?;
        actions.push(Action {
            kind: "issue-certificate".to_owned(),
            target: paths.combined.display().to_string(),
            detail: format!(
                "issue {} for {} ({}: {reason})",
                paths.combined.display(),
                wanted.used_by.join(", "),
                role_name(wanted.role)
            ),
        });
        if !dry_run {
            pki.ensure_leaf(&ca, &wanted.name, &spec, now)?;
        }
    }
    Ok(ChangeReport {
        tool: TOOL,
        dry_run,
        actions,
        warnings: Vec::new(),
    })
}

/// `pki lint`: every wanted certificate against the CA; JSON, text and
/// exit 3 when any error is found.
pub fn lint(settings: &Settings) -> anyhow::Result<(Value, String, Exit)> {
    let pki = settings.pki_dir();
    let ca_path = pki.ca_paths().cert;
    let mut problems: Vec<LintProblem> = Vec::new();
    let ca = match std::fs::read(&ca_path)
        .map_err(|e| format!("{e} (run `circle-ha pki init`)"))
        .and_then(|pem| {
            ha_tls::Certificate::from_pem(&pem, &ca_path.display().to_string())
                .map_err(|e| e.to_string())
        }) {
        Ok(ca) => ca,
        Err(e) => {
            problems.push((
                ca_path.display().to_string(),
                "error",
                "ca-unreadable".to_owned(),
                e,
            ));
            return Ok(lint_result(settings, &problems));
        }
    };
    let mut pems = Vec::new();
    for wanted in &settings.wanted {
        let path = pki.leaf_paths(&wanted.name)?.combined;
        match std::fs::read(&path) {
            Ok(pem) => pems.push((path, wanted, pem)),
            Err(e) => problems.push((
                path.display().to_string(),
                "error",
                "missing".to_owned(),
                format!("{e} (run `circle-ha pki issue`)"),
            )),
        }
    }
    let inputs: Vec<ha_tls::LintInput<'_>> = pems
        .iter()
        .map(|(path, wanted, pem)| ha_tls::LintInput {
            label: path.display().to_string(),
            role: wanted.role,
            pem,
            hosts: wanted.hosts.clone(),
        })
        .collect();
    for p in ha_tls::lint(&ca, &inputs, OffsetDateTime::now_utc()) {
        let severity = match p.severity {
            ha_tls::Severity::Error => "error",
            ha_tls::Severity::Warning => "warning",
        };
        problems.push((p.label, severity, p.rule.name().to_owned(), p.message));
    }
    Ok(lint_result(settings, &problems))
}

/// `(file, severity, rule, message)`.
type LintProblem = (String, &'static str, String, String);

fn lint_result(settings: &Settings, problems: &[LintProblem]) -> (Value, String, Exit) {
    let errors = problems.iter().filter(|p| p.1 == "error").count();
    let value = json!({
        "ok": errors == 0,
        "checked": settings.wanted.len(),
        "problems": problems
            .iter()
            .map(|(label, severity, rule, message)| json!({
                "file": label, "severity": severity, "rule": rule, "message": message
            }))
            .collect::<Vec<_>>(),
    });
    let mut text = String::new();
    for (label, severity, rule, message) in problems {
        text.push_str(&format!("{severity}: {label}: {message} [{rule}]\n"));
    }
    text.push_str(&if errors == 0 {
        format!(
            "{TOOL}: {} certificate(s) in {} pass ({} warning(s))\n",
            settings.wanted.len(),
            settings.dir.display(),
            problems.len()
        )
    } else {
        format!("{TOOL}: {errors} error(s)\n")
    });
    let exit = if errors == 0 {
        Exit::Success
    } else {
        Exit::Unhealthy
    };
    (value, text, exit)
}

fn role_name(role: ha_tls::Role) -> &'static str {
    match role {
        ha_tls::Role::Client => "client",
        ha_tls::Role::Member => "MongoDB member",
        ha_tls::Role::Server => "server",
    }
}
