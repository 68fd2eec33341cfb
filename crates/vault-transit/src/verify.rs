//! Checking the app token the way the contexts service will use it, and
//! that it can do nothing more.

use base64::Engine as _;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::configure::parse_duration_seconds;
use crate::{Client, ConfigureSpec, Error};

/// The transit key `verify` creates (by encrypting with it) and uses.
pub const PROBE_KEY: &str = "circle-ha-verify";

/// One check and its result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// Every check [`verify`] ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// In order.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// Whether every check passed.
    pub fn is_healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks as `vault-transit verify` shows them for the server at
    /// `address`: JSON `{healthy, address, checks: [{name, ok, detail}]}`
    /// and one line per check.
    pub fn to_findings(&self, tool: &str, address: &str) -> TokenFindings {
        TokenFindings {
            healthy: self.is_healthy(),
            address: address.to_owned(),
            checks: self.checks.clone(),
            tool: tool.to_owned(),
        }
    }
}

/// `vault-transit verify`: whether the app token works the way the
/// contexts service uses it, and can do nothing more.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct TokenFindings {
    /// Whether every check passed.
    pub healthy: bool,
    /// The server checked.
    pub address: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The tool named in the summary line.
    #[serde(skip)]
    pub tool: String,
}

impl ha_plan::Document for TokenFindings {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let mark = if check.ok { "ok" } else { "FAIL" };
            text.push_str(&format!("{mark:<5} {:<32} {}\n", check.name, check.detail));
        }
        text.push_str(&format!(
            "{}: app token {}\n",
            self.tool,
            if self.healthy {
                "works and is limited to the contexts policy"
            } else {
                "has problems"
            }
        ));
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// With the app token: `lookup-self` shows a periodic, renewable orphan
/// token with exactly the contexts policy; encrypting and decrypting with a
/// probe key round-trips; reading and managing that key works; and the
/// token is refused what the policy does not grant (the mount table,
/// policies, other mounts).
pub async fn verify(
    client: &Client,
    app_token: &SecretString,
    spec: &ConfigureSpec,
) -> VerifyReport {
    let mut checks = Vec::new();
    let mut check = |name: &str, result: Result<String, String>| {
        let (ok, detail) = match result {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        checks.push(Check {
            name: name.to_owned(),
            ok,
            detail,
        });
    };

    check("token", token_check(client, app_token, spec).await);
    check("encrypt/decrypt", round_trip(client, app_token, spec).await);
    check(
        "read key",
        client
            .get(&format!("{}/keys/{PROBE_KEY}", spec.mount), Some(app_token))
            .await
            .map(|body| {
                format!(
                    "key {PROBE_KEY} is version {}",
                    body["data"]["latest_version"]
                )
            })
            .map_err(|e| e.to_string()),
    );
    let other_mount = if spec.mount == "secret" {
        "kv"
    } else {
        "secret"
    };
    for (name, method, path) in [
        ("refused: read sys/mounts", "GET", "sys/mounts".to_owned()),
        (
            "refused: write a policy",
            "PUT",
            format!("sys/policy/{}", spec.policy_name),
        ),
        (
            "refused: write to another mount",
            "PUT",
            format!("{other_mount}/circle-ha-probe"),
        ),
        (
            "refused: create a token",
            "PUT",
            "auth/token/create".to_owned(),
        ),
    ] {
        let result = match method {
            "GET" => client.get(&path, Some(app_token)).await.map(|_| ()),
            _ => client
                .put(
                    &path,
                    Some(app_token),
                    &json!({ "policy": "", "value": "x" }),
                )
                .await
                .map(|_| ()),
        };
        check(
            name,
            match result {
                Err(Error::Api { status: 403, .. }) => Ok(format!("{method} {path}: 403")),
                Ok(()) => Err(format!(
                    "{method} {path} succeeded: the token has more power than the policy grants"
                )),
                Err(e) => Err(format!("{method} {path}: expected 403, got: {e}")),
            },
        );
    }
    VerifyReport { checks }
}

async fn token_check(
    client: &Client,
    token: &SecretString,
    spec: &ConfigureSpec,
) -> Result<String, String> {
    let body = client
        .get("auth/token/lookup-self", Some(token))
        .await
        .map_err(|e| e.to_string())?;
    let data = &body["data"];
    let mut problems = Vec::new();
    let policies: Vec<&str> = data["policies"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if policies != [spec.policy_name.as_str()] {
        problems.push(format!(
            "policies {policies:?}, expected only {:?}",
            spec.policy_name
        ));
    }
    let period = data["period"].as_u64();
    if period.is_none_or(|p| p == 0) {
        problems.push("not periodic".to_owned());
    } else if period != parse_duration_seconds(&spec.period) {
        problems.push(format!(
            "period {} s, expected {}",
            period.unwrap_or(0),
            spec.period
        ));
    }
    if data["renewable"].as_bool() != Some(true) {
        problems.push("not renewable".to_owned());
    }
    if data["orphan"].as_bool() != Some(true) {
        problems.push("not an orphan".to_owned());
    }
    if problems.is_empty() {
        Ok(format!(
            "periodic ({} s), renewable, orphan, policy {}; {} s left",
            period.unwrap_or(0),
            spec.policy_name,
            data["ttl"]
        ))
    } else {
        Err(problems.join("; "))
    }
}

async fn round_trip(
    client: &Client,
    token: &SecretString,
    spec: &ConfigureSpec,
) -> Result<String, String> {
    let plaintext = "circle-ha verify: contexts round trip";
    let body = client
        .put(
            &format!("{}/encrypt/{PROBE_KEY}", spec.mount),
            Some(token),
            &json!({ "plaintext": base64::engine::general_purpose::STANDARD.encode(plaintext.as_bytes()) }),
        )
        .await
        .map_err(|e| e.to_string())?;
    let ciphertext = body["data"]["ciphertext"]
        .as_str()
        .ok_or("encrypt returned no ciphertext")?
        .to_owned();
    let body = client
        .put(
            &format!("{}/decrypt/{PROBE_KEY}", spec.mount),
            Some(token),
            &json!({ "ciphertext": ciphertext }),
        )
        .await
        .map_err(|e| e.to_string())?;
    let decrypted = body["data"]["plaintext"].as_str().unwrap_or_default();
    if decrypted == base64::engine::general_purpose::STANDARD.encode(plaintext.as_bytes()) {
        Ok(format!(
            "{} bytes encrypted to {} and decrypted back",
            plaintext.len(),
            ciphertext.split(':').take(2).collect::<Vec<_>>().join(":")
        ))
    } else {
        Err("decrypting the ciphertext did not give the plaintext back".to_owned())
    }
}
