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

use ha_config::{PkiSettings, WantedCertificate};
use ha_plan::{Action, Findings, Report};
use serde_json::json;
use time::OffsetDateTime;

const TOOL: &str = "circle-ha pki";

fn pki_dir(settings: &PkiSettings) -> ha_tls::PkiDir {
    ha_tls::PkiDir::new(&settings.dir)
}

fn leaf_spec(
    settings: &PkiSettings,
    wanted: &WantedCertificate,
) -> Result<ha_tls::LeafSpec, ha_tls::Error> {
    match wanted.role {
        ha_tls::Role::Client => ha_tls::LeafSpec::client(
            &wanted.name,
            &settings.organization,
            &format!("{} clients", settings.organizational_unit),
        ),
        ha_tls::Role::Member | ha_tls::Role::Server => {
            let hosts: Vec<&str> = wanted.hosts.iter().map(String::as_str).collect();
            ha_tls::LeafSpec::host(
                &hosts,
                &settings.organization,
                &settings.organizational_unit,
            )
        }
    }
}

/// `pki init`: creates the CA unless one exists.
pub fn init(settings: &PkiSettings, dry_run: bool) -> anyhow::Result<Report> {
    let pki = pki_dir(settings);
    let paths = pki.ca_paths();
    let mut actions = Vec::new();
    if !pki.has_ca() {
        actions.push(Action::new(
            "create-ca",
            paths.cert.display().to_string(),
            format!(
                "create the CA {} (key {}, 0600) for O={} OU={}",
                paths.cert.display(),
                paths.key.display(),
                settings.organization,
                settings.organizational_unit
            ),
        ));
        if !dry_run {
            let spec = ha_tls::CaSpec::new(&settings.organization, &settings.organizational_unit);
            pki.ensure_ca(&spec, OffsetDateTime::now_utc())?;
        }
    } else if !dry_run {
        // Loads and checks it; rewrites ca.crt if it went missing.
        let spec = ha_tls::CaSpec::new(&settings.organization, &settings.organizational_unit);
        pki.ensure_ca(&spec, OffsetDateTime::now_utc())?;
    }
    Ok(Report::new(TOOL, dry_run, actions, Vec::new()))
}

/// `pki issue`: issues each wanted certificate that is missing or unfit,
/// keeps the others byte for byte. Needs the CA (`pki init`).
pub fn issue(settings: &PkiSettings, dry_run: bool) -> anyhow::Result<Report> {
    let pki = pki_dir(settings);
    if !pki.has_ca() {
        if dry_run {
            // After `init` (as `circle-ha apply` runs it), every one is new.
            let actions = settings
                .wanted
                .iter()
                .map(|wanted| {
                    let target = pki.leaf_paths(&wanted.name)?.combined;
                    Ok(Action::new(
                        "issue-certificate",
                        target.display().to_string(),
                        format!(
                            "issue {} for {} ({}: no CA yet)",
                            target.display(),
                            wanted.used_by.join(", "),
                            role_name(wanted.role)
                        ),
                    ))
                })
                .collect::<Result<Vec<_>, ha_tls::Error>>()?;
            return Ok(Report::new(TOOL, dry_run, actions, Vec::new()));
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
        let spec = leaf_spec(settings, wanted)?;
        let reason = match pki.inspect_leaf(ca.certificate(), &wanted.name, &spec, now)? {
            ha_tls::LeafState::Valid => continue,
            ha_tls::LeafState::Missing => "missing".to_owned(),
            ha_tls::LeafState::Invalid { reasons } => reasons.join("; "),
        };
        let paths = pki.leaf_paths(&wanted.name)?;
        actions.push(Action::new(
            "issue-certificate",
            paths.combined.display().to_string(),
            format!(
                "issue {} for {} ({}: {reason})",
                paths.combined.display(),
                wanted.used_by.join(", "),
                role_name(wanted.role)
            ),
        ));
        if !dry_run {
            pki.ensure_leaf(&ca, &wanted.name, &spec, now)?;
        }
    }
    Ok(Report::new(TOOL, dry_run, actions, Vec::new()))
}

/// `pki lint`: every wanted certificate against the CA; JSON, text and
/// exit 3 when any error is found.
pub fn lint(settings: &PkiSettings) -> anyhow::Result<Findings> {
    let pki = pki_dir(settings);
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

fn lint_result(settings: &PkiSettings, problems: &[LintProblem]) -> Findings {
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
    Findings::new(errors == 0, value, text)
}

fn role_name(role: ha_tls::Role) -> &'static str {
    match role {
        ha_tls::Role::Client => "client",
        ha_tls::Role::Member => "MongoDB member",
        ha_tls::Role::Server => "server",
    }
}
