//! The linter: one test per rule the foundation issue names, plus the
//! neighbours that keep those tests honest.

use ha_tls::{Certificate, LeafSpec, LintInput, Role, Rule, Severity, lint};
use rcgen::ExtendedKeyUsagePurpose;
use time::Duration;

use crate::{Custom, ORG, UNIT, custom_cert, new_ca, now};

fn member(label: &str, pem: &str, host: &str) -> (String, String, String) {
    (label.to_owned(), pem.to_owned(), host.to_owned())
}

fn run(ca: &ha_tls::Ca, members: &[(String, String, String)]) -> Vec<ha_tls::Problem> {
    let inputs: Vec<LintInput<'_>> = members
        .iter()
        .map(|(label, pem, host)| LintInput {
            label: label.clone(),
            role: Role::Member,
            pem: pem.as_bytes(),
            hosts: vec![host.clone()],
        })
        .collect();
    lint(ca.certificate(), &inputs, now())
}

fn issued_member(ca: &ha_tls::Ca, host: &str) -> String {
    let issued = ca
        .issue(&LeafSpec::host(&[host], ORG, UNIT).unwrap(), now())
        .unwrap();
    use secrecy::ExposeSecret as _;
    format!("{}{}", issued.cert_pem, issued.key_pem.expose_secret())
}

fn three_good_members(ca: &ha_tls::Ca) -> Vec<(String, String, String)> {
    (1..=3)
        .map(|i| {
            let host = format!("mongo-{i}.internal");
            member(&format!("{host}.pem"), &issued_member(ca, &host), &host)
        })
        .collect()
}

#[test]
fn certificates_issued_by_ha_tls_pass() {
    let ca = new_ca();
    let problems = run(&ca, &three_good_members(&ca));
    assert_eq!(problems, vec![]);
}

#[test]
fn differing_organizational_unit_is_rejected_naming_both_members() {
    let ca = new_ca();
    let mut members = three_good_members(&ca);
    members[2].1 = custom_cert(
        &ca,
        Custom {
            hosts: &["mongo-3.internal"],
            unit: "Platform",
            ..Custom::default()
        },
    );
    let problems = run(&ca, &members);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let problem = &problems[0];
    assert_eq!(problem.rule, Rule::MemberSubjectMismatch);
    assert_eq!(problem.severity, Severity::Error);
    assert_eq!(problem.label, "mongo-3.internal.pem");
    assert!(
        problem.message.contains("OU=Platform")
            && problem.message.contains("OU=CircleCI")
            && problem.message.contains("mongo-1.internal.pem"),
        "{}",
        problem.message
    );
}

#[test]
fn differing_organization_is_rejected() {
    let ca = new_ca();
    let mut members = three_good_members(&ca);
    members[1].1 = custom_cert(
        &ca,
        Custom {
            hosts: &["mongo-2.internal"],
            organization: "Other Corp",
            ..Custom::default()
        },
    );
    let problems = run(&ca, &members);
    let rules: Vec<Rule> = problems.iter().map(|p| p.rule).collect();
    assert_eq!(rules, vec![Rule::MemberSubjectMismatch]);
    assert!(problems[0].message.contains("O=Other Corp"));
}

#[test]
fn missing_client_auth_is_rejected() {
    let ca = new_ca();
    let mut members = three_good_members(&ca);
    members[0].1 = custom_cert(
        &ca,
        Custom {
            ekus: vec![ExtendedKeyUsagePurpose::ServerAuth],
            ..Custom::default()
        },
    );
    let problems = run(&ca, &members);
    let rules: Vec<Rule> = problems.iter().map(|p| p.rule).collect();
    assert_eq!(rules, vec![Rule::MissingClientAuth], "{problems:#?}");
    assert_eq!(problems[0].label, "mongo-1.internal.pem");
    assert!(problems[0].message.contains("clientAuth"));
}

#[test]
fn san_not_covering_the_host_is_rejected() {
    let ca = new_ca();
    let mut members = three_good_members(&ca);
    // The certificate was made for a cloud-internal name, not the configured one.
    members[1].1 = custom_cert(
        &ca,
        Custom {
            hosts: &["ip-10-0-0-12.ec2.internal"],
            ..Custom::default()
        },
    );
    let problems = run(&ca, &members);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].rule, Rule::HostNotCovered);
    assert!(
        problems[0].message.contains("mongo-2.internal")
            && problems[0].message.contains("ip-10-0-0-12.ec2.internal"),
        "{}",
        problems[0].message
    );
}

