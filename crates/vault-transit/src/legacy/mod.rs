//! The old Vault 0.7's file storage, read offline: what CircleCI's
//! contexts service encrypted its secrets with, out of the Vault the
//! runbook leaves behind.
//!
//! OpenBao cannot open 0.7's storage (its legacy Shamir seal and barrier
//! were removed), 0.7 has no backup endpoint, and its transit keys were
//! created not exportable. So the key leaves the old storage the way Vault
//! itself read it: the unseal shares combine (Shamir over GF(2⁸)) to the
//! master key ([`shamir`]); the master key opens `core/keyring`; the
//! keyring's term keys open the mount table and each transit mount's
//! `policy/<name>` and `archive/<name>` ([`barrier`]); those two, as
//! stored, are the backup that `transit/restore/<name>` accepts on Vault ≥
//! 0.9.1 and OpenBao ([`TransitKey::backup`]).
//!
//! The formats are Vault 0.7.3's (hashicorp/vault "Cut version 0.7.3",
//! commit 0b20ae0b9b): `physical/file.go`, `vault/seal.go`,
//! `shamir/shamir.go`, `vault/barrier_aes_gcm.go`, `vault/keyring.go`,
//! `vault/mount.go`, `helper/compressutil/compress.go`,
//! `helper/keysutil/policy.go`. Key material lives only in memory, in
//! [`zeroize::Zeroizing`] buffers, and is never shown: reports carry names,
//! versions and flags.

pub mod barrier;
pub mod shamir;
mod storage;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroizing;

pub use shamir::Share;
pub use storage::FileStorage;

use crate::Error;

/// Key material or a decrypted value: zeroised when dropped.
type Secret = Zeroizing<Vec<u8>>;

/// Where Vault 0.7 keeps its seal configuration (plaintext).
const SEAL_CONFIG: &str = "core/seal-config";
/// The keyring, encrypted with the master key.
const KEYRING: &str = "core/keyring";
/// The mount tables, encrypted with a term key, compressed.
const MOUNT_TABLES: [&str; 2] = ["core/mounts", "core/local-mounts"];
/// The largest decompressed mount table read.
const MAX_MOUNT_TABLE: u64 = 16 << 20;

/// `core/seal-config`: how the master key was split.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
pub struct SealConfig {
    /// `shamir` for 0.7.
    #[serde(rename = "type", default)]
    pub seal_type: String,
    /// Shares made at init.
    pub secret_shares: u32,
    /// Shares needed.
    pub secret_threshold: u32,
    /// Shares Vault stores itself (0 in 0.7: the shares combine to the
    /// master key; "legacy" Shamir).
    #[serde(default)]
    pub stored_shares: u32,
    /// Whether the shares were PGP-encrypted to their holders.
    #[serde(skip_deserializing)]
    pub pgp_encrypted: bool,
}

#[derive(Deserialize)]
struct RawSealConfig {
    #[serde(rename = "type", default)]
    seal_type: String,
    secret_shares: u32,
    secret_threshold: u32,
    #[serde(default)]
    stored_shares: u32,
    #[serde(default)]
    pgp_keys: Option<Vec<serde::de::IgnoredAny>>,
}

/// The old Vault's storage directory (the file backend's `path`).
#[derive(Debug)]
pub struct OldVault {
    storage: FileStorage,
}

impl OldVault {
    /// Opens the storage in `dir`: it must hold `core/_seal-config`.
    pub fn open(dir: &Path) -> Result<OldVault, Error> {
        let storage = FileStorage::new(dir);
        if storage.get(SEAL_CONFIG)?.is_none() {
            return Err(Error::OldStorage {
                path: dir.to_owned(),
                detail: "no core/_seal-config here: not the storage directory of a Vault with \
                         the file backend (CircleCI's vault container keeps it in /vault/file)"
                    .to_owned(),
            });
        }
        Ok(OldVault { storage })
    }

    /// The storage.
    pub fn storage(&self) -> &FileStorage {
        &self.storage
    }

