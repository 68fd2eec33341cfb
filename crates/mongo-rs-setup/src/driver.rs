//! The one place the workspace builds the MongoDB driver's client options:
//! mongo-rs-setup's member sessions (and mongo-backup, through them),
//! circle-export's restore target and ha-doctor's checks all call
//! [`Endpoint::options`] (or [`use_tls`] on options parsed from a URI).
//!
//! The driver makes its TLS connections itself, with its own rustls
//! configuration read from file paths: what is decided here is which files
//! it is given. Verification stays on — nothing here sets
//! `allow_invalid_certificates` — and a member
//! is checked against the CA file named, or against the system's roots
//! when none is.

use std::path::Path;
use std::time::Duration;

use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use secrecy::{ExposeSecret as _, SecretString};

use crate::spec::TlsFiles;

/// How to reach MongoDB: members, set, transport, login and patience.
#[derive(Clone, Debug)]
pub struct Endpoint<'a> {
    /// The members to connect to.
    pub hosts: Vec<ServerAddress>,
    /// The replica set's name, when the client should discover it.
    pub replica_set: Option<String>,
    /// Talk to the one host given, whatever its role.
    pub direct: bool,
    /// Plain or TLS, and with which files.
    pub transport: Transport<'a>,
    /// Who logs in (`None`: nobody).
    pub login: Option<Login<'a>>,
    /// The name the servers log the connection under.
    pub app_name: &'a str,
    /// How long a connection may take to open (`None`: the driver's 10 s).
    pub connect_timeout: Option<Duration>,
    /// How long an operation waits for a member it can use.
    pub server_selection_timeout: Duration,
}

/// Plain TCP, or TLS with the files the driver reads.
#[derive(Clone, Copy, Debug)]
pub enum Transport<'a> {
    /// No TLS.
    Plain,
    /// TLS with full verification.
    Tls {
        /// The CA the members' certificates chain to (`None`: the
        /// system's roots).
        ca_file: Option<&'a Path>,
        /// A client certificate and key (PEM), for members that ask.
        certificate_key_file: Option<&'a Path>,
    },
}

impl<'a> From<Option<&'a TlsFiles>> for Transport<'a> {
    fn from(files: Option<&'a TlsFiles>) -> Transport<'a> {
        match files {
            None => Transport::Plain,
            Some(files) => Transport::Tls {
                ca_file: Some(&files.ca_file),
                certificate_key_file: files.certificate_key_file.as_deref(),
            },
        }
    }
}

/// A user authenticating against `admin` with SCRAM (the mechanism the
/// server offers).
#[derive(Clone, Copy)]
pub struct Login<'a> {
    /// The user name.
    pub user: &'a str,
    /// Its password.
    pub password: &'a SecretString,
}

impl std::fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Endpoint<'_> {
    /// The driver's options (no connection is made).
    pub fn options(&self) -> ClientOptions {
        let mut options = ClientOptions::builder()
            .hosts(self.hosts.clone())
            .repl_set_name(self.replica_set.clone())
            .direct_connection(self.direct.then_some(true))
            .app_name(self.app_name.to_owned())
            .connect_timeout(self.connect_timeout)
            .server_selection_timeout(self.server_selection_timeout)
            .build();
        use_tls(&mut options, self.transport);
        if let Some(login) = self.login {
            options.credential = Some(
                Credential::builder()
                    .username(login.user.to_owned())
                    .password(login.password.expose_secret().to_owned())
                    .source("admin".to_owned())
                    .build(),
            );
        }
        options
    }
}

/// Sets `options`' transport: [`Transport::Plain`] leaves options parsed
/// from a URI as the URI said; TLS replaces the driver's TLS options with
/// verification on and these files.
pub fn use_tls(options: &mut ClientOptions, transport: Transport<'_>) {
    if let Transport::Tls {
        ca_file,
        certificate_key_file,
    } = transport
    {
        options.tls = Some(Tls::Enabled(
            TlsOptions::builder()
                .ca_file_path(ca_file.map(Path::to_path_buf))
                .cert_key_file_path(certificate_key_file.map(Path::to_path_buf))
                .build(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_verified_and_the_login_is_against_admin() {
        let files = TlsFiles {
            ca_file: "/etc/ssl/ca.pem".into(),
            certificate_key_file: Some("/etc/ssl/me.pem".into()),
        };
        let password = SecretString::from("p'\"$@:/?#%wörd".to_owned());
        let options = Endpoint {
            hosts: vec![ServerAddress::parse("mongo-1:27017").unwrap()],
            replica_set: Some("rs0".to_owned()),
            direct: false,
            transport: Some(&files).into(),
            login: Some(Login {
                user: "circle-admin",
                password: &password,
            }),
            app_name: "test",
            connect_timeout: None,
            server_selection_timeout: Duration::from_secs(5),
        }
        .options();
        let Some(Tls::Enabled(tls)) = &options.tls else {
            panic!("no TLS")
        };
        assert_eq!(tls.ca_file_path.as_deref(), Some(files.ca_file.as_path()));
        assert_eq!(tls.allow_invalid_certificates, None);
        let credential = options.credential.as_ref().unwrap();
        assert_eq!(credential.source.as_deref(), Some("admin"));
        assert_eq!(options.direct_connection, None);
        assert_eq!(options.repl_set_name.as_deref(), Some("rs0"));
        let mut plain = options.clone();
        plain.tls = None;
        use_tls(&mut plain, Transport::Plain);
        assert!(plain.tls.is_none());
    }
}
