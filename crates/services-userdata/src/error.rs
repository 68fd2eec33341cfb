//! The one error type of `services-userdata`.

/// What went wrong. Messages name the file, bucket or launch template and
/// never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The inputs cannot make a working bundle; every reason is listed.
    #[error("cannot render the Services bundle:\n  - {}", problems.join("\n  - "))]
    Invalid {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The user data is over EC2's limit.
    #[error(
        "the rendered user data is {bytes} bytes, over EC2's limit of 16384 bytes (before \
         base64); nothing was uploaded"
    )]
    UserdataTooLarge {
        /// Its size.
        bytes: usize,
    },
    /// An S3 call failed.
    #[error("S3 {operation} s3://{bucket}/{key}: {detail}")]
    S3 {
        /// The operation (`PutObject` …).
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The SDK's words.
        detail: String,
    },
    /// An EC2 call failed.
    #[error("EC2 {operation} on launch template {template}: {detail}")]
    Ec2 {
        /// The operation.
        operation: &'static str,
        /// The launch template's name.
        template: String,
        /// EC2's error code and message, or what failed on the way.
        detail: String,
    },
    /// The launch template to publish to has no version to start from.
    #[error(
        "launch template {template} has no versions: create it (AMI, instance type, an instance \
         profile that may read s3://{bucket}/{prefix}*) first"
    )]
    NoLaunchTemplateVersion {
        /// The launch template.
        template: String,
        /// The bundle's bucket.
        bucket: String,
        /// The key prefix in it.
        prefix: String,
    },
    /// A bundle directory could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The operating system's words.
        source: std::io::Error,
    },
    /// A file could not be written atomically with its mode.
    #[error(transparent)]
    Write(#[from] ha_tls::Error),
    /// Restoring would replace encryption keys that differ from the stored
    /// copy; nothing was written.
    #[error(
        "{}: {} differ(s) from the stored copy: nothing was written; compare them (keys verify), \
         and force the restore only if the stored copy is the one to keep",
        dir.display(),
        names.join(", ")
    )]
    KeysDiffer {
        /// The directory.
        dir: std::path::PathBuf,
        /// The differing files.
        names: Vec<String>,
    },
    /// An encryption-keys directory holds something that is not a plain
    /// file.
    #[error("{}: {problem}", path.display())]
    KeyFile {
        /// The entry.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// More, or larger, key files than an encryption-key directory holds
    /// (CircleCI's is a handful of small files).
    #[error("{what}: {detail}; refused before it is read")]
    TooLarge {
        /// The file or object.
        what: String,
        /// How large, and the limit.
        detail: String,
    },
    /// The stored copy does not match the SHA-256 recorded with it.
    #[error("s3://{bucket}/{key}: its content does not match the SHA-256 recorded with it")]
    Corrupt {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// The directory holds no rendered bundle.
    #[error(
        "{}: no rendered bundle there (no userdata.sh); run `services-userdata render --out {}` \
         first",
        dir.display(),
        dir.display()
    )]
    NotRendered {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// An existing `settings.conf` could not be read.
    #[error("{what}: {detail}")]
    Import {
        /// The file.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// What an S3 call's failure says, in one line: S3's code and message (and
/// the HTTP status) for a refusal, the causes for anything else. (The
/// SDK's own rendering of a refusal without a body — a `HEAD`'s — is a page
/// of debug output.)
pub(crate) fn s3_detail<E>(error: &aws_sdk_s3::error::SdkError<E>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let refusal = service.err();
            match (refusal.code(), refusal.message()) {
                (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ if status == 403 => "HTTP 403 Forbidden: these credentials may not do this \
                                       here (IAM policy, bucket policy or KMS key)"
                    .to_owned(),
                _ => format!("HTTP {status} without an error code"),
            }
        }
        other => ha_plan::error_chain(other),
    }
}
