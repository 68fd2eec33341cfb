//! `[mongo]`: the replica set, its members, users and TLS, for
//! mongo-rs-setup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ha_plan::{Problem, ProblemKind, Problems};
use mongo_rs_setup::conf::ServerPaths;
use mongo_rs_setup::{
    MemberSpec, Reach, ServerVersion, SetSettings, SetSpec, TlsFiles, UserKind, UserSpec,
    parse_member_host,
};

use crate::collect::Collect;
use crate::raw::RawMongo;
use crate::{EnvLookup, HaConfig, Section};

pub use mongo_rs_setup::DEFAULT_APP_DATABASES;

/// What `render-config` needs: the members and where files live on them.
#[derive(Clone, Debug)]
pub struct MongoLayout {
    /// `[mongo].replica_set`.
    pub name: String,
    /// `[mongo].server_version` (default 7.0).
    pub version: ServerVersion,
    /// `[mongo].members`, validated.
    pub members: Vec<MemberSpec>,
    /// `[mongo.server]` paths.
    pub paths: ServerPaths,
    /// `[mongo.server].bind_ip`.
    pub bind_ip: Vec<String>,
    /// Things to tell the operator (an even number of voters …).
    pub warnings: Vec<String>,
}

/// Options of the commands that talk to the set.
#[derive(Clone, Debug, Default)]
pub struct MongoOptions {
    /// `--bootstrap-via-localhost`.
    pub bootstrap_via_localhost: bool,
    /// `--wait-timeout`, overriding `[mongo].wait_timeout`.
    pub wait_timeout: Option<Duration>,
}

/// A validated, resolved spec and the warnings found on the way
/// (`ha-runbook`'s, which runs it).
pub use ha_runbook::MongoSetup;

impl HaConfig {
    /// `mongo-rs-setup render-config`: the mongod.conf text for `member`
    /// (`host:port`, or a host name listed once in `[mongo].members`) and
    /// the warnings to show.
    pub fn mongod_conf(&self, member: &str) -> Result<(String, Vec<String>), Problems> {
        self.member_file(member, false)
    }

    /// `mongo-rs-setup render-config --logrotate`: the logrotate snippet
    /// for `member`'s log ([`mongo_rs_setup::conf::render_logrotate`]).
    pub fn mongod_logrotate(&self, member: &str) -> Result<(String, Vec<String>), Problems> {
        self.member_file(member, true)
    }

    fn member_file(
        &self,
        member: &str,
        logrotate: bool,
    ) -> Result<(String, Vec<String>), Problems> {
        let layout = self.mongo_layout()?;
        let matches: Vec<&MemberSpec> = layout
            .members
            .iter()
            .filter(|m| {
                m.host.eq_ignore_ascii_case(member)
                    || parse_member_host(&m.host).is_ok_and(|(h, _)| h.eq_ignore_ascii_case(member))
            })
            .collect();
        let chosen = match matches.as_slice() {
            [one] => *one,
            [] => {
                let listed: Vec<&str> = layout.members.iter().map(|m| m.host.as_str()).collect();
                return Err(Problems::one(Problem::invalid(
                    "--member",
                    format!(
                        "{member:?} is not in [mongo].members ({})",
                        listed.join(", ")
                    ),
                )));
            }
            _ => {
                return Err(Problems::one(Problem::invalid(
                    "--member",
                    format!("{member:?} matches several members: give host:port"),
                )));
            }
        };
        let (host, port) = parse_member_host(&chosen.host)
            .map_err(|e| Problems::one(Problem::invalid("--member", e)))?;
        let conf = mongo_rs_setup::conf::MemberConf {
            replica_set: &layout.name,
            version: layout.version,
            host: &host,
            port,
            bind_ip: &layout.bind_ip,
            paths: &layout.paths,
        };
        let text = if logrotate {
            mongo_rs_setup::conf::render_logrotate(&conf)
                .map_err(|e| Problems::one(Problem::invalid("[mongo].server.log_path", e)))?
        } else {
            mongo_rs_setup::conf::render(&conf)
        };
        Ok((text, layout.warnings))
    }

