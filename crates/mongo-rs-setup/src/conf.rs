//! `mongod.conf` for one replica-set member, following the runbook's
//! template and correct for the server version it will run.
//!
//! The runbook's template is written for MongoDB 3.2: `net.ssl.*` names, a
//! `storage.journal.enabled` key, and no `net.bindIp` (3.2 listened on every
//! interface; 3.6 and later listen on localhost only unless told otherwise,
//! so the template's members could not reach each other on a current
//! server). [`render`] keeps the template's intent — journal, a log file
//! with `reopen` rotation and ISO-8601 UTC timestamps, the replica-set name,
//! authorization, x509 member authentication, TLS required with the
//! member's certificate as client and cluster certificate, password clients
//! without certificates allowed — and writes it in the dialect of the
//! configured version:
//!
//! - `net.tls.*` from 4.2 (`mode: requireTLS`, `certificateKeyFile`), else
//!   `net.ssl.*` (`mode: requireSSL`, `PEMKeyFile`);
//! - `storage.journal.enabled: true` only below 6.1, which removed the option
//!   and refuses to start with it (journaling is always on there);
//! - `net.bindIp: localhost,<member host>` unless configured otherwise.

use crate::version::ServerVersion;

/// Where files live on the member's own machine. Each path may contain
/// `{host}` and `{port}`, replaced by the member's host name and port, so
/// one setting serves every member (`{port}` tells apart several members on
/// one machine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPaths {
    /// `storage.dbPath` (runbook: `/mongo/data`).
    pub db_path: String,
    /// `systemLog.path` (runbook: `/mongo/logs/mongod.log`).
    pub log_path: String,
    /// The member's certificate and private key, one PEM file (runbook:
    /// `/etc/mongodb/<cert name>.pem`; default `/etc/mongodb/{host}.pem`).
    pub certificate_key_file: String,
    /// The certificate the member presents to other members (runbook: the
    /// same file).
    pub cluster_file: String,
    /// The CA certificate (default `/etc/mongodb/ca.pem`).
    pub ca_file: String,
}

impl Default for ServerPaths {
    /// The runbook's paths.
    fn default() -> ServerPaths {
        ServerPaths {
            db_path: "/mongo/data".to_owned(),
            log_path: "/mongo/logs/mongod.log".to_owned(),
            certificate_key_file: "/etc/mongodb/{host}.pem".to_owned(),
            cluster_file: "/etc/mongodb/{host}.pem".to_owned(),
            ca_file: "/etc/mongodb/ca.pem".to_owned(),
        }
    }
}

/// Everything [`render`] needs for one member.
#[derive(Clone, Debug)]
pub struct MemberConf<'a> {
    /// `replication.replSetName`.
    pub replica_set: &'a str,
    /// The version the member runs: selects the dialect.
    pub version: ServerVersion,
    /// The member's host name, as the other members and clients reach it
    /// (without the port).
    pub host: &'a str,
    /// `net.port`.
    pub port: u16,
    /// `net.bindIp` entries; empty means `localhost` and the member's host.
    pub bind_ip: &'a [String],
    /// File locations on the member.
    pub paths: &'a ServerPaths,
}

/// The complete `mongod.conf` text for one member.
pub fn render(conf: &MemberConf<'_>) -> String {
    let path = |template: &str| {
        quote(
            &template
                .replace("{host}", conf.host)
                .replace("{port}", &conf.port.to_string()),
        )
    };
    let bind_ip = if conf.bind_ip.is_empty() {
        let mut names = vec!["localhost".to_owned()];
        if !matches!(conf.host, "localhost" | "127.0.0.1" | "::1") {
            names.push(conf.host.to_owned());
        }
        names
    } else {
        conf.bind_ip.to_vec()
    };
    let mut out = String::new();
    out.push_str(&format!(
        "# mongod.conf for {}:{} in replica set {}, MongoDB {} dialect.\n\
         # Written by `mongo-rs-setup render-config`; edit ha.toml and render again\n\
         # rather than editing this file.\n",
        conf.host, conf.port, conf.replica_set, conf.version
    ));
    out.push_str("storage:\n");
    out.push_str(&format!("  dbPath: {}\n", path(&conf.paths.db_path)));
    if conf.version.accepts_journal_option() {
        out.push_str("  journal:\n    enabled: true\n");
    } else {
        out.push_str("  # journaling is always on: this version has no storage.journal.enabled\n");
    }
    out.push_str("\nsystemLog:\n  destination: file\n  logAppend: true\n");
    out.push_str(&format!("  path: {}\n", path(&conf.paths.log_path)));
    out.push_str("  logRotate: reopen\n  timeStampFormat: iso8601-utc\n");
    out.push_str("\nreplication:\n");
    out.push_str(&format!("  replSetName: {}\n", quote(conf.replica_set)));
    out.push_str("\nsecurity:\n  authorization: enabled\n  clusterAuthMode: x509\n");
    out.push_str("\nnet:\n");
    out.push_str(&format!("  port: {}\n", conf.port));
    out.push_str(&format!("  bindIp: {}\n", quote(&bind_ip.join(","))));
    let (section, mode, key_file) = if conf.version.has_tls_option_names() {
        ("tls", "requireTLS", "certificateKeyFile")
    } else {
        ("ssl", "requireSSL", "PEMKeyFile")
    };
    out.push_str(&format!("  {section}:\n    mode: {mode}\n"));
    out.push_str(&format!(
        "    {key_file}: {}\n",
        path(&conf.paths.certificate_key_file)
    ));
    out.push_str(&format!(
        "    clusterFile: {}\n",
        path(&conf.paths.cluster_file)
    ));
    out.push_str(&format!("    CAFile: {}\n", path(&conf.paths.ca_file)));
    out.push_str("    allowConnectionsWithoutCertificates: true\n");
    out
}

