//! `[services]`, with the connection details of `[mongo]`, `[postgres]`
//! and `[vault]`: the Services machine's bundle, for services-userdata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ha_plan::{ProblemKind, Problems};
use secrecy::SecretString;
use services_userdata::publish::Target;
use services_userdata::{
    Bundle, BundleSpec, GithubSpec, MongoSpec, PostgresSpec, StorageSpec, VaultSpec,
};

use crate::collect::Collect;
use crate::raw::RawServices;
use crate::{DEFAULT_APP_DATABASES, EnvLookup, HaConfig, Section};

/// Where and how `publish` uploads the bundle.
#[derive(Clone, Debug)]
pub struct PublishTarget {
    /// Bucket, prefix, launch template, KMS key.
    pub target: Target,
    /// `[services].aws_region`.
    pub region: String,
}

impl HaConfig {
    fn services_section(&self) -> Result<&RawServices, Problems> {
        self.raw
            .services
            .as_ref()
            .ok_or_else(|| self.no_section(Section::Services, ""))
    }

    /// `[services]` as the setup `ha-runbook` renders into `out` (or
    /// checks there). With `app_token_later`, Vault's app token is not read
    /// now but when the bundle is rendered (after `[vault]`'s configure
    /// step has written it); otherwise a missing token is a problem here.
    pub fn bundle_setup(
        &self,
        env: EnvLookup<'_>,
        out: &Path,
        app_token_later: bool,
    ) -> Result<ha_runbook::BundleSetup, Problems> {
        let (spec, warnings, app_token_file) =
            self.bundle_parts(env, Some(out), app_token_later)?;
        let mut setup = ha_runbook::BundleSetup::new(spec, out);
        setup.app_token_file = app_token_file;
        setup.warnings = warnings;
        Ok(setup)
    }

    /// The Services bundle's spec from `[services]` and the connection
    /// details of `[mongo]`, `[postgres]` and `[vault]` (the app token that
    /// `vault-transit configure` wrote), every problem at once. `out_dir`
    /// is where an earlier render may have left a session cookie key to
    /// keep.
    pub fn bundle_spec(
        &self,
        env: EnvLookup<'_>,
        out_dir: Option<&Path>,
    ) -> Result<(BundleSpec, Vec<String>), Problems> {
        let (spec, warnings, _) = self.bundle_parts(env, out_dir, false)?;
        Ok((spec, warnings))
    }

    /// [`HaConfig::bundle_spec`], and with `app_token_later` the app
    /// token's file instead of the token.
    fn bundle_parts(
        &self,
        env: EnvLookup<'_>,
        out_dir: Option<&Path>,
        app_token_later: bool,
    ) -> Result<(BundleSpec, Vec<String>, Option<PathBuf>), Problems> {
        let services = self.services_section()?;
        let mut r = Collect::default();

        let hostname = r.required("[services].hostname", services.hostname.as_ref());
        let aws_region = r.required("[services].aws_region", services.aws_region.as_ref());
        let s3_bucket = r.required("[services].s3_bucket", services.s3_bucket.as_ref());
        let license = match &services.license_file {
            Some(path) => r.read("[services].license_file", &self.path_of(path)),
            None => {
                r.missing("[services].license_file");
                Vec::new()
            }
        };
        let replicated_password = r.secret(
            self,
            env,
            "[services].replicated_password",
            services.replicated_password.as_deref(),
        );
        let secret_passphrase = r.secret(
            self,
            env,
            "[services].secret_passphrase",
            services.secret_passphrase.as_deref(),
        );
        let (github, storage, extra_settings) = self.bundle_settings(&mut r, env, services);
        let mut ca_candidates: Vec<(String, PathBuf)> = Vec::new();
        let mongo = self.bundle_mongo(&mut r, env, &mut ca_candidates);
        let postgres = self.bundle_postgres(&mut r, env, &mut ca_candidates);
        let (vault, app_token_file) =
            self.bundle_vault(&mut r, &mut ca_candidates, app_token_later);
        let ca_certificates = self.bundle_ca_certificates(&mut r, services, ca_candidates);
        let encryption_keys = self.bundle_encryption_keys(&mut r, services);
        let session_cookie_key = self.bundle_cookie_key(&mut r, env, services, out_dir);

        let spec = BundleSpec {
            hostname,
            aws_region,
            s3_bucket,
            s3_prefix: services.s3_prefix.clone().unwrap_or_default(),
            mongo,
            postgres,
            vault,
            replicated_password,
            replicated_log_level: services
                .replicated_log_level
                .clone()
                .unwrap_or_else(|| "debug".to_owned()),
            replicated_version: services.replicated_version.clone(),
            secret_passphrase,
            github,
            storage,
            extra_settings,
            license,
            ca_certificates,
            encryption_keys,
            session_cookie_key,
        };
        let warnings = std::mem::take(&mut r.warnings);
        r.finish((spec, warnings, app_token_file))
    }

