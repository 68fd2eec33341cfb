//! `import-settings`: an existing `settings.conf` (`replicated app <id>
//! settings`) turned into the `[services]` section of `ha.toml`, so an
//! operator starts from what runs today. Secret values are never copied:
//! they become `env:` references to fill in.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::Error;

/// Settings keys that `[services]` has its own fields for.
const KNOWN: [&str; 11] = [
    "hostname",
    "allow_cluster",
    "secret_passphrase",
    "ghe_type",
    "ghe_client_id",
    "ghe_client_secret",
    "storage_backend",
    "aws_region",
    "s3_bucket",
    "sqs_queue_url",
    "license_agreement",
];

/// Keys with `url` in their name that CircleCI's settings use for
/// addresses without credentials.
const PUBLIC_URLS: [&str; 1] = ["sqs_queue_url"];

/// Whether a settings key probably holds a secret.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    // Erring toward secret costs an env: reference; erring the other way
    // copies a password into a file that ends up in version control.
    [
        "secret",
        "pass",
        "pwd",
        "token",
        "key",
        "credential",
        "private",
        "auth",
        "cookie",
        "salt",
        "signing",
        "hmac",
        "cert",
        "dsn",
        "uri",
        "url",
    ]
    .iter()
    .any(|word| key.contains(word))
        && !key.ends_with("_id")
        && !PUBLIC_URLS.contains(&key.as_str())
}

/// Whether a value carries credentials whatever its key: a URL with a
/// password in its user info (`http://user:pw@proxy:3128`).
fn holds_credentials(value: &str) -> bool {
    value.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

/// An environment variable name for a secret settings key.
fn env_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    name.insert_str(0, "CIRCLE_SETTING_");
    name
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut res = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => res.push_str("\\\""),
            '\\' => res.push_str("\\\\"),
            '\n' => res.push_str("\\n"),
            '\r' => res.push_str("\\r"),
            '\t' => res.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(res, "\\u{:04X}", u32::from(c));
            }
            c => res.push(c),
        }
    }
    res.push('"');
    res
}

