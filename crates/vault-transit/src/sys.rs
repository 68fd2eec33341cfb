//! Seal status, init, unseal and seal: the `sys/` endpoints the runbook's
//! `vault init`, `vault unseal` and `vault seal` map to.

use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Client, Error};

/// `GET sys/seal-status`, fields that exist from 0.7 on (newer ones
/// optional).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SealStatus {
    /// Whether the node is sealed.
    pub sealed: bool,
    /// Key shares needed (threshold).
    #[serde(rename = "t")]
    pub threshold: u32,
    /// Key shares in total.
    #[serde(rename = "n")]
    pub shares: u32,
    /// Shares submitted in the current unseal attempt.
    pub progress: u32,
    /// The current unseal attempt's nonce (0.7.1+).
    #[serde(default)]
    pub nonce: String,
    /// Server version (0.7.1+).
    #[serde(default)]
    pub version: Option<String>,
    /// Whether initialised (newer servers only; use [`is_initialized`]).
    #[serde(default)]
    pub initialized: Option<bool>,
    /// Seal type, e.g. `shamir` (0.9+).
    #[serde(default, rename = "type")]
    pub seal_type: Option<String>,
    /// Storage type, e.g. `raft` (newer servers only).
    #[serde(default)]
    pub storage_type: Option<String>,
}

/// Reads the seal status (no token needed).
pub async fn seal_status(client: &Client) -> Result<SealStatus, Error> {
    let body = client.get("sys/seal-status", None).await?;
    serde_json::from_value(body)
        .map_err(|e| client.response_error("GET", "sys/seal-status", &e.to_string()))
}

/// Whether the server is initialised and unsealed, as `vault-transit
/// status` shows it: healthy when both; JSON `{healthy, address,
/// initialized, sealed, progress, threshold, shares, version}` and one
/// line saying what to run next. No token needed.
pub async fn server_health(client: &Client, tool: &str) -> Result<ServerHealth, Error> {
    let initialized = is_initialized(client).await?;
    let seal = seal_status(client).await?;
    Ok(ServerHealth {
        healthy: initialized && !seal.sealed,
        address: client.address().to_owned(),
        initialized,
        sealed: seal.sealed,
        progress: seal.progress,
        threshold: seal.threshold,
        shares: seal.shares,
        version: seal.version,
        tool: tool.to_owned(),
    })
}

/// `vault-transit status`: whether the server is initialised and
/// unsealed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ServerHealth {
    /// Initialised and unsealed.
    pub healthy: bool,
    /// The server.
    pub address: String,
    /// Whether it is initialised.
    pub initialized: bool,
    /// Whether it is sealed.
    pub sealed: bool,
    /// Unseal shares submitted so far.
    pub progress: u32,
    /// Unseal shares needed.
    pub threshold: u32,
    /// Unseal shares in total.
    pub shares: u32,
    /// The server's version, when it says.
    pub version: Option<String>,
    /// The tool named in the line.
    #[serde(skip)]
    pub tool: String,
}

