//! The runbook's sequence: init → unseal → configure → verify → seal →
//! unseal → verify, plus what goes wrong on the way.

use ha_plan::Change as _;
use secrecy::{ExposeSecret as _, SecretString};
use vault_transit::configure::{self, Step};
use vault_transit::{ConfigureSpec, Error, InitRequest, KeyFiles};

use crate::{Lab, mode};

fn request() -> InitRequest {
    InitRequest {
        secret_shares: 5,
        secret_threshold: 3,
        pgp_keys: None,
    }
}

/// Init, writing the shares to files in `dir`.
async fn init(lab: &Lab, dir: &std::path::Path) -> KeyFiles {
    let files = KeyFiles::new(dir.join("keys"));
    files.prepare(5, false).unwrap();
    let response = vault_transit::init(&lab.client(), &request())
        .await
        .unwrap();
    files.write(lab.client().address(), response).unwrap();
    files
}

/// Unseals with the given shares (1-based indexes).
async fn unseal_with(
    lab: &Lab,
    files: &KeyFiles,
    indexes: &[usize],
) -> Result<vault_transit::UnsealOutcome, Error> {
    let keys = files.read_keys().unwrap();
    let mut chosen = indexes.iter().map(|i| keys[i - 1].1.clone());
    vault_transit::unseal(&lab.client(), true, &mut |_| chosen.next()).await
}

fn root_token(files: &KeyFiles) -> SecretString {
    SecretString::from(
        std::fs::read_to_string(files.root_token_path())
            .unwrap()
            .trim()
            .to_owned(),
    )
}

/// Initialises and unseals the lab's Vault, keys under `dir`; returns
/// the root token.
pub(crate) async fn unsealed(lab: &Lab, dir: &std::path::Path) -> SecretString {
    let files = init(lab, dir).await;
    unseal_with(lab, &files, &[1, 2, 3]).await.unwrap();
    root_token(&files)
}
fn read_token(path: &std::path::Path) -> Option<SecretString> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| SecretString::from(t.trim().to_owned()))
}

/// Observe, plan, apply; returns the steps and whether the token was renewed.
pub(crate) async fn configure_once(
    lab: &Lab,
    admin: &SecretString,
    token_file: &std::path::Path,
) -> (Vec<Step>, bool) {
    let spec = ConfigureSpec::new("transit", "1h");
    let (plan, applied) = configure::run(&lab.client(), admin, &spec, token_file, false)
        .await
        .unwrap();
    let applied = applied.expect("not a dry run");
    assert_eq!(plan.steps, applied.steps);
    (applied.steps, applied.renewed)
}

#[tokio::test]
async fn init_unseal_configure_verify_seal_unseal_verify() {
    let lab = Lab::start();
    let tmp = tempfile::tempdir().unwrap();
    let files = init(&lab, tmp.path()).await;
    for i in 1..=5 {
        assert_eq!(mode(&files.key_path(i, false)), 0o600);
    }
    assert_eq!(mode(&files.root_token_path()), 0o600);
    assert_eq!(mode(files.dir()), 0o700);

    let outcome = unseal_with(&lab, &files, &[2, 4, 5]).await.unwrap();
    assert!(outcome.was_sealed && !outcome.status.sealed);
    assert_eq!(outcome.submitted, 3);
    // Unsealing an unsealed Vault is a no-op.
    let again = unseal_with(&lab, &files, &[1]).await.unwrap();
    assert!(!again.was_sealed);
    assert_eq!(again.submitted, 0);

    let admin = root_token(&files);
    let token_file = tmp.path().join("circleci-token");
    let (steps, renewed) = configure_once(&lab, &admin, &token_file).await;
    let kinds: Vec<&str> = steps.iter().map(Step::kind).collect();
    assert_eq!(kinds, ["enable-transit", "write-policy", "create-token"]);
    assert!(!renewed);
    assert_eq!(mode(&token_file), 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();

    let spec = ConfigureSpec::new("transit", "1h");
    let app = read_token(&token_file).unwrap();
    let report = vault_transit::verify(&lab.client(), &app, &spec).await;
    assert!(report.is_healthy(), "{report:#?}");
    assert_eq!(report.checks.len(), 7);

    // A second configure changes nothing and keeps (renews) the same token.
    let (steps, renewed) = configure_once(&lab, &admin, &token_file).await;
    assert_eq!(steps, vec![]);
    assert!(renewed);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);

    vault_transit::seal(&lab.client(), &admin).await.unwrap();
    assert!(
        vault_transit::seal_status(&lab.client())
            .await
            .unwrap()
            .sealed
    );
    let sealed_report = vault_transit::verify(&lab.client(), &app, &spec).await;
    assert!(!sealed_report.is_healthy());
    assert!(
        sealed_report.checks[0].detail.contains("Vault is sealed"),
        "{sealed_report:#?}"
    );

    unseal_with(&lab, &files, &[1, 3, 5]).await.unwrap();
    let report = vault_transit::verify(&lab.client(), &app, &spec).await;
    assert!(report.is_healthy(), "{report:#?}");
    // Keys and tokens never show in the report.
    let shown = format!("{report:?}");
    assert!(!shown.contains(app.expose_secret()) && !shown.contains(admin.expose_secret()));
}

