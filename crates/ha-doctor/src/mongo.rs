//! One MongoDB URI of the customizations file, checked as CircleCI will
//! use it: it parses; every host resolves and answers; TLS against the
//! installed CA; the set's name; the set's own member names reachable from
//! here; the login; a write to its database.

use std::net::SocketAddr;
use std::time::Duration;

use bson::{doc, oid::ObjectId};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, ServerAddress, Tls};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{Ca, Cause, Options, Report};

/// A URI taken apart (the password kept as a secret).
struct Parts {
    password: Option<String>,
    hosts: Vec<String>,
    database: String,
    replica_set: Option<String>,
    tls: bool,
}

fn parse(uri: &str) -> Result<Parts, String> {
    let rest = uri.strip_prefix("mongodb://").ok_or_else(|| {
        if uri.starts_with("mongodb+srv://") {
            "the scheme mongodb+srv:// needs DNS SRV records; CircleCI's URIs use mongodb://"
                .to_owned()
        } else {
            "the scheme: it must start with mongodb://".to_owned()
        }
    })?;
    let (authority, tail) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => return Err("the database: no /<database> after the hosts".to_owned()),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let password = match userinfo {
        Some(info) => {
            if info.contains('@') {
                return Err(
                    "the user info: an unescaped @ (percent-encode it as %40 in the password)"
                        .to_owned(),
                );
            }
            let Some((user, password)) = info.split_once(':') else {
                return Err("the user info: no password after the user name".to_owned());
            };
            if user.is_empty() || password.contains(':') {
                return Err(
                    "the user info: an unescaped : (percent-encode it as %3A in the password)"
                        .to_owned(),
                );
            }
            Some(
                percent_decode_str(password)
                    .decode_utf8()
                    .map_err(|_| "the user info: a percent-escape that is not UTF-8".to_owned())?
                    .into_owned(),
            )
        }
        None => None,
    };
    let hosts: Vec<String> = hosts.split(',').map(str::to_owned).collect();
    for host in &hosts {
        let port_ok = match host.rsplit_once(':') {
            Some((name, port)) => !name.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
            None => !host.is_empty(),
        };
        if !port_ok {
            return Err(format!("the host list: {host:?} is not host or host:port"));
        }
    }
    let (database, query) = tail.split_once('?').unwrap_or((tail, ""));
    if database.is_empty() || database.contains(['/', '\\', ' ', '"', '$', '.']) {
        return Err("the database name".to_owned());
    }
    let mut replica_set = None;
    let mut tls = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("the options: {pair:?} is not key=value"));
        };
        match key.to_ascii_lowercase().as_str() {
            "replicaset" => replica_set = Some(value.to_owned()),
            "ssl" | "tls" => tls = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    Ok(Parts {
        password,
        hosts: hosts
            .into_iter()
            .map(|h| {
                if h.contains(':') {
                    h
                } else {
                    format!("{h}:27017")
                }
            })
            .collect(),
        database: database.to_owned(),
        replica_set,
        tls,
    })
}

/// Replaces every occurrence of the password (and its percent-encoded
/// form) in a driver message.
fn redact(text: &str, password: Option<&str>) -> String {
    match password {
        Some(password) if !password.is_empty() => text.replace(password, "<password>").replace(
            &services_userdata::text::encode_userinfo(password),
            "<password>",
        ),
        _ => text.to_owned(),
    }
}

/// How a member answers a TCP connection from here.
#[derive(Clone, Debug)]
pub(crate) enum Reach {
    Open,
    Unresolved(String),
    /// Refused, or no answer: why, and whether 127.0.0.1 on the same port
    /// answers (the member is listening on localhost only).
    Closed(String, bool),
}

/// The hosts of every URI that parses, each reached once, all at the same
/// time: a dead network costs one deadline, not one per host and URI.
pub(crate) async fn reach_all(
    uris: &[(String, SecretString)],
    timeout: Duration,
) -> std::collections::HashMap<String, Reach> {
    let mut hosts: Vec<String> = uris
        .iter()
        .filter_map(|(_, uri)| parse(uri.expose_secret()).ok())
        .flat_map(|parts| parts.hosts)
        .collect();
    hosts.sort();
    hosts.dedup();
    let reached = futures_util::future::join_all(hosts.iter().map(|h| reach(h, timeout))).await;
    hosts.into_iter().zip(reached).collect()
}

