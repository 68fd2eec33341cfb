//! Integration tests for `ha-tls`: the store on a real filesystem and the
//! linter on certificates made both by `ha-tls` and, for the broken ones, by
//! `rcgen` directly.

mod install;
mod lint;
mod store;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use secrecy::ExposeSecret as _;
use time::{Duration, OffsetDateTime};

use ha_tls::{Ca, CaSpec};

const ORG: &str = "Example Corp";
const UNIT: &str = "CircleCI";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn new_ca() -> Ca {
    Ca::generate(&CaSpec::new(ORG, UNIT), now()).unwrap()
}

/// What a hand-made (possibly broken) certificate should contain.
struct Custom<'a> {
    hosts: &'a [&'a str],
    organization: &'a str,
    unit: &'a str,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Default for Custom<'_> {
    fn default() -> Self {
        Custom {
            hosts: &["mongo-1.internal"],
            organization: ORG,
            unit: UNIT,
            ekus: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            not_before: now() - Duration::hours(1),
            not_after: now() + Duration::days(365),
        }
    }
}

/// Signs a certificate with `ca` using rcgen directly, so tests can make the
/// mistakes `ha-tls` itself refuses to make. Returns cert + key PEM.
fn custom_cert(ca: &Ca, custom: Custom<'_>) -> String {
    let ca_key = KeyPair::from_pem(ca.key_pem().expose_secret()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(ca.cert_pem(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, custom.organization);
    dn.push(DnType::OrganizationalUnitName, custom.unit);
    dn.push(DnType::CommonName, custom.hosts[0]);
    params.distinguished_name = dn;
    params.subject_alt_names = custom
        .hosts
        .iter()
        .map(|h| SanType::DnsName((*h).to_owned().try_into().unwrap()))
        .collect();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = custom.ekus;
    params.not_before = custom.not_before;
    params.not_after = custom.not_after;
    let cert = params.signed_by(&key, &issuer).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}
