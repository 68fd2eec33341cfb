//! A PKI directory on disk: issue-or-load, idempotently.
//!
//! Layout (every consumer finds the form it wants):
//!
//! | file | mode | content | used by |
//! |---|---|---|---|
//! | `ca.pem` | 0644 | CA certificate | mongod `tlsCAFile`, PostgreSQL `sslrootcert`, Vault clients |
//! | `ca.crt` | 0644 | same bytes | `/usr/local/share/ca-certificates/*.crt` |
//! | `ca.key` | 0600 | CA private key | signing only; keep it off the hosts |
//! | `<name>.crt` | 0644 | leaf certificate | PostgreSQL `ssl_cert_file`, Vault `tls_cert_file` |
//! | `<name>.key` | 0600 | leaf private key | PostgreSQL `ssl_key_file`, Vault `tls_key_file` |
//! | `<name>.pem` | 0600 | certificate then key | mongod `tlsCertificateKeyFile`/`clusterFile`, driver client certificate |
//!
//! Every file is written to a temporary file in the same directory, synced
//! and renamed into place, so a crash leaves either the old or the new file.
//! A key is written before its certificate: a run killed in between leaves a
//! key without a matching certificate, which the next run detects and
//! replaces.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use crate::ca::parse_key;
use crate::{Ca, CaSpec, Certificate, Error, LeafSpec};

/// What issue-or-load did with one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed, was valid for the spec and was kept unchanged. Derived
    /// files that were missing (e.g. `ca.crt`, `<name>.pem`) may have been
    /// rewritten from it.
    Kept,
    /// It existed but did not satisfy the spec and was replaced.
    Replaced {
        /// Why the old certificate was not kept.
        reasons: Vec<String>,
    },
}

impl Outcome {
    /// Whether anything was written.
    pub fn changed(&self) -> bool {
        !matches!(self, Outcome::Kept)
    }
}

/// The state of one leaf certificate on disk, as [`PkiDir::inspect_leaf`]
/// finds it. Reading it changes nothing, so it backs `--dry-run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeafState {
    /// Neither certificate nor key exists.
    Missing,
    /// Certificate and key exist and satisfy the spec.
    Valid,
    /// Something is wrong; issuing again fixes it.
    Invalid {
        /// Every reason found.
        reasons: Vec<String>,
    },
}

/// The paths of one leaf certificate's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafPaths {
    /// `<name>.crt`: the certificate.
    pub cert: PathBuf,
    /// `<name>.key`: the private key (0600).
    pub key: PathBuf,
    /// `<name>.pem`: certificate followed by key (0600).
    pub combined: PathBuf,
}

/// The paths of the CA's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaPaths {
    /// `ca.pem`: the CA certificate.
    pub cert: PathBuf,
    /// `ca.crt`: the same certificate, named for `update-ca-certificates`.
    pub crt: PathBuf,
    /// `ca.key`: the CA private key (0600).
    pub key: PathBuf,
}

/// A directory holding a CA and the certificates it issued.
#[derive(Clone, Debug)]
pub struct PkiDir {
    dir: PathBuf,
    renew_before: Duration,
}

impl PkiDir {
    /// A PKI directory at `dir` (created on first write, mode 0700). Leaf
    /// certificates expiring within 30 days are renewed.
    pub fn new(dir: impl Into<PathBuf>) -> PkiDir {
        PkiDir {
            dir: dir.into(),
            renew_before: Duration::days(30),
        }
    }