impl ha_plan::Document for ServerHealth {
    fn to_text(&self) -> String {
        let state = match (self.initialized, self.sealed) {
            (false, _) => "not initialised (run vault-transit init)".to_owned(),
            (true, true) => format!(
                "sealed, unseal progress {}/{} (run vault-transit unseal)",
                self.progress, self.threshold
            ),
            (true, false) => "unsealed".to_owned(),
        };
        let shares = if self.initialized {
            format!("; {} shares, threshold {}", self.shares, self.threshold)
        } else {
            String::new()
        };
        format!(
            "{}: {} {}: {state}{shares}\n",
            self.tool,
            self.address,
            self.version.as_deref().unwrap_or("(version unknown)"),
        )
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// `GET sys/init` (no token needed).
pub async fn is_initialized(client: &Client) -> Result<bool, Error> {
    let body = client.get("sys/init", None).await?;
    body["initialized"]
        .as_bool()
        .ok_or_else(|| client.response_error("GET", "sys/init", "no boolean `initialized`"))
}

/// What `init` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitRequest {
    /// Number of key shares (`secret_shares`).
    pub secret_shares: u8,
    /// Shares needed to unseal (`secret_threshold`).
    pub secret_threshold: u8,
    /// Base64 PGP public keys, one per share: Vault then returns each share
    /// encrypted to its holder.
    pub pgp_keys: Option<Vec<String>>,
}

impl InitRequest {
    /// Checks the numbers the way Vault will, before calling it.
    pub fn validate(&self) -> Result<(), Error> {
        if self.secret_shares == 0 || self.secret_threshold == 0 {
            return Err(Error::Invalid(
                "secret_shares and secret_threshold must be at least 1".to_owned(),
            ));
        }
        if self.secret_threshold > self.secret_shares {
            return Err(Error::Invalid(format!(
                "secret_threshold {} is larger than secret_shares {}",
                self.secret_threshold, self.secret_shares
            )));
        }
        if self.secret_shares > 1 && self.secret_threshold == 1 {
            return Err(Error::Invalid(
                "secret_threshold 1 with several shares lets any one holder unseal alone; use a \
                 threshold of at least 2"
                    .to_owned(),
            ));
        }
        if let Some(keys) = &self.pgp_keys
            && keys.len() != usize::from(self.secret_shares)
        {
            return Err(Error::Invalid(format!(
                "{} PGP keys given for {} shares: give one per share",
                keys.len(),
                self.secret_shares
            )));
        }
        Ok(())
    }
}

/// What `init` returns: the only copy of the unseal key shares and the
/// initial root token. `Debug` shows neither.
pub struct InitResponse {
    /// The key shares: hex, or base64-encoded PGP messages when PGP keys
    /// were given (each decrypts to its hex share).
    pub keys: Vec<SecretString>,
    /// Whether `keys` are PGP-encrypted.
    pub keys_encrypted: bool,
    /// The initial root token.
    pub root_token: SecretString,
}

impl fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &format!("[{} redacted]", self.keys.len()))
            .field("keys_encrypted", &self.keys_encrypted)
            .field("root_token", &"[redacted]")
            .finish()
    }
}

