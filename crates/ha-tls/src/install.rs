//! An installation's certificates as one plan: the CA and every host and
//! client certificate it needs, created or issued only where missing or
//! unfit, and linted together.

use std::fmt;
use std::path::PathBuf;

use ha_plan::{Document, Plan, Report};
use time::OffsetDateTime;

use crate::{CaSpec, Certificate, Error, LeafSpec, LeafState, LintInput, PkiDir, Role, Severity};

/// One certificate an installation calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedCert {
    /// The file stem in the PKI directory (`<name>.crt/.key/.pem`).
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// The host names it must cover (empty for a client).
    pub hosts: Vec<String>,
    /// Who calls for it (configuration keys), for messages.
    pub used_by: Vec<String>,
}

impl WantedCert {
    /// The certificate named `name` (its file stem, and for a member or a
    /// server the host name it covers; a client covers none), called for by
    /// `used_by`.
    pub fn new(name: impl Into<String>, role: Role, used_by: impl Into<String>) -> WantedCert {
        let name = name.into();
        WantedCert {
            hosts: if role == Role::Client {
                Vec::new()
            } else {
                vec![name.clone()]
            },
            name,
            role,
            used_by: vec![used_by.into()],
        }
    }
}

/// The installation's PKI: where it lives, the subject's O/OU, and every
/// certificate, members first.
#[derive(Clone, Debug)]
pub struct PkiSpec {
    /// The directory (CA and certificates; keys 0600).
    pub dir: PathBuf,
    /// O, identical on every member certificate.
    pub organization: String,
    /// OU of the members (clients get `<ou> clients`, so they can never
    /// pass as members).
    pub organizational_unit: String,
    /// Every certificate to hold.
    pub wanted: Vec<WantedCert>,
}

/// One change to the PKI directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiStep {
    /// Create the CA (there is none).
    CreateCa {
        /// `ca.pem`.
        cert: PathBuf,
        /// `ca.key` (0600).
        key: PathBuf,
        /// Its O.
        organization: String,
        /// Its OU.
        organizational_unit: String,
    },
    /// Issue (or reissue) a certificate.
    IssueCertificate {
        /// The combined `<name>.pem`.
        path: PathBuf,
        /// The certificate's name in the spec.
        name: String,
        /// Who calls for it.
        used_by: Vec<String>,
        /// What it is for.
        role: Role,
        /// Why: missing, or what is unfit.
        reason: String,
    },
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Member => "MongoDB member",
        Role::Server => "server",
    }
}

impl ha_plan::Change for PkiStep {
    fn kind(&self) -> &'static str {
        match self {
            PkiStep::CreateCa { .. } => "create-ca",
            PkiStep::IssueCertificate { .. } => "issue-certificate",
        }
    }

    fn target(&self) -> String {
        match self {
            PkiStep::CreateCa { cert, .. } => cert.display().to_string(),
            PkiStep::IssueCertificate { path, .. } => path.display().to_string(),
        }
    }
}

impl fmt::Display for PkiStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiStep::CreateCa {
                cert,
                key,
                organization,
                organizational_unit,
            } => write!(
                f,
                "create the CA {} (key {}, 0600) for O={organization} OU={organizational_unit}",
                cert.display(),
                key.display()
            ),
            PkiStep::IssueCertificate {
                path,
                used_by,
                role,
                reason,
                ..
            } => write!(
                f,
                "issue {} for {} ({}: {reason})",
                path.display(),
                used_by.join(", "),
                role_name(*role)
            ),
        }
    }
}

/// One lint finding of [`PkiSpec::lint`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PkiFinding {
    /// The file.
    pub file: String,
    /// Error or warning.
    pub severity: Severity,
    /// The rule's name (`ca-unreadable`, `missing`, or a lint rule).
    pub rule: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// `circle-ha pki lint`: every certificate `ha.toml` wants, checked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct LintFindings {
    /// No finding is an error.
    pub healthy: bool,
    /// Certificates checked.
    pub checked: usize,
    /// Every finding, errors and warnings.
    pub problems: Vec<PkiFinding>,
    /// When each certificate that could be read expires (its `notAfter`,
    /// seconds since the epoch), by file: the CA and every host's.
    pub expires: std::collections::BTreeMap<String, i64>,
    /// The tool named in the summary line.
    #[serde(skip)]
    pub tool: String,
    /// The PKI directory.
    #[serde(skip)]
    pub dir: String,
}

