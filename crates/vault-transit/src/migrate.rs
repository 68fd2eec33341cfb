//! `vault-transit migrate restore`: the old Vault 0.7's transit keys
//! ([`crate::legacy`]) into the new Vault's transit mount, through
//! `transit/restore/<name>`.
//!
//! Whether the target already holds a key is decided by what it does, not
//! by its metadata: a random probe is encrypted here with each version of
//! the old key and the target is asked to decrypt it (batch). Every
//! version decrypts to the probe: the same key (nothing to do). The key is
//! there but some version does not: it differs, and is replaced only with
//! `force`. So a second run reports `changed: 0`, and a run killed
//! half-way finishes on the next.

use std::fmt;

use base64::Engine as _;
use ha_plan::{Change, Refused, Report};
use ring::aead;
use ring::rand::SecureRandom as _;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::legacy::TransitKey;
use crate::{Client, Error};

const TOOL: &str = "vault-transit";

/// What to migrate and where.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct MigrateSpec {
    /// The target's transit mount (`transit`), which must exist
    /// (`vault-transit configure` makes it).
    pub mount: String,
    /// Only these keys (empty: every transit key of the old Vault).
    pub keys: Vec<String>,
    /// Replace a target key that exists and differs.
    pub force: bool,
    /// Plan only.
    pub dry_run: bool,
}

impl MigrateSpec {
    /// Every key into `mount`, no force, applied.
    pub fn new(mount: &str) -> MigrateSpec {
        MigrateSpec {
            mount: mount.trim_matches('/').to_owned(),
            ..MigrateSpec::default()
        }
    }
}

/// One change migrate makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `transit/restore/<name>` with the old key's backup.
    RestoreKey {
        /// The target mount.
        mount: String,
        /// The key.
        name: String,
        /// Whether a different key of that name is replaced (`force`).
        replace: bool,
        /// The versions restored.
        latest_version: u32,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::RestoreKey {
                mount,
                name,
                replace,
                latest_version,
            } => write!(
                f,
                "restore transit key {name} (versions 1–{latest_version}) into {mount}/{}",
                if *replace {
                    " — replacing the different key there (forced)"
                } else {
                    ""
                }
            ),
        }
    }
}

impl Change for Step {
    fn kind(&self) -> &'static str {
        "restore-transit-key"
    }
    fn target(&self) -> String {
        match self {
            Step::RestoreKey { mount, name, .. } => format!("transit key {mount}/{name}"),
        }
    }
}

/// What the target holds under a key's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Nothing.
    Absent,
    /// The same key: every version decrypts what the old one encrypts.
    Same,
    /// A different key (why).
    Differs(String),
}

/// What [`migrate`] did: a report, or a refusal that touched nothing.
#[derive(Clone, Debug)]
pub enum Migrated {
    /// The keys restored (or, dry, to restore); none when all were there.
    Done(Report),
    /// A target key differs and `force` was not given: nothing restored.
    Refused(Refused),
}

/// One probe, encrypted locally as Vault 0.7's `Policy.Encrypt` would with
/// `key`'s `version` (`helper/keysutil/policy.go`): the batch item that asks
/// the target to decrypt it — with the context a derived key needs, and
/// the nonce a convergent version-1 key keeps out of its ciphertext.
fn probe_item(key: &TransitKey, version: u32, plain: &[u8]) -> Result<Option<Value>, Error> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let fail = || Error::Invalid("the old key cannot encrypt a probe (not an AES key)".to_owned());
    let Some(raw) = key.version_key(version) else {
        return Ok(None);
    };
    let random = |n: usize| -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; n];
        ring::rand::SystemRandom::new()
            .fill(&mut out)
            .map_err(|_| Error::Invalid("no randomness for the probe".to_owned()))?;
        Ok(out)
    };
    let context = match key.info.kdf {
        Some(_) => Some(random(16)?),
        None => None,
    };
    let derived = match (key.info.kdf, &context) {
        (Some(kdf), Some(context)) => Some(kdf.derive(raw, context)),
        _ => None,
    };
    let material: &[u8] = derived.as_deref().map_or(raw, |k| &k[..]);
    let algorithm = match material.len() {
        32 => &aead::AES_256_GCM,
        16 => &aead::AES_128_GCM,
        _ => return Err(fail()),
    };
    let sealing =
        aead::LessSafeKey::new(aead::UnboundKey::new(algorithm, material).map_err(|_| fail())?);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&random(12)?);
    let mut body = plain.to_vec();
    sealing
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut body,
        )
        .map_err(|_| fail())?;
    // Convergent version 1 leaves the nonce out of the ciphertext: the
    // caller gives it again to decrypt.
    let detached = key.info.convergent_encryption && key.info.convergent_version == 1;
    let mut out = if detached { Vec::new() } else { nonce.to_vec() };
    out.extend_from_slice(&body);
    let mut item = json!({ "ciphertext": format!("vault:v{version}:{}", b64.encode(out)) });
    if let Some(context) = &context {
        item["context"] = b64.encode(context).into();
    }
    if detached {
        item["nonce"] = b64.encode(nonce).into();
    }
    Ok(Some(item))
}

