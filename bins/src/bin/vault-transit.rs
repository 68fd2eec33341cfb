//! `vault-transit`: Vault (or OpenBao) for the CircleCI contexts service.
// Doc comments here are clap's --help text: `[mongo]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use circle_ha::exit::Exit;
use circle_ha::output::print;
use circle_ha::{cli, migrate as vault_migrate, vault};
use clap::{Args, Parser, Subcommand};
use ha_config::{HaConfig, Section, VaultSettings};
use secrecy::SecretString;

/// The long `--help` text (a plain string: it holds TOML and URLs that
/// rustdoc would misread).
const LONG_ABOUT: &str = "Sets up Vault (or OpenBao) for CircleCI's contexts service: the server's
configuration file, init, unseal, a transit mount, a least-privilege
policy and a periodic orphan token.

Reads the [vault] section of ha.toml:

  [vault]
  address = \"https://vault.internal:8200\"
  ca_file = \"pki/ca.pem\"
  secret_shares = 5
  secret_threshold = 3
  keys_dir = \"secrets/vault\"        # init writes unseal-key-N and root-token here, 0600
  admin_token = \"file:secrets/vault/root-token\"   # used by configure and seal
  app_token_file = \"secrets/vault/circleci-token\" # configure writes the app token here
  transit_mount = \"transit\"
  token_period = \"1h\"
  [vault.server]                    # only for render-config
  flavor = \"openbao\"                # openbao | vault | vault-0.7
  storage = \"raft\"                  # raft | consul | file
  tls_cert_file = \"/etc/vault/tls/vault.crt\"
  tls_key_file = \"/etc/vault/tls/vault.key\"

The usual order: render-config (install it, start the server), init,
unseal, configure, verify, and seal when the runbook says so. Exit codes:
0 success; 1 runtime failure; 2 bad usage or configuration; 3 verify or
status found a problem.";

