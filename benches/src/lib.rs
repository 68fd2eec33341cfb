//! Throughput and latency benchmarks (package `ha-benches`).
//!
//! Empty until there is something worth measuring: export/restore against
//! `pg_dump | gzip` and provisioning against a sequential `psql -f` script
//! arrive with `circle-export` and `pg-provision`.
