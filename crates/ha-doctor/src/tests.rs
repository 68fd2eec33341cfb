use std::time::{Duration, Instant};

use crate::{Cause, Machine, Options, doctor};

/// A bundle whose every address is unreachable. Its addresses are
/// placeholders (documentation ranges); every test points them at its own
/// loopback servers with [`point_at`] before running, so no test sends a
/// packet off this machine.
fn dead_bundle(dir: &std::path::Path) {
    let uri = |db: &str| {
        format!(
            "'mongodb://circle:pw@198.51.100.1:27017,198.51.100.2:27017,mongo-3.invalid:27017/{db}?replicaSet=circle&ssl=true&authSource=admin'"
        )
    };
    let mut customizations = String::new();
    for (name, db) in [
        ("MAIN", "circle_ghe"),
        ("ACTION_LOGS", "circle_ghe"),
        ("BUILD_STATE", "build_state_dev_ghe"),
        ("CONTAINERS", "containers_dev_ghe"),
        ("REMOTE_CONTAINERS", "remote_containers_dev_ghe"),
    ] {
        customizations.push_str(&format!(
            "export CIRCLE_SECRETS_MONGODB_{name}_URI={}\n",
            uri(db)
        ));
    }
    std::fs::write(
        dir.join("circle-installation-customizations"),
        customizations,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("circleconfig/shared")).unwrap();
    std::fs::write(
        dir.join("circleconfig/shared/postgresql"),
        "export POSTGRES_HOST='198.51.100.3'\nexport POSTGRES_PORT='5432'\n\
         export POSTGRES_PASSWORD='pw'\nexport POSTGRES_USER='circle'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("circleconfig/shared/vault"),
        "export VAULT__SCHEME='https'\nexport VAULT__HOST='198.51.100.4'\nexport VAULT__PORT='8200'\n\
         export VAULT__CLIENT_TOKEN='s.token'\nexport VAULT__TRANSIT_MOUNT='transit'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("settings.conf"),
        r#"{"hostname": {"value": "circleci.example.com"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("replicated.conf"),
        r#"{"TlsBootstrapHostname": "circleci.example.com", "ImportSettingsFrom": "/etc/settings.conf"}"#,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let ca = ha_tls::Ca::generate(&ha_tls::CaSpec::new("Test", "Doctor"), now).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
    std::fs::create_dir(dir.join("circleci-encryption-keys")).unwrap();
    std::fs::write(dir.join("circleci-encryption-keys/aes.key"), "k").unwrap();
}

/// Replaces `from` with `to` in `file` of the bundle in `dir`.
fn point_at(dir: &std::path::Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap().replace(from, to);
    std::fs::write(&path, text).unwrap();
}

/// A loopback listener that accepts every connection and never answers
/// (a dead network, as the client sees it), and its port.
async fn silent_server() -> u16 {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    port
}

#[tokio::test]
async fn a_dead_network_costs_a_few_deadlines_not_one_per_host_and_uri() {
    let dir = tempfile::tempdir().unwrap();
    dead_bundle(dir.path());
    // Three members nobody listens for, on loopback (no packet leaves the
    // machine); PostgreSQL and Vault accept and never answer.
    let refused = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (first, second, third) = (
        format!("127.0.0.1:{}", refused()),
        format!("127.0.0.1:{}", refused()),
        format!("localhost:{}", refused()),
    );
    let (a, b) = (silent_server().await, silent_server().await);
    point_at(
        dir.path(),
        "circle-installation-customizations",
        "198.51.100.1:27017,198.51.100.2:27017,mongo-3.invalid:27017",
        &format!("{first},{second},{third}"),
    );
    let pg = "circleconfig/shared/postgresql";
    point_at(dir.path(), pg, "'198.51.100.3'", "'127.0.0.1'");
    point_at(dir.path(), pg, "'5432'", &format!("'{a}'"));
    let vault = "circleconfig/shared/vault";
    point_at(dir.path(), vault, "'198.51.100.4'", "'127.0.0.1'");
    point_at(dir.path(), vault, "'8200'", &format!("'{b}'"));
    let options = Options {
        step_timeout: Duration::from_secs(2),
        read_only: true,
    };
    let started = Instant::now();
    let report = doctor(&Machine::bundle(dir.path()), &options).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let text = ha_plan::Document::to_text(&report);
    assert!(!report.findings.is_empty());
    for finding in &report.findings {
        assert!(
            matches!(finding.cause, Cause::Network | Cause::Tls),
            "{text}"
        );
    }
    // Each unreachable host is named, for every URI that uses it.
    let named: Vec<&str> = report.findings.iter().map(|f| f.target.as_str()).collect();
    assert!(named.contains(&third.as_str()), "{text}");
    assert!(named.contains(&first.as_str()), "{text}");
    assert!(!text.contains(":pw@"), "{text}");
}

#[tokio::test]
async fn servers_that_accept_and_never_answer_cost_one_deadline_each_at_most() {
    // Accepts every connection and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    dead_bundle(dir.path());
    for file in [
        "circle-installation-customizations",
        "circleconfig/shared/postgresql",
        "circleconfig/shared/vault",
    ] {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "198.51.100.1:27017,198.51.100.2:27017,mongo-3.invalid:27017",
                &format!("127.0.0.1:{port}"),
            )
            .replace("'198.51.100.3'", "'127.0.0.1'")
            .replace("'5432'", &format!("'{port}'"))
            .replace("'198.51.100.4'", "'127.0.0.1'")
            .replace("'8200'", &format!("'{port}'"));
        std::fs::write(&path, text).unwrap();
    }
    let options = Options {
        step_timeout: Duration::from_secs(2),
        read_only: true,
    };
    let started = Instant::now();
    let report = doctor(&Machine::bundle(dir.path()), &options).await;
    let took = started.elapsed();
    let text = ha_plan::Document::to_text(&report);
    assert!(took < Duration::from_secs(12), "took {took:?}:\n{text}");
    assert!(report.findings.len() >= 7, "{text}");
    assert!(!text.contains(":pw@"), "{text}");
}

