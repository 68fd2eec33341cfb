//! `services-userdata`: `[services]` plus the connection details of
//! `[mongo]`, `[postgres]` and `[vault]` turned into the Services bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use services_userdata::publish::{self, Target};
use services_userdata::{
    Bundle, BundleFile, BundleSpec, GithubSpec, MongoSpec, PostgresSpec, StorageSpec, VaultSpec,
};

use crate::config::{ConfigFile, DEFAULT_APP_DATABASES, Problems, UsageError};
use crate::output::{Action, ChangeReport};

/// `[services]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServices {
    /// The CircleCI host name.
    pub hostname: Option<String>,
    /// AWS region of the bundle bucket and the artifacts.
    pub aws_region: Option<String>,
    /// The bucket for this bundle.
    pub s3_bucket: Option<String>,
    /// Key prefix in it (default none).
    pub s3_prefix: Option<String>,
    /// The Services machine's launch template.
    pub launch_template: Option<String>,
    /// The CircleCI license file.
    pub license_file: Option<PathBuf>,
    /// Secret reference: Replicated's console password.
    pub replicated_password: Option<String>,
    /// Secret reference: CircleCI's `secret_passphrase`.
    pub secret_passphrase: Option<String>,
    /// GitHub OAuth app.
    pub github: Option<RawGithub>,
    /// Artifact storage.
    pub storage: Option<RawStorage>,
    /// Secret reference for `CIRCLE_SECRETS_SESSION_COOKIE_KEY`; default: kept
    /// from the last render, or generated.
    pub session_cookie_key: Option<String>,
    /// Replicated's `LogLevel` (default `debug`, as the runbook).
    pub replicated_log_level: Option<String>,
    /// Pin Replicated to this version.
    pub replicated_version: Option<String>,
    /// A copy of the old Services machine's
    /// `/data/circle/circleci-encryption-keys`.
    pub encryption_keys_dir: Option<PathBuf>,
    /// CA certificates to install (default: the distinct `ca_file`s of
    /// `[mongo].tls`, `[postgres]` and `[vault]`).
    pub ca_files: Option<Vec<PathBuf>>,
    /// KMS key for the bundle objects (default SSE-S3).
    pub kms_key_id: Option<String>,
    /// Further `settings.conf` entries; `env:`/`file:` values are resolved.
    pub extra_settings: Option<BTreeMap<String, String>>,
}

/// `[services].github`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGithub {
    /// `github_type_public` or `github_type_enterprise`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// Secret reference: OAuth client secret.
    pub client_secret: Option<String>,
}

/// `[services].storage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// E.g. `storage_backend_s3`.
    pub backend: Option<String>,
    /// The artifacts bucket.
    pub bucket: Option<String>,
    /// The SQS queue URL.
    pub sqs_queue_url: Option<String>,
}

fn services_section(file: &ConfigFile) -> Result<RawServices, UsageError> {
    let table = file.raw.services.clone().ok_or_else(|| {
        UsageError::new(format!(
            "{}: there is no [services] section",
            file.path.display()
        ))
    })?;
    table.try_into().map_err(|e: toml::de::Error| {
        UsageError::new(format!("{}: [services]: {e}", file.path.display()))
    })
}

/// Resolves secret references and reads files, recording problems.
struct Resolver<'a> {
    file: &'a ConfigFile,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Problems,
    warnings: Vec<String>,
}

impl Resolver<'_> {
    fn secret(&mut self, key: &str, value: Option<&str>) -> SecretString {
        let Some(reference) = self.problems.secret_ref(key, value) else {
            return SecretString::from(String::new());
        };
        match reference.resolve(self.env, &self.file.dir()) {
            Ok(resolved) => {
                self.warnings.extend(resolved.warning);
                resolved.value
            }
            Err(why) => {
                self.problems.push(format!("{key} ({reference}): {why}"));
                SecretString::from(String::new())
            }
        }
    }

    fn required(&mut self, key: &str, value: Option<&String>) -> String {
        match value {
            Some(v) if !v.trim().is_empty() => v.clone(),
            _ => {
                self.problems.push(format!("{key} is missing"));
                String::new()
            }
        }
    }

    fn read(&mut self, key: &str, path: &Path) -> Vec<u8> {
        let path = self.file.path_of(path);
        std::fs::read(&path).unwrap_or_else(|e| {
            self.problems.push(format!("{key} {}: {e}", path.display()));
            Vec::new()
        })
    }
}