    /// `core/seal-config`.
    pub fn seal_config(&self) -> Result<SealConfig, Error> {
        let raw = self.storage.get(SEAL_CONFIG)?.unwrap_or_default();
        let parsed: RawSealConfig = serde_json::from_slice(&raw).map_err(|e| {
            self.storage
                .damaged(SEAL_CONFIG, &format!("not a seal configuration: {e}"))
        })?;
        Ok(SealConfig {
            seal_type: parsed.seal_type,
            secret_shares: parsed.secret_shares,
            secret_threshold: parsed.secret_threshold,
            stored_shares: parsed.stored_shares,
            pgp_encrypted: parsed.pgp_keys.is_some_and(|k| !k.is_empty()),
        })
    }

    /// What can be seen without the shares: the seal configuration, the
    /// transit-looking keys by their storage paths, and secrets lying in
    /// the directory (reported by name, never shown).
    pub fn inspect(&self) -> Result<Inspection, Error> {
        let seal = self.seal_config()?;
        let mut stored_keys = Vec::new();
        for mount in self.storage.list("logical/")? {
            let Some(uuid) = mount.strip_suffix('/') else {
                continue;
            };
            for name in self.storage.list(&format!("logical/{uuid}/policy/"))? {
                if !name.ends_with('/') {
                    stored_keys.push(format!("logical/{uuid}/policy/{name}"));
                }
            }
        }
        Ok(Inspection {
            seal,
            stored_keys,
            secrets_found: self.storage.loose_secrets(),
            mounts: Vec::new(),
            keys: Vec::new(),
        })
    }

    /// Opens the barrier with `shares`: combined to the master key, which
    /// must open `core/keyring`. Fewer shares than the threshold is
    /// [`Error::Shares`]; shares that do not open the keyring are
    /// [`Error::WrongShares`] — with one share more than the threshold,
    /// the wrong one is named — unless the keyring itself is damaged
    /// ([`Error::OldStorage`]).
    pub fn unseal(&self, shares: &[Share]) -> Result<Unsealed<'_>, Error> {
        let seal = self.seal_config()?;
        if seal.stored_shares > 0 {
            return Err(Error::Shares(format!(
                "this Vault stores {} share(s) itself (an auto-unseal or recovery seal): only \
                 0.7's Shamir seal, whose shares combine to the master key, can be read offline",
                seal.stored_shares
            )));
        }
        let threshold = usize::try_from(seal.secret_threshold).unwrap_or(usize::MAX);
        if shares.len() < threshold {
            return Err(Error::Shares(format!(
                "{} unseal share(s) given and this Vault needs {threshold} (of {}): ask the other \
                 key holders",
                shares.len(),
                seal.secret_shares
            )));
        }
        shamir::check(shares)?;
        let sealed = self
            .storage
            .get(KEYRING)?
            .ok_or_else(|| self.storage.damaged(KEYRING, "missing"))?;
        let header = barrier::Header::parse(&sealed)
            .map_err(|detail| self.storage.damaged(KEYRING, &detail))?;
        let open = |subset: &[&Share]| -> Option<Zeroizing<Vec<u8>>> {
            let master = shamir::combine(subset).ok()?;
            barrier::open(KEYRING, &master, &header, &sealed).ok()
        };
        let all: Vec<&Share> = shares.iter().collect();
        let plain = match open(&all) {
            Some(plain) => plain,
            None => return Err(self.blame(shares, threshold, &open)),
        };
        let keyring = barrier::Keyring::parse(&plain)
            .map_err(|detail| self.storage.damaged(KEYRING, &detail))?;
        Ok(Unsealed {
            vault: self,
            keyring,
        })
    }

    /// Why `shares` do not open the keyring. With more shares than
    /// needed, every subset one smaller is tried: if exactly one opens it,
    /// the share left out is the wrong one; if the subsets all combine to
    /// the same secret, the shares belong together (one split) and it is
    /// the keyring that does not fit them — damaged, or another Vault's.
    fn blame(
        &self,
        shares: &[Share],
        threshold: usize,
        open: &dyn Fn(&[&Share]) -> Option<Secret>,
    ) -> Error {
        if shares.len() <= threshold {
            return Error::WrongShares(format!(
                "the {} shares do not open core/keyring: one of them is not this Vault's (or the \
                 keyring is damaged); give one share more than the {threshold} needed and the \
                 wrong one is named",
                shares.len()
            ));
        }
        let leave_out = |skip: usize| -> Vec<&Share> {
            shares
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, s)| s)
                .collect()
        };
        let opening: Vec<usize> = (0..shares.len())
            .filter(|skip| open(&leave_out(*skip)).is_some())
            .collect();
        if let [wrong] = opening[..] {
            return Error::WrongShares(format!(
                "{} is not one of this Vault's unseal shares: the others open its keyring \
                 without it",
                shares[wrong].origin()
            ));
        }
        let secrets: Vec<Option<Zeroizing<Vec<u8>>>> = (0..shares.len())
            .map(|skip| shamir::combine(&leave_out(skip)).ok())
            .collect();
        let agree = secrets.windows(2).all(|w| w[0].is_some() && w[0] == w[1]);
        if agree {
            return self.storage.damaged(
                KEYRING,
                &format!(
                    "the {} shares agree with each other (they are one Vault's) but do not open \
                     the keyring: it was changed or damaged, or the shares are another Vault's",
                    shares.len()
                ),
            );
        }
        Error::WrongShares(format!(
            "the {} shares do not open core/keyring, and no one share left out makes them: \
             more than one of them is not this Vault's",
            shares.len()
        ))
    }
}