    /// Changes how close to expiry a leaf certificate is renewed.
    pub fn renew_before(mut self, renew_before: Duration) -> PkiDir {
        self.renew_before = renew_before;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the CA's files live.
    pub fn ca_paths(&self) -> CaPaths {
        CaPaths {
            cert: self.dir.join("ca.pem"),
            crt: self.dir.join("ca.crt"),
            key: self.dir.join("ca.key"),
        }
    }

    /// Where leaf `name`'s files live. `name` must be a plain file stem
    /// (letters, digits, `.`, `-`, `_`; not starting with `.`).
    pub fn leaf_paths(&self, name: &str) -> Result<LeafPaths, Error> {
        check_file_stem(name)?;
        Ok(LeafPaths {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
            combined: self.dir.join(format!("{name}.pem")),
        })
    }

    /// Whether a CA exists (certificate or key).
    pub fn has_ca(&self) -> bool {
        let paths = self.ca_paths();
        paths.cert.exists() || paths.key.exists()
    }

    /// Loads the existing CA. Fails if it is missing, incomplete, not valid
    /// at `now`, or if certificate and key do not belong together.
    pub fn load_ca(&self, now: OffsetDateTime) -> Result<Ca, Error> {
        let paths = self.ca_paths();
        let cert_pem = read_to_string(&paths.cert)?;
        if !paths.key.exists() {
            return Err(Error::CaKeyMissing {
                cert: paths.cert,
                key: paths.key,
            });
        }
        let key_pem = SecretString::from(read_to_string(&paths.key)?);
        let ca = Ca::from_pem(
            &cert_pem,
            &paths.cert.display().to_string(),
            &key_pem,
            &paths.key.display().to_string(),
        )?;
        if !ca.certificate().is_valid_at(now) {
            return Err(Error::CaNotValidNow {
                cert: paths.cert,
                not_before: ca.certificate().not_before().to_string(),
                not_after: ca.certificate().not_after().to_string(),
            });
        }
        Ok(ca)
    }

    /// Loads the CA, or creates it from `spec` if there is none. An existing
    /// CA is never replaced: every host trusts it.
    pub fn ensure_ca(&self, spec: &CaSpec, now: OffsetDateTime) -> Result<(Ca, Outcome), Error> {
        let paths = self.ca_paths();
        let (ca, outcome) = match (paths.cert.exists(), paths.key.exists()) {
            (true, _) => (self.load_ca(now)?, Outcome::Kept),
            (false, true) => {
                // A previous run was stopped after writing the key: finish it.
                let key_pem = SecretString::from(read_to_string(&paths.key)?);
                let ca = Ca::generate_with_key(spec, &key_pem, now)?;
                write_file(&paths.cert, ca.cert_pem().as_bytes(), 0o644)?;
                (ca, Outcome::Created)
            }
            (false, false) => {
                let ca = Ca::generate(spec, now)?;
                self.create_dir()?;
                write_file(&paths.key, ca.key_pem().expose_secret().as_bytes(), 0o600)?;
                write_file(&paths.cert, ca.cert_pem().as_bytes(), 0o644)?;
                (ca, Outcome::Created)
            }
        };
        if read_optional(&paths.crt)?.as_deref() != Some(ca.cert_pem().as_bytes()) {
            write_file(&paths.crt, ca.cert_pem().as_bytes(), 0o644)?;
        }
        Ok((ca, outcome))
    }

    /// Reports whether leaf `name` exists and satisfies `spec` under `ca`,
    /// without writing anything.
    pub fn inspect_leaf(
        &self,
        ca: &Certificate,
        name: &str,
        spec: &LeafSpec,
        now: OffsetDateTime,
    ) -> Result<LeafState, Error> {
        let paths = self.leaf_paths(name)?;
        let cert_pem = read_optional(&paths.cert)?;
        let key_pem = read_optional(&paths.key)?;
        let (cert_pem, key_pem) = match (cert_pem, key_pem) {
            (None, None) => return Ok(LeafState::Missing),
            (None, Some(_)) => {
                return Ok(LeafState::Invalid {
                    reasons: vec![format!("{} is missing", paths.cert.display())],
                });
            }
            (Some(_), None) => {
                return Ok(LeafState::Invalid {
                    reasons: vec![format!("{} is missing", paths.key.display())],
                });
            }
            (Some(cert), Some(key)) => (cert, key),
        };
        let what = paths.cert.display().to_string();
        let cert = match Certificate::from_pem(&cert_pem, &what) {
            Ok(cert) => cert,
            Err(e) => {
                return Ok(LeafState::Invalid {
                    reasons: vec![e.to_string()],
                });
            }
        };
        let mut reasons = spec.mismatches(&cert);
        let key_pem = SecretString::from(String::from_utf8_lossy(&key_pem).into_owned());
        match parse_key(&key_pem, &paths.key.display().to_string()) {
            Ok(key) => {
                if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key_der() {
                    reasons.push(format!("does not belong to {}", paths.key.display()));
                }
            }
            Err(e) => reasons.push(e.to_string()),
        }
        if !cert.is_signed_by(ca) {
            reasons.push("was not issued by this CA".to_owned());
        }
        if now < cert.not_before() {
            reasons.push(format!("is not valid before {}", cert.not_before()));
        }
        if cert.not_after() - now < self.renew_before {
            reasons.push(format!("expires {} (renewal is due)", cert.not_after()));
        }
        Ok(if reasons.is_empty() {
            LeafState::Valid
        } else {
            LeafState::Invalid { reasons }
        })
    }

    /// Keeps leaf `name` if it satisfies `spec`, otherwise issues it anew
    /// from `ca`. Also (re)writes `<name>.pem` if it is missing or stale.
    pub fn ensure_leaf(
        &self,
        ca: &Ca,
        name: &str,
        spec: &LeafSpec,
        now: OffsetDateTime,
    ) -> Result<(LeafPaths, Outcome), Error> {
        let paths = self.leaf_paths(name)?;
        let outcome = match self.inspect_leaf(ca.certificate(), name, spec, now)? {
            LeafState::Valid => Outcome::Kept,
            state => {
                let issued = ca.issue(spec, now)?;
                self.create_dir()?;
                write_file(&paths.key, issued.key_pem.expose_secret().as_bytes(), 0o600)?;
                write_file(&paths.cert, issued.cert_pem.as_bytes(), 0o644)?;
                match state {
                    LeafState::Missing => Outcome::Created,
                    LeafState::Invalid { reasons } => Outcome::Replaced { reasons },
                    LeafState::Valid => Outcome::Kept,
                }
            }
        };
        let cert_pem = read_to_string(&paths.cert)?;
        let key_pem = SecretString::from(read_to_string(&paths.key)?);
        let combined = SecretString::from(format!(
            "{}{}{}",
            cert_pem,
            if cert_pem.ends_with('\n') { "" } else { "\n" },
            key_pem.expose_secret()
        ));
        let current = read_optional(&paths.combined)?;
        if current.as_deref() != Some(combined.expose_secret().as_bytes()) {
            write_file(&paths.combined, combined.expose_secret().as_bytes(), 0o600)?;
        }
        Ok((paths, outcome))
    }

    fn create_dir(&self) -> Result<(), Error> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| Error::Write {
                path: self.dir.clone(),
                source,
            })
    }
}

/// Writes `bytes` to `path` atomically with permission bits `mode`: the data
/// goes to a temporary file created 0600 in the same directory, is synced,
/// gets its final mode and is renamed over `path`.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    tmp.write_all(bytes).map_err(write_error)?;
    tmp.as_file().sync_all().map_err(write_error)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(write_error)?;
    tmp.persist(path).map_err(|e| write_error(e.error))?;
    if let Ok(dir) = fs::File::open(dir) {
        // Make the rename durable; failure here only weakens crash safety.
        let _ = dir.sync_all();
    }
    Ok(())
}

fn read_to_string(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn check_file_stem(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "certificate file name",
            value: name.to_owned(),
            reason: "use letters, digits, '.', '-' and '_' only, not starting with '.'",
        })
    }
}