#[tokio::test]
async fn wrong_malformed_and_repeated_shares_are_named() {
    let lab = Lab::start();
    let tmp = tempfile::tempdir().unwrap();
    let files = init(&lab, tmp.path()).await;
    let keys = files.read_keys().unwrap();
    let client = lab.client();

    // Malformed: reported, progress not consumed.
    let mut sequence = vec![keys[0].1.clone(), SecretString::from("not-a-key")].into_iter();
    let err = vault_transit::unseal(&client, false, &mut |_| sequence.next())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("key share #2 is not a key share"),
        "{err}"
    );
    assert_eq!(
        vault_transit::seal_status(&client).await.unwrap().progress,
        1
    );

    // Continuing that attempt with the same share: named as a repeat.
    let mut sequence = vec![keys[0].1.clone()].into_iter();
    let err = vault_transit::unseal(&client, false, &mut |_| sequence.next())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already submitted"), "{err}");
    // Discarding it instead starts over.
    let mut sequence = vec![keys[0].1.clone()].into_iter();
    let outcome = vault_transit::unseal(&client, true, &mut |_| sequence.next())
        .await
        .unwrap();
    assert!(outcome.reset_stale_attempt);
    assert_eq!(outcome.status.progress, 1);

    // Two good shares and one from another Vault: do not combine; reset.
    let other = Lab::start();
    let other_files = init(&other, &tmp.path().join("other")).await;
    let foreign = other_files.read_keys().unwrap()[0].1.clone();
    let mut sequence = vec![keys[1].1.clone(), keys[2].1.clone(), foreign].into_iter();
    let err = vault_transit::unseal(&client, true, &mut |_| sequence.next())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("do not combine"), "{err}");
    let status = vault_transit::seal_status(&client).await.unwrap();
    assert!(status.sealed);
    assert_eq!(status.progress, 0);

    // Key holders one after another: each run submits one share and the
    // attempt carries over between runs.
    for (i, holder) in [3, 4, 0].into_iter().enumerate() {
        let mut sequence = vec![keys[holder].1.clone()].into_iter();
        let outcome = vault_transit::unseal(&client, false, &mut |_| sequence.next())
            .await
            .unwrap();
        assert_eq!(outcome.status.sealed, i < 2);
        assert_eq!(
            outcome.status.progress,
            if i < 2 { i as u32 + 1 } else { 0 }
        );
    }
}

#[tokio::test]
async fn init_refuses_an_initialised_vault_and_existing_key_files() {
    let lab = Lab::start();
    let tmp = tempfile::tempdir().unwrap();
    let files = init(&lab, tmp.path()).await;
    let before = vault_transit::seal_status(&lab.client()).await.unwrap();

    let err = vault_transit::init(&lab.client(), &request())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyInitialized { .. }));
    assert!(err.to_string().contains("already initialised"));
    assert_eq!(
        vault_transit::seal_status(&lab.client()).await.unwrap(),
        before
    );

    let err = files.prepare(5, false).unwrap_err();
    assert!(matches!(err, Error::WouldOverwrite { .. }), "{err}");
}