async fn reach(host: &str, timeout: Duration) -> Reach {
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(timeout, tokio::net::lookup_host(host))
        .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => return Reach::Unresolved(e.to_string()),
        Err(_) => {
            return Reach::Unresolved(format!("no answer from DNS within {}s", timeout.as_secs()));
        }
    };
    let Some(addr) = addrs.first().copied() else {
        return Reach::Unresolved("no address".to_owned());
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Reach::Open,
        Ok(Err(e)) => {
            // A member bound to 127.0.0.1 while it is named by another of
            // this machine's addresses refuses exactly this way.
            let localhost = std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()));
            let only_localhost = addr.ip().is_loopback()
                && addr != localhost
                && matches!(
                    tokio::time::timeout(timeout, tokio::net::TcpStream::connect(localhost)).await,
                    Ok(Ok(_))
                );
            Reach::Closed(format!("{e} ({addr})"), only_localhost)
        }
        Err(_) => Reach::Closed(
            format!("no answer within {}s ({addr})", timeout.as_secs()),
            false,
        ),
    }
}

/// A TLS handshake with `host` (`name:port`) against the installed CA, as
/// the services' client will do it: `None` when it succeeds, else the
/// reason (unknown issuer, wrong name, expired …). Quick where the
/// driver's server selection would wait out its whole timeout.
async fn tls_handshake(host: &str, ca: Option<&Ca>, timeout: Duration) -> Option<String> {
    let ca = ca?;
    let config = match ha_tls::client_config(
        Some((&ca.pem, &ca.path.display().to_string())),
        ha_tls::ServerVerification::Full,
        None,
    ) {
        Ok(config) => config,
        Err(e) => return Some(e.to_string()),
    };
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.to_owned()) else {
        return Some(format!("{name} is not a host name TLS can check"));
    };
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(server_name, stream)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(format!("no TLS handshake within {}s", timeout.as_secs())),
    }
}

fn classify(error: &mongodb::error::Error) -> Cause {
    let text = error.to_string().to_ascii_lowercase();
    match &*error.kind {
        ErrorKind::Authentication { .. } => Cause::Credentials,
        ErrorKind::Command(c) if c.code == 13 || c.code == 18 => {
            if c.code == 18 {
                Cause::Credentials
            } else {
                Cause::DatabaseConfiguration
            }
        }
        _ if text.contains("certificate")
            || text.contains("tls")
            || text.contains("handshake")
            || text.contains("unknownissuer")
            || text.contains("notvalidforname") =>
        {
            Cause::Tls
        }
        _ if text.contains("replica set name") || text.contains("setname") => {
            Cause::DatabaseConfiguration
        }
        _ => Cause::Network,
    }
}

/// The driver's options for the members `parts` names, as CircleCI would
/// reach them (TLS when the URI asks for it, trusting the installed CA).
fn client_options(parts: &Parts, ca: Option<&Ca>, options: &Options) -> ClientOptions {
    mongo_rs_setup::driver::Endpoint {
        hosts: Vec::new(),
        replica_set: None,
        direct: false,
        transport: transport(parts.tls, ca),
        login: None,
        app_name: "ha-doctor",
        connect_timeout: Some(options.step_timeout),
        server_selection_timeout: options.step_timeout * 2,
    }
    .options()
}

fn transport(tls: bool, ca: Option<&Ca>) -> mongo_rs_setup::driver::Transport<'_> {
    if tls {
        mongo_rs_setup::driver::Transport::Tls {
            ca_file: ca.map(|c| c.path.as_path()),
            certificate_key_file: None,
        }
    } else {
        mongo_rs_setup::driver::Transport::Plain
    }
}

pub(crate) async fn check_uri(
    name: &str,
    uri: &SecretString,
    ca: Option<&Ca>,
    reached: &std::collections::HashMap<String, Reach>,
    options: &Options,
    report: &mut Report,
) {
    let uri = uri.expose_secret();
    let parts = match parse(uri) {
        Ok(parts) => parts,
        Err(part) => {
            report.check(name, "");
            report.find(
                Cause::MalformedUri,
                name,
                "",
                format!("does not parse: look at {part} (mongodb://user:password@host:port,…/database?replicaSet=…&ssl=true&authSource=admin)"),
            );
            return;
        }
    };
    let check = UriCheck {
        name,
        hosts: parts.hosts.join(","),
        parts: &parts,
        ca,
        options,
    };
    report.check(name, &check.hosts);
    if !parts.tls {
        report.find(
            Cause::Tls,
            name,
            &check.hosts,
            "has no ssl=true: the password and data cross the network in clear, and a TLS-only \
             set refuses it",
        );
    }
    let open = check.open_hosts(reached, report).await;
    let Some(first) = open.first() else {
        return;
    };
    if check.set_shape(first, report).await {
        check.as_circleci(uri, report).await;
    }
}