impl Document for LintFindings {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for f in &self.problems {
            text.push_str(&format!(
                "{}: {}: {} [{}]\n",
                severity_name(f.severity),
                f.file,
                f.message,
                f.rule
            ));
        }
        let errors = self
            .problems
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        text.push_str(&if errors == 0 {
            format!(
                "{}: {} certificate(s) in {} pass ({} warning(s))\n",
                self.tool,
                self.checked,
                self.dir,
                self.problems.len()
            )
        } else {
            format!("{}: {errors} error(s)\n", self.tool)
        });
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

impl PkiSpec {
    fn pki_dir(&self) -> PkiDir {
        PkiDir::new(&self.dir)
    }

    fn ca_spec(&self) -> CaSpec {
        CaSpec::new(&self.organization, &self.organizational_unit)
    }

    fn leaf_spec(&self, wanted: &WantedCert) -> Result<LeafSpec, Error> {
        match wanted.role {
            Role::Client => LeafSpec::client(
                &wanted.name,
                &self.organization,
                &format!("{} clients", self.organizational_unit),
            ),
            Role::Member | Role::Server => {
                let hosts: Vec<&str> = wanted.hosts.iter().map(String::as_str).collect();
                LeafSpec::host(&hosts, &self.organization, &self.organizational_unit)
            }
        }
    }

    /// What `init` would do: create the CA when there is none.
    pub fn plan_ca(&self) -> Plan<PkiStep> {
        let pki = self.pki_dir();
        if pki.has_ca() {
            return Plan::default();
        }
        let paths = pki.ca_paths();
        Plan::new(vec![PkiStep::CreateCa {
            cert: paths.cert,
            key: paths.key,
            organization: self.organization.clone(),
            organizational_unit: self.organizational_unit.clone(),
        }])
    }

    /// What `issue` would do: every wanted certificate that is missing or
    /// unfit (expiring within 30 days, not covering its hosts, not from the
    /// CA). Without a CA yet, every one (as after `init`).
    pub fn plan_certificates(&self, now: OffsetDateTime) -> Result<Plan<PkiStep>, Error> {
        let pki = self.pki_dir();
        let ca = if pki.has_ca() {
            Some(pki.load_ca(now)?)
        } else {
            None
        };
        let mut steps = Vec::new();
        for wanted in &self.wanted {
            let reason = match &ca {
                None => "no CA yet".to_owned(),
                Some(ca) => {
                    let spec = self.leaf_spec(wanted)?;
                    match pki.inspect_leaf(ca.certificate(), &wanted.name, &spec, now)? {
                        LeafState::Valid => continue,
                        LeafState::Missing => "missing".to_owned(),
                        LeafState::Invalid { reasons } => reasons.join("; "),
                    }
                }
            };
            steps.push(PkiStep::IssueCertificate {
                path: pki.leaf_paths(&wanted.name)?.combined,
                name: wanted.name.clone(),
                used_by: wanted.used_by.clone(),
                role: wanted.role,
                reason,
            });
        }
        Ok(Plan::new(steps))
    }

    /// Loads and checks an existing CA (rewriting `ca.crt` if it went
    /// missing), or creates one: never replaces a CA.
    pub fn ensure_ca(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.pki_dir().ensure_ca(&self.ca_spec(), now).map(|_| ())
    }

    /// Carries out the certificate steps (the CA must exist).
    pub fn apply_certificates(&self, steps: &[PkiStep], now: OffsetDateTime) -> Result<(), Error> {
        let pki = self.pki_dir();
        let ca = pki.load_ca(now)?;
        for step in steps {
            if let PkiStep::IssueCertificate { name, .. } = step
                && let Some(wanted) = self.wanted.iter().find(|w| w.name == *name)
            {
                pki.ensure_leaf(&ca, &wanted.name, &self.leaf_spec(wanted)?, now)?;
            }
        }
        Ok(())
    }

