//! Workspace-level end-to-end tests (package `ha-tests`).
//!
//! Empty until the `circle-ha apply` flow exists: the end-to-end test of the
//! whole runbook (the "circle-ha" issue) lives here. Tests of a single
//! binary live next to it, in `bins/tests/it`.
