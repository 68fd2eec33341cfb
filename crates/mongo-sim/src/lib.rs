//! A MongoDB replica-set member for tests, speaking the real wire protocol.
//!
//! No package registry reachable here ships a `mongod`, yet every MongoDB
//! feature of circle-ha — replica-set bootstrap, users, TLS and x509 cluster
//! authentication, export/restore, failover — must be tested against
//! something that behaves like one. `mongo-sim` is that stand-in. It follows
//! the "rule of fidelity" (DESIGN.md): same flags and config-file keys, same
//! command names, fields, error codes and codeNames, same auth rules, real
//! replication between member processes over TCP, elections when a primary
//! dies; where unsure, stricter than mongod, never looser.
//!
//! What it implements, in modules (only `options`, `wire`, `server` and
//! `version` are public: the stand-in is used as a program, and its
//! internals may change with mongod's behaviour):
//!
//! - [`options`]: mongod's command line and YAML config (`--config`), with
//!   unknown or invalid options refused the way mongod refuses them, and the
//!   sim-only `--simServerVersion 3.6|4.4|5.0|6.0|7.0|8.0` profile switch
//!   (3.6 is mongod 3.6.6: wire 6, `isMaster` only, SCRAM-SHA-1 only, no
//!   `nameOnly` on `listCollections`; `--simFeatureCompatibilityVersion
//!   3.4` for data without collection UUIDs or sessions);
//! - [`wire`]: OP_MSG (body and document-sequence sections, checksums),
//!   OP_QUERY handshakes and OP_REPLY; OP_COMPRESSED is never negotiated;
//! - [`server`]: listeners; TLS (rustls) in mongod's allow/prefer/require
//!   modes on one port, client-certificate verification against
//!   `tlsCAFile`;
//! - `auth`, `scram`: users in `admin.system.users`, SCRAM-SHA-1 and
//!   SCRAM-SHA-256, MONGODB-X509 (cluster members recognised by their
//!   certificate's O/OU/DC), built-in roles checked per command, the
//!   localhost exception;
//! - `replset`, `replication`: config validation and reconfig rules,
//!   heartbeats, elections with terms and priorities, oplog replication with
//!   `w: "majority"`, rollback of a diverged former primary;
//! - `storage`: the oplog as a fsynced journal in `dbPath`, replayed at
//!   start, so a member restarted (or started from a copy of its `dbPath`)
//!   keeps its data.
//!
//! The binary is `mongo-sim`; `ha-lab` starts it when no real `mongod` is
//! available.

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub(crate) mod auth;
pub(crate) mod commands;
pub(crate) mod error;
pub(crate) mod log;
pub(crate) mod node;
pub mod options;
pub(crate) mod peer;
pub(crate) mod replication;
pub(crate) mod replset;
pub(crate) mod scram;
pub mod server;
pub(crate) mod storage;
pub(crate) mod tls;
pub mod version;
pub mod wire;
