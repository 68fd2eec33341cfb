//! End-to-end tests of the `circle-ha` binary, run as an operator would.

mod apply_cli;
mod backup_cli;
mod cutover_cli;
mod export_cli;
mod keys_cli;
mod log_cli;
mod migrate_cli;
mod mongo_cli;
mod old_machine_cli;
mod pg_provision;
mod pki_cli;
mod restore_failover;
mod seal_cli;
mod services_userdata;
mod transfer_cli;
mod vault_transit;

use std::path::Path;
use std::process::{Command, Output};

fn circle_ha() -> Command {
    Command::new(env!("CARGO_BIN_EXE_circle-ha"))
}

/// Runs a binary and returns (exit code, stdout, stderr). With `--json`,
/// what it printed is checked against its command's schemas in
/// `docs/schema/` ([`check_schema`]).
fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    if command.get_args().any(|a| a == "--json") {
        check_schema(command, &stdout);
    }
    (
        status.code().unwrap_or(-1),
        stdout,
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// [`run`] with `input` on standard input.
fn run_with_stdin(command: &mut Command, input: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    if command.get_args().any(|a| a == "--json") {
        check_schema(command, &stdout);
    }
    (
        status.code().unwrap_or(-1),
        stdout,
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The documents a `--json` command line may print: `error` for an error,
/// else those `docs/schema/commands.json` lists for its command.
fn schemas_for(command: &Command, document: &serde_json::Value) -> Vec<&'static str> {
    if document.get("error").is_some() {
        return vec!["error"];
    }
    let binary = std::path::Path::new(command.get_program())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let name = circle_ha::schema::command_of(&binary, &args)
        .unwrap_or_else(|| panic!("{binary} {args:?}: not a command listed in docs/schema"));
    // Which commands the tests ran with --json (for a closing note's
    // coverage count): one name per line, appended.
    if let Some(path) = std::env::var_os("CIRCLE_HA_SCHEMA_COVERAGE") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(file, "{name}");
        }
    }
    circle_ha::schema::commands()
        .into_iter()
        .find(|(c, _)| *c == name)
        .map(|(_, docs)| docs)
        .unwrap()
}

/// Checks what a `--json` command line printed: one JSON document, valid
/// against one of its command's schemas — validated by Python's
/// `jsonschema`, which shares nothing with the Rust types the schemas are
/// generated from. Empty output (`--help`) is not checked.
fn check_schema(command: &Command, stdout: &str) {
    if stdout.trim().is_empty() {
        return;
    }
    let document: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| {
        panic!("{command:?} printed what is not one JSON document ({e}): {stdout}")
    });
    let names = schemas_for(command, &document);
    if let Err(why) = validate(&document, &names) {
        panic!("{command:?} printed a document its schema does not allow: {why}\n{stdout}");
    }
}

/// Validates `document` against the first of `names` (files in
/// `docs/schema/`) it fits; the reasons it fits none otherwise.
fn validate(document: &serde_json::Value, names: &[&str]) -> Result<(), String> {
    use std::io::Write as _;
    const SCRIPT: &str = r#"
import json, pathlib, sys
try:
    from jsonschema import Draft202012Validator
except ImportError:
    print("python3 has no jsonschema: run `cargo xtask install` and put target/ha-tools/venv/bin first on PATH (cargo xtask test does)")
    sys.exit(2)
directory = pathlib.Path(sys.argv[1])
document = json.load(sys.stdin)
reasons = []
for name in sys.argv[2:]:
    schema = json.loads((directory / (name + ".json")).read_text())
    errors = sorted(Draft202012Validator(schema).iter_errors(document), key=str)
    if not errors:
        sys.exit(0)
    reasons.append(name + ": " + "; ".join(
        "/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors[:5]))
print(" | ".join(reasons))
sys.exit(1)
"#;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema");
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&dir)
        .args(names)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 to validate --json output ({e}): run `cargo xtask install`")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match output.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(said),
        _ => panic!("validating --json output failed: {said}"),
    }
}

