//! MongoDB replica-set members: a real `mongod` when one is available, else
//! `mongo-sim`, started with the same mongod-style arguments.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::process::{Daemon, free_port, port_open, with_port_retries};
use crate::{Error, LabPki, MongoImpl, Toolbox};

/// `net.tls.mode` / `--tlsMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// `allowTLS`: TLS accepted, not required; members talk plain.
    Allow,
    /// `disabled`.
    Disabled,
    /// `preferTLS`: TLS accepted; members talk TLS.
    Prefer,
    /// `requireTLS`: only TLS connections.
    Require,
}

impl TlsMode {
    /// The value mongod's `--tlsMode` takes.
    pub fn as_arg(self) -> &'static str {
        match self {
            TlsMode::Allow => "allowTLS",
            TlsMode::Disabled => "disabled",
            TlsMode::Prefer => "preferTLS",
            TlsMode::Require => "requireTLS",
        }
    }
}

/// TLS settings of a member.
#[derive(Clone, Debug)]
pub struct MongoTls {
    /// `--tlsMode`.
    pub mode: TlsMode,
    /// `--tlsCertificateKeyFile`: the member's certificate and key (PEM).
    pub certificate_key_file: PathBuf,
    /// `--tlsCAFile`.
    pub ca_file: PathBuf,
    /// `--tlsClusterFile`, when members authenticate to each other with a
    /// different certificate.
    pub cluster_file: Option<PathBuf>,
    /// `--tlsAllowConnectionsWithoutCertificates`: clients may connect
    /// without a certificate (and log in with a password), as the runbook
    /// configures.
    pub allow_connections_without_certificates: bool,
}

/// How to start a member.
#[derive(Clone, Debug, Default)]
pub struct MongoMemberOptions {
    /// `--replSet`: the replica set's name. `None` starts a standalone server.
    pub replica_set: Option<String>,
    /// `--auth`: require authentication.
    pub auth: bool,
    /// TLS settings; `None` for no TLS options at all.
    pub tls: Option<MongoTls>,
    /// `--clusterAuthMode x509`: members authenticate with certificates.
    pub cluster_auth_x509: bool,
    /// Further arguments, passed through unchanged.
    pub extra_args: Vec<OsString>,
}

impl MongoMemberOptions {
    /// A member of replica set `set` as the runbook configures one: auth
    /// on, TLS required with the lab's `localhost` certificate (clients
    /// without certificates allowed), x509 member authentication.
    pub fn secure(pki: &LabPki, set: &str) -> MongoMemberOptions {
        MongoMemberOptions {
            replica_set: Some(set.to_owned()),
            auth: true,
            tls: Some(MongoTls {
                mode: TlsMode::Require,
                certificate_key_file: pki.server().combined.clone(),
                ca_file: pki.ca_file(),
                cluster_file: None,
                allow_connections_without_certificates: true,
            }),
            cluster_auth_x509: true,
            extra_args: Vec::new(),
        }
    }