/// One URI's checks, stage by stage; each stage that finds the URI
/// unusable says so in the report and the later ones do not run.
struct UriCheck<'a> {
    /// The setting the URI is (`MONGO_URI`, …).
    name: &'a str,
    parts: &'a Parts,
    /// The hosts, comma-separated, for the report.
    hosts: String,
    ca: Option<&'a Ca>,
    options: &'a Options,
}

impl UriCheck<'_> {
    /// The URI's password, for redacting driver messages.
    fn password(&self) -> Option<&str> {
        self.parts.password.as_deref()
    }

    /// The URI's hosts this machine reaches (`reached`: those the earlier
    /// checks already tried); each one it does not is a finding with why.
    async fn open_hosts(
        &self,
        reached: &std::collections::HashMap<String, Reach>,
        report: &mut Report,
    ) -> Vec<String> {
        let mut open = Vec::new();
        for host in &self.parts.hosts {
            let reach = match reached.get(host) {
                Some(known) => known.clone(),
                None => reach(host, self.options.step_timeout).await,
            };
            match reach {
                Reach::Open => open.push(host.clone()),
                Reach::Unresolved(why) => report.find(
                    Cause::Network,
                    self.name,
                    host,
                    format!("does not resolve from this machine ({why}): add it to DNS (the runbook's step 2)"),
                ),
                Reach::Closed(why, true) => report.find(
                    Cause::LocalhostOnly,
                    self.name,
                    host,
                    format!(
                        "refuses connections from here ({why}) but answers on localhost: mongod is \
                         restricted to localhost; add this host's address to net.bindIp"
                    ),
                ),
                Reach::Closed(why, false) => report.find(
                    Cause::Network,
                    self.name,
                    host,
                    format!(
                        "does not answer from this machine ({why}): mongod down, a firewall or \
                         security group, or net.bindIp without this address"
                    ),
                ),
            }
        }
        open
    }

    /// The set as its member `first` describes it, over TLS, without
    /// logging in: the handshake against the installed CA, the set's name
    /// against the URI's, every member reachable from here. False when the
    /// URI cannot be used further.
    async fn set_shape(&self, first: &str, report: &mut Report) -> bool {
        if self.parts.tls
            && let Some(why) = tls_handshake(first, self.ca, self.options.step_timeout).await
        {
            report.find(
                Cause::Tls,
                self.name,
                first,
                format!(
                    "the TLS handshake against the installed CA fails ({why}): the server's \
                     certificate must be signed by that CA, name this host and be valid now"
                ),
            );
            return false;
        }
        // The set as its member describes it, over TLS, without logging in.
        let mut direct = client_options(self.parts, self.ca, self.options);
        direct.hosts =
            vec![ServerAddress::parse(first).unwrap_or_else(|_| ServerAddress::default())];
        direct.direct_connection = Some(true);
        let hello = match mongodb::Client::with_options(direct) {
            Ok(client) => {
                client
                    .database("admin")
                    .run_command(doc! {"hello": 1})
                    .await
            }
            Err(e) => Err(e),
        };
        let hello = match hello {
            Ok(hello) => hello,
            Err(e) => {
                let cause = classify(&e);
                report.find(
                    cause,
                    self.name,
                    first,
                    redact(&format!("{e}"), self.password()),
                );
                return false;
            }
        };
        let set_name = hello.get_str("setName").ok().map(str::to_owned);
        if self.parts.replica_set.is_some() && self.parts.replica_set != set_name {
            report.find(
                Cause::DatabaseConfiguration,
                self.name,
                first,
                format!(
                    "replicaSet={} but the set is named {}: fix the URI (or the set's --replSet)",
                    self.parts.replica_set.as_deref().unwrap_or(""),
                    set_name.as_deref().unwrap_or("(not a replica set)")
                ),
            );
            return false;
        }
        let members: Vec<String> = hello
            .get_array("hosts")
            .map(|hosts| {
                hosts
                    .iter()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for member in members
            .iter()
            .filter(|m| !self.parts.hosts.iter().any(|h| h.eq_ignore_ascii_case(m)))
        {
            match reach(member, self.options.step_timeout).await {
                Reach::Open => {}
                _ => report.find(
                    Cause::Network,
                    self.name,
                    member,
                    "the set's configuration names this member, and it cannot be reached from here \
                     (an AWS-internal host name? rename the members as the runbook's note says)",
                ),
            }
        }
        true
    }

    /// As CircleCI connects: the whole URI, its user and authSource; a
    /// ping, then (unless read-only) a write and its removal.
    async fn as_circleci(&self, uri: &str, report: &mut Report) {
        // As CircleCI: the whole URI, its user and authSource.
        let mut full = match ClientOptions::parse(uri).await {
            Ok(full) => full,
            Err(e) => {
                report.find(
                    Cause::MalformedUri,
                    self.name,
                    &self.hosts,
                    redact(&format!("the driver rejects it: {e}"), self.password()),
                );
                return;
            }
        };
        full.connect_timeout = Some(self.options.step_timeout);
        full.server_selection_timeout = Some(self.options.step_timeout * 2);
        // CircleCI's own TLS options stay as its URI says; only the CA file
        // is the one installed on this machine.
        if let Some(Tls::Enabled(tls)) = &mut full.tls {
            tls.ca_file_path = self.ca.map(|c| c.path.clone());
        }
        let client = match mongodb::Client::with_options(full) {
            Ok(client) => client,
            Err(e) => {
                report.find(
                    classify(&e),
                    self.name,
                    &self.hosts,
                    redact(&e.to_string(), self.password()),
                );
                return;
            }
        };
        let database = client.database(&self.parts.database);
        if let Err(e) = database.run_command(doc! {"ping": 1}).await {
            let cause = classify(&e);
            let message = match cause {
                Cause::Credentials => {
                    "the login fails: the user, its password or authSource is wrong \
                                       (the user is created in admin: authSource=admin)"
                        .to_owned()
                }
                _ => redact(&e.to_string(), self.password()),
            };
            report.find(cause, self.name, &self.hosts, message);
            return;
        }
        if self.options.read_only {
            return;
        }
        let probe = database.collection::<bson::Document>("circle_ha_doctor_probe");
        let id = ObjectId::new();
        match probe
            .insert_one(doc! {"_id": id, "by": "circle-ha doctor"})
            .await
        {
            Ok(_) => {
                let _ = probe.delete_one(doc! {"_id": id}).await;
                let _ = probe.drop().await;
            }
            Err(e) => {
                let cause = classify(&e);
                let message = if cause == Cause::DatabaseConfiguration {
                    format!(
                        "the user may not write to {}: grant it readWrite on {} (the runbook's \
                         createUser forgets remote_containers_dev_ghe)",
                        self.parts.database, self.parts.database
                    )
                } else {
                    redact(&e.to_string(), self.password())
                };
                report.find(cause, self.name, &self.parts.database, message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, redact};

    #[test]
    fn malformed_parts_are_named_without_the_password() {
        for (uri, part) in [
            ("mongo://u:p@h:1/db", "the scheme"),
            ("mongodb://u:p@h:1", "the database"),
            ("mongodb://u:p@ss@h:1/db", "unescaped @"),
            ("mongodb://u:p:ss@h:1/db", "unescaped :"),
            ("mongodb://u:pw@h:99999/db", "the host list"),
            ("mongodb://u:pw@h:1/db?ssl", "the options"),
        ] {
            let error = parse(uri).err().unwrap_or_default();
            assert!(error.contains(part), "{uri}: {error}");
            assert!(!error.contains("pw") && !error.contains("p@ss"), "{error}");
        }
        let parts =
            parse("mongodb://circle:p%40ss@a:1,b/circle_ghe?replicaSet=rs&ssl=true").unwrap();
        assert_eq!(parts.password.as_deref(), Some("p@ss"));
        assert_eq!(parts.hosts, ["a:1", "b:27017"]);
        assert_eq!(parts.replica_set.as_deref(), Some("rs"));
        assert!(parts.tls);
        assert_eq!(
            redact("auth failed for p@ss and p%40ss", Some("p@ss")),
            "auth failed for <password> and <password>"
        );
    }
}
