//! Secret references: how `ha.toml` and flags name a secret without holding
//! it.
//!
//! A secret is written as `env:NAME` (the value of environment variable
//! NAME), `file:PATH` (the contents of a file, one trailing newline
//! removed; a relative PATH is relative to the config file's directory) or
//! `cred:NAME` (a systemd credential: the file NAME in
//! `$CREDENTIALS_DIRECTORY`, which `LoadCredential=` fills for a unit).
//! Files are read up to 1 MiB.
//! Literal secrets are refused: a password written into `ha.toml` ends up in
//! backups, version control and terminal scrollback.

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use ha_plan::Problems;
use secrecy::{ExposeSecret as _, SecretString};

use crate::EnvLookup;

/// A parsed secret reference.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`.
    Env(String),
    /// `file:PATH`.
    File(PathBuf),
    /// `cred:NAME`: `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

/// The largest secret file read.
const MAX_SECRET_FILE: u64 = 1 << 20;

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::Credential(name) => write!(f, "cred:{name}"),
        }
    }
}

/// A resolved secret and a warning to show, if any (e.g. a secret file
/// readable by other users).
pub struct Resolved {
    /// The secret.
    pub value: SecretString,
    /// Something the operator should fix, though it does not stop the run.
    pub warning: Option<String>,
}

impl SecretRef {
    /// Parses `env:NAME`, `file:PATH` or `cred:NAME`. The error never repeats the input,
    /// which may be a secret pasted in by mistake.
    pub fn parse(text: &str) -> Result<SecretRef, String> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if valid {
                Ok(SecretRef::Env(name.to_owned()))
            } else {
                Err(
                    "env: must be followed by an environment variable name (letters, digits, _)"
                        .to_owned(),
                )
            };
        }
        if let Some(name) = text.strip_prefix("cred:") {
            let valid = !name.is_empty()
                && name.len() <= 255
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            return if valid {
                Ok(SecretRef::Credential(name.to_owned()))
            } else {
                Err(
                    "cred: must be followed by a systemd credential name (letters, digits, _ - .)"
                        .to_owned(),
                )
            };
        }
        if let Some(path) = text.strip_prefix("file:") {
            return if path.is_empty() {
                Err("file: must be followed by a path".to_owned())
            } else {
                Ok(SecretRef::File(PathBuf::from(path)))
            };
        }
        Err(
            "must be a secret reference, env:NAME, file:PATH or cred:NAME; literal secrets are not \
             accepted (they end up in backups and version control)"
                .to_owned(),
        )
    }

    /// Reads the secret. `env` looks up environment variables; `base_dir`
    /// anchors relative file paths.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        base_dir: &Path,
    ) -> Result<Resolved, String> {
        match self {
            SecretRef::Env(name) => match env(name) {
                Some(value) if !value.is_empty() => Ok(Resolved {
                    value: SecretString::from(value),
                    warning: None,
                }),
                Some(_) => Err(format!("environment variable {name} is empty")),
                None => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(path) => read_secret_file(&base_dir.join(path)),
            SecretRef::Credential(name) => match env("CREDENTIALS_DIRECTORY") {
                Some(dir) if !dir.is_empty() => read_secret_file(&Path::new(&dir).join(name)),
                _ => Err(format!(
                    "cred:{name} names a systemd credential, but CREDENTIALS_DIRECTORY is not \
                     set (run from a unit with LoadCredential={name}:PATH, or use file:PATH)"
                )),
            },
        }
    }
}

/// A secret file's text (one trailing newline removed), at most
/// [`MAX_SECRET_FILE`] bytes, with a warning when others may read it.
fn read_secret_file(path: &Path) -> Result<Resolved, String> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if metadata.len() > MAX_SECRET_FILE {
        return Err(format!(
            "{} is {} bytes; a secret file holds at most {MAX_SECRET_FILE}",
            path.display(),
            metadata.len()
        ));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    let mode = metadata.permissions().mode() & 0o777;
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "secret file {} is readable by other users (mode {mode:o}); run chmod 600 on it",
            path.display()
        )
    });
    Ok(Resolved {
        value: SecretString::from(text),
        warning,
    })
}

/// `len` random ASCII letters and digits from the operating system's
/// random source (through ring), for generated secrets. Fails rather than
/// return a predictable value.
pub fn generate_secret(len: usize) -> Result<SecretString, String> {
    use ring::rand::SecureRandom as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut bytes)
            .map_err(|_| "the operating system's random source failed".to_owned())?;
        // 248 = 4 * 62: rejecting larger bytes keeps the choice uniform.
        out.extend(
            bytes
                .iter()
                .filter(|b| **b < 248)
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .take(len - out.len()),
        );
    }
    Ok(SecretString::from(out))
}

