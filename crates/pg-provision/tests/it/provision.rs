//! Observe, plan, apply and verify on real servers.

use ha_plan::Change as _;
use pg_provision::{Error, Login, SslMode, Step, apply, observe, plan, verify};
use secrecy::SecretString;

use crate::{Lab, app_login, desired};

/// Provisions once (the library's one-call form, after a dry run that must
/// plan the same steps); returns the applied steps.
async fn provision(lab: &Lab, admin: &Login, desired: &pg_provision::Desired) -> Vec<Step> {
    let server = lab.server();
    let dry = pg_provision::provision(&server, admin, "postgres", desired, true)
        .await
        .unwrap();
    let done = pg_provision::provision(&server, admin, "postgres", desired, false)
        .await
        .unwrap();
    assert_eq!(dry.steps, done.steps, "the dry run planned other steps");
    done.steps
}

async fn pending(lab: &Lab, admin: &Login, desired: &pg_provision::Desired) -> Vec<Step> {
    let observed = observe(&lab.server(), admin, "postgres", desired)
        .await
        .unwrap();
    plan(desired, &observed).steps
}

fn kinds(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(Step::kind).collect()
}

#[tokio::test]
async fn fresh_apply_then_nothing_left_to_do() {
    let lab = Lab::start();
    let desired = desired("app-password");
    let steps = provision(&lab, &lab.superuser(), &desired).await;
    let mut expected = vec!["create-role"];
    expected.extend(["create-database"; 8]);
    expected.extend(["create-extension"; 9]);
    assert_eq!(kinds(&steps), expected);

    assert_eq!(pending(&lab, &lab.superuser(), &desired).await, vec![]);
    assert_eq!(
        provision(&lab, &lab.superuser(), &desired).await,
        vec![],
        "a second apply must change nothing"
    );

    let report = verify(&lab.server(), &app_login(&desired), &desired.databases).await;
    assert!(report.is_healthy(), "{:?}", report.problems());
    assert_eq!(report.databases.len(), 8);
    assert_eq!(
        lab.databases().await,
        [
            "circle",
            "conductor_production",
            "contexts_service_production",
            "cron_service_production",
            "domain",
            "federations",
            "permissions",
            "vms"
        ]
    );
}

#[tokio::test]
async fn a_dropped_extension_and_database_are_restored_exactly() {
    let lab = Lab::start();
    let desired = desired("app-password");
    provision(&lab, &lab.superuser(), &desired).await;
    lab.sql("postgres", "DROP DATABASE federations").await;
    lab.sql("circle", "DROP EXTENSION pgcrypto").await;

    let report = verify(&lab.server(), &app_login(&desired), &desired.databases).await;
    assert_eq!(
        report.problems().len(),
        2,
        "verify must see both holes: {:?}",
        report.problems()
    );
    assert!(report.problems()[0].contains("extension pgcrypto is missing"));

    let steps = provision(&lab, &lab.superuser(), &desired).await;
    assert_eq!(
        steps,
        vec![
            Step::CreateDatabase {
                database: "federations".to_owned(),
                owner: "circle".to_owned()
            },
            Step::CreateExtension {
                database: "circle".to_owned(),
                extension: "pgcrypto".to_owned()
            },
            Step::CreateExtension {
                database: "federations".to_owned(),
                extension: "uuid-ossp".to_owned()
            },
        ]
    );
    assert!(
        verify(&lab.server(), &app_login(&desired), &desired.databases)
            .await
            .is_healthy()
    );
}

#[tokio::test]
async fn a_managed_service_admin_without_superuser_works_too() {
    let lab = Lab::start();
    lab.sql(
        "postgres",
        "CREATE ROLE rds_admin LOGIN CREATEDB CREATEROLE PASSWORD 'rds-admin-pw'",
    )
    .await;
    let admin = Login {
        user: "rds_admin".to_owned(),
        password: SecretString::from("rds-admin-pw"),
    };
    let desired = desired("app-password");
    let steps = provision(&lab, &admin, &desired).await;
    assert_eq!(&kinds(&steps)[..2], ["create-role", "grant-role"]);
    assert_eq!(steps.len(), 2 + 8 + 9);
    assert_eq!(pending(&lab, &admin, &desired).await, vec![]);
    let report = verify(&lab.server(), &app_login(&desired), &desired.databases).await;
    assert!(report.is_healthy(), "{:?}", report.problems());
}

