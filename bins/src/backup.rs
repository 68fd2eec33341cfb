//! `mongo-backup` and `circle-ha backup`: the command line of
//! mongo-backup's library (one set of subcommands for both binaries).
// Doc comments here are clap's --help text: `[backup]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ha_config::{BackupSettings, BackupStore, HaConfig, MongoOptions};
use mongo_backup::run::{Cancel, prune};
use mongo_backup::{Commands, Error, SnapshotStore};
use time::OffsetDateTime;

use crate::cli::{self, ConfigArgs};
use crate::exit::Exit;
use crate::output::print;

/// The long `--help` text.
pub const LONG_ABOUT: &str =
    "Backs up the MongoDB replica set as CircleCI's runbook asks: stop mongod on
one SECONDARY, wait until it has stopped completely, snapshot its volumes,
start it again and let it catch up — never leaving the set short.

Reads [backup] (and [mongo] for the members and the circle-admin login):

  [backup]
  member = \"mongo-3.internal:27017\"   # this machine's member (or --member)
  store = \"ebs\"                       # ebs | directory | command
  volumes = [\"vol-0123456789abcdef0\"]  # every volume of the dbPath (+journal/log)
  aws_region = \"us-east-1\"            # default [services].aws_region
  keep_last = 7                       # and/or keep_days = 14
  # stop_command = [\"systemctl\", \"stop\", \"mongod\"], start_command = […]
  # max_lag = 30, max_age_hours = 26, any_member = false, lease = 7200

snapshot refuses (exit 3, nothing touched) unless this member is a healthy,
caught-up SECONDARY, stopping it leaves a voting majority and enough
caught-up members for w: \"majority\" writes, no other member is down, no
other backup holds the set's lock, and (without --any-member) the set has no
hidden/priority-0 member meant for backups. Once mongod is stopped, it is
started again whatever happens (AWS error, timeout, SIGINT, SIGTERM).

Run it from the systemd timer (render-units) on every member: the lock and
the guards let one member at a time back up; the others refuse (exit 3,
which the unit counts as success).

Exit codes: 0 success; 1 runtime failure (the message says whether the
member runs again); 2 bad usage or configuration; 3 refused, or status
found the newest backup too old.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Stop this member, snapshot its volumes, start it again; then apply
    /// retention.
    Snapshot {
        /// The configuration, the member, the AWS endpoint.
        #[command(flatten)]
        common: Common,
        /// Back up this member even if the set has a hidden or priority-0
        /// member meant for backups.
        #[arg(long)]
        any_member: bool,
        /// Check the guards and show the plan; touch nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Finish a run that was killed while this member was stopped (the
    /// service's ExecStopPost= runs it): start mongod if it is down, wait
    /// until it is a caught-up SECONDARY, release the set's lock. Nothing
    /// to do: changed 0.
    Recover {
        /// The configuration, the member, the AWS endpoint.
        #[command(flatten)]
        common: Common,
    },
    /// This set's runs (snapshots this tool made), newest first.
    List {
        /// The configuration, the member, the AWS endpoint.
        #[command(flatten)]
        common: Common,
    },
    /// Exit 3 when the newest complete run is older than [backup].max_age_hours.
    Status {
        /// The configuration, the member, the AWS endpoint.
        #[command(flatten)]
        common: Common,
        /// Also write the result for node_exporter's textfile collector:
        /// DIR/mongo_backup.prom (mongo_backup_healthy, the newest complete
        /// run's age, each member's last complete run), replaced
        /// atomically.
        #[arg(long, value_name = "DIR")]
        textfile: Option<std::path::PathBuf>,
    },
    /// Delete the runs retention lets go (only this tool's, of this set).
    Prune {
        /// The configuration, the member, the AWS endpoint.
        #[command(flatten)]
        common: Common,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create an EBS volume from one of this set's snapshots, to bring a
    /// member back (see README, "Restoring a member from a snapshot").
    RestoreVolume {
        /// The configuration, the member, the AWS endpoint.
        #[command(flatten)]
        common: Common,
        /// The snapshot (snap-…), from `list`.
        snapshot: String,
        /// Where the new volume goes (the member's instance's zone).
        #[arg(long, value_name = "ZONE")]
        availability_zone: String,
    },
    /// Write mongo-backup.service and mongo-backup.timer (systemd) for this
    /// ha.toml into DIR (e.g. /etc/systemd/system).
    RenderUnits {
        /// The configuration, the member, the AWS endpoint.
        #[command(flatten)]
        common: Common,
        /// Where the unit files go.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The mongo-backup binary the service runs.
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/usr/local/bin/mongo-backup"
        )]
        binary: String,
    },
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Common {
    /// `--config`, `--json`.
    #[command(flatten)]
    pub args: ConfigArgs,
    /// This machine's member (host:port as in [mongo].members), overriding
    /// [backup].member.
    #[arg(long, value_name = "HOST:PORT")]
    pub member: Option<String>,
    /// Send AWS requests here instead of AWS (a VPC endpoint, an emulator).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl BackupCommand {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match self {
            BackupCommand::Snapshot { common, .. }
            | BackupCommand::Recover { common }
            | BackupCommand::List { common }
            | BackupCommand::Status { common, .. }
            | BackupCommand::Prune { common, .. }
            | BackupCommand::RestoreVolume { common, .. }
            | BackupCommand::RenderUnits { common, .. } => common.args.json,
        }
    }
}

