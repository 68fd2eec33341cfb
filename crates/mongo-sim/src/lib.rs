//! A MongoDB replica-set member for tests, speaking the real wire protocol.
//!
//! **Status: skeleton.** The simulator is built under its own issue
//! ("mongo-sim: a MongoDB replica-set member that speaks the real wire
//! protocol"). Until then `ha-lab` starts a real `mongod` when one is
//! available (`MONGOD_BIN` or `mongod` on `PATH`) and otherwise reports that
//! no MongoDB server can be started.
//!
//! It will own: the mongod-compatible command line and config file, OP_MSG
//! and OP_QUERY framing, SCRAM and X.509 authentication, replica-set state,
//! elections and oplog replication between member processes, and persistence
//! in `dbPath`, all matching `../shared/docs/MONGO-FACTS.md`.