    fn mongo_section(&self) -> Result<&RawMongo, Problems> {
        self.raw
            .mongo
            .as_ref()
            .ok_or_else(|| self.no_section(Section::Mongo, ""))
    }

    /// `[mongo]`'s members, version and on-member paths, checked (no
    /// secrets, no network): what `render-config` needs.
    pub fn mongo_layout(&self) -> Result<MongoLayout, Problems> {
        let raw = self.mongo_section()?;
        let mut c = Collect::default();
        let layout = layout(raw, &mut c);
        c.finish(layout)
    }

    /// `[mongo]` for the commands that talk to the set: everything
    /// [`HaConfig::mongo_layout`] checks, plus [`SetSpec::validate`], that
    /// the server version can be reached by the driver, every member's host
    /// name resolves, the TLS files and secrets are readable, and (with
    /// `[pki]`) the member certificates pass ha-tls lint. Every problem at
    /// once.
    pub async fn mongo_setup(
        &self,
        env: EnvLookup<'_>,
        options: &MongoOptions,
    ) -> Result<MongoSetup, Problems> {
        let raw = self.mongo_section()?;
        let mut c = Collect::default();
        let layout = layout(raw, &mut c);
        c.warnings.extend(layout.warnings.iter().cloned());
        if !layout.version.driver_supported() {
            c.invalid(
                "[mongo].server_version",
                format!(
                    "{}: mongo-rs-setup talks to MongoDB {} and later only (the official Rust \
                     driver refuses older servers); render-config still works",
                    layout.version,
                    ServerVersion::OLDEST_DRIVER_SUPPORTED
                ),
            );
        }
        c.extend(resolve_hosts(&layout.members).await);
        let tls = raw.tls.as_ref().map(|tls| {
            let ca_file = match &tls.ca_file {
                Some(path) => {
                    let path = self.path_of(path);
                    c.ca_file("[mongo].tls.ca_file", &path);
                    path
                }
                None => {
                    c.missing_because(
                        "[mongo].tls.ca_file",
                        "(TLS verification needs the CA that signed the member certificates)",
                    );
                    PathBuf::new()
                }
            };
            let certificate_key_file = tls.certificate_key_file.as_ref().map(|p| {
                let path = self.path_of(p);
                check_key_file(&path, &mut c);
                path
            });
            TlsFiles {
                ca_file,
                certificate_key_file,
            }
        });
        self.lint_member_certs(&layout, tls.as_ref(), &mut c);
        let users = raw.users.as_ref();
        let mut user = |kind: UserKind, default_name: &str| -> UserSpec {
            let raw_user = users.and_then(|u| match kind {
                UserKind::SiteAdmin => u.site_admin.as_ref(),
                UserKind::Admin => u.admin.as_ref(),
                UserKind::App => u.app.as_ref(),
            });
            let name = raw_user
                .and_then(|u| u.name.clone())
                .unwrap_or_else(|| default_name.to_owned());
            if kind != UserKind::App && raw_user.is_some_and(|u| u.databases.is_some()) {
                c.invalid(
                    format!("[mongo].users.{}.databases", kind.key()),
                    ": only the app user takes databases",
                );
            }
            let password = c.secret(
                self,
                env,
                &format!("[mongo].users.{}.password", kind.key()),
                raw_user.and_then(|u| u.password.as_deref()),
            );
            UserSpec { name, password }
        };
        let site_admin = user(UserKind::SiteAdmin, "siteUserAdmin");
        let admin = user(UserKind::Admin, "circle-admin");
        let app = user(UserKind::App, "circle");
        let app_databases: Vec<String> = users
            .and_then(|u| u.app.as_ref())
            .and_then(|a| a.databases.clone())
            .unwrap_or_else(|| DEFAULT_APP_DATABASES.map(str::to_owned).to_vec());
        let settings = raw
            .settings
            .as_ref()
            .map_or(SetSettings::default(), |s| SetSettings {
                election_timeout_millis: s.election_timeout_millis,
                heartbeat_interval_millis: s.heartbeat_interval_millis,
            });
        let spec = SetSpec {
            name: layout.name.clone(),
            members: layout.members.clone(),
            settings,
            site_admin,
            admin,
            app,
            app_databases,
            reach: Reach {
                tls,
                connect_timeout: Duration::from_secs(raw.connect_timeout.unwrap_or(10).max(1)),
                bootstrap_via_localhost: options.bootstrap_via_localhost,
            },
            wait_timeout: options
                .wait_timeout
                .unwrap_or(Duration::from_secs(raw.wait_timeout.unwrap_or(900))),
        };
        // The layout already reported the set name and member problems.
        if let Err(problems) = spec.validate() {
            let layout_keys = ["replica_set", "members"];
            c.extend(
                problems
                    .into_iter()
                    .filter(|p| !layout_keys.iter().any(|k| p.key.starts_with(k)))
                    .map(|p| p.under("[mongo]")),
            );
        }
        let warnings = c.warnings.clone();
        c.finish(())?;
        MongoSetup::new(spec, warnings)
            .map_err(|problems| problems.into_iter().map(|p| p.under("[mongo]")).collect())
    }

