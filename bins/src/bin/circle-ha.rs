//! `circle-ha`: one configuration, the whole runbook.
// Doc comments here are clap's --help text: `[mongo]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::Path;
use std::process::ExitCode;

use circle_ha::backup::BackupCommand;
use circle_ha::cli::{self, ConfigArgs};
use circle_ha::exit::Exit;
use circle_ha::keys::KeysCommand;
use circle_ha::output::print;
use clap::{Parser, Subcommand};
use ha_config::HaConfig;
use ha_runbook::Concern;
use time::OffsetDateTime;

/// Moves a CircleCI Server 2.0 installation onto highly available external
/// databases.
///
/// `circle-ha apply` brings every concern ha.toml configures to its
/// desired state in the runbook's order (certificates, MongoDB replica
/// set and users, PostgreSQL databases, Vault transit and app token, the
/// Services bundle); `circle-ha status` reports all of them at once (exit
/// 3 when anything is unhealthy); `circle-ha pki` runs the certificate
/// steps alone. (The whole runbook on a local lab is `cargo xtask demo`,
/// a separate program, so that this one never links the test lab.)
/// Vault init/unseal (vault-transit) and the export/restore
/// (circle-export) stay separate commands: they hand out key shares and
/// belong to the outage window.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring every configured concern to the state ha.toml describes.
    ///
    /// In the runbook's order: [pki] (CA and host certificates), [mongo]
    /// (replica set and users), [postgres] (databases, extensions, app
    /// role), [vault] (transit mount, policy, periodic app token — Vault
    /// must be initialised and unsealed: `vault-transit init`/`unseal`
    /// hand out key shares and stay explicit), [services] (the Services
    /// bundle, rendered into --bundle-dir). Sections that are absent are
    /// skipped. Every selected section is checked before anything is
    /// touched (exit 2 listing all problems); the first concern that fails
    /// stops the run and is named, with what finished and what did not
    /// run. A second run reports `changed: 0`.
    Apply {
        #[command(flatten)]
        common: ConfigArgs,
        /// Show the combined plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only these concerns: pki, mongo, postgres, vault, userdata.
        #[arg(long, value_name = "CONCERN,...", value_delimiter = ',')]
        only: Vec<String>,
        /// Where the Services bundle is rendered (default: bundle/ next to
        /// the configuration file).
        #[arg(long, value_name = "DIR")]
        bundle_dir: Option<std::path::PathBuf>,
    },
    /// Every configured concern's health in one report; exit 3 if anything
    /// is unhealthy.
    ///
    /// [pki]: every certificate linted against the CA. [mongo]: members,
    /// states, lag, TLS and auth (as circle-admin). [postgres]: the app
    /// role reaches every database and its extensions. [vault]: seal state,
    /// then the app token (valid, renewable, limited to its policy).
    /// [services]: whether the rendered bundle still matches ha.toml, and
    /// (with s3_bucket) the encryption keys' stored copy, read back whole
    /// and compared with the keys directory where there is one. [backup]:
    /// the newest complete snapshot run's age, per member. A concern that
    /// cannot be reached is reported unhealthy with the reason; the others
    /// are still checked.
    Status {
        #[command(flatten)]
        common: ConfigArgs,
        /// Send AWS requests (snapshots, the key backup) here instead of
        /// AWS (a VPC endpoint, an emulator).
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// Where CircleCI's encryption keys are on this machine (compared
        /// with the stored copy when the directory exists).
        #[arg(long, value_name = "DIR", default_value = services_userdata::keys::KEYS_DIR)]
        keys_dir: std::path::PathBuf,
        /// Seconds behind the primary above which a member is unhealthy.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        max_lag: u64,
        /// Where apply rendered the Services bundle (default: bundle/ next
        /// to the configuration file).
        #[arg(long, value_name = "DIR")]
        bundle_dir: Option<std::path::PathBuf>,
        /// Also write the result for node_exporter's textfile collector:
        /// DIR/circle_ha.prom (circle_ha_healthy, circle_ha_concern_healthy
        /// per concern, circle_ha_status_last_run_timestamp_seconds,
        /// circle_ha_certificate_expiry_timestamp_seconds per file,
        /// circle_ha_backup_last_complete_timestamp_seconds per member,
        /// circle_ha_key_backup_verified_timestamp_seconds, …), replaced
        /// atomically.
        #[arg(long, value_name = "DIR")]
        textfile: Option<std::path::PathBuf>,
    },
    /// The CA and the certificates of every host ha.toml names.
    ///
    /// Reads [pki] (dir, organization, organizational_unit) and the hosts
    /// of [mongo].members, [postgres].host and [vault].address. Member
    /// certificates share O and OU (MongoDB x509 membership) and serve
    /// both as server and client; the tools' client certificate (when
    /// [mongo].tls.certificate_key_file lies in the PKI directory) gets
    /// OU "<ou> clients" so it can never pass as a member. Private keys
    /// and combined PEMs are 0600, the directory 0700.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Snapshots of a stopped MongoDB secondary (as `mongo-backup`).
    ///
    /// Reads [backup] and [mongo]. `snapshot` refuses (exit 3, nothing
    /// touched) unless the set can spare this member; once mongod is
    /// stopped it is started again whatever happens. See `mongo-backup
    /// --help`.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// CircleCI's encryption keys (/data/circle/circleci-encryption-keys):
    /// backup, verify, restore.
    ///
    /// Reads [services] (s3_bucket, s3_prefix, kms_key_id, aws_region): the
    /// keys are stored where the Services bundle puts them and its user
    /// data restores them from, before Replicated starts. Losing them makes
    /// CircleCI's encrypted data unrecoverable. Output names files, never
    /// their content.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The runbook's troubleshooting list, checked from the Services
    /// machine with the files and credentials CircleCI will use.
    ///
    /// Run on the Services machine (or against a rendered bundle with
    /// --bundle-dir). Checks: the files exist, parse as sh/JSON and agree;
    /// the CA is installed; the encryption keys are there; each of the five
    /// MongoDB URIs parses, its hosts resolve and answer (or only on
    /// localhost), TLS against the installed CA, the set's name, the set's
    /// own member names reachable from here, the login, a write (a probe
    /// document inserted and removed; --read-only skips it); PostgreSQL's
    /// eight databases as the app role with their extensions; Vault
    /// reachable, unsealed, the token valid, periodic and renewable,
    /// encrypt/decrypt on the transit mount. Each problem is classified as
    /// the runbook's causes (network, malformed-uri, credentials,
    /// database-configuration, localhost-only) or tls / machine-setup,
    /// with what to do next. Never prints a secret. Exit 0 healthy, 3
    /// problems, 2 bad input.
    Doctor {
        /// A rendered bundle to check instead of the installed files.
        #[arg(long, value_name = "DIR")]
        bundle_dir: Option<std::path::PathBuf>,
        /// Skip the MongoDB write probe.
        #[arg(long)]
        read_only: bool,
        /// Seconds each network step may take.
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        timeout: u64,
        /// Print one JSON object on stdout instead of text on stderr.
        #[arg(long)]
        json: bool,
    },
    /// Check ha.toml offline, or print an example to start from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print circle-ha's shell completion script on stdout, e.g.
    /// `circle-ha completions bash > /etc/bash_completion.d/circle-ha`
    /// (`cargo xtask dist` ships every binary's for bash, zsh and fish).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check every section of ha.toml without touching a server: unknown
    /// keys, values, ranges, the rules between them, the syntax of secret
    /// references (not their values). Lists every problem; exit 2 when
    /// there is one, 0 when there is none.
    Check {
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Print an example ha.toml (every section, commented) on stdout:
    /// `circle-ha config example > ha.toml`.
    Example,
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create the CA in [pki].dir (ca.pem, ca.crt, ca.key); an existing CA
    /// is kept (never replaced).
    Init {
        #[command(flatten)]
        common: ConfigArgs,
        /// Show what would be created; create nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Issue each host's certificate (<host>.crt, .key and the combined
    /// <host>.pem mongod takes) that is missing, expires within 30 days,
    /// no longer covers its host or was not issued by the CA; keep the
    /// others byte for byte (a second run changes nothing).
    Issue {
        #[command(flatten)]
        common: ConfigArgs,
        /// Show what would be issued; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every certificate against the CA: MongoDB's member rules
    /// (identical O/OU/DC, both EKUs), host-name coverage, key match,
    /// expiry. Exit 3 listing every problem.
    Lint {
        #[command(flatten)]
        common: ConfigArgs,
    },
}

fn main() -> ExitCode {
    let cli: Cli = circle_ha::cli::parse("circle-ha");
    let json = match &cli.command {
        Command::Apply { common, .. } | Command::Status { common, .. } => common.json,
        Command::Pki(
            PkiCommand::Init { common, .. }
            | PkiCommand::Issue { common, .. }
            | PkiCommand::Lint { common },
        ) => common.json,
        Command::Backup(command) => command.json(),
        Command::Keys(command) => command.json(),
        Command::Doctor { json, .. } => *json,
        Command::Config(ConfigCommand::Check { common }) => common.json,
        Command::Completions { .. } | Command::Config(ConfigCommand::Example) => false,
    };
    cli::run_main("circle-ha", json, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Completions { shell } => {
            cli::print_completions::<Cli>("circle-ha", shell)?;
            Ok(Exit::Success)
        }
        Command::Config(ConfigCommand::Example) => {
            use std::io::Write as _;
            let _ = std::io::stdout()
                .lock()
                .write_all(include_str!("../../../examples/ha.toml").as_bytes());
            Ok(Exit::Success)
        }
        Command::Config(ConfigCommand::Check { common }) => {
            let path = common.config_path();
            let config = HaConfig::load(&path)?;
            Ok(print(common.json, &config.check_report()?))
        }
        Command::Apply {
            common,
            dry_run,
            only,
            bundle_dir,
        } => {
            let config = HaConfig::load(&common.config_path())?;
            let only = only
                .iter()
                .map(|name| {
                    Concern::parse(name).ok_or_else(|| {
                        ha_plan::Problems::one(ha_plan::Problem::invalid(
                            "--only",
                            format!(
                                "{name}: not a concern (pki, mongo, postgres, vault, userdata)"
                            ),
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let options = ha_config::RunbookOptions {
                purpose: ha_config::Purpose::Apply,
                only,
                bundle_dir: bundle_dir.unwrap_or_else(|| config.path_of(Path::new("bundle"))),
            };
            let runbook = config.runbook(&cli::env_var, &options).await?;
            let json = common.json;
            let progress = |line: &str| {
                if !json {
                    circle_ha::log::stage(line);
                }
            };
            let report = ha_runbook::apply(&runbook, dry_run, &progress).await?;
            Ok(print(json, &report))
        }
        Command::Status {
            common,
            endpoint_url,
            keys_dir,
            max_lag,
            bundle_dir,
            textfile,
        } => {
            let config = HaConfig::load(&common.config_path())?;
            let runbook = config
                .runbook(
                    &cli::env_var,
                    &ha_config::RunbookOptions {
                        purpose: ha_config::Purpose::Status,
                        only: Vec::new(),
                        bundle_dir: bundle_dir
                            .unwrap_or_else(|| config.path_of(Path::new("bundle"))),
                    },
                )
                .await?;
            let mut options = ha_runbook::StatusOptions::default();
            options.max_lag = std::time::Duration::from_secs(max_lag);
            options.keys_dir = keys_dir;
            let endpoint = endpoint_url.as_deref();
            let aws = ha_runbook::StatusAws::of(&runbook);
            if let Some(region) = &aws.ec2_region {
                let sdk = circle_ha::aws::sdk_config(region, endpoint).await;
                options.ec2 = Some(ha_ec2::Ec2::from_sdk_config(&sdk)?);
            }
            if let Some(region) = &aws.s3_region {
                let sdk = circle_ha::aws::sdk_config(region, endpoint).await;
                options.s3 = Some(circle_ha::aws::s3_client(&sdk, endpoint.is_some()));
            }
            let checks = ha_runbook::status(&runbook, &options).await;
            if let Some(dir) = &textfile {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                circle_ha::output::write_textfile(
                    dir,
                    "circle_ha.prom",
                    &ha_runbook::status_metrics(&checks, now),
                )?;
            }
            Ok(print(common.json, &ha_runbook::status_findings(&checks)))
        }
        Command::Backup(command) => circle_ha::backup::run("circle-ha backup", command).await,
        Command::Keys(command) => circle_ha::keys::run(command).await,
        Command::Doctor {
            bundle_dir,
            read_only,
            timeout,
            json,
        } => {
            let machine = match &bundle_dir {
                Some(dir) if !dir.is_dir() => {
                    return Err(circle_ha::output::usage(
                        "--bundle-dir",
                        format!("{}: not a directory", dir.display()),
                    )
                    .into());
                }
                Some(dir) => ha_doctor::Machine::bundle(dir),
                None => ha_doctor::Machine::installed(),
            };
            let options = ha_doctor::Options {
                step_timeout: std::time::Duration::from_secs(timeout.max(1)),
                read_only,
            };
            let report = ha_doctor::doctor(&machine, &options).await;
            Ok(print(json, &report))
        }
        Command::Pki(command) => {
            let (common, dry_run) = match &command {
                PkiCommand::Init { common, dry_run } | PkiCommand::Issue { common, dry_run } => {
                    (common, *dry_run)
                }
                PkiCommand::Lint { common } => (common, false),
            };
            let config = HaConfig::load(&common.config_path())?;
            let settings = config.pki()?;
            let tool = Concern::Pki.tool();
            let now = OffsetDateTime::now_utc();
            let report = match &command {
                PkiCommand::Init { .. } => settings.init(tool, now, dry_run)?,
                PkiCommand::Issue { .. } => settings.issue(tool, now, dry_run)?,
                PkiCommand::Lint { .. } => {
                    let findings = settings.lint_findings(tool, now)?;
                    return Ok(print(common.json, &findings));
                }
            };
            Ok(print(common.json, &report))
        }
    }
}
