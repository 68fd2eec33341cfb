//! Encryption keys against the AWS API emulator: the place `keys backup`
//! stores them is the place the published bundle puts them and the
//! rendered user data fetches them from; a damaged stored copy is caught.

use std::os::unix::fs::PermissionsExt as _;

use ha_lab::{Moto, Toolbox};
use services_userdata::keys::{self, KEY_MODE, KEYS_DIR, KeyStore};
use services_userdata::publish::{self, Target};
use services_userdata::render;

use crate::spec;

#[tokio::test]
async fn keys_backup_verify_restore_agree_with_the_published_bundle_and_its_userdata() {
    let moto = Moto::start(&Toolbox::discover(std::env::vars_os())).unwrap();
    let s3 = moto.s3_client();
    let ec2 = moto.ec2();
    s3.create_bucket()
        .bucket("circleci-ha-config")
        .send()
        .await
        .unwrap();
    moto.create_launch_template("circleci-services", "ami-12345678")
        .await
        .unwrap();
    let spec = spec(false);
    let bundle = render(&spec).unwrap();
    let target = Target {
        bucket: "circleci-ha-config".to_owned(),
        prefix: String::new(),
        launch_template: "circleci-services".to_owned(),
        kms_key_id: None,
        set_default_version: true,
    };
    publish::run(&s3, &ec2, &target, &bundle, false)
        .await
        .unwrap();
    // The user data restores the keys where keys restore writes them, with
    // the same mode.
    assert!(bundle.userdata.contains(&format!(
        "fetch_dir 'circleci-encryption-keys/' '{KEYS_DIR}/'"
    )));
    assert!(
        bundle
            .userdata
            .contains(&format!("-exec chmod {KEY_MODE:o} {{}} +"))
    );

    let store = KeyStore {
        bucket: target.bucket.clone(),
        prefix: target.prefix.clone(),
        kms_key_id: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().join("circleci-encryption-keys");
    // Restoring onto an empty machine gives it the published keys.
    let written = keys::restore(&s3, &store, &machine, false, false)
        .await
        .unwrap();
    assert_eq!(written.len(), spec.encryption_keys.len());
    for (name, bytes) in &spec.encryption_keys {
        let path = machine.join(name);
        assert_eq!(&std::fs::read(&path).unwrap(), bytes);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            KEY_MODE
        );
    }
    assert!(
        keys::verify(&s3, &store, &machine)
            .await
            .unwrap()
            .is_identical()
    );
    // A backup of the same directory uploads nothing.
    assert!(
        keys::backup(&s3, &store, &machine, false)
            .await
            .unwrap()
            .steps
            .is_empty()
    );

    // A stored object whose content no longer matches its recorded SHA-256
    // is refused by name.
    s3.put_object()
        .bucket("circleci-ha-config")
        .key("circleci-encryption-keys/aes.key")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"tampered"))
        .metadata("circle-ha-sha256", "00")
        .send()
        .await
        .unwrap();
    let error = keys::verify(&s3, &store, &machine).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("circleci-encryption-keys/aes.key"),
        "{error}"
    );
    assert!(!error.to_string().contains("0123456789abcdef"));
}
