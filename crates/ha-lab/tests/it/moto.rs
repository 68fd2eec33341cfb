//! The AWS API emulator, driven by the tools' clients (ha-ec2, the AWS
//! SDK's S3) and checked through boto3, moto's own client.

use aws_sdk_s3::primitives::ByteStream;
use ha_lab::Moto;

use crate::tools;

#[tokio::test]
async fn ec2_volumes_through_ha_ec2_read_back_by_boto3_and_s3_put_get_through_the_sdk() {
    let moto = Moto::start(&tools()).unwrap();

    let ec2 = moto.ec2();
    let volume_id = ec2
        .create_volume(&ha_ec2::VolumeSpec::empty(20, "us-east-1a"))
        .await
        .unwrap();
    let seen = moto
        .boto3(
            "ec2",
            "describe_volumes",
            &serde_json::json!({ "VolumeIds": [volume_id] }),
        )
        .unwrap();
    assert_eq!(seen["Volumes"][0]["Size"], 20, "{seen}");
    assert_eq!(seen["Volumes"][0]["AvailabilityZone"], "us-east-1a");
    let described = ec2
        .describe_volumes(std::slice::from_ref(&volume_id))
        .await
        .unwrap();
    assert_eq!(described.len(), 1);
    assert_eq!(described[0].id, volume_id);
    // An EC2 refusal comes back with its code.
    let missing = ec2
        .describe_volumes(&["vol-0123456789abcdef0".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("InvalidVolume.NotFound"), "{missing}");

    let s3 = moto.s3_client();
    s3.create_bucket()
        .bucket("ha-lab-test")
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("ha-lab-test")
        .key("circleconfig/shared/vault")
        .body(ByteStream::from_static(b"export VAULT__SCHEME='https'\n"))
        .send()
        .await
        .unwrap();
    let object = s3
        .get_object()
        .bucket("ha-lab-test")
        .key("circleconfig/shared/vault")
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"export VAULT__SCHEME='https'\n");
}

/// ha-ec2's SigV4 signatures, checked by moto the way AWS checks them
/// (recomputed with botocore, an independent implementation): a key moto
/// knows, with its secret, is let in; the same key with another secret
/// is refused with EC2's `AuthFailure`.
#[tokio::test]
async fn moto_recomputes_ha_ec2_signatures_and_refuses_a_wrong_secret() {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    // Three free requests: the IAM user, its policy, its key.
    let moto = Moto::start_authenticating(&tools(), 3).unwrap();
    let (id, secret) = moto.iam_user("backup", "ec2").unwrap();
    let client = |secret: &str| {
        let credentials = Credentials::new(id.clone(), secret.to_owned(), None, None, "test");
        ha_ec2::Ec2::new(
            ha_lab::MOTO_REGION,
            Some(&moto.endpoint()),
            SharedCredentialsProvider::new(credentials),
        )
        .unwrap()
    };
    let volume = client(&secret)
        .create_volume(&ha_ec2::VolumeSpec::empty(8, "us-east-1a"))
        .await
        .unwrap();
    assert!(volume.starts_with("vol-"), "{volume}");
    let refused = client("not-the-secret")
        .describe_volumes(std::slice::from_ref(&volume))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("AuthFailure"), "{refused}");
}
