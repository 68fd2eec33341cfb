//! Shared glue for the circle-ha command-line tools.
//!
//! Each binary in `src/bin/` is a thin `main` that parses its command line
//! with clap and calls into this crate, which turns typed options into calls
//! of the concern crates (`ha-tls`, `ha-lab`, and the crates later issues
//! fill) and owns the policy: output, progress and exit codes. Libraries
//! below never print or read the environment; this crate does both, on
//! their behalf.

pub mod apply;
pub mod aws;
pub mod cli;
pub mod config;
pub mod demo;
pub mod exit;
pub mod export;
pub mod mongo;
pub mod output;
pub mod pki;
pub mod postgres;
pub mod progress;
pub mod secret;
pub mod services;
pub mod status;
pub mod vault;