/// What [`OldVault::inspect`] found, and, once unsealed, the mounts and
/// transit keys ([`Unsealed::inspect`]). Never key material.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Inspection {
    /// The seal configuration.
    pub seal: SealConfig,
    /// Storage paths of transit policies (`logical/<uuid>/policy/<name>`),
    /// visible without the shares.
    pub stored_keys: Vec<String>,
    /// Files in the storage directory that hold secrets (Vault init
    /// output, tokens): named, never shown; they must not be copied on.
    pub secrets_found: Vec<String>,
    /// Every mount (with the shares).
    pub mounts: Vec<Mount>,
    /// Every transit key (with the shares).
    pub keys: Vec<KeyInfo>,
}

/// One entry of the mount tables.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Mount {
    /// Its path, e.g. `transit/`.
    pub path: String,
    /// The backend type, e.g. `transit`, `generic`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The storage prefix's UUID.
    pub uuid: String,
    /// Whether it is in the local table (`core/local-mounts`).
    pub local: bool,
}

#[derive(Deserialize)]
struct MountTable {
    #[serde(default)]
    entries: Vec<MountEntry>,
}

#[derive(Deserialize)]
struct MountEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    uuid: String,
    #[serde(default)]
    local: bool,
}

/// A transit key's public facts: no key material.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct KeyInfo {
    /// The mount it is in, e.g. `transit/`.
    pub mount: String,
    /// Its name.
    pub name: String,
    /// `aes256-gcm96` (the only type contexts use), or what it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The newest version.
    pub latest_version: u32,
    /// The oldest version that still decrypts.
    pub min_decryption_version: u32,
    /// Versions whose key the storage holds.
    pub versions: Vec<u32>,
    /// Whether each encryption derives a key from a context.
    pub derived: bool,
    /// How a derived key is derived (`None` when not derived).
    pub kdf: Option<Kdf>,
    /// Whether convergent encryption is on.
    pub convergent_encryption: bool,
    /// The convergent scheme: 1 takes the nonce from the caller and keeps
    /// it out of the ciphertext, 2 derives it (0.7's default); 0 when not
    /// convergent.
    pub convergent_version: u32,
    /// Whether the key may be exported (0.7's `encrypt` creates keys
    /// that may not).
    pub exportable: bool,
}

/// How a derived transit key's per-context key is made
/// (`helper/keysutil/policy.go`, `DeriveKey`, Vault 0.7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum Kdf {
    /// `kdf` 0: NIST SP 800-108 counter mode with HMAC-SHA256
    /// (`helper/kdf/kdf.go`, `CounterMode`), keys derived before 0.6.
    #[serde(rename = "hmac-sha256-counter")]
    HmacSha256Counter,
    /// `kdf` 1: HKDF-SHA256 with no salt and the context as info: what
    /// 0.7 gives every new derived key.
    #[serde(rename = "hkdf_sha256")]
    HkdfSha256,
}

