//! Parsed certificates: the facts the linter and the store reason about.

use std::fmt;
use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_DOMAIN_COMPONENT;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::Error;

/// An X.509 certificate together with the facts read from it.
///
/// Parsing happens once, in [`Certificate::from_der`]; every accessor is a
/// plain field read, so a `Certificate` can be passed around freely.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    subject: String,
    subject_der: Vec<u8>,
    issuer_der: Vec<u8>,
    common_names: Vec<String>,
    organizations: Vec<String>,
    organizational_units: Vec<String>,
    domain_components: Vec<String>,
    has_san: bool,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    extended_key_usage: Option<ExtendedKeyUsage>,
    key_usage: Option<KeyUsage>,
    is_ca: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    public_key_der: Vec<u8>,
}

/// The extended key usages the project cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedKeyUsage {
    /// `serverAuth` (TLS Web Server Authentication).
    pub server_auth: bool,
    /// `clientAuth` (TLS Web Client Authentication).
    pub client_auth: bool,
    /// `anyExtendedKeyUsage`.
    pub any: bool,
}

/// The key usages the project cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUsage {
    /// `digitalSignature`.
    pub digital_signature: bool,
    /// `keyEncipherment`.
    pub key_encipherment: bool,
    /// `keyCertSign`.
    pub key_cert_sign: bool,
}

impl Certificate {
    /// Parses one DER-encoded certificate. `what` names its origin in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<Certificate, Error> {
        let parse_error = |detail: String| Error::ParseCertificate {
            what: what.to_owned(),
            detail,
        };
        let (rest, x509) =
            X509Certificate::from_der(der).map_err(|e| parse_error(e.to_string()))?;
        if !rest.is_empty() {
            return Err(parse_error(format!("{} trailing bytes", rest.len())));
        }
        let mut res = Certificate {
            der: der.to_vec(),
            subject: x509.subject().to_string(),
            subject_der: x509.subject().as_raw().to_vec(),
            issuer_der: x509.issuer().as_raw().to_vec(),
            common_names: attribute_values(x509.subject().iter_common_name()),
            organizations: attribute_values(x509.subject().iter_organization()),
            organizational_units: attribute_values(x509.subject().iter_organizational_unit()),
            domain_components: domain_components(x509.subject()),
            has_san: false,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            extended_key_usage: None,
            key_usage: None,
            is_ca: false,
            not_before: x509.validity().not_before.to_datetime(),
            not_after: x509.validity().not_after.to_datetime(),
            public_key_der: x509.public_key().raw.to_vec(),
        };
        for extension in x509.extensions() {
            match extension.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    res.has_san = true;
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(dns) => res.dns_names.push((*dns).to_owned()),
                            GeneralName::IPAddress(bytes) => {
                                if let Some(ip) = ip_from_bytes(bytes) {
                                    res.ip_addresses.push(ip);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    res.extended_key_usage = Some(ExtendedKeyUsage {
                        server_auth: eku.server_auth,
                        client_auth: eku.client_auth,
                        any: eku.any,
                    });
                }
                ParsedExtension::KeyUsage(ku) => {
                    res.key_usage = Some(KeyUsage {
                        digital_signature: ku.digital_signature(),
                        key_encipherment: ku.key_encipherment(),
                        key_cert_sign: ku.key_cert_sign(),
                    });
                }
                ParsedExtension::BasicConstraints(bc) => res.is_ca = bc.ca,
                _ => {}
            }
        }
        Ok(res)
    }

    /// Parses every `CERTIFICATE` block of a PEM buffer, in order. Other
    /// blocks (private keys) are skipped. An empty result is not an error.
    pub fn all_from_pem(pem: &[u8], what: &str) -> Result<Vec<Certificate>, Error> {
        let mut res = Vec::new();
        for block in pem_blocks(pem, what)? {
            if block.label == "CERTIFICATE" {
                res.push(Certificate::from_der(&block.contents, what)?);
            }
        }
        Ok(res)
    }

    /// Parses the first `CERTIFICATE` block of a PEM buffer.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Certificate, Error> {
        Certificate::all_from_pem(pem, what)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::ParseCertificate {
                what: what.to_owned(),
                detail: "no CERTIFICATE block found".to_owned(),
            })
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject distinguished name in RFC 4514-like text form.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject's common names (usually one).
    pub fn common_names(&self) -> &[String] {
        &self.common_names
    }

    /// The subject's organization (O) values.
    pub fn organizations(&self) -> &[String] {
        &self.organizations
    }

    /// The subject's organizational unit (OU) values.
    pub fn organizational_units(&self) -> &[String] {
        &self.organizational_units
    }

    /// The subject's domain component (DC) values.
    pub fn domain_components(&self) -> &[String] {
        &self.domain_components
    }

    /// The O, OU and DC values of the subject, each list sorted: the
    /// combination MongoDB compares to decide cluster membership (order of
    /// attributes does not matter to it).
    pub fn membership_attributes(&self) -> MembershipAttributes {
        let sorted = |values: &[String]| {
            let mut values = values.to_vec();
            values.sort();
            values
        };
        MembershipAttributes {
            organizations: sorted(&self.organizations),
            organizational_units: sorted(&self.organizational_units),
            domain_components: sorted(&self.domain_components),
        }
    }

    /// Whether the certificate has a subjectAltName extension.
    pub fn has_subject_alt_names(&self) -> bool {
        self.has_san
    }

    /// DNS names from the subjectAltName extension.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// IP addresses from the subjectAltName extension.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// The extended key usage extension, if present.
    pub fn extended_key_usage(&self) -> Option<ExtendedKeyUsage> {
        self.extended_key_usage
    }

    /// The key usage extension, if present.
    pub fn key_usage(&self) -> Option<KeyUsage> {
        self.key_usage
    }

    /// Whether basicConstraints marks this certificate as a CA.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Whether `now` lies inside the validity period.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// The DER-encoded SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// Whether `issuer` signed this certificate: the issuer name matches the
    /// issuer's subject and the signature verifies under the issuer's key.
    pub fn is_signed_by(&self, issuer: &Certificate) -> bool {
        if self.issuer_der != issuer.subject_der {
            return false;
        }
        let (Ok((_, this)), Ok((_, ca))) = (
            X509Certificate::from_der(&self.der),
            X509Certificate::from_der(&issuer.der),
        ) else {
            return false;
        };
        this.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// Whether a TLS client connecting to `host` (a DNS name or an IP
    /// address, without port) would accept this certificate's names.
    ///
    /// With a subjectAltName extension only its entries count (RFC 6125);
    /// without one, the common name is used, as MongoDB and libpq still do.
    pub fn covers_host(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ip_addresses.contains(&ip);
        }
        let names: &[String] = if self.has_san {
            &self.dns_names
        } else {
            &self.common_names
        };
        names.iter().any(|pattern| dns_name_matches(pattern, host))
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("dns_names", &self.dns_names)
            .field("ip_addresses", &self.ip_addresses)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The O, OU and DC values of a subject, each sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipAttributes {
    /// Organization values.
    pub organizations: Vec<String>,
    /// Organizational unit values.
    pub organizational_units: Vec<String>,
    /// Domain component values.
    pub domain_components: Vec<String>,
}

impl MembershipAttributes {
    /// True when none of O, OU and DC has a non-empty value.
    pub fn is_empty(&self) -> bool {
        [
            &self.organizations,
            &self.organizational_units,
            &self.domain_components,
        ]
        .iter()
        .all(|values| values.iter().all(|v| v.is_empty()))
    }
}

impl fmt::Display for MembershipAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (key, values) in [
            ("O", &self.organizations),
            ("OU", &self.organizational_units),
            ("DC", &self.domain_components),
        ] {
            for value in values {
                parts.push(format!("{key}={value}"));
            }
        }
        if parts.is_empty() {
            f.write_str("no O, OU or DC")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// One block of a PEM buffer.
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) contents: Vec<u8>,
}

