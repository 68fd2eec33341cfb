//! Publishing to the AWS API emulator through the tools' clients (the AWS
//! SDK's S3, ha-ec2); the launch template read back, and changed behind
//! publish's back, through boto3 (moto's own client).

use base64::Engine as _;
use ha_lab::{Moto, Toolbox};
use serde_json::{Value, json};
use services_userdata::publish::{self, Step, Target};
use services_userdata::render;

use crate::spec;

struct Aws {
    moto: Moto,
    s3: aws_sdk_s3::Client,
    ec2: ha_ec2::Ec2,
}

impl Aws {
    /// boto3's `operation` on EC2 with `params`.
    fn boto3(&self, operation: &str, params: Value) -> Value {
        self.moto.boto3("ec2", operation, &params).unwrap()
    }

    /// The launch template as boto3 describes it.
    fn template(&self) -> Value {
        let described = self.boto3(
            "describe_launch_templates",
            json!({ "LaunchTemplateNames": ["circleci-services"] }),
        );
        described["LaunchTemplates"][0].clone()
    }
}

async fn aws() -> Aws {
    let moto = Moto::start(&Toolbox::discover(std::env::vars_os())).unwrap();
    let s3 = moto.s3_client();
    let ec2 = moto.ec2();
    s3.create_bucket()
        .bucket("circleci-ha-config")
        .send()
        .await
        .unwrap();
    moto.boto3(
        "ec2",
        "create_launch_template",
        &json!({
            "LaunchTemplateName": "circleci-services",
            "LaunchTemplateData": { "ImageId": "ami-12345678", "InstanceType": "m5.xlarge" },
        }),
    )
    .unwrap();
    Aws { moto, s3, ec2 }
}

fn target() -> Target {
    Target {
        bucket: "circleci-ha-config".to_owned(),
        prefix: String::new(),
        launch_template: "circleci-services".to_owned(),
        kms_key_id: None,
        set_default_version: true,
    }
}

async fn publish_once(aws: &Aws, bundle: &services_userdata::Bundle) -> Vec<Step> {
    publish::run(&aws.s3, &aws.ec2, &target(), bundle, false)
        .await
        .unwrap()
        .steps
}

#[tokio::test]
async fn publish_uploads_and_versions_once_then_changes_nothing() {
    let aws = aws().await;
    let bundle = render(&spec(false)).unwrap();
    let steps = publish_once(&aws, &bundle).await;
    let uploads = steps
        .iter()
        .filter(|s| matches!(s, Step::Upload { .. }))
        .count();
    assert_eq!(uploads, bundle.files.len());
    assert!(steps.contains(&Step::CreateVersion {
        launch_template: "circleci-services".to_owned(),
        source_version: 1
    }));

    // Objects are there, encrypted, byte for byte.
    for file in &bundle.files {
        let object = aws
            .s3
            .get_object()
            .bucket("circleci-ha-config")
            .key(&file.path)
            .send()
            .await
            .unwrap();
        assert_eq!(
            object.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256),
            "{}",
            file.path
        );
        let body = object.body.collect().await.unwrap().into_bytes();
        assert_eq!(&body[..], &file.bytes[..], "{}", file.path);
    }

    // The new version carries the user data, keeps the AMI, and is the default.
    let versions = aws.boto3(
        "describe_launch_template_versions",
        json!({ "LaunchTemplateName": "circleci-services" }),
    );
    let versions = versions["LaunchTemplateVersions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let latest = versions.iter().find(|v| v["VersionNumber"] == 2).unwrap();
    let userdata = base64::engine::general_purpose::STANDARD
        .decode(latest["LaunchTemplateData"]["UserData"].as_str().unwrap())
        .unwrap();
    assert_eq!(userdata, bundle.userdata.as_bytes());
    // The new version is created with SourceVersion = the latest, so on AWS
    // it keeps the AMI, instance type and profile. moto 5.2 ignores
    // SourceVersion, so that part cannot be checked here.
    assert_eq!(aws.template()["DefaultVersionNumber"], 2);

    // Second publish: nothing.
    assert_eq!(publish_once(&aws, &bundle).await, vec![]);

    // Someone rolled the default back: only the default is restored.
    aws.boto3(
        "modify_launch_template",
        json!({ "LaunchTemplateName": "circleci-services", "DefaultVersion": "1" }),
    );
    assert_eq!(
        publish_once(&aws, &bundle).await,
        vec![Step::SetDefaultVersion {
            launch_template: "circleci-services".to_owned(),
            version: Some(2)
        }]
    );
    assert_eq!(publish_once(&aws, &bundle).await, vec![]);

    // One secret changes: one upload, no new launch-template version (the
    // user data does not hold secrets).
    let mut changed = spec(false);
    changed.postgres.password = "rotated".to_owned().into();
    let bundle = render(&changed).unwrap();
    let steps = publish_once(&aws, &bundle).await;
    assert_eq!(
        steps,
        vec![Step::Upload {
            path: "circleconfig/shared/postgresql".to_owned(),
            object: "s3://circleci-ha-config/circleconfig/shared/postgresql".to_owned(),
            reason: "changed"
        }]
    );
}

/// When Terraform owns the launch template's default version, publish
/// creates the version holding the user data and leaves the default as it
/// is — then, with nothing changed, does nothing (no drift to fight).
#[tokio::test]
async fn without_the_default_version_publish_only_creates_the_version() {
    let aws = aws().await;
    let bundle = render(&spec(false)).unwrap();
    let mut target = target();
    target.set_default_version = false;
    let steps = publish::run(&aws.s3, &aws.ec2, &target, &bundle, false)
        .await
        .unwrap()
        .steps;
    assert!(steps.contains(&Step::CreateVersion {
        launch_template: "circleci-services".to_owned(),
        source_version: 1
    }));
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s, Step::SetDefaultVersion { .. })),
        "{steps:?}"
    );
    let template = aws.template();
    assert_eq!(template["DefaultVersionNumber"], 1, "{template}");
    assert_eq!(template["LatestVersionNumber"], 2, "{template}");
    let again = publish::run(&aws.s3, &aws.ec2, &target, &bundle, false)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again}");
}

/// A refusal reads as one line naming the call, the object and what S3
/// said — also for a `HEAD`, whose 403 carries no body (the SDK's own
/// rendering of it is a page of debug output).
#[tokio::test]
async fn a_refused_publish_says_which_call_on_which_object_in_one_line() {
    // Every request is checked, and the emulator's key is no IAM user's.
    let moto = Moto::start_authenticating(&Toolbox::discover(std::env::vars_os()), 0).unwrap();
    let bundle = render(&spec(false)).unwrap();
    let error = publish::run(&moto.s3_client(), &moto.ec2(), &target(), &bundle, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("S3 HeadObject s3://circleci-ha-config/") && error.contains("403"),
        "{error}"
    );
    assert!(
        error.len() < 300 && !error.contains('\n') && !error.contains("Extensions"),
        "{error}"
    );
}
