//! Vault's AES-GCM barrier (`vault/barrier_aes_gcm.go`) and keyring
//! (`vault/keyring.go`): a stored value is term (u32, big endian) ‖
//! version byte ‖ 12-byte nonce ‖ ciphertext and tag; version 2 binds the
//! storage path as additional data, version 1 does not. `core/keyring` is
//! sealed with the master key; every other value with the keyring's key
//! for its term.

use std::collections::BTreeMap;

use base64::Engine as _;
use ring::aead;
use serde::Deserialize;
use zeroize::Zeroizing;

const NONCE: usize = 12;
const TAG: usize = 16;

/// The clear prefix of a sealed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The keyring term whose key sealed it.
    pub term: u32,
    /// 1 (no additional data) or 2 (the path as additional data).
    pub version: u8,
}

impl Header {
    /// Reads the header of `sealed`, checking its length.
    pub fn parse(sealed: &[u8]) -> Result<Header, String> {
        if sealed.len() < 4 + 1 + NONCE + TAG {
            return Err(format!(
                "{} bytes: too short to be sealed by Vault",
                sealed.len()
            ));
        }
        let term = u32::from_be_bytes([sealed[0], sealed[1], sealed[2], sealed[3]]);
        let version = sealed[4];
        if !matches!(version, 1 | 2) {
            return Err(format!("barrier version {version}: Vault writes 1 or 2"));
        }
        Ok(Header { term, version })
    }
}

/// Opens `sealed` (stored at `path`) with `key`.
pub fn open(
    path: &str,
    key: &[u8],
    header: &Header,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, String> {
    let algorithm = match key.len() {
        32 => &aead::AES_256_GCM,
        16 => &aead::AES_128_GCM,
        n => return Err(format!("a {n}-byte key is not an AES key")),
    };
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(algorithm, key).map_err(|_| "not an AES key".to_owned())?,
    );
    let nonce = aead::Nonce::try_assume_unique_for_key(&sealed[5..5 + NONCE])
        .map_err(|_| "bad nonce".to_owned())?;
    let aad = if header.version == 2 {
        path.as_bytes()
    } else {
        &[]
    };
    let mut buf = Zeroizing::new(sealed[5 + NONCE..].to_vec());
    let len = key
        .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
        .map_err(|_| "it does not decrypt: wrong key, or the bytes were changed".to_owned())?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// Seals `plain` as Vault 0.7.3 would at `path` (version 2), for tests of
/// readers that must find damage.
#[cfg(test)]
pub(crate) fn seal(path: &str, term: u32, key: &[u8], nonce: [u8; NONCE], plain: &[u8]) -> Vec<u8> {
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, key).unwrap());
    let mut out = term.to_be_bytes().to_vec();
    out.push(2);
    out.extend_from_slice(&nonce);
    let mut body = plain.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(path.as_bytes()),
        &mut body,
    )
    .unwrap();
    out.extend_from_slice(&body);
    out
}

/// The keyring: each term's key.
pub struct Keyring {
    terms: BTreeMap<u32, Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring(terms {:?})",
            self.terms.keys().collect::<Vec<_>>()
        )
    }
}

#[derive(Deserialize)]
struct Encoded<'a> {
    #[serde(rename = "Keys", borrow, default)]
    keys: Vec<TermKey<'a>>,
}

#[derive(Deserialize)]
struct TermKey<'a> {
    #[serde(rename = "Term")]
    term: u32,
    #[serde(rename = "Value", borrow)]
    value: &'a str,
}

impl Keyring {
    /// `EncodedKeyring` JSON (`{"MasterKey", "Keys": [{"Term", "Version",
    /// "Value", "InstallTime"}]}`), values base64.
    pub fn parse(plain: &[u8]) -> Result<Keyring, String> {
        let encoded: Encoded<'_> =
            serde_json::from_slice(plain).map_err(|e| format!("not a keyring: {e}"))?;
        let mut terms = BTreeMap::new();
        for key in encoded.keys {
            let mut value = Zeroizing::new(Vec::new());
            base64::engine::general_purpose::STANDARD
                .decode_vec(key.value, &mut value)
                .map_err(|_| format!("the key of term {} is not base64", key.term))?;
            terms.insert(key.term, value);
        }
        if terms.is_empty() {
            return Err("the keyring holds no key".to_owned());
        }
        Ok(Keyring { terms })
    }

    /// The key of `term`.
    pub fn term(&self, term: u32) -> Option<&[u8]> {
        self.terms.get(&term).map(|k| k.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_path() {
        let key = [7u8; 32];
        let sealed = seal("core/mounts", 1, &key, [1; NONCE], b"{}");
        let header = Header::parse(&sealed).unwrap();
        assert_eq!(
            header,
            Header {
                term: 1,
                version: 2
            }
        );
        assert_eq!(*open("core/mounts", &key, &header, &sealed).unwrap(), b"{}");
        assert!(open("core/other", &key, &header, &sealed).is_err());
        assert!(open("core/mounts", &[8u8; 32], &header, &sealed).is_err());
        let mut version_one = sealed.clone();
        version_one[4] = 1;
        let header = Header::parse(&version_one).unwrap();
        // Version 1 binds no path: the tag was made with one, so it fails.
        assert!(open("core/mounts", &key, &header, &version_one).is_err());
        assert!(Header::parse(&sealed[..20]).is_err());
    }
}
