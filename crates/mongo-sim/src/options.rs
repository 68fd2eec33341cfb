//! mongod's command line and YAML configuration file, for the options the
//! simulator supports. Anything else is refused at start-up, the way mongod
//! refuses an unknown option, never ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

use crate::version::Version;

/// `net.tls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    Disabled,
    /// TLS accepted; peers spoken to in plain text.
    Allow,
    /// TLS accepted; peers spoken to over TLS.
    Prefer,
    /// Only TLS.
    Require,
}

impl TlsMode {
    fn parse(text: &str) -> Option<TlsMode> {
        match text {
            "disabled" => Some(TlsMode::Disabled),
            "allowTLS" | "allowSSL" => Some(TlsMode::Allow),
            "preferTLS" | "preferSSL" => Some(TlsMode::Prefer),
            "requireTLS" | "requireSSL" => Some(TlsMode::Require),
            _ => None,
        }
    }
}

/// Where the log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogDestination {
    /// Standard output (mongod's default).
    Stdout,
    /// A file.
    File {
        /// The file.
        path: PathBuf,
        /// Append instead of rotating the old file away at start.
        append: bool,
    },
}

/// Everything the server is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// `net.port`.
    pub port: u16,
    /// `net.maxIncomingConnections` (`--maxConns`): connections beyond it
    /// are closed at once.
    pub max_incoming_connections: usize,
    /// `net.bindIp` (addresses or host names).
    pub bind_ip: Vec<String>,
    /// `storage.dbPath`.
    pub dbpath: PathBuf,
    /// `replication.replSetName`.
    pub repl_set: Option<String>,
    /// `security.authorization: enabled` (also implied by x509 cluster auth).
    pub auth: bool,
    /// `net.tls.mode`.
    pub tls_mode: TlsMode,
    /// `net.tls.certificateKeyFile`.
    pub tls_certificate_key_file: Option<PathBuf>,
    /// `net.tls.CAFile`.
    pub tls_ca_file: Option<PathBuf>,
    /// `net.tls.clusterFile`.
    pub tls_cluster_file: Option<PathBuf>,
    /// `net.tls.allowConnectionsWithoutCertificates`.
    pub tls_allow_connections_without_certificates: bool,
    /// `security.clusterAuthMode: x509`.
    pub cluster_auth_x509: bool,
    /// `setParameter.enableLocalhostAuthBypass`.
    pub localhost_auth_bypass: bool,
    /// `systemLog`.
    pub log: LogDestination,
    /// The server version the simulator reports (sim-only
    /// `--simServerVersion`).
    pub version: Version,
    /// The 3.6 profile's featureCompatibilityVersion (sim-only
    /// `--simFeatureCompatibilityVersion 3.4|3.6`, default 3.6): data
    /// upgraded from 3.4 and left at FCV 3.4 has no collection UUIDs, and
    /// `isMaster` then carries no `logicalSessionTimeoutMinutes`.
    pub fcv_34: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            port: 27017,
            max_incoming_connections: 1_000_000,
            bind_ip: vec!["127.0.0.1".to_owned()],
            dbpath: PathBuf::from("/data/db"),
            repl_set: None,
            auth: false,
            tls_mode: TlsMode::Disabled,
            tls_certificate_key_file: None,
            tls_ca_file: None,
            tls_cluster_file: None,
            tls_allow_connections_without_certificates: false,
            cluster_auth_x509: false,
            localhost_auth_bypass: true,
            log: LogDestination::Stdout,
            version: Version::default(),
            fcv_34: false,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Run a server.
    Run(Box<ServerOptions>),
    /// Print the version and exit.
    Version,
    /// Print help and exit.
    Help,
}

/// Why the options are unusable (mongod exits with code 2, BadOptions).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}\ntry 'mongo-sim --help' for more information")]
pub struct OptionsError(pub String);

