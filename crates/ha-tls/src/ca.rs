//! The certificate authority and the certificates it issues.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use crate::{Certificate, Error};

/// How far back `not_before` is set, so that hosts whose clocks lag a little
/// behind the issuing machine accept a certificate issued a moment ago.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::hours(1);

/// What the CA certificate should say about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSpec {
    /// The CA's common name, e.g. `circle-ha CA`.
    pub common_name: String,
    /// The organization (O) written into the CA's subject.
    pub organization: String,
    /// The organizational unit (OU) written into the CA's subject.
    pub organizational_unit: String,
    /// How long the CA stays valid.
    pub validity: Duration,
}

impl CaSpec {
    /// A CA named after `organization`, valid for ten years.
    pub fn new(organization: &str, organizational_unit: &str) -> CaSpec {
        CaSpec {
            common_name: format!("{organization} circle-ha CA"),
            organization: organization.to_owned(),
            organizational_unit: organizational_unit.to_owned(),
            validity: Duration::days(3650),
        }
    }
}

/// Whether a leaf certificate is for a host (server and member certificates)
/// or for a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// A client identity: extended key usage `clientAuth` only.
    Client,
    /// A host: a server that is also a client of its peers, such as a
    /// MongoDB replica-set member. Extended key usage `serverAuth` and
    /// `clientAuth`, as MongoDB's x509 cluster authentication requires.
    Host,
}

/// What a leaf certificate should contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// Host or client.
    pub kind: LeafKind,
    /// The subject's common name.
    pub common_name: String,
    /// DNS names for the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses for the subjectAltName extension.
    pub ip_addresses: Vec<IpAddr>,
    /// The subject's organization (O). Must be identical on every member of a
    /// MongoDB replica set, and must differ from the members' on a client.
    pub organization: String,
    /// The subject's organizational unit (OU); same rule as `organization`.
    pub organizational_unit: String,
    /// How long the certificate stays valid.
    pub validity: Duration,
}

impl LeafSpec {
    /// A host certificate covering `hosts`: each is a DNS name or an IP
    /// address, optionally followed by `:port` (IPv6 addresses in brackets),
    /// as written in `ha.toml`. The first host becomes the common name.
    /// Valid for two years.
    pub fn host(
        hosts: &[&str],
        organization: &str,
        organizational_unit: &str,
    ) -> Result<LeafSpec, Error> {
        let mut dns_names: Vec<String> = Vec::new();
        let mut ip_addresses: Vec<IpAddr> = Vec::new();
        for host in hosts {
            match parse_host(host)? {
                HostName::Dns(name) => {
                    if !dns_names.contains(&name) {
                        dns_names.push(name);
                    }
                }
                HostName::Ip(ip) => {
                    if !ip_addresses.contains(&ip) {
                        ip_addresses.push(ip);
                    }
                }
            }
        }
        let common_name = match (dns_names.first(), ip_addresses.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => {
                return Err(Error::InvalidName {
                    what: "host list",
                    value: String::new(),
                    reason: "a host certificate needs at least one host name or IP address",
                });
            }
        };
        check_subject_value("organization", organization)?;
        check_subject_value("organizational unit", organizational_unit)?;
        Ok(LeafSpec {
            kind: LeafKind::Host,
            common_name,
            dns_names,
            ip_addresses,
            organization: organization.to_owned(),
            organizational_unit: organizational_unit.to_owned(),
            validity: Duration::days(730),
        })
    }

