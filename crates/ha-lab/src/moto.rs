//! A private AWS API emulator: `moto_server` on a random port.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::process::{Daemon, free_port, log_contains, port_open, with_port_retries};
use crate::{Error, Toolbox};

/// The region the lab's AWS clients use.
pub const MOTO_REGION: &str = "us-east-1";
/// The fake access key id moto accepts (any value works).
pub const MOTO_ACCESS_KEY_ID: &str = "testing";
/// The fake secret access key moto accepts (any value works).
pub const MOTO_SECRET_ACCESS_KEY: &str = "testing";

/// A running `moto_server` (EC2, S3 and every other service moto emulates on
/// one endpoint), stopped on drop. State lives in memory and dies with it.
#[derive(Debug)]
pub struct Moto {
    daemon: Daemon,
    _dir: TempDir,
    port: u16,
    /// The Python beside `moto_server` (its environment has boto3).
    python: std::path::PathBuf,
}

impl Moto {
    /// Starts `moto_server` on 127.0.0.1 and waits until it serves.
    pub fn start(tools: &Toolbox) -> Result<Moto, Error> {
        Moto::start_with(tools, None)
    }

    /// [`Moto::start`], but checking every request after the first
    /// `unauthenticated` as AWS does (moto's `INITIAL_NO_AUTH_ACTION_COUNT`):
    /// its SigV4 signature is recomputed with botocore and compared, and
    /// the IAM user whose key signed it must be allowed the action. The
    /// free requests create that user (see [`Moto::iam_user`]).
    pub fn start_authenticating(tools: &Toolbox, unauthenticated: u32) -> Result<Moto, Error> {
        Moto::start_with(tools, Some(unauthenticated))
    }

    fn start_with(tools: &Toolbox, unauthenticated: Option<u32>) -> Result<Moto, Error> {
        let program = tools.moto_server()?;
        let dir = tempfile::Builder::new()
            .prefix("ha-lab-moto-")
            .tempdir()
            .map_err(Error::io("a temporary directory for moto"))?;
        let log = dir.path().join("moto.log");
        let (daemon, port) = with_port_retries(|| {
            let port = free_port()?;
            let mut command = Command::new(&program);
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(dir.path())
                // moto must not see real credentials or endpoints.
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ENDPOINT_URL");
            if let Some(count) = unauthenticated {
                command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
            }
            let mut daemon = Daemon::spawn("moto_server", command, &log, libc::SIGTERM)?;
            daemon.wait_until(|| port_open(port) && log_contains(&log, "Running on"))?;
            Ok((daemon, port))
        })?;
        Ok(Moto {
            daemon,
            _dir: dir,
            port,
            python: program.with_file_name("python3"),
        })
    }

    /// The endpoint URL to give AWS SDK clients, e.g. `http://127.0.0.1:5123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        self.daemon.log()
    }

    /// An AWS SDK configuration pointing at this emulator: fixed test
    /// credentials, region `us-east-1`, the endpoint override, and the
    /// rustls/ring HTTPS client the whole workspace uses. S3 clients built
    /// from it also need `force_path_style(true)`, as [`Moto::s3_client`]
    /// sets.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = aws_credential_types::Credentials::new(
            MOTO_ACCESS_KEY_ID,
            MOTO_SECRET_ACCESS_KEY,
            None,
            None,
            "ha-lab",
        );
        let mut builder = aws_config::SdkConfig::builder();
        builder.set_sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep());
        builder
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(MOTO_REGION))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            )
            .endpoint_url(self.endpoint())
            .http_client(http_client)
            .time_source(aws_smithy_async::time::SystemTimeSource::new())
            .build()
    }

    /// An S3 client for this emulator: [`Moto::sdk_config`] with path-style
    /// addressing (moto serves buckets as `/<bucket>` paths, not as
    /// `<bucket>.localhost` host names).
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk_config())
                .force_path_style(true)
                .build(),
        )
    }

    /// An EC2 client ([`ha_ec2::Ec2`], what the tools use) for this
    /// emulator.
    pub fn ec2(&self) -> ha_ec2::Ec2 {
        ha_ec2::Ec2::from_sdk_config(&self.sdk_config()).expect("the emulator's EC2 client")
    }

    /// Creates launch template `name` launching `image_id` (its version 1).
    pub async fn create_launch_template(
        &self,
        name: &str,
        image_id: &str,
    ) -> Result<(), ha_ec2::Error> {
        self.ec2()
            .create_launch_template(name, image_id)
            .await
            .map(drop)
    }

    /// Creates IAM user `name` allowed every action of `service` (`ec2`)
    /// and an access key for it, through boto3 (three requests): the key's
    /// id and secret.
    pub fn iam_user(&self, name: &str, service: &str) -> Result<(String, String), Error> {
        self.boto3(
            "iam",
            "create_user",
            &serde_json::json!({ "UserName": name }),
        )?;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": format!("{service}:*"), "Resource": "*" }],
        });
        self.boto3(
            "iam",
            "put_user_policy",
            &serde_json::json!({
                "UserName": name,
                "PolicyName": "all",
                "PolicyDocument": policy.to_string(),
            }),
        )?;
        let key = self.boto3(
            "iam",
            "create_access_key",
            &serde_json::json!({ "UserName": name }),
        )?;
        let field = |name: &str| {
            key["AccessKey"][name]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        Ok((field("AccessKeyId"), field("SecretAccessKey")))
    }

    /// Calls `service`'s `operation` with `params` through boto3 (moto's
    /// own AWS client, in the same Python environment as `moto_server`): an
    /// independent look at what the tools' calls left in the emulator. The
    /// reply as JSON, without `ResponseMetadata`.
    pub fn boto3(
        &self,
        service: &str,
        operation: &str,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        const SCRIPT: &str = "import boto3, json, sys\n\
            client = boto3.client(sys.argv[1], endpoint_url=sys.argv[4], region_name=sys.argv[5],\n\
                aws_access_key_id=sys.argv[6], aws_secret_access_key=sys.argv[6])\n\
            reply = getattr(client, sys.argv[2])(**json.loads(sys.argv[3]))\n\
            reply.pop('ResponseMetadata', None)\n\
            print(json.dumps(reply, default=str))\n";
        let output = Command::new(&self.python)
            .args(["-c", SCRIPT, service, operation])
            .arg(params.to_string())
            .args([&self.endpoint(), MOTO_REGION, MOTO_ACCESS_KEY_ID])
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .map_err(Error::io("running boto3"))?;
        let what = || format!("boto3 {service} {operation}");
        if !output.status.success() {
            return Err(Error::SetupFailed {
                what: what(),
                status: output.status,
                output_tail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        serde_json::from_slice(&output.stdout).map_err(|e| Error::Aws {
            endpoint: self.endpoint(),
            detail: format!("{}: not JSON: {e}", what()),
        })
    }

    /// Stops the server. Also done on drop.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}