/// One setting as read from YAML or argv, before interpretation.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Value {
    fn as_string(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// The YAML keys the simulator understands, with the CLI flag each maps to.
const KNOWN_KEYS: &[&str] = &[
    "net.port",
    "net.maxIncomingConnections",
    "net.bindIp",
    "net.bindIpAll",
    "net.tls.mode",
    "net.tls.certificateKeyFile",
    "net.tls.CAFile",
    "net.tls.clusterFile",
    "net.tls.allowConnectionsWithoutCertificates",
    "net.ssl.mode",
    "net.ssl.PEMKeyFile",
    "net.ssl.CAFile",
    "net.ssl.clusterFile",
    "net.ssl.allowConnectionsWithoutCertificates",
    "storage.dbPath",
    "storage.journal.enabled",
    "systemLog.destination",
    "systemLog.path",
    "systemLog.logAppend",
    "systemLog.logRotate",
    "systemLog.timeStampFormat",
    "systemLog.quiet",
    "replication.replSetName",
    "replication.oplogSizeMB",
    "security.authorization",
    "security.clusterAuthMode",
    "setParameter.enableLocalhostAuthBypass",
    "sim.serverVersion",
];

/// Command-line flags: (flag, YAML key, takes a value).
const FLAGS: &[(&str, &str, bool)] = &[
    ("--port", "net.port", true),
    ("--maxConns", "net.maxIncomingConnections", true),
    ("--bind_ip", "net.bindIp", true),
    ("--bind_ip_all", "net.bindIpAll", false),
    ("--tlsMode", "net.tls.mode", true),
    ("--sslMode", "net.ssl.mode", true),
    (
        "--tlsCertificateKeyFile",
        "net.tls.certificateKeyFile",
        true,
    ),
    ("--sslPEMKeyFile", "net.ssl.PEMKeyFile", true),
    ("--tlsCAFile", "net.tls.CAFile", true),
    ("--sslCAFile", "net.ssl.CAFile", true),
    ("--tlsClusterFile", "net.tls.clusterFile", true),
    ("--sslClusterFile", "net.ssl.clusterFile", true),
    (
        "--tlsAllowConnectionsWithoutCertificates",
        "net.tls.allowConnectionsWithoutCertificates",
        false,
    ),
    (
        "--sslAllowConnectionsWithoutCertificates",
        "net.ssl.allowConnectionsWithoutCertificates",
        false,
    ),
    ("--dbpath", "storage.dbPath", true),
    ("--journal", "storage.journal.enabled", false),
    ("--logpath", "systemLog.path", true),
    ("--logappend", "systemLog.logAppend", false),
    ("--logRotate", "systemLog.logRotate", true),
    ("--timeStampFormat", "systemLog.timeStampFormat", true),
    ("--quiet", "systemLog.quiet", false),
    ("--replSet", "replication.replSetName", true),
    ("--oplogSize", "replication.oplogSizeMB", true),
    ("--auth", "security.authorization", false),
    ("--clusterAuthMode", "security.clusterAuthMode", true),
    ("--simServerVersion", "sim.serverVersion", true),
    (
        "--simFeatureCompatibilityVersion",
        "sim.featureCompatibilityVersion",
        true,
    ),
];

/// Parses mongod-style arguments (without the program name).
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Invocation, OptionsError> {
    let mut settings: BTreeMap<String, Value> = BTreeMap::new();
    let mut config_file: Option<PathBuf> = None;
    let mut set_parameters: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_ref();
        i += 1;
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg, None),
        };
        let mut take_value = |flag: &str| -> Result<String, OptionsError> {
            if let Some(value) = &inline_value {
                return Ok(value.clone());
            }
            let value = args.get(i).map(|a| a.as_ref().to_owned()).ok_or_else(|| {
                OptionsError(format!(
                    "Error parsing command line: the required argument for option '{flag}' is \
                     missing"
                ))
            })?;
            i += 1;
            Ok(value)
        };
        match flag {
            "--help" | "-h" => return Ok(Invocation::Help),
            "--version" => return Ok(Invocation::Version),
            "--config" | "-f" => config_file = Some(PathBuf::from(take_value(flag)?)),
            "--setParameter" => set_parameters.push(take_value(flag)?),
            "--noauth" => {
                settings.insert(
                    "security.authorization".to_owned(),
                    Value::Str("disabled".to_owned()),
                );
            }
            "--sslOnNormalPorts" => {
                return Err(OptionsError(
                    "Error parsing command line: unrecognised option '--sslOnNormalPorts'"
                        .to_owned(),
                ));
            }
            _ => {
                let Some((_, key, takes_value)) = FLAGS.iter().find(|(f, _, _)| *f == flag) else {
                    return Err(OptionsError(format!(
                        "Error parsing command line: unrecognised option '{flag}'"
                    )));
                };
                let value = if *takes_value {
                    Value::Str(take_value(flag)?)
                } else if *key == "security.authorization" {
                    Value::Str("enabled".to_owned())
                } else {
                    Value::Bool(true)
                };
                settings.insert((*key).to_owned(), value);
            }
        }
    }
    for parameter in set_parameters {
        let (name, value) = parameter.split_once('=').ok_or_else(|| {
            OptionsError(format!("Illegal --setParameter parameter: \"{parameter}\""))
        })?;
        settings.insert(format!("setParameter.{name}"), Value::Str(value.to_owned()));
    }

    // The file first, then the command line on top (mongod's precedence).
    let mut merged: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(path) = &config_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            OptionsError(format!(
                "Error reading config file: {} ({e})",
                path.display()
            ))
        })?;
        merged = parse_yaml(&text)?;
    }
    merged.extend(settings);
    interpret(&merged).map(|options| Invocation::Run(Box::new(options)))
}

