use std::time::{Duration, Instant};

use crate::{Cause, Machine, Options, doctor};

/// A bundle whose every address is unreachable (TEST-NET-2, where
/// connections go unanswered) and whose names do not resolve.
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

#[tokio::test]
async fn a_dead_network_costs_a_few_deadlines_not_one_per_host_and_uri() {
    let dir = tempfile::tempdir().unwrap();
    dead_bundle(dir.path());
    let options = Options {
        step_timeout: Duration::from_secs(2),
        read_only: true,
    };
    let started = Instant::now();
    let report = doctor(&Machine::bundle(dir.path()), &options).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let text = report.to_findings().text;
    assert!(!report.findings.is_empty());
    for finding in &report.findings {
        assert!(
            matches!(finding.cause, Cause::Network | Cause::Tls),
            "{text}"
        );
    }
    // Each unreachable host is named, for every URI that uses it.
    let named: Vec<&str> = report.findings.iter().map(|f| f.target.as_str()).collect();
    assert!(named.contains(&"mongo-3.invalid:27017"), "{text}");
    assert!(named.contains(&"198.51.100.1:27017"), "{text}");
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
    let text = report.to_findings().text;
    assert!(took < Duration::from_secs(12), "took {took:?}:\n{text}");
    assert!(report.findings.len() >= 7, "{text}");
    assert!(!text.contains(":pw@"), "{text}");
}
