//! The JSON Schemas of what every command prints with `--json`, generated
//! from the documents' types (`docs/schema/`, one file per document, and
//! `docs/schema/commands.json` saying which command prints which).
//!
//! A test keeps the files equal to what the types generate, and the
//! binaries' end-to-end tests validate every `--json` line they read
//! against its command's schemas (with Python's `jsonschema`, which shares
//! nothing with the generator).

use ha_plan::{Document, schema_of};
use serde_json::Value;

fn schema<T: Document + 'static>(name: &str) -> (&'static str, Value) {
    let mut value = serde_json::to_value(schema_of::<T>()).unwrap_or(Value::Null);
    // The document's own description, not the envelope's.
    let own = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.insert("title".to_owned(), name.into());
        if let Some(description) = own.get("description") {
            fields.insert("description".to_owned(), description.clone());
        }
        fields.insert(
            "$id".to_owned(),
            format!("https://circle-ha.invalid/schema/{name}.json").into(),
        );
    }
    // `name` is one of the literals below.
    let name: &'static str = DOCUMENTS
        .iter()
        .find(|d| **d == name)
        .copied()
        .unwrap_or("unknown");
    (name, value)
}

/// Every document's name, as its file in `docs/schema/` is named.
pub const DOCUMENTS: &[&str] = &[
    "error",
    "report",
    "refused",
    "combined",
    "status",
    "config-check",
    "pki-lint",
    "doctor",
    "keys-verify",
    "keys-restore-refused",
    "backup-snapshot",
    "backup-list",
    "backup-status",
    "backup-restore-volume",
    "mongo-status",
    "postgres-verify",
    "vault-init",
    "vault-unseal",
    "vault-seal",
    "vault-verify",
    "vault-status",
    "vault-migrate-inspect",
    "vault-migrate-verify",
    "export",
    "export-plan",
    "export-verify",
    "restore",
    "transfer",
    "transfer-final",
];

/// Every document's schema, by name, in [`DOCUMENTS`]' order.
pub fn documents() -> Vec<(&'static str, Value)> {
    vec![
        schema::<ha_plan::ErrorDocument>("error"),
        schema::<ha_plan::Report>("report"),
        schema::<ha_plan::Refused>("refused"),
        schema::<ha_plan::Combined>("combined"),
        schema::<ha_runbook::StatusFindings>("status"),
        schema::<ha_config::ConfigCheck>("config-check"),
        schema::<ha_tls::LintFindings>("pki-lint"),
        schema::<ha_doctor::Report>("doctor"),
        schema::<services_userdata::keys::KeyCheck>("keys-verify"),
        schema::<services_userdata::keys::RestoreRefused>("keys-restore-refused"),
        schema::<mongo_backup::SnapshotReport>("backup-snapshot"),
        schema::<mongo_backup::report::RunList>("backup-list"),
        schema::<mongo_backup::report::BackupHealth>("backup-status"),
        schema::<mongo_backup::RestoredVolume>("backup-restore-volume"),
        schema::<mongo_rs_setup::SetFindings>("mongo-status"),
        schema::<pg_provision::VerifyFindings>("postgres-verify"),
        schema::<vault_transit::InitReport>("vault-init"),
        schema::<vault_transit::UnsealReport>("vault-unseal"),
        schema::<vault_transit::SealReport>("vault-seal"),
        schema::<vault_transit::TokenFindings>("vault-verify"),
        schema::<vault_transit::ServerHealth>("vault-status"),
        schema::<vault_transit::legacy::Inspection>("vault-migrate-inspect"),
        schema::<vault_transit::contexts::ContextsFindings>("vault-migrate-verify"),
        schema::<circle_export::ExportSummary>("export"),
        schema::<circle_export::ExportPlanSummary>("export-plan"),
        schema::<circle_export::InspectionSummary>("export-verify"),
        schema::<circle_export::RestoreSummary>("restore"),
        schema::<circle_export::TransferSummary>("transfer"),
        schema::<circle_export::FinalSummary>("transfer-final"),
    ]
}

/// `mongo-backup`'s commands and what each prints (also under `circle-ha
/// backup`).
const BACKUP: &[(&str, &[&str])] = &[
    ("snapshot", &["backup-snapshot", "refused"]),
    ("recover", &["report"]),
    ("list", &["backup-list"]),
    ("status", &["backup-status"]),
    ("prune", &["report"]),
    ("restore-volume", &["backup-restore-volume"]),
    ("render-units", &["report"]),
];