    /// The full command line (after the program) for a member on `port`
    /// storing data in `dbpath`.
    pub fn command_line(&self, port: u16, dbpath: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--port".into(),
            port.to_string().into(),
            "--bind_ip".into(),
            "127.0.0.1".into(),
            "--dbpath".into(),
            dbpath.into(),
        ];
        if let Some(name) = &self.replica_set {
            args.push("--replSet".into());
            args.push(name.into());
        }
        if self.auth {
            args.push("--auth".into());
        }
        if let Some(tls) = &self.tls {
            args.push("--tlsMode".into());
            args.push(tls.mode.as_arg().into());
            args.push("--tlsCertificateKeyFile".into());
            args.push(tls.certificate_key_file.clone().into());
            args.push("--tlsCAFile".into());
            args.push(tls.ca_file.clone().into());
            if let Some(cluster_file) = &tls.cluster_file {
                args.push("--tlsClusterFile".into());
                args.push(cluster_file.clone().into());
            }
            if tls.allow_connections_without_certificates {
                args.push("--tlsAllowConnectionsWithoutCertificates".into());
            }
        }
        if self.cluster_auth_x509 {
            args.push("--clusterAuthMode".into());
            args.push("x509".into());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// One running (or stopped) member. Its data directory survives
/// [`MongoMember::kill`] and [`MongoMember::stop`], so
/// [`MongoMember::restart`] brings it back with its data, on the same port.
/// Everything is removed on drop.
#[derive(Debug)]
pub struct MongoMember {
    daemon: Option<Daemon>,
    dir: TempDir,
    port: u16,
    implementation: MongoImpl,
    options: MongoMemberOptions,
}

impl MongoMember {
    /// Starts a member with the implementation the toolbox selects (real
    /// `mongod` first, else `mongo-sim`) and waits until it accepts TCP
    /// connections.
    pub fn start(tools: &Toolbox, options: MongoMemberOptions) -> Result<MongoMember, Error> {
        MongoMember::start_in(tools, options, |dbpath| {
            std::fs::create_dir(dbpath).map_err(Error::io(dbpath))
        })
    }

    /// Like [`MongoMember::start`], on a copy of `data` (a dbPath, e.g. a
    /// snapshot of another member's): a restore drill.
    pub fn start_with_data(
        tools: &Toolbox,
        options: MongoMemberOptions,
        data: &Path,
    ) -> Result<MongoMember, Error> {
        MongoMember::start_in(tools, options, |dbpath| copy_dir(data, dbpath))
    }

    /// Makes a member's directory, lets `fill` create its dbPath, starts
    /// it and waits until it accepts TCP connections.
    fn start_in(
        tools: &Toolbox,
        options: MongoMemberOptions,
        fill: impl FnOnce(&Path) -> Result<(), Error>,
    ) -> Result<MongoMember, Error> {
        let implementation = tools.mongo()?;
        let dir = tempfile::Builder::new()
            .prefix("ha-lab-mongo-")
            .tempdir()
            .map_err(Error::io("a temporary directory for a MongoDB member"))?;
        fill(&dir.path().join("db"))?;
        let (daemon, port) = with_port_retries(|| {
            let port = free_port()?;
            let daemon = spawn(&implementation, &options, port, dir.path())?;
            Ok((daemon, port))
        })?;
        Ok(MongoMember {
            daemon: Some(daemon),
            dir,
            port,
            implementation,
            options,
        })
    }

    /// `localhost:<port>`: the host string for replica-set configs and URIs.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (`--dbpath`).
    pub fn dbpath(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// The member's log file (its stdout and stderr).
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("mongod.log")
    }

    /// Which implementation runs.
    pub fn implementation(&self) -> &MongoImpl {
        &self.implementation
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(Daemon::pid)
    }

    /// Kills the process with SIGKILL, as a crash would. The data stays.
    pub fn kill(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.kill();
        }
    }

    /// Stops the process with SIGTERM (mongod's clean shutdown). The data
    /// stays.
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop();
        }
    }

    /// Starts the member again on the same port and data directory. A no-op
    /// if it is running.
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.daemon.is_some() {
            return Ok(());
        }
        let daemon = spawn(
            &self.implementation,
            &self.options,
            self.port,
            self.dir.path(),
        )?;
        self.daemon = Some(daemon);
        Ok(())
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir(to).map_err(Error::io(to))?;
    for entry in std::fs::read_dir(from).map_err(Error::io(from))? {
        let entry = entry.map_err(Error::io(from))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(Error::io(entry.path()))?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(Error::io(entry.path()))?;
        }
    }
    Ok(())
}

fn spawn(
    implementation: &MongoImpl,
    options: &MongoMemberOptions,
    port: u16,
    dir: &Path,
) -> Result<Daemon, Error> {
    let mut command = Command::new(implementation.program());
    command.args(options.command_line(port, &dir.join("db")));
    let what = match implementation {
        MongoImpl::Mongod(_) => "mongod",
        MongoImpl::Sim(_) => "mongo-sim",
    };
    let mut daemon = Daemon::spawn(what, command, &dir.join("mongod.log"), libc::SIGTERM)?;
    daemon.wait_until(|| port_open(port))?;
    Ok(daemon)
}