    /// A client certificate whose subject is `CN=<common_name>, OU=<ou>,
    /// O=<organization>`. Valid for two years.
    pub fn client(
        common_name: &str,
        organization: &str,
        organizational_unit: &str,
    ) -> Result<LeafSpec, Error> {
        check_subject_value("common name", common_name)?;
        check_subject_value("organization", organization)?;
        check_subject_value("organizational unit", organizational_unit)?;
        Ok(LeafSpec {
            kind: LeafKind::Client,
            common_name: common_name.to_owned(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            organization: organization.to_owned(),
            organizational_unit: organizational_unit.to_owned(),
            validity: Duration::days(730),
        })
    }

    /// Why an existing certificate does not satisfy this spec, or an empty
    /// list when it does. Validity length is not compared; expiry is the
    /// store's business.
    pub fn mismatches(&self, cert: &Certificate) -> Vec<String> {
        let mut res = Vec::new();
        for name in &self.dns_names {
            if !cert.covers_host(name) {
                res.push(format!("does not cover host {name}"));
            }
        }
        for ip in &self.ip_addresses {
            if !cert.covers_host(&ip.to_string()) {
                res.push(format!("does not cover IP address {ip}"));
            }
        }
        if cert.common_names() != [self.common_name.clone()] {
            res.push(format!("common name is not {:?}", self.common_name));
        }
        if cert.organizations() != [self.organization.clone()] {
            res.push(format!("organization is not {:?}", self.organization));
        }
        if cert.organizational_units() != [self.organizational_unit.clone()] {
            res.push(format!(
                "organizational unit is not {:?}",
                self.organizational_unit
            ));
        }
        let eku = cert.extended_key_usage();
        let wants_server = self.kind == LeafKind::Host;
        match eku {
            Some(eku) if eku.client_auth && eku.server_auth == wants_server => {}
            _ => res.push(format!(
                "extended key usage is not {}",
                if wants_server {
                    "serverAuth + clientAuth"
                } else {
                    "clientAuth"
                }
            )),
        }
        res
    }
}

/// A certificate and its freshly generated private key.
pub struct IssuedCert {
    /// The certificate, PEM-encoded.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM-encoded.
    pub key_pem: SecretString,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// A certificate authority: its certificate and its signing key.
///
/// `Debug` never shows the key.
pub struct Ca {
    certificate: Certificate,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Generates a new self-signed CA with a fresh ECDSA P-256 key.
    pub fn generate(spec: &CaSpec, now: OffsetDateTime) -> Result<Ca, Error> {
        let key = KeyPair::generate().map_err(|source| Error::GenerateKey { source })?;
        Ca::self_sign(spec, key, now)
    }

    /// Builds a new self-signed CA certificate for an existing key. Used to
    /// finish a CA whose key was written but whose certificate was not.
    pub fn generate_with_key(
        spec: &CaSpec,
        key_pem: &SecretString,
        now: OffsetDateTime,
    ) -> Result<Ca, Error> {
        let key = parse_key(key_pem, "CA key")?;
        Ca::self_sign(spec, key, now)
    }

