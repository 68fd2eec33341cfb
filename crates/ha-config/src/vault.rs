//! `[vault]`: the server's address and trust, init's shares and files, the
//! transit mount and app token, for vault-transit.

use std::path::{Path, PathBuf};

use ha_plan::Problems;
use vault_transit::{
    AwsKmsSeal, ConfigureSpec, Flavor, KeyFiles, ServerConfigSpec, Storage, Trust,
};

use crate::collect::Collect;
use crate::raw::RawVault;
use crate::secret::SecretRef;
use crate::{EnvLookup, HaConfig, Section};

/// `[vault]`, validated; the admin token still a reference.
#[derive(Debug)]
pub struct VaultSettings {
    /// Vault's address, without a trailing `/`.
    pub address: String,
    /// How its certificate is checked.
    pub trust: Trust,
    /// Shares and threshold, PGP keys.
    pub init: vault_transit::InitRequest,
    /// Init's files (`keys_dir`).
    pub keys: KeyFiles,
    /// The privileged token `configure` and `seal` use.
    pub admin_token: SecretRef,
    /// Where `configure` writes the app token (0600).
    pub app_token_file: PathBuf,
    /// Mount, policy, period.
    pub spec: ConfigureSpec,
    /// Things to tell the operator on every run (a plain-HTTP address).
    pub warnings: Vec<String>,
}

impl VaultSettings {
    /// The HTTP client for [`VaultSettings::address`].
    pub fn client(&self) -> Result<vault_transit::Client, vault_transit::Error> {
        vault_transit::Client::new(&self.address, &self.trust)
    }
}

impl HaConfig {
    fn vault_section(&self) -> Result<&RawVault, Problems> {
        self.raw
            .vault
            .as_ref()
            .ok_or_else(|| self.no_section(Section::Vault, ""))
    }

    /// `[vault]`, every problem at once. `danger_accept_any_certificate`
    /// is the `--danger-accept-any-certificate` flag: it skips Vault's
    /// certificate check, and `ca_file` is then not needed.
    pub fn vault(&self, danger_accept_any_certificate: bool) -> Result<VaultSettings, Problems> {
        self.vault_with_env(danger_accept_any_certificate, &|_| None)
    }

    /// [`HaConfig::vault`] with Vault's own environment variables as
    /// fallbacks between the flags and the file, as Vault's CLI reads them:
    /// `VAULT_ADDR` (else `BAO_ADDR`) for `[vault].address`, `VAULT_CACERT`
    /// (else `BAO_CACERT`) for `[vault].ca_file`. One that differs from the
    /// file is said in a warning naming both, so that a shell still pointed
    /// at another Vault (the old one) cannot redirect a run unnoticed.
    pub fn vault_with_env(
        &self,
        danger_accept_any_certificate: bool,
        env: EnvLookup<'_>,
    ) -> Result<VaultSettings, Problems> {
        let raw = self.vault_section()?;
        let mut c = Collect::default();
        let plain_http = raw.danger_allow_plain_http.unwrap_or(false);
        let from_env = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                env(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
        };
        let mut address_key = "[vault].address".to_owned();
        let mut address = raw.address.clone();
        if let Some((name, value)) = from_env(["VAULT_ADDR", "BAO_ADDR"]) {
            if let Some(file) = address
                .as_deref()
                .filter(|f| f.trim_end_matches('/') != value.trim().trim_end_matches('/'))
            {
                c.warnings.push(format!(
                    "{name}={} overrides [vault].address {file} (unset {name} to use the file's)",
                    value.trim()
                ));
            }
            address = Some(value.trim().to_owned());
            address_key = name.to_owned();
        }
        let mut ca_key = "[vault].ca_file";
        let mut ca_file = raw.ca_file.clone();
        if let Some((name, value)) = from_env(["VAULT_CACERT", "BAO_CACERT"]) {
            let value = std::path::PathBuf::from(value.trim());
            if value.is_relative() {
                c.invalid(name, format!("{}: give an absolute path", value.display()));
            }
            if let Some(file) = ca_file.as_ref().filter(|f| self.path_of(f) != value) {
                c.warnings.push(format!(
                    "{name}={} overrides [vault].ca_file {} (unset {name} to use the file's)",
                    value.display(),
                    file.display()
                ));
            }
            ca_file = Some(value);
            ca_key = name;
        }
        let address = match address.as_deref() {
            Some(a) if a.starts_with("https://") => a.trim_end_matches('/').to_owned(),
            Some(a) if a.starts_with("http://") && plain_http => {
                c.warnings.push(format!(
                    "{address_key} {a} is plain HTTP (danger_allow_plain_http): unseal shares \
                     and tokens cross the network in clear text"
                ));
                a.trim_end_matches('/').to_owned()
            }
            Some(a) if a.starts_with("http://") => {
                c.invalid(
                    &address_key,
                    format!(
                        "{a:?} is plain HTTP: unseal shares and tokens would cross the network \
                         in clear text. Use https://, or for a throw-away test server set \
                         danger_allow_plain_http = true"
                    ),
                );
                String::new()
            }
            Some(a) => {
                c.invalid(&address_key, format!("{a:?} must start with https://"));
                String::new()
            }
            None => {
                c.missing("[vault].address");
                String::new()
            }
        };
        let trust = if danger_accept_any_certificate || address.starts_with("http://") {
            Trust::DangerAcceptAnyCertificate
        } else {
            match &ca_file {
                None => {
                    c.missing_because(
                        "[vault].ca_file",
                        "(the CA that signed Vault's certificate; or pass \
                         --danger-accept-any-certificate to skip verification)",
                    );
                    Trust::DangerAcceptAnyCertificate
                }
                Some(path) => {
                    let path = self.path_of(path);
                    match c.ca_file(ca_key, &path) {
                        Some(pem) => Trust::Ca {
                            pem,
                            path: path.display().to_string(),
                        },
                        None => Trust::DangerAcceptAnyCertificate,
                    }
                }
            }
        };
        let mut pgp_keys = None;
        if let Some(paths) = &raw.pgp_keys {
            let mut keys = Vec::new();
            for path in paths {
                let bytes = c.read("[vault].pgp_keys", &self.path_of(path));
                keys.push(
                    String::from_utf8_lossy(&bytes)
                        .split_whitespace()
                        .collect::<String>(),
                );
            }
            pgp_keys = Some(keys);
        }
        let init = vault_transit::InitRequest {
            secret_shares: raw.secret_shares.unwrap_or(5),
            secret_threshold: raw.secret_threshold.unwrap_or(3),
            pgp_keys,
        };
        if let Err(e) = init.validate() {
            c.invalid("[vault]", format!(": {e}"));
        }
        let keys_dir = self.path_of(
            raw.keys_dir
                .as_deref()
                .unwrap_or_else(|| Path::new("secrets/vault")),
        );
        let admin_token = match &raw.admin_token {
            Some(text) => c.secret_ref("[vault].admin_token", Some(text)),
            None => Some(SecretRef::File(keys_dir.join("root-token"))),
        };
        let app_token_file = raw
            .app_token_file
            .as_ref()
            .map(|p| self.path_of(p))
            .unwrap_or_else(|| keys_dir.join("circleci-token"));
        let spec = ConfigureSpec::new(
            raw.transit_mount.as_deref().unwrap_or("transit"),
            raw.token_period.as_deref().unwrap_or("1h"),
        );
        if let Err(e) = spec.validate() {
            c.invalid("[vault]", format!(": {e}"));
        }
        let Some(admin_token) = admin_token else {
            return Err(c.problems);
        };
        let warnings = std::mem::take(&mut c.warnings);
        c.finish(VaultSettings {
            address,
            trust,
            init,
            keys: KeyFiles::new(keys_dir),
            admin_token,
            app_token_file,
            spec,
            warnings,
        })
    }

