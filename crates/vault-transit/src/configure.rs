//! The transit mount, the contexts-service policy and the app token:
//! observe → plan → apply.
//!
//! The runbook runs `vault mount transit` and `vault token-create
//! -period="1h"` as root. That token is a child of the root token: it holds
//! root's powers and dies when the root token is revoked. Here the token is
//! an orphan with a policy that allows exactly what the CircleCI contexts
//! service needs on the transit mount, and nothing else.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::{Client, Error};

/// What `configure` sets up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigureSpec {
    /// The transit mount's path, e.g. `transit`.
    pub mount: String,
    /// The policy's name, e.g. `circleci-contexts`.
    pub policy_name: String,
    /// The token's period, e.g. `1h`: it expires unless renewed within it.
    pub period: String,
    /// The token's display name.
    pub display_name: String,
}

impl ConfigureSpec {
    /// The spec for `mount` with the given period: policy
    /// `circleci-<mount>`.
    pub fn new(mount: &str, period: &str) -> ConfigureSpec {
        let mount = mount.trim_matches('/').to_owned();
        ConfigureSpec {
            policy_name: format!("circleci-{}", mount.replace('/', "-")),
            mount,
            period: period.to_owned(),
            display_name: "circleci-contexts".to_owned(),
        }
    }

    /// Checks the mount path and period before any request.
    pub fn validate(&self) -> Result<(), Error> {
        let mount_ok = !self.mount.is_empty()
            && self
                .mount
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
            && !self
                .mount
                .split('/')
                .any(|part| part.is_empty() || part == "..");
        if !mount_ok {
            return Err(Error::Invalid(format!(
                "transit mount path {:?} may contain letters, digits, '-', '_', '.' and '/' only",
                self.mount
            )));
        }
        if parse_duration_seconds(&self.period).is_none_or(|s| s == 0) {
            return Err(Error::Invalid(format!(
                "token period {:?} is not a duration such as 1h, 30m or 3600s",
                self.period
            )));
        }
        Ok(())
    }

    /// The policy: manage keys, encrypt and decrypt on this mount; renew and
    /// look up its own token (the default policy, which would also grant
    /// cubbyhole and more, is not attached).
    pub fn policy_rules(&self) -> String {
        let m = &self.mount;
        format!(
            "# CircleCI contexts service: its transit keys, encrypt and decrypt. Nothing else.\n\
             # Written by vault-transit configure.\n\
             path \"{m}/keys\" {{\n  capabilities = [\"list\"]\n}}\n\
             path \"{m}/keys/*\" {{\n  capabilities = [\"create\", \"read\", \"update\", \"list\"]\n}}\n\
             path \"{m}/encrypt/*\" {{\n  capabilities = [\"create\", \"update\"]\n}}\n\
             path \"{m}/decrypt/*\" {{\n  capabilities = [\"update\"]\n}}\n\
             path \"auth/token/renew-self\" {{\n  capabilities = [\"update\"]\n}}\n\
             path \"auth/token/lookup-self\" {{\n  capabilities = [\"read\"]\n}}\n"
        )
    }
}

/// What is mounted at the transit path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountState {
    /// Nothing.
    Absent,
    /// A transit engine.
    Transit,
    /// Something else: a conflict the tool will not resolve.
    Other(String),
}

/// The app token's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// The token file does not exist.
    NoFile,
    /// Vault does not know the token (expired, revoked, or from another
    /// Vault).
    Invalid(String),
    /// Valid, but not what the spec asks for (policies, period, orphan).
    Unsuitable {
        /// The token's accessor, to revoke it.
        accessor: String,
        /// Every difference.
        reasons: Vec<String>,
    },
    /// Valid and as specified.
    Valid {
        /// The token's accessor.
        accessor: String,
        /// Seconds left before it expires.
        ttl: u64,
    },
}

/// Work an interrupted `apply` left for the next run, recorded next to the
/// token file (`<token file>.pending`, 0600) before the first change that
/// could be lost: the accessors of tokens still to revoke, and the marker
/// put on a token being created (an orphan a kill left behind, before its
/// token was written to the file, is found by it and revoked).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// Accessors of tokens to revoke.
    #[serde(default)]
    pub revoke: Vec<String>,
    /// The marker (`meta.circle_ha_create`) of a token being created.
    #[serde(default)]
    pub creating: Option<String>,
}

impl Pending {
    /// Where the pending work of `token_file` is recorded.
    pub fn path(token_file: &Path) -> PathBuf {
        let mut name = token_file.as_os_str().to_owned();
        name.push(".pending");
        PathBuf::from(name)
    }

