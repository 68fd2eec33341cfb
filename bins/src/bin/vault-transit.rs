//! `vault-transit`: Vault (or OpenBao) for the CircleCI contexts service.
// Doc comments here are clap's --help text: `[mongo]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use circle_ha::exit::Exit;
use circle_ha::output::print;
use circle_ha::{cli, vault};
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
        | Command::Configure { common, .. } => common.args.json,
    };
    cli::run_main("vault-transit", json, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let load = |common: &Common| -> anyhow::Result<(HaConfig, VaultSettings)> {
        // `--danger-accept-any-certificate` stands in for [vault].ca_file.
        Ok(HaConfig::load_with(
            &common.args.config_path(),
            Section::Vault,
            |config| config.vault(common.danger_accept_any_certificate),
        )?)
    };
    match cli.command {
        Command::RenderConfig { config, out } => {
            let config = HaConfig::load(&cli::config_path(config.as_deref()))?;
            let rendered = config.vault_server()?;
            for warning in &rendered.warnings {
                eprintln!("vault-transit: warning: {warning}");
            }
            match out {
                Some(path) => {
                    ha_tls::write_file(&path, rendered.text.as_bytes(), 0o644)?;
                    eprintln!("vault-transit: wrote {}", path.display());
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
                        eprintln!("vault-transit: {line}");
                    }
                },
            )
            .await?;
            Ok(print(common.args.json, &report))
        }
        Command::Configure { common, dry_run } => {
            let (file, settings) = load(&common)?;
            let report = file
                .vault_configure(&settings, &cli::env_var, dry_run)
                .await?;
            Ok(print(common.args.json, &report))
        }
        Command::Verify(common) => {
            let (_, settings) = load(&common)?;
            Ok(print(common.args.json, &settings.verify().await?))
        }
        Command::Status(common) => {
            let (_, settings) = load(&common)?;
            Ok(print(common.args.json, &settings.server_health().await?))
        }
        Command::Seal(common) => {
            let (file, settings) = load(&common)?;
            Ok(print(
                common.args.json,
                &vault::seal(&file, &settings, &cli::env_var).await?,
            ))
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
