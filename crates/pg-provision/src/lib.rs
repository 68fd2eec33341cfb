//! PostgreSQL provisioning for circle-ha.
//!
//! **Status: skeleton**, filled by the "pg-provision" issue: the eight
//! databases the runbook lists, their extensions (`pgcrypto`, `uuid-ossp`),
//! and the app role, via observe → plan → apply.