/// Reads `settings.conf` text (`{"key": {"value": "…"}, …}`) and returns a
/// `[services]` section, plus the names of the environment variables the
/// operator must set for the secrets that were replaced by references.
pub fn import_settings(json: &str, what: &str) -> Result<(String, Vec<String>), Error> {
    let parsed: Value = serde_json::from_str(json).map_err(|e| Error::Import {
        what: what.to_owned(),
        detail: format!("not JSON: {e}"),
    })?;
    let Some(object) = parsed.as_object() else {
        return Err(Error::Import {
            what: what.to_owned(),
            detail: "not a JSON object of {\"key\": {\"value\": …}}".to_owned(),
        });
    };
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    for (key, entry) in object {
        let value = match entry.get("value").unwrap_or(entry) {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        settings.insert(key.clone(), value);
    }
    let get = |key: &str| settings.get(key).cloned().unwrap_or_default();
    let mut env_vars = vec![
        "REPLICATED_PASSWORD".to_owned(),
        "CIRCLE_SECRET_PASSPHRASE".to_owned(),
        "GITHUB_CLIENT_SECRET".to_owned(),
    ];
    let mut out = String::from("[services]\n");
    let _ = writeln!(out, "hostname = {}", toml_string(&get("hostname")));
    let _ = writeln!(out, "aws_region = {}", toml_string(&get("aws_region")));
    out.push_str("s3_bucket = \"\"                   # the bucket for this bundle (not the artifacts bucket)\n");
    out.push_str("launch_template = \"\"             # the Services machine's launch template\n");
    out.push_str("license_file = \"license.rli\"\n");
    out.push_str("replicated_password = \"env:REPLICATED_PASSWORD\"\n");
    out.push_str("secret_passphrase = \"env:CIRCLE_SECRET_PASSPHRASE\"   # was in settings.conf\n");
    let _ = writeln!(
        out,
        "github = {{ type = {}, client_id = {}, client_secret = \"env:GITHUB_CLIENT_SECRET\" }}",
        toml_string(&get("ghe_type")),
        toml_string(&get("ghe_client_id"))
    );
    let _ = writeln!(
        out,
        "storage = {{ backend = {}, bucket = {}, sqs_queue_url = {} }}",
        toml_string(&get("storage_backend")),
        toml_string(&get("s3_bucket")),
        toml_string(&get("sqs_queue_url"))
    );
    let extras: Vec<(&String, &String)> = settings
        .iter()
        .filter(|(key, _)| !KNOWN.contains(&key.as_str()))
        .collect();
    if !extras.is_empty() {
        out.push_str("\n[services.extra_settings]\n");
        for (key, value) in extras {
            if (looks_secret(key) || holds_credentials(value)) && !value.is_empty() {
                let name = env_name(key);
                let _ = writeln!(out, "{} = \"env:{name}\"", toml_string(key));
                env_vars.push(name);
            } else {
                let _ = writeln!(out, "{} = {}", toml_string(key), toml_string(value));
            }
        }
    }
    Ok((out, env_vars))
}

#[cfg(test)]
mod tests {
    use super::import_settings;

    #[test]
    fn secrets_become_references_and_the_rest_is_copied() {
        let json = r#"{
          "hostname": {"value": "circleci.example.com"},
          "secret_passphrase": {"value": "do-not-copy-1"},
          "ghe_type": {"value": "github_type_public"},
          "ghe_client_id": {"value": "abc123"},
          "ghe_client_secret": {"value": "do-not-copy-2"},
          "aws_region": {"value": "us-east-1"},
          "s3_bucket": {"value": "artifacts"},
          "sqs_queue_url": {"value": "https://sqs/q"},
          "storage_backend": {"value": "storage_backend_s3"},
          "aws_secret_access_key": {"value": "do-not-copy-3"},
          "aws_access_key_id": {"value": "AKIA1"},
          "https_proxy": {"value": "http://proxy:3128"}
        }"#;
        let (toml, env) = import_settings(json, "settings.conf").unwrap();
        assert!(!toml.contains("do-not-copy"), "{toml}");
        assert!(toml.contains("hostname = \"circleci.example.com\""));
        assert!(
            toml.contains(
                "\"aws_secret_access_key\" = \"env:CIRCLE_SETTING_AWS_SECRET_ACCESS_KEY\""
            )
        );
        assert!(toml.contains("\"aws_access_key_id\" = \"AKIA1\""));
        assert!(toml.contains("\"https_proxy\" = \"http://proxy:3128\""));
        assert!(env.contains(&"CIRCLE_SETTING_AWS_SECRET_ACCESS_KEY".to_owned()));
    }

    #[test]
    fn secret_looking_keys_and_credential_urls_are_never_copied() {
        let json = r#"{
          "hostname": {"value": "circleci.example.com"},
          "smtp_pass": {"value": "do-not-copy-1"},
          "db_pwd": {"value": "do-not-copy-2"},
          "ldap_auth_bind": {"value": "do-not-copy-3"},
          "session_cookie": {"value": "do-not-copy-4"},
          "http_proxy": {"value": "http://user:do-not-copy-5@proxy:3128"},
          "sqs_queue_url": {"value": "https://sqs.us-east-1.amazonaws.com/1/q"}
        }"#;
        let (toml, env) = import_settings(json, "settings.conf").unwrap();
        assert!(!toml.contains("do-not-copy"), "{toml}");
        assert_eq!(
            env.iter()
                .filter(|e| e.starts_with("CIRCLE_SETTING_"))
                .count(),
            5,
            "{env:?}"
        );
        assert!(
            toml.contains("https://sqs.us-east-1.amazonaws.com/1/q"),
            "{toml}"
        );
    }
}
