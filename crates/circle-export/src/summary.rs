//! What `export`, `restore`, `transfer` and `verify` print: typed
//! documents built from their reports (the CLI prints them with `--json`
//! or as text; a program linking this crate gets the same values).

use ha_plan::{Action, Document, Report};
use schemars::JsonSchema;
use serde::Serialize;

use crate::export::human_bytes;
use crate::{ExportPlan, ExportReport, Inspection, Layout, RestoreReport, TransferReport};

const TOOL: &str = "circle-export";

/// `circle-export export`: the archive written and what it holds.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ExportSummary {
    /// One `write-archive` action; the files left out as warnings.
    #[serde(flatten)]
    pub report: Report,
    /// The archive's path.
    pub archive: String,
    /// Its size in bytes.
    pub archive_bytes: u64,
    /// Bytes of data before compression.
    pub data_bytes: u64,
    /// MongoDB collections (views included).
    pub collections: usize,
    /// MongoDB documents.
    pub documents: u64,
    /// PostgreSQL databases.
    pub databases: usize,
    /// PostgreSQL rows.
    pub rows: u64,
    /// Other files (encryption keys, Vault data).
    pub files: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Whether the archive is sealed.
    pub sealed: bool,
}

impl ExportReport {
    /// The report as `circle-export export` shows it: JSON `{changed: 1,
    /// actions: [write-archive], archive, archive_bytes, data_bytes,
    /// collections, documents, databases, rows, files, seconds, sealed,
    /// warnings}` and a line of text (after one warning line per file left
    /// out).
    pub fn to_findings(&self) -> ExportSummary {
        let m = &self.manifest;
        let archive = self.archive.display().to_string();
        ExportSummary {
            report: Report::new(
                TOOL,
                false,
                vec![Action::new(
                    "write-archive",
                    archive.clone(),
                    format!("wrote {archive}"),
                )],
                self.left_out.clone(),
            ),
            archive,
            archive_bytes: self.archive_bytes,
            data_bytes: self.data_bytes,
            collections: m.mongo.len(),
            documents: m.mongo.iter().map(|c| c.documents).sum(),
            databases: m.postgres.len(),
            rows: m
                .postgres
                .iter()
                .flat_map(|d| d.tables.iter().map(|t| t.rows))
                .sum(),
            files: m.files.len(),
            seconds: self.seconds,
            sealed: self.sealed,
        }
    }
}

fn warning_lines(warnings: &[String]) -> String {
    warnings
        .iter()
        .map(|w| format!("{TOOL}: warning: {w}\n"))
        .collect()
}

impl Document for ExportSummary {
    fn to_text(&self) -> String {
        let mut text = warning_lines(&self.report.warnings);
        text += &format!(
            "{TOOL}: wrote {} — {} collections ({} documents), {} PostgreSQL databases ({} \
             rows), {} files; {} of data in {} ({:.1}s)\n",
            self.archive,
            self.collections,
            self.documents,
            self.databases,
            self.rows,
            self.files,
            human_bytes(self.data_bytes),
            human_bytes(self.archive_bytes),
            self.seconds
        );
        text
    }
}

/// `circle-export export --dry-run`: what an export would read.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ExportPlanSummary {
    /// `export-collection`, `export-database` and `write-archive` actions.
    #[serde(flatten)]
    pub report: Report,
    /// Collections to dump.
    pub collections: usize,
    /// PostgreSQL databases to dump.
    pub databases: usize,
    /// Other files to archive.
    pub files: usize,
    /// Roughly how many bytes the dumps will take.
    pub estimated_bytes: u64,
    /// The archive it would write.
    #[serde(skip)]
    pub out: String,
}

impl ExportPlan {
    /// The plan as `circle-export export --dry-run` shows it for an
    /// archive at `out`: JSON `{changed: 0, dry_run, planned, actions
    /// (export-collection, export-database, write-archive), collections,
    /// databases, files, estimated_bytes}` and one line per part.
    pub fn to_findings(&self, out: &std::path::Path) -> ExportPlanSummary {
        let out = out.display().to_string();
        let actions = self
            .collections
            .iter()
            .map(|(db, c)| {
                let target = format!("mongo {db}.{c}");
                Action::new("export-collection", target.clone(), target)
            })
            .chain(self.databases.iter().map(|db| {
                let target = format!("postgres {db}");
                Action::new("export-database", target.clone(), target)
            }))
            .chain([Action::new("write-archive", out.clone(), out.clone())])
            .collect();
        ExportPlanSummary {
            report: Report::new(TOOL, true, actions, Vec::new()),
            collections: self.collections.len(),
            databases: self.databases.len(),
            files: self.files,
            estimated_bytes: self.estimated_bytes,
            out,
        }
    }
}

