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
//!
//! # Example
//!
//! From typed values, no `ha.toml`: check the spec, then bring the set to
//! it and report in `ha-plan`'s vocabulary (the shape `mongo-rs-setup apply
//! --json` prints).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use mongo_rs_setup::{MemberSpec, Reach, Session, SetSettings, SetSpec, TlsFiles, UserSpec};
//!
//! let user = |name: &str, password: &str| UserSpec {
//!     name: name.to_owned(),
//!     password: password.to_owned().into(),
//! };
//! let spec = SetSpec {
//!     name: "circle".to_owned(),
//!     members: ["mongo-1.internal:27017", "mongo-2.internal:27017", "mongo-3.internal:27017"]
//!         .map(MemberSpec::new)
//!         .to_vec(),
//!     settings: SetSettings::default(),
//!     site_admin: user("siteUserAdmin", "from your vault"),
//!     admin: user("circle-admin", "from your vault"),
//!     app: user("circle", "from your vault"),
//!     app_databases: mongo_rs_setup::DEFAULT_APP_DATABASES.map(str::to_owned).to_vec(),
//!     reach: Reach {
//!         tls: Some(TlsFiles {
//!             ca_file: "pki/ca.pem".into(),
//!             certificate_key_file: None,
//!         }),
//!         ..Reach::default()
//!     },
//!     wait_timeout: Duration::from_secs(900),
//! };
//! // Every problem at once, before any server is contacted.
//! let warnings = spec.validate()?;
//! let session = Session::new(&spec);
//! let progress = |line: &str| eprintln!("{line}");
//! let plan = mongo_rs_setup::dry_run(&session, &progress).await?;
//! print!("{plan}");
//! let applied = mongo_rs_setup::apply(&session, &progress).await?;
//! let report = ha_plan::Report::from_changes("my-tool", false, &applied.steps, warnings);
//! println!("{}", report.to_json());
//! # Ok(()) }
//! ```

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use {bson, mongodb, secrecy};

pub mod apply;
pub mod conf;
pub mod conn;
pub mod driver;
pub mod error;
pub mod members;
pub mod observe;
pub mod plan;
pub mod reconfig;
pub mod spec;
pub mod status;
pub mod version;

pub use apply::{Applied, apply, dry_run, run};
pub use conn::{Hello, Session, Who};
pub use error::Error;
pub use members::{MemberChange, MemberPlan, MemberStep, apply_member_change, plan_member_change};
pub use observe::{Observed, observe};
pub use plan::{Plan, Step, Via, plan};
pub use spec::{
    DEFAULT_APP_DATABASES, MAX_VOTERS, MemberSpec, Reach, Role, SetSettings, SetSpec, TlsFiles,
    UserKind, UserSpec, check_app_database, check_members, check_set_name, parse_member_host,
};
pub use status::{MemberFinding, MemberHealth, SetFindings, Status, status};
pub use version::ServerVersion;
