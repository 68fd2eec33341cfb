//! The MongoDB half of the runbook: `mongod.conf` for each member, the
//! replica set and its users brought to a desired state, and its health.
//!
//! The shape is observe → plan → apply:
//!
//! - [`observe()`] reads the members (`hello`, which needs no login), tries
//!   the three users' logins on the primary, and reads `usersInfo` and the
//!   set's config where a login allows;
//! - [`plan()`] turns that and a [`SetSpec`] into [`Step`]s, problems that
//!   block any change ([`Plan::blockers`]) and warnings;
//! - [`apply()`] carries out one step, observes again and plans again until
//!   nothing is left, so a run killed at any point is finished by the next
//!   one, and a second run on a finished set changes nothing.
//!
//! From a fresh set (members started with `--replSet` and authorization
//! on, nothing else) the steps are what the runbook does by hand, in an
//! order that needs no restarts: initiate the set on the first electable
//! member with only that member and with the host names from the spec (so
//! the primary never adopts a cloud-internal name); create `siteUserAdmin`
//! through the localhost exception; as `siteUserAdmin` create
//! `circle-admin` (root + dbAdmin on admin) and `circle` (readWrite on every
//! app database, including the `remote_containers_dev_ghe` the runbook's
//! createUser forgets); as `circle-admin` add the remaining members one at
//! a time, each time waiting until the new member is SECONDARY. Later runs
//! grant missing roles, reset passwords that no longer log in, add members
//! missing from the set, and correct priority, votes, hidden and settings.
//! Members the set has but the spec lacks are reported, never removed.
//!
//! [`conf::render`] writes a member's `mongod.conf`; [`status()`] reports
//! health. The library never prints and never reads the environment:
//! secrets arrive in the [`SetSpec`], progress leaves through a callback.
//!
//! Servers older than MongoDB 4.4 cannot be reached: the official Rust
//! driver refuses them. Rendering a config works for any version.

pub mod apply;
pub mod conf;
pub mod conn;
pub mod error;
pub mod observe;
pub mod plan;
pub mod reconfig;
pub mod spec;
pub mod status;
pub mod version;

pub use apply::{Applied, apply, dry_run};
pub use conn::{Hello, Session, Who};
pub use error::Error;
pub use observe::{Observed, observe};
pub use plan::{Plan, Step, Via, plan};
pub use spec::{
    MemberSpec, Reach, Role, SetSettings, SetSpec, TlsFiles, UserKind, UserSpec, parse_member_host,
};
pub use status::{MemberHealth, Status, status};
pub use version::ServerVersion;
