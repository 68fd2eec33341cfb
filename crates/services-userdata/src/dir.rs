//! A rendered bundle on disk: written with each file's mode decided by the
//! bundle itself, read back for publishing and for the next render.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::{Bundle, BundleFile, Error, USERDATA_LIMIT};

/// The file the user data runs last, which holds the session cookie key.
const CUSTOMIZATIONS: &str = "circle-installation-customizations";
const USERDATA: &str = "userdata.sh";

/// Whether the bundle file at `path` holds a secret. Every file the bundle
/// carries does, except the CA certificates (`ca.crt`, `ca-2.crt`, …): the
/// license, the customization files with the URIs, settings.conf,
/// replicated.conf, the encryption keys.
pub fn is_secret_path(path: &str) -> bool {
    let ca = path == "ca.crt"
        || path
            .strip_prefix("ca-")
            .and_then(|rest| rest.strip_suffix(".crt"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    !ca
}

impl Bundle {
    /// Every file (and `userdata.sh`) with its mode: secret files 0600,
    /// the others 0644.
    fn entries(&self) -> impl Iterator<Item = (&str, &[u8], u32)> {
        self.files
            .iter()
            .map(|f| {
                let mode = if f.secret { 0o600 } else { 0o644 };
                (f.path.as_str(), f.bytes.as_slice(), mode)
            })
            .chain(std::iter::once((USERDATA, self.userdata.as_bytes(), 0o644)))
    }

    /// The files under `dir` that [`Bundle::write_to`] would write: missing
    /// or different ones. Reads only.
    pub fn changes_in(&self, dir: &Path) -> Vec<PathBuf> {
        self.entries()
            .map(|(path, bytes, _)| (dir.join(path), bytes))
            .filter(|(target, bytes)| std::fs::read(target).ok().as_deref() != Some(*bytes))
            .map(|(target, _)| target)
            .collect()
    }

    /// `services-userdata render` into `dir` as one call: writes the files
    /// that differ (with `dry_run`, only lists them) and reports them under
    /// `tool`'s name, with the bundle's warnings after `warnings` and one
    /// more when the user data nears EC2's limit. A second call writes
    /// nothing.
    pub fn sync_to(
        &self,
        dir: &Path,
        tool: &str,
        dry_run: bool,
        mut warnings: Vec<String>,
    ) -> Result<ha_plan::Report, Error> {
        warnings.extend(self.warnings.iter().cloned());
        let actions = if dry_run {
            self.changes_in(dir)
                .into_iter()
                .map(|target| {
                    let shown = target.display().to_string();
                    ha_plan::Action::new("write", shown.clone(), format!("write {shown}"))
                })
                .collect()
        } else {
            self.write_to(dir)?
                .into_iter()
                .map(|(path, len, mode)| {
                    let shown = path.display().to_string();
                    let detail = format!("write {shown} ({len} bytes, mode {mode:o})");
                    ha_plan::Action::new("write", shown, detail)
                })
                .collect()
        };
        // Rendering refuses user data over the limit; say so early when it
        // nears it.
        let limit = crate::USERDATA_LIMIT;
        if self.userdata.len() > limit / 4 * 3 {
            warnings.push(format!(
                "user data is {} bytes, near EC2's limit of {limit}",
                self.userdata.len()
            ));
        }
        Ok(ha_plan::Report::new(tool, dry_run, actions, warnings))
    }

    /// Writes the bundle into `dir` (created 0700 as needed): secret files
    /// 0600, the others and `userdata.sh` 0644, each atomically. Files that
    /// already hold the right bytes are left alone; the ones written are
    /// returned with their modes, so a second write returns nothing.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<(PathBuf, usize, u32)>, Error> {
        let mut written = Vec::new();
        for (path, bytes, mode) in self.entries() {
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|source| Error::Io {
                        path: parent.to_owned(),
                        source,
                    })?;
            }
            if std::fs::read(&target).ok().as_deref() == Some(bytes) {
                continue;
            }
            ha_tls::write_file(&target, bytes, mode)?;
            written.push((target, bytes.len(), mode));
        }
        Ok(written)
    }

    /// Reads a bundle [`Bundle::write_to`] wrote. Which files are secret
    /// follows from their paths ([`is_secret_path`]), never from what is on
    /// disk; temporary files of an interrupted write are skipped. Refuses
    /// user data over EC2's limit.
    pub fn read_from(dir: &Path) -> Result<Bundle, Error> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let userdata = match std::fs::read_to_string(dir.join(USERDATA)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotRendered {
                    dir: dir.to_owned(),
                });
            }
            Err(e) => return Err(io(&dir.join(USERDATA))(e)),
        };
        if userdata.len() > USERDATA_LIMIT {
            return Err(Error::UserdataTooLarge {
                bytes: userdata.len(),
            });
        }
        let mut files = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(current) = stack.pop() {
            for entry in std::fs::read_dir(&current).map_err(io(&current))? {
                let path = entry.map_err(io(&current))?.path();
                let file_type = std::fs::symlink_metadata(&path)
                    .map_err(io(&path))?
                    .file_type();
                if file_type.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(dir) else {
                    continue;
                };
                let relative = relative
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                let name = relative.rsplit('/').next().unwrap_or_default();
                if relative == USERDATA || name.starts_with(".tmp-") {
                    continue;
                }
                files.push(BundleFile {
                    secret: is_secret_path(&relative),
                    bytes: std::fs::read(&path).map_err(io(&path))?,
                    path: relative,
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Bundle {
            files,
            userdata,
            warnings: Vec::new(),
        })
    }

    /// The `CIRCLE_SECRETS_SESSION_COOKIE_KEY` this bundle sets, so that a
    /// new render can keep it (changing it logs every user out).
    pub fn session_cookie_key(&self) -> Option<SecretString> {
        let file = self.files.iter().find(|f| f.path == CUSTOMIZATIONS)?;
        let text = std::str::from_utf8(&file.bytes).ok()?;
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("export CIRCLE_SECRETS_SESSION_COOKIE_KEY='"))?;
        let key = line.strip_suffix('\'')?;
        (key.len() >= 16 && key.chars().all(|c| c.is_ascii_alphanumeric()))
            .then(|| SecretString::from(key.to_owned()))
    }

    /// The session cookie key of the bundle rendered into `dir`, if there
    /// is one.
    pub fn session_cookie_key_in(dir: &Path) -> Option<SecretString> {
        Bundle::read_from(dir).ok()?.session_cookie_key()
    }
}

#[cfg(test)]
mod tests {
    use super::is_secret_path;

    #[test]
    fn only_ca_certificates_are_public() {
        for public in ["ca.crt", "ca-2.crt", "ca-10.crt"] {
            assert!(!is_secret_path(public), "{public}");
        }
        for secret in [
            "license.rli",
            "settings.conf",
            "circleconfig/shared/postgresql",
            "circleci-encryption-keys/key.crt",
            "ca-.crt",
            "ca-x.crt",
            "evil.crt",
        ] {
            assert!(is_secret_path(secret), "{secret}");
        }
    }
}
