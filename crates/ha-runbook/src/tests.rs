use std::time::Duration;

use secrecy::SecretString;

use crate::*;

fn unreachable_postgres(admin: bool) -> PostgresSetup {
    let login = |user: &str| pg_provision::Login {
        user: user.to_owned(),
        password: SecretString::from("'\"$@:/?#% ö".to_owned()),
    };
    let server = pg_provision::Server {
        host: "127.0.0.1".to_owned(),
        hostaddr: None,
        port: 1,
        sslmode: pg_provision::SslMode::Disable,
        ca: None,
        connect_timeout: Duration::from_secs(5),
    };
    PostgresSetup::new(
        server,
        admin.then(|| login("postgres")),
        "postgres",
        login("circle"),
        Vec::new(),
    )
}

/// A backup check of EBS snapshots in eu-west-1.
fn ebs_backup() -> BackupCheck {
    BackupCheck::new(
        "rs0",
        mongo_backup::StoreSpec::Ebs {
            volumes: vec!["vol-1".to_owned()],
            region: "eu-west-1".to_owned(),
        },
        "/var/lib/mongodb",
        Duration::from_secs(3600),
    )
}

#[test]
fn concerns_parse_by_name_and_only_the_applied_ones() {
    for concern in Concern::ALL {
        assert_eq!(Concern::parse(concern.name()), Some(concern));
    }
    assert_eq!(Concern::parse(" mongo "), Some(Concern::Mongo));
    assert_eq!(
        Concern::parse("backup"),
        None,
        "status checks it, apply never runs it"
    );
    assert_eq!(Concern::parse("mongodb"), None);
    assert_eq!(Concern::Keys.header(), "[services] encryption keys' backup");
}

#[tokio::test]
async fn an_empty_runbook_applies_nothing_and_says_why_for_each_concern() {
    let mut runbook = Runbook::new();
    runbook.not_selected = vec![Concern::Vault];
    let report = apply(&runbook, false, &ha_plan::no_progress).await.unwrap();
    assert!(report.ran.is_empty());
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|(c, why)| (c.as_str(), why.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("pki", "not configured"),
            ("mongo", "not configured"),
            ("postgres", "not configured"),
            ("vault", "not selected"),
            ("userdata", "not configured"),
        ]
    );
}

#[tokio::test]
async fn apply_refuses_a_setup_without_its_admin_login_before_touching_anything() {
    let mut runbook = Runbook::new();
    runbook.postgres = Some(unreachable_postgres(false));
    let err = apply(&runbook, false, &ha_plan::no_progress)
        .await
        .unwrap_err();
    // Not `Stopped`: nothing ran, not even a connection attempt.
    assert!(
        matches!(
            err,
            Error::Missing {
                concern: "postgres",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_config());
    assert!(err.to_string().contains("admin login"), "{err}");
}

#[tokio::test]
async fn a_failing_concern_stops_apply_and_names_what_did_not_run() {
    let mut runbook = Runbook::new();
    runbook.postgres = Some(unreachable_postgres(true));
    runbook.vault = Some(VaultSetup::new(
        "http://127.0.0.1:1",
        vault_transit::Trust::DangerAcceptAnyCertificate,
        Some(SecretString::from("root".to_owned())),
        "token",
        vault_transit::ConfigureSpec::new("transit", "1h"),
    ));
    let err = apply(&runbook, true, &ha_plan::no_progress)
        .await
        .unwrap_err();
    let Error::Stopped {
        at,
        finished,
        not_run,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*at, Concern::Postgres);
    assert!(finished.is_empty());
    assert_eq!(not_run, &[Concern::Vault]);
    assert!(!err.is_config());
    let text = format!("{err:#}");
    assert!(
        text.contains("apply stopped at postgres ([postgres])"),
        "{text}"
    );
    assert!(!text.contains("ö"), "a password leaked: {text}");
}

#[tokio::test]
async fn nothing_checked_is_not_healthy() {
    let checks = status(&Runbook::new(), &StatusOptions::default()).await;
    assert!(checks.is_empty());
    assert!(!status_findings(&checks).healthy);
}

#[test]
fn status_names_the_regions_whose_clients_it_needs() {
    let mut runbook = Runbook::new();
    assert_eq!(StatusAws::of(&runbook), StatusAws::default());
    runbook.backup = Some(ebs_backup());
    runbook.keys = Some(KeysCheck::new(
        services_userdata::keys::KeyStore {
            bucket: "b".to_owned(),
            prefix: String::new(),
            kms_key_id: None,
        },
        "us-east-2",
    ));
    let aws = StatusAws::of(&runbook);
    assert_eq!(aws.ec2_region.as_deref(), Some("eu-west-1"));
    assert_eq!(aws.s3_region.as_deref(), Some("us-east-2"));
}

#[tokio::test]
async fn an_ebs_backup_without_its_client_is_an_unhealthy_finding() {
    let mut runbook = Runbook::new();
    runbook.backup = Some(ebs_backup());
    let checks = status(&runbook, &StatusOptions::default()).await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].concern, Concern::Backup);
    assert!(!checks[0].healthy());
    let text = ha_plan::Document::to_text(&status_findings(&checks));
    assert!(
        text.contains("no EC2 client for the EBS snapshots was given"),
        "{text}"
    );
}
