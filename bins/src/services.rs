//! `services-userdata`: the Services bundle (its spec read by ha-config
//! from `[services]` plus the connection details of `[mongo]`,
//! `[postgres]` and `[vault]`) rendered, written and published.

use std::path::Path;

use ha_config::{EnvLookup, HaConfig};
use ha_plan::{Action, Problem, Problems, Report};
use serde_json::{Value, json};
use services_userdata::Bundle;
use services_userdata::publish::{self, Target};

use crate::output::usage;

const TOOL: &str = "services-userdata";

/// Writes the bundle into `dir` (only changed files), as actions.
pub fn write_bundle(dir: &Path, bundle: &Bundle) -> anyhow::Result<Vec<Action>> {
    Ok(bundle
        .write_to(dir)?
        .into_iter()
        .map(|(path, len, mode)| {
            Action::new(
                "write",
                path.display().to_string(),
                format!("write {} ({len} bytes, mode {mode:o})", path.display()),
            )
        })
        .collect())
}

/// Reads a rendered bundle back from `dir`.
pub fn read_bundle(dir: &Path) -> anyhow::Result<Bundle> {
    Ok(Bundle::read_from(dir)?)
}

/// `services-userdata render`.
pub fn render(
    config: &HaConfig,
    env: EnvLookup<'_>,
    out: &Path,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let (spec, mut warnings) = config.bundle_spec(env, Some(out))?;
    let bundle = services_userdata::render(&spec).map_err(|e| match e {
        services_userdata::Error::Invalid { problems } => anyhow::Error::from(
            problems
                .into_iter()
                .map(|p| Problem::invalid("[services]", format!(": {p}")))
                .collect::<Problems>(),
        ),
        other => other.into(),
    })?;
    warnings.extend(bundle.warnings.iter().cloned());
    let actions = if dry_run {
        bundle
            .changes_in(out)
            .into_iter()
            .map(|target| {
                Action::new(
                    "write",
                    target.display().to_string(),
                    format!("write {}", target.display()),
                )
            })
            .collect()
    } else {
        write_bundle(out, &bundle)?
    };
    // Render refuses user data over the limit; say so early when it nears it.
    let limit = services_userdata::USERDATA_LIMIT;
    if bundle.userdata.len() > limit / 4 * 3 {
        warnings.push(format!(
            "user data is {} bytes, near EC2's limit of {limit}",
            bundle.userdata.len()
        ));
    }
    Ok(Report::new(TOOL, dry_run, actions, warnings))
}

/// `services-userdata publish`.
pub async fn publish(
    target: &Target,
    bundle: &Bundle,
    s3: &aws_sdk_s3::Client,
    ec2: &aws_sdk_ec2::Client,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let steps = publish::run(s3, ec2, target, bundle, dry_run).await?;
    Ok(Report::from_changes(TOOL, dry_run, &steps, Vec::new()))
}

/// `services-userdata import-settings`: the TOML and a note on stderr.
pub fn import_settings(path: &Path) -> anyhow::Result<(String, Value)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage("FILE", format!("{}: cannot read it: {e}", path.display())))?;
    let (toml, env_vars) = services_userdata::import_settings(&text, &path.display().to_string())
        .map_err(|e| usage("FILE", format!(": {e}")))?;
    Ok((toml, json!({ "secrets_to_set": env_vars })))
}
