//! `vault-transit migrate` as an operator runs it: the old Vault 0.7's
//! storage (written by `crates/vault-transit/tests/fixtures/vault07.py`
//! from Vault 0.7.3's source) into a real OpenBao, shares on stdin or in
//! 0600 files, twice, and with what goes wrong.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::vault_transit::{Setup, json};
use crate::{run, run_with_stdin};

/// Writes an old storage around a random two-version key `contexts`;
/// returns the fixture's secrets and the raw keys.
fn old_storage(out: &Path) -> Vec<String> {
    // 32 bytes of 'A' and of 'B', base64.
    let raw: Vec<String> = vec![
        format!("{}QUE=", "QUFB".repeat(10)),
        format!("{}QkI=", "QkJC".repeat(10)),
    ];
    let tools = ha_lab::Toolbox::discover(std::env::vars_os());
    let python = tools.python().unwrap_or_else(|e| panic!("{e}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/vault-transit/tests/fixtures/vault07.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(
        child.stdin.take().unwrap(),
        &serde_json::json!({"name": "contexts", "keys": {"1": raw[0], "2": raw[1]}}),
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let said: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut secrets = raw;
    for share in said["shares_hex"].as_array().unwrap() {
        secrets.push(share.as_str().unwrap().to_owned());
    }
    for key in ["master_key_hex", "term_key_hex", "root_token"] {
        secrets.push(said[key].as_str().unwrap().to_owned());
    }
    secrets
}

fn share_lines(old: &Path, which: &[usize]) -> String {
    which
        .iter()
        .map(|n| std::fs::read_to_string(old.join(format!("shares/unseal-key-{n}"))).unwrap())
        .collect()
}

#[test]
fn the_old_key_is_inspected_restored_once_and_never_shown() {
    let setup = Setup::new();
    let old = setup.keys_dir().parent().unwrap().join("old-vault");
    let secrets = old_storage(&old);
    let data = old.join("data");
    let data_arg = data.display().to_string();
    let mut outputs = Vec::new();

    // The new Vault, as the runbook leaves it.
    for step in [&["init"][..], &["unseal"], &["configure"]] {
        let (code, _, stderr) = run(&mut setup.vault_transit(step));
        assert_eq!(code, 0, "{step:?}: {stderr}");
    }

    // Offline, without shares (no --config needed).
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_vault-transit"))
        .args(["migrate", "inspect", &data_arg, "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let seen = json(&stdout);
    assert_eq!(seen["seal"]["secret_threshold"], 3);
    assert_eq!(seen["secrets_found"][0], "vault-init-out");
    outputs.push(stdout);
    // With the shares from 0600 files: the key's facts.
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_vault-transit"))
        .args(["migrate", "inspect", &data_arg, "--json", "--shares"])
        .arg(old.join("shares")));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["keys"][0]["name"], "contexts");
    assert_eq!(json(&stdout)["keys"][0]["latest_version"], 2);
    outputs.push(stdout);
    outputs.push(stderr);

    // Too few shares on stdin: exit 2, nothing touched.
    let (code, stdout, stderr) = run_with_stdin(
        &mut setup.vault_transit(&["migrate", "restore", &data_arg, "--stdin", "--json"]),
        &share_lines(&old, &[1, 2]),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("needs 3"), "{stderr}");
    outputs.extend([stdout, stderr]);

    // Dry run, then the restore, then again: changed 0.
    let lines = share_lines(&old, &[2, 4, 5]);
    let (code, stdout, stderr) = run_with_stdin(
        &mut setup.vault_transit(&[
            "migrate",
            "restore",
            &data_arg,
            "--stdin",
            "--dry-run",
            "--json",
        ]),
        &lines,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (
            json(&stdout)["planned"].clone(),
            json(&stdout)["changed"].clone()
        ),
        (1.into(), 0.into())
    );
    outputs.extend([stdout, stderr]);
    for expected in [1, 0] {
        let (code, stdout, stderr) = run_with_stdin(
            &mut setup.vault_transit(&["migrate", "restore", &data_arg, "--stdin", "--json"]),
            &lines,
        );
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(json(&stdout)["changed"], expected, "{stdout}");
        outputs.extend([stdout, stderr]);
    }
    // The text form.
    let (code, stdout, stderr) = run_with_stdin(
        &mut setup.vault_transit(&["migrate", "restore", &data_arg, "--stdin"]),
        &lines,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("nothing to do (changed: 0)"), "{stdout}");
    outputs.extend([stdout, stderr]);

    // A share file others may read is refused before anything is read.
    let loose = old.join("shares/unseal-key-1");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shares_arg = old.join("shares").display().to_string();
    let (code, _, stderr) =
        run(&mut setup.vault_transit(&["migrate", "restore", &data_arg, "--shares", &shares_arg]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("may be read by others"), "{stderr}");
    outputs.push(stderr);

    // A damaged keyring: the shares agree, it does not open: exit 3.
    let keyring = data.join("core/_keyring");
    let mut entry: Value =
        serde_json::from_str(&std::fs::read_to_string(&keyring).unwrap()).unwrap();
    // A character in the ciphertext (not the header, which the tag does
    // not cover: Vault ignores the keyring's term).
    let mut value = entry["Value"].as_str().unwrap().as_bytes().to_vec();
    let at = value.len() / 2;
    value[at] = if value[at] == b'A' { b'B' } else { b'A' };
    entry["Value"] = String::from_utf8(value).unwrap().into();
    std::fs::write(&keyring, entry.to_string()).unwrap();
    let (code, _, stderr) = run_with_stdin(
        &mut setup.vault_transit(&["migrate", "restore", &data_arg, "--stdin"]),
        &share_lines(&old, &[1, 2, 3, 4]),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("core/_keyring"), "{stderr}");
    outputs.push(stderr);

    for output in &outputs {
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "a secret is shown: {output}"
            );
        }
    }
}

/// Ciphertexts as the contexts service's Vault made them (AES-256-GCM,
/// nonce first), made here by Python's `cryptography` with the fixture's
/// raw keys ('A'×32 is v1, 'B'×32 is v2), and one with a key nobody has.
fn ciphertexts() -> Vec<String> {
    let tools = ha_lab::Toolbox::discover(std::env::vars_os());
    let python = tools.python().unwrap_or_else(|e| panic!("{e}"));
    let script = r#"
import base64, os
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
for version, key in [(1, b"A" * 32), (1, b"A" * 32), (2, b"B" * 32), (1, b"Z" * 32)]:
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, "secret wörd".encode(), None)
    print("vault:v%d:%s" % (version, base64.b64encode(sealed).decode()))
"#;
    let output = Command::new(python).args(["-c", script]).output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_contexts_gate_passes_after_the_restore_and_names_a_foreign_ciphertext() {
    use secrecy::ExposeSecret as _;
    let setup = Setup::new();
    let old = setup.keys_dir().parent().unwrap().join("old-vault");
    old_storage(&old);
    let data_arg = old.join("data").display().to_string();
    let shares_arg = old.join("shares").display().to_string();
    for step in [
        &["init"][..],
        &["unseal"],
        &["configure"],
        &["migrate", "restore", &data_arg, "--shares", &shares_arg],
    ] {
        let (code, _, stderr) = run(&mut setup.vault_transit(step));
        assert_eq!(code, 0, "{step:?}: {stderr}");
    }

    // The contexts database, as pg-provision makes it, holding the
    // service's ciphertexts in a table of its own.
    let pki = ha_lab::LabPki::new().unwrap();
    let pg = ha_lab::Postgres::start(
        &ha_lab::Toolbox::discover(std::env::vars_os()),
        &pki,
        ha_lab::PostgresOptions::default(),
    )
    .unwrap();
    let dir = setup
        .keys_dir()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    std::fs::write(dir.join("app.pw"), "app 'pw' wörd\n").unwrap();
    std::fs::set_permissions(dir.join("app.pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("ha.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[postgres]\nhost = \"localhost\"\nhostaddr = \"127.0.0.1\"\nport = {}\n\
         admin_user = \"{}\"\nadmin_password = \"env:TEST_PG_ADMIN_PASSWORD\"\n\
         app_user = \"circle\"\napp_password = \"file:app.pw\"\n\
         sslmode = \"verify-full\"\nca_file = \"{}\"\n",
        pg.port(),
        pg.superuser(),
        pg.ca_file().display()
    ));
    std::fs::write(&config, text).unwrap();
    let admin_password = pg.superuser_password().expose_secret().to_owned();
    let (code, _, stderr) = run(Command::new(env!("CARGO_BIN_EXE_pg-provision"))
        .args(["apply", "--config"])
        .arg(&config)
        .env("TEST_PG_ADMIN_PASSWORD", &admin_password));
    assert_eq!(code, 0, "{stderr}");
    let stored = ciphertexts();
    let psql = |sql: &str| {
        let output = Command::new(pg.bin_dir().join("psql"))
            .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env_clear()
            .envs(pg.libpq_env("contexts_service_production").unwrap())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    psql(&format!(
        "CREATE TABLE contexts (id serial PRIMARY KEY, name text, value text); \
         INSERT INTO contexts (name, value) VALUES ('a', '{}'), ('b', '{}'), ('c', '{}'); \
         GRANT SELECT ON contexts TO circle",
        stored[0], stored[1], stored[2]
    ));
    let verify = || {
        let mut command = setup.vault_transit(&["migrate", "verify", "--json"]);
        command.env("TEST_PG_ADMIN_PASSWORD", &admin_password);
        command
    };
    let (code, stdout, stderr) = run(&mut verify());
    assert_eq!(code, 0, "{stderr}{stdout}");
    let found = json(&stdout);
    assert_eq!(found["healthy"], true);
    assert_eq!(found["ciphertexts"], 3);
    assert_eq!(found["versions"]["1"], 2);
    assert_eq!(found["versions"]["2"], 1);
    assert_eq!(found["columns"][0], "public.contexts.value");
    for ciphertext in &stored {
        assert!(!stdout.contains(ciphertext.as_str()) && !stderr.contains(ciphertext.as_str()));
    }
    assert!(!stdout.contains("secret wörd"));

    // One made with a key the new Vault does not have: exit 3.
    psql(&format!(
        "INSERT INTO contexts (name, value) VALUES ('d', '{}')",
        stored[3]
    ));
    let (code, stdout, stderr) = run(&mut verify());
    assert_eq!(code, 3, "{stderr}{stdout}");
    assert_eq!(json(&stdout)["failed"], 1);
    let (code, stdout, _) = run(setup
        .vault_transit(&["migrate", "verify"])
        .env("TEST_PG_ADMIN_PASSWORD", &admin_password));
    assert_eq!(code, 3);
    assert!(
        stdout.contains("3 of 4 context ciphertext(s) decrypt"),
        "{stdout}"
    );
    assert!(stdout.contains("NOT READY"), "{stdout}");
}

/// The old storage as it travels: inside the export archive
/// (`circle-export export --vault-data`), plain or sealed with age; a
/// changed archive is refused (exit 3) before anything in it is used; a
/// restore killed with SIGKILL at several points finishes when run again.
#[test]
fn the_old_storage_is_read_from_an_export_archive_and_a_killed_restore_finishes() {
    let setup = Setup::new();
    let root = setup.keys_dir().parent().unwrap().to_owned();
    let old = root.join("old-vault");
    let secrets = old_storage(&old);
    let empty = root.join("no-mongo");
    std::fs::create_dir(&empty).unwrap();
    let export = |out: &Path, extra: &[&str]| {
        let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_circle-export"))
            .args(["export", "--json", "--out"])
            .arg(out)
            .arg("--mongo-dump")
            .arg(&empty)
            .arg("--vault-data")
            .arg(old.join("data"))
            .args(extra));
        assert_eq!(code, 0, "{stderr}");
        format!("{stdout}{stderr}")
    };
    let inspect = |archive: &Path, extra: &[&str]| {
        run(Command::new(env!("CARGO_BIN_EXE_vault-transit"))
            .args(["migrate", "inspect", "--json"])
            .arg(archive)
            .args(extra))
    };
    let mut outputs = Vec::new();

    // Plain: the init output and the token were left out by the export;
    // the key is read through the archive.
    let plain = root.join("old.tar");
    outputs.push(export(&plain, &[]));
    let (code, stdout, stderr) = inspect(&plain, &[]);
    assert_eq!(code, 0, "{stderr}");
    let seen = json(&stdout);
    assert_eq!(seen["secrets_found"], serde_json::json!([]), "{stdout}");
    assert_eq!(seen["stored_keys"].as_array().unwrap().len(), 1);
    let shares_arg = old.join("shares").display().to_string();
    let (code, stdout, stderr) = inspect(&plain, &["--shares", &shares_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        json(&stdout)["keys"][0]["versions"],
        serde_json::json!([1, 2])
    );
    outputs.extend([stdout, stderr]);

    // Sealed to an age identity: needs it, opens with it.
    let tools = ha_lab::Toolbox::discover(std::env::vars_os());
    let keygen = tools
        .age()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_file_name("age-keygen");
    let identity = root.join("restore-key.txt");
    let made = Command::new(&keygen)
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(made.status.success());
    let recipient = Command::new(&keygen)
        .arg("-y")
        .arg(&identity)
        .output()
        .unwrap();
    let recipient = String::from_utf8(recipient.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let sealed = root.join("old.tar.age");
    outputs.push(export(&sealed, &["--encrypt-to", &recipient]));
    let (code, stdout, _) = inspect(&sealed, &[]);
    assert_eq!(code, 2, "{stdout}");
    assert!(
        json(&stdout)["error"]
            .as_str()
            .unwrap()
            .contains("--identity"),
        "{stdout}"
    );
    let identity_arg = format!("file:{}", identity.display());
    let (code, stdout, stderr) = inspect(&sealed, &["--identity", &identity_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["stored_keys"].as_array().unwrap().len(), 1);

    // A changed archive: one byte of the stored keyring flipped.
    let mut bytes = std::fs::read(&plain).unwrap();
    let at = bytes
        .windows(7)
        .position(|w| w == b"\"Value\"")
        .expect("a stored value in the plain tar");
    bytes[at + 12] ^= 0x01;
    let changed = root.join("changed.tar");
    std::fs::write(&changed, &bytes).unwrap();
    let (code, stdout, stderr) = inspect(&changed, &[]);
    assert_eq!(code, 3, "{stderr}{stdout}");
    assert!(
        json(&stdout)["error"]
            .as_str()
            .unwrap()
            .contains("damaged or was changed"),
        "{stdout}"
    );

    // The new Vault, then restores killed at several points.
    for step in [&["init"][..], &["unseal"], &["configure"]] {
        let (code, _, stderr) = run(&mut setup.vault_transit(step));
        assert_eq!(code, 0, "{step:?}: {stderr}");
    }
    let plain_arg = plain.display().to_string();
    let lines = share_lines(&old, &[1, 3, 5]);
    // Where the archive's Vault data is unpacked: this test's own.
    let tmp = root.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let restore = || {
        let mut command =
            setup.vault_transit(&["migrate", "restore", &plain_arg, "--stdin", "--json"]);
        command.env("TMPDIR", &tmp);
        command
    };
    // Killed at several points, from before the shares are read to after
    // the key is in; each time run again (done) and once more (nothing to
    // do: the key there decrypts the probe with every version); then the
    // key is deleted for the next kill.
    let (client, admin) = setup.admin();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut killed = 0;
    for delay_ms in [0, 5, 10, 20, 30, 45, 60, 90] {
        use std::io::Write as _;
        use std::os::unix::process::ExitStatusExt as _;
        let mut child = restore()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(lines.as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        killed += usize::from(output.status.signal() == Some(9));
        outputs.push(String::from_utf8_lossy(&output.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&output.stderr).into_owned());
        // A killed run cannot remove what it unpacked (the storage as the
        // archive holds it, sealed by the old barrier); a finished run
        // does, as checked below.
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let (code, stdout, stderr) = run_with_stdin(&mut restore(), &lines);
        assert_eq!(code, 0, "after a kill at {delay_ms} ms: {stderr}");
        outputs.extend([stdout, stderr]);
        let (code, stdout, stderr) = run_with_stdin(&mut restore(), &lines);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            json(&stdout)["changed"],
            0,
            "after a kill at {delay_ms} ms: {stdout}"
        );
        outputs.extend([stdout, stderr]);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "left unpacked");
        runtime.block_on(async {
            client
                .put(
                    "transit/keys/contexts/config",
                    Some(&admin),
                    &serde_json::json!({"deletion_allowed": true}),
                )
                .await
                .unwrap();
            client
                .delete("transit/keys/contexts", Some(&admin))
                .await
                .unwrap();
        });
    }
    eprintln!("restores killed before they ended: {killed} of 8");

    for output in &outputs {
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "a secret is shown: {output}"
            );
        }
    }
}
