//! The one error type of `vault-transit`.

use std::path::PathBuf;

/// What went wrong. Messages say what state Vault is in and what to do;
/// they never contain a key share or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TLS configuration could not be built.
    #[error("TLS settings for Vault are unusable")]
    Tls(#[source] ha_tls::Error),
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client for {address}")]
    Client {
        /// Vault's address.
        address: String,
        /// The client library's error.
        #[source]
        source: reqwest::Error,
    },
    /// The request did not get an HTTP answer (refused, TLS, timeout).
    #[error("{method} {address}/v1/{path}: {detail}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Vault's address.
        address: String,
        /// API path below `/v1/`.
        path: String,
        /// The cause chain in words.
        detail: String,
    },
    /// Vault answered with an error status.
    #[error("{method} {address}/v1/{path}: {explanation}")]
    Api {
        /// HTTP method.
        method: &'static str,
        /// Vault's address.
        address: String,
        /// API path below `/v1/`.
        path: String,
        /// HTTP status code.
        status: u16,
        /// Vault's `errors` array.
        errors: Vec<String>,
        /// What the status means here and what to do.
        explanation: String,
    },
    /// Vault answered 2xx with a body we could not read.
    #[error("{method} {address}/v1/{path}: unexpected response: {detail}")]
    Response {
        /// HTTP method.
        method: &'static str,
        /// Vault's address.
        address: String,
        /// API path below `/v1/`.
        path: String,
        /// What was wrong with it.
        detail: String,
    },
    /// `init` on a Vault that is already initialised.
    #[error(
        "Vault at {address} is already initialised; init runs once and hands out the only copy \
         of the unseal keys, so it was not touched (to unseal it: vault-transit unseal)"
    )]
    AlreadyInitialized {
        /// Vault's address.
        address: String,
    },
    /// The server is sealed by a KMS (auto-unseal), not by Shamir shares:
    /// it is initialised with recovery shares, which `init` does not make.
    #[error(
        "{address} is sealed by {seal_type} (auto-unseal): it is initialised with recovery \
         shares, not unseal key shares; run `bao operator init -recovery-shares 5 \
         -recovery-threshold 3` (or `vault operator init …`) and keep the recovery shares and \
         the root token as securely as unseal shares; nothing was changed"
    )]
    AutoUnseal {
        /// Vault's address.
        address: String,
        /// The seal type it reports (`awskms`, …).
        seal_type: String,
    },
    /// A local file could not be read or written.
    #[error("{action} {path}")]
    File {
        /// What was being done (`cannot write`, `cannot read` …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Files from an earlier init are in the way; they are never overwritten.
    #[error(
        "{path} already exists: it may hold the only copy of an unseal key or root token, so \
         init will not overwrite it (move it away deliberately first)"
    )]
    WouldOverwrite {
        /// The existing file.
        path: PathBuf,
    },
    /// Vault initialised but the key files could not all be written. The
    /// keys are in `keys` so the caller can hand them to the operator.
    #[error(
        "Vault at {address} is initialised but writing {path} failed: the unseal keys and root \
         token exist nowhere else"
    )]
    KeysNotSaved {
        /// Vault's address.
        address: String,
        /// The file that failed.
        path: PathBuf,
        /// The init response, to rescue.
        keys: Box<crate::InitResponse>,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The key directory holds too few plain shares to unseal alone.
    #[error(
        "{} has {found} unseal-key file(s) and {threshold} shares are needed: the other key \
         holders submit theirs one at a time (`vault-transit unseal --stdin`)",
        dir.display()
    )]
    NotEnoughKeyFiles {
        /// The key directory.
        dir: PathBuf,
        /// Plain shares found there.
        found: usize,
        /// Shares needed.
        threshold: u32,
    },
    /// Unsealing could not finish.
    #[error("{0}")]
    Unseal(String),
    /// The settings are unusable (threshold above shares …).
    #[error("invalid Vault settings: {0}")]
    Invalid(String),
    /// The old Vault's storage is not what Vault 0.7 writes, or a value in
    /// it was changed or damaged.
    #[error("{}: {detail}", path.display())]
    OldStorage {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The unseal shares given cannot be used (too few, malformed, the
    /// same one twice): found before anything is touched.
    #[error("{0}")]
    Shares(String),
    /// The shares do not open the old Vault's keyring (which one is wrong,
    /// when that can be told).
    #[error("{0}")]
    WrongShares(String),
}

impl Error {
    /// Whether retrying later may help (network trouble, a sealed or
    /// standby node, Vault's 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status, .. } => matches!(status, 429 | 472 | 473 | 500 | 502 | 503),
            _ => false,
        }
    }

    /// Whether the input is at fault, found before anything was touched
    /// (too few, malformed or wrong unseal shares): the binaries exit 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Shares(_) | Error::WrongShares(_) | Error::AutoUnseal { .. }
        )
    }

    /// Whether stored data was found changed or damaged: the binaries exit
    /// 3, as for any check that finds something wrong.
    pub fn is_damage(&self) -> bool {
        matches!(self, Error::OldStorage { .. })
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}
