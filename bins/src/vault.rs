//! `vault-transit`: the `[vault]` section turned into vault-transit calls.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use vault_transit::configure::{self, Step};
use vault_transit::{Client, ConfigureSpec, Flavor, KeyFiles, ServerConfigSpec, Storage, Trust};

use crate::config::{ConfigFile, Problems, UsageError};
use crate::exit::Exit;
use crate::output::{Action, ChangeReport};
use crate::secret::SecretRef;

/// `[vault]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// `https://vault.internal:8200`.
    pub address: Option<String>,
    /// CA bundle that signed Vault's certificate.
    pub ca_file: Option<PathBuf>,
    /// Key shares (default 5).
    pub secret_shares: Option<u8>,
    /// Shares needed to unseal (default 3).
    pub secret_threshold: Option<u8>,
    /// Files with base64 PGP public keys, one per share (optional).
    pub pgp_keys: Option<Vec<PathBuf>>,
    /// Where init writes the shares and root token (default `secrets/vault`).
    pub keys_dir: Option<PathBuf>,
    /// Secret reference to the privileged token `configure` and `seal` use
    /// (default `file:<keys_dir>/root-token`).
    pub admin_token: Option<String>,
    /// Where `configure` writes the app token (default
    /// `<keys_dir>/circleci-token`).
    pub app_token_file: Option<PathBuf>,
    /// Transit mount path (default `transit`).
    pub transit_mount: Option<String>,
    /// App token period (default `1h`).
    pub token_period: Option<String>,
    /// The server's own configuration, for `render-config`.
    pub server: Option<RawServer>,
}

/// `[vault.server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `openbao`, `vault` or `vault-0.7` (default `openbao`).
    pub flavor: Option<String>,
    /// `raft` (default), `consul` or `file`.
    pub storage: Option<String>,
    /// Storage path (raft, file).
    pub path: Option<String>,
    /// Raft node id (default `vault-1`).
    pub node_id: Option<String>,
    /// Consul address (default `127.0.0.1:8500`).
    pub consul_address: Option<String>,
    /// Consul key prefix (default `vault`).
    pub consul_path: Option<String>,
    /// Listener address (default `0.0.0.0:8200`).
    pub listen_address: Option<String>,
    /// Cluster listener address (default `0.0.0.0:8201`).
    pub cluster_listen_address: Option<String>,
    /// Address clients use (default: `[vault].address`).
    pub api_addr: Option<String>,
    /// Address peers use (default: api_addr's host on port 8201).
    pub cluster_addr: Option<String>,
    /// Listener certificate file (on the Vault host).
    pub tls_cert_file: Option<String>,
    /// Listener key file (on the Vault host).
    pub tls_key_file: Option<String>,
    /// Allow a listener without TLS (test instances only).
    pub allow_plain_http: Option<bool>,
}

/// `[vault]`, validated.
#[derive(Debug)]
pub struct Settings {
    /// Vault's address.
    pub address: String,
    /// How its certificate is checked.
    pub trust: Trust,
    /// Shares and threshold, PGP keys.
    pub init: vault_transit::InitRequest,
    /// Init's files.
    pub keys: KeyFiles,
    /// The admin token reference.
    pub admin_token: SecretRef,
    /// The app token file.
    pub app_token_file: PathBuf,
    /// Mount, policy, period.
    pub spec: ConfigureSpec,
}