    /// Resolves `[vault].admin_token` (default `file:<keys_dir>/root-token`).
    pub fn vault_admin_token(
        &self,
        settings: &VaultSettings,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<secrecy::SecretString, Problems> {
        self.resolve("[vault].admin_token", &settings.admin_token, env, warnings)
    }

    /// `[vault]` as the setup `ha-runbook` runs: with `admin`, the admin
    /// token resolved (what `configure` needs; `status` and `verify` need
    /// none). The setup carries the settings' and the reference's warnings.
    pub fn vault_setup(
        &self,
        settings: &VaultSettings,
        env: EnvLookup<'_>,
        admin: bool,
    ) -> Result<ha_runbook::VaultSetup, Problems> {
        let mut warnings = settings.warnings.clone();
        let admin_token = if admin {
            Some(self.vault_admin_token(settings, env, &mut warnings)?)
        } else {
            None
        };
        let mut setup = ha_runbook::VaultSetup::new(
            settings.address.clone(),
            settings.trust.clone(),
            admin_token,
            settings.app_token_file.clone(),
            settings.spec.clone(),
        );
        setup.warnings = warnings;
        Ok(setup)
    }

    /// `[vault.server]` (and `[vault].address`): the server's own
    /// configuration, for `render-config`, checked against what the chosen
    /// server accepts (OpenBao has no file or consul storage, Vault 0.7 no
    /// raft).
    pub fn vault_server(&self) -> Result<vault_transit::RenderedConfig, Problems> {
        let raw = self.vault_section()?;
        let server = raw.server.clone().unwrap_or_default();
        let mut c = Collect::default();
        let flavor_text = server.flavor.as_deref().unwrap_or("openbao");
        let flavor = Flavor::parse(flavor_text).unwrap_or_else(|| {
            c.invalid(
                "[vault.server].flavor",
                format!("{flavor_text:?} is not one of openbao, vault, vault-0.7"),
            );
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
                c.invalid(
                    "[vault.server].storage",
                    format!("{other:?} is not one of raft, consul, file"),
                );
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
                c.missing_because("[vault].address", "(or [vault.server].api_addr)");
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
                c.invalid(
                    "[vault.server]",
                    ": give both tls_cert_file and tls_key_file",
                );
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
            seal: server.seal_awskms.as_ref().map(|seal| AwsKmsSeal {
                region: c.required("[vault.server.seal_awskms].region", seal.region.as_ref()),
                kms_key_id: c.required(
                    "[vault.server.seal_awskms].kms_key_id",
                    seal.kms_key_id.as_ref(),
                ),
                endpoint: seal.endpoint.clone(),
            }),
        };
        let spec = c.finish(spec)?;
        vault_transit::render_server_config(&spec).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| ha_plan::Problem::invalid("[vault.server]", format!(": {p}")))
                .collect()
        })
    }
}

/// The database CircleCI's contexts service keeps its secrets in.
pub const CONTEXTS_DATABASE: &str = "contexts_service_production";