/// The schema test would miss drift if a document could lose a field and
/// still pass: a real document passes, and the same with one field
/// renamed (as a refactor might) or its type changed does not.
#[test]
fn a_renamed_field_fails_its_commands_schema() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ha.toml");
    std::fs::write(
        &config,
        "[pki]\ndir = \"pki\"\norganization = \"Example\"\norganizational_unit = \"CI\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(circle_ha()
        .args(["config", "check", "--json", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    validate(&document, &["config-check"]).unwrap();
    let mut renamed = document.clone();
    let object = renamed.as_object_mut().unwrap();
    let sections = object.remove("sections").unwrap();
    object.insert("section".to_owned(), sections);
    let why = validate(&renamed, &["config-check"]).unwrap_err();
    assert!(why.contains("'sections' is a required property"), "{why}");
    let mut retyped = document.clone();
    retyped["healthy"] = "yes".into();
    assert!(validate(&retyped, &["config-check"]).is_err());
    // The same for a report inside a flattened document (restore-volume).
    let report = serde_json::json!({
        "schema_version": 1, "tool": "mongo-backup 0.0.0", "changed": 1, "dry_run": false,
        "planned": 1, "warnings": [], "volume": "vol-1",
        "actions": [{"kind": "create-volume", "target": "vol-1", "detail": "created"}],
    });
    validate(&report, &["backup-restore-volume"]).unwrap();
    let mut dropped = report.clone();
    dropped.as_object_mut().unwrap().remove("planned");
    assert!(validate(&dropped, &["backup-restore-volume"]).is_err());
}

/// Runs a command that prints `--json` (the caller adds the flag);
/// returns (exit code, the JSON or Null, stderr), asserting that no
/// password marked with `wörd` (every test password has it) leaked.
fn run_json(command: &mut Command) -> (i32, serde_json::Value, String) {
    let (code, stdout, stderr) = run(command);
    assert!(
        !stdout.contains("wörd") && !stderr.contains("wörd"),
        "a password leaked"
    );
    (
        code,
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stderr,
    )
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _circle__ha"),
        ("zsh", "#compdef circle-ha"),
        ("fish", "complete -c circle-ha"),
    ] {
        let (code, stdout, stderr) = run(circle_ha().args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains(marker), "{shell}: {stdout}");
        assert!(
            stdout.contains("apply") && stdout.contains("status"),
            "{shell}"
        );
    }
    let (code, _, stderr) = run(circle_ha().args(["completions", "tcsh"]));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    // clap's own path.
    let output = circle_ha().arg("no-such-command").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    // ... which under --json also prints the error as JSON on stdout.
    let (code, stdout, stderr) = run(circle_ha().args(["status", "--json", "--no-such-flag"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["exit_code"], 2, "{value}");
    assert!(
        value["error"].as_str().unwrap().contains("--no-such-flag"),
        "{value}"
    );
    // Help is not an error.
    let output = circle_ha()
        .args(["status", "--json", "--help"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("exit_code"));
    // Ours: a configuration problem found before anything is touched, in
    // text and in --json, naming the file and the key.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let (code, stdout, stderr) = run(circle_ha()
        .args(["apply", "--json", "--config"])
        .arg(&missing));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nope.toml: cannot read it"), "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["exit_code"], 2, "{value}");
    let config = dir.path().join("ha.toml");
    std::fs::write(&config, "[postgres]\nhots = \"typo\"\n").unwrap();
    let (code, _, stderr) = run(circle_ha().args(["status", "--config"]).arg(&config));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("[postgres].hots: unknown key"), "{stderr}");
    assert!(stderr.contains("[postgres].host is missing"), "{stderr}");
}

/// Every binary's `--json` documents carry the contract's envelope
/// (DESIGN.md: `schema_version`, `tool` = `<binary> <version>`), also for
/// a usage error clap finds and for an error found later.
#[test]
fn every_json_document_names_its_schema_version_and_tool() {
    // The package's version, and the commit when built from a checkout.
    let version = circle_ha::output::VERSION;
    let (package, commit) = version.split_once('+').unwrap_or((version, ""));
    assert_eq!(package, env!("CARGO_PKG_VERSION"));
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.git")
        .exists();
    assert_eq!(
        !commit.is_empty(),
        checkout,
        "the commit is recorded exactly when built from a checkout: {version}"
    );
    assert!(commit.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
    for (binary, path) in [
        ("circle-ha", env!("CARGO_BIN_EXE_circle-ha")),
        ("circle-export", env!("CARGO_BIN_EXE_circle-export")),
        ("mongo-rs-setup", env!("CARGO_BIN_EXE_mongo-rs-setup")),
        ("mongo-backup", env!("CARGO_BIN_EXE_mongo-backup")),
        ("pg-provision", env!("CARGO_BIN_EXE_pg-provision")),
        ("vault-transit", env!("CARGO_BIN_EXE_vault-transit")),
        ("services-userdata", env!("CARGO_BIN_EXE_services-userdata")),
    ] {
        let (code, stdout, _) = run(Command::new(path).arg("--version"));
        assert_eq!(
            (code, stdout.trim()),
            (0, format!("{binary} {version}").as_str())
        );
        let (code, stdout, stderr) = run(Command::new(path).args(["--json", "--no-such-flag"]));
        assert_eq!(code, 2, "{binary}: {stderr}");
        let value: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{binary}: {e}: {stdout:?}"));
        assert_eq!(value["schema_version"], 1, "{binary}: {value}");
        assert_eq!(
            value["tool"],
            format!("{binary} {version}"),
            "{binary}: {value}"
        );
        assert_eq!(value["exit_code"], 2, "{binary}: {value}");
    }
    // An error of ours, and a document that is not an error.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.tar.zst");
    let (code, value, stderr) = run_json(
        Command::new(env!("CARGO_BIN_EXE_circle-export"))
            .args(["verify", "--json"])
            .arg(&missing),
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(value["schema_version"], 1, "{value}");
    assert_eq!(value["tool"], format!("circle-export {version}"), "{value}");
    let config = dir.path().join("ha.toml");
    std::fs::write(
        &config,
        "[pki]\ndir = \"pki\"\norganization = \"Example\"\norganizational_unit = \"CircleCI\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("pki")).unwrap();
    let (code, value, stderr) = run_json(
        circle_ha()
            .args(["pki", "lint", "--json", "--config"])
            .arg(&config),
    );
    assert_eq!(code, 3, "{value} {stderr}");
    assert_eq!(value["schema_version"], 1, "{value}");
    assert_eq!(value["healthy"], false, "{value}");
    // The same file found through CIRCLE_HA_CONFIG, without --config.
    let (code, found, stderr) = run_json(
        circle_ha()
            .args(["pki", "lint", "--json"])
            .env("CIRCLE_HA_CONFIG", &config)
            .current_dir(dir.path().join("pki")),
    );
    assert_eq!(
        (code, &found["checked"]),
        (3, &value["checked"]),
        "{found} {stderr}"
    );
    assert_eq!(value["tool"], format!("circle-ha {version}"), "{value}");
}

#[test]
fn config_example_passes_config_check_and_a_broken_file_lists_every_problem_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (code, example, stderr) = run(circle_ha().args(["config", "example"]));
    assert_eq!(code, 0, "{stderr}");
    let config = dir.path().join("ha.toml");
    std::fs::write(&config, &example).unwrap();
    let (code, value, stderr) = run_json(
        circle_ha()
            .args(["config", "check", "--json", "--config"])
            .arg(&config),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(value["healthy"], true, "{value}");
    assert_eq!(value["sections"].as_array().unwrap().len(), 6, "{value}");
    // Broken, with servers that do not exist: every problem, exit 2,
    // nothing contacted.
    std::fs::write(
        &config,
        "[postgres]\nhots = \"x\"\nhost = \"pg.invalid\"\nsslmode = \"prefer\"\n\
         [mongo]\nreplica_set = \"circle\"\nmembers = [{ host = \"a\" }]\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = run(circle_ha()
        .args(["config", "check", "--config"])
        .arg(&config));
    assert_eq!(code, 2, "{stderr}");
    for needle in [
        "[postgres].hots: unknown key",
        "[postgres].sslmode \"prefer\"",
        "[mongo].members[0].host \"a\" has no port",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?}: {stderr}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A file that configures nothing: status has nothing to check and
    // says so (exit 2), never `healthy`.
    std::fs::write(&config, "").unwrap();
    let (code, value, stderr) = run_json(
        circle_ha()
            .args(["status", "--json", "--config"])
            .arg(&config),
    );
    assert_eq!(code, 2, "{value} {stderr}");
    assert!(value.get("healthy").is_none(), "{value}");
    assert!(stderr.contains("nothing to check"), "{stderr}");
}

/// One line of the Prometheus text exposition format (0.0.4): a comment
/// (`# HELP`/`# TYPE name gauge`) or `name{label="value",…} value`.
/// A sample: its metric name, its labels, its value.
type Sample = (String, Vec<(String, String)>, f64);

fn exposition_line(line: &str) -> Option<Sample> {
    if line.starts_with('#') {
        let words: Vec<&str> = line.split(' ').collect();
        assert!(
            matches!(words.get(1), Some(&"HELP" | &"TYPE")) && words.len() >= 4,
            "{line}"
        );
        return None;
    }
    let name_ok = |n: &str| {
        n.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        }) && !n.is_empty()
    };
    let (series, value) = line.rsplit_once(' ').expect(line);
    let value: f64 = value.parse().expect(line);
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect(line);
            let labels = body
                .split(',')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect(line);
                    assert!(name_ok(k), "{line}");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .expect(line);
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            (name, labels)
        }
    };
    assert!(name_ok(name), "{line}");
    Some((name.to_owned(), labels, value))
}