    /// Reads the pending work of `token_file` (none when there is no file).
    pub fn read(token_file: &Path) -> Result<Pending, Error> {
        let path = Pending::path(token_file);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Invalid(format!(
                    "{}: not a pending-work record ({e}); remove it if nothing is pending",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pending::default()),
            Err(source) => Err(Error::File {
                action: "cannot read",
                path,
                source,
            }),
        }
    }

    fn write(&self, token_file: &Path) -> Result<(), Error> {
        let path = Pending::path(token_file);
        if self == &Pending::default() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::File {
                    action: "cannot remove",
                    path,
                    source: e,
                }),
                _ => Ok(()),
            };
        }
        let json = serde_json::to_vec(self).map_err(|e| Error::Invalid(e.to_string()))?;
        ha_tls::write_file(&path, &json, 0o600).map_err(|e| Error::File {
            action: "cannot record pending work in",
            path,
            source: std::io::Error::other(e.to_string()),
        })
    }
}

/// The current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Vault's address.
    pub address: String,
    /// The mount.
    pub mount: MountState,
    /// The policy's current rules, if it exists.
    pub policy: Option<String>,
    /// The app token.
    pub token: TokenState,
    /// What an interrupted run left to do.
    pub pending: Pending,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create a periodic orphan token with only the policy, and write it to
    /// the token file.
    CreateToken {
        /// The token's display name.
        display_name: String,
        /// Why a new token is needed.
        reason: String,
    },
    /// Mount a transit engine.
    EnableTransit {
        /// The mount path.
        mount: String,
    },
    /// Revoke the tokens an interrupted run created but never wrote to the
    /// token file (found by the marker it put on them).
    RevokeOrphans {
        /// The marker (`meta.circle_ha_create`).
        marker: String,
    },
    /// Revoke the old, unsuitable token (after its replacement is written).
    RevokeToken {
        /// Its accessor (not secret).
        accessor: String,
    },
    /// Write (create or replace) the policy.
    WritePolicy {
        /// The policy's name.
        name: String,
        /// Whether a different policy of that name exists.
        replaces: bool,
    },
}

impl ha_plan::Change for Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::CreateToken { .. } => "create-token",
            Step::EnableTransit { .. } => "enable-transit",
            Step::RevokeOrphans { .. } => "revoke-orphans",
            Step::RevokeToken { .. } => "revoke-token",
            Step::WritePolicy { .. } => "write-policy",
        }
    }

    fn target(&self) -> String {
        match self {
            Step::CreateToken { display_name, .. } => format!("token {display_name}"),
            Step::EnableTransit { mount } => format!("mount {mount}/"),
            Step::RevokeOrphans { marker } => format!("tokens marked {marker}"),
            Step::RevokeToken { accessor } => format!("token accessor {accessor}"),
            Step::WritePolicy { name, .. } => format!("policy {name}"),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateToken { reason, .. } => write!(
                f,
                "create a periodic orphan token with only the contexts policy ({reason})"
            ),
            Step::EnableTransit { mount } => write!(f, "mount the transit engine at {mount}/"),
            Step::RevokeOrphans { marker } => write!(
                f,
                "revoke the tokens an interrupted run created but never saved (marker {marker})"
            ),
            Step::RevokeToken { accessor } => {
                write!(f, "revoke the old token (accessor {accessor})")
            }
            Step::WritePolicy { name, replaces } => write!(
                f,
                "{} policy {name}",
                if *replaces { "replace" } else { "write" }
            ),
        }
    }
}

/// The steps, and why they cannot run if they cannot (conflicts the tool
/// will not resolve on its own).
pub type Plan = ha_plan::Plan<Step>;