impl Kdf {
    /// The 32-byte key `base` gives for `context`.
    pub(crate) fn derive(self, base: &[u8], context: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        match self {
            Kdf::HmacSha256Counter => {
                // One round: 256 bits from a 256-bit PRF. The input is the
                // counter (0), the context and the bit count, big endian.
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, base);
                let mut input = Vec::with_capacity(context.len() + 8);
                input.extend_from_slice(&0u32.to_be_bytes());
                input.extend_from_slice(context);
                input.extend_from_slice(&256u32.to_be_bytes());
                out.copy_from_slice(ring::hmac::sign(&key, &input).as_ref());
            }
            Kdf::HkdfSha256 => {
                struct Len32;
                impl ring::hkdf::KeyType for Len32 {
                    fn len(&self) -> usize {
                        32
                    }
                }
                // Go's hkdf with a nil salt uses a hash-length run of
                // zeros, which HMAC treats as the empty key.
                let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(base);
                let info = [context];
                prk.expand(&info, Len32)
                    .and_then(|okm| okm.fill(&mut out[..]))
                    .expect("32 bytes are within HKDF-SHA256's limit");
            }
        }
        out
    }
}

/// The barrier opened: the keyring in memory.
#[derive(Debug)]
pub struct Unsealed<'a> {
    vault: &'a OldVault,
    keyring: barrier::Keyring,
}

