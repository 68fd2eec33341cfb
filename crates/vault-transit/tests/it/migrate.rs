//! The contexts service's transit key out of a Vault 0.7 storage directory
//! and into a fresh OpenBao: the storage is written by
//! `tests/fixtures/vault07.py` (from Vault 0.7.3's source, not from our
//! reader) around a key that OpenBao itself made, rotated, used and
//! exported.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use secrecy::SecretString;
use serde_json::{Value, json};
use vault_transit::legacy::{OldVault, Share};
use vault_transit::migrate::{MigrateSpec, Migrated, migrate};
use vault_transit::{Client, Error};

use crate::Lab;
use crate::flow::{configure_once, unsealed};

/// A plaintext with what a context secret may hold.
const PLAIN: &str = "ctx 'quoted' \"double\" $HOME @x:/?#% wörd–密";

/// A source OpenBao's transit key `contexts`, made exportable, used for
/// v1, rotated, used for v2; its ciphertexts and its export.
struct Made {
    ciphertexts: Vec<(String, String)>,
    export: Value,
}

async fn make_key(lab: &Lab, tmp: &Path) -> Made {
    use base64::Engine as _;
    let admin = unsealed(lab, &tmp.join("src")).await;
    configure_once(lab, &admin, &tmp.join("src-app-token")).await;
    let client = lab.client();
    client
        .put(
            "transit/keys/contexts",
            Some(&admin),
            &json!({"exportable": true}),
        )
        .await
        .unwrap();
    let mut ciphertexts = Vec::new();
    for round in 1..=2 {
        if round == 2 {
            client
                .put("transit/keys/contexts/rotate", Some(&admin), &json!({}))
                .await
                .unwrap();
        }
        for i in 0..3 {
            let plain = format!("{PLAIN} v{round} #{i}");
            let b64 = base64::engine::general_purpose::STANDARD.encode(&plain);
            let answer = client
                .put(
                    "transit/encrypt/contexts",
                    Some(&admin),
                    &json!({"plaintext": b64}),
                )
                .await
                .unwrap();
            let ciphertext = answer["data"]["ciphertext"].as_str().unwrap().to_owned();
            assert!(
                ciphertext.starts_with(&format!("vault:v{round}:")),
                "{ciphertext}"
            );
            ciphertexts.push((ciphertext, plain));
        }
    }
    let export = client
        .get("transit/export/encryption-key/contexts", Some(&admin))
        .await
        .unwrap();
    Made {
        ciphertexts,
        export: export["data"].clone(),
    }
}