/// Flattens a YAML config file into dotted keys, refusing unknown ones.
fn parse_yaml(text: &str) -> Result<BTreeMap<String, Value>, OptionsError> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| OptionsError(format!("Error parsing YAML config file: {e}")))?;
    let mut out = BTreeMap::new();
    if let Some(doc) = docs.first() {
        flatten("", doc, &mut out)?;
    }
    Ok(out)
}

fn flatten(
    prefix: &str,
    yaml: &Yaml,
    out: &mut BTreeMap<String, Value>,
) -> Result<(), OptionsError> {
    match yaml {
        Yaml::Hash(map) => {
            for (key, value) in map {
                let Some(key) = key.as_str() else {
                    return Err(OptionsError(format!(
                        "Error parsing YAML config file: non-string key under {prefix:?}"
                    )));
                };
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                if prefix == "setParameter" {
                    let value = scalar(value).ok_or_else(|| {
                        OptionsError(format!(
                            "Error parsing YAML config file: {path} must be a scalar"
                        ))
                    })?;
                    out.insert(path, value);
                } else {
                    flatten(&path, value, out)?;
                }
            }
            Ok(())
        }
        Yaml::Null if prefix.is_empty() => Ok(()),
        other => {
            if !KNOWN_KEYS.contains(&prefix) && !prefix.starts_with("setParameter.") {
                return Err(OptionsError(format!("Unrecognized option: {prefix}")));
            }
            let value = scalar(other).ok_or_else(|| {
                OptionsError(format!(
                    "Error parsing YAML config file: {prefix} must be a scalar"
                ))
            })?;
            out.insert(prefix.to_owned(), value);
            Ok(())
        }
    }
}

fn scalar(yaml: &Yaml) -> Option<Value> {
    match yaml {
        Yaml::String(s) => Some(Value::Str(s.clone())),
        Yaml::Integer(i) => Some(Value::Int(*i)),
        Yaml::Boolean(b) => Some(Value::Bool(*b)),
        Yaml::Real(r) => Some(Value::Str(r.clone())),
        _ => None,
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool, OptionsError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Str(s) if s == "true" => Ok(true),
        Value::Str(s) if s == "false" => Ok(false),
        other => Err(OptionsError(format!(
            "Bad value for {key}: {} is not a boolean",
            other.as_string()
        ))),
    }
}

