//! What can go wrong, said so the operator knows what to do next.

use std::fmt;
use std::time::Duration;

/// An error from observing or changing a replica set. Every variant names
/// the member (`host:port`) and, where it helps, what to do about it.
/// Passwords never appear: the driver's messages are passed on, and they
/// carry no credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`SetSpec`](crate::SetSpec) breaks MongoDB's rules (found by
    /// [`SetSpec::validate`](crate::SetSpec::validate) before any member
    /// is contacted): every problem, each naming its field.
    #[error("the replica set's description is invalid: {0}")]
    Invalid(ha_plan::Problems),
    /// No connection could be made (refused, timed out, name not found).
    #[error(
        "{host}: cannot connect ({detail}). Check that mongod runs there, listens on that address \
         (net.bindIp, net.port) and that no firewall or security group blocks the port"
    )]
    Unreachable {
        /// The member.
        host: String,
        /// The driver's description.
        detail: String,
    },
    /// The TLS handshake failed.
    #[error("{host}: TLS handshake failed ({detail}). {advice}")]
    Tls {
        /// The member.
        host: String,
        /// The driver's description.
        detail: String,
        /// Which side refused and which certificate to look at.
        advice: String,
    },
    /// A user could not log in.
    #[error(
        "{host}: authentication as {user} (database admin) failed ({detail}). Check the {key} \
         user's password, or whether the user exists on this replica set"
    )]
    Authentication {
        /// The member.
        host: String,
        /// The user name.
        user: String,
        /// The `ha.toml` key of the user.
        key: &'static str,
        /// The server's description.
        detail: String,
    },
    /// A command failed on a member.
    #[error("{host}: {command} failed: {message} (code {code} {code_name}){advice}")]
    Command {
        /// The member.
        host: String,
        /// The command's name.
        command: String,
        /// The server's error code.
        code: i32,
        /// The server's code name.
        code_name: String,
        /// The server's message.
        message: String,
        /// What to do, starting with `". "`, or empty.
        advice: String,
    },
    /// The first user could not be created through the localhost exception.
    #[error("{0}")]
    FirstUser(String),
    /// The current state cannot be brought to the desired one without the
    /// operator: every reason, found before anything was changed.
    #[error("{}", Blocked(.0))]
    Blocked(Vec<String>),
    /// A wait (election, initial sync) ran out of time.
    #[error("timed out after {}s waiting for {what}; last seen: {last}", .waited.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The last state observed.
        last: String,
    },
    /// Anything else the driver reported.
    #[error("{host}: {detail}")]
    Other {
        /// The member.
        host: String,
        /// The driver's description.
        detail: String,
    },
}

struct Blocked<'a>(&'a [String]);

impl fmt::Display for Blocked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => f.write_str(one),
            many => {
                write!(f, "{} problems:", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl Error {
    /// The server's error code, for command errors.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Command { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The member the error is about, if it is about one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Error::Unreachable { host, .. }
            | Error::Tls { host, .. }
            | Error::Authentication { host, .. }
            | Error::Command { host, .. }
            | Error::Other { host, .. } => Some(host),
            Error::Invalid(_) | Error::FirstUser(_) | Error::Blocked(_) | Error::Timeout { .. } => {
                None
            }
        }
    }
}

/// Advice for well-known server error codes.
pub(crate) fn advice_for(code: i32, host: &str) -> String {
    match code {
        76 => format!(
            ". {host} runs without a replica-set name: start it with --replSet \
             (replication.replSetName; `mongo-rs-setup render-config` writes it)"
        ),
        13 => ". The user lacks the privilege, or no user is logged in".to_owned(),
        10107 | 189 => {
            format!(". {host} is no longer primary (an election happened); run the command again")
        }
        74 => format!(
            ". {host} could not reach every member listed: each must run with the same \
             --replSet name, be empty and accept {host}'s x509 member certificate"
        ),
        103 => {
            ". The new config is not compatible with the current one; see the message".to_owned()
        }
        _ => String::new(),
    }
}

/// Advice for a TLS failure, from the driver's text.
pub(crate) fn tls_advice(detail: &str, host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    if detail.contains("UnknownIssuer") || detail.contains("unknown issuer") {
        format!(
            "The certificate {host} presented was not issued by the CA the tools were given \
             (tls.ca_file), or its chain is incomplete: give the CA that signed the member \
             certificates"
        )
    } else if detail.contains("NotValidForName") || detail.contains("not valid for name") {
        format!(
            "The certificate {host} presented does not name {name}: reissue it with {name} as a \
             subject alternative name (ha-tls does this for every member host)"
        )
    } else if detail.contains("Expired") || detail.contains("expired") {
        format!("The certificate {host} presented has expired or is not valid yet: reissue it")
    } else if detail.contains("alert") {
        format!(
            "{host} refused our side of the handshake: if it requires client certificates, give the \
             tools one issued by the members' CA (tls.certificate_key_file), or allow \
             connections without certificates, as the runbook's config does"
        )
    } else {
        format!(
            "Check that {host} has TLS on (net.tls.mode) and that the tools' TLS settings match \
             how the members are configured"
        )
    }
}