/// A secret flag's value (`--passphrase`, `--identity`): an `env:`,
/// `file:` or `cred:` reference (a relative `file:` path resolved against
/// `base`), read; a literal is refused. Problems are keyed by `flag` and
/// never quote the value; a warning (a secret file others may read) goes
/// to `warnings`.
pub fn secret_from_flag(
    flag: &str,
    value: &str,
    env: EnvLookup<'_>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<SecretString, Problems> {
    let reference =
        SecretRef::parse(value).map_err(|e| Problems::one(ha_plan::Problem::invalid(flag, e)))?;
    let resolved = reference
        .resolve(env, base)
        .map_err(|e| Problems::one(ha_plan::Problem::invalid(flag, format!("{reference}: {e}"))))?;
    warnings.extend(resolved.warning);
    Ok(resolved.value)
}

/// A connection-string flag's value (`--pg-uri`, `--mongo-uri`): a secret
/// reference (`env:NAME`, `file:PATH`, resolved against `base`), or a
/// literal URI that holds no password — one with a password is refused,
/// since other users can read a command line. Problems are keyed by
/// `flag` and never quote the value.
pub fn uri_from_flag(
    flag: &str,
    value: &str,
    env: EnvLookup<'_>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<SecretString, Problems> {
    if value.starts_with("env:") || value.starts_with("file:") || value.starts_with("cred:") {
        let resolved = secret_from_flag(flag, value, env, base, warnings)?;
        return Ok(SecretString::from(
            resolved.expose_secret().trim().to_owned(),
        ));
    }
    let authority = value
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default())
        .unwrap_or_default();
    let has_password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    if has_password {
        return Err(Problems::one(ha_plan::Problem::invalid(
            flag,
            format!(
                ": a URI with a password must not be given on the command line (other users \
                 can read it in the process list); put it in an environment variable or a 0600 \
                 file and pass {flag} env:NAME or {flag} file:PATH"
            ),
        )));
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret as _;

    use super::SecretRef;

    #[test]
    fn generated_secrets_are_alphanumeric_and_differ() {
        let a = super::generate_secret(40).unwrap();
        let b = super::generate_secret(40).unwrap();
        assert_eq!(a.expose_secret().len(), 40);
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn references_parse_and_literals_are_refused_without_echo() {
        assert_eq!(
            SecretRef::parse("env:PG_ADMIN_PASSWORD"),
            Ok(SecretRef::Env("PG_ADMIN_PASSWORD".to_owned()))
        );
        assert_eq!(
            SecretRef::parse("file:secrets/pg"),
            Ok(SecretRef::File("secrets/pg".into()))
        );
        let err = SecretRef::parse("hunter2").unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(SecretRef::parse("env:").is_err());
        assert!(SecretRef::parse("env:1X").is_err());
    }

    #[test]
    fn files_lose_one_trailing_newline_and_loose_modes_warn() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("pw"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let resolved = SecretRef::parse("file:pw")
            .unwrap()
            .resolve(&|_| None, dir.path())
            .unwrap();
        assert_eq!(resolved.value.expose_secret(), "s3cret\n");
        assert!(resolved.warning.unwrap().contains("chmod 600"));

        let err = SecretRef::parse("env:NOPE")
            .unwrap()
            .resolve(&|_| None, Path::new("."))
            .err()
            .unwrap();
        assert_eq!(err, "environment variable NOPE is not set");
    }

    #[test]
    fn systemd_credentials_are_read_from_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mongo-admin"), "p'\"$@:/?#%wörd\n").unwrap();
        let reference = SecretRef::parse("cred:mongo-admin").unwrap();
        assert_eq!(reference.to_string(), "cred:mongo-admin");
        let creds = dir.path().display().to_string();
        let env = |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| creds.clone());
        let resolved = reference.resolve(&env, Path::new("/")).unwrap();
        assert_eq!(resolved.value.expose_secret(), "p'\"$@:/?#%wörd");
        let err = reference.resolve(&|_| None, Path::new("/")).err().unwrap();
        assert!(err.contains("CREDENTIALS_DIRECTORY"), "{err}");
        for bad in ["cred:", "cred:../x", "cred:a/b", "cred:.hidden"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
        // A secret file over 1 MiB is refused before it is read.
        std::fs::write(dir.path().join("big"), vec![b'x'; (1 << 20) + 1]).unwrap();
        let err = SecretRef::parse("file:big")
            .unwrap()
            .resolve(&|_| None, dir.path())
            .err()
            .unwrap();
        assert!(err.contains("at most"), "{err}");
    }
}
