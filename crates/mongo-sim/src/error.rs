//! Command errors with MongoDB's codes and code names
//! (`src/mongo/base/error_codes.yml`).

use bson::{Document, doc};

/// MongoDB error codes the simulator returns, with their `codeName`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Code {
    /// 2.
    BadValue,
    /// 334.
    MechanismUnavailable,
    /// 11.
    UserNotFound,
    /// 13.
    Unauthorized,
    /// 14.
    TypeMismatch,
    /// 17.
    ProtocolError,
    /// 18.
    AuthenticationFailed,
    /// 20.
    IllegalOperation,
    /// 22.
    InvalidBson,
    /// 23.
    AlreadyInitialized,
    /// 16.
    InvalidLength,
    /// 26.
    NamespaceNotFound,
    /// 31.
    RoleNotFound,
    /// 43.
    CursorNotFound,
    /// 48.
    NamespaceExists,
    /// 59.
    CommandNotFound,
    /// 64.
    WriteConcernFailed,
    /// 73.
    InvalidNamespace,
    /// 74.
    NodeNotFound,
    /// 76.
    NoReplicationEnabled,
    /// 86.
    IndexKeySpecsConflict,
    /// 9.
    FailedToParse,
    /// 91.
    ShutdownInProgress,
    /// 93.
    InvalidReplicaSetConfig,
    /// 94.
    NotYetInitialized,
    /// 103.
    NewReplicaSetConfigurationIncompatible,
    /// 104.
    NodeNotElectable,
    /// 262.
    ExceededTimeLimit,
    /// 10107.
    NotWritablePrimary,
    /// 72.
    InvalidOptions,
    /// 27.
    IndexNotFound,
    /// 136.
    CappedPositionLost,
    /// 166.
    CommandNotSupportedOnView,
    /// 189.
    PrimarySteppedDown,
    /// 225.
    TransactionTooOld,
    /// 352.
    UnsupportedOpQueryCommand,
    /// 40324.
    UnrecognizedPipelineStage,
    /// 11000.
    DuplicateKey,
    /// 13435.
    NotPrimaryNoSecondaryOk,
    /// 13436.
    NotPrimaryOrSecondary,
    /// 51003.
    Location51003,
}

impl Code {
    /// The numeric code.
    pub(crate) fn number(self) -> i32 {
        match self {
            Code::BadValue => 2,
            Code::MechanismUnavailable => 334,
            Code::UserNotFound => 11,
            Code::Unauthorized => 13,
            Code::TypeMismatch => 14,
            Code::ProtocolError => 17,
            Code::AuthenticationFailed => 18,
            Code::IllegalOperation => 20,
            Code::InvalidBson => 22,
            Code::AlreadyInitialized => 23,
            Code::NamespaceNotFound => 26,
            Code::InvalidLength => 16,
            Code::RoleNotFound => 31,
            Code::CursorNotFound => 43,
            Code::NamespaceExists => 48,
            Code::CommandNotFound => 59,
            Code::WriteConcernFailed => 64,
            Code::InvalidNamespace => 73,
            Code::NodeNotFound => 74,
            Code::NoReplicationEnabled => 76,
            Code::IndexKeySpecsConflict => 86,
            Code::FailedToParse => 9,
            Code::ShutdownInProgress => 91,
            Code::InvalidReplicaSetConfig => 93,
            Code::NotYetInitialized => 94,
            Code::NewReplicaSetConfigurationIncompatible => 103,
            Code::NodeNotElectable => 104,
            Code::ExceededTimeLimit => 262,
            Code::NotWritablePrimary => 10107,
            Code::InvalidOptions => 72,
            Code::IndexNotFound => 27,
            Code::CappedPositionLost => 136,
            Code::CommandNotSupportedOnView => 166,
            Code::PrimarySteppedDown => 189,
            Code::TransactionTooOld => 225,
            Code::UnsupportedOpQueryCommand => 352,
            Code::UnrecognizedPipelineStage => 40324,
            Code::DuplicateKey => 11000,
            Code::NotPrimaryNoSecondaryOk => 13435,
            Code::NotPrimaryOrSecondary => 13436,
            Code::Location51003 => 51003,
        }
    }