    /// `[services]`'s GitHub, storage and extra settings for the bundle.
    fn bundle_settings(
        &self,
        r: &mut Collect,
        env: EnvLookup<'_>,
        services: &RawServices,
    ) -> (GithubSpec, StorageSpec, BTreeMap<String, SecretString>) {
        let github = match &services.github {
            Some(g) => GithubSpec {
                kind: g
                    .kind
                    .clone()
                    .unwrap_or_else(|| "github_type_public".to_owned()),
                client_id: r.required("[services].github.client_id", g.client_id.as_ref()),
                client_secret: r.secret(
                    self,
                    env,
                    "[services].github.client_secret",
                    g.client_secret.as_deref(),
                ),
            },
            None => {
                r.missing("[services].github");
                GithubSpec {
                    kind: String::new(),
                    client_id: String::new(),
                    client_secret: SecretString::from(String::new()),
                }
            }
        };
        let storage = match &services.storage {
            Some(s) => StorageSpec {
                backend: s
                    .backend
                    .clone()
                    .unwrap_or_else(|| "storage_backend_s3".to_owned()),
                bucket: r.required("[services].storage.bucket", s.bucket.as_ref()),
                sqs_queue_url: r
                    .required("[services].storage.sqs_queue_url", s.sqs_queue_url.as_ref()),
            },
            None => {
                r.missing("[services].storage");
                StorageSpec {
                    backend: String::new(),
                    bucket: String::new(),
                    sqs_queue_url: String::new(),
                }
            }
        };
        let mut extra_settings = BTreeMap::new();
        for (key, value) in services.extra_settings.iter().flatten() {
            let resolved = if value.starts_with("env:") || value.starts_with("file:") {
                r.secret(
                    self,
                    env,
                    &format!("[services.extra_settings].{key}"),
                    Some(value),
                )
            } else {
                SecretString::from(value.clone())
            };
            extra_settings.insert(key.clone(), resolved);
        }

        (github, storage, extra_settings)
    }

    /// The app user's view of `[mongo]` for the bundle's URIs; its CA file
    /// joins `ca`.
    fn bundle_mongo(
        &self,
        r: &mut Collect,
        env: EnvLookup<'_>,
        ca: &mut Vec<(String, PathBuf)>,
    ) -> MongoSpec {
        // MongoDB: the app user and the members.
        let mut mongo = MongoSpec {
            replica_set: String::new(),
            hosts: Vec::new(),
            user: "circle".to_owned(),
            password: SecretString::from(String::new()),
            databases: DEFAULT_APP_DATABASES
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
            tls: false,
        };
        match &self.raw.mongo {
            None => r.missing_because("[mongo]", "(the URIs need it)"),
            Some(raw) => {
                mongo.replica_set = r.required("[mongo].replica_set", raw.replica_set.as_ref());
                mongo.hosts = raw.members.iter().map(|m| m.host.clone()).collect();
                if mongo.hosts.is_empty() {
                    r.invalid("[mongo].members", "is empty");
                }
                mongo.tls = raw.tls.is_some();
                if let Some(path) = raw.tls.as_ref().and_then(|t| t.ca_file.clone()) {
                    ca.push(("[mongo].tls.ca_file".to_owned(), path));
                }
                match raw.users.as_ref().and_then(|u| u.app.as_ref()) {
                    Some(app) => {
                        if let Some(name) = &app.name {
                            mongo.user = name.clone();
                        }
                        mongo.password = r.secret(
                            self,
                            env,
                            "[mongo].users.app.password",
                            app.password.as_deref(),
                        );
                        if let Some(databases) = &app.databases {
                            mongo.databases = databases.clone();
                        }
                    }
                    None => r.missing("[mongo].users.app"),
                }
            }
        }

        mongo
    }