/// Reads the mount table, the policy and the app token's state, with the
/// admin token. `app_token` is the token file's content, if it exists;
/// `pending` what an interrupted run recorded ([`Pending::read`]).
pub async fn observe(
    client: &Client,
    admin_token: &SecretString,
    spec: &ConfigureSpec,
    app_token: Option<&SecretString>,
    pending: Pending,
) -> Result<Observed, Error> {
    let mounts = client.get("sys/mounts", Some(admin_token)).await?;
    // Newer servers wrap the table in `data` (and repeat it at top level).
    let table = if mounts["data"].is_object() {
        &mounts["data"]
    } else {
        &mounts
    };
    let mount = match &table[format!("{}/", spec.mount)] {
        Value::Null => MountState::Absent,
        entry => match entry["type"].as_str() {
            Some("transit") => MountState::Transit,
            Some(other) => MountState::Other(other.to_owned()),
            None => MountState::Other("unknown".to_owned()),
        },
    };

    let policy_path = format!("sys/policy/{}", spec.policy_name);
    let policy = match client.get(&policy_path, Some(admin_token)).await {
        Ok(body) => {
            let rules = if body["rules"].is_string() {
                &body["rules"]
            } else {
                &body["data"]["rules"]
            };
            rules.as_str().map(str::to_owned)
        }
        Err(Error::Api { status: 404, .. }) => None,
        Err(e) => return Err(e),
    };

    let mut pending = pending;
    let token = match app_token {
        None => TokenState::NoFile,
        Some(token) => {
            let lookup = client
                .put(
                    "auth/token/lookup",
                    Some(admin_token),
                    &json!({ "token": token.expose_secret() }),
                )
                .await;
            match lookup {
                Ok(body) => {
                    // A pending creation whose token reached the file is
                    // finished: the marker is on the token in the file.
                    let marker = body["data"]["meta"]["circle_ha_create"].as_str();
                    if marker.is_some() && marker == pending.creating.as_deref() {
                        pending.creating = None;
                    }
                    token_state(&body["data"], spec)
                }
                Err(Error::Api {
                    status: 400 | 403 | 404,
                    errors,
                    ..
                }) => TokenState::Invalid(if errors.is_empty() {
                    "Vault does not know it".to_owned()
                } else {
                    errors.join("; ")
                }),
                Err(e) => return Err(e),
            }
        }
    };

    Ok(Observed {
        address: client.address().to_owned(),
        mount,
        policy,
        token,
        pending,
    })
}

