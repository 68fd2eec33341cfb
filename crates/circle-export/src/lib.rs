//! Export and restore of the CircleCI Services-machine databases.
//!
//! **Status: skeleton**, filled by the "circle-export" issue: one archive
//! with a manifest of checksums and counts, MongoDB in mongodump layout,
//! PostgreSQL as plain SQL per database, streamed and parallel.
