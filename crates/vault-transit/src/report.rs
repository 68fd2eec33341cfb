//! What `init`, `unseal` and `seal` report: typed documents (the CLI prints
//! them with `--json` or as text; a program linking this crate reads the
//! fields).

use ha_plan::{Action, Document, Report};
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Initialised, UnsealOutcome};

fn server_action(kind: &str, address: &str, detail: String) -> Action {
    Action::new(kind, format!("vault {address}"), detail)
}

/// `vault-transit init`: the server initialised and the files its key
/// shares and root token went to.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct InitReport {
    /// One `init` action.
    #[serde(flatten)]
    pub report: Report,
    /// The 0600 files written: the shares, then the root token.
    pub files: Vec<String>,
    /// Whether the shares are PGP-encrypted to their holders.
    pub keys_encrypted: bool,
    /// Key shares made.
    #[serde(skip)]
    pub shares: u8,
    /// Key shares needed to unseal.
    #[serde(skip)]
    pub threshold: u8,
}

impl InitReport {
    /// The report of `done`, an init of the server at `address` into
    /// `shares` shares of which `threshold` unseal it.
    pub fn new(address: &str, shares: u8, threshold: u8, done: &Initialised) -> InitReport {
        InitReport {
            report: Report::new(
                "vault-transit",
                false,
                vec![server_action(
                    "init",
                    address,
                    format!(
                        "initialised {address} with {shares} key shares, threshold {threshold}"
                    ),
                )],
                Vec::new(),
            ),
            files: done.files.iter().map(|p| p.display().to_string()).collect(),
            keys_encrypted: done.keys_encrypted,
            shares,
            threshold,
        }
    }
}

impl Document for InitReport {
    fn to_text(&self) -> String {
        let mut text: String = self
            .report
            .actions
            .iter()
            .map(|a| format!("vault-transit: {}\n", a.detail))
            .collect();
        for path in &self.files {
            text.push_str(&format!("  wrote {path} (0600)\n"));
        }
        text.push_str(
            "Hand each unseal-key file to a different key holder and remove it from this \
             machine; keep the root token offline once `configure` has run.\n",
        );
        text
    }
}

/// `vault-transit seal`: sealed now, or already sealed (`changed: 0`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SealReport {
    /// One `seal` action, or none when the server was already sealed.
    #[serde(flatten)]
    pub report: Report,
    /// Always true once the command succeeded.
    pub sealed: bool,
    /// The server.
    #[serde(skip)]
    pub address: String,
}

impl SealReport {
    /// The server at `address` is sealed; `sealed_now` when this run
    /// sealed it (else it already was).
    pub fn new(address: &str, sealed_now: bool) -> SealReport {
        let actions = if sealed_now {
            vec![server_action("seal", address, format!("sealed {address}"))]
        } else {
            Vec::new()
        };
        SealReport {
            report: Report::new("vault-transit", false, actions, Vec::new()),
            sealed: true,
            address: address.to_owned(),
        }
    }
}

impl Document for SealReport {
    fn to_text(&self) -> String {
        if self.report.actions.is_empty() {
            format!(
                "vault-transit: {} is already sealed (changed: 0)\n",
                self.address
            )
        } else {
            format!("vault-transit: sealed {} (changed: 1)\n", self.address)
        }
    }
}

/// `vault-transit unseal`: how far the unseal got.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct UnsealReport {
    /// One `unseal` action when this run submitted a share, else none.
    #[serde(flatten)]
    pub report: Report,
    /// Whether the server is still sealed (more shares needed).
    pub sealed: bool,
    /// Shares submitted in the current attempt.
    pub progress: u32,
    /// Shares needed.
    pub threshold: u32,
    /// Shares this run submitted.
    pub submitted: usize,
    /// Whether an unfinished earlier attempt was discarded first.
    pub reset_stale_attempt: bool,
    /// Whether the server was sealed when the run began.
    #[serde(skip)]
    pub was_sealed: bool,
    /// The server.
    #[serde(skip)]
    pub address: String,
}

impl UnsealReport {
    /// The report of `outcome` on the server at `address`.
    pub fn new(address: &str, outcome: &UnsealOutcome) -> UnsealReport {
        let actions = if outcome.submitted > 0 {
            vec![server_action(
                "unseal",
                address,
                format!("submitted {} key share(s) to {address}", outcome.submitted),
            )]
        } else {
            Vec::new()
        };
        UnsealReport {
            report: Report::new("vault-transit", false, actions, Vec::new()),
            sealed: outcome.status.sealed,
            progress: outcome.status.progress,
            threshold: outcome.status.threshold,
            submitted: outcome.submitted,
            reset_stale_attempt: outcome.reset_stale_attempt,
            was_sealed: outcome.was_sealed,
            address: address.to_owned(),
        }
    }
}

impl Document for UnsealReport {
    fn to_text(&self) -> String {
        let address = &self.address;
        if self.sealed {
            format!(
                "vault-transit: {address} is still sealed: unseal progress {}/{} after {} \
                 share(s) from this run; {} more needed (other key holders run `vault-transit \
                 unseal --stdin`)\n",
                self.progress,
                self.threshold,
                self.submitted,
                self.threshold.saturating_sub(self.progress)
            )
        } else if self.was_sealed {
            format!(
                "vault-transit: unsealed {address} with {} key shares{} (changed: 1)\n",
                self.submitted,
                if self.reset_stale_attempt {
                    " after resetting an unfinished earlier attempt"
                } else {
                    ""
                }
            )
        } else {
            format!("vault-transit: {address} is already unsealed (changed: 0)\n")
        }
    }
}
