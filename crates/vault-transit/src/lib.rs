//! Vault (and OpenBao) setup for circle-ha.
//!
//! **Status: skeleton**, filled by the "vault-transit" issue: server
//! configuration, init, unseal, the transit mount, a least-privilege policy
//! and a periodic orphan token for the CircleCI contexts service.
