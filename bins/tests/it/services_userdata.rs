//! `services-userdata` run as an operator would: ha.toml by hand, hostile
//! secrets in the environment, publish to the AWS API emulator.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use ha_lab::{Moto, Toolbox};
use serde_json::Value;

use crate::run;

const HOSTILE: &str = "pa'ss\"wo$rd@:/?#%\\ `id` ünï–密";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("license.rli"), "license-bytes\n").unwrap();
    std::fs::create_dir_all(d.join("circle-data")).unwrap();
    std::fs::write(d.join("circle-data/aes.key"), "aes-key-bytes").unwrap();
    std::fs::create_dir_all(d.join("secrets/vault")).unwrap();
    std::fs::write(d.join("secrets/vault/circleci-token"), "s.app-token-123\n").unwrap();
    std::fs::create_dir_all(d.join("pki")).unwrap();
    std::fs::write(
        d.join("pki/ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        d.join("ha.toml"),
        r#"
[mongo]
replica_set = "circle"
members = [
  { host = "mongo-1.internal:27017", priority = 2 },
  { host = "mongo-2.internal:27017" },
  { host = "mongo-3.internal:27017" },
]
tls = { ca_file = "pki/ca.pem", certificate_key_file = "pki/client.pem" }
users.app = { name = "circle", password = "env:MONGO_APP_PASSWORD" }

[postgres]
host = "pg.internal"
app_password = "env:PG_APP_PASSWORD"
ca_file = "pki/ca.pem"

[vault]
address = "https://vault.internal:8200"
ca_file = "pki/ca.pem"
app_token_file = "secrets/vault/circleci-token"

[services]
hostname = "circleci.example.com"
aws_region = "us-east-1"
s3_bucket = "circleci-ha-config"
launch_template = "circleci-services"
license_file = "license.rli"
replicated_password = "env:REPLICATED_PASSWORD"
secret_passphrase = "env:CIRCLE_SECRET_PASSPHRASE"
github = { type = "github_type_public", client_id = "abc123", client_secret = "env:GITHUB_CLIENT_SECRET" }
storage = { backend = "storage_backend_s3", bucket = "circleci-artifacts", sqs_queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/circleci" }
encryption_keys_dir = "circle-data"
"#,
    )
    .unwrap();
    dir
}

fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("MONGO_APP_PASSWORD", format!("{HOSTILE}-mongo")),
        ("PG_APP_PASSWORD", format!("{HOSTILE}-pg")),
        ("REPLICATED_PASSWORD", format!("{HOSTILE}-replicated")),
        ("CIRCLE_SECRET_PASSPHRASE", format!("{HOSTILE}-passphrase")),
        ("GITHUB_CLIENT_SECRET", format!("{HOSTILE}-github")),
    ]
}

