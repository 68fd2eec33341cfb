//! PostgreSQL: `pg_dump` for the export (plain SQL per database, streamed,
//! rows counted on the way; the password reaches it through a 0600
//! password file, never argv or the environment), and the protocol for
//! everything else — queries, and loads ([`crate::pgload`]: no `psql`, so
//! no shell an archive could reach).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use crate::sqlsplit::Dialect;

use crate::count::CopyCounter;
use crate::error::Error;
use crate::manifest::{DatabaseEntry, FileEntry, TableEntry, sql_path};
use crate::meter::Meter;
use crate::spool::{HashedFile, WorkDir};

/// Where and how to connect, parsed from a libpq URI.
#[derive(Clone)]
pub struct PgConn {
    /// Host name (what TLS verifies) or IP address.
    pub host: String,
    /// Port (default 5432).
    pub port: u16,
    /// User (default `postgres`).
    pub user: String,
    /// Password, if any.
    pub password: Option<SecretString>,
    /// The database to connect to for listing (default `postgres`).
    pub dbname: String,
    /// Other URI parameters passed on to libpq (`sslmode`,
    /// `sslrootcert`, `hostaddr`, `connect_timeout`, …).
    pub params: Vec<(String, String)>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for PgConn {
    /// `user@host:port` — never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

/// The libpq parameters a URI may carry (everything else is refused, so a
/// typo does not pass silently).
const PARAMS: [&str; 9] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "hostaddr",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
    "options",
];

impl PgConn {
    /// A warning to repeat on every run when the connection is encrypted
    /// but the server's certificate is not checked (`sslmode=require`).
    pub fn tls_warning(&self) -> Option<String> {
        let mode = self
            .params
            .iter()
            .find(|(k, _)| k == "sslmode")
            .map_or("verify-full", |(_, v)| v.as_str());
        (mode == "require").then(|| {
            format!(
                "PostgreSQL {}:{}: sslmode=require encrypts but does not check the server's \
                 certificate (anyone on the network path can pose as the server and read the \
                 data); use verify-full with sslrootcert",
                self.host, self.port
            )
        })
    }

