//! PostgreSQL and Vault, checked with the credentials the Services
//! machine's files hold.

use std::collections::BTreeMap;

use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::files::{PgEnv, VaultEnv};
use crate::{Ca, Cause, Options, Report};

fn classify_pg(problem: &str) -> Cause {
    let text = problem.to_ascii_lowercase();
    if text.contains("password authentication failed") || text.contains("authentication") {
        Cause::Credentials
    } else if text.contains("certificate") || text.contains("tls") || text.contains("ssl") {
        Cause::Tls
    } else if text.starts_with("cannot connect")
        && !text.contains("does not exist")
        && !text.contains("permission denied")
    {
        Cause::Network
    } else {
        Cause::DatabaseConfiguration
    }
}

/// Each of the eight databases as the app role, over verified TLS when a CA
/// is installed: it connects, has its extensions, lets the role create
/// objects. The same problem in several databases is one finding.
pub(crate) async fn check_postgres(
    pg: &PgEnv,
    ca: Option<&Ca>,
    options: &Options,
    report: &mut Report,
) {
    let target = format!("{}:{}", pg.host, pg.port);
    report.check("postgresql", &target);
    // The password goes only to a server whose certificate was verified.
    let Some(ca) = ca else {
        report.find(
            Cause::Tls,
            "postgresql",
            &target,
            "not checked: with no CA certificate to verify the server against, doctor does not \
             send the password (a server posing as PostgreSQL would receive it); install the CA \
             (/usr/local/share/ca-certificates, update-ca-certificates)",
        );
        return;
    };
    let server = pg_provision::Server {
        host: pg.host.clone(),
        hostaddr: None,
        port: pg.port,
        sslmode: pg_provision::SslMode::VerifyFull,
        ca: Some((ca.pem.clone(), ca.path.display().to_string())),
        connect_timeout: options.step_timeout,
    };
    let login = pg_provision::Login {
        user: pg.user.clone(),
        password: pg.password.clone(),
    };
    let verification =
        pg_provision::verify(&server, &login, &pg_provision::default_databases()).await;
    let mut grouped: BTreeMap<(Cause, String), Vec<String>> = BTreeMap::new();
    for database in &verification.databases {
        for problem in &database.problems {
            let problem = problem.replace(pg.password.expose_secret(), "<password>");
            grouped
                .entry((classify_pg(&problem), problem))
                .or_default()
                .push(database.database.clone());
        }
    }
    for ((cause, problem), databases) in grouped {
        let next = match cause {
            Cause::Credentials => "; check POSTGRES_USER/POSTGRES_PASSWORD against the app role",
            Cause::DatabaseConfiguration => "; run pg-provision apply",
            _ => "",
        };
        report.find(
            cause,
            "postgresql",
            &format!("{target} {}", databases.join(",")),
            format!("{problem}{next}"),
        );
    }
}

