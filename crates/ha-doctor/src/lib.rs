//! `circle-ha doctor`: the runbook's troubleshooting list, checked from the
//! Services machine's point of view, with the files and credentials
//! CircleCI itself will use.
//!
//! When CircleCI "seems stuck", the runbook says to check the MongoDB and
//! PostgreSQL URIs for a network issue, a malformed URI, invalid
//! credentials, improper database configuration, or a database restricted
//! to localhost. [`doctor`] reads what the Services machine holds (a
//! [`Machine`]: the installed files, or a rendered bundle directory) and
//! checks each thing CircleCI connects to, exactly as it will: every
//! finding names the [`Cause`] and the one thing to do next.
//!
//! It is read-only except for a probe document it writes to and removes
//! from a scratch collection of each app database; it never prints a
//! secret; a check that cannot run does not stop the others; every
//! network step has a deadline.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() {
//! let machine = ha_doctor::Machine::bundle(std::path::Path::new("bundle"));
//! let report = ha_doctor::doctor(&machine, &ha_doctor::Options::default()).await;
//! for finding in report.problems() {
//!     println!("{}: {} — {}", finding.cause, finding.what, finding.message);
//! }
//! # }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use secrecy;

mod files;
mod mongo;
mod other;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use files::MachineFiles;

/// The runbook's causes, plus TLS and the Services machine's own setup.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Cause {
    /// The Services machine's files: missing, unreadable, invalid, or
    /// disagreeing with each other.
    MachineSetup,
    /// A URI that does not parse.
    MalformedUri,
    /// A name that does not resolve, a port that does not answer.
    Network,
    /// A database that refuses connections from outside (bound to
    /// localhost).
    LocalhostOnly,
    /// A certificate the client does not accept, or a TLS setting that
    /// does not match.
    Tls,
    /// A login that fails.
    Credentials,
    /// A database set up other than CircleCI needs (a missing role,
    /// extension, replica-set name, a sealed Vault …).
    DatabaseConfiguration,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Cause {
    /// The stable name used in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Cause::MachineSetup => "machine-setup",
            Cause::MalformedUri => "malformed-uri",
            Cause::Network => "network",
            Cause::LocalhostOnly => "localhost-only",
            Cause::Tls => "tls",
            Cause::Credentials => "credentials",
            Cause::DatabaseConfiguration => "database-configuration",
        }
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// Its cause.
    pub cause: Cause,
    /// What was checked (`CIRCLE_SECRETS_MONGODB_MAIN_URI`,
    /// `/etc/circleconfig/shared/postgresql`, `vault`).
    pub what: String,
    /// Where (a host, a database, a file line), when it helps.
    pub target: String,
    /// What is wrong and what to do next. Never a secret.
    pub message: String,
}

/// Where the Services machine's files are.
#[derive(Clone, Debug)]
pub struct Machine {
    /// The files.
    pub files: MachineFiles,
}

impl Machine {
    /// The files at their installed paths on the Services machine.
    pub fn installed() -> Machine {
        Machine {
            files: MachineFiles::installed(),
        }
    }

    /// The files of a bundle rendered by `services-userdata render` (or
    /// `circle-ha apply`) into `dir`.
    pub fn bundle(dir: &Path) -> Machine {
        Machine {
            files: MachineFiles::bundle(dir),
        }
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The deadline of each network step (connect, handshake, command).
    pub step_timeout: Duration,
    /// Skip the MongoDB write probe (insert and delete of one document).
    pub read_only: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            step_timeout: Duration::from_secs(5),
            read_only: false,
        }
    }
}

/// Everything [`doctor`] checked and found, as `circle-ha doctor` shows
/// it: healthy when nothing was found; JSON `{healthy, checked: [{what,
/// target}], problems: [{cause, what, target, message}]}`.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What was checked, in order, each with the findings for it (none:
    /// healthy).
    pub checked: Vec<Checked>,
    /// Every problem.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The problems.
    pub fn problems(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether nothing is wrong.
    pub fn is_healthy(&self) -> bool {
        self.findings.is_empty()
    }

    fn check(&mut self, what: &str, target: &str) {
        self.checked.push(Checked {
            what: what.to_owned(),
            target: target.to_owned(),
        });
    }

    fn find(&mut self, cause: Cause, what: &str, target: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            cause,
            what: what.to_owned(),
            target: target.to_owned(),
            message: message.into(),
        });
    }
}

/// One thing [`doctor`] checked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Checked {
    /// What (`CIRCLE_SECRETS_MONGODB_MAIN_URI`, `vault` …).
    pub what: String,
    /// Where, when it helps.
    pub target: String,
}