fn token_state(data: &Value, spec: &ConfigureSpec) -> TokenState {
    let accessor = data["accessor"].as_str().unwrap_or_default().to_owned();
    let mut reasons = Vec::new();
    let policies: Vec<&str> = data["policies"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if policies != [spec.policy_name.as_str()] {
        reasons.push(format!(
            "its policies are {policies:?}, not just {:?}",
            spec.policy_name
        ));
    }
    let period = seconds(&data["period"]);
    let wanted = parse_duration_seconds(&spec.period);
    if period != wanted {
        reasons.push(format!(
            "its period is {} s, not {} ({} s)",
            period.unwrap_or(0),
            spec.period,
            wanted.unwrap_or(0)
        ));
    }
    if data["orphan"].as_bool() != Some(true) {
        reasons.push("it is not an orphan: revoking its parent would revoke it".to_owned());
    }
    if data["renewable"].as_bool() != Some(true) {
        reasons.push("it is not renewable".to_owned());
    }
    if reasons.is_empty() {
        TokenState::Valid {
            accessor,
            ttl: seconds(&data["ttl"]).unwrap_or(0),
        }
    } else {
        TokenState::Unsuitable { accessor, reasons }
    }
}

/// Computes the steps. Pure.
pub fn plan(spec: &ConfigureSpec, observed: &Observed) -> Plan {
    let mut steps = Vec::new();
    let mut blockers = Vec::new();
    match &observed.mount {
        MountState::Absent => steps.push(Step::EnableTransit {
            mount: spec.mount.clone(),
        }),
        MountState::Transit => {}
        MountState::Other(kind) => blockers.push(format!(
            "{}/ is already mounted as a {kind} engine, not transit: choose another \
             transit_mount, or unmount it deliberately",
            spec.mount
        )),
    }
    let rules = spec.policy_rules();
    match &observed.policy {
        Some(current) if current.trim() == rules.trim() => {}
        current => steps.push(Step::WritePolicy {
            name: spec.policy_name.clone(),
            replaces: current.is_some(),
        }),
    }
    match &observed.token {
        TokenState::Valid { .. } => {}
        TokenState::NoFile => steps.push(Step::CreateToken {
            display_name: spec.display_name.clone(),
            reason: "there is no token file yet".to_owned(),
        }),
        TokenState::Invalid(why) => steps.push(Step::CreateToken {
            display_name: spec.display_name.clone(),
            reason: format!("the token in the file is not valid: {why}"),
        }),
        TokenState::Unsuitable { accessor, reasons } => {
            steps.push(Step::CreateToken {
                display_name: spec.display_name.clone(),
                reason: reasons.join("; "),
            });
            steps.push(Step::RevokeToken {
                accessor: accessor.clone(),
            });
        }
    }
    // What an interrupted run left: its orphan before anything (a new
    // token gets a marker of its own), old tokens after the new one.
    if let Some(marker) = &observed.pending.creating {
        steps.insert(
            0,
            Step::RevokeOrphans {
                marker: marker.clone(),
            },
        );
    }
    for accessor in &observed.pending.revoke {
        let step = Step::RevokeToken {
            accessor: accessor.clone(),
        };
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    Plan {
        steps,
        blockers,
        warnings: Vec::new(),
    }
}

/// What `apply` did besides the plan's steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The steps run.
    pub steps: Vec<Step>,
    /// Whether an existing valid token was renewed (not counted as a change:
    /// it is what the app itself does every period).
    pub renewed: bool,
}

/// Runs the plan with the admin token. A new app token is written to
/// `token_file` (0600, atomically) before any old one is revoked; a valid
/// existing token is renewed so it keeps a full period.
pub async fn apply(
    client: &Client,
    admin_token: &SecretString,
    spec: &ConfigureSpec,
    plan: &Plan,
    app_token: Option<&SecretString>,
    token_file: &Path,
) -> Result<Applied, Error> {
    if !plan.blockers.is_empty() {
        return Err(Error::Invalid(plan.blockers.join("; ")));
    }
    // Recorded before anything that a kill could lose: the tokens still to
    // revoke, and the marker the new token will carry.
    let mut pending = Pending::read(token_file)?;
    for step in &plan.steps {
        if let Step::RevokeToken { accessor } = step
            && !pending.revoke.contains(accessor)
        {
            pending.revoke.push(accessor.clone());
        }
    }
    pending.write(token_file)?;
    for step in &plan.steps {
        match step {
            Step::EnableTransit { mount } => {
                client
                    .put(
                        &format!("sys/mounts/{mount}"),
                        Some(admin_token),
                        &json!({
                            "type": "transit",
                            "description": "CircleCI contexts service (circle-ha)",
                        }),
                    )
                    .await?;
            }
            Step::WritePolicy { name, .. } => {
                let rules = spec.policy_rules();
                // `policy` is the current name of the field, `rules` the one
                // Vault 0.7 reads; each server ignores the other.
                client
                    .put(
                        &format!("sys/policy/{name}"),
                        Some(admin_token),
                        &json!({ "policy": rules, "rules": rules }),
                    )
                    .await?;
            }
            Step::CreateToken { .. } => {
                // A marker of its own, recorded before Vault is asked.
                pending.creating = Some(new_marker()?);
                pending.write(token_file)?;
                let body = client
                    .put(
                        "auth/token/create-orphan",
                        Some(admin_token),
                        &json!({
                            "policies": [spec.policy_name],
                            "no_default_policy": true,
                            "period": spec.period,
                            "renewable": true,
                            "display_name": spec.display_name,
                            "meta": {
                                "created_by": "circle-ha vault-transit",
                                "circle_ha_create": pending.creating,
                            },
                        }),
                    )
                    .await?;
                let token = body["auth"]["client_token"].as_str().ok_or_else(|| {
                    client.response_error("PUT", "auth/token/create-orphan", "no client_token")
                })?;
                ha_tls::write_file(token_file, format!("{token}\n").as_bytes(), 0o600).map_err(
                    |e| Error::File {
                        action: "cannot write the new app token to",
                        path: token_file.to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    },
                )?;
                pending.creating = None;
                pending.write(token_file)?;
            }
            Step::RevokeOrphans { marker } => {
                revoke_marked(client, admin_token, marker).await?;
                if pending.creating.as_deref() == Some(marker.as_str()) {
                    pending.creating = None;
                }
                pending.write(token_file)?;
            }
            Step::RevokeToken { accessor } => {
                match client
                    .put(
                        "auth/token/revoke-accessor",
                        Some(admin_token),
                        &json!({ "accessor": accessor }),
                    )
                    .await
                {
                    // Already gone (an earlier run got this far): done.
                    Ok(_) | Err(Error::Api { status: 400, .. }) => {}
                    Err(e) => return Err(e),
                }
                pending.revoke.retain(|a| a != accessor);
                pending.write(token_file)?;
            }
        }
    }
    let creates_token = plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::CreateToken { .. }));
    let mut renewed = false;
    if let (false, Some(token)) = (creates_token, app_token) {
        client
            .put("auth/token/renew-self", Some(token), &json!({}))
            .await?;
        renewed = true;
    }
    Ok(Applied {
        steps: plan.steps.clone(),
        renewed,
    })
}

