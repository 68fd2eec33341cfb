//! Publishing the bundle: files to S3 (server-side encrypted), the user data
//! as a new launch-template version. Observe → plan → apply; unchanged
//! content publishes nothing.
//!
//! This is the only module that talks to AWS. It takes an S3 client and an
//! [`ha_ec2::Ec2`] built by the caller (region, credentials, endpoint), so
//! tests point them at `moto_server`.

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::error::s3_detail;
use crate::{Bundle, Error};

/// The object metadata key holding each file's SHA-256.
pub(crate) const SHA256_METADATA: &str = "circle-ha-sha256";

/// Where the bundle goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The bucket.
    pub bucket: String,
    /// Key prefix (empty or ending in `/`).
    pub prefix: String,
    /// The launch template's name.
    pub launch_template: String,
    /// A KMS key for server-side encryption; `None` uses SSE-S3 (AES-256).
    pub kms_key_id: Option<String>,
    /// Make the version holding the bundle's user data the launch
    /// template's default (what an Auto Scaling group on `$Default`
    /// launches). `false` when the default is managed elsewhere — by
    /// Terraform's `aws_launch_template` (`update_default_version`), say,
    /// which would otherwise see a default it did not set as drift: the
    /// version is created and the default left alone.
    pub set_default_version: bool,
}

/// What is published now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// SHA-256 (hex) recorded on each bundle path's object, `None` if the
    /// object is missing or was not uploaded by this tool.
    pub objects: BTreeMap<String, Option<String>>,
    /// The latest version number and its user data (decoded).
    pub latest: Option<(i64, String)>,
    /// The default version number.
    pub default_version: Option<i64>,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create a launch-template version with the new user data (based on
    /// the latest version, so the AMI, instance type … stay).
    CreateVersion {
        /// The launch template's name.
        launch_template: String,
        /// The version it copies.
        source_version: i64,
    },
    /// Make a version the default: the one given, or the one the preceding
    /// `CreateVersion` made.
    SetDefaultVersion {
        /// The launch template's name.
        launch_template: String,
        /// An existing version, or `None` for the one just created.
        version: Option<i64>,
    },
    /// Upload a file.
    Upload {
        /// Its bundle path.
        path: String,
        /// Where it goes: `s3://bucket/prefix/path`.
        object: String,
        /// New or changed.
        reason: &'static str,
    },
}

