//! Replies as the EC2 API reference shows them (its example responses for
//! DescribeSnapshots and the common error shape), read by this crate's
//! readers; and the parameters a call sends.

use crate::client::{Params, Reply, api_error, items, text_of};
use crate::snapshots::Snapshot;

/// DescribeSnapshots' example response in the EC2 API reference, with a
/// second page's token.
const DESCRIBE_SNAPSHOTS: &str = r#"<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
   <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
   <snapshotSet>
      <item>
         <snapshotId>snap-1234567890abcdef0</snapshotId>
         <volumeId>vol-1234567890abcdef0</volumeId>
         <status>pending</status>
         <startTime>2016-08-15T19:10:32.000Z</startTime>
         <progress>80%</progress>
         <ownerId>111122223333</ownerId>
         <volumeSize>15</volumeSize>
         <description>Daily Backup</description>
         <encrypted>true</encrypted>
         <tagSet>
            <item>
               <key>Purpose</key>
               <value>demo_db_14_backup</value>
            </item>
         </tagSet>
      </item>
   </snapshotSet>
   <nextToken>page-2</nextToken>
</DescribeSnapshotsResponse>"#;

#[test]
fn a_describe_snapshots_page_is_read_with_its_tags_and_next_token() {
    let reply = Reply::parse("DescribeSnapshots", DESCRIBE_SNAPSHOTS).unwrap();
    let snapshots: Vec<Snapshot> = items(reply.root(), "snapshotSet")
        .filter_map(Snapshot::from_item)
        .collect();
    assert_eq!(snapshots.len(), 1);
    let s = &snapshots[0];
    assert_eq!(
        (s.id.as_str(), s.volume_id.as_str(), s.state.as_str()),
        ("snap-1234567890abcdef0", "vol-1234567890abcdef0", "pending")
    );
    assert_eq!(s.progress.as_deref(), Some("80%"));
    assert_eq!(
        s.start_time.map(|t| t.unix_timestamp()),
        Some(1_471_288_232)
    );
    assert_eq!(
        s.tags,
        [("Purpose".to_owned(), "demo_db_14_backup".to_owned())]
    );
    assert_eq!(text_of(&reply, "nextToken").as_deref(), Some("page-2"));
}

#[test]
fn an_error_reply_gives_code_message_and_request_id_and_a_bare_status_is_named() {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidSnapshot.NotFound</Code><Message>The snapshot 'snap-1' does not exist.</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#;
    let error = api_error("DeleteSnapshot", 400, body);
    assert_eq!(error.code(), Some("InvalidSnapshot.NotFound"));
    assert_eq!(
        error.to_string(),
        "EC2 DeleteSnapshot: InvalidSnapshot.NotFound: The snapshot 'snap-1' does not exist. \
         (request ea966190-f9aa-478e-9ede-example)"
    );
    assert_eq!(
        error.reason(),
        "InvalidSnapshot.NotFound: The snapshot 'snap-1' does not exist. (request \
         ea966190-f9aa-478e-9ede-example)"
    );
    // A proxy's page, not EC2's: the status, and the start of the body.
    let error = api_error("DescribeSnapshots", 502, "<html>Bad Gateway</html>");
    assert_eq!(error.code(), Some("HTTP 502"));
    assert!(error.to_string().contains("Bad Gateway"), "{error}");
}

#[test]
fn tags_and_lists_become_numbered_parameters() {
    let params = Params::default()
        .list("SnapshotId", &["snap-1".to_owned(), "snap-2".to_owned()])
        .tag_specification(
            "snapshot",
            &[
                ("circle-ha:set".to_owned(), "circle".to_owned()),
                ("Name".to_owned(), "a b".to_owned()),
            ],
        )
        .tag_specification("volume", &[]);
    let names: Vec<(&str, &str)> = params
        .pairs()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("SnapshotId.1", "snap-1"),
            ("SnapshotId.2", "snap-2"),
            ("TagSpecification.1.ResourceType", "snapshot"),
            ("TagSpecification.1.Tag.1.Key", "circle-ha:set"),
            ("TagSpecification.1.Tag.1.Value", "circle"),
            ("TagSpecification.1.Tag.2.Key", "Name"),
            ("TagSpecification.1.Tag.2.Value", "a b"),
        ]
    );
}

#[test]
fn a_region_that_is_no_region_and_an_unknown_scheme_are_refused_before_any_call() {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let credentials =
        || SharedCredentialsProvider::new(Credentials::new("id", "secret", None, None, "test"));
    let error = crate::Ec2::new("us-east-1/../x", None, credentials()).unwrap_err();
    assert!(error.to_string().contains("not an AWS region"), "{error}");
    let error = crate::Ec2::new("us-east-1", Some("ftp://ec2.example"), credentials()).unwrap_err();
    assert!(
        error.to_string().contains("neither https nor http"),
        "{error}"
    );
    let ec2 = crate::Ec2::new("cn-north-1", None, credentials()).unwrap();
    assert_eq!(ec2.endpoint(), "https://ec2.cn-north-1.amazonaws.com.cn");
}