fn tool(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_services-userdata"));
    command
        .args(args)
        .arg("--config")
        .arg(dir.join("ha.toml"))
        .envs(secrets());
    command
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn assert_no_secret(texts: &[&str]) {
    for (_, secret) in secrets() {
        for text in texts {
            assert!(!text.contains(&secret), "secret leaked: {text}");
        }
    }
    for text in texts {
        assert!(!text.contains("s.app-token-123"));
    }
}

#[test]
fn render_twice_then_publish_twice() {
    let dir = setup();
    let out: PathBuf = dir.path().join("bundle");
    let out_arg = out.to_str().unwrap();
    let (code, stdout, stderr) = run(&mut tool(
        dir.path(),
        &["render", "--json", "--out", out_arg],
    ));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["changed"], 9, "{report}");
    assert_no_secret(&[&stdout, &stderr]);
    assert_eq!(mode(&out.join("settings.conf")), 0o600);
    assert_eq!(mode(&out.join("circleconfig/shared/vault")), 0o600);
    assert_eq!(mode(&out.join("circleci-encryption-keys/aes.key")), 0o600);
    assert_eq!(mode(&out.join("ca.crt")), 0o644);
    let userdata = std::fs::read_to_string(out.join("userdata.sh")).unwrap();
    assert_no_secret(&[&userdata]);
    let customizations =
        std::fs::read_to_string(out.join("circle-installation-customizations")).unwrap();
    assert!(customizations.contains("@mongo-1.internal:27017,mongo-2.internal:27017,mongo-3.internal:27017/remote_containers_dev_ghe?replicaSet=circle&ssl=true&authSource=admin'"));

    // doctor on this bundle, as on a Services machine where none of its
    // hosts exist: exit 3, each cause named, the document its schema's.
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_circle-ha")).args([
        "doctor",
        "--json",
        "--timeout",
        "2",
        "--bundle-dir",
        out_arg,
    ]));
    assert_eq!(code, 3, "{stdout} {stderr}");
    let doctor = json(&stdout);
    assert_eq!(doctor["healthy"], false, "{doctor}");
    assert_no_secret(&[&stdout, &stderr]);

    // Same input, same bytes, same cookie key: nothing to write.
    let (code, stdout, _) = run(&mut tool(
        dir.path(),
        &["render", "--json", "--out", out_arg],
    ));
    assert_eq!(code, 0);
    assert_eq!(json(&stdout)["changed"], 0);

    // Publish to the emulator, twice.
    let moto = Moto::start(&Toolbox::discover(std::env::vars_os())).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = moto.s3_client();
        s3.create_bucket()
            .bucket("circleci-ha-config")
            .send()
            .await
            .unwrap();
        moto.create_launch_template("circleci-services", "ami-12345678")
            .await
            .unwrap();
    });
    let publish = |extra: &[&str]| {
        let mut args = vec!["publish", "--json", "--dir", out_arg, "--endpoint-url"];
        let endpoint = moto.endpoint();
        args.push(&endpoint);
        args.extend(extra);
        let mut command = tool(dir.path(), &args);
        command
            .env("AWS_ACCESS_KEY_ID", ha_lab::MOTO_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", ha_lab::MOTO_SECRET_ACCESS_KEY)
            .env_remove("AWS_PROFILE");
        run(&mut command)
    };
    let (code, stdout, stderr) = publish(&["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["changed"], 0);
    assert_eq!(json(&stdout)["planned"], 10);
    let (code, stdout, stderr) = publish(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["changed"], 10, "{stdout}");
    assert_no_secret(&[&stdout, &stderr]);
    let (code, stdout, _) = publish(&[]);
    assert_eq!(code, 0);
    assert_eq!(json(&stdout)["changed"], 0);
}

#[test]
fn configuration_problems_are_listed_before_anything_is_written() {
    let dir = setup();
    std::fs::remove_file(dir.path().join("secrets/vault/circleci-token")).unwrap();
    let text = std::fs::read_to_string(dir.path().join("ha.toml"))
        .unwrap()
        .replace(
            "users.app = { name = \"circle\", password = \"env:MONGO_APP_PASSWORD\" }",
            "users.app = { name = \"circle\", password = \"env:MONGO_APP_PASSWORD\", databases = [\"circle_ghe\", \"build_state_dev_ghe\", \"containers_dev_ghe\"] }",
        );
    std::fs::write(dir.path().join("ha.toml"), text).unwrap();
    let out = dir.path().join("bundle");
    let mut command = tool(dir.path(), &["render", "--out", out.to_str().unwrap()]);
    command.env_remove("GITHUB_CLIENT_SECRET");
    let (code, _, stderr) = run(&mut command);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("GITHUB_CLIENT_SECRET is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("run `vault-transit configure` first"),
        "{stderr}"
    );
    assert!(!out.exists());

    // Fix those two: now the app user's missing database is the problem.
    std::fs::write(dir.path().join("secrets/vault/circleci-token"), "s.x\n").unwrap();
    let (code, _, stderr) = run(&mut tool(
        dir.path(),
        &["render", "--out", out.to_str().unwrap()],
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("remote_containers_dev_ghe"), "{stderr}");
}

#[test]
fn import_settings_turns_settings_conf_into_a_services_section() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.conf");
    std::fs::write(
        &settings,
        r#"{"hostname": {"value": "circleci.example.com"}, "ghe_client_secret": {"value": "gh-s3cret"},
            "secret_passphrase": {"value": "pass-s3cret"}, "aws_region": {"value": "eu-west-1"},
            "ghe_client_id": {"value": "id1"}, "s3_bucket": {"value": "artifacts"}}"#,
    )
    .unwrap();
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_services-userdata"))
        .arg("import-settings")
        .arg(&settings));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
    assert!(stderr.contains("GITHUB_CLIENT_SECRET"), "{stderr}");
    std::fs::write(dir.path().join("ha.toml"), &stdout).unwrap();
    let parsed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(parsed["services"]["aws_region"].as_str(), Some("eu-west-1"));
    assert_eq!(
        parsed["services"]["github"]["client_secret"].as_str(),
        Some("env:GITHUB_CLIENT_SECRET")
    );
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, into: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, into);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                into.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = std::collections::BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// A program that links the crates builds the bundle's spec from typed
/// values (no `ha.toml`) and renders it through `ha_runbook::BundleSetup`:
/// the same report as `services-userdata render --json`, the same files,
/// byte for byte.
#[test]
fn a_program_renders_the_bundle_the_cli_renders() {
    use secrecy::SecretString;
    use services_userdata::{
        BundleSpec, GithubSpec, MongoSpec, PostgresSpec, StorageSpec, VaultSpec,
    };
    let dir = setup();
    let d = dir.path();
    let cli_out = d.join("bundle");
    let (code, stdout, stderr) = run(&mut tool(
        d,
        &["render", "--json", "--out", cli_out.to_str().unwrap()],
    ));
    assert_eq!(code, 0, "{stderr}");
    let cli = json(&stdout);

    let secret = |name: &str| {
        let (_, value) = secrets().into_iter().find(|(k, _)| *k == name).unwrap();
        SecretString::from(value)
    };
    let spec = BundleSpec {
        hostname: "circleci.example.com".to_owned(),
        aws_region: "us-east-1".to_owned(),
        s3_bucket: "circleci-ha-config".to_owned(),
        s3_prefix: String::new(),
        mongo: MongoSpec {
            replica_set: "circle".to_owned(),
            hosts: ["mongo-1", "mongo-2", "mongo-3"]
                .map(|h| format!("{h}.internal:27017"))
                .to_vec(),
            user: "circle".to_owned(),
            password: secret("MONGO_APP_PASSWORD"),
            databases: mongo_rs_setup::DEFAULT_APP_DATABASES
                .map(str::to_owned)
                .to_vec(),
            tls: true,
        },
        postgres: PostgresSpec {
            host: "pg.internal".to_owned(),
            port: 5432,
            user: "circle".to_owned(),
            password: secret("PG_APP_PASSWORD"),
        },
        vault: VaultSpec {
            scheme: "https".to_owned(),
            host: "vault.internal".to_owned(),
            port: 8200,
            token: SecretString::from("s.app-token-123".to_owned()),
            transit_mount: "transit".to_owned(),
        },
        replicated_password: secret("REPLICATED_PASSWORD"),
        replicated_log_level: "debug".to_owned(),
        replicated_version: None,
        secret_passphrase: secret("CIRCLE_SECRET_PASSPHRASE"),
        github: GithubSpec {
            kind: "github_type_public".to_owned(),
            client_id: "abc123".to_owned(),
            client_secret: secret("GITHUB_CLIENT_SECRET"),
        },
        storage: StorageSpec {
            backend: "storage_backend_s3".to_owned(),
            bucket: "circleci-artifacts".to_owned(),
            sqs_queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/circleci".to_owned(),
        },
        extra_settings: std::collections::BTreeMap::new(),
        license: b"license-bytes\n".to_vec(),
        ca_certificates: vec![std::fs::read_to_string(d.join("pki/ca.pem")).unwrap()],
        encryption_keys: vec![("aes.key".to_owned(), b"aes-key-bytes".to_vec())],
        // The one value a render makes up: the program keeps the key of
        // the bundle it compares with, as a second render keeps its own.
        session_cookie_key: services_userdata::Bundle::session_cookie_key_in(&cli_out).unwrap(),
    };
    let typed_out = d.join("typed-bundle");
    let setup = ha_runbook::BundleSetup::new(spec, &typed_out);
    let report = setup.render(false).unwrap();
    let typed = serde_json::to_value(&report).unwrap();
    let cli_dir = cli_out.display().to_string();
    let typed_dir = typed_out.display().to_string();
    let typed =
        serde_json::from_str::<Value>(&typed.to_string().replace(&typed_dir, &cli_dir)).unwrap();
    assert_eq!(typed["changed"], 9, "{typed}");
    for key in ["changed", "planned", "dry_run", "actions", "warnings"] {
        assert_eq!(typed[key], cli[key], "{key}: {typed} against {cli}");
    }
    assert_eq!(tree(&typed_out), tree(&cli_out));
    // And the program's second render, like the CLI's, changes nothing.
    assert_eq!(setup.render(false).unwrap().changed(), 0);
}
