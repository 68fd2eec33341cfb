//! TLS for clients and peers: the server's certificate, client-certificate
//! verification against `tlsCAFile`, the member's own O/OU/DC (to recognise
//! peers in x509 cluster authentication), and a client configuration for
//! talking to peers.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::options::ServerOptions;

/// TLS material of a member.
#[derive(Debug, Clone)]
pub(crate) struct TlsContext {
    /// For accepting connections.
    pub(crate) server: Arc<rustls::ServerConfig>,
    /// For connecting to peers (presenting the cluster certificate).
    pub(crate) client: Arc<rustls::ClientConfig>,
    /// The O, OU and DC of this member's certificate: peers presenting the
    /// same are cluster members.
    pub(crate) member_attributes: ha_tls::MembershipAttributes,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn chain_and_key(
    path: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
        Vec<u8>,
    ),
    String,
> {
    let pem = read(path, "tlsCertificateKeyFile")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("{}: no private key found", path.display()))?;
    Ok((chain, key, pem))
}

impl TlsContext {
    /// Builds the TLS context from the options; `None` when TLS is off.
    pub(crate) fn from_options(options: &ServerOptions) -> Result<Option<TlsContext>, String> {
        let Some(cert_path) = &options.tls_certificate_key_file else {
            return Ok(None);
        };
        if options.tls_mode == crate::options::TlsMode::Disabled {
            return Ok(None);
        }
        let provider = ha_tls::crypto_provider();
        let (chain, key, pem) = chain_and_key(cert_path)?;
        let own = ha_tls::Certificate::from_pem(&pem, &cert_path.display().to_string())
            .map_err(|e| e.to_string())?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let ca_pem = match &options.tls_ca_file {
            Some(path) => Some((read(path, "tlsCAFile")?, path.display().to_string())),
            None => None,
        };
        let builder = match &ca_pem {
            Some((pem, what)) => {
                let roots = ha_tls::root_store(pem, what).map_err(|e| e.to_string())?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if options.tls_allow_connections_without_certificates {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
            }
            None => builder.with_no_client_auth(),
        };
        let server = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;

        let cluster_path = options.tls_cluster_file.as_deref().unwrap_or(cert_path);
        let (_, _, cluster_pem) = chain_and_key(cluster_path)?;
        let identity = ha_tls::ClientIdentity {
            cert_pem: String::from_utf8_lossy(&cluster_pem).into_owned(),
            key_pem: String::from_utf8_lossy(&cluster_pem).into_owned().into(),
        };
        let client = ha_tls::client_config(
            ca_pem
                .as_ref()
                .map(|(pem, what)| (pem.as_slice(), what.as_str())),
            if ca_pem.is_some() {
                ha_tls::ServerVerification::Full
            } else {
                ha_tls::ServerVerification::DangerAcceptAnyCertificate
            },
            Some(&identity),
        )
        .map_err(|e| e.to_string())?;
        Ok(Some(TlsContext {
            server: Arc::new(server),
            client: Arc::new(client),
            member_attributes: own.membership_attributes(),
        }))
    }
}

/// A client certificate's subject in RFC 2253 form (`CN=…,OU=…,O=…`), as
/// MongoDB names x509 users, and its O/OU/DC.
pub(crate) fn client_identity(der: &[u8]) -> Option<(String, ha_tls::MembershipAttributes)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut parts = Vec::new();
    let rdns: Vec<_> = cert.subject().iter_rdn().collect();
    for rdn in rdns.iter().rev() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let oid = attr.attr_type().to_id_string();
                let key = match oid.as_str() {
                    "2.5.4.3" => "CN",
                    "2.5.4.11" => "OU",
                    "2.5.4.10" => "O",
                    "2.5.4.7" => "L",
                    "2.5.4.8" => "ST",
                    "2.5.4.6" => "C",
                    "0.9.2342.19200300.100.1.25" => "DC",
                    "1.2.840.113549.1.9.1" => "emailAddress",
                    other => return format!("{other}={}", escape(&value_of(attr))),
                };
                format!("{key}={}", escape(&value_of(attr)))
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    let parsed = ha_tls::Certificate::from_der(der, "client certificate").ok()?;
    Some((parts.join(","), parsed.membership_attributes()))
}

fn value_of(attr: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    attr.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|_| String::from_utf8_lossy(attr.as_slice()).into_owned())
}

/// RFC 4514 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == value.chars().count() - 1 && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
