//! Workspace-level end-to-end tests (package `ha-tests`).
//!
//! `tests/runbook.rs` runs the whole runbook on the lab `circle-ha demo`
//! uses and checks every phase's result against the live services with
//! clients of its own. Tests of a single binary live next to it, in
//! `bins/tests/it`; tests of a crate, in the crate.