/// Runs the fixture into `out`; returns what it says must never be shown.
fn fixture(out: &Path, export: &Value, args: &[&str]) -> Value {
    let tools = ha_lab::Toolbox::discover(std::env::vars_os());
    let python = tools.python().unwrap_or_else(|e| panic!("{e}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault07.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(out)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), export).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the fixture failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn share(out: &Path, n: usize) -> Share {
    let path: PathBuf = out.join(format!("shares/unseal-key-{n}"));
    Share::parse(
        &std::fs::read_to_string(&path).unwrap(),
        &path.display().to_string(),
    )
    .unwrap()
}

fn shares(out: &Path, which: &[usize]) -> Vec<Share> {
    which.iter().map(|n| share(out, *n)).collect()
}

/// Everything that must never be shown: the shares, master and term keys,
/// the root token, the raw transit keys, the plaintexts.
fn secrets_of(made: &Made, fixture: &Value) -> Vec<String> {
    let mut out: Vec<String> = fixture["shares_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    for key in ["master_key_hex", "term_key_hex", "root_token"] {
        out.push(fixture[key].as_str().unwrap().to_owned());
    }
    for key in made.export["keys"].as_object().unwrap().values() {
        out.push(key.as_str().unwrap().to_owned());
    }
    out.extend(made.ciphertexts.iter().map(|(_, plain)| plain.clone()));
    out
}

fn assert_shows_none(text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a secret is shown: {text}");
    }
}

async fn decrypts_all(client: &Client, token: &SecretString, made: &Made) {
    use base64::Engine as _;
    for (ciphertext, plain) in &made.ciphertexts {
        let answer = client
            .put(
                "transit/decrypt/contexts",
                Some(token),
                &json!({"ciphertext": ciphertext}),
            )
            .await
            .unwrap_or_else(|e| panic!("the target does not decrypt a sample: {e}"));
        let got = base64::engine::general_purpose::STANDARD
            .decode(answer["data"]["plaintext"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), *plain);
    }
}

#[tokio::test]
async fn a_vault_0_7_key_is_restored_into_openbao_and_decrypts_every_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Lab::start();
    let made = make_key(&source, tmp.path()).await;
    let old = tmp.path().join("old");
    let said = fixture(&old, &made.export, &["--shares", "5", "--threshold", "3"]);
    let secrets = secrets_of(&made, &said);

    // Offline, without the shares: the seal, the key's storage path, and
    // the init output lying in the directory (named, not shown).
    let vault = OldVault::open(&old.join("data")).unwrap();
    let seen = vault.inspect().unwrap();
    assert_eq!(
        (seen.seal.secret_shares, seen.seal.secret_threshold),
        (5, 3)
    );
    assert_eq!(seen.seal.stored_shares, 0);
    assert_eq!(seen.stored_keys.len(), 1, "{seen:?}");
    assert_eq!(seen.secrets_found, ["vault-init-out", "client-token"]);

    // Unsealed offline: the mounts and the key, its versions and flags.
    let given = shares(&old, &[5, 2, 4]);
    let unsealed_old = vault.unseal(&given).unwrap();
    let seen = unsealed_old.inspect().unwrap();
    assert!(
        seen.mounts
            .iter()
            .any(|m| m.path == "transit/" && m.kind == "transit")
    );
    assert!(
        seen.mounts
            .iter()
            .any(|m| m.path == "cubbyhole/" && m.local)
    );
    let [info] = &seen.keys[..] else {
        panic!("{seen:?}")
    };
    assert_eq!(
        (info.name.as_str(), info.kind.as_str()),
        ("contexts", "aes256-gcm96")
    );
    assert_eq!((info.latest_version, info.min_decryption_version), (2, 1));
    assert_eq!(info.versions, [1, 2]);
    assert!(!info.exportable && !info.derived);
    assert_shows_none(&serde_json::to_string(&seen).unwrap(), &secrets);
    assert_shows_none(&format!("{seen:?} {given:?} {unsealed_old:?}"), &secrets);

    // A fresh target with its transit mount (`vault-transit configure`).
    let target = Lab::start();
    let admin = unsealed(&target, &tmp.path().join("dst")).await;
    configure_once(&target, &admin, &tmp.path().join("dst-app-token")).await;
    let keys = unsealed_old.transit_keys().unwrap();
    let client = target.client();
    let mut spec = MigrateSpec::new("transit");
    spec.dry_run = true;
    let Migrated::Done(dry) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!((dry.planned(), dry.changed()), (1, 0));
    assert_eq!(dry.actions[0].kind, "restore-transit-key");
    assert_eq!(dry.actions[0].target, "transit key transit/contexts");
    spec.dry_run = false;
    let Migrated::Done(done) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(done.changed(), 1);
    assert_shows_none(&serde_json::to_string(&done).unwrap(), &secrets);
    decrypts_all(&client, &admin, &made).await;
    // The contexts service's own token (the policy `configure` wrote).
    let app = SecretString::from(
        std::fs::read_to_string(tmp.path().join("dst-app-token"))
            .unwrap()
            .trim()
            .to_owned(),
    );
    decrypts_all(&client, &app, &made).await;
    // Again: the key is there and decrypts: nothing to do.
    let Migrated::Done(again) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(again.changed(), 0);

    // The cutover gate, with the contexts service's token: every sample
    // decrypts, versions 1 and 2 are covered.
    let mut stored: Vec<String> = made.ciphertexts.iter().map(|(c, _)| c.clone()).collect();
    let ok = vault_transit::contexts::verify(&client, &app, "transit", "contexts", &stored, vec![])
        .await
        .unwrap();
    assert!(ok.healthy, "{ok:?}");
    assert_eq!((ok.ciphertexts, ok.decrypted, ok.failed), (6, 6, 0));
    assert_eq!(ok.versions["1"], 3);
    assert_eq!(ok.versions["2"], 3);
    assert_shows_none(&serde_json::to_string(&ok).unwrap(), &secrets);
    // One made with a key the target does not have, one of a version it
    // does not have: exit 3 material, named by count and version.
    stored.push(format!("vault:v1:{}", "QUFB".repeat(12)));
    stored.push(made.ciphertexts[0].0.replacen("vault:v1:", "vault:v3:", 1));
    let bad =
        vault_transit::contexts::verify(&client, &app, "transit", "contexts", &stored, vec![])
            .await
            .unwrap();
    assert!(!bad.healthy);
    assert_eq!(bad.failed, 2, "{bad:?}");
    assert!(
        bad.problems.iter().any(|p| p.contains("version 3")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn too_few_wrong_and_damaged_are_told_apart_and_a_different_target_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Lab::start();
    let made = make_key(&source, tmp.path()).await;
    let old = tmp.path().join("old");
    let other = tmp.path().join("other");
    fixture(&old, &made.export, &["--barrier-version", "1"]);
    fixture(&other, &made.export, &[]);
    let vault = OldVault::open(&old.join("data")).unwrap();

    let err = vault.unseal(&shares(&old, &[1, 2])).unwrap_err();
    assert!(matches!(err, Error::Shares(_)), "{err}");
    assert!(
        err.to_string()
            .contains("2 unseal share(s) given and this Vault needs 3"),
        "{err}"
    );
    // One share of another Vault among exactly three: wrong, but which
    // one cannot be known.
    let mut given = shares(&old, &[1, 2]);
    given.push(share(&other, 3));
    let err = vault.unseal(&given).unwrap_err();
    assert!(matches!(err, Error::WrongShares(_)), "{err}");
    // Among four, it is named.
    given.push(share(&old, 4));
    let err = vault.unseal(&given).unwrap_err().to_string();
    assert!(
        err.contains("other/shares/unseal-key-3 is not one of this Vault's"),
        "{err}"
    );
    // The same share twice.
    let err = vault
        .unseal(&shares(&old, &[1, 1, 2]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("are the same share"), "{err}");
    // A damaged keyring: four good shares agree, and it does not open.
    let keyring = old.join("data/core/_keyring");
    let mut entry: Value =
        serde_json::from_str(&std::fs::read_to_string(&keyring).unwrap()).unwrap();
    let mut value = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(entry["Value"].as_str().unwrap())
            .unwrap()
    };
    let last = value.len() - 1;
    value[last] ^= 1;
    entry["Value"] = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(&value)
            .into()
    };
    let intact = std::fs::read(&keyring).unwrap();
    std::fs::write(&keyring, entry.to_string()).unwrap();
    let err = vault.unseal(&shares(&old, &[1, 2, 3, 4])).unwrap_err();
    assert!(matches!(err, Error::OldStorage { .. }), "{err}");
    assert!(err.to_string().contains("agree with each other"), "{err}");
    std::fs::write(&keyring, intact).unwrap();

    // A target whose `contexts` is another key: refused, nothing
    // restored; with force, replaced.
    let target = Lab::start();
    let admin = unsealed(&target, &tmp.path().join("dst")).await;
    configure_once(&target, &admin, &tmp.path().join("dst-app-token")).await;
    let client = target.client();
    client
        .put("transit/keys/contexts", Some(&admin), &json!({}))
        .await
        .unwrap();
    let unsealed_old = vault.unseal(&shares(&old, &[3, 4, 5])).unwrap();
    let keys = unsealed_old.transit_keys().unwrap();
    let mut spec = MigrateSpec::new("transit");
    let Migrated::Refused(refused) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
        panic!("not refused")
    };
    assert!(
        refused.refused[0].contains("transit/keys/contexts"),
        "{refused:?}"
    );
    assert_eq!(refused.report.changed(), 0);
    spec.force = true;
    let Migrated::Done(done) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
        panic!("refused with force")
    };
    assert_eq!(done.changed(), 1);
    decrypts_all(&client, &admin, &made).await;
    spec.force = false;
    let Migrated::Done(again) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(again.changed(), 0);
}