impl Document for ExportPlanSummary {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for action in &self.report.actions {
            if action.kind != "write-archive" {
                text.push_str(&format!("would export: {}\n", action.target));
            }
        }
        text.push_str(&format!(
            "{TOOL}: would write {} — {} collections, {} PostgreSQL databases, {} other files, \
             about {} of data (dry run: nothing written)\n",
            self.out,
            self.collections,
            self.databases,
            self.files,
            human_bytes(self.estimated_bytes)
        ));
        text
    }
}

/// `circle-export restore`: what was loaded, and whether every count on
/// the targets matches the archive.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RestoreSummary {
    /// `restore-collection` and `restore-database` actions.
    #[serde(flatten)]
    pub report: Report,
    /// Every count matches the archive.
    pub healthy: bool,
    /// Documents inserted.
    pub documents: u64,
    /// Counts on the target that differ from the archive's.
    pub mismatches: Vec<String>,
    /// What an earlier restore finished (same counts): left as it was.
    pub skipped: Vec<String>,
    /// Whether the archive was sealed.
    pub sealed: bool,
    /// Collections restored (or to restore).
    #[serde(skip)]
    pub collections: usize,
    /// Databases restored (or to restore).
    #[serde(skip)]
    pub databases: usize,
}

impl RestoreReport {
    /// The restore as `circle-export restore` shows it: healthy when every
    /// count matches; JSON `{changed, dry_run, planned, actions: [{kind,
    /// target}], healthy, documents, mismatches, skipped, sealed,
    /// warnings}`.
    pub fn to_findings(&self) -> RestoreSummary {
        let actions = self
            .restored
            .iter()
            .map(|target| {
                let kind = if target.starts_with("mongo ") {
                    "restore-collection"
                } else {
                    "restore-database"
                };
                Action::new(kind, target.clone(), target.clone())
            })
            .collect();
        RestoreSummary {
            report: Report::new(TOOL, self.dry_run, actions, self.warnings.clone()),
            healthy: self.mismatches.is_empty(),
            documents: self.documents,
            mismatches: self.mismatches.clone(),
            skipped: self.skipped.clone(),
            sealed: self.sealed,
            collections: self.collections,
            databases: self.databases,
        }
    }
}

impl Document for RestoreSummary {
    fn to_text(&self) -> String {
        let mut text = warning_lines(&self.report.warnings);
        for mismatch in &self.mismatches {
            text.push_str(&format!("mismatch: {mismatch}\n"));
        }
        text.push_str(&if self.report.dry_run {
            format!(
                "{TOOL}: the archive is intact and the targets are ready; would restore {} \
                 collections and {} databases (dry run)\n",
                self.collections, self.databases
            )
        } else if self.report.actions.is_empty() {
            format!(
                "{TOOL}: nothing to do: the targets already hold this archive's data (same \
                 counts); dropping them first restores it again (changed: 0)\n"
            )
        } else if self.mismatches.is_empty() {
            format!(
                "{TOOL}: restored {} collections ({} documents) and {} databases; every count \
                 matches the archive\n",
                self.collections, self.documents, self.databases
            )
        } else {
            format!(
                "{TOOL}: restored, but {} count(s) differ from the archive\n",
                self.mismatches.len()
            )
        });
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// `circle-export transfer`: a restore read straight from the sources,
/// and the archive of what was moved.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TransferSummary {
    /// What was loaded, as a restore reports it.
    #[serde(flatten)]
    pub restore: RestoreSummary,
    /// The archive written (absent for a dry run).
    pub archive: Option<String>,
    /// Its size in bytes.
    pub archive_bytes: u64,
}

impl TransferReport {
    /// The report as the CLI shows it: the restore's JSON (`changed`,
    /// `actions`, `documents`, `mismatches`, `skipped`) plus `archive` and
    /// `archive_bytes`; healthy when every count matches.
    pub fn to_findings(&self) -> TransferSummary {
        TransferSummary {
            restore: self.restore.to_findings(),
            archive: self.archive.as_ref().map(|a| a.display().to_string()),
            archive_bytes: self.archive_bytes,
        }
    }
}

impl Document for TransferSummary {
    fn to_text(&self) -> String {
        let mut text = self.restore.to_text();
        if let Some(archive) = &self.archive {
            text.push_str(&format!(
                "{TOOL}: the archive of what was moved: {archive} ({})\n",
                human_bytes(self.archive_bytes)
            ));
        }
        text
    }

    fn healthy(&self) -> Option<bool> {
        self.restore.healthy()
    }
}

/// `circle-export verify`: whether an archive is intact.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct InspectionSummary {
    /// Intact: no problem found.
    pub healthy: bool,
    /// The archive's path.
    pub archive: String,
    /// `circle-export` (ours, with checksums) or `circle-database-export`
    /// (the vendor's script).
    pub layout: String,
    /// Other files it holds.
    pub files: usize,
    /// MongoDB collections.
    pub collections: usize,
    /// PostgreSQL databases.
    pub databases: usize,
    /// Every problem.
    pub problems: Vec<String>,
    /// What the operator should know of an intact archive (it carries
    /// Vault init output …).
    pub warnings: Vec<String>,
}

