//! PostgreSQL: real server, `sslmode=verify-full`, SCRAM.

use std::process::Command;

use ha_lab::{Postgres, PostgresOptions};
use secrecy::ExposeSecret as _;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{pki, tools, verifying_tls};

fn config(pg: &Postgres, user: &str, password: &str) -> tokio_postgres::Config {
    pg.client_config(user, password, "postgres")
}

#[tokio::test]
async fn answers_select_version_over_verify_full_tls() {
    let pki = pki();
    let pg = Postgres::start(&tools(), &pki, PostgresOptions::default()).unwrap();
    let tls = MakeRustlsConnect::new((*verifying_tls(&pg.ca_file())).clone());
    let (client, connection) = config(&pg, pg.superuser(), pg.superuser_password().expose_secret())
        .connect(tls)
        .await
        .unwrap();
    tokio::spawn(connection);

    let row = client.query_one("SELECT version()", &[]).await.unwrap();
    let version: String = row.get(0);
    assert!(version.starts_with("PostgreSQL "), "{version}");
    assert!(pg.version().contains("PostgreSQL"), "{}", pg.version());

    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the session must be encrypted");

    let row = client
        .query_one(
            "SELECT count(*) FROM pg_available_extensions WHERE name IN ('pgcrypto', 'uuid-ossp')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        2,
        "pgcrypto and uuid-ossp must be installable"
    );

    let row = client
        .query_one(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the superuser password must be stored as SCRAM"
    );
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_and_a_wrong_password_too() {
    let pki = pki();
    let pg = Postgres::start(&tools(), &pki, PostgresOptions::default()).unwrap();

    let other = ha_lab::LabPki::new().unwrap();
    let tls = MakeRustlsConnect::new((*verifying_tls(&other.ca_file())).clone());
    let err = config(&pg, pg.superuser(), pg.superuser_password().expose_secret())
        .connect(tls)
        .await
        .err()
        .expect("a server certificate from an unknown CA must be refused");
    // Both lab CAs carry the same subject, so rustls finds a candidate issuer
    // by name and then rejects its signature; ha-tls says so in words.
    let chain = format!("{err:?}");
    assert!(
        chain.contains("TLS: the certificate localhost presented")
            && chain.contains("is not signed by the CA"),
        "{chain}"
    );

    let tls = MakeRustlsConnect::new((*verifying_tls(&pg.ca_file())).clone());
    let err = config(&pg, pg.superuser(), "not the password")
        .connect(tls)
        .await
        .err()
        .expect("a wrong password must be refused");
    let message = err
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(
        message.contains("password authentication failed"),
        "{err:?}"
    );
}

#[test]
fn psql_connects_with_the_lab_environment_and_a_hostile_password() {
    let pki = pki();
    let password = "p'\"$@:/?#%\\ ü–密".to_owned();
    let pg = Postgres::start(
        &tools(),
        &pki,
        PostgresOptions {
            superuser: "lab admin".to_owned(),
            superuser_password: password.clone().into(),
            require_tls: true,
            durable: false,
        },
    )
    .unwrap();
    let output = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-tA", "-c", "SELECT current_user || ' ' || (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())"])
        .env_clear()
        .envs(pg.libpq_env("postgres").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "lab admin true"
    );
    assert!(!stderr.contains(&password));
}

#[test]
fn the_server_is_gone_after_drop() {
    let pki = pki();
    let pg = Postgres::start(&tools(), &pki, PostgresOptions::default()).unwrap();
    let port = pg.port();
    let pid = pg.pid().unwrap();
    drop(pg);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
