//! `[mongo]` and `[postgres]` as circle-export's restore targets.

use circle_export::{MongoTarget, PgConn};
use ha_plan::Problems;

use crate::collect::Collect;
use crate::{EnvLookup, HaConfig, PostgresOverrides};

pub use circle_export::RestoreTargets;

impl HaConfig {
    /// The restore targets `ha.toml` describes: the `[mongo]` replica set
    /// as circle-admin (`[mongo].users.admin`), and `[postgres]` as the app
    /// role, which owns the databases, so what it restores belongs to it.
    /// Both are checked as the provisioning commands check them (the same
    /// `sslmode` rules, every member address parsed), warnings go to
    /// `warnings`.
    pub fn restore_targets(
        &self,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<RestoreTargets, Problems> {
        let mut c = Collect::default();
        let mut targets = RestoreTargets::default();
        if let Some(raw) = &self.raw.mongo {
            let layout = self.mongo_layout();
            if let Err(problems) = &layout {
                c.extend(problems.clone());
            }
            let admin = raw.users.as_ref().and_then(|u| u.admin.as_ref());
            let password = c.secret(
                self,
                env,
                "[mongo].users.admin.password",
                admin.and_then(|a| a.password.as_deref()),
            );
            if let Ok(layout) = layout {
                let tls = raw.tls.as_ref();
                targets.mongo = Some(MongoTarget {
                    hosts: layout.members.iter().map(|m| m.host.clone()).collect(),
                    replica_set: Some(layout.name),
                    user: admin
                        .and_then(|a| a.name.clone())
                        .unwrap_or_else(|| "circle-admin".to_owned()),
                    password,
                    tls_ca_file: tls
                        .and_then(|t| t.ca_file.as_ref())
                        .map(|p| self.path_of(p)),
                    tls_certificate_key_file: tls
                        .and_then(|t| t.certificate_key_file.as_ref())
                        .map(|p| self.path_of(p)),
                });
                if tls.is_some_and(|t| t.ca_file.is_none()) {
                    c.missing_because(
                        "[mongo].tls.ca_file",
                        "(TLS verification needs the CA that signed the member certificates)",
                    );
                }
            }
        }
        if self.raw.postgres.is_some() {
            match self.postgres(&PostgresOverrides::default()) {
                Err(problems) => c.extend(problems),
                Ok(settings) => {
                    c.warnings.extend(settings.warnings.iter().cloned());
                    let password = match self.resolve(
                        "[postgres].app_password",
                        &settings.app_password,
                        env,
                        &mut c.warnings,
                    ) {
                        Ok(password) => Some(password),
                        Err(problems) => {
                            c.extend(problems);
                            None
                        }
                    };
                    let server = &settings.server;
                    let mut params =
                        vec![("sslmode".to_owned(), server.sslmode.as_str().to_owned())];
                    if let Some((_, path)) = &server.ca {
                        params.push(("sslrootcert".to_owned(), path.clone()));
                    }
                    if let Some(addr) = server.hostaddr {
                        params.push(("hostaddr".to_owned(), addr.to_string()));
                    }
                    params.push((
                        "connect_timeout".to_owned(),
                        server.connect_timeout.as_secs().max(1).to_string(),
                    ));
                    targets.postgres = password.map(|password| PgConn {
                        host: server.host.clone(),
                        port: server.port,
                        user: settings.app_user.clone(),
                        password: Some(password),
                        dbname: "postgres".to_owned(),
                        params,
                    });
                }
            }
        }
        warnings.append(&mut c.warnings);
        c.finish(targets)
    }
}

impl HaConfig {
    /// `[export].pg_dump_command`: the argv prefix `pg_dump` runs through
    /// on the old machine (see `circle_export::PgClient::with_dump_command`),
    /// or `None` when the section or key is absent. Every word must be
    /// non-empty and the first name a program.
    pub fn export_pg_dump_command(&self) -> Result<Option<Vec<String>>, Problems> {
        let Some(argv) = self
            .raw
            .export
            .as_ref()
            .and_then(|e| e.pg_dump_command.clone())
        else {
            return Ok(None);
        };
        let mut c = Collect::default();
        if argv.is_empty() || argv.iter().any(|w| w.trim().is_empty()) {
            c.invalid(
                "[export].pg_dump_command",
                ": an argv (e.g. [\"docker\", \"exec\", \"-i\", \"-e\", \"PGPASSWORD\", \"postgres\"]) \
                 without empty words",
            );
        }
        c.finish(Some(argv))
    }
}