    /// With `[pki]`, every member's `<dir>/<host>.pem` must exist and pass
    /// ha-tls lint against the CA for the names the members use.
    fn lint_member_certs(&self, layout: &MongoLayout, tls: Option<&TlsFiles>, c: &mut Collect) {
        let Some(dir) = self.raw.pki.as_ref().and_then(|pki| pki.dir.as_deref()) else {
            return;
        };
        let dir = self.path_of(Path::new(dir));
        let ca_path = tls
            .map(|t| t.ca_file.clone())
            .unwrap_or_else(|| dir.join("ca.pem"));
        let ca = match std::fs::read(&ca_path)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                ha_tls::Certificate::from_pem(&pem, &ca_path.display().to_string())
                    .map_err(|e| e.to_string())
            }) {
            Ok(ca) => ca,
            Err(e) => {
                c.unreadable(
                    "[pki]",
                    format!(
                        ": cannot read the CA {} to check member certificates: {e}",
                        ca_path.display()
                    ),
                );
                return;
            }
        };
        let mut pems = Vec::new();
        for member in &layout.members {
            let Ok((host, _)) = parse_member_host(&member.host) else {
                continue;
            };
            let path = dir.join(format!("{host}.pem"));
            // Several members on one machine share its certificate: check it once.
            if pems.iter().any(|(p, _, _)| *p == path) {
                continue;
            }
            match std::fs::read(&path) {
                Ok(pem) => pems.push((path, host, pem)),
                Err(e) => c.unreadable(
                    "[pki]",
                    format!(
                        ": member certificate {} for {}: {e}",
                        path.display(),
                        member.host
                    ),
                ),
            }
        }
        let inputs: Vec<ha_tls::LintInput<'_>> = pems
            .iter()
            .map(|(path, host, pem)| ha_tls::LintInput {
                label: path.display().to_string(),
                role: ha_tls::Role::Member,
                pem,
                hosts: vec![host.clone()],
            })
            .collect();
        for problem in ha_tls::lint(&ca, &inputs, time::OffsetDateTime::now_utc()) {
            let text = format!("[{}]", problem.rule.name());
            match problem.severity {
                ha_tls::Severity::Error => c.invalid(
                    problem.label.clone(),
                    format!(": {} {text}", problem.message),
                ),
                ha_tls::Severity::Warning => c
                    .warnings
                    .push(format!("{}: {} {text}", problem.label, problem.message)),
            }
        }
    }
}

