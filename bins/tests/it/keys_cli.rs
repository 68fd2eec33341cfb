//! `circle-ha keys` run as an operator would, against the AWS emulator:
//! backup → verify (0) → one key changed → verify (3, naming it) →
//! restore refused without --force → restored with it; files 0600; no key
//! material in any output.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use ha_lab::{Moto, Toolbox};
use serde_json::Value;

use crate::run;

const KEY_A: &str = "key-material-A-wörd-0123456789abcdef";
const KEY_B: &str = "key-material-B-wörd-fedcba9876543210";

fn keys(config: &Path, endpoint: &str, args: &[&str]) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_circle-ha"))
        .arg("keys")
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--endpoint-url", endpoint, "--json"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("R_PW", "replicated-wörd")
        .env("PASS", "passphrase-wörd")
        .env("GH", "gh-wörd"));
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("key-material"),
            "key material in the output:\n{text}"
        );
    }
    (
        code,
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stderr,
    )
}

#[test]
fn backup_verify_change_verify_restore_refused_then_forced() {
    let moto = Moto::start(&Toolbox::discover(std::env::vars_os())).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        moto.s3_client()
            .create_bucket()
            .bucket("ha-keys")
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ha.toml");
    std::fs::write(
        &config,
        "[services]\nhostname = \"circleci.example.com\"\naws_region = \"us-east-1\"\n\
         s3_bucket = \"ha-keys\"\ns3_prefix = \"prod/\"\nlaunch_template = \"circleci-services\"\n\
         license_file = \"license.rli\"\nreplicated_password = \"env:R_PW\"\n\
         secret_passphrase = \"env:PASS\"\n\
         github = { type = \"github_type_public\", client_id = \"abc\", client_secret = \"env:GH\" }\n\
         storage = { backend = \"storage_backend_s3\", bucket = \"artifacts\", sqs_queue_url = \"https://sqs.us-east-1.amazonaws.com/1/q\" }\n",
    )
    .unwrap();
    let endpoint = moto.endpoint();
    let machine = dir.path().join("circleci-encryption-keys");
    std::fs::create_dir(&machine).unwrap();
    std::fs::write(machine.join("a.key"), KEY_A).unwrap();
    std::fs::write(machine.join("b.key"), KEY_B).unwrap();
    let path = machine.to_str().unwrap();

    let (code, done, stderr) = keys(&config, &endpoint, &["backup", "--from", path]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(done["changed"], 2, "{done}");
    let (code, again, _) = keys(&config, &endpoint, &["backup", "--from", path]);
    assert_eq!((code, again["changed"].as_u64()), (0, Some(0)), "{again}");
    let (code, same, stderr) = keys(&config, &endpoint, &["verify", "--dir", path]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(same["healthy"], true, "{same}");

    std::fs::write(machine.join("b.key"), "key-material-B-changed").unwrap();
    let (code, differs, _) = keys(&config, &endpoint, &["verify", "--dir", path]);
    assert_eq!(code, 3, "{differs}");
    assert_eq!(
        differs["different"],
        serde_json::json!(["b.key"]),
        "{differs}"
    );

    let (code, refused, _) = keys(&config, &endpoint, &["restore", "--to", path]);
    assert_eq!(code, 3, "{refused}");
    assert_eq!(
        refused["different"],
        serde_json::json!(["b.key"]),
        "{refused}"
    );
    assert_eq!(
        std::fs::read_to_string(machine.join("b.key")).unwrap(),
        "key-material-B-changed"
    );

    let (code, forced, stderr) = keys(&config, &endpoint, &["restore", "--to", path, "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(forced["changed"], 1, "{forced}");
    assert_eq!(
        std::fs::read_to_string(machine.join("b.key")).unwrap(),
        KEY_B
    );
    let mode = std::fs::metadata(machine.join("b.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // A fresh machine: everything restored, 0600 in a 0700 directory.
    let fresh = dir.path().join("fresh/keys");
    let (code, restored, stderr) = keys(
        &config,
        &endpoint,
        &["restore", "--to", fresh.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(restored["changed"], 2, "{restored}");
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let (code, _, _) = keys(
        &config,
        &endpoint,
        &["verify", "--dir", fresh.to_str().unwrap()],
    );
    assert_eq!(code, 0);
}