#[tokio::test]
async fn a_runbook_style_child_token_is_replaced_by_an_orphan_and_revoked() {
    let lab = Lab::start();
    let tmp = tempfile::tempdir().unwrap();
    let admin = unsealed(&lab, tmp.path()).await;
    let client = lab.client();

    // What the runbook's `vault token-create -period="1h"` as root makes.
    let token_file = tmp.path().join("circleci-token");
    let created = client
        .put(
            "auth/token/create",
            Some(&admin),
            &serde_json::json!({ "period": "1h" }),
        )
        .await
        .unwrap();
    let child = SecretString::from(created["auth"]["client_token"].as_str().unwrap().to_owned());
    std::fs::write(&token_file, format!("{}\n", child.expose_secret())).unwrap();

    let (steps, _) = configure_once(&lab, &admin, &token_file).await;
    let kinds: Vec<&str> = steps.iter().map(Step::kind).collect();
    assert_eq!(
        kinds,
        [
            "enable-transit",
            "write-policy",
            "create-token",
            "revoke-token"
        ]
    );
    let app = read_token(&token_file).unwrap();
    assert_ne!(app.expose_secret(), child.expose_secret());
    let spec = ConfigureSpec::new("transit", "1h");
    assert!(
        vault_transit::verify(&client, &app, &spec)
            .await
            .is_healthy()
    );
    // The old child token no longer works.
    let report = vault_transit::verify(&client, &child, &spec).await;
    assert!(!report.checks[0].ok);
}

/// Runs gpg in `home` with `args`, feeding `input`; returns stdout.
fn gpg(home: &std::path::Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--quiet", "--passphrase", ""])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gpg is needed for this test: `cargo xtask install` installs the gnupg package");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn pgp_encrypted_shares_are_written_and_unseal_once_decrypted() {
    use base64::Engine as _;
    let lab = Lab::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("gnupg");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let holders = ["alice", "bob", "carol"];
    let mut public_keys = Vec::new();
    for holder in holders {
        gpg(
            &home,
            &[
                "--quick-gen-key",
                &format!("{holder} <{holder}@example.com>"),
                "rsa2048",
                "encr",
                "never",
            ],
            b"",
        );
        let exported = gpg(&home, &["--export", holder], b"");
        public_keys.push(base64::engine::general_purpose::STANDARD.encode(exported));
    }
    let request = InitRequest {
        secret_shares: 3,
        secret_threshold: 2,
        pgp_keys: Some(public_keys),
    };
    let files = KeyFiles::new(tmp.path().join("keys"));
    files.prepare(3, true).unwrap();
    let response = vault_transit::init(&lab.client(), &request).await.unwrap();
    assert!(response.keys_encrypted);
    files.write(lab.client().address(), response).unwrap();
    assert!(
        files.read_keys().unwrap().is_empty(),
        "no plain share may be on disk"
    );

    // Two holders decrypt their shares and unseal.
    let mut shares = [1, 3].iter().map(|i| {
        let armored = std::fs::read_to_string(files.key_path(*i, true)).unwrap();
        let binary = base64::engine::general_purpose::STANDARD
            .decode(armored.trim())
            .unwrap();
        let share = gpg(&home, &["--decrypt"], &binary);
        SecretString::from(String::from_utf8(share).unwrap().trim().to_owned())
    });
    let outcome = vault_transit::unseal(&lab.client(), false, &mut |_| shares.next())
        .await
        .unwrap();
    assert!(!outcome.status.sealed);
}

