//! `services-userdata`: publishing a rendered bundle and importing an
//! existing installation's settings (rendering is
//! `ha_runbook::BundleSetup::render`).

use std::path::Path;

use ha_plan::Report;
use services_userdata::Bundle;
use services_userdata::publish::{self, Target};

use crate::output::usage;

const TOOL: &str = "services-userdata";

/// `services-userdata publish`.
pub async fn publish(
    target: &Target,
    bundle: &Bundle,
    s3: &aws_sdk_s3::Client,
    ec2: &ha_ec2::Ec2,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let plan = publish::run(s3, ec2, target, bundle, dry_run).await?;
    Ok(plan.to_report(TOOL, dry_run))
}

/// `services-userdata import-settings`: the TOML, and the environment
/// variables its secret references name (for a note on stderr).
pub fn import_settings(path: &Path) -> anyhow::Result<(String, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage("FILE", format!("{}: cannot read it: {e}", path.display())))?;
    let (toml, env_vars) = services_userdata::import_settings(&text, &path.display().to_string())
        .map_err(|e| usage("FILE", format!(": {e}")))?;
    Ok((toml, env_vars))
}
