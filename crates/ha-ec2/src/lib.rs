//! # ha-ec2
//!
//! The EC2 API calls circle-ha makes, and nothing else: EBS snapshots and
//! volumes (mongo-backup's snapshots of a stopped secondary, and the
//! volumes a restore makes of them) and launch templates (the Services
//! machine's user data, services-userdata's `publish`).
//!
//! Each call is EC2's Query API as AWS documents it — a form-encoded
//! `POST` naming the `Action` and API version `2016-11-15`, signed with
//! SigV4 (the `aws-sigv4` crate), answered in XML — over rustls with the
//! system's trusted roots ([`ha_tls::system_client_config`]).
//! Throttling, server errors and failed connections are tried again (four
//! attempts in all, backing off); every other refusal is an [`Error::Api`]
//! with EC2's code and message. Replies are bounded (32 MiB) before they
//! are read.
//!
//! Why not `aws-sdk-ec2`: that crate covers EC2's hundreds of actions and
//! took the longest of any crate in the workspace to compile (more than
//! the rest of the AWS SDK together); these nine actions are a few hundred
//! lines. Credentials and region still come from the AWS SDK's
//! configuration ([`Ec2::from_sdk_config`]): the same chain (environment,
//! profile, instance role) as every other AWS call the tools make.
//!
//! ```no_run
//! # async fn example(config: &aws_types::SdkConfig) -> Result<(), ha_ec2::Error> {
//! let ec2 = ha_ec2::Ec2::from_sdk_config(config)?;
//! let mine = ec2
//!     .describe_snapshots(&ha_ec2::SnapshotQuery::own_tagged(&[("circle-ha:tool", "mongo-backup")]))
//!     .await?;
//! for snapshot in mine {
//!     println!("{} {} {:?}", snapshot.id, snapshot.state, snapshot.progress);
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod snapshots;
mod templates;

pub use client::{API_VERSION, Ec2, Error};
pub use snapshots::{Snapshot, SnapshotQuery, Volume, VolumeSpec};
pub use templates::{LaunchTemplate, LaunchTemplateVersion};

#[cfg(test)]
mod tests;
