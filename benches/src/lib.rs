//! Throughput and latency benchmarks (package `ha-benches`).
//!
//! Each benchmark compares a circle-ha tool with what an operator would
//! otherwise run, measured in the same run on the same servers, and prints
//! the ratio. They are programs, not tests: run them with
//! `cargo bench -p ha-benches --bench <name>` after `cargo xtask install`.
//!
//! - `provision`: pg-provision creating the runbook's eight databases, their
//!   extensions and the app role, against a sequential `psql -f` script that
//!   does the same, on a durable (fsync on) lab PostgreSQL.
//! - `export`: circle-export's export and restore of generated data
//!   (`SIZE_MIB`, default 1024, half MongoDB, half PostgreSQL) against
//!   `pg_dump | gzip` per database plus `tar czf` of the MongoDB dump, and
//!   against `psql -f` of the same dumps one after another; with peak RSS.