/// A YAML double-quoted scalar: safe for any text (spaces, `#`, `:`,
/// non-ASCII), read the same by yaml-cpp (mongod) and other YAML parsers.
/// A logrotate(8) snippet for the member's log, to go with [`render`]'s
/// `systemLog.logRotate: reopen`: the file is renamed, a new one created
/// (0600, the `mongodb` user of the Ubuntu/Debian packages), and every
/// mongod on the machine told with SIGUSR1 to reopen its log. `Err` names
/// a log path logrotate cannot be given (a double quote or a line break
/// in it).
pub fn render_logrotate(conf: &MemberConf<'_>) -> Result<String, String> {
    let log = conf
        .paths
        .log_path
        .replace("{host}", conf.host)
        .replace("{port}", &conf.port.to_string());
    if log.contains(['"', '\n', '\r']) {
        return Err(format!(
            "the log path {log:?} holds a quote or a line break, which logrotate cannot read"
        ));
    }
    Ok(format!(
        "# logrotate for mongod at {}:{} (replica set {}): mongod.conf sets\n\
         # systemLog.logRotate: reopen, so the file is renamed and mongod, told with\n\
         # SIGUSR1, reopens it. Written by `mongo-rs-setup render-config --logrotate`;\n\
         # install as /etc/logrotate.d/mongod.\n\
         \"{log}\" {{\n    daily\n    rotate 14\n    maxsize 512M\n    compress\n    delaycompress\n    \
         missingok\n    notifempty\n    su mongodb mongodb\n    create 0600 mongodb mongodb\n    \
         sharedscripts\n    postrotate\n        /usr/bin/pkill -USR1 -x mongod || true\n    \
         endscript\n}}\n",
        conf.host, conf.port, conf.replica_set
    ))
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(version: &str) -> String {
        let paths = ServerPaths::default();
        render(&MemberConf {
            replica_set: "circle",
            version: ServerVersion::parse(version).unwrap(),
            host: "mongo-1.internal",
            port: 27017,
            bind_ip: &[],
            paths: &paths,
        })
    }

    #[test]
    fn current_servers_get_tls_names_and_no_journal_key() {
        let text = conf("7.0");
        assert!(text.contains("  tls:\n    mode: requireTLS\n"), "{text}");
        assert!(text.contains("certificateKeyFile: \"/etc/mongodb/mongo-1.internal.pem\""));
        assert!(
            !text.contains("journal:") && !text.contains("ssl:"),
            "{text}"
        );
        assert!(text.contains("bindIp: \"localhost,mongo-1.internal\""));
        assert!(text.contains("logRotate: reopen\n  timeStampFormat: iso8601-utc"));
    }

    #[test]
    fn old_servers_get_the_runbooks_ssl_names_and_journal() {
        let paths = ServerPaths {
            db_path: "/data/{host}-{port}".to_owned(),
            ..ServerPaths::default()
        };
        let text = render(&MemberConf {
            replica_set: "circle",
            version: ServerVersion::parse("7.0").unwrap(),
            host: "db",
            port: 27018,
            bind_ip: &[],
            paths: &paths,
        });
        assert!(text.contains("dbPath: \"/data/db-27018\""), "{text}");
        let text = conf("3.2.11");
        assert!(text.contains("  ssl:\n    mode: requireSSL\n"), "{text}");
        assert!(text.contains("PEMKeyFile: "));
        assert!(text.contains("  journal:\n    enabled: true\n"));
        let text = conf("6.0");
        assert!(text.contains("  tls:\n") && text.contains("enabled: true"));
    }

    #[test]
    fn quoting_survives_hostile_paths() {
        assert_eq!(quote(r#"a "b"\c: #d ö"#), r#""a \"b\"\\c: #d ö""#);
        assert_eq!(quote("x\u{1}"), "\"x\\u0001\"");
    }

    #[test]
    fn the_logrotate_snippet_renames_and_signals_for_the_members_log() {
        let paths = ServerPaths {
            log_path: "/mongo/logs/{host}-{port}/mongod.log".to_owned(),
            ..ServerPaths::default()
        };
        let conf = MemberConf {
            replica_set: "rs0",
            version: ServerVersion::parse("7.0").unwrap(),
            host: "mongo-1.internal",
            port: 27017,
            bind_ip: &[],
            paths: &paths,
        };
        let text = render_logrotate(&conf).unwrap();
        assert!(
            text.contains("\"/mongo/logs/mongo-1.internal-27017/mongod.log\" {\n"),
            "{text}"
        );
        assert!(text.contains("pkill -USR1 -x mongod"), "{text}");
        assert!(!text.contains("copytruncate"), "{text}");
        let bad = ServerPaths {
            log_path: "/logs/\"x\"".to_owned(),
            ..ServerPaths::default()
        };
        assert!(
            render_logrotate(&MemberConf {
                paths: &bad,
                ..conf
            })
            .is_err()
        );
    }
}
