//! `vault-transit migrate verify`, the contexts cutover gate: every
//! ciphertext the contexts service stored (`vault:v<N>:…`) decrypts on the
//! new Vault, with the contexts service's own token. Plaintexts are
//! dropped as they arrive: only counts and versions are kept.

use std::collections::BTreeMap;

use ha_plan::Document;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use crate::{Client, Error};

/// How many ciphertexts one batch decrypt carries.
const BATCH: usize = 200;

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ContextsFindings {
    /// Every ciphertext decrypts, and the key's versions cover them.
    pub healthy: bool,
    /// The key, `mount/name`.
    pub key: String,
    /// Ciphertexts checked.
    pub ciphertexts: usize,
    /// How many decrypted.
    pub decrypted: usize,
    /// How many did not.
    pub failed: usize,
    /// Ciphertexts per key version (`"1": 120, "2": 7`).
    pub versions: BTreeMap<String, usize>,
    /// The target key's newest version.
    pub latest_version: u64,
    /// The oldest version it decrypts.
    pub min_decryption_version: u64,
    /// Where the ciphertexts were found (`schema.table.column`).
    pub columns: Vec<String>,
    /// Everything wrong.
    pub problems: Vec<String>,
    /// Things to know.
    pub warnings: Vec<String>,
}

impl Document for ContextsFindings {
    fn to_text(&self) -> String {
        let mut text = ha_plan::notes_text(&self.warnings, "problem", &self.problems);
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(v, n)| format!("v{v}: {n}"))
            .collect();
        text.push_str(&format!(
            "vault-transit: {} of {} context ciphertext(s) decrypt with {} ({}; the key has \
             versions {}–{}){}\n",
            self.decrypted,
            self.ciphertexts,
            self.key,
            if versions.is_empty() {
                "none found".to_owned()
            } else {
                versions.join(", ")
            },
            self.min_decryption_version,
            self.latest_version,
            if self.healthy {
                ""
            } else {
                ": NOT READY for the cutover"
            }
        ));
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// The version of a `vault:v<N>:…` ciphertext.
pub fn version_of(ciphertext: &str) -> Option<u64> {
    let rest = ciphertext.strip_prefix("vault:v")?;
    let (digits, _) = rest.split_once(':')?;
    digits.parse().ok()
}

/// Decrypts every one of `ciphertexts` with `mount/keys/key` on the target
/// using `token` (the contexts service's), counting what decrypts; checks
/// that the key's `min_decryption_version`–`latest_version` cover every
/// version present. `columns` says where they were found (for the report).
pub async fn verify(
    client: &Client,
    token: &SecretString,
    mount: &str,
    key: &str,
    ciphertexts: &[String],
    columns: Vec<String>,
) -> Result<ContextsFindings, Error> {
    let mount = mount.trim_matches('/');
    let info = client
        .get(&format!("{mount}/keys/{key}"), Some(token))
        .await?;
    let latest = info["data"]["latest_version"].as_u64().unwrap_or(0);
    let min = info["data"]["min_decryption_version"].as_u64().unwrap_or(1);
    let mut versions: BTreeMap<u64, usize> = BTreeMap::new();
    for c in ciphertexts {
        *versions.entry(version_of(c).unwrap_or(0)).or_default() += 1;
    }
    let mut failed = 0;
    let mut problems = Vec::new();
    let derived = info["data"]["derived"].as_bool() == Some(true);
    let path = format!("{mount}/decrypt/{key}");
    if derived {
        problems.push(format!(
            "{mount}/{key} is a derived key: each ciphertext decrypts only with the context it \
             was encrypted with, which is not stored beside it, so none was tried (check them \
             from the contexts service)"
        ));
    }
    for batch in ciphertexts.chunks(BATCH).filter(|_| !derived) {
        let input: Vec<_> = batch.iter().map(|c| json!({ "ciphertext": c })).collect();
        match client
            .put(&path, Some(token), &json!({ "batch_input": input }))
            .await
        {
            Ok(answer) => {
                let results = answer["data"]["batch_results"].as_array();
                failed += (0..batch.len())
                    .filter(|i| {
                        results.and_then(|r| r.get(*i)).is_none_or(|r| {
                            r.get("plaintext").is_none()
                                || r.get("error").is_some_and(|e| !e.is_null() && e != "")
                        })
                    })
                    .count();
            }
            // A batch with a failing item may be refused whole: one by one.
            Err(e) if e.status() == Some(400) => {
                for c in batch {
                    if client
                        .put(&path, Some(token), &json!({ "ciphertext": c }))
                        .await
                        .is_err()
                    {
                        failed += 1;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    if failed > 0 {
        problems.push(format!(
            "{failed} of {} ciphertext(s) do not decrypt with {mount}/{key}: the key is not the \
             old Vault's, or lacks their versions (vault-transit migrate restore)",
            ciphertexts.len()
        ));
    }
    let present: Vec<u64> = versions.keys().copied().collect();
    if let (Some(lowest), Some(highest)) = (present.first(), present.last()) {
        if *highest > latest {
            problems.push(format!(
                "ciphertexts of version {highest} exist and the key's latest version is {latest}"
            ));
        }
        if *lowest < min {
            problems.push(format!(
                "ciphertexts of version {lowest} exist and the key decrypts from version {min} on"
            ));
        }
    }
    let mut warnings = Vec::new();
    if ciphertexts.is_empty() {
        warnings.push(
            "no `vault:v<N>:` value found in the contexts database: nothing to check (an \
             installation without context secrets has none)"
                .to_owned(),
        );
    }
    Ok(ContextsFindings {
        healthy: problems.is_empty(),
        key: format!("{mount}/{key}"),
        ciphertexts: ciphertexts.len(),
        decrypted: if derived {
            0
        } else {
            ciphertexts.len() - failed
        },
        failed,
        versions: versions
            .into_iter()
            .map(|(v, n)| (v.to_string(), n))
            .collect(),
        latest_version: latest,
        min_decryption_version: min,
        columns,
        problems,
        warnings,
    })
}