#[test]
fn status_writes_prometheus_text_for_the_textfile_collector() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ha.toml");
    std::fs::write(
        &config,
        "[pki]\ndir = \"pki\"\norganization = \"Example\"\norganizational_unit = \"CircleCI\"\n",
    )
    .unwrap();
    let textfile = dir.path().join("node_exporter");
    std::fs::create_dir(&textfile).unwrap();
    let (code, _, stderr) = run(circle_ha()
        .args(["status", "--config"])
        .arg(&config)
        .arg("--textfile")
        .arg(&textfile));
    assert_eq!(code, 3, "{stderr}");
    let names: Vec<_> = std::fs::read_dir(&textfile)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["circle_ha.prom"], "no temporary file left");
    let text = std::fs::read_to_string(textfile.join("circle_ha.prom")).unwrap();
    let series: Vec<_> = text.lines().filter_map(exposition_line).collect();
    let value = |name: &str, labels: &[(&str, &str)]| {
        series
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|(_, _, v)| *v)
    };
    assert_eq!(value("circle_ha_healthy", &[]), Some(0.0), "{text}");
    assert_eq!(
        value("circle_ha_concern_healthy", &[("concern", "pki")]),
        Some(0.0),
        "{text}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ran = value("circle_ha_status_last_run_timestamp_seconds", &[]).unwrap();
    assert!((now - ran).abs() < 600.0, "{text}");

    // With a CA: healthy, and when the CA expires.
    let (code, _, stderr) = run(circle_ha().args(["pki", "init", "--config"]).arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(circle_ha()
        .args(["status", "--config"])
        .arg(&config)
        .arg("--textfile")
        .arg(&textfile));
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(textfile.join("circle_ha.prom")).unwrap();
    let expiry: Vec<_> = text
        .lines()
        .filter_map(exposition_line)
        .filter(|(n, _, _)| n == "circle_ha_certificate_expiry_timestamp_seconds")
        .collect();
    assert_eq!(expiry.len(), 1, "{text}");
    let (_, labels, at) = &expiry[0];
    assert!(
        labels[0].0 == "file" && labels[0].1.ends_with("ca.pem"),
        "{text}"
    );
    assert!(*at > now + 300.0 * 86_400.0, "{text}");
}

/// The lab's replica set `circle` as a program linking the crates describes
/// it, from typed values (no `ha.toml`): `members_toml`'s members (the
/// first at priority 2), the runbook's three users with `password(role)`
/// (`site_admin`, `admin`, `app`), TLS trusting `ca_file`, the lab's fast
/// elections.
pub(crate) fn typed_set(
    hosts: &[String],
    ca_file: &std::path::Path,
    password: impl Fn(&str) -> secrecy::SecretString,
) -> mongo_rs_setup::SetSpec {
    use mongo_rs_setup::{MemberSpec, Reach, SetSettings, SetSpec, TlsFiles, UserSpec};
    let members = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let mut member = MemberSpec::new(host.clone());
            if i == 0 {
                member.priority = 2.0;
            }
            member
        })
        .collect();
    SetSpec {
        name: "circle".to_owned(),
        members,
        settings: SetSettings {
            election_timeout_millis: Some(2000),
            heartbeat_interval_millis: Some(500),
        },
        site_admin: UserSpec {
            name: "siteUserAdmin".to_owned(),
            password: password("site_admin"),
        },
        admin: UserSpec {
            name: "circle-admin".to_owned(),
            password: password("admin"),
        },
        app: UserSpec {
            name: "circle".to_owned(),
            password: password("app"),
        },
        app_databases: mongo_rs_setup::DEFAULT_APP_DATABASES
            .map(str::to_owned)
            .to_vec(),
        reach: Reach {
            tls: Some(TlsFiles {
                ca_file: ca_file.to_path_buf(),
                certificate_key_file: None,
            }),
            ..Reach::default()
        },
        wait_timeout: std::time::Duration::from_secs(120),
    }
}