/// Decrypts `ciphertext` with `context` on `key`: the plaintext.
async fn decrypt_with_context(
    client: &Client,
    token: &SecretString,
    key: &str,
    ciphertext: &str,
    context: &str,
) -> String {
    use base64::Engine as _;
    let answer = client
        .put(
            &format!("transit/decrypt/{key}"),
            Some(token),
            &json!({"ciphertext": ciphertext, "context": context}),
        )
        .await
        .unwrap_or_else(|e| panic!("the target does not decrypt a derived sample: {e}"));
    let plain = base64::engine::general_purpose::STANDARD
        .decode(answer["data"]["plaintext"].as_str().unwrap())
        .unwrap();
    String::from_utf8(plain).unwrap()
}

/// Vault 0.7 made derived keys (a key per context): one OpenBao derived
/// (HKDF, what 0.7 gave every new derived key), and one whose samples the
/// fixture encrypted as 0.7 did with the older counter-mode KDF (which
/// OpenBao no longer makes but still reads). Both restore, decrypt every
/// sample with its context on the target, and are recognised as the same
/// key on the second run.
#[tokio::test]
async fn derived_keys_of_either_kdf_are_restored_and_decrypt_with_their_contexts() {
    use base64::Engine as _;
    let b64 = &base64::engine::general_purpose::STANDARD;
    let tmp = tempfile::tempdir().unwrap();
    let source = Lab::start();
    let admin = unsealed(&source, &tmp.path().join("src")).await;
    configure_once(&source, &admin, &tmp.path().join("src-app-token")).await;
    let client = source.client();
    client
        .put(
            "transit/keys/derived",
            Some(&admin),
            &json!({"exportable": true, "derived": true}),
        )
        .await
        .unwrap();
    // (ciphertext, context, plaintext) per key name.
    let mut samples: Vec<(String, String, String, String)> = Vec::new();
    for round in 1..=2 {
        if round == 2 {
            client
                .put("transit/keys/derived/rotate", Some(&admin), &json!({}))
                .await
                .unwrap();
        }
        for i in 0..2 {
            let plain = format!("{PLAIN} derived v{round} #{i}");
            let context = b64.encode(format!("context-{round}-{i}"));
            let answer = client
                .put(
                    "transit/encrypt/derived",
                    Some(&admin),
                    &json!({"plaintext": b64.encode(&plain), "context": context}),
                )
                .await
                .unwrap();
            let ciphertext = answer["data"]["ciphertext"].as_str().unwrap().to_owned();
            samples.push(("derived".to_owned(), ciphertext, context, plain));
        }
    }
    let export = client
        .get("transit/export/encryption-key/derived", Some(&admin))
        .await
        .unwrap()["data"]
        .clone();
    let mut given = export.clone();
    given["derived"] = true.into();
    let hkdf = tmp.path().join("hkdf");
    let said = fixture(&hkdf, &given, &[]);
    let mut secrets: Vec<String> = said["shares_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    secrets.push(said["master_key_hex"].as_str().unwrap().to_owned());
    for key in export["keys"].as_object().unwrap().values() {
        secrets.push(key.as_str().unwrap().to_owned());
    }
    // The same key material as a counter-mode (kdf 0) key named
    // `legacy`, its samples encrypted by the fixture.
    let mut given = export.clone();
    given["name"] = "legacy".into();
    given["derived"] = true.into();
    given["kdf"] = 0.into();
    let contexts: Vec<String> = (0..2).map(|i| b64.encode(format!("old-{i}"))).collect();
    let plains: Vec<String> = (0..2).map(|i| format!("{PLAIN} kdf0 #{i}")).collect();
    given["encrypt"] = contexts
        .iter()
        .zip(&plains)
        .map(|(c, p)| json!({"context": c, "plaintext": b64.encode(p)}))
        .collect();
    let counter = tmp.path().join("counter");
    let made = fixture(&counter, &given, &[]);
    for (i, ciphertext) in made["ciphertexts"].as_array().unwrap().iter().enumerate() {
        samples.push((
            "legacy".to_owned(),
            ciphertext.as_str().unwrap().to_owned(),
            contexts[i].clone(),
            plains[i].clone(),
        ));
    }
    secrets.extend(samples.iter().map(|s| s.3.clone()));

    let target = Lab::start();
    let admin = unsealed(&target, &tmp.path().join("dst")).await;
    configure_once(&target, &admin, &tmp.path().join("dst-app-token")).await;
    let client = target.client();
    let spec = MigrateSpec::new("transit");
    for old in [&hkdf, &counter] {
        let vault = OldVault::open(&old.join("data")).unwrap();
        let unsealed_old = vault.unseal(&shares(old, &[1, 2, 3])).unwrap();
        let keys = unsealed_old.transit_keys().unwrap();
        assert!(keys[0].info.derived, "{:?}", keys[0].info);
        let shown = serde_json::to_string(&unsealed_old.inspect().unwrap()).unwrap();
        assert_shows_none(&shown, &secrets);
        let Migrated::Done(done) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
            panic!("refused")
        };
        assert_eq!(done.changed(), 1, "{done:?}");
        // The probe, with a context, finds the same key: nothing to do.
        let Migrated::Done(again) = migrate(&client, &admin, &keys, &spec).await.unwrap() else {
            panic!("refused on the second run")
        };
        assert_eq!(again.changed(), 0);
    }
    let kdfs: Vec<String> = [&hkdf, &counter]
        .iter()
        .map(|old| {
            let vault = OldVault::open(&old.join("data")).unwrap();
            let unsealed_old = vault.unseal(&shares(old, &[3, 4, 5])).unwrap();
            serde_json::to_value(&unsealed_old.inspect().unwrap().keys[0]).unwrap()["kdf"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kdfs, ["hkdf_sha256", "hmac-sha256-counter"]);
    assert_eq!(samples.len(), 6);
    for (key, ciphertext, context, plain) in &samples {
        assert_eq!(
            decrypt_with_context(&client, &admin, key, ciphertext, context).await,
            *plain
        );
    }
    // Verify cannot know the contexts: it says so, and is not healthy.
    let stored: Vec<String> = samples.iter().map(|s| s.1.clone()).collect();
    let findings =
        vault_transit::contexts::verify(&client, &admin, "transit", "derived", &stored, vec![])
            .await
            .unwrap();
    assert!(!findings.healthy);
    assert!(
        findings.problems[0].contains("is a derived key"),
        "{findings:?}"
    );
}

/// Two restores at once (or a rerun while a killed run's restore request
/// is still being served): whichever comes second finds the key there and
/// is done too — neither fails.
#[tokio::test]
async fn two_restores_at_once_both_end_with_the_key_in() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Lab::start();
    let made = make_key(&source, tmp.path()).await;
    let old = tmp.path().join("old");
    fixture(&old, &made.export, &[]);
    let vault = OldVault::open(&old.join("data")).unwrap();
    let unsealed_old = vault.unseal(&shares(&old, &[1, 2, 3])).unwrap();
    let keys = unsealed_old.transit_keys().unwrap();
    let target = Lab::start();
    let admin = unsealed(&target, &tmp.path().join("dst")).await;
    configure_once(&target, &admin, &tmp.path().join("dst-app-token")).await;
    let client = target.client();
    let spec = MigrateSpec::new("transit");
    let (first, second) = tokio::join!(
        migrate(&client, &admin, &keys, &spec),
        migrate(&client, &admin, &keys, &spec)
    );
    for outcome in [first, second] {
        assert!(
            matches!(outcome, Ok(Migrated::Done(_))),
            "{:?}",
            outcome.map(|_| ())
        );
    }
    decrypts_all(&client, &admin, &made).await;
}