/// Every command that takes `--json`, and the documents it may print
/// (besides `error`, which any of them prints when it fails).
pub fn commands() -> Vec<(String, Vec<&'static str>)> {
    let mut out: Vec<(String, Vec<&'static str>)> = [
        ("circle-ha apply", &["combined"][..]),
        ("circle-ha status", &["status"]),
        ("circle-ha config check", &["config-check"]),
        ("circle-ha pki init", &["report"]),
        ("circle-ha pki issue", &["report"]),
        ("circle-ha pki lint", &["pki-lint"]),
        ("circle-ha keys backup", &["report"]),
        ("circle-ha keys verify", &["keys-verify"]),
        (
            "circle-ha keys restore",
            &["report", "keys-restore-refused"],
        ),
        ("circle-ha doctor", &["doctor"]),
        ("circle-export export", &["export", "export-plan"]),
        ("circle-export verify", &["export-verify"]),
        ("circle-export restore", &["restore"]),
        ("circle-export transfer", &["transfer", "transfer-final"]),
        ("mongo-rs-setup apply", &["report"]),
        ("mongo-rs-setup status", &["mongo-status"]),
        ("mongo-rs-setup add-member", &["report"]),
        ("mongo-rs-setup remove-member", &["report"]),
        ("mongo-rs-setup set-priority", &["report"]),
        ("pg-provision apply", &["report"]),
        ("pg-provision verify", &["postgres-verify"]),
        ("services-userdata render", &["report"]),
        ("services-userdata publish", &["report"]),
        ("vault-transit init", &["vault-init"]),
        ("vault-transit unseal", &["vault-unseal"]),
        ("vault-transit configure", &["report"]),
        ("vault-transit verify", &["vault-verify"]),
        ("vault-transit status", &["vault-status"]),
        ("vault-transit seal", &["vault-seal"]),
        ("vault-transit migrate inspect", &["vault-migrate-inspect"]),
        ("vault-transit migrate restore", &["report", "refused"]),
        ("vault-transit migrate verify", &["vault-migrate-verify"]),
    ]
    .iter()
    .map(|(c, d)| ((*c).to_owned(), d.to_vec()))
    .collect();
    for (command, documents) in BACKUP {
        for tool in ["mongo-backup", "circle-ha backup"] {
            out.push((format!("{tool} {command}"), documents.to_vec()));
        }
    }
    out.sort();
    out
}

/// The command a command line runs: the binary's name and its subcommand
/// words (`circle-ha pki lint`), when it is one of [`commands`].
pub fn command_of(binary: &str, args: &[String]) -> Option<String> {
    let known = commands();
    let mut name = binary.to_owned();
    for arg in args {
        let longer = format!("{name} {arg}");
        if known.iter().any(|(c, _)| c.starts_with(&longer)) {
            name = longer;
        } else {
            break;
        }
    }
    known.iter().any(|(c, _)| *c == name).then_some(name)
}

/// `docs/schema/commands.json`: every command and the documents it
/// prints.
pub fn commands_index() -> Value {
    let mut map = serde_json::Map::new();
    for (command, documents) in commands() {
        map.insert(command, documents.into());
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn schema_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schema")
    }

    fn pretty(value: &Value) -> String {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        text.push('\n');
        text
    }

    /// `docs/schema/` is what the types generate. After changing a
    /// document, regenerate with `CIRCLE_HA_UPDATE_SCHEMAS=1 cargo test -p
    /// circle-ha --lib schema` (and bump `ha_plan::SCHEMA_VERSION` when a
    /// field was removed or changed meaning).
    #[test]
    fn the_schemas_in_docs_are_what_the_types_generate() {
        let update = std::env::var_os("CIRCLE_HA_UPDATE_SCHEMAS").is_some();
        let dir = schema_dir();
        let mut files: Vec<(String, String)> = documents()
            .iter()
            .map(|(name, schema)| (format!("{name}.json"), pretty(schema)))
            .collect();
        files.push(("commands.json".to_owned(), pretty(&commands_index())));
        let mut stale = Vec::new();
        for (file, text) in &files {
            let path = dir.join(file);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                if update {
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(&path, text).unwrap();
                } else {
                    stale.push(file.clone());
                }
            }
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !files.iter().any(|(f, _)| *f == name) {
                stale.push(format!("{name} (no document has this name)"));
            }
        }
        assert!(
            stale.is_empty(),
            "docs/schema/ differs from the documents' types in {stale:?}: regenerate with \
             CIRCLE_HA_UPDATE_SCHEMAS=1 cargo test -p circle-ha --lib schema"
        );
    }

    #[test]
    fn every_document_is_named_once_and_every_command_prints_known_documents() {
        let names: Vec<&str> = documents().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, DOCUMENTS);
        for (command, docs) in commands() {
            for doc in docs {
                assert!(DOCUMENTS.contains(&doc), "{command}: {doc}");
            }
        }
    }

    #[test]
    fn a_command_line_names_its_command() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            command_of("circle-ha", &args(&["pki", "lint", "--config", "x"])).as_deref(),
            Some("circle-ha pki lint")
        );
        assert_eq!(
            command_of("circle-export", &args(&["verify", "a.tar.zst", "--json"])).as_deref(),
            Some("circle-export verify")
        );
        assert_eq!(
            command_of("circle-ha", &args(&["backup", "status"])).as_deref(),
            Some("circle-ha backup status")
        );
        assert_eq!(command_of("circle-ha", &args(&["pki"])), None);
        assert_eq!(
            command_of("circle-ha", &args(&["completions", "bash"])),
            None
        );
    }
}
