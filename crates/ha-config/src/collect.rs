//! Collecting problems while a section is read, so all come back at once.

use ha_plan::{Problem, ProblemKind, Problems};

use crate::secret::SecretRef;
use crate::{EnvLookup, HaConfig};

/// Problems and warnings found while reading one or more sections.
#[derive(Debug, Default)]
pub(crate) struct Collect {
    pub(crate) problems: Problems,
    pub(crate) warnings: Vec<String>,
}

impl Collect {
    pub(crate) fn push(
        &mut self,
        key: impl Into<String>,
        kind: ProblemKind,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem::new(key, kind, message));
    }

    pub(crate) fn missing(&mut self, key: impl Into<String>) {
        self.problems.push(Problem::missing(key));
    }

    pub(crate) fn missing_because(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.push(
            key,
            ProblemKind::Missing,
            format!("is missing {}", why.into()),
        );
    }

    pub(crate) fn invalid(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.push(key, ProblemKind::Invalid, message);
    }

    pub(crate) fn unreadable(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.push(key, ProblemKind::Unreadable, message);
    }

    pub(crate) fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.problems.extend(problems);
    }

    /// `value` at `key` if it is present and not blank.
    pub(crate) fn required(&mut self, key: &str, value: Option<&String>) -> String {
        match value {
            Some(v) if !v.trim().is_empty() => v.clone(),
            _ => {
                self.missing(key);
                String::new()
            }
        }
    }

    /// Parses the secret reference at `key`, recording a problem if it is
    /// missing or malformed (without repeating the value).
    pub(crate) fn secret_ref(&mut self, key: &str, value: Option<&str>) -> Option<SecretRef> {
        match value {
            None => {
                self.missing_because(key, "(write env:NAME or file:PATH)");
                None
            }
            Some(text) => match SecretRef::parse(text) {
                Ok(reference) => Some(reference),
                Err(why) => {
                    self.invalid(key, why);
                    None
                }
            },
        }
    }

    /// Parses and resolves the secret at `key`; an empty secret stands in
    /// when it cannot be had (a problem is recorded then).
    pub(crate) fn secret(
        &mut self,
        config: &HaConfig,
        env: EnvLookup<'_>,
        key: &str,
        value: Option<&str>,
    ) -> secrecy::SecretString {
        let Some(reference) = self.secret_ref(key, value) else {
            return secrecy::SecretString::from(String::new());
        };
        match config.resolve(key, &reference, env, &mut self.warnings) {
            Ok(secret) => secret,
            Err(problems) => {
                self.problems.extend(problems);
                secrecy::SecretString::from(String::new())
            }
        }
    }

    /// Reads a file the configuration names at `key`.
    pub(crate) fn read(&mut self, key: &str, path: &std::path::Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| {
            self.unreadable(key, format!("{}: {e}", path.display()));
            Vec::new()
        })
    }

    /// Checks that `path` holds a CA bundle rustls accepts, returning its
    /// PEM.
    pub(crate) fn ca_file(&mut self, key: &str, path: &std::path::Path) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(pem) => match ha_tls::root_store(&pem, &path.display().to_string()) {
                Ok(_) => Some(pem),
                Err(e) => {
                    self.invalid(key, format!(": {e}"));
                    None
                }
            },
            Err(e) => {
                self.unreadable(key, format!("{}: {e}", path.display()));
                None
            }
        }
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, Problems> {
        self.problems.finish(value)
    }
}
