//! Rendering: golden files, determinism, quoting checked by the real
//! consumers (bash, shellcheck, the MongoDB driver's URI parser).

use std::path::{Path, PathBuf};
use std::process::Command;

use secrecy::ExposeSecret as _;
use services_userdata::{Bundle, Error, MONGO_URI_DATABASES, render, secret_values};

use crate::spec;

fn golden_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
}

/// Compares every file of `bundle` (and `userdata.sh`) with the golden copy;
/// `UPDATE_GOLDEN=1` rewrites them instead.
fn check_golden(case: &str, bundle: &Bundle) {
    let dir = golden_dir(case);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut expected: Vec<(String, Vec<u8>)> = bundle
        .files
        .iter()
        .map(|f| (f.path.clone(), f.bytes.clone()))
        .collect();
    expected.push((
        "userdata.sh".to_owned(),
        bundle.userdata.as_bytes().to_vec(),
    ));
    for (path, bytes) in &expected {
        let file = dir.join(path);
        if update {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, bytes).unwrap();
            continue;
        }
        let golden = std::fs::read(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
                file.display()
            )
        });
        assert!(
            golden == *bytes,
            "{} differs from the rendering:\n--- golden\n{}\n--- rendered\n{}",
            file.display(),
            String::from_utf8_lossy(&golden),
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn typical_bundle_matches_golden_files() {
    let bundle = render(&spec(false)).unwrap();
    check_golden("typical", &bundle);
    assert_eq!(
        render(&spec(false)).unwrap(),
        bundle,
        "rendering must be deterministic"
    );
}

#[test]
fn hostile_bundle_matches_golden_files() {
    let bundle = render(&spec(true)).unwrap();
    check_golden("hostile", &bundle);
    assert_eq!(render(&spec(true)).unwrap(), bundle);
}

#[test]
fn userdata_passes_bash_n_and_shellcheck_and_holds_no_secret() {
    for hostile in [false, true] {
        let spec = spec(hostile);
        let bundle = render(&spec).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("userdata.sh");
        std::fs::write(&script, &bundle.userdata).unwrap();
        let output = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = Command::new("shellcheck")
            .arg(&script)
            .output()
            .expect("shellcheck is needed: `cargo xtask install` installs it");
        assert!(
            output.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        for secret in secret_values(&spec) {
            assert!(!bundle.userdata.contains(secret.expose_secret()));
        }
        for forbidden in ['‘', '’', '“', '”', '—', '–'] {
            assert!(
                !bundle.userdata.contains(forbidden),
                "typographic {forbidden:?} in userdata"
            );
        }
        assert!(bundle.userdata.starts_with("#!/bin/bash\n"));
        assert!(bundle.userdata.contains("set -euo pipefail\numask 077\n"));
        assert!(
            bundle
                .userdata
                .contains("X-aws-ec2-metadata-token-ttl-seconds")
        );
    }
}

/// Sources `file` in bash and returns each variable's exact value.
fn source(file: &[u8], variables: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env");
    std::fs::write(&path, file).unwrap();
    let mut script = format!("set -eu; . '{}'", path.display());
    for variable in variables {
        script.push_str(&format!("; printf '%s\\0' \"${variable}\""));
    }
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut values: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .split('\0')
        .map(str::to_owned)
        .collect();
    values.pop();
    values
}

fn file<'a>(bundle: &'a Bundle, path: &str) -> &'a [u8] {
    &bundle.files.iter().find(|f| f.path == path).unwrap().bytes
}

