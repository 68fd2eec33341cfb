//! A private PostgreSQL cluster: `initdb` in a temporary directory, TLS on,
//! SCRAM passwords, a random port on 127.0.0.1.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use secrecy::{ExposeSecret as _, SecretString};
use tempfile::TempDir;

use crate::process::{Daemon, free_port, log_tail, port_open, random_password, with_port_retries};
use crate::{Error, LabPki, Toolbox};

/// How to set up the cluster.
#[derive(Debug)]
pub struct PostgresOptions {
    /// The superuser created by `initdb` (default `postgres`).
    pub superuser: String,
    /// Its password (default: 32 random characters). Must not contain a
    /// newline (`initdb --pwfile` reads one line).
    pub superuser_password: SecretString,
    /// Accept TCP connections only over TLS (`hostssl` lines only). Default
    /// false: plain connections are accepted too, so `sslmode=disable` can be
    /// tested.
    pub require_tls: bool,
    /// Keep `fsync` on, for benchmarks that should pay for durability.
    /// Default false: tests do not need crash safety and run faster without.
    pub durable: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            superuser: "postgres".to_owned(),
            superuser_password: random_password(),
            require_tls: false,
            durable: false,
        }
    }
}

/// A running PostgreSQL server, stopped (fast shutdown) and deleted on drop.
///
/// Clients connect to host `localhost` (address 127.0.0.1) on [`port`],
/// verifying the server certificate against [`ca_file`]: that is
/// `sslmode=verify-full`.
///
/// [`port`]: Postgres::port
/// [`ca_file`]: Postgres::ca_file
#[derive(Debug)]
pub struct Postgres {
    daemon: Daemon,
    dir: TempDir,
    bin_dir: PathBuf,
    port: u16,
    superuser: String,
    password: SecretString,
    version: String,
}

/// Who runs the server: PostgreSQL refuses to run as root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Postgres {
    /// Initialises and starts a cluster whose TLS certificate comes from
    /// `pki`, and waits until it accepts connections.
    pub fn start(
        tools: &Toolbox,
        pki: &LabPki,
        options: PostgresOptions,
    ) -> Result<Postgres, Error> {
        let bin_dir = tools.postgres_bin_dir()?;
        let version = server_version(&bin_dir)?;
        let dir = tempfile::Builder::new()
            .prefix("ha-lab-pg-")
            .tempdir()
            .map_err(Error::io("a temporary directory for PostgreSQL"))?;
        let root = dir.path();
        let run_as = run_as()?;

        fs::create_dir(root.join("socket")).map_err(Error::io(root.join("socket")))?;
        fs::copy(pki.ca_file(), root.join("ca.pem")).map_err(Error::io(root.join("ca.pem")))?;
        fs::copy(&pki.server().cert, root.join("server.crt"))
            .map_err(Error::io(root.join("server.crt")))?;
        fs::copy(&pki.server().key, root.join("server.key"))
            .map_err(Error::io(root.join("server.key")))?;
        fs::set_permissions(root.join("server.key"), fs::Permissions::from_mode(0o600))
            .map_err(Error::io(root.join("server.key")))?;
        fs::set_permissions(root.join("ca.pem"), fs::Permissions::from_mode(0o644))
            .map_err(Error::io(root.join("ca.pem")))?;
        let pwfile = root.join("pwfile");
        ha_tls::write_file(
            &pwfile,
            format!("{}\n", options.superuser_password.expose_secret()).as_bytes(),
            0o600,
        )?;
        if let Some(run_as) = run_as {
            chown_tree(root, run_as)?;
        }

        let data = root.join("data");
        let mut initdb = Command::new(bin_dir.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(&data)
            .arg("--username")
            .arg(&options.superuser)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]);
        run_setup(initdb, run_as, &root.join("initdb.log"), "initdb")?;
        fs::remove_file(&pwfile).map_err(Error::io(&pwfile))?;

        let mut hba = String::from("local all all scram-sha-256\n");
        hba.push_str("hostssl all all 127.0.0.1/32 scram-sha-256\n");
        hba.push_str("hostssl all all ::1/128 scram-sha-256\n");
        if !options.require_tls {
            hba.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
            hba.push_str("host all all ::1/128 scram-sha-256\n");
        }
        write_owned(&data.join("pg_hba.conf"), &hba, run_as)?;
        let mut conf = fs::read_to_string(data.join("postgresql.conf"))
            .map_err(Error::io(data.join("postgresql.conf")))?;
        conf.push_str("\ninclude 'lab.conf'\n");
        write_owned(&data.join("postgresql.conf"), &conf, run_as)?;

        let (daemon, port) = with_port_retries(|| {
            let port = free_port()?;
            let mut lab_conf = String::new();
            let _ = writeln!(lab_conf, "listen_addresses = '127.0.0.1'");
            let _ = writeln!(lab_conf, "port = {port}");
            let _ = writeln!(
                lab_conf,
                "unix_socket_directories = '{}'",
                root.join("socket").display()
            );
            let _ = writeln!(lab_conf, "ssl = on");
            let _ = writeln!(
                lab_conf,
                "ssl_cert_file = '{}'",
                root.join("server.crt").display()
            );
            let _ = writeln!(
                lab_conf,
                "ssl_key_file = '{}'",
                root.join("server.key").display()
            );
            let _ = writeln!(lab_conf, "password_encryption = 'scram-sha-256'");
            let _ = writeln!(lab_conf, "max_connections = 100");
            let _ = writeln!(lab_conf, "logging_collector = off");
            if !options.durable {
                let _ = writeln!(lab_conf, "fsync = off");
                let _ = writeln!(lab_conf, "synchronous_commit = off");
                let _ = writeln!(lab_conf, "full_page_writes = off");
            }
            write_owned(&data.join("lab.conf"), &lab_conf, run_as)?;

            let mut postgres = Command::new(bin_dir.join("postgres"));
            postgres.arg("-D").arg(&data);
            if let Some(run_as) = run_as {
                postgres.uid(run_as.uid).gid(run_as.gid);
            }
            let mut daemon = Daemon::spawn(
                "PostgreSQL",
                postgres,
                &root.join("postgres.log"),
                libc::SIGINT,
            )?;
            let pid_file = data.join("postmaster.pid");
            daemon.wait_until(|| postmaster_ready(&pid_file) && port_open(port))?;
            Ok((daemon, port))
        })?;

        Ok(Postgres {
            daemon,
            dir,
            bin_dir,
            port,
            superuser: options.superuser,
            password: options.superuser_password,
            version,
        })
    }

    /// The host name clients use (and the certificate covers).
    pub fn host(&self) -> &'static str {
        "localhost"
    }

    /// The address the server listens on.
    pub fn hostaddr(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// The superuser's password.
    pub fn superuser_password(&self) -> &SecretString {
        &self.password
    }

    /// A `tokio_postgres` configuration reaching `dbname` on this server
    /// as `user`, by host name over the loopback address with TLS
    /// required; pair it with a TLS connector that verifies the
    /// certificate against [`Postgres::ca_file`] (verify-full).
    pub fn client_config(
        &self,
        user: &str,
        password: &str,
        dbname: &str,
    ) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.host())
            .hostaddr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(dbname)
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        config
    }

    /// The CA certificate that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory with `psql`, `pg_dump` and the server's other programs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server's version as `postgres --version` prints it, e.g.
    /// `postgres (PostgreSQL) 15.18`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        self.daemon.log()
    }

    /// libpq environment variables for a `psql`/`pg_dump` child process that
    /// connects as the superuser to `database` with `sslmode=verify-full`.
    /// The password travels in a 0600 password file, not in the environment.
    pub fn libpq_env(&self, database: &str) -> Result<Vec<(OsString, OsString)>, Error> {
        let passfile = self.dir.path().join("pgpass");
        if !passfile.exists() {
            let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
            let line = format!(
                "*:*:*:{}:{}\n",
                escape(&self.superuser),
                escape(self.password.expose_secret())
            );
            ha_tls::write_file(&passfile, line.as_bytes(), 0o600)?;
        }
        Ok(vec![
            ("PGHOST".into(), self.host().into()),
            ("PGHOSTADDR".into(), self.hostaddr().into()),
            ("PGPORT".into(), self.port.to_string().into()),
            ("PGUSER".into(), self.superuser.clone().into()),
            ("PGDATABASE".into(), database.into()),
            ("PGPASSFILE".into(), passfile.into()),
            ("PGSSLMODE".into(), "verify-full".into()),
            ("PGSSLROOTCERT".into(), self.ca_file().into()),
            ("PGCONNECT_TIMEOUT".into(), "30".into()),
        ])
    }

    /// Stops the server (fast shutdown). Also done on drop.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// The process id of the postmaster, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }
}