    /// Parses `postgres[ql]://[user[:password]@]host[:port][/dbname][?k=v&…]`
    /// (percent-encoding decoded). One host only. Errors never repeat the
    /// URI, which may hold a password.
    pub fn parse_uri(uri: &str) -> Result<PgConn, String> {
        let rest = uri
            .strip_prefix("postgresql://")
            .or_else(|| uri.strip_prefix("postgres://"))
            .ok_or("a PostgreSQL URI starts with postgresql:// or postgres://")?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str, what: &str| -> Result<String, String> {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("the URI's {what} is not valid percent-encoded UTF-8"))
        };
        let (user, password) = match userinfo {
            None => ("postgres".to_owned(), None),
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (
                    decode(user, "user")?,
                    Some(SecretString::from(decode(pw, "password")?)),
                ),
                None => (decode(u, "user")?, None),
            },
        };
        if hostport.contains(',') {
            return Err("the URI names several hosts; give one".to_owned());
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (ip, after) = v6
                .split_once(']')
                .ok_or("the URI's [IPv6] host is not closed")?;
            (ip.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (decode(h, "host")?, Some(p)),
                None => (decode(hostport, "host")?, None),
            }
        };
        if host.is_empty() {
            return Err("the URI has no host".to_owned());
        }
        let port = match port {
            None | Some("") => 5432,
            Some(p) => p.parse().map_err(|_| "the URI's port is not a number")?,
        };
        let dbname = if path.is_empty() {
            "postgres".to_owned()
        } else {
            decode(path, "database")?
        };
        let mut params = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k, "parameter")?;
            if !PARAMS.contains(&k.as_str()) {
                return Err(format!(
                    "the URI parameter {k:?} is not supported (supported: {})",
                    PARAMS.join(", ")
                ));
            }
            let v = decode(v, "parameter value")?;
            if k == "sslmode"
                && !["disable", "require", "verify-ca", "verify-full"].contains(&v.as_str())
            {
                return Err(format!(
                    "sslmode={v} is not accepted: it lets a man in the middle turn TLS off or go \
                     unverified; use verify-full (the default), verify-ca, require (no \
                     certificate check) or disable (plain)"
                ));
            }
            params.push((k, v));
        }
        Ok(PgConn {
            host,
            port,
            user,
            password,
            dbname,
            params,
        })
    }

    /// Where and how to reach the server for the protocol (TLS as
    /// `sslmode` says: `verify-full` unless told otherwise; the CA,
    /// client certificate and key files read here), and the client
    /// identity to present, if any.
    pub fn server(&self) -> Result<(pg_provision::Server, Option<ha_tls::ClientIdentity>), Error> {
        let param = |name: &str| {
            self.params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let read = |path: &str, what: &str| -> Result<Vec<u8>, Error> {
            use std::io::Read as _;
            let file = std::fs::File::open(path).map_err(Error::io(format!("{what} {path}")))?;
            let mut pem = Vec::new();
            file.take(1 << 20)
                .read_to_end(&mut pem)
                .map_err(Error::io(format!("{what} {path}")))?;
            Ok(pem)
        };
        let sslmode = param("sslmode").unwrap_or("verify-full");
        let sslmode = pg_provision::SslMode::parse(sslmode).ok_or_else(|| {
            Error::Invalid(format!(
                "PostgreSQL {self}: sslmode={sslmode} is not accepted"
            ))
        })?;
        let ca = match param("sslrootcert") {
            Some(path) => Some((read(path, "the PostgreSQL CA file")?, path.to_owned())),
            None => None,
        };
        let identity = match (param("sslcert"), param("sslkey")) {
            (Some(cert), Some(key)) => Some(ha_tls::ClientIdentity {
                cert_pem: String::from_utf8_lossy(&read(
                    cert,
                    "the PostgreSQL client certificate",
                )?)
                .into_owned(),
                key_pem: SecretString::from(
                    String::from_utf8_lossy(&read(key, "the PostgreSQL client key")?).into_owned(),
                ),
            }),
            (None, None) => None,
            _ => {
                return Err(Error::Invalid(format!(
                    "PostgreSQL {self}: sslcert and sslkey go together; give both or neither"
                )));
            }
        };
        let hostaddr = match param("hostaddr") {
            Some(addr) => Some(addr.parse().map_err(|_| {
                Error::Invalid(format!(
                    "PostgreSQL {self}: hostaddr={addr} is not an IP address"
                ))
            })?),
            None => None,
        };
        let connect_timeout = match param("connect_timeout") {
            Some(secs) => std::time::Duration::from_secs(secs.parse::<u64>().map_err(|_| {
                Error::Invalid(format!(
                    "PostgreSQL {self}: connect_timeout={secs} is not a number of seconds"
                ))
            })?),
            None => std::time::Duration::from_secs(30),
        };
        Ok((
            pg_provision::Server {
                host: self.host.clone(),
                hostaddr,
                port: self.port,
                sslmode,
                ca,
                connect_timeout: connect_timeout.max(std::time::Duration::from_secs(1)),
            },
            identity,
        ))
    }

    /// The session settings for database `db`: user, password,
    /// application name and the URI's `options`/`target_session_attrs`.
    fn session(&self, db: &str) -> Result<tokio_postgres::Config, Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .user(&self.user)
            .dbname(db)
            .application_name("circle-export");
        if let Some(password) = &self.password {
            config.password(password.expose_secret());
        }
        for (k, v) in &self.params {
            match k.as_str() {
                "application_name" => {
                    config.application_name(v);
                }
                "options" => {
                    config.options(v);
                }
                "target_session_attrs" => {
                    config.target_session_attrs(match v.as_str() {
                        "any" => tokio_postgres::config::TargetSessionAttrs::Any,
                        "read-write" => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
                        other => {
                            return Err(Error::Invalid(format!(
                                "PostgreSQL {self}: target_session_attrs={other} is not \
                                 supported (any, read-write)"
                            )));
                        }
                    });
                }
                _ => {}
            }
        }
        Ok(config)
    }

    /// The environment a libpq program needs for database `db`, with the
    /// password file `passfile` (already written) and no other `PG*`
    /// variable of ours.
    /// libpq's conninfo string for `db` (`host='…' port='…' user='…'
    /// dbname='…'` and the TLS parameters, each value quoted): one argument
    /// that reaches a `pg_dump` in a container, where no environment of
    /// ours does. Never the password.
    fn conninfo(&self, db: &str) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut out = format!(
            "host={} port={} user={} dbname={} application_name='circle-export'",
            quote(&self.host),
            self.port,
            quote(&self.user),
            quote(db)
        );
        if !self.params.iter().any(|(k, _)| k == "sslmode") {
            out.push_str(" sslmode='verify-full'");
        }
        for (k, v) in &self.params {
            if matches!(
                k.as_str(),
                "sslmode" | "sslrootcert" | "sslcert" | "sslkey" | "hostaddr" | "connect_timeout"
            ) {
                out.push_str(&format!(" {k}={}", quote(v)));
            }
        }
        out
    }

    fn env(&self, db: &str, passfile: &Path) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = vec![
            ("PGHOST".into(), self.host.clone().into()),
            ("PGPORT".into(), self.port.to_string().into()),
            ("PGUSER".into(), self.user.clone().into()),
            ("PGDATABASE".into(), db.into()),
            ("PGPASSFILE".into(), passfile.into()),
            ("PGAPPNAME".into(), "circle-export".into()),
        ];
        if !self.params.iter().any(|(k, _)| k == "sslmode") {
            // libpq's own default, `prefer`, falls back to plain text and
            // checks no certificate.
            env.push(("PGSSLMODE".into(), "verify-full".into()));
        }
        for (k, v) in &self.params {
            let var = match k.as_str() {
                "sslmode" => "PGSSLMODE",
                "sslrootcert" => "PGSSLROOTCERT",
                "sslcert" => "PGSSLCERT",
                "sslkey" => "PGSSLKEY",
                "hostaddr" => "PGHOSTADDR",
                "connect_timeout" => "PGCONNECT_TIMEOUT",
                "application_name" => "PGAPPNAME",
                "target_session_attrs" => "PGTARGETSESSIONATTRS",
                _ => "PGOPTIONS",
            };
            env.push((var.into(), v.clone().into()));
        }
        env
    }
}

