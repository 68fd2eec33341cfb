//! [`apply`]: the concerns a runbook has, in the runbook's order.

use ha_plan::{Combined, Progress, Report};
use time::OffsetDateTime;

use crate::{Concern, Error, Runbook};

/// `circle-ha apply`: every concern `runbook` has a setup for, in the
/// runbook's order (certificates, replica set, PostgreSQL, Vault, bundle),
/// as one combined report; the others are listed as skipped ("not
/// selected" for [`Runbook::not_selected`], else "not configured"). Each
/// setup is checked for what its step needs before anything is touched
/// ([`Error::Missing`]); a concern that fails stops the run with
/// [`Error::Stopped`]. With `dry_run`, nothing changes and the report
/// lists what would.
pub async fn apply(
    runbook: &Runbook,
    dry_run: bool,
    progress: Progress<'_>,
) -> Result<Combined, Error> {
    let mut report = Combined::new("circle-ha apply", dry_run);
    let mut steps = Vec::new();
    for concern in Concern::ALL {
        let step = match concern {
            Concern::Pki => runbook.pki.as_ref().map(Step::Pki),
            Concern::Mongo => runbook.mongo.as_ref().map(Step::Mongo),
            Concern::Postgres => runbook.postgres.as_ref().map(Step::Postgres),
            Concern::Vault => runbook.vault.as_ref().map(Step::Vault),
            Concern::Userdata => runbook.bundle.as_ref().map(Step::Bundle),
            Concern::Backup | Concern::Keys => None,
        };
        match step {
            Some(step) => steps.push((concern, step)),
            None => {
                let why = if runbook.not_selected.contains(&concern) {
                    "not selected"
                } else {
                    "not configured"
                };
                report
                    .skipped
                    .push((concern.name().to_owned(), why.to_owned()));
            }
        }
    }
    let selected: Vec<Concern> = steps.iter().map(|(c, _)| *c).collect();
    needs(runbook)?;

    for (i, (concern, step)) in steps.into_iter().enumerate() {
        let header = concern.header();
        progress(&format!("{header} …"));
        match step.run(concern, dry_run, progress).await {
            Ok(done) => {
                progress(&format!("{header}: {}", done.to_summary_text().trim_end()));
                report.ran.push((concern.name().to_owned(), done));
            }
            Err(source) => {
                return Err(Error::Stopped {
                    at: concern,
                    finished: selected[..i].to_vec(),
                    not_run: selected[i + 1..].to_vec(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(report)
}

/// What the selected steps need that a setup may lack, before anything is
/// touched.
fn needs(runbook: &Runbook) -> Result<(), Error> {
    if let Some(postgres) = &runbook.postgres
        && postgres.admin.is_none()
    {
        return Err(Error::Missing {
            concern: "postgres",
            what: "admin login (provisioning creates roles and databases)",
        });
    }
    if let Some(vault) = &runbook.vault
        && vault.admin_token.is_none()
    {
        return Err(Error::Missing {
            concern: "vault",
            what: "admin token (configuring mounts and policies needs one)",
        });
    }
    Ok(())
}

/// One concern's setup, borrowed from the runbook.
enum Step<'a> {
    Pki(&'a ha_tls::PkiSpec),
    Mongo(&'a crate::MongoSetup),
    Postgres(&'a crate::PostgresSetup),
    Vault(&'a crate::VaultSetup),
    Bundle(&'a crate::BundleSetup),
}

impl Step<'_> {
    async fn run(
        self,
        concern: Concern,
        dry_run: bool,
        progress: Progress<'_>,
    ) -> Result<Report, Error> {
        match self {
            Step::Pki(pki) => {
                let now = OffsetDateTime::now_utc();
                let mut report = pki.init(concern.tool(), now, dry_run)?;
                report.extend(pki.issue(concern.tool(), now, dry_run)?);
                Ok(report)
            }
            Step::Mongo(mongo) => mongo.apply(dry_run, progress).await,
            Step::Postgres(postgres) => postgres.apply(dry_run).await,
            Step::Vault(vault) => vault.configure(dry_run).await,
            Step::Bundle(bundle) => bundle.render(dry_run),
        }
    }
}
