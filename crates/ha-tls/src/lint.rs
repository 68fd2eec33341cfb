//! Checks a set of certificates against the rules their consumers enforce.
//!
//! The rules for MongoDB replica-set members come from MongoDB's "Member
//! x.509 Certificates" requirements: one CA for all members; a subject with a
//! non-empty O, OU or DC; the same O, OU and DC on every member (attribute
//! order does not matter); a SAN (or, without SANs, the CN) matching the host
//! name the other members use; if extendedKeyUsage is present it must hold
//! both `serverAuth` and `clientAuth`; not expired. Client certificates need
//! `digitalSignature` and `clientAuth`, and their O/OU/DC combination must
//! differ from the members' (otherwise mongod treats the client as a member).
//!
//! [`lint`] is pure: it takes the certificates' bytes and the time, reports
//! every problem it finds (it does not stop at the first), and touches
//! nothing.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::Certificate;
use crate::ca::parse_key_der;
use crate::cert::pem_blocks;

/// Certificates that expire sooner than this get a warning (mongod logs one
/// at the same threshold).
const EXPIRY_WARNING: Duration = Duration::days(30);

/// What a certificate is for, which decides the rules it must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A client identity (MONGODB-X509 user, PostgreSQL client cert).
    Client,
    /// A MongoDB replica-set member (`tlsCertificateKeyFile`/`clusterFile`).
    Member,
    /// Any other TLS server: PostgreSQL, Vault.
    Server,
}

/// One certificate to check.
#[derive(Clone, Debug)]
pub struct LintInput<'a> {
    /// How problems refer to this input: a path or a name.
    pub label: String,
    /// What the certificate is for.
    pub role: Role,
    /// The PEM bytes: a certificate, optionally followed by its private key
    /// (then the key must match).
    pub pem: &'a [u8],
    /// Host names or IP addresses (no ports) clients use to reach it. Empty
    /// for clients.
    pub hosts: Vec<String>,
}

/// How bad a problem is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the certificate still works.
    Warning,
    /// The certificate will be rejected, or will not do its job.
    Error,
}

/// Which rule a problem breaks. The kebab-case [`Rule::name`] is stable and
/// fit for machine-readable output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The CA certificate is not a CA or not valid now.
    CaInvalid,
    /// A client certificate has the same O/OU/DC as the members.
    ClientLooksLikeMember,
    /// The certificate has expired.
    Expired,
    /// The certificate expires within 30 days.
    ExpiresSoon,
    /// The certificate does not name a host clients use.
    HostNotCovered,
    /// The private key in the PEM does not belong to the certificate.
    KeyMismatch,
    /// Extended key usage lacks `clientAuth`.
    MissingClientAuth,
    /// Key usage lacks `digitalSignature`.
    MissingDigitalSignature,
    /// Extended key usage lacks `serverAuth`.
    MissingServerAuth,
    /// A member's O/OU/DC differ from the other members'.
    MemberSubjectMismatch,
    /// A member's subject has no O, OU or DC.
    MemberSubjectEmpty,
    /// The certificate names are checked against the CN because there is no
    /// subjectAltName extension (deprecated; MongoDB 5.0+ warns).
    NoSubjectAltName,
    /// The certificate was not issued by the CA.
    NotIssuedByCa,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The input could not be parsed.
    Unparseable,
}

impl Rule {
    /// A stable kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::CaInvalid => "ca-invalid",
            Rule::ClientLooksLikeMember => "client-looks-like-member",
            Rule::Expired => "expired",
            Rule::ExpiresSoon => "expires-soon",
            Rule::HostNotCovered => "host-not-covered",
            Rule::KeyMismatch => "key-mismatch",
            Rule::MissingClientAuth => "missing-client-auth",
            Rule::MissingDigitalSignature => "missing-digital-signature",
            Rule::MissingServerAuth => "missing-server-auth",
            Rule::MemberSubjectMismatch => "member-subject-mismatch",
            Rule::MemberSubjectEmpty => "member-subject-empty",
            Rule::NoSubjectAltName => "no-subject-alt-name",
            Rule::NotIssuedByCa => "not-issued-by-ca",
            Rule::NotYetValid => "not-yet-valid",
            Rule::Unparseable => "unparseable",
        }
    }
}

