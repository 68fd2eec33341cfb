//! `circle-ha pki` as an operator runs it: init, issue and lint from a
//! hand-written ha.toml, twice, with a broken certificate in between.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::Value;

use crate::{circle_ha, run};

const HA_TOML: &str = r#"
[pki]
dir = "certs"
organization = "Example Corp"
organizational_unit = "CircleCI"

[mongo]
replica_set = "circle"
members = [
  { host = "mongo-1.internal:27017", priority = 2 },
  { host = "Mongo-2.internal:27017" },
  { host = "10.0.0.3:27017" },
]
tls = { ca_file = "certs/ca.pem", certificate_key_file = "certs/tools.pem" }

[postgres]
host = "pg.internal"

[vault]
address = "https://vault.internal:8200"
"#;

fn pki(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(circle_ha()
        .current_dir(dir)
        .arg("pki")
        .args(args)
        .args(["--config", "ha.toml", "--json"]));
    (
        code,
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stderr,
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_issue_lint_twice_and_a_broken_certificate_is_reissued_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ha.toml"), HA_TOML).unwrap();
    let certs = dir.path().join("certs");

    let (code, linted, _) = pki(dir.path(), &["lint"]);
    assert_eq!(code, 3, "no CA yet: {linted}");
    let (code, issued, stderr) = pki(dir.path(), &["issue"]);
    assert_eq!(code, 1, "{issued}");
    assert!(stderr.contains("pki init"), "{stderr}");

    let (code, dry, _) = pki(dir.path(), &["init", "--dry-run"]);
    assert_eq!(
        (code, dry["changed"].as_u64(), dry["planned"].as_u64()),
        (0, Some(0), Some(1))
    );
    assert!(!certs.exists(), "a dry run wrote");
    let (code, init, _) = pki(dir.path(), &["init"]);
    assert_eq!((code, init["changed"].as_u64()), (0, Some(1)), "{init}");
    assert_eq!(mode(&certs), 0o700);
    assert_eq!(mode(&certs.join("ca.key")), 0o600);
    let (_, again, _) = pki(dir.path(), &["init"]);
    assert_eq!(again["changed"], 0, "{again}");
    let ca_before = std::fs::read(certs.join("ca.pem")).unwrap();

    let (code, dry, _) = pki(dir.path(), &["issue", "--dry-run"]);
    assert_eq!((code, dry["planned"].as_u64()), (0, Some(6)), "{dry}");
    assert!(!certs.join("pg.internal.pem").exists(), "a dry run wrote");
    let (code, issued, _) = pki(dir.path(), &["issue"]);
    assert_eq!((code, issued["changed"].as_u64()), (0, Some(6)), "{issued}");
    for name in [
        "mongo-1.internal",
        "Mongo-2.internal",
        "10.0.0.3",
        "pg.internal",
        "vault.internal",
        "tools",
    ] {
        assert_eq!(mode(&certs.join(format!("{name}.key"))), 0o600, "{name}");
        assert_eq!(mode(&certs.join(format!("{name}.pem"))), 0o600, "{name}");
    }
    let kept = std::fs::read(certs.join("mongo-1.internal.pem")).unwrap();
    let (_, again, _) = pki(dir.path(), &["issue"]);
    assert_eq!(again["changed"], 0, "{again}");
    assert_eq!(
        std::fs::read(certs.join("mongo-1.internal.pem")).unwrap(),
        kept,
        "a valid certificate was rewritten"
    );
    let (code, linted, _) = pki(dir.path(), &["lint"]);
    assert_eq!(code, 0, "{linted}");
    assert_eq!(linted["checked"], 6);
    // When each certificate expires: the CA and the six, by file.
    let expires = linted["expires"].as_object().unwrap();
    assert_eq!(expires.len(), 7, "{linted}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        expires
            .iter()
            .all(|(file, at)| file.contains("certs/") && at.as_i64().unwrap() > now + 300 * 86_400),
        "{linted}"
    );

    // One member's certificate replaced by the Vault host's: it no longer
    // covers the member's name. Lint names it; issue replaces it alone.
    std::fs::copy(
        certs.join("vault.internal.crt"),
        certs.join("Mongo-2.internal.crt"),
    )
    .unwrap();
    std::fs::copy(
        certs.join("vault.internal.pem"),
        certs.join("Mongo-2.internal.pem"),
    )
    .unwrap();
    let (code, linted, _) = pki(dir.path(), &["lint"]);
    assert_eq!(code, 3, "{linted}");
    let files: Vec<&str> = linted["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["file"].as_str())
        .collect();
    assert!(
        !files.is_empty() && files.iter().all(|f| f.ends_with("Mongo-2.internal.pem")),
        "{linted}"
    );
    let (code, reissued, _) = pki(dir.path(), &["issue"]);
    assert_eq!(
        (code, reissued["changed"].as_u64()),
        (0, Some(1)),
        "{reissued}"
    );
    assert!(
        reissued["actions"][0]["target"]
            .as_str()
            .unwrap()
            .ends_with("Mongo-2.internal.pem"),
        "{reissued}"
    );
    let (code, _, _) = pki(dir.path(), &["lint"]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read(certs.join("ca.pem")).unwrap(),
        ca_before,
        "the CA was replaced"
    );
}

#[test]
fn apply_only_pki_creates_the_ca_and_every_certificate_then_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ha.toml"), HA_TOML).unwrap();
    let apply = |args: &[&str]| {
        let (code, stdout, stderr) = run(circle_ha()
            .current_dir(dir.path())
            .args(["apply", "--only", "pki", "--config", "ha.toml", "--json"])
            .args(args));
        let json: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        assert_eq!(code, 0, "{json}\n{stderr}");
        json
    };
    let dry = apply(&["--dry-run"]);
    assert_eq!(
        (dry["changed"].as_u64(), dry["planned"].as_u64()),
        (Some(0), Some(7)),
        "{dry}"
    );
    assert!(!dir.path().join("certs").exists(), "a dry run wrote");
    let applied = apply(&[]);
    assert_eq!(
        applied["changed"], 7,
        "the CA and six certificates: {applied}"
    );
    let kinds: Vec<&str> = applied["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"create-ca"), "{applied}");
    assert_eq!(mode(&dir.path().join("certs/ca.key")), 0o600);
    let again = apply(&[]);
    assert_eq!(again["changed"], 0, "{again}");
    let (code, linted, _) = pki(dir.path(), &["lint"]);
    assert_eq!(code, 0, "{linted}");
}

#[test]
fn every_config_problem_is_reported_at_once_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ha.toml"),
        "[pki]\ndir = \"certs\"\norganizational_unit = \"\"\ncolour = \"blue\"\n\
         [mongo]\nmembers = [{ host = \"mongo-1:notaport\" }]\n",
    )
    .unwrap();
    let (code, value, stderr) = pki(dir.path(), &["init"]);
    assert_eq!(code, 2, "{value}");
    for needle in [
        "[pki].organization is missing",
        "[pki].organizational_unit must be",
        "[pki].colour",
        "[mongo].members[0].host",
    ] {
        assert!(stderr.contains(needle), "{needle} not in: {stderr}");
    }
    assert!(!dir.path().join("certs").exists());
}