impl Unsealed<'_> {
    /// A value of the storage, decrypted (`None` when absent).
    pub fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        let storage = &self.vault.storage;
        let Some(sealed) = storage.get(path)? else {
            return Ok(None);
        };
        let header =
            barrier::Header::parse(&sealed).map_err(|detail| storage.damaged(path, &detail))?;
        let key = self.keyring.term(header.term).ok_or_else(|| {
            storage.damaged(
                path,
                &format!(
                    "encrypted under term {}, which the keyring lacks",
                    header.term
                ),
            )
        })?;
        barrier::open(path, key, &header, &sealed)
            .map(Some)
            .map_err(|detail| storage.damaged(path, &detail))
    }

    /// Every mount, from both mount tables.
    pub fn mounts(&self) -> Result<Vec<Mount>, Error> {
        let mut out = Vec::new();
        for path in MOUNT_TABLES {
            let Some(raw) = self.get(path)? else {
                continue;
            };
            let json =
                decompress(&raw).map_err(|detail| self.vault.storage.damaged(path, &detail))?;
            let table: MountTable = serde_json::from_slice(&json).map_err(|e| {
                self.vault
                    .storage
                    .damaged(path, &format!("not a mount table: {e}"))
            })?;
            out.extend(table.entries.into_iter().map(|e| Mount {
                path: e.path,
                kind: e.kind,
                uuid: e.uuid,
                local: e.local || path == "core/local-mounts",
            }));
        }
        Ok(out)
    }

    /// Every transit key of every transit mount.
    pub fn transit_keys(&self) -> Result<Vec<TransitKey>, Error> {
        let mut out = Vec::new();
        for mount in self.mounts()?.into_iter().filter(|m| m.kind == "transit") {
            if !storage::safe_segment(&mount.uuid) {
                return Err(self
                    .vault
                    .storage
                    .damaged("core/mounts", "a mount's uuid is not a plain name"));
            }
            let prefix = format!("logical/{}/", mount.uuid);
            for name in self.vault.storage.list(&format!("{prefix}policy/"))? {
                if name.ends_with('/') {
                    continue;
                }
                out.push(self.transit_key(&mount.path, &prefix, &name)?);
            }
        }
        Ok(out)
    }

    fn transit_key(&self, mount: &str, prefix: &str, name: &str) -> Result<TransitKey, Error> {
        let policy_path = format!("{prefix}policy/{name}");
        let archive_path = format!("{prefix}archive/{name}");
        let storage = &self.vault.storage;
        let policy = self
            .get(&policy_path)?
            .ok_or_else(|| storage.damaged(&policy_path, "missing"))?;
        let archive = self.get(&archive_path)?;
        let info: PolicyInfo<'_> = serde_json::from_slice(&policy)
            .map_err(|e| storage.damaged(&policy_path, &format!("not a transit policy: {e}")))?;
        let mut keys: BTreeMap<u32, Zeroizing<Vec<u8>>> = BTreeMap::new();
        if let Some(archive) = &archive {
            let parsed: Archive<'_> = serde_json::from_slice(archive).map_err(|e| {
                storage.damaged(&archive_path, &format!("not a transit archive: {e}"))
            })?;
            for (version, entry) in parsed.keys.iter().enumerate() {
                if let (Ok(version @ 1..), Some(key)) = (u32::try_from(version), entry.key) {
                    keys.insert(
                        version,
                        decode_key(key).map_err(|d| storage.damaged(&archive_path, &d))?,
                    );
                }
            }
        }
        for (version, entry) in &info.keys {
            let Ok(version) = version.parse::<u32>() else {
                return Err(storage.damaged(&policy_path, "a key version is not a number"));
            };
            if let Some(key) = entry.key {
                keys.insert(
                    version,
                    decode_key(key).map_err(|d| storage.damaged(&policy_path, &d))?,
                );
            }
        }
        let kind = match info.kind {
            0 => "aes256-gcm96",
            1 => "ecdsa-p256",
            2 => "ed25519",
            _ => "unknown",
        };
        let key_info = KeyInfo {
            mount: mount.to_owned(),
            name: info.name.unwrap_or(name).to_owned(),
            kind: kind.to_owned(),
            latest_version: info.latest_version,
            min_decryption_version: info.min_decryption_version,
            versions: keys.keys().copied().collect(),
            derived: info.derived,
            kdf: match (info.derived, info.kdf) {
                (false, _) => None,
                (true, 0) => Some(Kdf::HmacSha256Counter),
                (true, 1) => Some(Kdf::HkdfSha256),
                (true, other) => {
                    return Err(storage.damaged(
                        &policy_path,
                        &format!("kdf {other} is none Vault 0.7 knows"),
                    ));
                }
            },
            convergent_encryption: info.convergent_encryption,
            // keysutil.Policy.Upgrade: a convergent key without a version
            // is version 1.
            convergent_version: match (info.convergent_encryption, info.convergent_version) {
                (false, _) => 0,
                (true, 0) => 1,
                (true, v) => v,
            },
            exportable: info.exportable,
        };
        // The backup `transit/restore` takes: keysutil.KeyData, base64
        // JSON `{"policy": …, "archived_keys": …}`, built from the stored
        // bytes as they are (no re-encoding of key material).
        let mut blob = Zeroizing::new(Vec::with_capacity(
            policy.len() + archive.as_ref().map_or(4, |a| a.len()) + 40,
        ));
        blob.extend_from_slice(b"{\"policy\":");
        blob.extend_from_slice(&policy);
        blob.extend_from_slice(b",\"archived_keys\":");
        match &archive {
            Some(archive) => blob.extend_from_slice(archive),
            None => blob.extend_from_slice(b"null"),
        }
        blob.push(b'}');
        let mut backup = Zeroizing::new(String::new());
        base64::engine::general_purpose::STANDARD.encode_string(&*blob, &mut backup);
        Ok(TransitKey {
            info: key_info,
            keys,
            backup,
        })
    }

    /// [`OldVault::inspect`] with the mounts and transit keys.
    pub fn inspect(&self) -> Result<Inspection, Error> {
        let mut inspection = self.vault.inspect()?;
        inspection.mounts = self.mounts()?;
        inspection.keys = self.transit_keys()?.into_iter().map(|k| k.info).collect();
        Ok(inspection)
    }
}

#[derive(Deserialize)]
struct PolicyInfo<'a> {
    #[serde(borrow, default)]
    name: Option<&'a str>,
    #[serde(borrow, default)]
    keys: BTreeMap<String, KeyEntry<'a>>,
    #[serde(default)]
    derived: bool,
    #[serde(default)]
    kdf: u32,
    #[serde(default)]
    convergent_encryption: bool,
    #[serde(default)]
    convergent_version: u32,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    min_decryption_version: u32,
    #[serde(default)]
    latest_version: u32,
    #[serde(rename = "type", default)]
    kind: u32,
}

#[derive(Deserialize)]
struct KeyEntry<'a> {
    #[serde(borrow, default)]
    key: Option<&'a str>,
}