/// One problem found by [`lint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The input's label (or `CA`).
    pub label: String,
    /// How bad it is.
    pub severity: Severity,
    /// The rule broken.
    pub rule: Rule,
    /// What exactly is wrong and, where useful, what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{severity}: {}: {} [{}]",
            self.label,
            self.message,
            self.rule.name()
        )
    }
}

/// Checks `inputs` against `ca` at time `now` and returns every problem,
/// errors first, in input order. An empty result means all is well.
pub fn lint(ca: &Certificate, inputs: &[LintInput<'_>], now: OffsetDateTime) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = |label: &str, severity, rule, message: String| {
        problems.push(Problem {
            label: label.to_owned(),
            severity,
            rule,
            message,
        });
    };

    if !ca.is_ca() {
        report(
            "CA",
            Severity::Error,
            Rule::CaInvalid,
            format!("{} is not a CA certificate", ca.subject()),
        );
    }
    check_validity("CA", ca, now, &mut report);

    let mut parsed: Vec<(&LintInput<'_>, Certificate)> = Vec::new();
    for input in inputs {
        match Certificate::from_pem(input.pem, &input.label) {
            Ok(cert) => parsed.push((input, cert)),
            Err(e) => report(
                &input.label,
                Severity::Error,
                Rule::Unparseable,
                e.to_string(),
            ),
        }
    }

    let first_member = parsed
        .iter()
        .find(|(input, _)| input.role == Role::Member)
        .map(|(input, cert)| (input.label.clone(), cert.membership_attributes()));

    for (input, cert) in &parsed {
        let label = input.label.as_str();
        if !cert.is_signed_by(ca) {
            report(
                label,
                Severity::Error,
                Rule::NotIssuedByCa,
                format!(
                    "issued to {} but not signed by the CA {}; every member and client must \
                     chain to the one CA in tlsCAFile",
                    cert.subject(),
                    ca.subject()
                ),
            );
        }
        check_validity(label, cert, now, &mut report);
        check_key(input, cert, &mut report);
        check_hosts(input, cert, &mut report);

        let eku = cert.extended_key_usage();
        let has =
            |pick: fn(&crate::ExtendedKeyUsage) -> bool| eku.is_none_or(|e| e.any || pick(&e));
        match input.role {
            Role::Member => {
                if !has(|e| e.server_auth) {
                    report(
                        label,
                        Severity::Error,
                        Rule::MissingServerAuth,
                        "extendedKeyUsage lacks serverAuth; a member certificate with \
                         extendedKeyUsage must allow both serverAuth and clientAuth"
                            .to_owned(),
                    );
                }
                if !has(|e| e.client_auth) {
                    report(
                        label,
                        Severity::Error,
                        Rule::MissingClientAuth,
                        "extendedKeyUsage lacks clientAuth; members present this certificate \
                         as clients to each other, so x509 cluster authentication fails"
                            .to_owned(),
                    );
                }
                let attributes = cert.membership_attributes();
                if attributes.is_empty() {
                    report(
                        label,
                        Severity::Error,
                        Rule::MemberSubjectEmpty,
                        format!(
                            "subject {} has no O, OU or DC; MongoDB needs at least one to \
                             recognise members",
                            cert.subject()
                        ),
                    );
                }
                if let Some((first_label, first)) = &first_member
                    && first_label != label
                    && &attributes != first
                {
                    report(
                        label,
                        Severity::Error,
                        Rule::MemberSubjectMismatch,
                        format!(
                            "O/OU/DC ({attributes}) differ from {first_label} ({first}); \
                                 every member certificate must carry the same O, OU and DC"
                        ),
                    );
                }
            }
            Role::Server => {
                if !has(|e| e.server_auth) {
                    report(
                        label,
                        Severity::Error,
                        Rule::MissingServerAuth,
                        "extendedKeyUsage lacks serverAuth; TLS clients will refuse it".to_owned(),
                    );
                }
            }
            Role::Client => {
                if !has(|e| e.client_auth) {
                    report(
                        label,
                        Severity::Error,
                        Rule::MissingClientAuth,
                        "extendedKeyUsage lacks clientAuth; servers will refuse it".to_owned(),
                    );
                }
                if cert.key_usage().is_some_and(|ku| !ku.digital_signature) {
                    report(
                        label,
                        Severity::Error,
                        Rule::MissingDigitalSignature,
                        "keyUsage lacks digitalSignature, which client certificates need"
                            .to_owned(),
                    );
                }
                if let Some((first_label, first)) = &first_member
                    && &cert.membership_attributes() == first
                {
                    report(
                        label,
                        Severity::Error,
                        Rule::ClientLooksLikeMember,
                        format!(
                            "O/OU/DC ({first}) equal the members' ({first_label}); mongod \
                                 would treat this client as a cluster member with full rights. \
                                 Give clients a different OU"
                        ),
                    );
                }
            }
        }
    }

    problems.sort_by_key(|p| std::cmp::Reverse(p.severity));
    problems
}

fn check_validity(
    label: &str,
    cert: &Certificate,
    now: OffsetDateTime,
    report: &mut impl FnMut(&str, Severity, Rule, String),
) {
    if now > cert.not_after() {
        report(
            label,
            Severity::Error,
            Rule::Expired,
            format!("expired on {}", cert.not_after()),
        );
    } else if now < cert.not_before() {
        report(
            label,
            Severity::Error,
            Rule::NotYetValid,
            format!("not valid before {} (is a clock wrong?)", cert.not_before()),
        );
    } else if cert.not_after() - now < EXPIRY_WARNING {
        report(
            label,
            Severity::Warning,
            Rule::ExpiresSoon,
            format!("expires on {}, within 30 days", cert.not_after()),
        );
    }
}

fn check_key(
    input: &LintInput<'_>,
    cert: &Certificate,
    report: &mut impl FnMut(&str, Severity, Rule, String),
) {
    let Ok(blocks) = pem_blocks(input.pem, &input.label) else {
        return;
    };
    for block in blocks {
        if !block.label.ends_with("PRIVATE KEY") {
            continue;
        }
        match parse_key_der(&block.contents, &input.label) {
            Ok(key) => {
                if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key_der() {
                    report(
                        &input.label,
                        Severity::Error,
                        Rule::KeyMismatch,
                        "the private key in this file does not belong to its certificate"
                            .to_owned(),
                    );
                }
            }
            Err(e) => report(
                &input.label,
                Severity::Error,
                Rule::Unparseable,
                e.to_string(),
            ),
        }
    }
}

fn check_hosts(
    input: &LintInput<'_>,
    cert: &Certificate,
    report: &mut impl FnMut(&str, Severity, Rule, String),
) {
    if input.hosts.is_empty() {
        return;
    }
    if !cert.has_subject_alt_names() {
        report(
            &input.label,
            Severity::Warning,
            Rule::NoSubjectAltName,
            "no subjectAltName extension; host names are matched against the CN, which modern \
             clients reject and MongoDB 5.0+ warns about"
                .to_owned(),
        );
    }
    for host in &input.hosts {
        if !cert.covers_host(host) {
            let mut names: Vec<String> = cert.dns_names().to_vec();
            names.extend(cert.ip_addresses().iter().map(|ip| ip.to_string()));
            if names.is_empty() {
                names = cert.common_names().to_vec();
            }
            report(
                &input.label,
                Severity::Error,
                Rule::HostNotCovered,
                format!(
                    "{host} is not among the certificate's names ({}); clients connecting to \
                     {host} will fail hostname verification",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            );
        }
    }
}