/// Runs a subcommand.
pub async fn run(tool: &str, command: BackupCommand) -> anyhow::Result<Exit> {
    let json = command.json();
    let (common, any_member) = match &command {
        BackupCommand::Snapshot {
            common, any_member, ..
        } => (common, *any_member),
        BackupCommand::List { common }
        | BackupCommand::Recover { common }
        | BackupCommand::Status { common, .. }
        | BackupCommand::Prune { common, .. }
        | BackupCommand::RestoreVolume { common, .. }
        | BackupCommand::RenderUnits { common, .. } => (common, false),
    };
    let config = HaConfig::load(&common.args.config_path())?;
    let mut settings = config.backup(common.member.as_deref())?;
    settings.spec.limits.any_member |= any_member;
    if let BackupCommand::RenderUnits { out, binary, .. } = &command {
        return render_units(
            &config,
            &settings,
            common.member.as_deref(),
            out,
            binary,
            json,
        );
    }
    if let BackupCommand::Recover { .. } = &command {
        return recover(tool, &config, &settings, json).await;
    }
    let set = config.mongo_layout()?.name;
    let ec2 = match &settings.store {
        BackupStore::Ebs { region, .. } => {
            let sdk = crate::aws::sdk_config(region, common.endpoint_url.as_deref()).await;
            Some(ha_ec2::Ec2::from_sdk_config(&sdk)?)
        }
        _ => None,
    };
    let store = settings.snapshot_store(ec2)?;
    if let BackupCommand::RestoreVolume {
        snapshot,
        availability_zone,
        ..
    } = &command
    {
        let volume = match store
            .restore_volume(&set, snapshot, availability_zone)
            .await
        {
            Err(e @ Error::RestoreNotEbs { .. }) => {
                return Err(crate::output::usage("restore-volume", e.to_string()).into());
            }
            other => other?,
        };
        return Ok(print(
            json,
            &mongo_backup::RestoredVolume::new(tool, &volume, snapshot, availability_zone),
        ));
    }
    with_store(tool, &config, &settings, &set, &store, &command).await
}