fn interpret(settings: &BTreeMap<String, Value>) -> Result<ServerOptions, OptionsError> {
    let mut options = ServerOptions::default();
    let get = |key: &str| settings.get(key);
    if let Some(value) = get("sim.serverVersion") {
        options.version = Version::parse(&value.as_string()).ok_or_else(|| {
            OptionsError(format!(
                "Bad value for --simServerVersion: {} (supported: {})",
                value.as_string(),
                Version::SUPPORTED.join(", ")
            ))
        })?;
    }
    if let Some(value) = get("sim.featureCompatibilityVersion") {
        options.fcv_34 = match (options.version.major, value.as_string().as_str()) {
            (3, "3.4") => true,
            (3, "3.6") => false,
            _ => {
                return Err(OptionsError(format!(
                    "Bad value for --simFeatureCompatibilityVersion: {} (3.4 or 3.6, with \
                     --simServerVersion 3.6 only)",
                    value.as_string()
                )));
            }
        };
    }
    if let Some(value) = get("storage.journal.enabled") {
        if !options.version.accepts_journal_option() {
            return Err(OptionsError(
                "Unrecognized option: storage.journal.enabled".to_owned(),
            ));
        }
        if !boolean("storage.journal.enabled", value)? {
            return Err(OptionsError(
                "Running with journaling disabled is not supported by mongo-sim (nor by \
                 WiredTiger replica-set members)"
                    .to_owned(),
            ));
        }
    }
    if let Some(value) = get("net.port") {
        options.port = value
            .as_string()
            .parse()
            .map_err(|_| OptionsError(format!("Bad value for net.port: {}", value.as_string())))?;
    }
    if let Some(value) = get("net.maxIncomingConnections") {
        options.max_incoming_connections = value
            .as_string()
            .parse()
            .ok()
            .filter(|n: &usize| *n > 0)
            .ok_or_else(|| {
                OptionsError(format!(
                    "Bad value for net.maxIncomingConnections: {}",
                    value.as_string()
                ))
            })?;
    }
    if let Some(value) = get("net.bindIp") {
        options.bind_ip = value
            .as_string()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    if let Some(value) = get("net.bindIpAll")
        && boolean("net.bindIpAll", value)?
    {
        options.bind_ip = vec!["0.0.0.0".to_owned()];
    }
    if let Some(value) = get("storage.dbPath") {
        options.dbpath = PathBuf::from(value.as_string());
    }
    if let Some(value) = get("replication.replSetName") {
        let name = value.as_string();
        // `name/seed1,seed2` seeds are accepted and ignored, as by mongod 3.x+.
        let name = name.split('/').next().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(OptionsError("replSetName must not be empty".to_owned()));
        }
        options.repl_set = Some(name);
    }
    if let Some(value) = get("security.authorization") {
        options.auth = match value.as_string().as_str() {
            "enabled" => true,
            "disabled" => false,
            other => {
                return Err(OptionsError(format!(
                    "Bad value for security.authorization: {other}"
                )));
            }
        };
    }
    if let Some(value) = get("security.clusterAuthMode") {
        match value.as_string().as_str() {
            "x509" => {
                options.cluster_auth_x509 = true;
                // Internal authentication enforces client authorization.
                options.auth = true;
            }
            other => {
                return Err(OptionsError(format!(
                    "mongo-sim supports clusterAuthMode x509 only, not {other}"
                )));
            }
        }
    }
    let tls_value = |tls: &str, ssl: &str| get(tls).or_else(|| get(ssl));
    if let Some(value) = tls_value("net.tls.mode", "net.ssl.mode") {
        options.tls_mode = TlsMode::parse(&value.as_string()).ok_or_else(|| {
            OptionsError(format!("Bad value for net.tls.mode: {}", value.as_string()))
        })?;
    }
    options.tls_certificate_key_file =
        tls_value("net.tls.certificateKeyFile", "net.ssl.PEMKeyFile")
            .map(|v| PathBuf::from(v.as_string()));
    options.tls_ca_file =
        tls_value("net.tls.CAFile", "net.ssl.CAFile").map(|v| PathBuf::from(v.as_string()));
    options.tls_cluster_file = tls_value("net.tls.clusterFile", "net.ssl.clusterFile")
        .map(|v| PathBuf::from(v.as_string()));
    if let Some(value) = tls_value(
        "net.tls.allowConnectionsWithoutCertificates",
        "net.ssl.allowConnectionsWithoutCertificates",
    ) {
        options.tls_allow_connections_without_certificates =
            boolean("net.tls.allowConnectionsWithoutCertificates", value)?;
    }
    if options.tls_mode != TlsMode::Disabled && options.tls_certificate_key_file.is_none() {
        return Err(OptionsError(
            "need tlsCertificateKeyFile or certificateSelector when TLS is enabled".to_owned(),
        ));
    }
    if options.cluster_auth_x509 && options.tls_mode == TlsMode::Disabled {
        return Err(OptionsError(
            "clusterAuthMode x509 requires TLS (net.tls.mode other than disabled)".to_owned(),
        ));
    }
    if options.cluster_auth_x509 && options.tls_ca_file.is_none() {
        return Err(OptionsError(
            "clusterAuthMode x509 requires net.tls.CAFile".to_owned(),
        ));
    }
    if let Some(value) = get("setParameter.enableLocalhostAuthBypass") {
        options.localhost_auth_bypass = match value.as_string().as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            other => {
                return Err(OptionsError(format!(
                    "Bad value for enableLocalhostAuthBypass: {other}"
                )));
            }
        };
    }
    if let Some((key, _)) = settings.iter().find(|(k, _)| {
        k.starts_with("setParameter.") && *k != "setParameter.enableLocalhostAuthBypass"
    }) {
        return Err(OptionsError(format!(
            "Unknown --setParameter '{}' (mongo-sim supports enableLocalhostAuthBypass)",
            key.trim_start_matches("setParameter.")
        )));
    }
    let destination = get("systemLog.destination").map(Value::as_string);
    let append = match get("systemLog.logAppend") {
        Some(value) => boolean("systemLog.logAppend", value)?,
        None => false,
    };
    if let Some(rotate) = get("systemLog.logRotate").map(Value::as_string) {
        match rotate.as_str() {
            "rename" => {}
            "reopen" if append => {}
            "reopen" => {
                return Err(OptionsError(
                    "logRotate is 'reopen' but logAppend is false: reopen requires logAppend"
                        .to_owned(),
                ));
            }
            other => {
                return Err(OptionsError(format!(
                    "Bad value for systemLog.logRotate: {other}"
                )));
            }
        }
    }
    if let Some(format) = get("systemLog.timeStampFormat").map(Value::as_string)
        && !matches!(format.as_str(), "iso8601-utc" | "iso8601-local")
    {
        return Err(OptionsError(format!(
            "Bad value for systemLog.timeStampFormat: {format}"
        )));
    }
    options.log = match (destination.as_deref(), get("systemLog.path")) {
        (Some("file"), Some(path)) | (None, Some(path)) => LogDestination::File {
            path: PathBuf::from(path.as_string()),
            append,
        },
        (Some("file"), None) => {
            return Err(OptionsError(
                "systemLog.destination is file but systemLog.path is not set".to_owned(),
            ));
        }
        (Some("syslog"), _) => {
            return Err(OptionsError(
                "mongo-sim does not log to syslog; use systemLog.destination: file".to_owned(),
            ));
        }
        (None, None) => LogDestination::Stdout,
        (Some(other), _) => {
            return Err(OptionsError(format!(
                "Bad value for systemLog.destination: {other}"
            )));
        }
    };
    Ok(options)
}

#[cfg(test)]
mod tests;