/// Splits a PEM buffer into its blocks.
pub(crate) fn pem_blocks(pem: &[u8], what: &str) -> Result<Vec<PemBlock>, Error> {
    let mut res = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| Error::ParseCertificate {
            what: what.to_owned(),
            detail: format!("malformed PEM: {e}"),
        })?;
        res.push(PemBlock {
            label: block.label,
            contents: block.contents,
        });
    }
    Ok(res)
}

/// Whether a SAN/CN `pattern` (possibly `*.example.com`) matches `host`.
fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => match host.split_once('.') {
            Some((first, rest)) => !first.is_empty() && rest == suffix,
            None => false,
        },
        None => pattern == host,
    }
}

fn attribute_values<'a>(
    attributes: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Vec<String> {
    attributes
        .map(|attr| match attr.as_str() {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(attr.as_slice()).into_owned(),
        })
        .collect()
}

fn domain_components(name: &X509Name<'_>) -> Vec<String> {
    attribute_values(name.iter_by_oid(&OID_DOMAIN_COMPONENT))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::dns_name_matches;

    #[test]
    fn wildcards_match_exactly_one_label() {
        assert!(dns_name_matches("*.internal", "mongo-1.internal"));
        assert!(dns_name_matches("MONGO-1.internal.", "mongo-1.INTERNAL"));
        assert!(!dns_name_matches("*.internal", "a.b.internal"));
        assert!(!dns_name_matches("*.internal", "internal"));
        assert!(!dns_name_matches("mongo-1.internal", "mongo-2.internal"));
    }
}