    fn self_sign(spec: &CaSpec, key: KeyPair, now: OffsetDateTime) -> Result<Ca, Error> {
        check_subject_value("common name", &spec.common_name)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(
            &spec.common_name,
            &spec.organization,
            &spec.organizational_unit,
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CLOCK_SKEW_ALLOWANCE;
        params.not_after = now + spec.validity;
        let cert = params.self_signed(&key).map_err(|source| Error::Sign {
            name: spec.common_name.clone(),
            source,
        })?;
        let cert_pem = cert.pem();
        Ca::from_parts(cert_pem, key, "new CA certificate", "new CA key")
    }

    /// Loads a CA from its PEM certificate and PEM private key, checking that
    /// they belong together and that the certificate is a CA. `cert_what`
    /// and `key_what` name their origins (paths) in errors.
    pub fn from_pem(
        cert_pem: &str,
        cert_what: &str,
        key_pem: &SecretString,
        key_what: &str,
    ) -> Result<Ca, Error> {
        let key = parse_key(key_pem, key_what)?;
        Ca::from_parts(cert_pem.to_owned(), key, cert_what, key_what)
    }

    fn from_parts(cert_pem: String, key: KeyPair, what: &str, key_what: &str) -> Result<Ca, Error> {
        let certificate = Certificate::from_pem(cert_pem.as_bytes(), what)?;
        if !certificate.is_ca() {
            return Err(Error::NotCa {
                cert: what.to_owned(),
            });
        }
        if rcgen::PublicKeyData::subject_public_key_info(&key) != certificate.public_key_der() {
            return Err(Error::KeyMismatch {
                cert: what.to_owned(),
                key: key_what.to_owned(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&certificate.der().to_vec().into(), key).map_err(
            |source| Error::Sign {
                name: what.to_owned(),
                source,
            },
        )?;
        Ok(Ca {
            certificate,
            cert_pem,
            issuer,
        })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The CA certificate, PEM-encoded: what clients and servers must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PKCS#8 PEM-encoded.
    pub fn key_pem(&self) -> SecretString {
        SecretString::from(self.issuer.key().serialize_pem())
    }

    /// Issues a certificate for `spec` with a fresh ECDSA P-256 key.
    pub fn issue(&self, spec: &LeafSpec, now: OffsetDateTime) -> Result<IssuedCert, Error> {
        let key = KeyPair::generate().map_err(|source| Error::GenerateKey { source })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(
            &spec.common_name,
            &spec.organization,
            &spec.organizational_unit,
        );
        for name in &spec.dns_names {
            let name = name.clone().try_into().map_err(|source| Error::Sign {
                name: spec.common_name.clone(),
                source,
            })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &spec.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        match spec.kind {
            LeafKind::Host => {
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
            }
            LeafKind::Client => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        params.not_before = now - CLOCK_SKEW_ALLOWANCE;
        params.not_after = (now + spec.validity).min(self.certificate.not_after());
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Sign {
                name: spec.common_name.clone(),
                source,
            })?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: SecretString::from(key.serialize_pem()),
        })
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("certificate", &self.certificate)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Parses a PKCS#8 PEM private key without ever echoing it.
pub(crate) fn parse_key(key_pem: &SecretString, what: &str) -> Result<KeyPair, Error> {
    KeyPair::from_pem(key_pem.expose_secret()).map_err(|_| Error::ParseKey {
        what: what.to_owned(),
    })
}

/// Parses a PKCS#8 DER private key without ever echoing it.
pub(crate) fn parse_key_der(der: &[u8], what: &str) -> Result<KeyPair, Error> {
    KeyPair::try_from(der).map_err(|_| Error::ParseKey {
        what: what.to_owned(),
    })
}

fn distinguished_name(common_name: &str, organization: &str, unit: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::OrganizationalUnitName, unit);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn check_subject_value(what: &'static str, value: &str) -> Result<(), Error> {
    let reason = if value.trim().is_empty() {
        "must not be empty"
    } else if value.chars().any(char::is_control) {
        "must not contain control characters"
    } else if value.len() > 64 {
        "must be at most 64 bytes (X.509 upper bound)"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}

enum HostName {
    Dns(String),
    Ip(IpAddr),
}

/// Parses `host`, `host:port`, `ip`, `ip:port` or `[ipv6]:port`.
fn parse_host(input: &str) -> Result<HostName, Error> {
    let invalid = |reason| Error::InvalidName {
        what: "host name",
        value: input.to_owned(),
        reason,
    };
    if let Ok(ip) = input.parse::<IpAddr>() {
        return Ok(HostName::Ip(ip));
    }
    let host = if let Some(rest) = input.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid("unclosed '[' in an IPv6 address"))?;
        if !(after.is_empty() || after.starts_with(':')) {
            return Err(invalid("unexpected text after ']'"));
        }
        inside
    } else {
        match input.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
                host
            }
            Some(_) => return Err(invalid("the part after ':' is not a port number")),
            None => input,
        }
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostName::Ip(ip));
    }
    check_dns_name(host).map_err(invalid)?;
    Ok(HostName::Dns(host.to_ascii_lowercase()))
}

/// Checks RFC 1123 host-name syntax. Non-ASCII names must be given in their
/// punycode (`xn--`) form, which is what TLS clients compare.
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if !name.is_ascii() {
        return Err(
            "contains non-ASCII characters: write internationalised names in punycode (xn--…)",
        );
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters");
    }
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("has an empty label or one longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label that starts or ends with '-'");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err("may contain only letters, digits, '-' and '.'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{HostName, parse_host};

    #[test]
    fn hosts_with_ports_and_brackets() {
        assert!(
            matches!(parse_host("mongo-1.internal:27017"), Ok(HostName::Dns(n)) if n == "mongo-1.internal")
        );
        assert!(matches!(parse_host("10.0.0.5:27017"), Ok(HostName::Ip(_))));
        assert!(matches!(parse_host("[::1]:27017"), Ok(HostName::Ip(_))));
        assert!(matches!(parse_host("::1"), Ok(HostName::Ip(_))));
        assert!(parse_host("bücher.example").is_err());
        assert!(parse_host("host:port").is_err());
        assert!(parse_host("-bad.example").is_err());
        assert!(parse_host("").is_err());
    }
}
