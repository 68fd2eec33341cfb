//! A private OpenBao server: raft storage in a temporary directory, a TLS
//! listener on a random port, left uninitialised and sealed.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::process::{Daemon, free_port, log_contains, port_open, with_port_retries};
use crate::{Error, LabPki, Toolbox};

/// A running OpenBao server, stopped and deleted on drop.
///
/// It is not initialised: tests drive `sys/init` and `sys/unseal`
/// themselves. Clients reach it at [`OpenBao::addr`] and verify its
/// certificate against [`OpenBao::ca_file`].
#[derive(Debug)]
pub struct OpenBao {
    daemon: Daemon,
    dir: TempDir,
    port: u16,
    cluster_port: u16,
}

impl OpenBao {
    /// Starts a single-node server with integrated (raft) storage: OpenBao
    /// 2.x has no `file` storage. Waits until the API listener answers.
    pub fn start(tools: &Toolbox, pki: &LabPki) -> Result<OpenBao, Error> {
        let dir = tempfile::Builder::new()
            .prefix("ha-lab-bao-")
            .tempdir()
            .map_err(Error::io("a temporary directory for OpenBao"))?;
        let root = dir.path().to_owned();
        fs::create_dir(root.join("raft")).map_err(Error::io(root.join("raft")))?;
        fs::copy(pki.ca_file(), root.join("ca.pem")).map_err(Error::io(root.join("ca.pem")))?;
        let server = pki.server();
        let (daemon, port, cluster_port) = with_port_retries(|| {
            let port = free_port()?;
            let cluster_port = free_port()?;
            let config = lab_config(&root, port, cluster_port, &server.cert, &server.key);
            let daemon = OpenBao::spawn_config(tools, &root, &config, port)?;
            Ok((daemon, port, cluster_port))
        })?;
        Ok(OpenBao {
            daemon,
            dir,
            port,
            cluster_port,
        })
    }

    /// Starts `bao server` with a caller-supplied configuration (HCL text),
    /// written to `dir/bao.hcl`, and waits until `port` answers. For tests of
    /// rendered server configurations; the caller owns `dir` and the ports.
    pub fn start_with_config(
        tools: &Toolbox,
        dir: &Path,
        config: &str,
        port: u16,
    ) -> Result<OpenBaoProcess, Error> {
        let daemon = OpenBao::spawn_config(tools, dir, config, port)?;
        Ok(OpenBaoProcess { daemon })
    }

    fn spawn_config(tools: &Toolbox, dir: &Path, config: &str, port: u16) -> Result<Daemon, Error> {
        let bao = tools.bao()?;
        let config_file = dir.join("bao.hcl");
        ha_tls::write_file(&config_file, config.as_bytes(), 0o600)?;
        let log = dir.join("bao.log");
        let mut command = Command::new(bao);
        command
            .arg("server")
            .arg(format!("-config={}", config_file.display()))
            // The server must not pick up an operator's client settings.
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN");
        let mut daemon = Daemon::spawn("OpenBao", command, &log, libc::SIGTERM)?;
        daemon.wait_until(|| log_contains(&log, "server started") && port_open(port))?;
        Ok(daemon)
    }

    /// The API address, e.g. `https://localhost:41234`.
    pub fn addr(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The API port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster port on 127.0.0.1.
    pub fn cluster_port(&self) -> u16 {
        self.cluster_port
    }

    /// The CA certificate that signed the listener's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        self.daemon.log()
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period). Also
    /// done on drop.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

/// A `bao server` started from a caller's configuration; stopped on drop.
#[derive(Debug)]
pub struct OpenBaoProcess {
    daemon: Daemon,
}

impl OpenBaoProcess {
    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        self.daemon.log()
    }

    /// Stops the server. Also done on drop.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

fn lab_config(root: &Path, port: u16, cluster_port: u16, cert: &Path, key: &Path) -> String {
    let mut config = String::new();
    let _ = writeln!(config, "storage \"raft\" {{");
    let _ = writeln!(config, "  path    = \"{}\"", root.join("raft").display());
    let _ = writeln!(config, "  node_id = \"lab\"");
    let _ = writeln!(config, "}}");
    let _ = writeln!(config, "listener \"tcp\" {{");
    let _ = writeln!(config, "  address         = \"127.0.0.1:{port}\"");
    let _ = writeln!(config, "  cluster_address = \"127.0.0.1:{cluster_port}\"");
    let _ = writeln!(config, "  tls_cert_file   = \"{}\"", cert.display());
    let _ = writeln!(config, "  tls_key_file    = \"{}\"", key.display());
    let _ = writeln!(config, "}}");
    let _ = writeln!(config, "api_addr     = \"https://localhost:{port}\"");
    let _ = writeln!(
        config,
        "cluster_addr = \"https://127.0.0.1:{cluster_port}\""
    );
    let _ = writeln!(config, "ui           = false");
    config
}