#[tokio::test]
async fn missing_privileges_block_the_plan_and_change_nothing() {
    let lab = Lab::start();
    lab.sql("postgres", "CREATE ROLE weak LOGIN PASSWORD 'weak-pw'")
        .await;
    let admin = Login {
        user: "weak".to_owned(),
        password: SecretString::from("weak-pw"),
    };
    let desired = desired("app-password");
    let server = lab.server();
    let observed = observe(&server, &admin, "postgres", &desired)
        .await
        .unwrap();
    let plan = plan(&desired, &observed);
    assert_eq!(plan.blockers.len(), 3, "{:#?}", plan.blockers);
    assert!(
        plan.blockers[0].contains("CREATEROLE"),
        "{}",
        plan.blockers[0]
    );
    let err = apply(&plan, &desired, &server, &admin, "postgres")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Blocked { .. }));
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    // The one-call form refuses the same way, dry run or not.
    for dry_run in [true, false] {
        let err = pg_provision::provision(&server, &admin, "postgres", &desired, dry_run)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Blocked { .. }), "{err}");
    }
    assert_eq!(lab.databases().await, Vec::<String>::new());
}

#[tokio::test]
async fn wrong_admin_password_and_wrong_ca_fail_clearly_and_change_nothing() {
    let lab = Lab::start();
    let desired = desired("app-password");

    let wrong = Login {
        user: lab.superuser().user,
        password: SecretString::from("not-the-password"),
    };
    let err = observe(&lab.server(), &wrong, "postgres", &desired)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("password authentication failed")
            && text.contains("localhost:")
            && !text.contains("not-the-password"),
        "{text}"
    );

    let other = ha_lab::LabPki::new().unwrap();
    let mut server = lab.server();
    server.ca = Some((
        std::fs::read(other.ca_file()).unwrap(),
        other.ca_file().display().to_string(),
    ));
    let err = observe(&server, &lab.superuser(), "postgres", &desired)
        .await
        .unwrap_err();
    let text = format!("{err}");
    assert!(
        text.contains("TLS: the certificate localhost presented")
            && text.contains("CN=localhost")
            && text.contains(&other.ca_file().display().to_string()),
        "{text}"
    );

    // verify-full also checks the name: connect by IP to a certificate that
    // names localhost and 127.0.0.1 works, by a name it lacks does not.
    let mut server = lab.server();
    server.host = "db.example.invalid".to_owned();
    let err = observe(&server, &lab.superuser(), "postgres", &desired)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not name the host db.example.invalid"),
        "{err}"
    );
    // verify-ca checks the chain only, so the same connection works.
    server.sslmode = SslMode::VerifyCa;
    observe(&server, &lab.superuser(), "postgres", &desired)
        .await
        .unwrap();
    assert_eq!(lab.databases().await, Vec::<String>::new());
}

#[tokio::test]
async fn hostile_passwords_and_names_are_quoted_not_executed() {
    let lab = Lab::start();
    let password = "p'\"\\$@:/?#% ü–密 ; DROP ROLE postgres; --";
    let mut desired = desired(password);
    desired.app_role = "circle \"app\"; --".to_owned();
    desired.databases.truncate(2);
    desired.databases[1].name = "odd'name\\\"db".to_owned();
    desired.validate().unwrap();
    provision(&lab, &lab.superuser(), &desired).await;
    let report = verify(&lab.server(), &app_login(&desired), &desired.databases).await;
    assert!(report.is_healthy(), "{:?}", report.problems());
    assert_eq!(pending(&lab, &lab.superuser(), &desired).await, vec![]);
}

#[tokio::test]
async fn a_changed_password_is_set_and_then_works() {
    let lab = Lab::start();
    provision(&lab, &lab.superuser(), &desired("first-password")).await;
    let desired = desired("second-password");
    let steps = pending(&lab, &lab.superuser(), &desired).await;
    assert_eq!(kinds(&steps), ["set-password"]);
    assert!(steps[0].to_string().contains("PASSWORD <redacted>"));
    assert!(!steps[0].to_string().contains("second-password"));
    provision(&lab, &lab.superuser(), &desired).await;
    assert!(
        verify(&lab.server(), &app_login(&desired), &desired.databases)
            .await
            .is_healthy()
    );
    assert_eq!(pending(&lab, &lab.superuser(), &desired).await, vec![]);
}

#[tokio::test]
async fn passwords_reach_the_server_only_as_verifiers() {
    let lab = Lab::start();
    lab.sql("postgres", "ALTER SYSTEM SET log_statement = 'all'")
        .await;
    lab.sql("postgres", "SELECT pg_reload_conf()").await;
    let desired = desired("do-not-log-me");
    provision(&lab, &lab.superuser(), &desired).await;
    let log = std::fs::read_to_string(lab.pg.log_file()).unwrap();
    assert!(log.contains("CREATE ROLE"), "statement logging must be on");
    assert!(!log.contains("do-not-log-me"));
    assert!(log.contains("PASSWORD 'SCRAM-SHA-256$4096:"));
}
