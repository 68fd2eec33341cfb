//! `[pki]` and the certificates the rest of the file calls for, for ha-tls.

use std::path::Path;

use ha_plan::Problems;

pub use ha_tls::{PkiSpec as PkiSettings, WantedCert as WantedCertificate};

use crate::collect::Collect;
use crate::{HaConfig, Section};

impl HaConfig {
    /// `[pki]`, and the hosts of `[mongo]`, `[postgres]` and `[vault]`
    /// that need certificates: each MongoDB member (`<host>.pem`, identical
    /// O/OU for x509 membership), the PostgreSQL and Vault hosts, and —
    /// when `[mongo].tls.certificate_key_file` lies in the PKI directory —
    /// the tools' client certificate. Every problem at once.
    pub fn pki(&self) -> Result<PkiSettings, Problems> {
        let Some(pki) = self.raw.pki.as_ref() else {
            return Err(self.no_section(
                Section::Pki,
                " (write dir, organization and organizational_unit)",
            ));
        };
        let mut c = Collect::default();
        let mut text = |key: &str, value: Option<&String>| match value {
            Some(v) if !v.trim().is_empty() => v.clone(),
            Some(_) => {
                c.invalid(format!("[pki].{key}"), "must be a non-empty string");
                String::new()
            }
            None => {
                c.missing(format!("[pki].{key}"));
                String::new()
            }
        };
        let dir = text("dir", pki.dir.as_ref());
        let organization = text("organization", pki.organization.as_ref());
        let organizational_unit = text("organizational_unit", pki.organizational_unit.as_ref());
        let dir = (!dir.is_empty()).then(|| self.path_of(Path::new(&dir)));

        let mut wanted: Vec<WantedCertificate> = Vec::new();
        let mut want = |name: &str, role: ha_tls::Role, used_by: String| {
            // The file is named as the host is written (mongo-rs-setup looks
            // for `<dir>/<host>.pem`); names differing in case are one host.
            if let Some(existing) = wanted
                .iter_mut()
                .find(|w| w.name.eq_ignore_ascii_case(name))
            {
                // A member certificate serves as a server certificate too.
                existing.used_by.push(used_by);
                return;
            }
            wanted.push(WantedCertificate::new(name, role, used_by));
        };
        if let Some(mongo) = &self.raw.mongo {
            for (i, member) in mongo.members.iter().enumerate() {
                match mongo_rs_setup::parse_member_host(&member.host) {
                    Ok((host, _)) => {
                        want(&host, ha_tls::Role::Member, format!("[mongo].members[{i}]"));
                    }
                    Err(e) => c.invalid(format!("[mongo].members[{i}].host"), e),
                }
            }
        }
        if let Some(host) = self.raw.postgres.as_ref().and_then(|p| p.host.as_deref()) {
            want(host, ha_tls::Role::Server, "[postgres].host".to_owned());
        }
        if let Some(address) = self.raw.vault.as_ref().and_then(|v| v.address.as_deref()) {
            match url::Url::parse(address) {
                Ok(url) => match url.host_str() {
                    Some(host) => want(
                        host.trim_start_matches('[').trim_end_matches(']'),
                        ha_tls::Role::Server,
                        "[vault].address".to_owned(),
                    ),
                    None => c.invalid("[vault].address", format!("{address}: no host")),
                },
                Err(e) => c.invalid("[vault].address", format!("{address}: {e}")),
            }
        }
        if let (Some(dir), Some(client)) = (
            &dir,
            self.raw
                .mongo
                .as_ref()
                .and_then(|m| m.tls.as_ref())
                .and_then(|t| t.certificate_key_file.as_ref()),
        ) {
            let client = self.path_of(client);
            if client.parent() == Some(dir.as_path())
                && let Some(stem) = client
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".pem"))
            {
                want(
                    stem,
                    ha_tls::Role::Client,
                    "[mongo].tls.certificate_key_file".to_owned(),
                );
            }
        }
        for w in &wanted {
            if let Err(e) = ha_tls::PkiDir::new(".").leaf_paths(&w.name) {
                c.invalid(w.used_by.join(", "), format!(": {e}"));
            }
        }
        c.finish(PkiSettings {
            dir: dir.unwrap_or_default(),
            organization,
            organizational_unit,
            wanted,
        })
    }
}