/// `PUT sys/init`. Refuses, without touching Vault, if it is already
/// initialised.
pub async fn init(client: &Client, request: &InitRequest) -> Result<InitResponse, Error> {
    request.validate()?;
    if is_initialized(client).await? {
        return Err(Error::AlreadyInitialized {
            address: client.address().to_owned(),
        });
    }
    if let Some(seal_type) = seal_status(client)
        .await?
        .seal_type
        .filter(|t| t != "shamir")
    {
        return Err(Error::AutoUnseal {
            address: client.address().to_owned(),
            seal_type,
        });
    }
    let mut body = json!({
        "secret_shares": request.secret_shares,
        "secret_threshold": request.secret_threshold,
    });
    if let Some(keys) = &request.pgp_keys {
        body["pgp_keys"] = json!(keys);
    }
    let reply = client.put("sys/init", None, &body).await?;
    // Plain shares are hex in `keys`. PGP-encrypted shares are binary PGP
    // messages, hex in `keys` and base64 in `keys_base64`: keep the base64
    // form, which `base64 -d | gpg -d` turns back into the hex share.
    let field = if request.pgp_keys.is_some() {
        "keys_base64"
    } else {
        "keys"
    };
    let keys: Vec<SecretString> = reply[field]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(|k| SecretString::from(k.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let root_token = reply["root_token"]
        .as_str()
        .map(|t| SecretString::from(t.to_owned()));
    match root_token {
        Some(root_token) if keys.len() == usize::from(request.secret_shares) => Ok(InitResponse {
            keys,
            keys_encrypted: request.pgp_keys.is_some(),
            root_token,
        }),
        _ => Err(client.response_error(
            "PUT",
            "sys/init",
            "the answer lacks the key shares or the root token",
        )),
    }
}

/// Submits one key share (`PUT sys/unseal`).
pub async fn submit_unseal_key(client: &Client, key: &SecretString) -> Result<SealStatus, Error> {
    use secrecy::ExposeSecret as _;
    let reply = client
        .put("sys/unseal", None, &json!({ "key": key.expose_secret() }))
        .await?;
    serde_json::from_value(reply)
        .map_err(|e| client.response_error("PUT", "sys/unseal", &e.to_string()))
}

/// Discards the current unseal attempt (`PUT sys/unseal {"reset": true}`).
pub async fn reset_unseal(client: &Client) -> Result<SealStatus, Error> {
    let reply = client
        .put("sys/unseal", None, &json!({ "reset": true }))
        .await?;
    serde_json::from_value(reply)
        .map_err(|e| client.response_error("PUT", "sys/unseal", &e.to_string()))
}

/// How [`unseal`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsealOutcome {
    /// The final status.
    pub status: SealStatus,
    /// Whether the server was sealed when we started (false: nothing done).
    pub was_sealed: bool,
    /// Whether an earlier, unfinished attempt was discarded first.
    pub reset_stale_attempt: bool,
    /// How many shares were submitted.
    pub submitted: usize,
}

/// Unseals: asks `next_key` for one share at a time (it sees the current
/// status, to show `2/3` progress) until the server is unsealed or
/// `next_key` has no more. Running out is not an error here: with several
/// key holders each submits a share in turn, and the outcome says how far
/// the attempt got (`status.sealed`, `status.progress`).
///
/// Already unsealed: returns at once. An attempt already in progress
/// (progress > 0, e.g. another key holder's) is continued, unless
/// `reset_existing_attempt` asks to discard it first — right when the caller
/// holds enough shares itself and the earlier attempt's shares are unknown.
/// A malformed share, a share already submitted in this attempt, and a set
/// of shares that do not combine are each reported as such; the last case
/// resets the attempt (Vault cannot tell which share was wrong).
pub async fn unseal(
    client: &Client,
    reset_existing_attempt: bool,
    next_key: &mut (dyn FnMut(&SealStatus) -> Option<SecretString> + Send),
) -> Result<UnsealOutcome, Error> {
    if !is_initialized(client).await? {
        return Err(Error::Unseal(format!(
            "Vault at {} is not initialised: run `vault-transit init` first",
            client.address()
        )));
    }
    let mut status = seal_status(client).await?;
    if !status.sealed {
        return Ok(UnsealOutcome {
            status,
            was_sealed: false,
            reset_stale_attempt: false,
            submitted: 0,
        });
    }
    let mut reset_stale_attempt = false;
    if status.progress > 0 && reset_existing_attempt {
        status = reset_unseal(client).await?;
        reset_stale_attempt = true;
    }
    let mut submitted = 0;
    while status.sealed {
        let Some(key) = next_key(&status) else {
            break;
        };
        submitted += 1;
        let before = status.progress;
        status = match submit_unseal_key(client, &key).await {
            Ok(status) => status,
            Err(Error::Api {
                status: 400,
                errors,
                ..
            }) => {
                let said = errors.join("; ");
                return Err(Error::Unseal(if said.contains("valid hex or base64") {
                    format!(
                        "key share #{submitted} is not a key share (not hex or base64); progress \
                         stays {before}/{}",
                        status.threshold
                    )
                } else {
                    format!(
                        "the {} shares submitted do not combine into the unseal key: at least \
                         one of them is wrong or from another Vault (Vault reset the attempt; it \
                         cannot tell which share was wrong). Vault said: {said}",
                        status.threshold
                    )
                }));
            }
            Err(e) => return Err(e),
        };
        if status.sealed && status.progress == before {
            return Err(Error::Unseal(format!(
                "key share #{submitted} did not advance the unseal progress ({before}/{}): it \
                 was already submitted in this attempt",
                status.threshold
            )));
        }
    }
    if !status.sealed {
        wait_until_serving(client, std::time::Duration::from_secs(60)).await;
    }
    Ok(UnsealOutcome {
        status,
        was_sealed: true,
        reset_stale_attempt,
        submitted,
    })
}

/// Right after unsealing, an HA-capable node (integrated raft, Consul)
/// answers requests with HTTP 500 "local node not active but active
/// cluster node not found" until it has won the leader election or learnt
/// of another active node. Waits (polling `sys/leader` every 100 ms, at
/// most `deadline`) until this node is active, another node is, or HA is
/// off, so the caller's next request is served. Gives up quietly at the
/// deadline: that next request then says what is wrong.
async fn wait_until_serving(client: &Client, deadline: std::time::Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < deadline {
        if let Ok(leader) = client.get("sys/leader", None).await {
            let ha = leader["ha_enabled"].as_bool().unwrap_or(false);
            let active = leader["is_self"].as_bool().unwrap_or(false);
            let elsewhere = leader["leader_address"]
                .as_str()
                .is_some_and(|a| !a.is_empty());
            if !ha || active || elsewhere {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Seals the server (`PUT sys/seal`, needs a root or sudo token).
pub async fn seal(client: &Client, token: &SecretString) -> Result<(), Error> {
    client.put("sys/seal", Some(token), &json!({})).await?;
    Ok(())
}
