//! mongo-backup against a lab replica set.