/// Validates `[vault]` (all problems at once). `danger_accept_any` is the
/// `--danger-accept-any-certificate` flag.
pub fn settings(file: &ConfigFile, danger_accept_any: bool) -> Result<Settings, UsageError> {
    let raw = vault_section(file)?;
    let mut problems = Problems::default();
    let address = match raw.address.as_deref() {
        Some(a) if a.starts_with("https://") || a.starts_with("http://") => {
            a.trim_end_matches('/').to_owned()
        }
        Some(a) => {
            problems.push(format!(
                "[vault].address {a:?} must start with https:// (or http:// for a test server)"
            ));
            String::new()
        }
        None => {
            problems.push("[vault].address is missing");
            String::new()
        }
    };
    let trust = if danger_accept_any || address.starts_with("http://") {
        Trust::DangerAcceptAnyCertificate
    } else {
        match &raw.ca_file {
            None => {
                problems.push(
                    "[vault].ca_file is missing: the CA that signed Vault's certificate (or pass \
                     --danger-accept-any-certificate to skip verification)",
                );
                Trust::DangerAcceptAnyCertificate
            }
            Some(path) => {
                let path = file.path_of(path);
                match std::fs::read(&path) {
                    Ok(pem) => match ha_tls::root_store(&pem, &path.display().to_string()) {
                        Ok(_) => Trust::Ca {
                            pem,
                            path: path.display().to_string(),
                        },
                        Err(e) => {
                            problems.push(format!("[vault].ca_file: {e}"));
                            Trust::DangerAcceptAnyCertificate
                        }
                    },
                    Err(e) => {
                        problems.push(format!("[vault].ca_file {}: {e}", path.display()));
                        Trust::DangerAcceptAnyCertificate
                    }
                }
            }
        }
    };
    let mut pgp_keys = None;
    if let Some(paths) = &raw.pgp_keys {
        let mut keys = Vec::new();
        for path in paths {
            match std::fs::read_to_string(file.path_of(path)) {
                Ok(text) => keys.push(text.split_whitespace().collect::<String>()),
                Err(e) => problems.push(format!("[vault].pgp_keys {}: {e}", path.display())),
            }
        }
        pgp_keys = Some(keys);
    }
    let init = vault_transit::InitRequest {
        secret_shares: raw.secret_shares.unwrap_or(5),
        secret_threshold: raw.secret_threshold.unwrap_or(3),
        pgp_keys,
    };
    if let Err(e) = init.validate() {
        problems.push(format!("[vault]: {e}"));
    }
    let keys_dir = file.path_of(
        raw.keys_dir
            .as_deref()
            .unwrap_or_else(|| std::path::Path::new("secrets/vault")),
    );
    let admin_token = match &raw.admin_token {
        Some(text) => problems.secret_ref("[vault].admin_token", Some(text)),
        None => Some(SecretRef::File(keys_dir.join("root-token"))),
    };
    let app_token_file = raw
        .app_token_file
        .as_ref()
        .map(|p| file.path_of(p))
        .unwrap_or_else(|| keys_dir.join("circleci-token"));
    let spec = ConfigureSpec::new(
        raw.transit_mount.as_deref().unwrap_or("transit"),
        raw.token_period.as_deref().unwrap_or("1h"),
    );
    if let Err(e) = spec.validate() {
        problems.push(format!("[vault]: {e}"));
    }
    let settings = Settings {
        address,
        trust,
        init,
        keys: KeyFiles::new(keys_dir),
        admin_token: admin_token.unwrap_or(SecretRef::Env(String::new())),
        app_token_file,
        spec,
    };
    problems.finish(settings)
}

fn vault_section(file: &ConfigFile) -> Result<RawVault, UsageError> {
    let table = file.raw.vault.clone().ok_or_else(|| {
        UsageError::new(format!(
            "{}: there is no [vault] section",
            file.path.display()
        ))
    })?;
    table.try_into().map_err(|e: toml::de::Error| {
        UsageError::new(format!("{}: [vault]: {e}", file.path.display()))
    })
}

impl Settings {
    /// The HTTP client.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.address, &self.trust)?)
    }

    fn admin_token(
        &self,
        file: &ConfigFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(SecretString, Option<String>), UsageError> {
        let resolved = self.admin_token.resolve(env, &file.dir()).map_err(|why| {
            UsageError::new(format!("[vault].admin_token ({}): {why}", self.admin_token))
        })?;
        Ok((resolved.value, resolved.warning))
    }

    fn app_token(&self) -> anyhow::Result<Option<SecretString>> {
        match std::fs::read_to_string(&self.app_token_file) {
            Ok(text) if !text.trim().is_empty() => {
                Ok(Some(SecretString::from(text.trim().to_owned())))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!(
                "cannot read {}: {e}",
                self.app_token_file.display()
            )),
        }
    }
}