#[test]
fn env_files_round_trip_through_bash_exactly() {
    for hostile in [false, true] {
        let spec = spec(hostile);
        let bundle = render(&spec).unwrap();
        let values = source(
            file(&bundle, "circleconfig/shared/postgresql"),
            &[
                "POSTGRES_HOST",
                "POSTGRES_PORT",
                "POSTGRES_PASSWORD",
                "POSTGRES_USER",
            ],
        );
        assert_eq!(
            values,
            [
                "pg.internal",
                "5432",
                spec.postgres.password.expose_secret(),
                "circle"
            ]
        );
        let values = source(
            file(&bundle, "circleconfig/shared/vault"),
            &[
                "VAULT__SCHEME",
                "VAULT__HOST",
                "VAULT__PORT",
                "VAULT__CLIENT_TOKEN",
                "VAULT__TRANSIT_MOUNT",
            ],
        );
        assert_eq!(
            values,
            [
                "https",
                "vault.internal",
                "8200",
                spec.vault.token.expose_secret(),
                "transit"
            ]
        );
        let values = source(
            file(&bundle, "circle-installation-customizations"),
            &["CIRCLE_SECRETS_SESSION_COOKIE_KEY"],
        );
        assert_eq!(values, [spec.session_cookie_key.expose_secret()]);
    }
}

#[tokio::test]
async fn mongo_uris_parse_with_the_driver_and_carry_everything() {
    for hostile in [false, true] {
        let spec = spec(hostile);
        let bundle = render(&spec).unwrap();
        let names: Vec<&str> = MONGO_URI_DATABASES.iter().map(|(name, _)| *name).collect();
        let uris = source(file(&bundle, "circle-installation-customizations"), &names);
        for ((_, database), uri) in MONGO_URI_DATABASES.iter().zip(&uris) {
            let options = mongodb::options::ClientOptions::parse(uri).await.unwrap();
            let hosts: Vec<String> = options.hosts.iter().map(|h| h.to_string()).collect();
            assert_eq!(
                hosts,
                [
                    "mongo-1.internal:27017",
                    "mongo-2.internal:27017",
                    "mongo-3.internal:27017"
                ]
            );
            assert_eq!(options.repl_set_name.as_deref(), Some("circle"));
            assert_eq!(options.default_database.as_deref(), Some(*database));
            let credential = options.credential.unwrap();
            assert_eq!(
                credential.username.as_deref(),
                Some(spec.mongo.user.as_str())
            );
            assert_eq!(
                credential.password.as_deref(),
                Some(spec.mongo.password.expose_secret())
            );
            assert_eq!(credential.source.as_deref(), Some("admin"));
            assert!(matches!(
                options.tls,
                Some(mongodb::options::Tls::Enabled(_))
            ));
        }
    }
}

#[test]
fn settings_are_strings_and_hostnames_punycoded() {
    let bundle = render(&spec(true)).unwrap();
    let settings: serde_json::Value =
        serde_json::from_slice(file(&bundle, "settings.conf")).unwrap();
    for (key, entry) in settings.as_object().unwrap() {
        assert!(entry["value"].is_string(), "{key} is not a string");
    }
    assert_eq!(
        settings["hostname"]["value"],
        "circleci.xn--bcher-kva.example"
    );
    let replicated: serde_json::Value =
        serde_json::from_slice(file(&bundle, "replicated.conf")).unwrap();
    assert_eq!(
        replicated["TlsBootstrapHostname"],
        "circleci.xn--bcher-kva.example"
    );
    assert_eq!(replicated["ImportSettingsFrom"], "/etc/settings.conf");
}

#[test]
fn inconsistent_inputs_are_refused_with_every_reason() {
    let mut bad = spec(false);
    bad.mongo
        .databases
        .retain(|d| d != "remote_containers_dev_ghe");
    bad.postgres.host = "pg internal".to_owned();
    bad.session_cookie_key = "short".to_owned().into();
    let err = render(&bad).unwrap_err();
    let Error::Invalid { problems } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(err.to_string().contains("remote_containers_dev_ghe"));

    let mut big = spec(false);
    big.s3_prefix = format!("{}/", "p".repeat(17_000));
    let err = render(&big).unwrap_err();
    assert!(
        matches!(err, Error::UserdataTooLarge { bytes } if bytes > 16_384),
        "{err}"
    );
}