/// Each `[kind, target]` of a report's actions (the details name where each
/// certificate is called for: `ha.toml` keys for the CLI, whatever a
/// program writes in `used_by`).
fn kinds_and_targets(report: &Value) -> Vec<(String, String)> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A program that builds the PKI from typed values (no `ha.toml`) and runs
/// it through `ha_runbook::apply` gets the plan `circle-ha apply --only pki
/// --dry-run` prints.
#[test]
fn a_program_plans_the_certificates_the_cli_plans() {
    use ha_tls::{PkiSpec, Role, WantedCert};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ha.toml");
    std::fs::write(&config, HA_TOML).unwrap();
    let (code, stdout, stderr) = run(circle_ha()
        .args(["apply", "--only", "pki", "--dry-run", "--json", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let cli: Value = serde_json::from_str(&stdout).unwrap();

    let want = |name: &str, role: Role| WantedCert::new(name, role, "my program");
    let mut runbook = ha_runbook::Runbook::new();
    runbook.pki = Some(PkiSpec {
        dir: dir.path().join("certs"),
        organization: "Example Corp".to_owned(),
        organizational_unit: "CircleCI".to_owned(),
        wanted: vec![
            want("mongo-1.internal", Role::Member),
            want("Mongo-2.internal", Role::Member),
            want("10.0.0.3", Role::Member),
            want("pg.internal", Role::Server),
            want("vault.internal", Role::Server),
            want("tools", Role::Client),
        ],
    });
    let library = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ha_runbook::apply(&runbook, true, &ha_plan::no_progress))
        .unwrap();
    let library = serde_json::to_value(&library).unwrap();
    let planned = kinds_and_targets(&cli);
    assert_eq!(planned.len(), 7, "the CA and six certificates: {cli}");
    assert_eq!(kinds_and_targets(&library), planned);
    assert_eq!(library["concerns"][0], cli["concerns"][0]);
    assert!(!dir.path().join("certs").exists(), "a dry run wrote");
}
