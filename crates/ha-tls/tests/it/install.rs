//! An installation's certificates as a library user plans and applies
//! them: CA, members, a server, the tools' client; a second plan is empty;
//! lint passes; a removed certificate is planned alone.

use ha_plan::Change as _;
use ha_tls::{PkiSpec, Role, WantedCert};

fn spec(dir: &std::path::Path) -> PkiSpec {
    let want = |name: &str, role: Role| WantedCert::new(name, role, format!("test {name}"));
    PkiSpec {
        dir: dir.join("pki"),
        organization: "Example Corp".to_owned(),
        organizational_unit: "CircleCI".to_owned(),
        wanted: vec![
            want("mongo-1.internal", Role::Member),
            want("mongo-2.internal", Role::Member),
            want("pg.internal", Role::Server),
            want("client", Role::Client),
        ],
    }
}

#[test]
fn plan_apply_then_nothing_to_do_and_lint_passes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let now = time::OffsetDateTime::now_utc();
    let ca = spec.plan_ca();
    assert_eq!(ca.steps.len(), 1);
    assert_eq!(ca.steps[0].kind(), "create-ca");
    let planned = spec.plan_certificates(now).unwrap().steps;
    assert_eq!(planned.len(), 4);
    assert!(
        planned[0].to_string().contains("no CA yet"),
        "{}",
        planned[0]
    );

    spec.ensure_ca(now).unwrap();
    let plan = spec.plan_certificates(now).unwrap();
    spec.apply_certificates(&plan.steps, now).unwrap();
    assert!(spec.plan_ca().is_empty());
    assert!(spec.plan_certificates(now).unwrap().is_empty());
    let findings = spec.lint(now).unwrap();
    assert!(
        findings
            .iter()
            .all(|f| f.severity == ha_tls::Severity::Warning),
        "{findings:?}"
    );

    std::fs::remove_file(dir.path().join("pki/pg.internal.crt")).unwrap();
    let again = spec.plan_certificates(now).unwrap().steps;
    assert_eq!(again.len(), 1);
    assert!(again[0].target().ends_with("pg.internal.pem"));
}