/// [`Report`] as `--json` shows it.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "DoctorReport")]
struct ReportView<'a> {
    /// Nothing was found wrong.
    healthy: bool,
    /// Everything checked, in order.
    checked: &'a [Checked],
    /// Every problem found.
    problems: &'a [Finding],
}

impl serde::Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReportView {
            healthy: self.is_healthy(),
            checked: &self.checked,
            problems: &self.findings,
        }
        .serialize(serializer)
    }
}

impl schemars::JsonSchema for Report {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DoctorReport".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ReportView::json_schema(generator)
    }
}

impl ha_plan::Document for Report {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for f in &self.findings {
            let target = if f.target.is_empty() {
                String::new()
            } else {
                format!(" ({})", f.target)
            };
            text.push_str(&format!(
                "{:<22} {}{target}: {}\n",
                f.cause.name(),
                f.what,
                f.message
            ));
        }
        text.push_str(&if self.is_healthy() {
            format!(
                "circle-ha doctor: {} check(s), nothing wrong\n",
                self.checked.len()
            )
        } else {
            format!(
                "circle-ha doctor: {} problem(s) in {} check(s)\n",
                self.findings.len(),
                self.checked.len()
            )
        });
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.is_healthy())
    }
}

/// Runs every check: the machine's files, then each MongoDB URI,
/// PostgreSQL and Vault with the credentials the files hold.
pub async fn doctor(machine: &Machine, options: &Options) -> Report {
    let mut report = Report::default();
    let read = files::check(&machine.files, &mut report);
    let ca = read.ca.clone();
    let reached = mongo::reach_all(&read.mongo_uris, options.step_timeout).await;
    // Every URI, PostgreSQL and Vault at the same time, each into its own
    // report (merged in this order): a hung server costs one deadline.
    let step = options.step_timeout;
    let uris = futures_util::future::join_all(read.mongo_uris.iter().map(|(name, uri)| {
        let (ca, reached) = (ca.as_ref(), &reached);
        // Every step has its own deadline; this bounds the sum.
        bounded(step * 6, name, String::new(), "", async move {
            let mut part = Report::default();
            mongo::check_uri(name, uri, ca, reached, options, &mut part).await;
            part
        })
    }));
    let postgres = async {
        let Some(pg) = &read.postgres else {
            return Report::default();
        };
        // A server that accepts and never answers would hold libpq's
        // startup past its connect timeout.
        let why = ": PostgreSQL hung, a firewall, or the address in POSTGRES_HOST/POSTGRES_PORT";
        bounded(
            step * 3,
            "postgresql",
            format!("{}:{}", pg.host, pg.port),
            why,
            async {
                let mut part = Report::default();
                other::check_postgres(pg, ca.as_ref(), options, &mut part).await;
                part
            },
        )
        .await
    };
    let vault = async {
        let Some(vault) = &read.vault else {
            return Report::default();
        };
        // The HTTP client's own timeouts are generous; the doctor's are not.
        let why = ": Vault down, a firewall, or the address in VAULT__HOST/VAULT__PORT";
        bounded(step * 3, "vault", vault.address.clone(), why, async {
            let mut part = Report::default();
            other::check_vault(vault, ca.as_ref(), options, &mut part).await;
            part
        })
        .await
    };
    let (uris, postgres, vault) = tokio::join!(uris, postgres, vault);
    for part in uris.into_iter().chain([postgres, vault]) {
        report.checked.extend(part.checked);
        report.findings.extend(part.findings);
    }
    report
}

/// Runs one check, for at most `limit`: one that does not finish in time
/// is a network finding on `what`/`target`.
async fn bounded(
    limit: Duration,
    what: &str,
    target: String,
    why: &str,
    check: impl std::future::Future<Output = Report>,
) -> Report {
    match tokio::time::timeout(limit, check).await {
        Ok(part) => part,
        Err(_) => {
            let mut part = Report::default();
            part.check(what, &target);
            part.find(
                Cause::Network,
                what,
                &target,
                format!("no complete answer within {}s{why}", limit.as_secs()),
            );
            part
        }
    }
}

/// The CA bundle CircleCI's services trust for the databases: the files
/// installed into `/usr/local/share/ca-certificates` (the bundle's
/// `ca*.crt`).
#[derive(Clone, Debug)]
pub struct Ca {
    /// The PEM bytes, all files together.
    pub pem: Vec<u8>,
    /// A file holding them (for the MongoDB driver, which takes a path).
    pub path: PathBuf,
}

#[cfg(test)]
mod tests;