/// Builds the bundle spec from the configuration, all problems at once.
/// `out_dir` is where an earlier render may have left a session cookie key.
pub fn bundle_spec(
    file: &ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
    out_dir: Option<&Path>,
) -> Result<(BundleSpec, Vec<String>), UsageError> {
    let services = services_section(file)?;
    let mut r = Resolver {
        file,
        env,
        problems: Problems::default(),
        warnings: Vec::new(),
    };

    let hostname = r.required("[services].hostname", services.hostname.as_ref());
    let aws_region = r.required("[services].aws_region", services.aws_region.as_ref());
    let s3_bucket = r.required("[services].s3_bucket", services.s3_bucket.as_ref());
    let license = match &services.license_file {
        Some(path) => r.read("[services].license_file", path),
        None => {
            r.problems.push("[services].license_file is missing");
            Vec::new()
        }
    };
    let replicated_password = r.secret(
        "[services].replicated_password",
        services.replicated_password.as_deref(),
    );
    let secret_passphrase = r.secret(
        "[services].secret_passphrase",
        services.secret_passphrase.as_deref(),
    );
    let github = match &services.github {
        Some(g) => GithubSpec {
            kind: g
                .kind
                .clone()
                .unwrap_or_else(|| "github_type_public".to_owned()),
            client_id: r.required("[services].github.client_id", g.client_id.as_ref()),
            client_secret: r.secret(
                "[services].github.client_secret",
                g.client_secret.as_deref(),
            ),
        },
        None => {
            r.problems.push("[services].github is missing");
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
            sqs_queue_url: r.required("[services].storage.sqs_queue_url", s.sqs_queue_url.as_ref()),
        },
        None => {
            r.problems.push("[services].storage is missing");
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
            r.secret(&format!("[services.extra_settings].{key}"), Some(value))
        } else {
            SecretString::from(value.clone())
        };
        extra_settings.insert(key.clone(), resolved);
    }

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
    let mut ca_candidates: Vec<(String, PathBuf)> = Vec::new();
    match &file.raw.mongo {
        None => r
            .problems
            .push("there is no [mongo] section (the URIs need it)"),
        Some(raw) => {
            mongo.replica_set = r.required("[mongo].replica_set", raw.replica_set.as_ref());
            mongo.hosts = raw.members.iter().map(|m| m.host.clone()).collect();
            if mongo.hosts.is_empty() {
                r.problems.push("[mongo].members is empty");
            }
            mongo.tls = raw.tls.is_some();
            if let Some(path) = raw.tls.as_ref().and_then(|t| t.ca_file.clone()) {
                ca_candidates.push(("[mongo].tls.ca_file".to_owned(), path));
            }
            match raw.users.as_ref().and_then(|u| u.app.as_ref()) {
                Some(app) => {
                    if let Some(name) = &app.name {
                        mongo.user = name.clone();
                    }
                    mongo.password =
                        r.secret("[mongo].users.app.password", app.password.as_deref());
                    if let Some(databases) = &app.databases {
                        mongo.databases = databases.clone();
                    }
                }
                None => r.problems.push("[mongo].users.app is missing"),
            }
        }
    }

    // PostgreSQL.
    let mut postgres = PostgresSpec {
        host: String::new(),
        port: 5432,
        user: "circle".to_owned(),
        password: SecretString::from(String::new()),
    };
    match &file.raw.postgres {
        None => r.problems.push("there is no [postgres] section"),
        Some(raw) => {
            postgres.host = r.required("[postgres].host", raw.host.as_ref());
            postgres.port = raw.port.unwrap_or(5432);
            if let Some(user) = &raw.app_user {
                postgres.user = user.clone();
            }
            postgres.password = r.secret("[postgres].app_password", raw.app_password.as_deref());
            if let Some(path) = &raw.ca_file {
                ca_candidates.push(("[postgres].ca_file".to_owned(), path.clone()));
            }
        }
    }

    // Vault: address and the app token `vault-transit configure` wrote.
    let mut vault = VaultSpec {
        scheme: "https".to_owned(),
        host: String::new(),
        port: 8200,
        token: SecretString::from(String::new()),
        transit_mount: "transit".to_owned(),
    };
    match &file.raw.vault {
        None => r.problems.push("there is no [vault] section"),
        Some(table) => {
            let address = table
                .get("address")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            match reqwest::Url::parse(address) {
                Ok(url) if url.host_str().is_some() => {
                    vault.scheme = url.scheme().to_owned();
                    vault.host = url.host_str().unwrap_or_default().to_owned();
                    vault.port = url.port_or_known_default().unwrap_or(8200);
                }
                _ => r.problems.push(format!(
                    "[vault].address {address:?} is not a URL such as https://vault.internal:8200"
                )),
            }
            if let Some(mount) = table.get("transit_mount").and_then(|v| v.as_str()) {
                vault.transit_mount = mount.trim_matches('/').to_owned();
            }
            let keys_dir = table
                .get("keys_dir")
                .and_then(|v| v.as_str())
                .unwrap_or("secrets/vault");
            let token_file = table
                .get("app_token_file")
                .and_then(|v| v.as_str())
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(keys_dir).join("circleci-token"));
            let token_path = file.path_of(&token_file);
            match std::fs::read_to_string(&token_path) {
                Ok(token) if !token.trim().is_empty() => {
                    vault.token = SecretString::from(token.trim().to_owned());
                }
                _ => r.problems.push(format!(
                    "no Vault app token at {}: run `vault-transit configure` first",
                    token_path.display()
                )),
            }
            if let Some(path) = table.get("ca_file").and_then(|v| v.as_str()) {
                ca_candidates.push(("[vault].ca_file".to_owned(), PathBuf::from(path)));
            }
        }
    }

    // CA certificates: distinct contents, in order.
    let ca_paths: Vec<(String, PathBuf)> = match &services.ca_files {
        Some(paths) => paths
            .iter()
            .map(|p| ("[services].ca_files".to_owned(), p.clone()))
            .collect(),
        None => ca_candidates,
    };
    let mut ca_certificates: Vec<String> = Vec::new();
    for (key, path) in &ca_paths {
        let bytes = r.read(key, path);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !text.is_empty() && !ca_certificates.contains(&text) {
            ca_certificates.push(text);
        }
    }

    let mut encryption_keys = Vec::new();
    if let Some(dir) = &services.encryption_keys_dir {
        let dir = file.path_of(dir);
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
            Err(e) => r.problems.push(format!(
                "[services].encryption_keys_dir {}: {e}",
                dir.display()
            )),
        }
    }

    let session_cookie_key = match services.session_cookie_key.as_deref() {
        Some(reference) => r.secret("[services].session_cookie_key", Some(reference)),
        None => match out_dir.and_then(previous_cookie_key) {
            Some(key) => key,
            None => crate::secret::generate(16).unwrap_or_else(|e| {
                r.problems.push(format!(
                    "cannot generate CIRCLE_SECRETS_SESSION_COOKIE_KEY ({e}); set \
                     [services].session_cookie_key"
                ));
                SecretString::from(String::new())
            }),
        },
    };

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
    let warnings = r.warnings;
    r.problems.finish((spec, warnings))
}