#[derive(Deserialize)]
struct Archive<'a> {
    #[serde(borrow, default)]
    keys: Vec<KeyEntry<'a>>,
}

fn decode_key(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut out = Zeroizing::new(Vec::new());
    base64::engine::general_purpose::STANDARD
        .decode_vec(text, &mut out)
        .map_err(|_| "a key is not base64".to_owned())?;
    Ok(out)
}

/// A stored table as `helper/compressutil` wrote it: 'G' + gzip, or plain
/// JSON (older tables); LZW ('L') is refused.
fn decompress(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    use std::io::Read as _;
    match raw.first() {
        Some(b'G') => {
            let mut out = Zeroizing::new(Vec::new());
            flate2::read::GzDecoder::new(&raw[1..])
                .take(MAX_MOUNT_TABLE + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("not gzip: {e}"))?;
            if out.len() as u64 > MAX_MOUNT_TABLE {
                return Err(format!(
                    "larger than {MAX_MOUNT_TABLE} bytes once decompressed"
                ));
            }
            Ok(out)
        }
        Some(b'{') => Ok(Zeroizing::new(raw.to_vec())),
        Some(b'L') => Err("LZW-compressed, which this reader does not read".to_owned()),
        _ => Err("neither JSON nor compressed JSON".to_owned()),
    }
}

/// One transit key of the old Vault, in memory: its facts, the raw key of
/// each version (to check a target against, never shown) and the backup
/// blob `transit/restore` takes.
pub struct TransitKey {
    /// Its public facts.
    pub info: KeyInfo,
    keys: BTreeMap<u32, Zeroizing<Vec<u8>>>,
    backup: Zeroizing<String>,
}

impl std::fmt::Debug for TransitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl TransitKey {
    /// The backup blob (`transit/restore/<name>`'s `backup`): base64 of
    /// `{"policy", "archived_keys"}`. Holds the key material.
    pub fn backup(&self) -> &str {
        &self.backup
    }

    /// The raw key of `version`, if the storage holds it.
    pub(crate) fn version_key(&self, version: u32) -> Option<&[u8]> {
        self.keys.get(&version).map(|k| k.as_slice())
    }
}

impl ha_plan::Document for Inspection {
    fn to_text(&self) -> String {
        let s = &self.seal;
        let mut text = format!(
            "seal: {} — {} shares, {} needed, {} stored by Vault{}\n",
            if s.seal_type.is_empty() {
                "shamir"
            } else {
                &s.seal_type
            },
            s.secret_shares,
            s.secret_threshold,
            s.stored_shares,
            if s.pgp_encrypted {
                ", PGP-encrypted to their holders"
            } else {
                ""
            }
        );
        for secret in &self.secrets_found {
            text.push_str(&format!(
                "warning: {secret} in the storage directory holds secrets (Vault init output or \
                 a token): do not copy it anywhere; delete it once the migration is done\n"
            ));
        }
        for mount in &self.mounts {
            text.push_str(&format!(
                "mount {:<16} {}{}\n",
                mount.path,
                mount.kind,
                if mount.local { " (local)" } else { "" }
            ));
        }
        for key in &self.keys {
            text.push_str(&format!(
                "transit key {}{}: {}, versions {:?} (latest {}, decrypts from {}){}{}{}\n",
                key.mount,
                key.name,
                key.kind,
                key.versions,
                key.latest_version,
                key.min_decryption_version,
                match key.kdf {
                    Some(Kdf::HmacSha256Counter) => ", derived (hmac-sha256-counter)",
                    Some(Kdf::HkdfSha256) => ", derived (hkdf_sha256)",
                    None => "",
                },
                if key.convergent_encryption {
                    ", convergent"
                } else {
                    ""
                },
                if key.exportable {
                    ", exportable"
                } else {
                    ", not exportable"
                },
            ));
        }
        if self.keys.is_empty() {
            for path in &self.stored_keys {
                text.push_str(&format!(
                    "transit key stored at {path} (give the shares to read it)\n"
                ));
            }
        }
        text.push_str(&format!(
            "vault-transit: {} transit key(s) found\n",
            self.keys.len().max(self.stored_keys.len())
        ));
        text
    }
}