/// The library's own init-to-files and unseal-from-files, as a program
/// linking the crate calls them: files 0600, a second init refused
/// without touching the files, too few files refused before anything is
/// submitted, enough files unseal.
#[tokio::test]
async fn init_to_files_then_unseal_from_files_as_a_library() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyFiles::new(dir.path().join("keys"));
    let client = lab.client();
    let done = vault_transit::init_to_files(&client, &request(), &keys)
        .await
        .unwrap();
    assert_eq!(done.files.len(), 6, "{:?}", done.files);
    assert!(!done.keys_encrypted);
    for file in &done.files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    let before: Vec<Vec<u8>> = done
        .files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let again = vault_transit::init_to_files(&client, &request(), &keys).await;
    assert!(
        matches!(again, Err(Error::AlreadyInitialized { .. })),
        "{again:?}"
    );
    let after: Vec<Vec<u8>> = done
        .files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(before, after, "a refused init must not touch the key files");

    // Two of three needed shares: refused before any is submitted.
    for file in &done.files[2..5] {
        std::fs::rename(file, file.with_extension("away")).unwrap();
    }
    let short = vault_transit::unseal_from_files(&client, &keys, &|_| {}).await;
    assert!(
        matches!(
            short,
            Err(Error::NotEnoughKeyFiles {
                found: 2,
                threshold: 3,
                ..
            })
        ),
        "{short:?}"
    );
    assert_eq!(
        vault_transit::seal_status(&client).await.unwrap().progress,
        0
    );

    std::fs::rename(done.files[2].with_extension("away"), &done.files[2]).unwrap();
    let lines = std::sync::Mutex::new(Vec::new());
    let outcome = vault_transit::unseal_from_files(&client, &keys, &|line| {
        lines.lock().unwrap().push(line.to_owned())
    })
    .await
    .unwrap();
    assert!(!outcome.status.sealed);
    assert_eq!(outcome.submitted, 3);
    let lines = lines.into_inner().unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(root_token(&keys).expose_secret()))
    );
}

/// A configure killed after Vault created the app token but before the
/// token reached its file left a live orphan nobody knew; killed after the
/// file was written but before the old token was revoked, the old token
/// lived on. The pending-work record lets the next run finish both.
#[tokio::test]
async fn the_next_run_finishes_what_a_killed_configure_left() {
    let lab = Lab::start();
    let tmp = tempfile::tempdir().unwrap();
    let admin = unsealed(&lab, tmp.path()).await;
    let client = lab.client();
    let token_file = tmp.path().join("circleci-token");
    let accessor_state = |accessor: String| {
        let client = lab.client();
        let admin = admin.clone();
        async move {
            client
                .put(
                    "auth/token/lookup-accessor",
                    Some(&admin),
                    &serde_json::json!({ "accessor": accessor }),
                )
                .await
                .is_ok()
        }
    };

    // 1. The orphan: Vault made a token carrying the marker, the process
    //    died before writing it (the record says a creation was under way).
    let orphan = client
        .put(
            "auth/token/create-orphan",
            Some(&admin),
            &serde_json::json!({"policies": ["default"], "meta": {"circle_ha_create": "marker-1"}}),
        )
        .await
        .unwrap();
    let orphan_accessor = orphan["auth"]["accessor"].as_str().unwrap().to_owned();
    std::fs::write(
        configure::Pending::path(&token_file),
        r#"{"revoke": [], "creating": "marker-1"}"#,
    )
    .unwrap();
    let (steps, _) = configure_once(&lab, &admin, &token_file).await;
    let kinds: Vec<&str> = steps.iter().map(Step::kind).collect();
    assert!(kinds.contains(&"revoke-orphans"), "{kinds:?}");
    assert!(
        !accessor_state(orphan_accessor).await,
        "the orphan still lives"
    );
    assert!(!configure::Pending::path(&token_file).exists());

    // 2. The old token: a new one was written, the process died before
    //    revoking the old one (the record names it).
    let old = client
        .put(
            "auth/token/create-orphan",
            Some(&admin),
            &serde_json::json!({"policies": ["default"]}),
        )
        .await
        .unwrap();
    let old_accessor = old["auth"]["accessor"].as_str().unwrap().to_owned();
    std::fs::write(
        configure::Pending::path(&token_file),
        format!(r#"{{"revoke": ["{old_accessor}"]}}"#),
    )
    .unwrap();
    let (steps, _) = configure_once(&lab, &admin, &token_file).await;
    assert_eq!(
        steps,
        vec![Step::RevokeToken {
            accessor: old_accessor.clone()
        }]
    );
    assert!(
        !accessor_state(old_accessor).await,
        "the old token still lives"
    );
    assert!(!configure::Pending::path(&token_file).exists());

    // Nothing is left: the next run changes nothing.
    let (steps, renewed) = configure_once(&lab, &admin, &token_file).await;
    assert_eq!(steps, vec![]);
    assert!(renewed);
}