/// Vault: reachable over TLS, unsealed, the token valid, periodic and
/// renewable, encrypt and decrypt on the transit mount.
pub(crate) async fn check_vault(
    vault: &VaultEnv,
    ca: Option<&Ca>,
    options: &Options,
    report: &mut Report,
) {
    let _ = options;
    report.check("vault", &vault.address);
    // The token goes only to a server whose certificate was verified.
    if vault.address.starts_with("http://") {
        report.find(
            Cause::Tls,
            "vault",
            &vault.address,
            "VAULT__SCHEME=http: the contexts service sends its token and every context secret \
             in plain text; serve Vault over TLS and set VAULT__SCHEME=https (doctor does not \
             send the token over plain HTTP, so the token was not checked)",
        );
        return;
    }
    let Some(ca) = ca else {
        report.find(
            Cause::Tls,
            "vault",
            &vault.address,
            "not checked: with no CA certificate to verify the server against, doctor does not \
             send the token (a server posing as Vault would receive it); install the CA",
        );
        return;
    };
    let trust = vault_transit::Trust::Ca {
        pem: ca.pem.clone(),
        path: ca.path.display().to_string(),
    };
    let client = match vault_transit::Client::new(&vault.address, &trust) {
        Ok(client) => client,
        Err(e) => {
            report.find(Cause::Tls, "vault", &vault.address, e.to_string());
            return;
        }
    };
    match vault_transit::seal_status(&client).await {
        Ok(status) if status.sealed => {
            report.find(
                Cause::DatabaseConfiguration,
                "vault",
                &vault.address,
                "Vault is sealed: the contexts service cannot encrypt or decrypt (vault-transit \
                 unseal)",
            );
            return;
        }
        Ok(_) => {}
        Err(e) => {
            let text = e.to_string();
            let cause = if text.to_ascii_lowercase().contains("certificate")
                || text.to_ascii_lowercase().contains("tls")
            {
                Cause::Tls
            } else {
                Cause::Network
            };
            report.find(cause, "vault", &vault.address, text);
            return;
        }
    }
    let token = &vault.token;
    match client.get("auth/token/lookup-self", Some(token)).await {
        Ok(body) => {
            let data = &body["data"];
            if data["period"].as_u64().is_none_or(|p| p == 0) || data["renewable"] != json!(true) {
                report.find(
                    Cause::DatabaseConfiguration,
                    "vault",
                    "VAULT__CLIENT_TOKEN",
                    "the token is not periodic and renewable: it will expire (vault-transit \
                     configure makes one)",
                );
            }
        }
        Err(_) => {
            report.find(
                Cause::Credentials,
                "vault",
                "VAULT__CLIENT_TOKEN",
                "the token is not valid (revoked, expired or mistyped): make a new one with \
                 vault-transit configure and render the bundle again",
            );
            return;
        }
    }
    // The round trip uses a key that exists already (the contexts
    // service's): encrypt and decrypt write nothing, and nothing is
    // created. No key yet (contexts-service creates its own on first
    // use): the listing itself is what is checked.
    let listed = client
        .list(&format!("{}/keys", vault.mount), Some(token))
        .await;
    let key = match &listed {
        Ok(body) => body["data"]["keys"]
            .as_array()
            .and_then(|keys| keys.first())
            .and_then(|k| k.as_str())
            .map(str::to_owned),
        Err(e) if e.status() == Some(404) => None,
        Err(e) => {
            report.find(
                Cause::DatabaseConfiguration,
                "vault",
                &vault.mount,
                format!(
                    "listing the transit keys fails ({e}): check VAULT__TRANSIT_MOUNT and the \
                     token's policy"
                ),
            );
            return;
        }
    };
    let Some(key) = key else {
        return;
    };
    let plaintext = "Y2lyY2xlLWhhIGRvY3Rvcg=="; // "circle-ha doctor"
    let round_trip = async {
        let encrypted = client
            .put(
                &format!("{}/encrypt/{key}", vault.mount),
                Some(token),
                &json!({ "plaintext": plaintext }),
            )
            .await?;
        let ciphertext = encrypted["data"]["ciphertext"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let decrypted = client
            .put(
                &format!("{}/decrypt/{key}", vault.mount),
                Some(token),
                &json!({ "ciphertext": ciphertext }),
            )
            .await?;
        Ok::<bool, vault_transit::Error>(decrypted["data"]["plaintext"] == json!(plaintext))
    };
    match round_trip.await {
        Ok(true) => {}
        Ok(false) => report.find(
            Cause::DatabaseConfiguration,
            "vault",
            &vault.mount,
            "decrypting what was encrypted did not give it back",
        ),
        Err(e) => report.find(
            Cause::DatabaseConfiguration,
            "vault",
            &vault.mount,
            format!(
                "encrypt/decrypt on the transit mount fails ({e}): check VAULT__TRANSIT_MOUNT and \
                 the token's policy"
            ),
        ),
    }
}
