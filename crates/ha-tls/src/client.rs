//! rustls client configurations that trust a given CA.
//!
//! Every TLS client in the workspace (PostgreSQL, Vault, the MongoDB tools)
//! builds its configuration here, so verification is decided in one place:
//! on by default, weakened only through [`ServerVerification`] variants that
//! say so.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use secrecy::{ExposeSecret as _, SecretString};

use crate::Error;

/// How much of the server's certificate a client checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerVerification {
    /// The chain must lead to a trusted CA and the certificate must name the
    /// host connected to (libpq's `verify-full`, Vault's and MongoDB's
    /// default).
    Full,
    /// The chain must lead to a trusted CA; the host name is not checked
    /// (libpq's `verify-ca`).
    ChainOnly,
    /// Nothing is checked: anyone on the network path can impersonate the
    /// server (libpq's `require`). Only for an operator who asked for it by
    /// name.
    DangerAcceptAnyCertificate,
}

/// A client certificate and key to present to the server.
pub struct ClientIdentity {
    /// The certificate chain, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: SecretString,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// The crypto provider every rustls user in the workspace shares.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM bundle into a root store. `what` names
/// the bundle (usually its path) in errors.
pub fn root_store(ca_pem: &[u8], what: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    let mut n_certs = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| Error::ParseCertificate {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| Error::ParseCertificate {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
        n_certs += 1;
    }
    if n_certs == 0 {
        return Err(Error::ParseCertificate {
            what: what.to_owned(),
            detail: "no CERTIFICATE block found".to_owned(),
        });
    }
    Ok(roots)
}

/// A rustls client configuration for public services (AWS's API
/// endpoints): the operating system's trusted roots (`/etc/ssl/certs`,
/// or what `SSL_CERT_FILE`/`SSL_CERT_DIR` name), full verification, no
/// client certificate. Roots the system has but rustls cannot parse are
/// skipped; none at all is an error.
pub fn system_client_config() -> Result<rustls::ClientConfig, Error> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = match found.errors.first() {
            Some(e) => format!("no trusted root certificates could be read: {e}"),
            None => {
                "the system has no trusted root certificates (install ca-certificates)".to_owned()
            }
        };
        return Err(Error::TlsConfig {
            what: "the system's trusted roots".to_owned(),
            detail,
        });
    }
    rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig {
            what: "protocol versions".to_owned(),
            detail: e.to_string(),
        })
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

/// A rustls client configuration trusting the CA certificates in `ca_pem`
/// (ignored for [`ServerVerification::DangerAcceptAnyCertificate`]),
/// optionally presenting `identity`.
pub fn client_config(
    ca_pem: Option<(&[u8], &str)>,
    verification: ServerVerification,
    identity: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, Error> {
    let provider = crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig {
            what: "protocol versions".to_owned(),
            detail: e.to_string(),
        })?;
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        ServerVerification::DangerAcceptAnyCertificate => Arc::new(AcceptAny { provider }),
        ServerVerification::Full | ServerVerification::ChainOnly => {
            let (pem, what) = ca_pem.ok_or_else(|| Error::TlsConfig {
                what: "server verification".to_owned(),
                detail: "verifying the server needs a CA file".to_owned(),
            })?;
            let roots = root_store(pem, what)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::TlsConfig {
                    what: what.to_owned(),
                    detail: e.to_string(),
                })?;
            Arc::new(Describing {
                inner: webpki,
                check_host_name: verification == ServerVerification::Full,
                ca_what: what.to_owned(),
            })
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(identity) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::ParseCertificate {
                        what: "client certificate".to_owned(),
                        detail: e.to_string(),
                    })?;
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.expose_secret().as_bytes())
                .map_err(|_| Error::ParseKey {
                    what: "client key".to_owned(),
                })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|_| Error::KeyMismatch {
                    cert: "client certificate".to_owned(),
                    key: "client key".to_owned(),
                })
        }
    }
}

/// WebPKI verification (optionally without the host-name check, for
/// `verify-ca`) whose rejections name the host, the certificate's subject
/// and names, and say in words what is wrong.
#[derive(Debug)]
struct Describing {
    inner: Arc<WebPkiServerVerifier>,
    check_host_name: bool,
    ca_what: String,
}

impl Describing {
    fn describe(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        error: &CertificateError,
    ) -> String {
        let host = server_name.to_str();
        let reason = match error {
            CertificateError::UnknownIssuer => {
                format!("was not issued by a CA in {}", self.ca_what)
            }
            CertificateError::BadSignature => format!(
                "is not signed by the CA in {} (a different CA with the same name?)",
                self.ca_what
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("does not name the host {host}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "is not valid yet (is a clock wrong?)".to_owned()
            }
            other => format!("was rejected: {other:?}"),
        };
        match crate::Certificate::from_der(end_entity, "server certificate") {
            Ok(cert) => {
                let mut names: Vec<String> = cert.dns_names().to_vec();
                names.extend(cert.ip_addresses().iter().map(|ip| ip.to_string()));
                format!(
                    "TLS: the certificate {host} presented ({}; names: {}) {reason}",
                    cert.subject(),
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    },
                )
            }
            Err(_) => format!("TLS: the certificate {host} presented {reason}"),
        }
    }
}

impl ServerCertVerifier for Describing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host_name => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(cert_error)) => Err(rustls::Error::General(
                self.describe(end_entity, server_name, &cert_error),
            )),
            res => res,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate, but still checks handshake signatures so the
/// connection is at least encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAny {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