/// The session cookie key an earlier render wrote into `out_dir`, so
/// re-rendering does not log every user out.
fn previous_cookie_key(out_dir: &Path) -> Option<SecretString> {
    let text = std::fs::read_to_string(out_dir.join("circle-installation-customizations")).ok()?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("export CIRCLE_SECRETS_SESSION_COOKIE_KEY='"))?;
    let key = line.strip_suffix('\'')?;
    (key.len() >= 16 && key.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| SecretString::from(key.to_owned()))
}

/// Writes the bundle into `dir`: secret files 0600, others and
/// `userdata.sh` 0644, directories 0700. Only changed files are written;
/// the actions list them.
pub fn write_bundle(dir: &Path, bundle: &Bundle) -> anyhow::Result<Vec<Action>> {
    use std::os::unix::fs::DirBuilderExt as _;
    let mut actions = Vec::new();
    let mut files: Vec<(String, &[u8], u32)> = bundle
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                f.bytes.as_slice(),
                if f.secret { 0o600 } else { 0o644 },
            )
        })
        .collect();
    files.push(("userdata.sh".to_owned(), bundle.userdata.as_bytes(), 0o644));
    for (path, bytes, mode) in files {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        if std::fs::read(&target).ok().as_deref() == Some(bytes) {
            continue;
        }
        ha_tls::write_file(&target, bytes, mode)?;
        actions.push(Action {
            kind: "write".to_owned(),
            target: target.display().to_string(),
            detail: format!(
                "write {} ({} bytes, mode {mode:o})",
                target.display(),
                bytes.len()
            ),
        });
    }
    Ok(actions)
}