/// `vault-transit render-config`: the server's HCL and warnings.
pub fn render_config(file: &ConfigFile) -> Result<vault_transit::RenderedConfig, UsageError> {
    let raw = vault_section(file)?;
    let server = raw.server.unwrap_or_default();
    let mut problems = Problems::default();
    let flavor_text = server.flavor.as_deref().unwrap_or("openbao");
    let flavor = Flavor::parse(flavor_text).unwrap_or_else(|| {
        problems.push(format!(
            "[vault.server].flavor {flavor_text:?} is not one of openbao, vault, vault-0.7"
        ));
        Flavor::OpenBao
    });
    let storage = match server.storage.as_deref().unwrap_or("raft") {
        "raft" => Storage::Raft {
            path: server
                .path
                .clone()
                .unwrap_or_else(|| "/var/lib/vault/raft".to_owned()),
            node_id: server
                .node_id
                .clone()
                .unwrap_or_else(|| "vault-1".to_owned()),
        },
        "file" => Storage::File {
            path: server
                .path
                .clone()
                .unwrap_or_else(|| "/var/lib/vault/file".to_owned()),
        },
        "consul" => Storage::Consul {
            address: server
                .consul_address
                .clone()
                .unwrap_or_else(|| "127.0.0.1:8500".to_owned()),
            path: server
                .consul_path
                .clone()
                .unwrap_or_else(|| "vault".to_owned()),
        },
        other => {
            problems.push(format!(
                "[vault.server].storage {other:?} is not one of raft, consul, file"
            ));
            Storage::Raft {
                path: String::new(),
                node_id: String::new(),
            }
        }
    };
    let api_addr = server
        .api_addr
        .clone()
        .or(raw.address.clone())
        .unwrap_or_else(|| {
            problems.push("[vault].address (or [vault.server].api_addr) is missing");
            String::new()
        });
    let cluster_addr = server.cluster_addr.clone().unwrap_or_else(|| {
        let base = api_addr
            .rsplit_once(':')
            .map_or(api_addr.as_str(), |(host, _)| host);
        format!("{base}:8201")
    });
    let tls = match (&server.tls_cert_file, &server.tls_key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => {
            problems.push("[vault.server]: give both tls_cert_file and tls_key_file");
            None
        }
    };
    let spec = ServerConfigSpec {
        flavor,
        storage,
        listen_address: server
            .listen_address
            .clone()
            .unwrap_or_else(|| "0.0.0.0:8200".to_owned()),
        cluster_listen_address: server
            .cluster_listen_address
            .clone()
            .unwrap_or_else(|| "0.0.0.0:8201".to_owned()),
        api_addr,
        cluster_addr,
        tls,
        allow_plain_http: server.allow_plain_http.unwrap_or(false),
    };
    let settings = problems.finish(spec)?;
    vault_transit::render_server_config(&settings).map_err(|problems| UsageError {
        problems: problems
            .into_iter()
            .map(|p| format!("[vault.server]: {p}"))
            .collect(),
    })
}

