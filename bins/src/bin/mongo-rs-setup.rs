//! `mongo-rs-setup`: the MongoDB replica set of the runbook.
// Doc comments here are clap's --help text: `[mongo]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use circle_ha::cli;
use circle_ha::exit::Exit;
use circle_ha::output::{print, usage};
use clap::{Args, Parser, Subcommand};
use ha_config::{HaConfig, MongoOptions, MongoSetup};
use ha_plan::{Problem, Problems};
use mongo_rs_setup::MemberChange;

/// The long `--help` text (a plain string: it holds TOML that rustdoc
/// would misread).
const LONG_ABOUT: &str = "Sets up the MongoDB replica set CircleCI Server 2.0 uses: a mongod.conf
per member, the set itself with explicit host names, the runbook's three
users, and health checks. MongoDB 4.4 to 8.0 (render-config: any version).

Reads the [mongo] section of ha.toml (and [pki], to check member certs):

  [mongo]
  replica_set = \"circle\"
  server_version = \"7.0\"          # selects the mongod.conf dialect
  members = [
    { host = \"mongo-1.internal:27017\", priority = 2 },
    { host = \"mongo-2.internal:27017\" },
    { host = \"mongo-3.internal:27017\" },
  ]
  tls = { ca_file = \"pki/ca.pem\" }  # omit for plain connections
  users.site_admin = { name = \"siteUserAdmin\", password = \"env:MONGO_SITE_ADMIN_PASSWORD\" }
  users.admin      = { name = \"circle-admin\",  password = \"env:MONGO_ADMIN_PASSWORD\" }
  users.app        = { name = \"circle\",        password = \"env:MONGO_APP_PASSWORD\" }
  # users.app.databases defaults to circle_ghe, build_state_dev_ghe,
  # containers_dev_ghe and remote_containers_dev_ghe (the runbook forgets
  # the last one; the Services machine's URIs use it).
  [mongo.server]                  # paths on the members, for render-config
  db_path = \"/mongo/data\"
  certificate_key_file = \"/etc/mongodb/{host}.pem\"

Passwords are secret references (env:NAME or file:PATH), never literals.

The usual order: render-config for each member, install the file, start
mongod; then apply (from a machine that reaches every member, or on the
first member with --bootstrap-via-localhost when the set has no users
yet); then status, from cron.

Exit codes: 0 success; 1 runtime failure; 2 bad usage or configuration
(nothing was touched); 3 status found the set unhealthy.";

/// Sets up the MongoDB replica set for CircleCI Server 2.0.
#[derive(Debug, Parser)]
#[command(version, long_about = LONG_ABOUT, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the mongod.conf for one member.
    ///
    /// Follows the runbook's template (journal, log file with reopen
    /// rotation and ISO-8601 UTC timestamps, replSetName, authorization,
    /// x509 member authentication, TLS required with the member's PEM as
    /// certificate and cluster file, clients without certificates allowed)
    /// in the dialect of [mongo].server_version: net.tls.* from 4.2, else
    /// net.ssl.*; no storage.journal.enabled from 6.1, which refuses it.
    /// net.bindIp is localhost plus the member's host name unless
    /// [mongo.server].bind_ip says otherwise.
    RenderConfig {
        /// The configuration file (default: $CIRCLE_HA_CONFIG, else
        /// ./ha.toml, else /etc/circle-ha/ha.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The member, as host:port from [mongo].members (or its host name
        /// when that is unique).
        #[arg(long, value_name = "HOST:PORT")]
        member: String,
        /// Write here instead of stdout (atomically, mode 0644).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Render the member's logrotate snippet instead (for
        /// /etc/logrotate.d/mongod: rename, then SIGUSR1 so mongod reopens
        /// its log, as mongod.conf's logRotate: reopen expects).
        #[arg(long)]
        logrotate: bool,
    },
    /// Bring the replica set and its users to what ha.toml says.
    ///
    /// From fresh members (started with --replSet and authorization on):
    /// initiate the set on the first electable member with the host names
    /// from ha.toml, create siteUserAdmin through the localhost exception,
    /// create circle-admin and circle as siteUserAdmin, then add the other
    /// members one at a time, each time waiting until it is SECONDARY.
    /// From anything else — a run that was interrupted, a finished set —
    /// only what is missing: roles a user lacks, a password that no longer
    /// logs in, a member missing from the set, a priority, votes or hidden
    /// flag that differs. Members ha.toml does not list are reported, never
    /// removed. A second run reports changed: 0.
    Apply {
        #[command(flatten)]
        common: Common,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send the unauthenticated first steps (replSetInitiate, the first
        /// user) to localhost:PORT, so the localhost exception applies.
        /// Use it when running on the first member's own machine; its
        /// certificate must then also be valid for localhost.
        #[arg(long)]
        bootstrap_via_localhost: bool,
    },
    /// One line per member: state, lag, sync source, TLS and login.
    ///
    /// Exit 3 when the set has no primary, a member is unreachable, not
    /// PRIMARY/SECONDARY/ARBITER, behind by more than --max-lag, not in the
    /// set, or circle-admin cannot log in on it. Suitable for cron and
    /// monitoring (--json for machines).
    Status {
        #[command(flatten)]
        common: Common,
        /// Lag (seconds behind the primary) above which a member is
        /// unhealthy.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        max_lag: u64,
    },
    /// Add one member to the set (rs.add as a safe reconfig) and wait until
    /// it is SECONDARY. List it in [mongo].members too.
    AddMember {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        member: MemberArgs,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove one member from the set (rs.remove as a safe reconfig). Take
    /// it out of [mongo].members first; the primary cannot be removed.
    RemoveMember {
        #[command(flatten)]
        common: Common,
        /// The member, host:port as in the set's config.
        #[arg(long, value_name = "HOST:PORT")]
        host: String,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change one member's election priority (0 = never primary).
    SetPriority {
        #[command(flatten)]
        common: Common,
        /// The member, host:port as in the set's config.
        #[arg(long, value_name = "HOST:PORT")]
        host: String,
        /// The new priority, 0 to 1000.
        #[arg(long)]
        priority: f64,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    args: cli::ConfigArgs,
    /// Seconds to wait for an election or a member's initial sync
    /// (default: [mongo].wait_timeout, else 900).
    #[arg(long, value_name = "SECONDS")]
    wait_timeout: Option<u64>,
}

#[derive(Debug, Args)]
struct MemberArgs {
    /// The new member, host:port as members and clients reach it.
    #[arg(long, value_name = "HOST:PORT")]
    host: String,
    /// Election priority (default 1; 0 for hidden members and arbiters).
    #[arg(long)]
    priority: Option<f64>,
    /// Votes, 0 or 1 (default 1).
    #[arg(long, default_value_t = 1)]
    votes: u8,
    /// A hidden member (priority 0, invisible to clients).
    #[arg(long)]
    hidden: bool,
    /// An arbiter (votes, holds no data).
    #[arg(long)]
    arbiter: bool,
}

impl MemberArgs {
    /// The member, checked by mongo-rs-setup's own member rules; problems
    /// are keyed by the flag that causes them.
    fn spec(&self) -> Result<mongo_rs_setup::MemberSpec, Problems> {
        let passive = self.arbiter || self.hidden || self.votes == 0;
        let spec = mongo_rs_setup::MemberSpec {
            host: self.host.clone(),
            priority: self.priority.unwrap_or(if passive { 0.0 } else { 1.0 }),
            votes: self.votes,
            hidden: self.hidden,
            arbiter_only: self.arbiter,
        };
        mongo_rs_setup::check_members(std::slice::from_ref(&spec)).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| {
                    let flag = match p.key.as_str() {
                        "members[0].host" => "--host",
                        "members[0].votes" => "--votes",
                        _ => "--priority",
                    };
                    Problem::new(flag, p.kind, p.message)
                })
                .collect::<Problems>()
        })?;
        Ok(spec)
    }
}

fn main() -> ExitCode {
    let cli: Cli = circle_ha::cli::parse("mongo-rs-setup");
    let json = match &cli.command {
        Command::RenderConfig { .. } => false,
        Command::Apply { common, .. }
        | Command::Status { common, .. }
        | Command::AddMember { common, .. }
        | Command::RemoveMember { common, .. }
        | Command::SetPriority { common, .. } => common.args.json,
    };
    cli::run_main("mongo-rs-setup", json, run(cli))
}

fn progress(line: &str) {
    circle_ha::log::stage(line);
}

async fn load(common: &Common, bootstrap_via_localhost: bool) -> anyhow::Result<MongoSetup> {
    let config = HaConfig::load(&common.args.config_path())?;
    let options = MongoOptions {
        bootstrap_via_localhost,
        wait_timeout: common.wait_timeout.map(Duration::from_secs),
    };
    Ok(config.mongo_setup(&cli::env_var, &options).await?)
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::RenderConfig {
            config,
            member,
            out,
            logrotate,
        } => {
            let config = HaConfig::load(&cli::config_path(config.as_deref()))?;
            let (text, warnings) = if logrotate {
                config.mongod_logrotate(&member)?
            } else {
                config.mongod_conf(&member)?
            };
            circle_ha::output::warn(&warnings);
            match out {
                None => print!("{text}"),
                Some(path) => {
                    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
                        circle_ha::log::stage(&format!("{} is up to date", path.display()));
                    } else {
                        ha_tls::write_file(&path, text.as_bytes(), 0o644)
                            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                        circle_ha::log::stage(&format!("wrote {}", path.display()));
                    }
                }
            }
            Ok(Exit::Success)
        }
        Command::Apply {
            common,
            dry_run,
            bootstrap_via_localhost,
        } => {
            let setup = load(&common, bootstrap_via_localhost).await?;
            let report = setup.apply(dry_run, &progress).await?;
            // Progress already said "done: …" for each step as it happened.
            Ok(print(common.args.json, &ha_plan::Summarised(&report)))
        }
        Command::Status { common, max_lag } => {
            let setup = load(&common, false).await?;
            let findings = setup.status(Duration::from_secs(max_lag)).await;
            Ok(print(common.args.json, &findings))
        }
        Command::AddMember {
            common,
            member,
            dry_run,
        } => {
            let change = MemberChange::Add(member.spec()?);
            member_change(common, change, dry_run).await
        }
        Command::RemoveMember {
            common,
            host,
            dry_run,
        } => member_change(common, MemberChange::Remove(host), dry_run).await,
        Command::SetPriority {
            common,
            host,
            priority,
            dry_run,
        } => {
            if !(0.0..=1000.0).contains(&priority) {
                return Err(usage("--priority", "must be between 0 and 1000").into());
            }
            member_change(
                common,
                MemberChange::SetPriority { host, priority },
                dry_run,
            )
            .await
        }
    }
}

async fn member_change(
    common: Common,
    change: MemberChange,
    dry_run: bool,
) -> anyhow::Result<Exit> {
    let setup = load(&common, false).await?;
    let report = setup
        .change_member(&change, dry_run, &progress)
        .await
        .map_err(|e| match e {
            ha_runbook::Error::MemberStillWanted { host } => anyhow::Error::from(usage(
                "--host",
                format!(
                    "{host} is listed in [mongo].members: take it out of ha.toml first, or the \
                     next apply adds it back"
                ),
            )),
            other => other.into(),
        })?;
    print(common.args.json, &report);
    Ok(Exit::Success)
}
