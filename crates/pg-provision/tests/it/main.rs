//! pg-provision against real PostgreSQL 15 clusters from ha-lab, over
//! `sslmode=verify-full`.

mod provision;

use std::time::Duration;

use ha_lab::{LabPki, Postgres, PostgresOptions, Toolbox};
use pg_provision::{Desired, Login, Server, SslMode, default_databases};
use secrecy::{ExposeSecret as _, SecretString};

/// A lab cluster with the handles tests need.
struct Lab {
    _pki: LabPki,
    pg: Postgres,
}

impl Lab {
    fn start() -> Lab {
        let pki = LabPki::new().unwrap();
        let pg = Postgres::start(
            &Toolbox::discover(std::env::vars_os()),
            &pki,
            PostgresOptions::default(),
        )
        .unwrap();
        Lab { _pki: pki, pg }
    }

    fn server(&self) -> Server {
        let ca = std::fs::read(self.pg.ca_file()).unwrap();
        Server {
            host: "localhost".to_owned(),
            hostaddr: Some("127.0.0.1".parse().unwrap()),
            port: self.pg.port(),
            sslmode: SslMode::VerifyFull,
            ca: Some((ca, self.pg.ca_file().display().to_string())),
            connect_timeout: Duration::from_secs(30),
        }
    }

    fn superuser(&self) -> Login {
        Login {
            user: self.pg.superuser().to_owned(),
            password: self.pg.superuser_password().clone(),
        }
    }

    /// Runs SQL as the superuser in `database`.
    async fn sql(&self, database: &str, sql: &str) {
        let client = self
            .server()
            .connect(&self.superuser(), database)
            .await
            .unwrap();
        client.batch_execute(sql).await.unwrap();
    }

    /// Names of the non-template databases other than `postgres`.
    async fn databases(&self) -> Vec<String> {
        let client = self
            .server()
            .connect(&self.superuser(), "postgres")
            .await
            .unwrap();
        client
            .query(
                "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

fn desired(password: &str) -> Desired {
    Desired {
        app_role: "circle".to_owned(),
        app_password: SecretString::from(password.to_owned()),
        databases: default_databases(),
    }
}

fn app_login(desired: &Desired) -> Login {
    Login {
        user: desired.app_role.clone(),
        password: SecretString::from(desired.app_password.expose_secret().to_owned()),
    }
}
