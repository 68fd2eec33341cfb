//! TLS for clients and peers: the server's certificate, client-certificate
//! verification against `tlsCAFile`, the member's own O/OU/DC (to recognise
//! peers in x509 cluster authentication), and a client configuration for
//! talking to peers.
//!
//! Everything here is the stand-in's own: it shares no code with the
//! tools' `ha-tls` (their certificate lint reads MongoDB's membership rule
//! too, and a shared misreading would pass both). The rule, from
//! MONGO-FACTS §3.6: a member certificate's subject has a non-empty O, OU or
//! DC, and peers are members when their O/OU/DC sets are identical (order
//! irrelevant, multiplicity matters).

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
    pub(crate) member_attributes: MemberAttributes,
}

/// A certificate subject's O, OU and DC values, each list sorted (order is
/// irrelevant to MongoDB, multiplicity is not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemberAttributes {
    organizations: Vec<String>,
    organizational_units: Vec<String>,
    domain_components: Vec<String>,
}

impl MemberAttributes {
    /// Whether none of O, OU and DC has a non-empty value (such a
    /// certificate can never identify a member).
    pub(crate) fn is_empty(&self) -> bool {
        [
            &self.organizations,
            &self.organizational_units,
            &self.domain_components,
        ]
        .iter()
        .all(|values| values.iter().all(String::is_empty))
    }

    fn of(cert: &X509Certificate<'_>) -> MemberAttributes {
        let mut attributes = MemberAttributes::default();
        for attr in cert.subject().iter_attributes() {
            let list = match attr.attr_type().to_id_string().as_str() {
                "2.5.4.10" => &mut attributes.organizations,
                "2.5.4.11" => &mut attributes.organizational_units,
                "0.9.2342.19200300.100.1.25" => &mut attributes.domain_components,
                _ => continue,
            };
            list.push(value_of(attr));
        }
        attributes.organizations.sort();
        attributes.organizational_units.sort();
        attributes.domain_components.sort();
        attributes
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(pem: &[u8], what: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("{what}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{what}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{what}: no CA certificate found"));
    }
    Ok(roots)
}

/// Accepts any server certificate: a member started without `tlsCAFile`
/// cannot check its peers (mongod would use the system store; the stand-in
/// has no business trusting that).
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
        let provider = provider();
        let (chain, key, _) = chain_and_key(cert_path)?;
        let member_attributes = {
            let (_, own) = X509Certificate::from_der(&chain[0])
                .map_err(|e| format!("{}: {e}", cert_path.display()))?;
            MemberAttributes::of(&own)
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let ca_pem = match &options.tls_ca_file {
            Some(path) => Some((read(path, "tlsCAFile")?, path.display().to_string())),
            None => None,
        };
        let builder = match &ca_pem {
            Some((pem, what)) => {
                let roots = root_store(pem, what)?;
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
        let (cluster_chain, cluster_key, _) = chain_and_key(cluster_path)?;
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let client = match &ca_pem {
            Some((pem, what)) => client.with_root_certificates(root_store(pem, what)?),
            None => client
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider.clone()))),
        };
        let client = client
            .with_client_auth_cert(cluster_chain, cluster_key)
            .map_err(|e| format!("{}: {e}", cluster_path.display()))?;
        Ok(Some(TlsContext {
            server: Arc::new(server),
            client: Arc::new(client),
            member_attributes,
        }))
    }
}

/// A client certificate's subject in RFC 2253 form (`CN=…,OU=…,O=…`), as
/// MongoDB names x509 users, and its O/OU/DC.
pub(crate) fn client_identity(der: &[u8]) -> Option<(String, MemberAttributes)> {
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
    Some((parts.join(","), MemberAttributes::of(&cert)))
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

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    use super::client_identity;

    fn der(org: &str, unit: &str, client: bool) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        let ca = ha_tls::Ca::generate(&ha_tls::CaSpec::new("Lab", "CA"), now).unwrap();
        let spec = if client {
            ha_tls::LeafSpec::client("tools", org, unit).unwrap()
        } else {
            ha_tls::LeafSpec::host(&["localhost"], org, unit).unwrap()
        };
        let leaf = ca.issue(&spec, now).unwrap();
        CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    /// The stand-in reads the rule on its own: same O and OU make peers
    /// members; another OU (the tools' client certificate) does not.
    #[test]
    fn members_share_o_ou_dc_and_a_client_in_its_own_unit_is_not_one() {
        let (subject, a) = client_identity(&der("Lab", "Members", false)).unwrap();
        assert!(
            subject.contains("OU=Members") && subject.contains("O=Lab"),
            "{subject}"
        );
        let (_, b) = client_identity(&der("Lab", "Members", false)).unwrap();
        assert!(!a.is_empty());
        assert_eq!(a, b);
        let (_, client) = client_identity(&der("Lab", "Members clients", true)).unwrap();
        assert_ne!(a, client);
        let (_, other_org) = client_identity(&der("Other", "Members", false)).unwrap();
        assert_ne!(a, other_org);
    }
}