/// A server with a certificate from a CA nobody trusts, answering as
/// PostgreSQL (an `SSLRequest` gets `S`, then TLS) or as an HTTPS server
/// (TLS at once); everything a client sends it after the handshake is
/// recorded.
async fn impostor() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use rustls::pki_types::pem::PemObject as _;
    use secrecy::ExposeSecret as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let now = time::OffsetDateTime::now_utc();
    let evil = ha_tls::Ca::generate(&ha_tls::CaSpec::new("Evil", "Impostor"), now).unwrap();
    let leaf = evil
        .issue(
            &ha_tls::LeafSpec::host(&["127.0.0.1", "localhost"], "Evil", "Impostor").unwrap(),
            now,
        )
        .unwrap();
    let certs =
        vec![rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()];
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.expose_secret().as_bytes())
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(ha_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                let mut first = [0_u8; 8];
                if stream.peek(&mut first).await.is_ok()
                    && first == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
                {
                    let _ = stream.read_exact(&mut first).await;
                    let _ = stream.write_all(b"S").await;
                }
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut buf = vec![0_u8; 4096];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        // Enough to make a client go on talking.
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                            .await;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn credentials_never_reach_a_server_doctor_cannot_verify() {
    let (port, seen) = impostor().await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = Options {
        step_timeout: Duration::from_secs(3),
        read_only: true,
    };
    let write_bundle = |dir: &std::path::Path, scheme: &str| {
        dead_bundle(dir);
        let point = |file: &str, from: &str, to: &str| {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).unwrap().replace(from, to);
            std::fs::write(&path, text).unwrap();
        };
        point(
            "circle-installation-customizations",
            "198.51.100.1:27017,198.51.100.2:27017,mongo-3.invalid:27017",
            &format!("127.0.0.1:{refused}"),
        );
        let pg = "circleconfig/shared/postgresql";
        point(pg, "'198.51.100.3'", "'127.0.0.1'");
        point(pg, "'5432'", &format!("'{port}'"));
        point(pg, "'pw'", "'pw-SECRET-doctor'");
        let vault = "circleconfig/shared/vault";
        point(vault, "'198.51.100.4'", "'127.0.0.1'");
        point(vault, "'8200'", &format!("'{port}'"));
        point(vault, "'s.token'", "'s.TOKEN-SECRET-doctor'");
        point(vault, "'https'", &format!("'{scheme}'"));
    };
    let leaked = || {
        let bytes = seen.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.contains("SECRET-doctor")
    };

    // Our CA installed, the server's certificate from another: the
    // handshake fails, nothing is sent.
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), "https");
    let report = doctor(&Machine::bundle(dir.path()), &options).await;
    let text = ha_plan::Document::to_text(&report);
    assert!(!leaked(), "a credential reached the impostor:\n{text}");
    for what in ["postgresql", "vault"] {
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.what == what && f.cause == Cause::Tls),
            "{what}: {text}"
        );
    }

    // No CA at all: nothing that carries a credential is even tried.
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), "https");
    std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
    let report = doctor(&Machine::bundle(dir.path()), &options).await;
    let text = ha_plan::Document::to_text(&report);
    assert!(!leaked(), "a credential reached the impostor:\n{text}");
    assert!(text.contains("does not send the password"), "{text}");
    assert!(text.contains("does not send the token"), "{text}");

    // Plain HTTP Vault: a finding, and the token stays home.
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), "http");
    let report = doctor(&Machine::bundle(dir.path()), &options).await;
    let text = ha_plan::Document::to_text(&report);
    assert!(text.contains("VAULT__SCHEME=http"), "{text}");
    assert!(!leaked(), "a credential reached the impostor:\n{text}");
}

#[test]
fn a_cause_prints_in_json_as_its_stable_name() {
    for cause in [
        Cause::MachineSetup,
        Cause::MalformedUri,
        Cause::Network,
        Cause::LocalhostOnly,
        Cause::Tls,
        Cause::Credentials,
        Cause::DatabaseConfiguration,
    ] {
        assert_eq!(serde_json::to_value(cause).unwrap(), cause.name());
    }
}
