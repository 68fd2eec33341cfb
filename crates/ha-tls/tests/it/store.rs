//! The PKI directory: files, modes, idempotency and recovery from a run that
//! was stopped half-way.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ha_tls::{CaSpec, Error, LeafSpec, LeafState, Outcome, PkiDir};
use secrecy::ExposeSecret as _;
use time::Duration;

use crate::{ORG, UNIT, now};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn member_spec(host: &str) -> LeafSpec {
    LeafSpec::host(&[host], ORG, UNIT).unwrap()
}

/// Every file in `dir` with its content, for before/after comparisons.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut res: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    res.sort();
    res
}

#[test]
fn fresh_directory_gets_every_file_with_the_right_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(tmp.path().join("pki"));
    let (ca, outcome) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    assert_eq!(outcome, Outcome::Created);
    let (paths, outcome) = pki
        .ensure_leaf(
            &ca,
            "mongo-1.internal",
            &member_spec("mongo-1.internal:27017"),
            now(),
        )
        .unwrap();
    assert_eq!(outcome, Outcome::Created);

    let ca_paths = pki.ca_paths();
    assert_eq!(mode(pki.dir()), 0o700);
    assert_eq!(mode(&ca_paths.key), 0o600);
    assert_eq!(mode(&ca_paths.cert), 0o644);
    assert_eq!(mode(&ca_paths.crt), 0o644);
    assert_eq!(mode(&paths.key), 0o600);
    assert_eq!(mode(&paths.combined), 0o600);
    assert_eq!(mode(&paths.cert), 0o644);
    assert_eq!(
        fs::read(&ca_paths.cert).unwrap(),
        fs::read(&ca_paths.crt).unwrap()
    );

    // The combined file is the certificate followed by its key, as mongod wants.
    let combined = fs::read_to_string(&paths.combined).unwrap();
    let cert = fs::read_to_string(&paths.cert).unwrap();
    let key = fs::read_to_string(&paths.key).unwrap();
    assert_eq!(combined, format!("{cert}{key}"));
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));

    // No stray temporary files are left behind.
    let names: Vec<String> = snapshot(pki.dir()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "ca.crt",
            "ca.key",
            "ca.pem",
            "mongo-1.internal.crt",
            "mongo-1.internal.key",
            "mongo-1.internal.pem"
        ]
    );
}

#[test]
fn second_run_keeps_everything_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(tmp.path());
    let spec = member_spec("mongo-1.internal");
    let (ca, _) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    pki.ensure_leaf(&ca, "m1", &spec, now()).unwrap();
    let before = snapshot(tmp.path());

    let (ca, outcome) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    assert_eq!(outcome, Outcome::Kept);
    let (_, outcome) = pki.ensure_leaf(&ca, "m1", &spec, now()).unwrap();
    assert_eq!(outcome, Outcome::Kept);
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_new_host_name_replaces_the_certificate_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(tmp.path());
    let (ca, _) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    pki.ensure_leaf(&ca, "pg", &member_spec("pg.internal"), now())
        .unwrap();
    let wider = LeafSpec::host(&["pg.internal", "10.0.3.7"], ORG, UNIT).unwrap();
    assert_eq!(
        pki.inspect_leaf(ca.certificate(), "pg", &wider, now())
            .unwrap(),
        LeafState::Invalid {
            reasons: vec!["does not cover IP address 10.0.3.7".to_owned()]
        }
    );
    let (_, outcome) = pki.ensure_leaf(&ca, "pg", &wider, now()).unwrap();
    assert!(matches!(outcome, Outcome::Replaced { .. }));
    assert_eq!(
        pki.inspect_leaf(ca.certificate(), "pg", &wider, now())
            .unwrap(),
        LeafState::Valid
    );
}

#[test]
fn run_stopped_between_key_and_certificate_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(tmp.path());
    let spec = member_spec("mongo-2.internal");
    let (ca, _) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    let (paths, _) = pki.ensure_leaf(&ca, "m2", &spec, now()).unwrap();

    // Simulate a kill after the new key was written but before its certificate.
    fs::remove_file(&paths.cert).unwrap();
    let (paths, outcome) = pki.ensure_leaf(&ca, "m2", &spec, now()).unwrap();
    assert!(matches!(outcome, Outcome::Replaced { .. }), "{outcome:?}");
    assert_eq!(
        pki.inspect_leaf(ca.certificate(), "m2", &spec, now())
            .unwrap(),
        LeafState::Valid
    );
    assert!(
        fs::read_to_string(&paths.combined)
            .unwrap()
            .contains("PRIVATE KEY")
    );

    // The same for the CA: only its key made it to disk.
    let ca_paths = pki.ca_paths();
    fs::remove_file(&ca_paths.cert).unwrap();
    let (new_ca, outcome) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    assert_eq!(outcome, Outcome::Created);
    assert!(ca_paths.cert.exists());
    // Same key and subject: what the old certificate signed still verifies.
    assert_eq!(
        pki.inspect_leaf(new_ca.certificate(), "m2", &spec, now())
            .unwrap(),
        LeafState::Valid
    );
}

#[test]
fn a_ca_without_its_key_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(tmp.path());
    pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    fs::remove_file(pki.ca_paths().key).unwrap();
    let before = snapshot(tmp.path());
    let err = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap_err();
    assert!(matches!(err, Error::CaKeyMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn certificates_near_expiry_or_from_another_ca_are_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = member_spec("mongo-3.internal");
    let pki = PkiDir::new(tmp.path());
    let (ca, _) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    pki.ensure_leaf(&ca, "m3", &spec, now()).unwrap();

    let impatient = PkiDir::new(tmp.path()).renew_before(Duration::days(10_000));
    let LeafState::Invalid { reasons } = impatient
        .inspect_leaf(ca.certificate(), "m3", &spec, now())
        .unwrap()
    else {
        panic!("a certificate inside the renewal window must be invalid");
    };
    assert!(reasons[0].contains("renewal is due"), "{reasons:?}");

    let other = ha_tls::Ca::generate(&CaSpec::new(ORG, UNIT), now()).unwrap();
    let (_, outcome) = pki.ensure_leaf(&other, "m3", &spec, now()).unwrap();
    assert_eq!(
        outcome,
        Outcome::Replaced {
            reasons: vec!["was not issued by this CA".to_owned()]
        }
    );
}

#[test]
fn file_names_cannot_escape_the_directory() {
    let pki = PkiDir::new("/nonexistent");
    for bad in ["../etc/passwd", "", ".hidden", "a/b", "x y"] {
        assert!(
            matches!(pki.leaf_paths(bad), Err(Error::InvalidName { .. })),
            "{bad:?} must be rejected"
        );
    }
}

#[test]
fn key_material_never_shows_in_debug_or_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(tmp.path());
    let (ca, _) = pki.ensure_ca(&CaSpec::new(ORG, UNIT), now()).unwrap();
    let issued = ca.issue(&member_spec("a.internal"), now()).unwrap();
    let key_body = ca
        .key_pem()
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let leaf_key_body = issued
        .key_pem
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let shown = format!("{ca:?} {issued:?} {:?}", ca.key_pem());
    assert!(!shown.contains(&key_body) && !shown.contains(&leaf_key_body));
    assert!(!shown.contains("PRIVATE KEY"));

    // A corrupt key file: the error names the file, not its content.
    fs::write(
        pki.ca_paths().key,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = pki.load_ca(now()).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("ca.key") && !text.contains("c2VjcmV0"),
        "{text}"
    );
}
