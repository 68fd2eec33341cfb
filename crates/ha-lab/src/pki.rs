//! The lab's own certificate authority.

use std::path::{Path, PathBuf};

use ha_tls::{Ca, CaSpec, LeafPaths, LeafSpec, PkiDir};
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::Error;

/// Organization written into every lab certificate.
pub const LAB_ORGANIZATION: &str = "circle-ha lab";
/// Organizational unit of host (server and member) certificates.
pub const LAB_HOST_UNIT: &str = "hosts";
/// Organizational unit of client certificates (different from the hosts',
/// as MongoDB requires of client certificates).
pub const LAB_CLIENT_UNIT: &str = "clients";

/// A throw-away CA with a host certificate for `localhost`, `127.0.0.1` and
/// `::1`, made with `ha-tls` in a temporary directory.
///
/// Every lab service uses it for its TLS listener, so clients verify the
/// server against [`LabPki::ca_file`] with host name `localhost`, exactly as
/// they would in production with `sslmode=verify-full` or `tlsCAFile`.
#[derive(Debug)]
pub struct LabPki {
    // Kept for its Drop: the directory is removed with the LabPki.
    _dir: Option<TempDir>,
    pki: PkiDir,
    ca: Ca,
    server: LeafPaths,
}

impl LabPki {
    /// Creates a CA and the `localhost` host certificate in a new temporary
    /// directory.
    pub fn new() -> Result<LabPki, Error> {
        let dir = tempfile::Builder::new()
            .prefix("ha-lab-pki-")
            .tempdir()
            .map_err(Error::io("a temporary directory for the lab CA"))?;
        let mut res = LabPki::in_dir(dir.path())?;
        res._dir = Some(dir);
        Ok(res)
    }

    /// Creates (or loads) the lab CA and `localhost` certificate in `dir`,
    /// which outlives the returned value.
    pub fn in_dir(dir: &Path) -> Result<LabPki, Error> {
        let now = OffsetDateTime::now_utc();
        let pki = PkiDir::new(dir);
        let (ca, _) = pki.ensure_ca(&CaSpec::new(LAB_ORGANIZATION, LAB_HOST_UNIT), now)?;
        let spec = LeafSpec::host(
            &["localhost", "127.0.0.1", "::1"],
            LAB_ORGANIZATION,
            LAB_HOST_UNIT,
        )?;
        let (server, _) = pki.ensure_leaf(&ca, "localhost", &spec, now)?;
        Ok(LabPki {
            _dir: None,
            pki,
            ca,
            server,
        })
    }

    /// The CA certificate file clients must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.ca_paths().cert
    }

    /// The CA, for issuing further certificates.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.pki.dir()
    }

    /// The `localhost` host certificate's files (`.crt`, `.key`, `.pem`).
    pub fn server(&self) -> &LeafPaths {
        &self.server
    }

    /// Issues (or keeps) a client certificate named `name` with common name
    /// `common_name`, in the clients' OU.
    pub fn client(&self, name: &str, common_name: &str) -> Result<LeafPaths, Error> {
        let spec = LeafSpec::client(common_name, LAB_ORGANIZATION, LAB_CLIENT_UNIT)?;
        let (paths, _) = self
            .pki
            .ensure_leaf(&self.ca, name, &spec, OffsetDateTime::now_utc())?;
        Ok(paths)
    }
}