    /// The app role's view of `[postgres]`; its CA file joins `ca`.
    fn bundle_postgres(
        &self,
        r: &mut Collect,
        env: EnvLookup<'_>,
        ca: &mut Vec<(String, PathBuf)>,
    ) -> PostgresSpec {
        // PostgreSQL.
        let mut postgres = PostgresSpec {
            host: String::new(),
            port: 5432,
            user: "circle".to_owned(),
            password: SecretString::from(String::new()),
        };
        match &self.raw.postgres {
            None => r.missing_because("[postgres]", "(the PostgreSQL file needs it)"),
            Some(raw) => {
                postgres.host = r.required("[postgres].host", raw.host.as_ref());
                postgres.port = raw.port.unwrap_or(5432);
                if let Some(user) = &raw.app_user {
                    postgres.user = user.clone();
                }
                postgres.password = r.secret(
                    self,
                    env,
                    "[postgres].app_password",
                    raw.app_password.as_deref(),
                );
                if let Some(path) = &raw.ca_file {
                    ca.push(("[postgres].ca_file".to_owned(), path.clone()));
                }
            }
        }

        postgres
    }

    /// `[vault]`'s address and the app token `vault-transit configure`
    /// wrote; its CA file joins `ca`.
    fn bundle_vault(
        &self,
        r: &mut Collect,
        ca: &mut Vec<(String, PathBuf)>,
        app_token_later: bool,
    ) -> (VaultSpec, Option<PathBuf>) {
        // Vault: address and the app token `vault-transit configure` wrote.
        let mut later = None;
        let mut vault = VaultSpec {
            scheme: "https".to_owned(),
            host: String::new(),
            port: 8200,
            token: SecretString::from(String::new()),
            transit_mount: "transit".to_owned(),
        };
        match &self.raw.vault {
            None => r.missing_because("[vault]", "(the Vault file needs it)"),
            Some(raw) => {
                let address = raw.address.as_deref().unwrap_or_default();
                match url::Url::parse(address) {
                    Ok(url) if url.host_str().is_some() => {
                        vault.scheme = url.scheme().to_owned();
                        vault.host = url.host_str().unwrap_or_default().to_owned();
                        vault.port = url.port_or_known_default().unwrap_or(8200);
                    }
                    _ => r.invalid(
                        "[vault].address",
                        format!("{address:?} is not a URL such as https://vault.internal:8200"),
                    ),
                }
                if let Some(mount) = raw.transit_mount.as_deref() {
                    vault.transit_mount = mount.trim_matches('/').to_owned();
                }
                let keys_dir = raw
                    .keys_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("secrets/vault"));
                let token_file = raw
                    .app_token_file
                    .clone()
                    .unwrap_or_else(|| keys_dir.join("circleci-token"));
                let token_path = self.path_of(&token_file);
                match vault_transit::configure::read_token_file(&token_path) {
                    _ if app_token_later => later = Some(token_path),
                    Ok(Some(token)) => vault.token = token,
                    _ => r.push(
                        "[vault].app_token_file",
                        ProblemKind::Missing,
                        format!(
                            ": no Vault app token at {}: run `vault-transit configure` first",
                            token_path.display()
                        ),
                    ),
                }
                if let Some(path) = &raw.ca_file {
                    ca.push(("[vault].ca_file".to_owned(), path.clone()));
                }
            }
        }