/// PostgreSQL writes `ready` on line 8 of `postmaster.pid` once it accepts
/// connections (PostgreSQL 10+).
fn postmaster_ready(pid_file: &Path) -> bool {
    fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.lines().nth(7).map(|l| l.trim() == "ready"))
        .unwrap_or(false)
}

fn server_version(bin_dir: &Path) -> Result<String, Error> {
    let postgres = bin_dir.join("postgres");
    let output = Command::new(&postgres)
        .arg("--version")
        .output()
        .map_err(|source| Error::Spawn {
            what: "postgres --version",
            program: postgres.clone(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The unprivileged account to run PostgreSQL as when we are root.
fn run_as() -> Result<Option<RunAs>, Error> {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(Error::io("/etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 4 && fields[0] == "postgres").then(|| {
                Some(RunAs {
                    uid: fields[2].parse().ok()?,
                    gid: fields[3].parse().ok()?,
                })
            })?
        })
        .map(Some)
        .ok_or(Error::NoUnprivilegedUser)
}

fn chown_tree(path: &Path, run_as: RunAs) -> Result<(), Error> {
    chown(path, Some(run_as.uid), Some(run_as.gid)).map_err(Error::io(path))?;
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(Error::io(path))? {
            let entry = entry.map_err(Error::io(path))?;
            chown_tree(&entry.path(), run_as)?;
        }
    }
    Ok(())
}

fn write_owned(path: &Path, text: &str, run_as: Option<RunAs>) -> Result<(), Error> {
    ha_tls::write_file(path, text.as_bytes(), 0o600)?;
    if let Some(run_as) = run_as {
        chown(path, Some(run_as.uid), Some(run_as.gid)).map_err(Error::io(path))?;
    }
    Ok(())
}

fn run_setup(
    mut command: Command,
    run_as: Option<RunAs>,
    log: &Path,
    what: &str,
) -> Result<(), Error> {
    if let Some(run_as) = run_as {
        command.uid(run_as.uid).gid(run_as.gid);
    }
    let log_file = fs::File::create(log).map_err(Error::io(log))?;
    let log_err = log_file.try_clone().map_err(Error::io(log))?;
    let program = PathBuf::from(command.get_program());
    let status = command
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(|source| Error::Spawn {
            what: "initdb",
            program,
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::SetupFailed {
            what: what.to_owned(),
            status,
            output_tail: log_tail(log),
        })
    }
}