/// A fresh marker for a token about to be created: 16 random bytes, hex.
fn new_marker() -> Result<String, Error> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Invalid("the operating system's random source failed".to_owned()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Revokes every token whose `meta.circle_ha_create` is `marker` (lists
/// the accessors: needs a root or sudo admin token).
async fn revoke_marked(
    client: &Client,
    admin_token: &SecretString,
    marker: &str,
) -> Result<(), Error> {
    let listed = client
        .list("auth/token/accessors", Some(admin_token))
        .await?;
    let accessors: Vec<String> = listed["data"]["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for accessor in accessors {
        let Ok(body) = client
            .put(
                "auth/token/lookup-accessor",
                Some(admin_token),
                &json!({ "accessor": accessor }),
            )
            .await
        else {
            continue;
        };
        if body["data"]["meta"]["circle_ha_create"].as_str() == Some(marker) {
            client
                .put(
                    "auth/token/revoke-accessor",
                    Some(admin_token),
                    &json!({ "accessor": accessor }),
                )
                .await?;
        }
    }
    Ok(())
}

/// The token in `token_file`, if the file exists and is not empty.
pub fn read_token_file(token_file: &Path) -> Result<Option<SecretString>, Error> {
    match std::fs::read_to_string(token_file) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(SecretString::from(text.trim().to_owned()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::File {
            action: "cannot read",
            path: token_file.to_owned(),
            source,
        }),
    }
}

/// The whole `vault-transit configure` in one call: reads the app token
/// and the pending-work record next to `token_file`, observes, plans,
/// refuses a plan with blockers (nothing changed), and applies it unless
/// `dry_run`. Returns the plan and, when applied, what apply did (whether
/// a kept token was renewed).
pub async fn run(
    client: &Client,
    admin_token: &SecretString,
    spec: &ConfigureSpec,
    token_file: &Path,
    dry_run: bool,
) -> Result<(Plan, Option<Applied>), Error> {
    let app_token = read_token_file(token_file)?;
    let pending = Pending::read(token_file)?;
    let observed = observe(client, admin_token, spec, app_token.as_ref(), pending).await?;
    let plan = plan(spec, &observed);
    if !plan.blockers.is_empty() {
        return Err(Error::Invalid(plan.blockers.join("; ")));
    }
    if dry_run {
        return Ok((plan, None));
    }
    let applied = apply(
        client,
        admin_token,
        spec,
        &plan,
        app_token.as_ref(),
        token_file,
    )
    .await?;
    Ok((plan, Some(applied)))
}

/// Seconds from a JSON number or a duration string.
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_duration_seconds(s),
        _ => None,
    }
}

/// Parses `3600`, `3600s`, `60m`, `1h`, `1h30m`, `7d` into seconds.
pub fn parse_duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if number.is_empty() { Some(total) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_vault() {
        assert_eq!(parse_duration_seconds("1h"), Some(3600));
        assert_eq!(parse_duration_seconds("1h30m"), Some(5400));
        assert_eq!(parse_duration_seconds("768h"), Some(2_764_800));
        assert_eq!(parse_duration_seconds("3600"), Some(3600));
        assert_eq!(parse_duration_seconds("1x"), None);
        assert_eq!(parse_duration_seconds("h"), None);
    }

    #[test]
    fn a_valid_setup_plans_nothing_and_a_child_token_is_replaced() {
        let spec = ConfigureSpec::new("transit", "1h");
        let mut observed = Observed {
            address: "https://vault:8200".to_owned(),
            mount: MountState::Transit,
            policy: Some(spec.policy_rules()),
            token: TokenState::Valid {
                accessor: "a".to_owned(),
                ttl: 3000,
            },
            pending: Pending::default(),
        };
        assert_eq!(plan(&spec, &observed).steps, vec![]);
        // What an interrupted run left is finished.
        observed.pending = Pending {
            revoke: vec!["old".to_owned()],
            creating: Some("m1".to_owned()),
        };
        assert_eq!(
            plan(&spec, &observed).steps,
            vec![
                Step::RevokeOrphans {
                    marker: "m1".to_owned()
                },
                Step::RevokeToken {
                    accessor: "old".to_owned()
                }
            ]
        );
        observed.pending = Pending::default();

        let lookup = json!({"accessor": "acc", "policies": ["root"], "period": 0, "orphan": false, "renewable": true});
        observed.token = token_state(&lookup, &spec);
        let steps = plan(&spec, &observed).steps;
        assert_eq!(steps.len(), 2);
        let Step::CreateToken { reason, .. } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert!(reason.contains("not an orphan") && reason.contains("[\"root\"]"));
        assert_eq!(
            steps[1],
            Step::RevokeToken {
                accessor: "acc".to_owned()
            }
        );

        observed.mount = MountState::Other("kv".to_owned());
        assert!(plan(&spec, &observed).blockers[0].contains("mounted as a kv engine"));
    }
}
