//! MongoDB replica-set bootstrap for circle-ha.
//!
//! **Status: skeleton**, filled by the "mongo-rs-setup" issue: rendering
//! `mongod.conf` per member, observe → plan → apply for the replica set and
//! the runbook's users (`siteUserAdmin`, `circle-admin`, `circle`), and
//! health reporting.