impl ha_plan::Change for Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::CreateVersion { .. } => "create-launch-template-version",
            Step::SetDefaultVersion { .. } => "set-default-version",
            Step::Upload { .. } => "upload",
        }
    }

    fn target(&self) -> String {
        match self {
            Step::CreateVersion {
                launch_template, ..
            }
            | Step::SetDefaultVersion {
                launch_template, ..
            } => {
                format!("launch template {launch_template}")
            }
            Step::Upload { object, .. } => object.clone(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateVersion { source_version, .. } => write!(
                f,
                "create a launch template version from version {source_version} with the new user \
                 data"
            ),
            Step::SetDefaultVersion {
                version: Some(version),
                ..
            } => {
                write!(f, "make launch template version {version} the default")
            }
            Step::SetDefaultVersion { version: None, .. } => {
                f.write_str("make the new launch template version the default")
            }
            Step::Upload { path, reason, .. } => {
                write!(f, "upload {path} ({reason}, server-side encrypted)")
            }
        }
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads what is published: each object's recorded checksum and the launch
/// template's latest and default versions.
pub async fn observe(
    s3: &aws_sdk_s3::Client,
    ec2: &ha_ec2::Ec2,
    target: &Target,
    bundle: &Bundle,
) -> Result<Observed, Error> {
    let mut objects = BTreeMap::new();
    for file in &bundle.files {
        let key = format!("{}{}", target.prefix, file.path);
        let head = s3
            .head_object()
            .bucket(&target.bucket)
            .key(&key)
            .send()
            .await;
        let recorded = match head {
            Ok(head) => head
                .metadata()
                .and_then(|m| m.get(SHA256_METADATA))
                .cloned(),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => None,
            Err(e) => {
                return Err(Error::S3 {
                    operation: "HeadObject",
                    bucket: target.bucket.clone(),
                    key,
                    detail: s3_detail(&e),
                });
            }
        };
        objects.insert(file.path.clone(), recorded);
    }

    let ec2_error = |operation| {
        move |e: ha_ec2::Error| Error::Ec2 {
            operation,
            template: target.launch_template.clone(),
            detail: e.reason(),
        }
    };
    let default_version = ec2
        .launch_template(&target.launch_template)
        .await
        .map_err(ec2_error("DescribeLaunchTemplates"))?
        .default_version;
    let latest = ec2
        .latest_launch_template_version(&target.launch_template)
        .await
        .map_err(ec2_error("DescribeLaunchTemplateVersions"))?
        .map(|v| {
            let userdata = v
                .user_data
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            (v.number, userdata)
        });
    Ok(Observed {
        objects,
        latest,
        default_version,
    })
}

/// The steps that make S3 and the launch template match `bundle`. Pure.
pub fn plan(target: &Target, bundle: &Bundle, observed: &Observed) -> ha_plan::Plan<Step> {
    let mut steps = Vec::new();
    let object = |path: &str| format!("s3://{}/{}{path}", target.bucket, target.prefix);
    for file in &bundle.files {
        let sha = sha256_hex(&file.bytes);
        match observed.objects.get(&file.path) {
            Some(Some(recorded)) if *recorded == sha => {}
            Some(Some(_)) => steps.push(Step::Upload {
                path: file.path.clone(),
                object: object(&file.path),
                reason: "changed",
            }),
            _ => steps.push(Step::Upload {
                path: file.path.clone(),
                object: object(&file.path),
                reason: "new",
            }),
        }
    }
    match &observed.latest {
        Some((version, userdata)) if *userdata == bundle.userdata => {
            let is_default = observed.default_version == Some(*version);
            if !is_default && target.set_default_version {
                steps.push(Step::SetDefaultVersion {
                    launch_template: target.launch_template.clone(),
                    version: Some(*version),
                });
            }
        }
        Some((version, _)) => {
            steps.push(Step::CreateVersion {
                launch_template: target.launch_template.clone(),
                source_version: *version,
            });
            if target.set_default_version {
                steps.push(Step::SetDefaultVersion {
                    launch_template: target.launch_template.clone(),
                    version: None,
                });
            }
        }
        None => {}
    }
    ha_plan::Plan::new(steps)
}

/// Runs the steps. Files go up before the user data that fetches them.
pub async fn apply(
    s3: &aws_sdk_s3::Client,
    ec2: &ha_ec2::Ec2,
    target: &Target,
    bundle: &Bundle,
    steps: &[Step],
) -> Result<(), Error> {
    let ec2_error = |operation| {
        move |e: ha_ec2::Error| Error::Ec2 {
            operation,
            template: target.launch_template.clone(),
            detail: e.reason(),
        }
    };
    let mut new_version = None;
    for step in steps {
        match step {
            Step::Upload { path, .. } => {
                let Some(file) = bundle.files.iter().find(|f| &f.path == path) else {
                    continue;
                };
                let key = format!("{}{}", target.prefix, file.path);
                let mut put = s3
                    .put_object()
                    .bucket(&target.bucket)
                    .key(&key)
                    .body(ByteStream::from(file.bytes.clone()))
                    .metadata(SHA256_METADATA, sha256_hex(&file.bytes));
                put = match &target.kms_key_id {
                    Some(kms) => put
                        .server_side_encryption(ServerSideEncryption::AwsKms)
                        .ssekms_key_id(kms),
                    None => put.server_side_encryption(ServerSideEncryption::Aes256),
                };
                put.send().await.map_err(|e| Error::S3 {
                    operation: "PutObject",
                    bucket: target.bucket.clone(),
                    key,
                    detail: s3_detail(&e),
                })?;
            }
            Step::CreateVersion { source_version, .. } => {
                let user_data =
                    base64::engine::general_purpose::STANDARD.encode(bundle.userdata.as_bytes());
                let created = ec2
                    .create_launch_template_version(
                        &target.launch_template,
                        *source_version,
                        "circle-ha services-userdata",
                        &user_data,
                    )
                    .await
                    .map_err(ec2_error("CreateLaunchTemplateVersion"))?;
                new_version = Some(created);
            }
            Step::SetDefaultVersion { version, .. } => {
                let Some(version) = version.or(new_version) else {
                    continue;
                };
                ec2.set_default_launch_template_version(&target.launch_template, version)
                    .await
                    .map_err(ec2_error("ModifyLaunchTemplate"))?;
            }
        }
    }
    Ok(())
}

/// The whole `services-userdata publish` in one call: observes the bucket
/// and the launch template, plans, and applies unless `dry_run`. Refuses a
/// launch template without versions (its AMI, instance type and instance
/// profile are the operator's; this only adds user data). Returns the plan:
/// its steps done, or with `dry_run` the steps that would be.
pub async fn run(
    s3: &aws_sdk_s3::Client,
    ec2: &ha_ec2::Ec2,
    target: &Target,
    bundle: &Bundle,
    dry_run: bool,
) -> Result<ha_plan::Plan<Step>, Error> {
    let observed = observe(s3, ec2, target, bundle).await?;
    if observed.latest.is_none() {
        return Err(Error::NoLaunchTemplateVersion {
            template: target.launch_template.clone(),
            bucket: target.bucket.clone(),
            prefix: target.prefix.clone(),
        });
    }
    let plan = plan(target, bundle, &observed);
    if !dry_run {
        apply(s3, ec2, target, bundle, &plan.steps).await?;
    }
    Ok(plan)
}