        (vault, later)
    }

    /// The CA certificates the bundle carries: `[services].ca_files`, else
    /// the sections' own (`candidates`), distinct contents in order.
    fn bundle_ca_certificates(
        &self,
        r: &mut Collect,
        services: &RawServices,
        candidates: Vec<(String, PathBuf)>,
    ) -> Vec<String> {
        // CA certificates: distinct contents, in order.
        let ca_paths: Vec<(String, PathBuf)> = match &services.ca_files {
            Some(paths) => paths
                .iter()
                .map(|p| ("[services].ca_files".to_owned(), p.clone()))
                .collect(),
            None => candidates,
        };
        let mut ca_certificates: Vec<String> = Vec::new();
        for (key, path) in &ca_paths {
            let bytes = r.read(key, &self.path_of(path));
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !text.is_empty() && !ca_certificates.contains(&text) {
                ca_certificates.push(text);
            }
        }

        ca_certificates
    }

    /// The files of `[services].encryption_keys_dir`, by name.
    fn bundle_encryption_keys(
        &self,
        r: &mut Collect,
        services: &RawServices,
    ) -> Vec<(String, Vec<u8>)> {
        let mut encryption_keys = Vec::new();
        if let Some(dir) = &services.encryption_keys_dir {
            let dir = self.path_of(dir);
            match std::fs::read_dir(&dir) {
                Ok(entries) => {
                    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                    names.sort();
                    for path in names.into_iter().filter(|p| p.is_file()) {
                        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                        let bytes = r.read("[services].encryption_keys_dir", &path);
                        encryption_keys.push((name.unwrap_or_default(), bytes));
                    }
                }
                Err(e) => r.unreadable(
                    "[services].encryption_keys_dir",
                    format!("{}: {e}", dir.display()),
                ),
            }
        }

        encryption_keys
    }

    /// `[services].session_cookie_key`, else the one already in `out_dir`'s
    /// bundle, else a new one.
    fn bundle_cookie_key(
        &self,
        r: &mut Collect,
        env: EnvLookup<'_>,
        services: &RawServices,
        out_dir: Option<&Path>,
    ) -> SecretString {
        match services.session_cookie_key.as_deref() {
            Some(reference) => {
                r.secret(self, env, "[services].session_cookie_key", Some(reference))
            }
            None => match out_dir.and_then(Bundle::session_cookie_key_in) {
                Some(key) => key,
                None => crate::secret::generate_secret(16).unwrap_or_else(|e| {
                    r.push(
                        "[services].session_cookie_key",
                        ProblemKind::Missing,
                        format!(
                            ": cannot generate CIRCLE_SECRETS_SESSION_COOKIE_KEY ({e}); set it"
                        ),
                    );
                    SecretString::from(String::new())
                }),
            },
        }
    }

    /// Where `circle-ha keys` keeps CircleCI's encryption keys: the bundle's
    /// bucket, prefix and KMS key (`[services]`), and the region.
    pub fn key_store(&self) -> Result<(services_userdata::keys::KeyStore, String), Problems> {
        let services = self.services_section()?;
        let mut c = Collect::default();
        let bucket = c.required("[services].s3_bucket", services.s3_bucket.as_ref());
        let region = c.required("[services].aws_region", services.aws_region.as_ref());
        c.finish((
            services_userdata::keys::KeyStore {
                bucket,
                prefix: services.s3_prefix.clone().unwrap_or_default(),
                kms_key_id: services.kms_key_id.clone(),
            },
            region,
        ))
    }

    /// Whether `[services]` names a bucket, where `circle-ha keys backup`
    /// stores CircleCI's encryption keys (so `status` checks that copy).
    pub fn stores_keys(&self) -> bool {
        self.raw
            .services
            .as_ref()
            .is_some_and(|s| s.s3_bucket.is_some())
    }

    /// Where `publish` puts the bundle: `[services]`'s bucket, prefix,
    /// launch template and KMS key, and the AWS region.
    pub fn publish_target(&self) -> Result<PublishTarget, Problems> {
        let services = self.services_section()?;
        let mut c = Collect::default();
        let bucket = c.required("[services].s3_bucket", services.s3_bucket.as_ref());
        let launch_template = c.required(
            "[services].launch_template",
            services.launch_template.as_ref(),
        );
        let region = c.required("[services].aws_region", services.aws_region.as_ref());
        c.finish(PublishTarget {
            target: Target {
                bucket,
                prefix: services.s3_prefix.clone().unwrap_or_default(),
                launch_template,
                kms_key_id: services.kms_key_id.clone(),
                set_default_version: services.set_default_version.unwrap_or(true),
            },
            region,
        })
    }
}
