//! services-userdata: golden files, shell and URI round trips, publishing to
//! moto.

mod keys;
mod publish;
mod render;

use std::collections::BTreeMap;

use secrecy::SecretString;
use services_userdata::{BundleSpec, GithubSpec, MongoSpec, PostgresSpec, StorageSpec, VaultSpec};

/// Every special character the issue names, and some.
pub(crate) const HOSTILE: &str = "p'a\"s$s`w\\o r%d@:/?#[]&;|<>*\n\tü–密";

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// A typical installation, or (hostile) one whose every secret is hostile.
pub(crate) fn spec(hostile: bool) -> BundleSpec {
    let pw = |typical: &str| {
        if hostile {
            secret(&format!("{HOSTILE}{typical}"))
        } else {
            secret(typical)
        }
    };
    BundleSpec {
        hostname: if hostile {
            "CircleCI.bücher.example"
        } else {
            "circleci.example.com"
        }
        .to_owned(),
        aws_region: "us-east-1".to_owned(),
        s3_bucket: "circleci-ha-config".to_owned(),
        s3_prefix: if hostile { "it's a $prefix/" } else { "" }.to_owned(),
        mongo: MongoSpec {
            replica_set: "circle".to_owned(),
            hosts: vec![
                "mongo-1.internal:27017".to_owned(),
                "mongo-2.internal:27017".to_owned(),
                "mongo-3.internal".to_owned(),
            ],
            user: if hostile { "circle@app:x" } else { "circle" }.to_owned(),
            password: pw("mongo-app-pw"),
            databases: vec![
                "circle_ghe".to_owned(),
                "build_state_dev_ghe".to_owned(),
                "containers_dev_ghe".to_owned(),
                "remote_containers_dev_ghe".to_owned(),
            ],
            tls: true,
        },
        postgres: PostgresSpec {
            host: "pg.internal".to_owned(),
            port: 5432,
            user: "circle".to_owned(),
            password: pw("pg-app-pw"),
        },
        vault: VaultSpec {
            scheme: "https".to_owned(),
            host: "vault.internal".to_owned(),
            port: 8200,
            token: pw("s.vault-app-token"),
            transit_mount: "transit".to_owned(),
        },
        replicated_password: pw("replicated-pw"),
        replicated_log_level: "debug".to_owned(),
        replicated_version: if hostile {
            Some("2.29.0; rm -rf /".to_owned())
        } else {
            None
        },
        secret_passphrase: pw("passphrase"),
        github: GithubSpec {
            kind: "github_type_public".to_owned(),
            client_id: "abc123".to_owned(),
            client_secret: pw("gh-secret"),
        },
        storage: StorageSpec {
            backend: "storage_backend_s3".to_owned(),
            bucket: "circleci-artifacts".to_owned(),
            sqs_queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/circleci".to_owned(),
        },
        extra_settings: if hostile {
            BTreeMap::from([("https_proxy".to_owned(), pw("http://proxy:3128"))])
        } else {
            BTreeMap::new()
        },
        license: b"fake license\n".to_vec(),
        ca_certificates: if hostile {
            vec![
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
                "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".to_owned(),
            ]
        } else {
            vec!["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned()]
        },
        encryption_keys: vec![
            ("aes.key".to_owned(), b"0123456789abcdef".to_vec()),
            ("hmac.key".to_owned(), b"fedcba9876543210".to_vec()),
        ],
        session_cookie_key: pw("0123456789abcdef"),
    }
}
