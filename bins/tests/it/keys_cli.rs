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
    let mut all = vec!["keys"];
    all.extend(args);
    circle_ha(config, endpoint, &all)
}

/// `circle-ha ARGS --config CONFIG --endpoint-url ENDPOINT --json`, as
/// [`keys`] runs it.
fn circle_ha(config: &Path, endpoint: &str, args: &[&str]) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_circle-ha"))
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

    // `circle-ha status` reads the stored copy back and compares it with
    // the directory; its textfile says when it last read back healthy.
    let textfile = tempfile::tempdir().unwrap();
    let textfile_arg = textfile.path().to_str().unwrap();
    let status = |textfile: &[&str]| {
        let mut args = vec!["status", "--keys-dir", path];
        args.extend(textfile);
        let (code, status, stderr) = circle_ha(&config, &endpoint, &args);
        assert_eq!(code, 3, "the bundle is not rendered: {status} {stderr}");
        let concerns = status["concerns"].as_array().unwrap().clone();
        let keys = concerns
            .into_iter()
            .find(|c| c["concern"] == "keys")
            .unwrap_or_else(|| panic!("no keys concern: {status}"));
        keys["detail"].clone()
    };
    let stored = status(&["--textfile", textfile_arg]);
    assert_eq!(stored["healthy"], true, "{stored}");
    assert_eq!(stored["stored"], 2, "{stored}");
    assert_eq!(
        stored["local"]["same"],
        serde_json::json!(["a.key", "b.key"])
    );
    assert_eq!(
        stored["location"], "s3://ha-keys/prod/circleci-encryption-keys/",
        "{stored}"
    );
    let text = std::fs::read_to_string(textfile.path().join("circle_ha.prom")).unwrap();
    let series: Vec<_> = text.lines().filter_map(crate::exposition_line).collect();
    let value = |name: &str| {
        series
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, labels, v)| (labels.clone(), *v))
    };
    let (labels, count) = value("circle_ha_key_backup_keys").expect(&text);
    assert_eq!(count, 2.0, "{text}");
    assert_eq!(labels[0].1, "s3://ha-keys/prod/circleci-encryption-keys/");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for name in [
        "circle_ha_key_backup_verified_timestamp_seconds",
        "circle_ha_key_backup_last_upload_timestamp_seconds",
    ] {
        let (_, at) = value(name).unwrap_or_else(|| panic!("{name} missing: {text}"));
        assert!((now - at).abs() < 600.0, "{name}: {text}");
    }
    assert_eq!(
        value("circle_ha_concern_healthy").map(|(l, _)| l.len()),
        Some(1),
        "{text}"
    );

    std::fs::write(machine.join("b.key"), "key-material-B-changed").unwrap();
    // A program linking the crates, from typed values (no ha.toml): the
    // same plan and the same findings as the CLI's.
    let store = services_userdata::keys::KeyStore {
        bucket: "ha-keys".to_owned(),
        prefix: "prod/".to_owned(),
        kms_key_id: None,
    };
    let (plan, diff) = runtime.block_on(async {
        let s3 = moto.s3_client();
        let plan = services_userdata::keys::backup(&s3, &store, &machine, true)
            .await
            .unwrap();
        let diff = services_userdata::keys::verify(&s3, &store, &machine)
            .await
            .unwrap();
        (
            serde_json::to_value(plan.to_report("circle-ha keys", true, &machine)).unwrap(),
            serde_json::to_value(diff.to_findings("circle-ha keys", &machine)).unwrap(),
        )
    });
    let (_, cli_plan, _) = keys(&config, &endpoint, &["backup", "--from", path, "--dry-run"]);
    let (_, cli_diff, _) = keys(&config, &endpoint, &["verify", "--dir", path]);
    assert_eq!(plan["planned"], 1, "{plan}");
    assert_eq!(cli_diff["healthy"], false, "{cli_diff}");
    for (typed, cli) in [(&plan, &cli_plan), (&diff, &cli_diff)] {
        let mut cli = cli.clone();
        for envelope in ["schema_version", "tool"] {
            cli.as_object_mut().unwrap().remove(envelope);
        }
        assert_eq!(*typed, cli);
    }
    let changed = status(&["--textfile", textfile_arg]);
    assert_eq!(changed["healthy"], false, "{changed}");
    assert_eq!(changed["local"]["different"], serde_json::json!(["b.key"]));
    let text = std::fs::read_to_string(textfile.path().join("circle_ha.prom")).unwrap();
    assert!(
        !text.contains("circle_ha_key_backup_verified_timestamp_seconds"),
        "{text}"
    );
    assert!(
        text.contains("circle_ha_concern_healthy{concern=\"keys\"} 0"),
        "{text}"
    );
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