/// Runs PostgreSQL's client programs for one server.
#[derive(Debug)]
pub struct PgClient {
    conn: PgConn,
    bin_dir: Option<PathBuf>,
    /// An argv prefix `pg_dump` runs through (`docker exec -i postgres`);
    /// empty: run it here.
    dump_command: Vec<String>,
    passfile: PathBuf,
    // Removed with the client.
    _dir: tempfile::TempDir,
}

/// Password-file directories are `<prefix><pid>-<random>` in the
/// temporary directory.
const PASSFILE_DIR_PREFIX: &str = "circle-export-pg-";

/// Removes the password-file directories in `tmp` whose process no longer
/// runs. Only directories owned by this user, with our prefix and a pid,
/// are touched.
pub fn remove_stale_passfile_dirs(tmp: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let me = current_uid();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PASSFILE_DIR_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me || pid == std::process::id() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// This process's user id, as the owner of `/proc/self`.
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// libpq password-file escaping: `\` and `:` are backslash-escaped.
fn passfile_field(value: &str) -> String {
    value.replace('\\', "\\\\").replace(':', "\\:")
}

impl PgClient {
    /// Where `pg_dump` and `psql` are, for [`PgClient::new`]'s `bin_dir`:
    /// `None` when `search_path` (the caller's `PATH`) has `pg_dump`, else
    /// the newest `/usr/lib/postgresql/<N>/bin` that has it (Debian's
    /// layout, where the newest major's `pg_dump` dumps every older
    /// server), else `None` (and running them will say they are missing).
    ///
    /// A `pg_dump` on the path that is Debian's `pg_wrapper`
    /// (postgresql-common: `/usr/bin/psql` and `/usr/bin/pg_dump` are links
    /// to it) counts as absent: the wrapper is a Perl script that, with
    /// `PGHOST` set — as this client always sets it — runs the newest
    /// installed version's binary (pg_wrapper(1)), which is what this
    /// finds; running it directly spares a Perl start-up (~30 ms of CPU)
    /// on every call, and a restore makes a dozen.
    pub fn find_bin_dir(search_path: &[PathBuf]) -> Option<PathBuf> {
        let is_wrapper = |path: &Path| {
            std::fs::canonicalize(path)
                .is_ok_and(|real| real.file_name().is_some_and(|n| n == "pg_wrapper"))
        };
        if search_path.iter().any(|dir| {
            let pg_dump = dir.join("pg_dump");
            pg_dump.is_file() && !is_wrapper(&pg_dump)
        }) {
            return None;
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("pg_dump").is_file().then_some((n, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    }

    /// A client for `conn`, running programs from `bin_dir` (else from
    /// PATH). Writes the password file (0600) in a private temp dir.
    ///
    /// The directory is named after this process; directories of earlier
    /// runs whose process is gone (killed with SIGKILL, which leaves no
    /// chance to clean up) are removed first, so no password outlives the
    /// next run.
    pub fn new(conn: PgConn, bin_dir: Option<PathBuf>) -> Result<PgClient, Error> {
        remove_stale_passfile_dirs(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PASSFILE_DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(Error::io("a temporary directory for the password file"))?;
        let passfile = dir.path().join("pgpass");
        let line = match &conn.password {
            Some(pw) => format!(
                "*:*:*:{}:{}\n",
                passfile_field(&conn.user),
                passfile_field(pw.expose_secret())
            ),
            None => String::new(),
        };
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&passfile)
                .map_err(Error::io(passfile.display()))?;
            file.write_all(line.as_bytes())
                .map_err(Error::io(passfile.display()))?;
        }
        Ok(PgClient {
            conn,
            bin_dir,
            dump_command: Vec::new(),
            passfile,
            _dir: dir,
        })
    }

    /// Runs `pg_dump` through `prefix` (an argv, no shell: `["docker",
    /// "exec", "-i", "-e", "PGPASSWORD", "postgres"]`) — where the old
    /// Services machine has it, inside its `postgres` container, whose
    /// pg_dump is the server's own version (9.5 writes the dialect
    /// [`crate::sqlsplit`] translates on restore). The connection goes as
    /// one `--dbname` conninfo argument (host, port, user, database and
    /// the TLS parameters; never the password), the password as
    /// `PGPASSWORD` in the environment of `prefix`'s program, which must
    /// pass it on (`docker exec -e PGPASSWORD` does). Other queries (the
    /// database list, the server version) still go straight to the server.
    pub fn with_dump_command(mut self, prefix: Vec<String>) -> Result<PgClient, Error> {
        if prefix.first().is_none_or(|p| p.is_empty()) || prefix.iter().any(String::is_empty) {
            return Err(Error::Invalid(
                "the pg_dump command prefix names no program, or has an empty word".to_owned(),
            ));
        }
        self.dump_command = prefix;
        Ok(self)
    }

    /// `pg_dump`, here or through the prefix, ready for `db`'s dump
    /// arguments.
    fn dump_program(&self, db: &str) -> Command {
        if self.dump_command.is_empty() {
            return self.command("pg_dump", db);
        }
        let mut command = self.prefixed_pg_dump();
        if let Some(password) = &self.conn.password {
            command.env("PGPASSWORD", password.expose_secret());
        }
        command.arg(format!("--dbname={}", self.conn.conninfo(db)));
        command
    }

    /// `<prefix…> pg_dump`, with none of libpq's variables of ours: only
    /// what its arguments say reaches it.
    fn prefixed_pg_dump(&self) -> Command {
        let mut command = Command::new(&self.dump_command[0]);
        command.args(&self.dump_command[1..]).arg("pg_dump");
        for var in [
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGDATABASE",
            "PGUSER",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGOPTIONS",
            "PGSSLMODE",
            "PGSSLROOTCERT",
            "PGSSLCERT",
            "PGSSLKEY",
            "PGSSLCRL",
            "PGAPPNAME",
            "PGCONNECT_TIMEOUT",
            "PGTARGETSESSIONATTRS",
        ] {
            command.env_remove(var);
        }
        command.kill_on_drop(true);
        command
    }

    /// The `pg_dump` that dumps (`pg_dump (PostgreSQL) 9.5.25`), here or
    /// through the prefix.
    pub async fn dump_version(&self) -> Result<String, Error> {
        let mut command = if self.dump_command.is_empty() {
            self.command("pg_dump", "postgres")
        } else {
            self.prefixed_pg_dump()
        };
        let output = command
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| self.spawn_error("pg_dump", e))?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !output.status.success() || !text.starts_with("pg_dump") {
            return Err(Error::Postgres {
                what: format!("pg_dump --version{}", self.dump_command_shown()),
                detail: tail(&output.stderr),
            });
        }
        Ok(text)
    }

    /// ` through <prefix>` for messages, or nothing.
    fn dump_command_shown(&self) -> String {
        if self.dump_command.is_empty() {
            String::new()
        } else {
            format!(" through {}", self.dump_command.join(" "))
        }
    }

    /// The connection (for messages).
    pub fn conn(&self) -> &PgConn {
        &self.conn
    }

    fn command(&self, program: &str, db: &str) -> Command {
        let path = match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut command = Command::new(path);
        for var in [
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGPASSWORD",
            "PGSSLMODE",
            "PGSSLROOTCERT",
            "PGHOSTADDR",
            "PGOPTIONS",
        ] {
            command.env_remove(var);
        }
        command.envs(self.conn.env(db, &self.passfile));
        command.kill_on_drop(true);
        command
    }

    /// Connects to database `db` through the protocol (TLS as the URI
    /// says), for queries and loads.
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, Error> {
        let (server, identity) = self.conn.server()?;
        server
            .connect_with(self.conn.session(db)?, identity.as_ref())
            .await
            .map_err(|e| Error::Postgres {
                what: format!("connecting to {db} at {}", self.conn),
                detail: e.to_string(),
            })
    }

    /// Runs one SQL text (simple-query protocol) on `db` and returns its
    /// rows, each as its columns joined with `|` (NULL as empty).
    pub async fn query(&self, db: &str, sql: &str) -> Result<Vec<String>, Error> {
        let client = self.connect(db).await?;
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| Error::Postgres {
                what: format!("query on {db} at {}", self.conn),
                detail: describe(&e),
            })?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect())
    }

    fn spawn_error(&self, program: &str, e: std::io::Error) -> Error {
        Error::Postgres {
            what: format!("starting {program}"),
            detail: format!(
                "{e} (install the PostgreSQL client programs, e.g. the postgresql-client \
                 package, or point --pg-bin-dir at them)"
            ),
        }
    }

    /// Roughly how many bytes a dump of `db` will take (its tables'
    /// sizes without indexes), for a progress estimate; 0 when unknown.
    pub async fn estimate_bytes(&self, db: &str) -> u64 {
        let sql = "SELECT coalesce(sum(pg_table_size(c.oid)), 0)::bigint FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg_toast%'";
        match self.query(db, sql).await {
            Ok(lines) => lines
                .first()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// The server's version.
    pub async fn server_version(&self) -> Result<String, Error> {
        let lines = self
            .query(
                &self.conn.dbname,
                "SELECT current_setting('server_version')",
            )
            .await?;
        Ok(lines.into_iter().next().unwrap_or_default())
    }

    /// Every database but templates and `postgres` (or only `only`).
    pub async fn databases(&self, only: &[String]) -> Result<Vec<String>, Error> {
        let all = self
            .query(
                &self.conn.dbname,
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn \
                 ORDER BY 1",
            )
            .await?;
        for wanted in only {
            if !all.contains(wanted) {
                return Err(Error::NoSuchDatabase {
                    server: "PostgreSQL",
                    database: wanted.clone(),
                    on: self.conn.to_string(),
                    has: all,
                });
            }
        }
        Ok(all
            .into_iter()
            .filter(|d| {
                if only.is_empty() {
                    d != "postgres"
                } else {
                    only.contains(d)
                }
            })
            .collect())
    }

    /// Dumps `db` with `pg_dump` as plain SQL into the spool, without
    /// owners and privileges (the restore makes the connecting role own
    /// everything) and without `COMMENT ON EXTENSION` (only an extension's
    /// owner may run it, and the extensions come from pg-provision), so
    /// the file restores with plain `psql` as the app role. Rows are
    /// counted per table on the way.
    pub async fn export_database(
        &self,
        db: &str,
        dir: &WorkDir,
    ) -> Result<(FileEntry, DatabaseEntry), Error> {
        self.export_database_growing(db, dir, None).await
    }

    /// [`PgClient::export_database`], telling `growing` of every byte in
    /// the spool file as it is written and, at the end, whether the dump
    /// finished whole (pg_dump exited 0 and every COPY block closed) — a
    /// loader reading the file as it grows commits only then.
    pub(crate) async fn export_database_growing(
        &self,
        db: &str,
        dir: &WorkDir,
        growing: Option<std::sync::Arc<crate::verify::Growing>>,
    ) -> Result<(FileEntry, DatabaseEntry), Error> {
        /// Ends the member as not whole unless it was ended whole first.
        struct EndOnDrop(Option<std::sync::Arc<crate::verify::Growing>>);
        impl Drop for EndOnDrop {
            fn drop(&mut self) {
                if let Some(growing) = &self.0 {
                    growing.end(false);
                }
            }
        }
        let growing = EndOnDrop(growing);
        let what = format!("pg_dump of {db} at {}", self.conn);
        let mut child = self
            .dump_program(db)
            .args([
                "--format=plain",
                "--no-owner",
                "--no-privileges",
                "--encoding=UTF8",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error("pg_dump", e))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let errors = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text).await;
            text
        });
        let mut file = HashedFile::create(dir, &sql_path(db))
            .await
            .map_err(Error::io(format!("spool file for {db}")))?;
        let mut counter = CopyCounter::default();
        let mut filter = SqlFilter::new(skip_for_own_dump);
        let mut buf = vec![0u8; 1 << 20];
        let mut out = Vec::with_capacity(1 << 20);
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .map_err(Error::io(format!("reading {what}")))?;
            out.clear();
            if n == 0 {
                filter.finish(&mut out);
            } else {
                counter.feed(&buf[..n]);
                filter.feed(&buf[..n], &mut out);
            }
            file.write(&out)
                .await
                .map_err(Error::io(format!("spool file for {db}")))?;
            if let Some(growing) = &growing.0 {
                file.flush()
                    .await
                    .map_err(Error::io(format!("spool file for {db}")))?;
                growing.wrote(out.len() as u64);
            }
            if n == 0 {
                break;
            }
        }
        let status = child.wait().await.map_err(Error::io(&what))?;
        let stderr = errors.await.unwrap_or_default();
        if !status.success() {
            return Err(Error::Postgres {
                what,
                detail: tail(&stderr),
            });
        }
        let digests = counter.digests();
        let tables = counter.finish().map_err(|e| Error::Postgres {
            what: what.clone(),
            detail: e,
        })?;
        let entry = file
            .finish()
            .await
            .map_err(Error::io(format!("spool file for {db}")))?;
        if let Some(growing) = &growing.0 {
            growing.end(true);
        }
        Ok((
            entry,
            DatabaseEntry {
                db: db.to_owned(),
                tables: tables
                    .into_iter()
                    .map(|(name, rows)| TableEntry {
                        digest: Some(digests.get(&name).copied().unwrap_or_default().hex()),
                        name,
                        rows,
                    })
                    .collect(),
            },
        ))
    }

    /// Creates database `db`, owned by the connecting role (so the objects
    /// a restore makes belong to it). A role without `CREATEDB` gets an
    /// error that says what to do instead.
    pub async fn create_database(&self, db: &str) -> Result<(), Error> {
        let sql = format!("CREATE DATABASE {}", pg_provision::sql::quote_ident(db));
        match self.query(&self.conn.dbname, &sql).await {
            Ok(_) => Ok(()),
            Err(Error::Postgres { detail, .. }) if detail.contains("permission denied") => {
                Err(self.cannot_create(&[db.to_owned()]))
            }
            Err(e) => Err(e),
        }
    }

    /// The user tables of `db` named as pg_dump's `COPY` lines name them
    /// (`schema.table`, each part quoted only where it must be), sorted.
    pub async fn table_names(&self, db: &str) -> Result<Vec<String>, Error> {
        let sql = "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1";
        let mut names = self.query(db, sql).await?;
        names.retain(|n| !n.is_empty());
        Ok(names)
    }

    /// Checks, before anything is written, that the connecting role may
    /// create `missing` (it has `CREATEDB` or is a superuser).
    pub async fn check_may_create(&self, missing: &[String]) -> Result<(), Error> {
        if missing.is_empty() {
            return Ok(());
        }
        let lines = self
            .query(
                &self.conn.dbname,
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
            )
            .await?;
        if lines.first().map(|l| l.trim()) == Some("t") {
            Ok(())
        } else {
            Err(self.cannot_create(missing))
        }
    }

    fn cannot_create(&self, missing: &[String]) -> Error {
        Error::Invalid(format!(
            "PostgreSQL at {} lacks the databases {}, and {} may not create databases (no \
             CREATEDB): run `pg-provision apply` first (it creates them with their extensions, \
             owned by the app role), or restore as a role that may; nothing was restored",
            self.conn,
            missing.join(", "),
            self.conn.user
        ))
    }

    /// Whether `db` holds tables of its own (not belonging to extensions).
    pub async fn user_tables(&self, db: &str) -> Result<u64, Error> {
        let lines = self.query(db, USER_TABLES).await?;
        Ok(lines
            .first()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Restores `sql` (a file written by [`PgClient::export_database`], or
    /// a section of a `pg_dumpall` script, `dialect` says which) into `db`
    /// through the protocol, in one transaction committed only once the
    /// whole file went through ([`crate::pgload`]), counting the bytes
    /// read into `meter`. Every statement is judged before it runs; a
    /// refused one stops the load ([`Error::Damaged`], naming the line).
    /// Returns warnings for the operator (tables pg_dump 9.x created WITH
    /// OIDS, loaded without them).
    ///
    /// With `replace`, every schema object a dump would create (tables,
    /// views, sequences, functions, types, non-public schemas; not those of
    /// extensions) is dropped first *in the same transaction*: a load that
    /// fails or is killed leaves the database as it was.
    pub async fn restore_database(
        &self,
        db: &str,
        sql: &Path,
        meter: &Meter,
        replace: bool,
        dialect: Dialect,
    ) -> Result<Vec<String>, Error> {
        let source = sql.display().to_string();
        let path = sql.to_owned();
        self.restore_database_reading(
            db,
            &source,
            move || std::fs::File::open(path),
            meter,
            replace,
            dialect,
        )
        .await
    }

    /// [`PgClient::restore_database`] from a member still being unpacked:
    /// the loader gets the bytes as they are written, and the `COMMIT`
    /// happens only once the member ended verified; a damaged member is
    /// never committed.
    pub(crate) async fn restore_database_growing(
        &self,
        db: &str,
        growing: std::sync::Arc<crate::verify::Growing>,
        meter: &Meter,
        replace: bool,
    ) -> Result<Vec<String>, Error> {
        let source = growing.path.display().to_string();
        self.restore_database_reading(
            db,
            &source,
            move || {
                Ok(GrowingReader {
                    growing,
                    file: None,
                    offset: 0,
                })
            },
            meter,
            replace,
            Dialect::Own,
        )
        .await
    }

    /// [`PgClient::restore_database`] from a reader `open` gives (on a
    /// blocking thread): committed only once the reader ended (`Ok(0)`); a
    /// reader that fails — a damaged member, see
    /// `verify::VerifyingReader` — rolls the load back. `source` names it
    /// in messages.
    pub(crate) async fn restore_database_reading<R: std::io::Read + 'static>(
        &self,
        db: &str,
        source: &str,
        open: impl FnOnce() -> std::io::Result<R> + Send + 'static,
        meter: &Meter,
        replace: bool,
        dialect: Dialect,
    ) -> Result<Vec<String>, Error> {
        let what = format!("restoring {db} at {}", self.conn);
        let client = self.connect(db).await?;
        crate::pgload::load(client, &what, source, open, meter, replace, dialect).await
    }

    /// Row counts and [`crate::count::RowDigest`]s of `tables` (names as
    /// the dump wrote them) in `db`, read with `COPY … TO STDOUT` under the
    /// settings pg_dump uses (ISO dates, `postgres` intervals, 3 extra
    /// float digits), streamed: no table is held in memory. Values whose
    /// text differs between the two servers (floats across PostgreSQL 12,
    /// `timestamptz` under another `TimeZone`) give another digest, so such
    /// a table is never mistaken for the same rows — it is refused as
    /// different, and `--drop` replaces it.
    pub async fn table_digests(
        &self,
        db: &str,
        tables: &[String],
    ) -> Result<Vec<(String, u64, crate::count::RowDigest)>, Error> {
        use futures_util::StreamExt as _;
        if let Some(bad) = tables.iter().find(|t| !crate::manifest::is_table_name(t)) {
            return Err(Error::Invalid(format!(
                "database {db}: {:?} is not a table name; not read",
                crate::sqlsplit::cut(bad, 80)
            )));
        }
        let client = self.connect(db).await?;
        let failed = |e: tokio_postgres::Error| Error::Postgres {
            what: format!("reading the rows of {db} at {}", self.conn),
            detail: describe(&e),
        };
        client
            .batch_execute(
                "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3",
            )
            .await
            .map_err(failed)?;
        let mut out = Vec::new();
        for table in tables {
            let stream = client
                .copy_out(&format!("COPY {table} TO STDOUT"))
                .await
                .map_err(failed)?;
            let mut stream = std::pin::pin!(stream);
            let mut digester = crate::count::RowDigester::default();
            while let Some(chunk) = stream.next().await {
                digester.feed(&chunk.map_err(failed)?);
            }
            let (rows, digest) = digester.finish();
            out.push((table.clone(), rows, digest));
        }
        Ok(out)
    }

    /// Row counts of `tables` (names as the dump wrote them) in `db`.
    pub async fn count_rows(
        &self,
        db: &str,
        tables: &[String],
    ) -> Result<Vec<(String, u64)>, Error> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        // Verify refuses manifests with other names; this keeps any that
        // slipped past from ever reaching SQL.
        if let Some(bad) = tables.iter().find(|t| !crate::manifest::is_table_name(t)) {
            return Err(Error::Invalid(format!(
                "database {db}: {bad:?} is not a table name; not counted"
            )));
        }
        let sql = tables
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT {i}, count(*) FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let lines = self.query(db, &sql).await?;
        let mut counts = Vec::new();
        for line in lines {
            let Some((i, n)) = line.split_once('|') else {
                continue;
            };
            if let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<u64>())
                && let Some(t) = tables.get(i)
            {
                counts.push((t.clone(), n));
            }
        }
        Ok(counts)
    }
}