/// Reads a rendered bundle back from `dir` (as `render` wrote it).
pub fn read_bundle(dir: &Path) -> anyhow::Result<Bundle> {
    let userdata = std::fs::read_to_string(dir.join("userdata.sh")).map_err(|e| {
        UsageError::new(format!(
            "{}: {e}; run `services-userdata render --out {}` first",
            dir.join("userdata.sh").display(),
            dir.display()
        ))
    })?;
    if userdata.len() > services_userdata::USERDATA_LIMIT {
        return Err(services_userdata::Error::UserdataTooLarge {
            bytes: userdata.len(),
        }
        .into());
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(dir)?
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            if relative == "userdata.sh" || relative.starts_with(".tmp-") {
                continue;
            }
            let secret = !relative.ends_with(".crt");
            files.push(BundleFile {
                path: relative,
                bytes: std::fs::read(&path)?,
                secret,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Bundle {
        files,
        userdata,
        warnings: Vec::new(),
    })
}

/// `services-userdata render`.
pub fn render(
    file: &ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
    out: &Path,
    dry_run: bool,
) -> anyhow::Result<ChangeReport> {
    let (spec, mut warnings) = bundle_spec(file, env, Some(out))?;
    let bundle = services_userdata::render(&spec).map_err(|e| match e {
        services_userdata::Error::Invalid { problems } => {
            anyhow::Error::from(UsageError { problems })
        }
        other => other.into(),
    })?;
    warnings.extend(bundle.warnings.iter().cloned());
    let actions = if dry_run {
        let mut planned = Vec::new();
        for f in &bundle.files {
            let target = out.join(&f.path);
            if std::fs::read(&target).ok().as_deref() != Some(f.bytes.as_slice()) {
                planned.push(Action {
                    kind: "write".to_owned(),
                    target: target.display().to_string(),
                    detail: format!("write {}", target.display()),
                });
            }
        }
        planned
    } else {
        write_bundle(out, &bundle)?
    };
    // Render refuses user data over the limit; say so early when it nears it.
    let limit = services_userdata::USERDATA_LIMIT;
    if bundle.userdata.len() > limit / 4 * 3 {
        warnings.push(format!(
            "user data is {} bytes, near EC2's limit of {limit}",
            bundle.userdata.len()
        ));
    }
    Ok(ChangeReport {
        tool: "services-userdata",
        dry_run,
        actions,
        warnings,
    })
}

/// The publish target from `[services]`.
pub fn target(file: &ConfigFile) -> Result<(Target, String), UsageError> {
    let services = services_section(file)?;
    let mut problems = Problems::default();
    let mut need = |key: &str, value: &Option<String>| match value {
        Some(v) if !v.is_empty() => v.clone(),
        _ => {
            problems.push(format!("[services].{key} is missing"));
            String::new()
        }
    };
    let bucket = need("s3_bucket", &services.s3_bucket);
    let launch_template = need("launch_template", &services.launch_template);
    let region = need("aws_region", &services.aws_region);
    problems.finish((
        Target {
            bucket,
            prefix: services.s3_prefix.clone().unwrap_or_default(),
            launch_template,
            kms_key_id: services.kms_key_id.clone(),
        },
        region,
    ))
}

/// `services-userdata publish`.
pub async fn publish(
    target: &Target,
    bundle: &Bundle,
    s3: &aws_sdk_s3::Client,
    ec2: &aws_sdk_ec2::Client,
    dry_run: bool,
) -> anyhow::Result<ChangeReport> {
    let observed = publish::observe(s3, ec2, target, bundle).await?;
    if observed.latest.is_none() {
        return Err(anyhow::anyhow!(
            "launch template {} has no versions: create it (AMI, instance type, an instance \
             profile that may read s3://{}/{}*) first",
            target.launch_template,
            target.bucket,
            target.prefix
        ));
    }
    let steps = publish::plan(bundle, &observed);
    if !dry_run {
        publish::apply(s3, ec2, target, bundle, &steps).await?;
    }
    Ok(ChangeReport {
        tool: "services-userdata",
        dry_run,
        actions: steps
            .iter()
            .map(|s| Action {
                kind: s.kind().to_owned(),
                target: s.target(target),
                detail: s.to_string(),
            })
            .collect(),
        warnings: Vec::new(),
    })
}

/// `services-userdata import-settings`: the TOML and a note on stderr.
pub fn import_settings(path: &Path) -> anyhow::Result<(String, Value)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
    let (toml, env_vars) = services_userdata::import_settings(&text, &path.display().to_string())
        .map_err(|e| UsageError::new(e.to_string()))?;
    Ok((toml, json!({ "secrets_to_set": env_vars })))
}