/// `vault-transit init`.
pub async fn init(settings: &Settings) -> anyhow::Result<(Value, String)> {
    let client = settings.client()?;
    let encrypted = settings.init.pgp_keys.is_some();
    if vault_transit::is_initialized(&client).await? {
        return Err(vault_transit::Error::AlreadyInitialized {
            address: settings.address.clone(),
        }
        .into());
    }
    settings
        .keys
        .prepare(settings.init.secret_shares, encrypted)?;
    let response = vault_transit::init(&client, &settings.init).await?;
    let written = match settings.keys.write(&settings.address, response) {
        Ok(written) => written,
        Err(vault_transit::Error::KeysNotSaved {
            address,
            path,
            keys,
            source,
        }) => {
            // The only copy of the keys is in memory: showing them is better
            // than losing them.
            rescue_keys(&keys);
            return Err(vault_transit::Error::KeysNotSaved {
                address,
                path,
                keys,
                source,
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let mut text = format!(
        "vault-transit: initialised {} with {} key shares, threshold {}\n",
        settings.address, settings.init.secret_shares, settings.init.secret_threshold
    );
    for path in &written {
        text.push_str(&format!("  wrote {} (0600)\n", path.display()));
    }
    text.push_str(
        "Hand each unseal-key file to a different key holder and remove it from this machine; \
         keep the root token offline once `configure` has run.\n",
    );
    let value = json!({
        "changed": 1,
        "actions": [{"kind": "init", "target": format!("vault {}", settings.address)}],
        "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "keys_encrypted": encrypted,
    });
    Ok((value, text))
}

/// Prints init's output to stderr when it could not be saved: the last
/// chance to keep it.
#[allow(clippy::print_stderr)]
fn rescue_keys(response: &vault_transit::InitResponse) {
    use secrecy::ExposeSecret as _;
    eprintln!(
        "\n!!! Vault is initialised but its key files could not be written. These lines are the\n\
         !!! ONLY copy of the unseal key shares and root token. Store them safely NOW:"
    );
    for (i, key) in response.keys.iter().enumerate() {
        eprintln!("unseal-key-{}: {}", i + 1, key.expose_secret());
    }
    eprintln!("root-token: {}\n", response.root_token.expose_secret());
}

/// `vault-transit configure`.
pub async fn configure(
    file: &ConfigFile,
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
    dry_run: bool,
) -> anyhow::Result<ChangeReport> {
    let (admin, warning) = settings.admin_token(file, env)?;
    let client = settings.client()?;
    let app = settings.app_token()?;
    let observed = configure::observe(&client, &admin, &settings.spec, app.as_ref()).await?;
    let plan = configure::plan(&settings.spec, &observed);
    if !plan.blockers.is_empty() {
        return Err(vault_transit::Error::Invalid(plan.blockers.join("; ")).into());
    }
    let actions: Vec<Action> = plan
        .steps
        .iter()
        .map(|step: &Step| Action {
            kind: step.kind().to_owned(),
            target: step.target(&settings.spec),
            detail: step.to_string(),
        })
        .collect();
    let mut warnings: Vec<String> = warning.into_iter().collect();
    if !dry_run {
        let applied = configure::apply(
            &client,
            &admin,
            &settings.spec,
            &plan,
            app.as_ref(),
            &settings.app_token_file,
        )
        .await?;
        if applied.renewed {
            warnings.push(format!(
                "kept the existing app token in {} and renewed it for another {}",
                settings.app_token_file.display(),
                settings.spec.period
            ));
        }
    }
    Ok(ChangeReport {
        tool: "vault-transit",
        dry_run,
        actions,
        warnings,
    })
}

/// `vault-transit verify`.
pub async fn verify(settings: &Settings) -> anyhow::Result<(Value, String, Exit)> {
    let client = settings.client()?;
    let Some(app) = settings.app_token()? else {
        return Err(UsageError::new(format!(
            "no app token at {}: run `vault-transit configure` first",
            settings.app_token_file.display()
        ))
        .into());
    };
    let report = vault_transit::verify(&client, &app, &settings.spec).await;
    let mut text = String::new();
    for check in &report.checks {
        text.push_str(&format!(
            "{:<5} {:<32} {}\n",
            if check.ok { "ok" } else { "FAIL" },
            check.name,
            check.detail
        ));
    }
    let healthy = report.is_healthy();
    text.push_str(&format!(
        "vault-transit: app token {}\n",
        if healthy {
            "works and is limited to the contexts policy"
        } else {
            "has problems"
        }
    ));
    let value = json!({
        "healthy": healthy,
        "address": settings.address,
        "checks": report.checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
    });
    Ok((
        value,
        text,
        if healthy {
            Exit::Success
        } else {
            Exit::Unhealthy
        },
    ))
}

/// `vault-transit status`.
pub async fn status(settings: &Settings) -> anyhow::Result<(Value, String, Exit)> {
    let client = settings.client()?;
    let initialized = vault_transit::is_initialized(&client).await?;
    let seal = vault_transit::seal_status(&client).await?;
    let healthy = initialized && !seal.sealed;
    let state = match (initialized, seal.sealed) {
        (false, _) => "not initialised (run vault-transit init)".to_owned(),
        (true, true) => format!(
            "sealed, unseal progress {}/{} (run vault-transit unseal)",
            seal.progress, seal.threshold
        ),
        (true, false) => "unsealed".to_owned(),
    };
    let shares = if initialized {
        format!("; {} shares, threshold {}", seal.shares, seal.threshold)
    } else {
        String::new()
    };
    let text = format!(
        "vault-transit: {} {}: {state}{shares}\n",
        settings.address,
        seal.version.as_deref().unwrap_or("(version unknown)"),
    );
    let value = json!({
        "healthy": healthy,
        "address": settings.address,
        "initialized": initialized,
        "sealed": seal.sealed,
        "progress": seal.progress,
        "threshold": seal.threshold,
        "shares": seal.shares,
        "version": seal.version,
    });
    Ok((
        value,
        text,
        if healthy {
            Exit::Success
        } else {
            Exit::Unhealthy
        },
    ))
}

/// `vault-transit seal`.
pub async fn seal(
    file: &ConfigFile,
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<(Value, String)> {
    let client = settings.client()?;
    if vault_transit::seal_status(&client).await?.sealed {
        return Ok((
            json!({"changed": 0, "actions": [], "sealed": true}),
            format!(
                "vault-transit: {} is already sealed (changed: 0)\n",
                settings.address
            ),
        ));
    }
    let (admin, _) = settings.admin_token(file, env)?;
    vault_transit::seal(&client, &admin).await?;
    Ok((
        json!({"changed": 1, "actions": [{"kind": "seal", "target": format!("vault {}", settings.address)}], "sealed": true}),
        format!("vault-transit: sealed {} (changed: 1)\n", settings.address),
    ))
}

/// Where unseal key shares come from.
pub enum KeySource {
    /// The files in `keys_dir`.
    Files,
    /// One share per line on standard input (prompted without echo on a
    /// terminal).
    Stdin,
}

/// `vault-transit unseal`. `progress` is called with each status. With key
/// files, an earlier unfinished attempt is discarded when the files hold
/// enough shares to finish alone; from standard input it is continued
/// unless `reset`.
pub async fn unseal(
    settings: &Settings,
    source: KeySource,
    reset: bool,
    read_line: &mut (dyn FnMut(&vault_transit::SealStatus) -> Option<SecretString> + Send),
    progress: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<(Value, String)> {
    let client = settings.client()?;
    let outcome = match source {
        KeySource::Files => {
            let keys = settings.keys.read_keys()?;
            if keys.is_empty() {
                return Err(UsageError::new(format!(
                    "no unseal-key-N files in {}: pass --stdin to type or pipe the shares",
                    settings.keys.dir().display()
                ))
                .into());
            }
            let status = vault_transit::seal_status(&client).await?;
            if keys.len() < status.threshold as usize {
                return Err(UsageError::new(format!(
                    "{} has {} unseal-key file(s) and {} shares are needed: pass --stdin for the \
                     other key holders' shares",
                    settings.keys.dir().display(),
                    keys.len(),
                    status.threshold
                ))
                .into());
            }
            let mut keys = keys.into_iter();
            vault_transit::unseal(&client, true, &mut |status| {
                let (path, key) = keys.next()?;
                progress(&format!(
                    "unseal progress {}/{}: submitting {}",
                    status.progress,
                    status.threshold,
                    path.display()
                ));
                Some(key)
            })
            .await?
        }
        KeySource::Stdin => {
            vault_transit::unseal(&client, reset, &mut |status| {
                progress(&format!(
                    "unseal progress {}/{}: next key share",
                    status.progress, status.threshold
                ));
                read_line(status)
            })
            .await?
        }
    };
    let changed = usize::from(outcome.submitted > 0);
    let text = if outcome.status.sealed {
        format!(
            "vault-transit: {} is still sealed: unseal progress {}/{} after {} share(s) from this \
             run; {} more needed (other key holders run `vault-transit unseal --stdin`)\n",
            settings.address,
            outcome.status.progress,
            outcome.status.threshold,
            outcome.submitted,
            outcome.status.threshold - outcome.status.progress
        )
    } else if outcome.was_sealed {
        format!(
            "vault-transit: unsealed {} with {} key shares{} (changed: 1)\n",
            settings.address,
            outcome.submitted,
            if outcome.reset_stale_attempt {
                " after resetting an unfinished earlier attempt"
            } else {
                ""
            }
        )
    } else {
        format!(
            "vault-transit: {} is already unsealed (changed: 0)\n",
            settings.address
        )
    };
    let value = json!({
        "changed": changed,
        "actions": if changed > 0 { json!([{"kind": "unseal", "target": format!("vault {}", settings.address)}]) } else { json!([]) },
        "sealed": outcome.status.sealed,
        "progress": outcome.status.progress,
        "threshold": outcome.status.threshold,
        "submitted": outcome.submitted,
        "reset_stale_attempt": outcome.reset_stale_attempt,
    });
    Ok((value, text))
}
