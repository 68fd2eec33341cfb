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

use ha_config::PkiSettings;
use ha_plan::{Findings, Report};
use serde_json::json;
use time::OffsetDateTime;

const TOOL: &str = "circle-ha pki";

/// `pki init`: creates the CA unless one exists (an existing one is
/// loaded and checked, never replaced).
pub fn init(settings: &PkiSettings, dry_run: bool) -> anyhow::Result<Report> {
    let steps = settings.plan_ca();
    if !dry_run {
        settings.ensure_ca(OffsetDateTime::now_utc())?;
    }
    Ok(Report::from_changes(TOOL, dry_run, &steps, Vec::new()))
}

/// `pki issue`: issues each wanted certificate that is missing or unfit,
/// keeps the others byte for byte. Needs the CA (`pki init`), except for a
/// dry run, which plans every certificate as after `init`.
pub fn issue(settings: &PkiSettings, dry_run: bool) -> anyhow::Result<Report> {
    let now = OffsetDateTime::now_utc();
    if !dry_run && !settings.plan_ca().is_empty() {
        anyhow::bail!(
            "no CA in {}: run `circle-ha pki init --config …` first",
            settings.dir.display()
        );
    }
    let steps = settings.plan_certificates(now)?;
    if !dry_run {
        settings.apply_certificates(&steps, now)?;
    }
    Ok(Report::from_changes(TOOL, dry_run, &steps, Vec::new()))
}

/// `pki lint`: every wanted certificate against the CA; exit 3 when any
/// error is found.
pub fn lint(settings: &PkiSettings) -> anyhow::Result<Findings> {
    let findings = settings.lint(OffsetDateTime::now_utc())?;
    let problems: Vec<LintProblem> = findings
        .into_iter()
        .map(|f| {
            let severity = match f.severity {
                ha_tls::Severity::Error => "error",
                ha_tls::Severity::Warning => "warning",
            };
            (f.file, severity, f.rule, f.message)
        })
        .collect();
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