/// A member being unpacked, read as it grows: a read waits for more bytes,
/// returns 0 at the end of a verified member, and fails with `InvalidData`
/// when the member turned out damaged (so that the load is not committed).
struct GrowingReader {
    growing: std::sync::Arc<crate::verify::Growing>,
    file: Option<std::fs::File>,
    offset: u64,
}

impl std::io::Read for GrowingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use crate::verify::Grown;
        let until = match self.growing.wait_beyond(self.offset) {
            Grown::Until(until) => until,
            Grown::Verified => return Ok(0),
            Grown::Damaged => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "its part of the archive is damaged; nothing of it was committed",
                ));
            }
        };
        if self.file.is_none() {
            self.file = Some(std::fs::File::open(&self.growing.path)?);
        }
        let want = buf.len().min((until - self.offset) as usize);
        let file = self.file.as_mut().expect("opened above");
        let n = file.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            // The file is shorter than what was written to it: never let
            // that look like the end (the feed would then commit).
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the unpacked file is shorter than what was written; nothing was committed",
            ));
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The last lines of a program's stderr.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    let tail = lines[start..].join("\n    ");
    if tail.is_empty() {
        "failed without a message".to_owned()
    } else {
        tail
    }
}

const USER_TABLES: &str = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')";

/// A driver error in words (the server's message with SQLSTATE, detail
/// and hint, or the network/TLS cause chain).
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    pg_provision::describe_pg_error(error)
}

