//! Vault (and OpenBao) for CircleCI's contexts service: the server's
//! configuration file, init, unseal, the transit mount, a least-privilege
//! policy and a periodic orphan token.
//!
//! The runbook drives Vault 0.7's CLI: `vault init`, `vault unseal` three
//! times, `vault auth` with the root token, `vault mount transit`, `vault
//! token-create -period="1h"`, `vault seal`. This crate does the same through
//! the HTTP API, whose endpoints have the same shape from Vault 0.7 to
//! current Vault and OpenBao:
//!
//! - [`render_server_config`] writes a valid `vault.hcl` for the chosen
//!   server and storage (the runbook's mixes `file` and Consul keys), TLS on;
//! - [`init`] initialises once and returns the only copy of the key shares,
//!   which [`KeyFiles`] writes one per 0600 file (checked writable before
//!   Vault is asked);
//! - [`unseal`] submits shares until unsealed, resetting a stale attempt and
//!   naming a malformed, repeated or wrong share;
//! - [`configure`] observes, plans and applies the transit mount, the
//!   policy and the token — an **orphan** with only that policy, not the
//!   runbook's child of root that holds root's powers and dies with it —
//!   keeping (and renewing) a still-valid token;
//! - [`verify`] checks the token the way the contexts service uses it, and
//!   that everything else is refused.
//!
//! Every HTTP error becomes a message saying what state Vault is in (not
//! initialised, sealed, standby, permission denied on which path). No key
//! share or token ever appears in an error or a `Debug` output.
//!
//! # Example
//!
//! Init to key files, unseal from them, configure the transit mount and
//! the app token, from typed values:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use vault_transit::{Client, ConfigureSpec, InitRequest, KeyFiles, Trust, configure};
//!
//! let address = "https://vault.internal:8200";
//! let trust = Trust::Ca { pem: std::fs::read("pki/ca.pem")?, path: "pki/ca.pem".to_owned() };
//! let client = Client::new(address, &trust)?;
//! let request = InitRequest { secret_shares: 5, secret_threshold: 3, pgp_keys: None };
//! request.validate()?;
//! let keys = KeyFiles::new("secrets/vault");
//! if !vault_transit::is_initialized(&client).await? {
//!     // Checks the files can be written before Vault is asked; one 0600 file per share.
//!     let done = vault_transit::init_to_files(&client, &request, &keys).await?;
//!     eprintln!("wrote {} files", done.files.len());
//! }
//! vault_transit::unseal_from_files(&client, &keys, &|line| eprintln!("{line}")).await?;
//!
//! let root = secrecy::SecretString::from(std::fs::read_to_string(keys.root_token_path())?);
//! let spec = ConfigureSpec::new("transit", "1h");
//! let token_file = std::path::Path::new("secrets/vault/circleci-token");
//! let pending = configure::Pending::read(token_file)?; // what a killed run left
//! let observed = configure::observe(&client, &root, &spec, None, pending).await?;
//! let plan = configure::plan(&spec, &observed);
//! configure::apply(&client, &root, &spec, &plan, None, token_file).await?;
//! # Ok(()) }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use secrecy;

mod client;
pub mod configure;
pub mod contexts;
mod error;
mod keys;
pub mod legacy;
pub mod migrate;
mod render;
mod report;
mod sys;
mod verify;

pub use client::{Client, Trust};
pub use configure::ConfigureSpec;
pub use error::Error;
pub use keys::{Initialised, KeyFiles, init_to_files, unseal_from_files};
pub use render::{
    AwsKmsSeal, Flavor, RenderedConfig, ServerConfigSpec, Storage, render_server_config,
};
pub use report::{InitReport, SealReport, UnsealReport};
pub use sys::{
    InitRequest, InitResponse, SealStatus, ServerHealth, UnsealOutcome, init, is_initialized,
    reset_unseal, seal, seal_status, server_health, submit_unseal_key, unseal,
};
pub use verify::{Check, PROBE_KEY, TokenFindings, VerifyReport, verify};
