//! `[postgres]`: the server, the roles and the databases, for pg-provision.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ha_plan::Problems;
use pg_provision::{DatabaseSpec, Login, Server, SslMode};

use crate::collect::Collect;
use crate::secret::SecretRef;
use crate::{EnvLookup, HaConfig, Section};

/// Command-line values that override `[postgres]`.
#[derive(Clone, Debug, Default)]
pub struct PostgresOverrides {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--sslmode`.
    pub sslmode: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
}

/// `[postgres]`, validated; secrets still as references.
#[derive(Debug)]
pub struct PostgresSettings {
    /// Where the server is and how TLS is checked.
    pub server: Server,
    /// The admin role.
    pub admin_user: String,
    /// Its password.
    pub admin_password: SecretRef,
    /// The admin's maintenance database.
    pub admin_database: String,
    /// The app role.
    pub app_user: String,
    /// Its password.
    pub app_password: SecretRef,
    /// The databases.
    pub databases: Vec<DatabaseSpec>,
    /// Things to tell the operator on every run (`sslmode = "require"`
    /// checks no certificate).
    pub warnings: Vec<String>,
}

impl HaConfig {
    /// `[postgres]` with `overrides` applied, every problem at once.
    /// `sslmode` defaults to `verify-full`; `verify-ca`/`verify-full` need
    /// `ca_file`.
    pub fn postgres(&self, overrides: &PostgresOverrides) -> Result<PostgresSettings, Problems> {
        let Some(raw) = &self.raw.postgres else {
            return Err(self.no_section(Section::Postgres, ""));
        };
        let mut c = Collect::default();
        let host = c.required(
            "[postgres].host",
            overrides.host.as_ref().or(raw.host.as_ref()),
        );
        let hostaddr = match &raw.hostaddr {
            None => None,
            Some(text) => match text.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    c.invalid(
                        "[postgres].hostaddr",
                        format!("{text:?} is not an IP address"),
                    );
                    None
                }
            },
        };
        let sslmode_text = overrides
            .sslmode
            .clone()
            .or_else(|| raw.sslmode.clone())
            .unwrap_or_else(|| "verify-full".to_owned());
        let sslmode = SslMode::parse(&sslmode_text).unwrap_or_else(|| {
            c.invalid(
                "[postgres].sslmode",
                format!("{sslmode_text:?} is not one of disable, require, verify-ca, verify-full"),
            );
            SslMode::VerifyFull
        });
        let ca_file = overrides
            .ca_file
            .clone()
            .or_else(|| raw.ca_file.as_ref().map(|p| self.path_of(p)));
        let ca = match &ca_file {
            None => {
                if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
                    c.missing_because(
                        "[postgres].ca_file",
                        format!(
                            "(sslmode = {:?} needs the CA that signed the server's certificate); \
                             or choose sslmode = \"disable\" for a plain connection",
                            sslmode.as_str()
                        ),
                    );
                }
                None
            }
            Some(path) => c
                .ca_file("[postgres].ca_file", path)
                .map(|pem| (pem, path.display().to_string())),
        };
        let admin_password =
            c.secret_ref("[postgres].admin_password", raw.admin_password.as_deref());
        let app_password = c.secret_ref("[postgres].app_password", raw.app_password.as_deref());
        let databases = match &raw.databases {
            None => pg_provision::default_databases(),
            Some(list) => list
                .iter()
                .map(|d| DatabaseSpec {
                    name: d.name.clone(),
                    extensions: d.extensions.clone(),
                })
                .collect(),
        };
        if databases.is_empty() {
            c.invalid(
                "[postgres].databases",
                "is empty; leave it out for the runbook's eight",
            );
        }
        if sslmode == SslMode::Require {
            c.warnings.push(
                "[postgres].sslmode = \"require\" encrypts but does not check the server's \
                 certificate: anyone on the network path can pose as the server and read every \
                 password and row; use \"verify-full\" with ca_file"
                    .to_owned(),
            );
        }
        let app_user = raw.app_user.clone().unwrap_or_else(|| "circle".to_owned());
        let warnings = std::mem::take(&mut c.warnings);
        let mut problems = c.problems;
        let (Some(admin_password), Some(app_password)) = (admin_password, app_password) else {
            return Err(problems);
        };
        // The names and extensions follow pg-provision's own rules.
        if let Err(e) = pg_provision::check_names(&app_user, &databases) {
            problems.push(ha_plan::Problem::invalid("[postgres]", format!(": {e}")));
        }
        problems.finish(PostgresSettings {
            server: Server {
                host,
                hostaddr,
                port: overrides.port.or(raw.port).unwrap_or(5432),
                sslmode,
                ca,
                connect_timeout: Duration::from_secs(raw.connect_timeout.unwrap_or(30)),
            },
            admin_user: raw
                .admin_user
                .clone()
                .unwrap_or_else(|| "postgres".to_owned()),
            admin_password,
            admin_database: raw
                .admin_database
                .clone()
                .unwrap_or_else(|| "postgres".to_owned()),
            app_user,
            app_password,
            databases,
            warnings,
        })
    }

    /// `[postgres].app_user` with its password resolved: the login
    /// `pg-provision verify` checks every database with.
    pub fn postgres_app_login(
        &self,
        settings: &PostgresSettings,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Login, Problems> {
        let password = self.resolve(
            "[postgres].app_password",
            &settings.app_password,
            env,
            warnings,
        )?;
        Ok(Login {
            user: settings.app_user.clone(),
            password,
        })
    }

    /// `[postgres]` as the setup `ha-runbook` runs: the app login's
    /// password resolved, and with `admin` the admin login's too (what
    /// `apply` needs; `verify` logs in as the app). The setup carries the
    /// settings' and the references' warnings.
    pub fn postgres_setup(
        &self,
        settings: &PostgresSettings,
        env: EnvLookup<'_>,
        admin: bool,
    ) -> Result<ha_runbook::PostgresSetup, Problems> {
        let mut warnings = settings.warnings.clone();
        let (admin, app) = if admin {
            let (admin, app) = self.postgres_logins(settings, env, &mut warnings)?;
            (Some(admin), app)
        } else {
            (None, self.postgres_app_login(settings, env, &mut warnings)?)
        };
        let mut setup = ha_runbook::PostgresSetup::new(
            settings.server.clone(),
            admin,
            settings.admin_database.clone(),
            app,
            settings.databases.clone(),
        );
        setup.warnings = warnings;
        Ok(setup)
    }

    /// The admin login (`admin_user`, `admin_password`) and the app login,
    /// both passwords resolved; a problem with either, or both, at once.
    pub fn postgres_logins(
        &self,
        settings: &PostgresSettings,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<(Login, Login), Problems> {
        let admin = self.resolve(
            "[postgres].admin_password",
            &settings.admin_password,
            env,
            warnings,
        );
        let app = self.postgres_app_login(settings, env, warnings);
        match (admin, app) {
            (Ok(password), Ok(app)) => Ok((
                Login {
                    user: settings.admin_user.clone(),
                    password,
                },
                app,
            )),
            (admin, app) => Err([admin.err(), app.err()]
                .into_iter()
                .flatten()
                .flatten()
                .collect()),
        }
    }
}