/// Validates the members, version and paths, recording problems.
fn layout(raw: &RawMongo, c: &mut Collect) -> MongoLayout {
    let name = match raw.replica_set.as_deref().map(str::trim) {
        Some(name) => {
            if let Err(e) = mongo_rs_setup::check_set_name(name) {
                c.invalid("[mongo].replica_set", e);
            }
            name.to_owned()
        }
        None => {
            c.missing("[mongo].replica_set");
            String::new()
        }
    };
    let version = match ServerVersion::parse(raw.server_version.as_deref().unwrap_or("7.0")) {
        Ok(v) => v,
        Err(e) => {
            c.invalid("[mongo].server_version", format!(": {e}"));
            ServerVersion { major: 7, minor: 0 }
        }
    };
    let members: Vec<MemberSpec> = raw
        .members
        .iter()
        .map(|m| {
            let arbiter_only = m.arbiter_only.unwrap_or(false);
            let hidden = m.hidden.unwrap_or(false);
            let votes = m.votes.unwrap_or(1);
            let default_priority = if arbiter_only || hidden || votes == 0 {
                0.0
            } else {
                1.0
            };
            MemberSpec {
                host: m.host.clone(),
                priority: m.priority.unwrap_or(default_priority),
                votes,
                hidden,
                arbiter_only,
            }
        })
        .collect();
    let mut warnings = Vec::new();
    match mongo_rs_setup::check_members(&members) {
        Ok(found) => warnings.extend(found.into_iter().map(|w| format!("[mongo].{w}"))),
        Err(problems) => c.extend(problems.into_iter().map(|p| p.under("[mongo]"))),
    }
    let defaults = ServerPaths::default();
    let server = raw.server.as_ref();
    let pick = |value: Option<&String>, default: String| value.cloned().unwrap_or(default);
    let paths = ServerPaths {
        db_path: pick(server.and_then(|s| s.db_path.as_ref()), defaults.db_path),
        log_path: pick(server.and_then(|s| s.log_path.as_ref()), defaults.log_path),
        certificate_key_file: pick(
            server.and_then(|s| s.certificate_key_file.as_ref()),
            defaults.certificate_key_file,
        ),
        cluster_file: pick(
            server.and_then(|s| s.cluster_file.as_ref().or(s.certificate_key_file.as_ref())),
            defaults.cluster_file,
        ),
        ca_file: pick(server.and_then(|s| s.ca_file.as_ref()), defaults.ca_file),
    };
    for (key, value) in [
        ("db_path", &paths.db_path),
        ("log_path", &paths.log_path),
        ("certificate_key_file", &paths.certificate_key_file),
        ("cluster_file", &paths.cluster_file),
        ("ca_file", &paths.ca_file),
    ] {
        if !value.starts_with('/') {
            c.invalid(
                format!("[mongo.server].{key}"),
                format!("{value:?} must be an absolute path on the member"),
            );
        }
    }
    let bind_ip = server.and_then(|s| s.bind_ip.clone()).unwrap_or_default();
    MongoLayout {
        name,
        version,
        members,
        paths,
        bind_ip,
        warnings,
    }
}

/// Every member's host name must resolve here, or nothing can connect.
async fn resolve_hosts(members: &[MemberSpec]) -> Vec<Problem> {
    let lookups = futures_util::future::join_all(members.iter().map(|m| async move {
        let (host, port) = parse_member_host(&m.host).ok()?;
        let found = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map(|r| r.map(|addrs| addrs.count()));
        let why = match found {
            Ok(Ok(n)) if n > 0 => return None,
            Ok(Err(e)) => format!(": {e}"),
            _ => String::new(),
        };
        Some(Problem::new(
            "[mongo].members",
            ProblemKind::Unreachable,
            format!("host {host:?} does not resolve{why}"),
        ))
    }))
    .await;
    lookups.into_iter().flatten().collect()
}

fn check_key_file(path: &Path, c: &mut Collect) {
    const KEY: &str = "[mongo].tls.certificate_key_file";
    match std::fs::read_to_string(path) {
        Ok(pem) if pem.contains("PRIVATE KEY-----") && pem.contains("CERTIFICATE-----") => {}
        Ok(_) => c.invalid(
            KEY,
            format!(
                "{}: must hold a certificate and its private key (PEM)",
                path.display()
            ),
        ),
        Err(e) => c.unreadable(KEY, format!("{}: {e}", path.display())),
    }
}