    /// `circle-ha pki init` as one call: creates the CA unless one exists
    /// (an existing one is loaded and checked, never replaced), and reports
    /// it under `tool`'s name.
    pub fn init(&self, tool: &str, now: OffsetDateTime, dry_run: bool) -> Result<Report, Error> {
        let plan = self.plan_ca();
        if !dry_run {
            self.ensure_ca(now)?;
        }
        Ok(plan.to_report(tool, dry_run))
    }

    /// `circle-ha pki issue` as one call: issues each wanted certificate
    /// that is missing or unfit and keeps the others byte for byte. Needs
    /// the CA ([`Error::NoCa`]), except for a dry run, which plans every
    /// certificate as after `init`.
    pub fn issue(&self, tool: &str, now: OffsetDateTime, dry_run: bool) -> Result<Report, Error> {
        if !dry_run && !self.plan_ca().is_empty() {
            return Err(Error::NoCa {
                dir: self.dir.clone(),
            });
        }
        let plan = self.plan_certificates(now)?;
        if !dry_run {
            self.apply_certificates(&plan.steps, now)?;
        }
        Ok(plan.to_report(tool, dry_run))
    }

    /// [`PkiSpec::lint`] as findings (`circle-ha pki lint`): healthy when
    /// no finding is an error; JSON `{healthy, checked, problems: [{file,
    /// severity, rule, message}]}`.
    pub fn lint_findings(&self, tool: &str, now: OffsetDateTime) -> Result<LintFindings, Error> {
        let (problems, expires) = self.lint_with_expiry(now)?;
        Ok(LintFindings {
            healthy: !problems.iter().any(|f| f.severity == Severity::Error),
            checked: self.wanted.len(),
            problems,
            expires,
            tool: tool.to_owned(),
            dir: self.dir.display().to_string(),
        })
    }

    /// Every wanted certificate against the CA and MongoDB's member rules,
    /// host-name coverage and expiry: every finding at once.
    pub fn lint(&self, now: OffsetDateTime) -> Result<Vec<PkiFinding>, Error> {
        Ok(self.lint_with_expiry(now)?.0)
    }

    /// [`PkiSpec::lint`], and when each certificate read expires, by file.
    fn lint_with_expiry(
        &self,
        now: OffsetDateTime,
    ) -> Result<(Vec<PkiFinding>, std::collections::BTreeMap<String, i64>), Error> {
        let mut expires = std::collections::BTreeMap::new();
        let pki = self.pki_dir();
        let ca_path = pki.ca_paths().cert;
        let mut findings = Vec::new();
        let ca = match std::fs::read(&ca_path)
            .map_err(|e| format!("{e} (run `circle-ha pki init`)"))
            .and_then(|pem| {
                Certificate::from_pem(&pem, &ca_path.display().to_string())
                    .map_err(|e| e.to_string())
            }) {
            Ok(ca) => ca,
            Err(message) => {
                findings.push(PkiFinding {
                    file: ca_path.display().to_string(),
                    severity: Severity::Error,
                    rule: "ca-unreadable".to_owned(),
                    message,
                });
                return Ok((findings, expires));
            }
        };
        expires.insert(
            ca_path.display().to_string(),
            ca.not_after().unix_timestamp(),
        );
        let mut pems = Vec::new();
        for wanted in &self.wanted {
            let path = pki.leaf_paths(&wanted.name)?.combined;
            match std::fs::read(&path) {
                Ok(pem) => pems.push((path, wanted, pem)),
                Err(e) => findings.push(PkiFinding {
                    file: path.display().to_string(),
                    severity: Severity::Error,
                    rule: "missing".to_owned(),
                    message: format!("{e} (run `circle-ha pki issue`)"),
                }),
            }
        }
        for (path, _, pem) in &pems {
            let label = path.display().to_string();
            if let Ok(cert) = Certificate::from_pem(pem, &label) {
                expires.insert(label, cert.not_after().unix_timestamp());
            }
        }
        let inputs: Vec<LintInput<'_>> = pems
            .iter()
            .map(|(path, wanted, pem)| LintInput {
                label: path.display().to_string(),
                role: wanted.role,
                pem,
                hosts: wanted.hosts.clone(),
            })
            .collect();
        for problem in crate::lint(&ca, &inputs, now) {
            findings.push(PkiFinding {
                file: problem.label,
                severity: problem.severity,
                rule: problem.rule.name().to_owned(),
                message: problem.message,
            });
        }
        Ok((findings, expires))
    }
}