async fn with_store<S: SnapshotStore>(
    tool: &str,
    config: &HaConfig,
    settings: &BackupSettings,
    set: &str,
    store: &S,
    command: &BackupCommand,
) -> anyhow::Result<Exit> {
    let json = command.json();
    let now = OffsetDateTime::now_utc();
    match command {
        BackupCommand::List { .. } => {
            let groups = mongo_backup::snapshot::groups(&store.list(set).await?, set);
            Ok(print(
                json,
                &mongo_backup::report::list_findings(set, &groups, now),
            ))
        }
        BackupCommand::Status { textfile, .. } => {
            let groups = mongo_backup::snapshot::groups(&store.list(set).await?, set);
            let health = mongo_backup::report::status_findings(set, &groups, settings.max_age, now);
            if let Some(dir) = textfile {
                crate::output::write_textfile(
                    dir,
                    "mongo_backup.prom",
                    &health.metrics(now.unix_timestamp()),
                )
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dir.display()))?;
            }
            Ok(print(json, &health))
        }
        BackupCommand::Prune { dry_run, .. } => {
            let steps = prune(store, set, &settings.spec.retention, *dry_run).await?;
            let report =
                ha_plan::Report::from_changes(tool, *dry_run, &steps, settings.warnings.clone());
            Ok(print(json, &report))
        }
        BackupCommand::Snapshot { dry_run, .. } => {
            snapshot(tool, config, settings, store, *dry_run, json).await
        }
        BackupCommand::RestoreVolume { .. }
        | BackupCommand::RenderUnits { .. }
        | BackupCommand::Recover { .. } => {
            unreachable!("handled before a store is built")
        }
    }
}

async fn snapshot<S: SnapshotStore>(
    tool: &str,
    config: &HaConfig,
    settings: &BackupSettings,
    store: &S,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    let setup = config
        .mongo_setup(&cli::env_var, &MongoOptions::default())
        .await?;
    let session = mongo_rs_setup::Session::new(&setup.spec);
    let (handle, cancel) = Cancel::new();
    // Watched from here, before the run starts (not from the task's
    // first poll).
    let stop = cli::interrupted();
    let signals = tokio::spawn(async move {
        stop.await;
        handle.cancel();
    });
    let progress = printer(tool, json);
    let mut process: Commands = settings.commands.clone();
    let res = mongo_backup::run::snapshot(
        &session,
        &settings.spec,
        &mut process,
        store,
        dry_run,
        &cancel,
        &progress,
    )
    .await;
    signals.abort();
    match res {
        Ok(outcome) => Ok(print(
            json,
            &outcome.to_report(tool, dry_run, settings.warnings.clone()),
        )),
        Err(Error::Refused(refusals)) => Ok(print(
            json,
            &mongo_backup::run::refusal_findings(tool, &refusals, &settings.warnings),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Progress lines on stderr, as `tool: line` (none with `--json`).
fn printer(_tool: &str, json: bool) -> impl Fn(&str) + '_ {
    move |line: &str| {
        if !json {
            crate::log::stage(line);
        }
    }
}

async fn recover(
    tool: &str,
    config: &HaConfig,
    settings: &BackupSettings,
    json: bool,
) -> anyhow::Result<Exit> {
    let setup = config
        .mongo_setup(&cli::env_var, &MongoOptions::default())
        .await?;
    let session = mongo_rs_setup::Session::new(&setup.spec);
    let mut process: Commands = settings.commands.clone();
    let steps =
        mongo_backup::run::recover(&session, &settings.spec, &mut process, &printer(tool, json))
            .await?;
    let report = ha_plan::Report::from_changes(tool, false, &steps, settings.warnings.clone());
    Ok(print(json, &report))
}

fn render_units(
    config: &HaConfig,
    settings: &BackupSettings,
    member: Option<&str>,
    out: &std::path::Path,
    binary: &str,
    json: bool,
) -> anyhow::Result<Exit> {
    let spec = mongo_backup::units::UnitSpec {
        binary: binary.to_owned(),
        config: std::path::absolute(&settings.units.config)?
            .display()
            .to_string(),
        member: member.map(str::to_owned),
        ..settings.units.clone()
    };
    // The service must be able to read the secrets the run needs.
    if let Err(problem) = config.backup_unit_secrets(&spec) {
        return Err(crate::output::usage("render-units", problem).into());
    }
    let report = match mongo_backup::units::write_units(&spec, out, "mongo-backup") {
        // A value systemd would misread: a matter of configuration.
        Err(e @ Error::Command { .. }) => {
            return Err(crate::output::usage("render-units", e.to_string()).into());
        }
        other => other?,
    };
    Ok(print(json, &report))
}