#[test]
fn expired_certificate_is_rejected() {
    let ca = new_ca();
    let mut members = three_good_members(&ca);
    members[2].1 = custom_cert(
        &ca,
        Custom {
            hosts: &["mongo-3.internal"],
            not_before: now() - Duration::days(400),
            not_after: now() - Duration::days(1),
            ..Custom::default()
        },
    );
    let problems = run(&ca, &members);
    let rules: Vec<Rule> = problems.iter().map(|p| p.rule).collect();
    assert_eq!(rules, vec![Rule::Expired], "{problems:#?}");
    assert!(problems[0].message.contains("expired on"));
}

#[test]
fn several_problems_are_all_reported_at_once() {
    let ca = new_ca();
    let other_ca = new_ca();
    let mut members = three_good_members(&ca);
    members[0].1 = custom_cert(
        &ca,
        Custom {
            ekus: vec![ExtendedKeyUsagePurpose::ServerAuth],
            not_after: now() + Duration::days(3),
            ..Custom::default()
        },
    );
    members[1].1 = issued_member(&other_ca, "mongo-2.internal");
    members[2].2 = "mongo-3.example.com".to_owned();
    let problems = run(&ca, &members);
    let mut rules: Vec<&str> = problems.iter().map(|p| p.rule.name()).collect();
    rules.sort();
    assert_eq!(
        rules,
        vec![
            "expires-soon",
            "host-not-covered",
            "missing-client-auth",
            "not-issued-by-ca"
        ]
    );
    // Errors come before warnings.
    assert_eq!(problems.last().unwrap().severity, Severity::Warning);
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_is_reported() {
    let ca = new_ca();
    let mut members = three_good_members(&ca);
    let cert_of_one = members[0]
        .1
        .split("-----BEGIN PRIVATE KEY")
        .next()
        .unwrap()
        .to_owned();
    let key_of_two = &members[1].1[members[1].1.find("-----BEGIN PRIVATE KEY").unwrap()..];
    members[0].1 = format!("{cert_of_one}{key_of_two}");
    let problems = run(&ca, &members);
    let rules: Vec<Rule> = problems.iter().map(|p| p.rule).collect();
    assert_eq!(rules, vec![Rule::KeyMismatch]);
}

#[test]
fn client_certificates_must_not_look_like_members() {
    let ca = new_ca();
    let members = three_good_members(&ca);
    let same_ou = ca
        .issue(&LeafSpec::client("circle-admin", ORG, UNIT).unwrap(), now())
        .unwrap();
    let own_ou = ca
        .issue(
            &LeafSpec::client("circle-admin", ORG, "CircleCI clients").unwrap(),
            now(),
        )
        .unwrap();
    let mut inputs: Vec<LintInput<'_>> = members
        .iter()
        .map(|(label, pem, host)| LintInput {
            label: label.clone(),
            role: Role::Member,
            pem: pem.as_bytes(),
            hosts: vec![host.clone()],
        })
        .collect();
    for (label, pem) in [
        ("same-ou.pem", &same_ou.cert_pem),
        ("own-ou.pem", &own_ou.cert_pem),
    ] {
        inputs.push(LintInput {
            label: label.to_owned(),
            role: Role::Client,
            pem: pem.as_bytes(),
            hosts: vec![],
        });
    }
    let problems = lint(ca.certificate(), &inputs, now());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].label, "same-ou.pem");
    assert_eq!(problems[0].rule, Rule::ClientLooksLikeMember);
}

#[test]
fn ip_addresses_and_wildcards_are_matched() {
    let ca = new_ca();
    let spec = LeafSpec::host(&["10.0.0.5:27017", "pg.internal"], ORG, UNIT).unwrap();
    let issued = ca.issue(&spec, now()).unwrap();
    let cert = Certificate::from_pem(issued.cert_pem.as_bytes(), "t").unwrap();
    assert!(cert.covers_host("10.0.0.5"));
    assert!(cert.covers_host("PG.internal"));
    assert!(!cert.covers_host("10.0.0.6"));
    assert_eq!(cert.common_names(), ["pg.internal".to_owned()]);
    let wildcard = custom_cert(
        &ca,
        Custom {
            hosts: &["*.internal"],
            ..Custom::default()
        },
    );
    let cert = Certificate::from_pem(wildcard.as_bytes(), "t").unwrap();
    assert!(cert.covers_host("mongo-1.internal"));
    assert!(!cert.covers_host("a.mongo-1.internal"));
}

#[test]
fn garbage_is_reported_not_panicked_on() {
    let ca = new_ca();
    let inputs = [LintInput {
        label: "junk.pem".to_owned(),
        role: Role::Server,
        pem: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        hosts: vec!["pg.internal".to_owned()],
    }];
    let problems = lint(ca.certificate(), &inputs, now());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].rule, Rule::Unparseable);
    assert!(problems[0].to_string().starts_with("error: junk.pem: "));
}
