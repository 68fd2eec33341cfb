//! The one error type of `ha-tls`.

use std::path::PathBuf;

/// What went wrong while creating, loading or writing certificates.
///
/// Messages name the file or certificate involved and never contain key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system's random source or the signing library failed to
    /// produce a key pair.
    #[error("cannot generate a key pair")]
    GenerateKey {
        /// The signing library's error.
        #[source]
        source: rcgen::Error,
    },
    /// The signing library refused to build or sign a certificate.
    #[error("cannot sign the certificate {name}")]
    Sign {
        /// The certificate's name (file stem or common name).
        name: String,
        /// The signing library's error.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate could not be parsed.
    #[error("{what}: not a valid X.509 certificate ({detail})")]
    ParseCertificate {
        /// Where the certificate came from (a path or a label).
        what: String,
        /// What the parser said.
        detail: String,
    },
    /// A private key could not be parsed. The key itself is never shown.
    #[error("{what}: not a valid PKCS#8 private key in PEM form")]
    ParseKey {
        /// Where the key came from (a path or a label).
        what: String,
    },
    /// A certificate and a private key that must belong together do not.
    #[error("{cert} does not belong to the private key in {key}")]
    KeyMismatch {
        /// The certificate's path or label.
        cert: String,
        /// The key's path or label.
        key: String,
    },
    /// A name given for a certificate cannot be used.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which kind of name (host name, file name, organization …).
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The CA certificate exists but its private key does not, so nothing can
    /// be signed and a new CA would orphan every certificate already issued.
    #[error(
        "{cert} exists but its private key {key} is missing: restore the key, or move the whole \
         directory away to start a new CA (every member must then get new certificates)"
    )]
    CaKeyMissing {
        /// The CA certificate's path.
        cert: PathBuf,
        /// Where the key was expected.
        key: PathBuf,
    },
    /// The CA certificate has expired or is not valid yet. It is never
    /// replaced silently: every host trusts it.
    #[error(
        "the CA certificate {cert} is valid from {not_before} to {not_after}, not now: create a \
         new CA deliberately (move the directory away) and reissue every certificate"
    )]
    CaNotValidNow {
        /// The CA certificate's path.
        cert: PathBuf,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// Certificates were to be issued but the PKI directory has no CA yet.
    #[error("no CA in {}: run `circle-ha pki init` first", dir.display())]
    NoCa {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// The file loaded as the CA is not a CA certificate.
    #[error("{cert} is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotCa {
        /// The certificate's path or label.
        cert: String,
    },
    /// A TLS client configuration could not be built.
    #[error("cannot set up TLS: {what}: {detail}")]
    TlsConfig {
        /// What was being configured.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// Reading a file failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file or creating a directory failed.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