/// Passes a SQL script through, dropping the statements (whole lines
/// that start a statement, outside quotes, dollar-quoted bodies, comments
/// and COPY data) that `skip` rejects. COPY data passes untouched,
/// whatever its line lengths.
struct SqlFilter {
    skip: fn(&[u8]) -> bool,
    line: Vec<u8>,
    in_copy: bool,
    at_line_start: bool,
    /// Reads what is passed on as a restore would, to know where
    /// statements start.
    scanner: crate::sqlscan::Scanner,
}

impl SqlFilter {
    fn new(skip: fn(&[u8]) -> bool) -> SqlFilter {
        SqlFilter {
            skip,
            line: Vec::new(),
            in_copy: false,
            at_line_start: true,
            scanner: crate::sqlscan::Scanner::new(Dialect::Own),
        }
    }

    fn pass(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.scanner.feed(bytes);
        out.extend_from_slice(bytes);
    }

    fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while !chunk.is_empty() {
            if self.in_copy && !self.at_line_start && self.line.is_empty() {
                // Mid-line in COPY data: pass through to the end of line.
                match memchr::memchr(b'\n', chunk) {
                    Some(pos) => {
                        self.pass(&chunk[..=pos], out);
                        chunk = &chunk[pos + 1..];
                        self.at_line_start = true;
                    }
                    None => {
                        self.pass(chunk, out);
                        return;
                    }
                }
                continue;
            }
            if self.in_copy {
                // At a COPY line start: only `\.` matters; look at up to
                // three bytes.
                let need = 3 - self.line.len();
                let window = need.min(chunk.len());
                let take = memchr::memchr(b'\n', &chunk[..window]).map_or(window, |p| p + 1);
                self.line.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.line.len() < 3 && !self.line.contains(&b'\n') {
                    continue;
                }
                if self.line.starts_with(b"\\.\n") || self.line.starts_with(b"\\.\r") {
                    self.in_copy = false;
                }
                let line = std::mem::take(&mut self.line);
                self.pass(&line, out);
                let ended = line.last() == Some(&b'\n');
                self.at_line_start = ended;
                continue;
            }
            // Outside COPY: collect a whole line, then decide.
            match memchr::memchr(b'\n', chunk) {
                Some(pos) => {
                    self.line.extend_from_slice(&chunk[..=pos]);
                    chunk = &chunk[pos + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.emit_statement_line(&line, out);
                }
                None => {
                    self.line.extend_from_slice(chunk);
                    return;
                }
            }
        }
    }