impl Inspection {
    /// The inspection of the archive at `path` as `circle-export verify`
    /// shows it: healthy when intact; JSON `{healthy, archive, layout, files,
    /// collections, databases, problems, warnings}`.
    pub fn to_findings(&self, path: &std::path::Path) -> InspectionSummary {
        let m = &self.manifest;
        InspectionSummary {
            healthy: self.problems.is_empty(),
            archive: path.display().to_string(),
            layout: match self.layout {
                Layout::Ours => "circle-export",
                Layout::Vendor => "circle-database-export",
            }
            .to_owned(),
            files: m.files.len(),
            collections: m.mongo.len(),
            databases: m.postgres.len(),
            problems: self.problems.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

impl Document for InspectionSummary {
    fn to_text(&self) -> String {
        let mut text = ha_plan::notes_text(&self.warnings, "problem", &self.problems);
        if self.healthy {
            text.push_str(&format!(
                "{TOOL}: {} is intact ({} archive: {} files, {} collections, {} PostgreSQL \
                 databases{})\n",
                self.archive,
                self.layout,
                self.files,
                self.collections,
                self.databases,
                if self.layout == "circle-database-export" {
                    "; it has no checksums, so only its structure and counts were checked"
                } else {
                    "; every checksum and count matches"
                }
            ));
        } else {
            text.push_str(&format!(
                "{TOOL}: {} is damaged ({} problem(s))\n",
                self.archive,
                self.problems.len()
            ));
        }
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// `circle-export transfer --final`: what the cutover's final pass moved,
/// and whether the targets now hold exactly what the sources hold.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FinalSummary {
    /// One action per collection, table, sequence or index changed (or
    /// that would change, for a dry run).
    #[serde(flatten)]
    pub report: Report,
    /// The targets equal the sources: every changed collection's MD5 and
    /// table's rows read back match (a dry run: nothing failed).
    pub healthy: bool,
    /// MongoDB documents inserted, replaced and deleted.
    pub documents: crate::cutover::Moved,
    /// PostgreSQL rows inserted, updated (`replaced`) and deleted.
    pub rows: crate::cutover::Moved,
    /// Collections and tables found identical.
    pub unchanged: usize,
    /// What still differs after the pass.
    pub mismatches: Vec<String>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The pre-copy's state file, read and (unless a dry run) updated.
    pub state: String,
}

impl crate::FinalReport {
    /// The final pass as `circle-export transfer --final` shows it:
    /// healthy when nothing differs afterwards; JSON `{changed, dry_run,
    /// actions: [{kind, target, detail}], healthy, documents: {inserted,
    /// replaced, deleted}, rows: {…}, unchanged, mismatches, seconds,
    /// state, warnings}`.
    pub fn to_findings(&self) -> FinalSummary {
        let actions = self
            .changes
            .iter()
            .map(|c| Action::new(c.kind.clone(), c.target.clone(), c.detail.clone()))
            .collect();
        FinalSummary {
            report: Report::new(TOOL, self.dry_run, actions, self.warnings.clone()),
            healthy: self.mismatches.is_empty(),
            documents: self.documents,
            rows: self.rows,
            unchanged: self.unchanged,
            mismatches: self.mismatches.clone(),
            seconds: self.seconds,
            state: self.state.display().to_string(),
        }
    }
}

impl Document for FinalSummary {
    fn to_text(&self) -> String {
        let mut text = ha_plan::notes_text(&self.report.warnings, "mismatch", &self.mismatches);
        let verb = if self.report.dry_run { "would " } else { "" };
        for action in &self.report.actions {
            text.push_str(&format!(
                "{verb}{}: {} ({})\n",
                action.kind, action.target, action.detail
            ));
        }
        let moved = |m: &crate::cutover::Moved, replaced: &str| {
            format!(
                "{} inserted, {} {replaced}, {} deleted",
                m.inserted, m.replaced, m.deleted
            )
        };
        text.push_str(&if self.report.actions.is_empty() {
            format!(
                "{TOOL}: final pass: the targets already hold what the sources hold ({} \
                 collections and tables compared; changed: 0) in {:.1}s\n",
                self.unchanged, self.seconds
            )
        } else if self.report.dry_run {
            format!(
                "{TOOL}: final pass (dry run): would move documents ({}) and rows ({}); \
                 nothing written\n",
                moved(&self.documents, "replaced"),
                moved(&self.rows, "updated")
            )
        } else if self.healthy {
            format!(
                "{TOOL}: final pass: documents ({}) and rows ({}) moved in {:.1}s; the targets \
                 now equal the sources (checked)\n",
                moved(&self.documents, "replaced"),
                moved(&self.rows, "updated"),
                self.seconds
            )
        } else {
            format!(
                "{TOOL}: final pass: moved, but {} thing(s) still differ (listed above): run it \
                 again with the old services stopped\n",
                self.mismatches.len()
            )
        });
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}
