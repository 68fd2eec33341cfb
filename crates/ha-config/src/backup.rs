//! `[backup]`: snapshots of a stopped MongoDB secondary, for mongo-backup.

use std::path::PathBuf;
use std::time::Duration;

use ha_plan::Problems;
use mongo_backup::guard::Limits;
use mongo_backup::snapshot::Retention;
use mongo_backup::units::UnitSpec;
use mongo_backup::{BackupSpec, Commands};

use crate::collect::Collect;
use crate::{HaConfig, Section};

/// Where snapshots go ([`mongo_backup::StoreSpec`]).
pub use mongo_backup::StoreSpec as BackupStore;

/// `[backup]`, validated.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// What a run does (member, limits, timeouts, retention).
    pub spec: BackupSpec,
    /// Where snapshots go.
    pub store: BackupStore,
    /// How mongod is stopped and started.
    pub commands: Commands,
    /// `status`: the newest complete run may be at most this old.
    pub max_age: Duration,
    /// The systemd units' schedule.
    pub units: UnitSpec,
    /// Things to tell the operator.
    pub warnings: Vec<String>,
}

impl HaConfig {
    /// Whether the backup service `units` describe can read the secrets a
    /// run needs — the `[mongo].users` passwords: an `env:NAME` reference
    /// needs `[backup].environment_file` (`EnvironmentFile=`), a
    /// `cred:NAME` one a `[backup].credentials` entry for NAME
    /// (`LoadCredential=`). The problem names the user and the reference,
    /// never a value.
    pub fn backup_unit_secrets(&self, units: &UnitSpec) -> Result<(), String> {
        let users = self.raw.mongo.as_ref().and_then(|m| m.users.as_ref());
        let refs = users.into_iter().flat_map(|u| {
            [
                ("site_admin", &u.site_admin),
                ("admin", &u.admin),
                ("app", &u.app),
            ]
        });
        for (who, user) in refs {
            let Some(reference) = user.as_ref().and_then(|u| u.password.as_deref()) else {
                continue;
            };
            match crate::secret::SecretRef::parse(reference) {
                Ok(crate::secret::SecretRef::Env(name)) if units.environment_file.is_none() => {
                    return Err(format!(
                        "[mongo].users.{who}.password is env:{name}, but the service would run \
                         without it: set [backup].environment_file to a 0600 file with \
                         {name}=… (EnvironmentFile=), or use cred:NAME with \
                         [backup].credentials"
                    ));
                }
                Ok(crate::secret::SecretRef::Credential(name))
                    if !units.credentials.iter().any(|(n, _)| *n == name) =>
                {
                    return Err(format!(
                        "[mongo].users.{who}.password is cred:{name}, but [backup].credentials \
                         has no {name}:PATH entry (LoadCredential=)"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl BackupSettings {
    /// The store `[backup].store` names, ready to use. `ec2` is the EC2
    /// client for `BackupStore::Ebs`'s region (the program builds it:
    /// credentials, endpoint); the other stores need none. An EBS store
    /// without a client is a problem keyed `[backup].store`.
    pub fn snapshot_store(
        &self,
        ec2: Option<mongo_backup::ha_ec2::Ec2>,
    ) -> Result<mongo_backup::AnyStore, Problems> {
        let db_path = self.spec.db_path.clone().unwrap_or_default();
        self.store.open(&db_path, ec2).map_err(|e| {
            Problems::one(ha_plan::Problem::invalid(
                "[backup].store",
                format!(": {e}"),
            ))
        })
    }
}

impl HaConfig {
    /// The AWS region of `[backup]`'s EBS store, for the EC2 client
    /// [`BackupSettings::snapshot_store`] takes; `None` for the other
    /// stores (or a `[backup]` with problems, which `backup` reports).
    pub fn backup_region(&self) -> Option<String> {
        match self.backup(None).ok()?.store {
            BackupStore::Ebs { region, .. } => Some(region),
            _ => None,
        }
    }

    /// `[backup]` (with `[mongo]`'s members and dbPath, `[services]`'s
    /// region as defaults), every problem at once. `member` is the
    /// `--member` flag, overriding `[backup].member`.
    pub fn backup(&self, member: Option<&str>) -> Result<BackupSettings, Problems> {
        let raw = self
            .raw
            .backup
            .as_ref()
            .ok_or_else(|| self.no_section(Section::Backup, ""))?;
        let mut c = Collect::default();
        let layout = self.mongo_layout();
        // No member named: the run backs up whatever member this
        // machine's mongod says it is.
        let member = member
            .map(str::to_owned)
            .or_else(|| raw.member.clone())
            .unwrap_or_default();
        let (listed_host, port) = match &layout {
            Ok(layout) if !member.is_empty() => {
                match layout
                    .members
                    .iter()
                    .find(|m| m.host.eq_ignore_ascii_case(&member))
                {
                    Some(m) => mongo_rs_setup::parse_member_host(&m.host)
                        .map(|(h, p)| (h, p.to_string()))
                        .unwrap_or_default(),
                    None => {
                        let listed: Vec<&str> =
                            layout.members.iter().map(|m| m.host.as_str()).collect();
                        c.invalid(
                            "[backup].member",
                            format!(
                                ": {member} is not in [mongo].members ({})",
                                listed.join(", ")
                            ),
                        );
                        Default::default()
                    }
                }
            }
            Ok(_) => Default::default(),
            Err(_) => {
                c.missing_because("[mongo]", "([backup] backs up a member of [mongo].members)");
                Default::default()
            }
        };
        let db_path = raw
            .db_path
            .clone()
            .or_else(|| layout.as_ref().ok().map(|l| l.paths.db_path.clone()));
        if member.is_empty()
            && db_path
                .as_ref()
                .is_some_and(|p| p.contains("{host}") || p.contains("{port}"))
        {
            c.missing_because(
                "[backup].member",
                "(the dbPath names {host}/{port}: name this machine's member, host:port as in \
                 [mongo].members, or pass --member)",
            );
        }
        let db_path = db_path.map(|p| p.replace("{host}", &listed_host).replace("{port}", &port));
        let local_port = raw
            .local_port
            .or_else(|| port.parse().ok())
            .unwrap_or(27017);
        if let Some(path) = &db_path
            && !path.starts_with('/')
        {
            c.invalid(
                "[backup].db_path",
                format!(": {path:?} must be an absolute path"),
            );
        }
        let store = match raw.store.as_deref().unwrap_or("ebs") {
            "ebs" => {
                let volumes = raw.volumes.clone().unwrap_or_default();
                if volumes.is_empty() {
                    c.missing_because(
                        "[backup].volumes",
                        "(the EBS volumes that hold the dbPath, and the journal or log if separate)",
                    );
                }
                for (i, volume) in volumes.iter().enumerate() {
                    let id = volume.strip_prefix("vol-").unwrap_or_default();
                    if id.is_empty() || !id.chars().all(|ch| ch.is_ascii_hexdigit()) {
                        c.invalid(
                            format!("[backup].volumes[{i}]"),
                            format!(": {volume:?} is not an EBS volume id (vol-0123456789abcdef0)"),
                        );
                    }
                }
                let region = raw.aws_region.clone().or_else(|| {
                    self.raw
                        .services
                        .as_ref()
                        .and_then(|s| s.aws_region.clone())
                });
                if region.is_none() {
                    c.missing_because("[backup].aws_region", "(or [services].aws_region)");
                }
                BackupStore::Ebs {
                    volumes,
                    region: region.unwrap_or_default(),
                }
            }
            "directory" => match &raw.directory {
                Some(dir) => BackupStore::Directory {
                    root: self.path_of(dir),
                },
                None => {
                    c.missing_because("[backup].directory", "(store = \"directory\" copies there)");
                    BackupStore::Directory {
                        root: PathBuf::new(),
                    }
                }
            },
            "command" => match &raw.snapshot_command {
                Some(argv) if !argv.is_empty() && !argv[0].trim().is_empty() => {
                    BackupStore::Command {
                        command: argv.clone(),
                    }
                }
                _ => {
                    c.missing_because(
                        "[backup].snapshot_command",
                        "(store = \"command\" runs it with create, list, delete ID)",
                    );
                    BackupStore::Command {
                        command: Vec::new(),
                    }
                }
            },
            other => {
                c.invalid(
                    "[backup].store",
                    format!(": {other:?} is not a store (ebs, directory, command)"),
                );
                BackupStore::Directory {
                    root: PathBuf::new(),
                }
            }
        };
        let defaults = Commands::default();
        let mut command = |key: &str, value: &Option<Vec<String>>, default: Vec<String>| match value
        {
            Some(argv) if argv.is_empty() || argv[0].trim().is_empty() => {
                c.invalid(format!("[backup].{key}"), ": must name a program");
                default
            }
            Some(argv) => argv.clone(),
            None => default,
        };
        let commands = Commands {
            stop: command("stop_command", &raw.stop_command, defaults.stop),
            start: command("start_command", &raw.start_command, defaults.start),
            timeout: defaults.timeout,
        };
        // The library's defaults where the file is silent.
        let base = BackupSpec::new(member);
        let max_lag = raw.max_lag.map_or(base.limits.max_lag, Duration::from_secs);
        let lease = raw.lease.map_or(base.lease, Duration::from_secs);
        if lease < Duration::from_secs(600) {
            c.invalid("[backup].lease", ": must be at least 600 seconds");
        }
        if raw.keep_last == Some(0) {
            c.invalid("[backup].keep_last", ": must keep at least 1 run");
        }
        if raw.keep_last.is_none() && raw.keep_days.is_none() {
            c.warnings.push(
                "[backup] sets neither keep_last nor keep_days: snapshots are never deleted"
                    .to_owned(),
            );
        }
        let mut credentials = Vec::new();
        for (i, entry) in raw.credentials.iter().flatten().enumerate() {
            match entry.split_once(':') {
                Some((name, path)) if !name.is_empty() && path.starts_with('/') => {
                    credentials.push((name.to_owned(), path.to_owned()));
                }
                _ => c.invalid(
                    format!("[backup].credentials[{i}]"),
                    format!(": {entry:?} is not NAME:/absolute/path"),
                ),
            }
        }
        let units = UnitSpec {
            config: self.path().display().to_string(),
            on_calendar: raw
                .on_calendar
                .clone()
                .unwrap_or_else(|| UnitSpec::default().on_calendar),
            environment_file: raw
                .environment_file
                .as_ref()
                .map(|f| self.path_of(f).display().to_string()),
            credentials,
            on_failure: raw.on_failure.clone(),
            ..UnitSpec::default()
        };
        let state_dir = raw.state_dir.as_ref().map_or_else(
            || PathBuf::from("/var/lib/mongo-backup"),
            |d| self.path_of(d),
        );
        let spec = BackupSpec {
            local_port: Some(local_port),
            state_dir: Some(state_dir),
            limits: Limits {
                max_lag,
                any_member: raw.any_member.unwrap_or(false),
            },
            db_path: db_path.map(PathBuf::from),
            lease,
            retention: Retention {
                keep_last: raw.keep_last,
                keep_days: raw.keep_days,
            },
            ..base
        };
        let warnings = std::mem::take(&mut c.warnings);
        c.finish(BackupSettings {
            spec,
            store,
            commands,
            max_age: Duration::from_secs(raw.max_age_hours.unwrap_or(26) * 3600),
            units,
            warnings,
        })
    }
}