/// What the target at `mount` holds under `key`'s name, with `token`.
pub async fn key_state(
    client: &Client,
    token: &SecretString,
    mount: &str,
    key: &TransitKey,
) -> Result<KeyState, Error> {
    let name = &key.info.name;
    let info = match client
        .get(&format!("{mount}/keys/{name}"), Some(token))
        .await
    {
        Ok(body) => body,
        Err(e) if e.status() == Some(404) => return Ok(KeyState::Absent),
        Err(e) => return Err(e),
    };
    let latest = info["data"]["latest_version"].as_u64().unwrap_or(0);
    if latest < u64::from(key.info.latest_version) {
        return Ok(KeyState::Differs(format!(
            "it has versions up to {latest}, the old Vault's up to {}",
            key.info.latest_version
        )));
    }
    let mut probe = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut probe)
        .map_err(|_| Error::Invalid("no randomness for the probe".to_owned()))?;
    let mut versions = Vec::new();
    let mut batch = Vec::new();
    for version in key
        .info
        .versions
        .iter()
        .copied()
        .filter(|v| *v >= key.info.min_decryption_version.max(1))
    {
        if let Some(item) = probe_item(key, version, &probe)? {
            versions.push(version);
            batch.push(item);
        }
    }
    let path = format!("{mount}/decrypt/{name}");
    let answer = client
        .put(&path, Some(token), &json!({ "batch_input": batch }))
        .await?;
    let expected = base64::engine::general_purpose::STANDARD.encode(probe);
    let results = answer["data"]["batch_results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failing: Vec<String> = versions
        .iter()
        .enumerate()
        .filter(|(i, _)| results.get(*i).and_then(|r| r["plaintext"].as_str()) != Some(&expected))
        .map(|(_, v)| format!("v{v}"))
        .collect();
    Ok(if failing.is_empty() && !versions.is_empty() {
        KeyState::Same
    } else {
        KeyState::Differs(format!(
            "version(s) {} do not decrypt what the old key encrypts",
            failing.join(", ")
        ))
    })
}

/// Restores `keys` (the old Vault's, from [`crate::legacy::Unsealed::transit_keys`])
/// into the target's transit mount with the admin `token`: each key the
/// target lacks; one that differs only with `spec.force` (else every such
/// key is named and nothing is restored). After each restore the target
/// must decrypt the probe with every version.
pub async fn migrate(
    client: &Client,
    token: &SecretString,
    keys: &[TransitKey],
    spec: &MigrateSpec,
) -> Result<Migrated, Error> {
    let mount = spec.mount.trim_matches('/');
    let mounts = client.get("sys/mounts", Some(token)).await?;
    let mounted = mounts
        .get(format!("{mount}/"))
        .or_else(|| mounts["data"].get(format!("{mount}/")))
        .and_then(|m| m["type"].as_str())
        .map(str::to_owned);
    if mounted.as_deref() != Some("transit") {
        return Err(Error::Invalid(format!(
            "{} has no transit mount at {mount}/: run `vault-transit configure` first",
            client.address()
        )));
    }
    for wanted in &spec.keys {
        if !keys.iter().any(|k| &k.info.name == wanted) {
            return Err(Error::Invalid(format!(
                "the old Vault has no transit key named {wanted:?} (it has: {})",
                keys.iter()
                    .map(|k| k.info.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let selected: Vec<&TransitKey> = keys
        .iter()
        .filter(|k| spec.keys.is_empty() || spec.keys.contains(&k.info.name))
        .collect();
    let mut steps = Vec::new();
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    for key in &selected {
        if key.info.kind != "aes256-gcm96" {
            warnings.push(format!(
                "{} is a {} key: restored as it is, but the contexts service uses aes256-gcm96",
                key.info.name, key.info.kind
            ));
        }
        let state = key_state(client, token, mount, key).await?;
        let step = |replace| Step::RestoreKey {
            mount: mount.to_owned(),
            name: key.info.name.clone(),
            replace,
            latest_version: key.info.latest_version,
        };
        match state {
            KeyState::Same => {}
            KeyState::Absent => steps.push(step(false)),
            KeyState::Differs(_) if spec.force => steps.push(step(true)),
            KeyState::Differs(why) => refusals.push(format!(
                "{mount}/keys/{} on {} is not the old Vault's key: {why}; forcing replaces it \
                 (whatever it encrypted is then lost)",
                key.info.name,
                client.address()
            )),
        }
    }
    if !refusals.is_empty() {
        return Ok(Migrated::Refused(Refused::new(TOOL, refusals, warnings)));
    }
    if !spec.dry_run {
        for step in &steps {
            let Step::RestoreKey { name, replace, .. } = step;
            let Some(key) = selected.iter().find(|k| &k.info.name == name) else {
                continue;
            };
            let body: Value = json!({ "backup": key.backup(), "force": replace });
            if let Err(e) = client
                .put(&format!("{mount}/restore/{name}"), Some(token), &body)
                .await
            {
                // Refused because the key is there already (OpenBao says so
                // with a 500, "key … already exists"): put there by a run
                // killed after it sent its restore, or by another run at the
                // same time. The same key is what was wanted.
                let arrived = matches!(
                    key_state(client, token, mount, key).await,
                    Ok(KeyState::Same)
                );
                if !arrived {
                    return Err(e);
                }
            }
            match key_state(client, token, mount, key).await? {
                KeyState::Same => {}
                other => {
                    return Err(Error::Invalid(format!(
                        "{mount}/keys/{name} was restored but does not decrypt what the old key \
                         encrypts ({other:?}): the target may not accept Vault 0.7's key format"
                    )));
                }
            }
        }
    }
    Ok(Migrated::Done(Report::from_changes(
        TOOL,
        spec.dry_run,
        &steps,
        warnings,
    )))
}
