//! The AWS API emulator, driven by the real AWS SDK for Rust.

use aws_sdk_ec2::types::VolumeType;
use aws_sdk_s3::primitives::ByteStream;
use ha_lab::Moto;

use crate::tools;

#[tokio::test]
async fn describe_volumes_and_s3_put_get_through_the_sdk() {
    let moto = Moto::start(&tools()).unwrap();
    let sdk = moto.sdk_config();

    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let created = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(20)
        .volume_type(VolumeType::Gp3)
        .send()
        .await
        .unwrap();
    let volume_id = created.volume_id().unwrap().to_owned();
    let described = ec2
        .describe_volumes()
        .volume_ids(&volume_id)
        .send()
        .await
        .unwrap();
    let volumes = described.volumes();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].size(), Some(20));

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