    /// The `codeName`. `NotWritablePrimary` is spelled `NotMaster` before
    /// MongoDB 5.0 (see [`Code::name_for`]).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Code::BadValue => "BadValue",
            Code::MechanismUnavailable => "MechanismUnavailable",
            Code::UserNotFound => "UserNotFound",
            Code::Unauthorized => "Unauthorized",
            Code::TypeMismatch => "TypeMismatch",
            Code::ProtocolError => "ProtocolError",
            Code::AuthenticationFailed => "AuthenticationFailed",
            Code::IllegalOperation => "IllegalOperation",
            Code::InvalidBson => "InvalidBSON",
            Code::AlreadyInitialized => "AlreadyInitialized",
            Code::InvalidLength => "InvalidLength",
            Code::NamespaceNotFound => "NamespaceNotFound",
            Code::RoleNotFound => "RoleNotFound",
            Code::CursorNotFound => "CursorNotFound",
            Code::NamespaceExists => "NamespaceExists",
            Code::CommandNotFound => "CommandNotFound",
            Code::WriteConcernFailed => "WriteConcernFailed",
            Code::InvalidNamespace => "InvalidNamespace",
            Code::NodeNotFound => "NodeNotFound",
            Code::NoReplicationEnabled => "NoReplicationEnabled",
            Code::IndexKeySpecsConflict => "IndexKeySpecsConflict",
            Code::FailedToParse => "FailedToParse",
            Code::ShutdownInProgress => "ShutdownInProgress",
            Code::InvalidReplicaSetConfig => "InvalidReplicaSetConfig",
            Code::NotYetInitialized => "NotYetInitialized",
            Code::NewReplicaSetConfigurationIncompatible => {
                "NewReplicaSetConfigurationIncompatible"
            }
            Code::NodeNotElectable => "NodeNotElectable",
            Code::ExceededTimeLimit => "ExceededTimeLimit",
            Code::NotWritablePrimary => "NotWritablePrimary",
            Code::InvalidOptions => "InvalidOptions",
            Code::IndexNotFound => "IndexNotFound",
            Code::CappedPositionLost => "CappedPositionLost",
            Code::CommandNotSupportedOnView => "CommandNotSupportedOnView",
            Code::PrimarySteppedDown => "PrimarySteppedDown",
            Code::TransactionTooOld => "TransactionTooOld",
            Code::UnsupportedOpQueryCommand => "UnsupportedOpQueryCommand",
            Code::UnrecognizedPipelineStage => "Location40324",
            Code::DuplicateKey => "DuplicateKey",
            Code::NotPrimaryNoSecondaryOk => "NotPrimaryNoSecondaryOk",
            Code::NotPrimaryOrSecondary => "NotPrimaryOrSecondary",
            Code::Location51003 => "Location51003",
        }
    }

    /// The `codeName` as a server of `major` version spells it.
    pub(crate) fn name_for(self, major: u32) -> &'static str {
        match (self, major) {
            (Code::NotWritablePrimary, m) if m < 5 => "NotMaster",
            (Code::NotPrimaryNoSecondaryOk, m) if m < 5 => "NotMasterNoSlaveOk",
            (code, _) => code.name(),
        }
    }
}

/// A failed command: `{ok: 0, errmsg, code, codeName}`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CommandError {
    /// The code.
    pub(crate) code: Code,
    /// The message.
    pub(crate) message: String,
    /// Extra reply fields (`info` of AlreadyInitialized …).
    pub(crate) extra: Document,
}

impl CommandError {
    /// An error with a code and a message.
    pub(crate) fn new(code: Code, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            message: message.into(),
            extra: Document::new(),
        }
    }

    /// Adds a field to the reply.
    pub(crate) fn with(mut self, key: &str, value: impl Into<bson::Bson>) -> CommandError {
        self.extra.insert(key, value);
        self
    }

    /// The reply document for a server of major version `major`.
    pub(crate) fn to_reply(&self, major: u32) -> Document {
        let mut reply = doc! {
            "ok": 0.0,
            "errmsg": self.message.clone(),
            "code": self.code.number(),
            "codeName": self.code.name_for(major),
        };
        for (key, value) in &self.extra {
            reply.insert(key.clone(), value.clone());
        }
        reply
    }

    /// `BadValue`.
    pub(crate) fn bad_value(message: impl Into<String>) -> CommandError {
        CommandError::new(Code::BadValue, message)
    }

    /// `TypeMismatch` for a field of the wrong type.
    pub(crate) fn type_mismatch(field: &str, expected: &str) -> CommandError {
        CommandError::new(
            Code::TypeMismatch,
            format!("BSON field '{field}' is the wrong type, expected type '{expected}'"),
        )
    }
}
