//! Connections: where the server is, how TLS is checked, who logs in.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::Error;
use crate::error::describe_pg_error;

/// libpq's `sslmode` values that make sense for a tool: TLS is either off or
/// required, and the server's certificate is checked as much as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS at all.
    Disable,
    /// TLS, but the server's certificate is not checked (if a CA file is
    /// given the chain is checked, as libpq does).
    Require,
    /// TLS, the chain must lead to the CA; the host name is not checked.
    VerifyCa,
    /// TLS, the chain must lead to the CA and the certificate must name the
    /// host. The default.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling (`disable`, `require`, `verify-ca`,
    /// `verify-full`). `allow` and `prefer` are refused: a tool should not
    /// silently fall back to plain text.
    pub fn parse(text: &str) -> Option<SslMode> {
        match text {
            "disable" => Some(SslMode::Disable),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the server is and how to talk to it.
#[derive(Clone)]
pub struct Server {
    /// Host name (used for TLS verification) or IP address.
    pub host: String,
    /// Connect to this address instead of resolving `host` (libpq's
    /// `hostaddr`); TLS still verifies against `host`.
    pub hostaddr: Option<IpAddr>,
    /// TCP port.
    pub port: u16,
    /// TLS mode.
    pub sslmode: SslMode,
    /// PEM CA bundle and its path (for messages), needed for `verify-ca` and
    /// `verify-full`.
    pub ca: Option<(Vec<u8>, String)>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("host", &self.host)
            .field("hostaddr", &self.hostaddr)
            .field("port", &self.port)
            .field("sslmode", &self.sslmode)
            .field("ca", &self.ca.as_ref().map(|(_, path)| path))
            .finish()
    }
}

/// A user name and password.
#[derive(Clone)]
pub struct Login {
    /// The role to log in as.
    pub user: String,
    /// Its password.
    pub password: SecretString,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl Server {
    /// `host:port`, for messages.
    pub fn describe(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The TLS connector for this server's mode, presenting `identity`
    /// (a client certificate) when given.
    pub(crate) fn tls_with(
        &self,
        identity: Option<&ha_tls::ClientIdentity>,
    ) -> Result<MakeRustlsConnect, Error> {
        let ca = self
            .ca
            .as_ref()
            .map(|(pem, path)| (pem.as_slice(), path.as_str()));
        let verification = match (self.sslmode, &ca) {
            (SslMode::VerifyFull, _) => ha_tls::ServerVerification::Full,
            (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => {
                ha_tls::ServerVerification::ChainOnly
            }
            // With `disable` the connector is never used.
            (SslMode::Disable, _) | (SslMode::Require, None) => {
                ha_tls::ServerVerification::DangerAcceptAnyCertificate
            }
        };
        let config = ha_tls::client_config(ca, verification, identity).map_err(Error::Tls)?;
        Ok(MakeRustlsConnect::new(config))
    }

    /// Connects with `config` — which names the user, password, database
    /// and any other session setting — to this server (host, port,
    /// `hostaddr`, TLS mode and timeout are this server's, whatever
    /// `config` says), presenting `identity` when given, and spawns the
    /// connection task. For callers that log in otherwise than with a
    /// [`Login`] (no password, a client certificate, startup options).
    pub async fn connect_with(
        &self,
        mut config: tokio_postgres::Config,
        identity: Option<&ha_tls::ClientIdentity>,
    ) -> Result<Client, Error> {
        config
            .host(&self.host)
            .port(self.port)
            .connect_timeout(self.connect_timeout)
            .ssl_mode(match self.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                _ => tokio_postgres::config::SslMode::Require,
            });
        if let Some(addr) = self.hostaddr {
            config.hostaddr(addr);
        }
        let user = config.get_user().unwrap_or_default().to_owned();
        let database = config.get_dbname().unwrap_or_default().to_owned();
        // libpq's connect timeout covers the TCP connect only; a server
        // that accepts and then says nothing would hold the startup for ever.
        let limit = self.connect_timeout * 2;
        let (client, connection) =
            tokio::time::timeout(limit, config.connect(self.tls_with(identity)?))
                .await
                .map_err(|_| Error::ConnectTimeout {
                    user: user.clone(),
                    server: self.describe(),
                    database: database.clone(),
                    seconds: limit.as_secs(),
                })?
                .map_err(|source| Error::Connect {
                    user,
                    server: self.describe(),
                    database,
                    detail: describe_pg_error(&source),
                    source,
                })?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Connects as `login` to `database` and spawns the connection task.
    pub async fn connect(&self, login: &Login, database: &str) -> Result<Client, Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .user(&login.user)
            .password(login.password.expose_secret())
            .dbname(database)
            .application_name("pg-provision");
        self.connect_with(config, None).await
    }
}
