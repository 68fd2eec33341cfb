//! The exit codes every circle-ha binary uses (DESIGN.md, "Command-line
//! contract").

use std::process::ExitCode;

/// Why a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success,
    /// 1: a runtime failure (a server refused, a file could not be written …).
    Failure,
    /// 2: bad usage or bad configuration, found before anything was touched.
    Usage,
    /// 3: a status or verify command found the target unhealthy or not as
    /// desired.
    Unhealthy,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Unhealthy => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