/// Sets up Vault (or OpenBao) for CircleCI's contexts service.
#[derive(Debug, Parser)]
#[command(version, long_about = LONG_ABOUT, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print (or write) the server's configuration file: one valid storage
    /// stanza, a TLS listener, api_addr and cluster_addr.
    RenderConfig {
        /// The configuration file (default: $CIRCLE_HA_CONFIG, else
        /// ./ha.toml, else /etc/circle-ha/ha.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Initialise Vault once; each key share goes to its own 0600 file in
    /// keys_dir (or, with pgp_keys, encrypted to its holder). Never prints
    /// a key. Refuses an initialised Vault.
    Init(Common),
    /// Submit key shares until Vault is unsealed, showing progress (2/3).
    ///
    /// Shares come from the unseal-key-N files in keys_dir, or with --stdin
    /// one per line (prompted without echo on a terminal). With --stdin each
    /// key holder can run it in turn, submitting only their share: the
    /// attempt carries over between runs until the threshold is reached.
    /// A PGP-encrypted share is decrypted first:
    ///   base64 -d unseal-key-1.pgp.b64 | gpg -d | vault-transit unseal --stdin
    /// Already unsealed: nothing to do.
    #[command(verbatim_doc_comment)]
    Unseal {
        #[command(flatten)]
        common: Common,
        /// Read the shares from standard input instead of keys_dir.
        #[arg(long)]
        stdin: bool,
        /// With --stdin: discard an unseal attempt already in progress
        /// before submitting (its shares are lost).
        #[arg(long, requires = "stdin")]
        reset: bool,
    },
    /// Mount transit, write the contexts policy, and create a renewable
    /// periodic orphan token with only that policy (written 0600 to
    /// app_token_file). A still-valid token is kept and renewed.
    Configure {
        #[command(flatten)]
        common: Common,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// With the app token: periodic, renewable, orphan, only the contexts
    /// policy; encrypt/decrypt round trip; everything else refused. Exit 3
    /// on any problem.
    Verify(Common),
    /// Initialised? Sealed? Unseal progress. Exit 3 unless unsealed.
    Status(Common),
    /// Seal Vault (needs the admin token).
    Seal(Common),
    /// The contexts service's transit key out of the OLD Vault 0.7 (its
    /// file storage, read offline) into this Vault, so that every context
    /// secret CircleCI stored still decrypts after the move.
    ///
    /// Without it the new Vault has no such key and every context secret
    /// in contexts_service_production is lost. The old storage is the
    /// vault container's data directory (/vault/file on the old Services
    /// machine; copy it over, it is useless without the shares). Its
    /// unseal shares — the old Vault's, as `vault init` printed them —
    /// come from --shares DIR (files unseal-key-N, 0600) or --stdin (each
    /// key holder types theirs, not echoed). Order:
    ///   vault-transit configure                  # the new Vault's transit mount
    ///   vault-transit migrate inspect /copy/of/vault/file   # or the export archive
    ///   vault-transit migrate restore /copy/of/vault/file --stdin --dry-run
    ///   vault-transit migrate restore /copy/of/vault/file --stdin
    #[command(verbatim_doc_comment)]
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// Offline: the old storage's seal configuration and the paths of its
    /// transit keys; with the shares, its mounts and each transit key's
    /// versions, type and flags. Never shows key material; names files
    /// holding secrets (vault-init-out, client-token) without showing them.
    Inspect {
        /// The old Vault's storage directory (the file backend's path), or
        /// an export archive holding it (circle-export export --vault-data).
        #[arg(value_name = "OLD")]
        old: PathBuf,
        #[command(flatten)]
        archive: ArchiveKeyArgs,
        #[command(flatten)]
        shares: ShareArgs,
        /// Print one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Restore the old Vault's transit keys into [vault]'s transit mount
    /// (needs the admin token; run `configure` first). A key already
    /// there that decrypts what the old one encrypts is left alone
    /// (changed: 0); one that differs is refused (exit 3) unless --force.
    Restore {
        #[command(flatten)]
        common: Common,
        /// The old Vault's storage directory (the file backend's path), or
        /// an export archive holding it (circle-export export --vault-data).
        #[arg(value_name = "OLD")]
        old: PathBuf,
        #[command(flatten)]
        archive: ArchiveKeyArgs,
        #[command(flatten)]
        shares: ShareArgs,
        /// Only this key (repeatable; default every transit key).
        #[arg(long = "key", value_name = "NAME")]
        keys: Vec<String>,
        /// Replace a key of the same name that differs. Whatever the
        /// replaced key encrypted can then no longer be decrypted.
        #[arg(long)]
        force: bool,
        /// Show what would be restored and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The cutover gate: every context secret's ciphertext (values
    /// `vault:v<N>:…` in any text column of contexts_service_production,
    /// read as [postgres]'s app role) decrypts on this Vault with the
    /// contexts service's token; the key's versions cover them. Never
    /// prints a ciphertext or a plaintext. Exit 3 naming counts and
    /// versions otherwise.
    Verify {
        #[command(flatten)]
        common: Common,
        /// The contexts service's transit key (default: the one key in
        /// [vault].transit_mount).
        #[arg(long, value_name = "NAME")]
        key: Option<String>,
        /// The contexts database.
        #[arg(long, value_name = "NAME", default_value = vault_migrate::CONTEXTS_DATABASE)]
        database: String,
    },
}

#[derive(Debug, Args)]
struct ShareArgs {
    /// A directory of unseal-key-N files (each 0600), one old share per
    /// file, hex as `vault init` printed it.
    #[arg(long, value_name = "DIR", conflicts_with = "stdin")]
    shares: Option<PathBuf>,
    /// Read the old shares from standard input: one per line, or prompted
    /// one holder at a time without echo on a terminal.
    #[arg(long)]
    stdin: bool,
}

#[derive(Debug, Args)]
struct ArchiveKeyArgs {
    /// OLD is a sealed export archive: the identity file that opens it
    /// (AGE-SECRET-KEY-1… lines): file:PATH, env:NAME or cred:NAME.
    #[arg(long, value_name = "REF")]
    identity: Option<String>,
    /// OLD is a sealed export archive: the passphrase it was sealed with
    /// (env:NAME, file:PATH or cred:NAME).
    #[arg(long, value_name = "REF", conflicts_with = "identity")]
    passphrase: Option<String>,
}

impl ArchiveKeyArgs {
    fn key(&self) -> vault_migrate::ArchiveKey {
        vault_migrate::ArchiveKey {
            identity: self.identity.clone(),
            passphrase: self.passphrase.clone(),
        }
    }
}

impl ShareArgs {
    fn source(&self) -> vault_migrate::ShareSource {
        match (&self.shares, self.stdin) {
            (Some(dir), _) => vault_migrate::ShareSource::Dir(dir.clone()),
            (None, true) => vault_migrate::ShareSource::Stdin,
            (None, false) => vault_migrate::ShareSource::None,
        }
    }
}

#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    args: cli::ConfigArgs,
    /// Do not verify Vault's TLS certificate. Anyone on the network path
    /// can then read the tokens and key shares: for a throw-away test
    /// server only.
    #[arg(long)]
    danger_accept_any_certificate: bool,
}

fn main() -> ExitCode {
    let cli: Cli = circle_ha::cli::parse("vault-transit");
    let json = match &cli.command {
        Command::RenderConfig { .. } => false,
        Command::Init(common)
        | Command::Verify(common)
        | Command::Status(common)
        | Command::Seal(common)
        | Command::Unseal { common, .. }
        | Command::Configure { common, .. }
        | Command::Migrate {
            command: MigrateCommand::Restore { common, .. } | MigrateCommand::Verify { common, .. },
        } => common.args.json,
        Command::Migrate {
            command: MigrateCommand::Inspect { json, .. },
        } => *json,
    };
    cli::run_main("vault-transit", json, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let load = |common: &Common| -> anyhow::Result<(HaConfig, VaultSettings)> {
        // `--danger-accept-any-certificate` stands in for [vault].ca_file.
        Ok(HaConfig::load_with(
            &common.args.config_path(),
            Section::Vault,
            |config| config.vault_with_env(common.danger_accept_any_certificate, &cli::env_var),
        )?)
    };
    match cli.command {
        Command::RenderConfig { config, out } => {
            let config = HaConfig::load(&cli::config_path(config.as_deref()))?;
            let rendered = config.vault_server()?;
            circle_ha::output::warn(&rendered.warnings);
            match out {
                Some(path) => {
                    ha_tls::write_file(&path, rendered.text.as_bytes(), 0o644)?;
                    circle_ha::log::stage(&format!("wrote {}", path.display()));
                }
                None => print!("{}", rendered.text),
            }
            Ok(Exit::Success)
        }
        Command::Init(common) => {
            let (_, settings) = load(&common)?;
            Ok(print(common.args.json, &vault::init(&settings).await?))
        }
        Command::Unseal {
            common,
            stdin,
            reset,
        } => {
            let (_, settings) = load(&common)?;
            let source = if stdin {
                vault::KeySource::Stdin
            } else {
                vault::KeySource::Files
            };
            let json = common.args.json;
            let report = vault::unseal(
                &settings,
                source,
                reset,
                &mut |_| read_key_share(),
                &|line| {
                    if !json {
                        circle_ha::log::stage(line);
                    }
                },
            )
            .await?;
            Ok(print(common.args.json, &report))
        }
        Command::Configure { common, dry_run } => {
            let (file, settings) = load(&common)?;
            let report = file
                .vault_setup(&settings, &cli::env_var, true)?
                .configure(dry_run)
                .await?;
            Ok(print(common.args.json, &report))
        }
        Command::Verify(common) => {
            let (file, settings) = load(&common)?;
            let setup = file.vault_setup(&settings, &cli::env_var, false)?;
            Ok(print(common.args.json, &setup.verify().await?))
        }
        Command::Status(common) => {
            let (file, settings) = load(&common)?;
            let setup = file.vault_setup(&settings, &cli::env_var, false)?;
            Ok(print(common.args.json, &setup.server_health().await?))
        }
        Command::Seal(common) => {
            let (file, settings) = load(&common)?;
            Ok(print(
                common.args.json,
                &vault::seal(&file, &settings, &cli::env_var).await?,
            ))
        }
        Command::Migrate {
            command:
                MigrateCommand::Verify {
                    common,
                    key,
                    database,
                },
        } => {
            let config = HaConfig::load(&common.args.config_path())?;
            let settings =
                config.vault_with_env(common.danger_accept_any_certificate, &cli::env_var)?;
            let vault = config.vault_setup(&settings, &cli::env_var, false)?;
            let postgres = config
                .postgres(&ha_config::PostgresOverrides::default())
                .and_then(|pg| config.postgres_setup(&pg, &cli::env_var, false))?;
            let findings = vault
                .contexts_verify(&postgres, key.as_deref(), &database)
                .await
                .map_err(|e| match e {
                    // The library keys it by what it is; the flag is --key.
                    ha_runbook::Error::Config(problems) => ha_runbook::Error::Config(
                        problems
                            .into_iter()
                            .map(|mut p| {
                                p.key = format!("--{}", p.key);
                                p
                            })
                            .collect(),
                    ),
                    other => other,
                })?;
            Ok(print(common.args.json, &findings))
        }
        Command::Migrate {
            command:
                MigrateCommand::Inspect {
                    old,
                    archive,
                    shares,
                    json,
                },
        } => Ok(print(
            json,
            &vault_migrate::inspect(&vault_migrate::Old {
                path: old,
                key: archive.key(),
                shares: shares.source(),
            })?,
        )),
        Command::Migrate {
            command:
                MigrateCommand::Restore {
                    common,
                    old,
                    archive,
                    shares,
                    keys,
                    force,
                    dry_run,
                },
        } => {
            let (file, settings) = load(&common)?;
            if shares.shares.is_none() && !shares.stdin {
                return Err(circle_ha::output::usage(
                    "--shares",
                    "restore needs the old Vault's unseal shares: --shares DIR or --stdin",
                )
                .into());
            }
            let mut spec = vault_transit::migrate::MigrateSpec::new(&settings.spec.mount);
            spec.keys = keys;
            spec.force = force;
            spec.dry_run = dry_run;
            vault_migrate::restore(
                &file,
                &settings,
                &cli::env_var,
                &vault_migrate::Old {
                    path: old,
                    key: archive.key(),
                    shares: shares.source(),
                },
                &spec,
                common.args.json,
            )
            .await
        }
    }
}

/// One key share from standard input: prompted without echo on a terminal,
/// else the next non-empty line. `None` at end of input.
fn read_key_share() -> Option<SecretString> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Unseal key share (not echoed): ")
            .ok()
            .map(|k| SecretString::from(k.trim().to_owned()))
            .filter(|k| !secrecy::ExposeSecret::expose_secret(k).is_empty());
    }
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => return Some(SecretString::from(line.trim().to_owned())),
        }
    }
}