    fn emit_statement_line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let starts_statement = self.scanner.at_statement_start();
        if starts_statement && (self.skip)(line) {
            return;
        }
        self.pass(line, out);
        if starts_statement
            && line.starts_with(b"COPY ")
            && line.trim_ascii_end().ends_with(b"FROM stdin;")
        {
            self.in_copy = true;
            self.at_line_start = true;
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        if self.in_copy {
            self.pass(&line, out);
        } else if !line.is_empty() {
            self.emit_statement_line(&line, out);
        }
    }
}

/// Statements [`PgClient::export_database`] leaves out of a dump:
/// `COMMENT ON EXTENSION` needs the extension's owner (the extensions
/// themselves come from pg-provision).
pub fn skip_for_own_dump(line: &[u8]) -> bool {
    line.starts_with(b"COMMENT ON EXTENSION ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `pg_dump` on the path is used, unless it is Debian's pg_wrapper:
    /// then the newest `/usr/lib/postgresql/<N>/bin` (the test command
    /// installs PostgreSQL there).
    #[test]
    fn debians_pg_wrapper_on_the_path_gives_way_to_the_binary_it_would_run() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        std::fs::create_dir(&own).unwrap();
        std::fs::write(own.join("pg_dump"), "#!/bin/sh\n").unwrap();
        assert_eq!(PgClient::find_bin_dir(std::slice::from_ref(&own)), None);

        let debian = dir.path().join("debian");
        std::fs::create_dir_all(debian.join("share")).unwrap();
        std::fs::write(debian.join("share/pg_wrapper"), "#!/usr/bin/perl\n").unwrap();
        let bin = debian.join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink("../share/pg_wrapper", bin.join("pg_dump")).unwrap();
        let found = PgClient::find_bin_dir(&[bin]).expect(
            "no /usr/lib/postgresql/<N>/bin/pg_dump: run `cargo xtask test`, which installs \
             PostgreSQL",
        );
        assert!(
            found.starts_with("/usr/lib/postgresql"),
            "{}",
            found.display()
        );
        assert!(found.join("pg_dump").is_file());
    }

    #[test]
    fn uris_parse_with_hostile_passwords_and_never_echo_them() {
        let conn = PgConn::parse_uri(
            "postgresql://circle:p%27%22%24%40%3A%2F%3F%23%25w%C3%B6rd@db.internal:5433/circle?sslmode=verify-full&sslrootcert=/ca.pem",
        )
        .unwrap();
        assert_eq!(conn.user, "circle");
        assert_eq!(
            conn.password.as_ref().unwrap().expose_secret(),
            "p'\"$@:/?#%wörd"
        );
        assert_eq!(
            (conn.host.as_str(), conn.port, conn.dbname.as_str()),
            ("db.internal", 5433, "circle")
        );
        assert_eq!(conn.params.len(), 2);
        assert_eq!(format!("{conn:?}"), "circle@db.internal:5433");
        let err = PgConn::parse_uri("postgresql://u:secret@h/db?sslmod=x").unwrap_err();
        assert!(!err.contains("secret"));
        assert!(PgConn::parse_uri("mysql://h").is_err());
        assert_eq!(
            PgConn::parse_uri("postgres://[::1]:6000").unwrap().host,
            "::1"
        );
        assert_eq!(passfile_field(r"a:b\c"), r"a\:b\\c");
    }

    #[test]
    fn password_dirs_of_dead_runs_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = (4_000_000u32..)
            .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            .unwrap();
        let make = |name: String| {
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("pgpass"), "*:*:*:u:secret\n").unwrap();
            dir
        };
        let stale = make(format!("circle-export-pg-{dead}-abc"));
        let live = make(format!("circle-export-pg-{}-def", std::process::id()));
        let init = make("circle-export-pg-1-ghi".to_owned());
        let other = make(format!("someone-else-{dead}"));
        super::remove_stale_passfile_dirs(tmp.path());
        assert!(!stale.exists(), "a dead run's password file survived");
        assert!(live.exists() && init.exists() && other.exists());
    }

    #[test]
    fn a_uri_without_sslmode_is_verified_tls_and_downgrades_are_refused() {
        let conn = PgConn::parse_uri("postgresql://circle@pg.internal/circle").unwrap();
        let env = conn.env("circle", std::path::Path::new("/tmp/pass"));
        assert!(
            env.contains(&("PGSSLMODE".into(), "verify-full".into())),
            "{env:?}"
        );
        assert!(conn.tls_warning().is_none());
        for mode in ["prefer", "allow", "bogus"] {
            let err = PgConn::parse_uri(&format!("postgresql://pg/db?sslmode={mode}")).unwrap_err();
            assert!(err.contains("not accepted"), "{mode}: {err}");
        }
        let require = PgConn::parse_uri("postgresql://pg/db?sslmode=require").unwrap();
        assert!(require.tls_warning().unwrap().contains("does not check"));
    }

    #[test]
    fn the_filter_drops_statements_but_never_copy_data() {
        let sql = b"SET x;\nCOMMENT ON EXTENSION pgcrypto IS 'x';\nCOPY public.t (a) FROM stdin;\n\
                    COMMENT ON EXTENSION in data\n1\n\\.\nCOMMENT ON EXTENSION b IS 'y';\nSELECT 1;\n";
        for chunk in [1, 2, 3, 5, 1000] {
            let mut filter = SqlFilter::new(skip_for_own_dump);
            let mut out = Vec::new();
            for piece in sql.chunks(chunk) {
                filter.feed(piece, &mut out);
            }
            filter.finish(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "SET x;\nCOPY public.t (a) FROM stdin;\nCOMMENT ON EXTENSION in data\n1\n\\.\nSELECT 1;\n",
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn lines_inside_function_bodies_strings_and_comments_are_never_filtered() {
        let sql = "CREATE FUNCTION f() RETURNS void AS $body$\n\
                   COMMENT ON EXTENSION pgcrypto IS 'kept';\n\
                   COPY t FROM stdin;\n\
                   $body$ LANGUAGE sql;\n\
                   SELECT 'multi\n\
                   COMMENT ON EXTENSION x IS ''kept too'';\n\
                   ';\n\
                   /*\n\
                   COMMENT ON EXTENSION y IS 'in a comment';\n\
                   */\n\
                   COMMENT ON EXTENSION z IS 'dropped';\n\
                   SELECT 2;\n";
        for chunk in [1, 3, 7, 1000] {
            let mut filter = SqlFilter::new(skip_for_own_dump);
            let mut out = Vec::new();
            for piece in sql.as_bytes().chunks(chunk) {
                filter.feed(piece, &mut out);
            }
            filter.finish(&mut out);
            let out = String::from_utf8(out).unwrap();
            assert_eq!(
                out,
                sql.replace("COMMENT ON EXTENSION z IS 'dropped';\n", ""),
                "chunk {chunk}"
            );
        }
    }
}
