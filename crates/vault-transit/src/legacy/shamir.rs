//! Shamir's secret sharing over GF(2⁸) as Vault 0.7 does it
//! (`shamir/shamir.go`): the field is AES's (x⁸ + x⁴ + x³ + x + 1); each
//! share is the values of one random polynomial per secret byte, followed
//! by one byte, the share's x coordinate; the secret is every polynomial's
//! value at 0 (Lagrange interpolation).

use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::Error;

/// One unseal share, in memory only (zeroised when dropped); `Debug`
/// shows where it came from, never its bytes.
pub struct Share {
    bytes: Zeroizing<Vec<u8>>,
    origin: String,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share({})", self.origin)
    }
}

impl Share {
    /// A share as `vault init` printed it: hex (0.7), or base64
    /// (`unseal_keys_b64`); an `Unseal Key N:` prefix is dropped.
    /// `origin` says where it came from (a file name, `stdin line 2`), for
    /// messages.
    pub fn parse(text: &str, origin: &str) -> Result<Share, Error> {
        Share::parse_inner(text, origin)
    }

    /// Every share in `dir`: the files named `unseal-key-*`, in name order,
    /// one share each. A file others may read (any group or other mode
    /// bit) is refused before any is read — an unseal share is kept 0600 —
    /// as is a directory without such files.
    pub fn read_dir(dir: &std::path::Path) -> Result<Vec<Share>, Error> {
        use std::os::unix::fs::PermissionsExt as _;
        let unreadable =
            |e: std::io::Error| Error::Shares(format!("{}: cannot read it: {e}", dir.display()));
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("unseal-key-"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Shares(format!(
                "{}: no unseal-key-N file in it",
                dir.display()
            )));
        }
        for path in &files {
            let mode = std::fs::metadata(path)
                .map_err(unreadable)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(Error::Shares(format!(
                    "{} may be read by others (mode {:o}): an unseal share must be 0600 \
                     (chmod 600 it, and ask who else could have read it)",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        files
            .iter()
            .map(|path| {
                let text =
                    zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(unreadable)?);
                Share::parse(&text, &path.display().to_string())
            })
            .collect()
    }

    fn parse_inner(text: &str, origin: &str) -> Result<Share, Error> {
        use base64::Engine as _;
        let text = text.trim();
        let text = match text.split_once(':') {
            Some((label, rest)) if label.starts_with("Unseal Key") => rest.trim(),
            _ => text,
        };
        let bad = || {
            Error::Shares(format!(
                "{origin} is not an unseal share (hex as `vault init` printed it, or base64)"
            ))
        };
        let bytes = if !text.is_empty()
            && text.len() % 2 == 0
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
            for pair in text.as_bytes().chunks(2) {
                let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(pair[0]) << 4 | digit(pair[1]));
            }
            out
        } else {
            let mut out = Zeroizing::new(Vec::new());
            base64::engine::general_purpose::STANDARD
                .decode_vec(text, &mut out)
                .map_err(|_| bad())?;
            out
        };
        if bytes.len() < 2 || bytes.len() > 257 {
            return Err(bad());
        }
        Ok(Share {
            bytes,
            origin: origin.to_owned(),
        })
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn x(&self) -> u8 {
        self.bytes[self.bytes.len() - 1]
    }
}

/// Every share the same length, every x coordinate distinct and not 0.
pub(crate) fn check(shares: &[Share]) -> Result<(), Error> {
    let Some(first) = shares.first() else {
        return Err(Error::Shares("no unseal share given".to_owned()));
    };
    for (i, share) in shares.iter().enumerate() {
        if share.bytes.len() != first.bytes.len() {
            return Err(Error::Shares(format!(
                "{} is {} bytes and {} is {}: shares of one Vault are all the same length",
                share.origin,
                share.bytes.len(),
                first.origin,
                first.bytes.len()
            )));
        }
        if share.x() == 0 {
            return Err(Error::Shares(format!(
                "{} is not an unseal share",
                share.origin
            )));
        }
        if let Some(other) = shares[..i].iter().find(|s| s.x() == share.x()) {
            return Err(Error::Shares(format!(
                "{} and {} are the same share (give each holder's once)",
                other.origin, share.origin
            )));
        }
    }
    Ok(())
}

struct Tables {
    exp: [u8; 510],
    log: [u8; 256],
}

/// exp/log tables of the generator 3 (a generator of the AES field's
/// multiplicative group; any generator gives the same products).
fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut exp = [0u8; 510];
        let mut log = [0u8; 256];
        let mut x: u8 = 1;
        for (i, slot) in exp.iter_mut().enumerate().take(255) {
            *slot = x;
            log[usize::from(x)] = u8::try_from(i).unwrap_or(0);
            // x * 3 = x * 2 + x, reduced by the AES polynomial.
            let doubled = (x << 1) ^ if x & 0x80 != 0 { 0x1b } else { 0 };
            x ^= doubled;
        }
        for i in 255..510 {
            exp[i] = exp[i - 255];
        }
        Tables { exp, log }
    })
}

fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    let t = tables();
    t.exp[usize::from(t.log[usize::from(a)]) + usize::from(t.log[usize::from(b)])]
}

fn div(a: u8, b: u8) -> u8 {
    if a == 0 {
        return 0;
    }
    let t = tables();
    // b != 0: the x coordinates are distinct, so no difference is 0.
    t.exp[usize::from(t.log[usize::from(a)]) + 255 - usize::from(t.log[usize::from(b)])]
}

/// The secret `shares` (at least two, checked with [`check`]) combine to.
pub(crate) fn combine(shares: &[&Share]) -> Result<Zeroizing<Vec<u8>>, Error> {
    if shares.len() < 2 {
        return Err(Error::Shares(
            "at least two unseal shares are needed".to_owned(),
        ));
    }
    let len = shares[0].bytes.len() - 1;
    let xs: Vec<u8> = shares.iter().map(|s| s.x()).collect();
    // The Lagrange basis at 0 for each share: ∏_{j≠i} x_j / (x_i + x_j).
    let basis: Vec<u8> = (0..shares.len())
        .map(|i| {
            (0..shares.len())
                .filter(|j| *j != i)
                .fold(1u8, |acc, j| mul(acc, div(xs[j], xs[i] ^ xs[j])))
        })
        .collect();
    let mut secret = Zeroizing::new(vec![0u8; len]);
    for (idx, byte) in secret.iter_mut().enumerate() {
        *byte = shares
            .iter()
            .zip(&basis)
            .fold(0u8, |acc, (share, b)| acc ^ mul(share.bytes[idx], *b));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_vaults() {
        // shamir/tables.go's logTable (generator 0xe5) starts 0x00, 0xff,
        // 0xc8, 0x08: 0xe5^0xc8 = 2 and 0xe5^0x08 = 3.
        let pow = |mut n: u32| {
            let mut out = 1u8;
            while n > 0 {
                out = mul(out, 0xe5);
                n -= 1;
            }
            out
        };
        assert_eq!(pow(0xc8), 2);
        assert_eq!(pow(0x08), 3);
        for a in 1..=255u8 {
            assert_eq!(mul(div(1, a), a), 1, "{a}");
        }
    }

    #[test]
    fn shares_combine_to_the_secret_and_are_checked() {
        // Two shares of the secret [0x42] on the line y = 0x42 + 7x:
        // x = 1 → 0x42 ^ 7 = 0x45; x = 2 → 0x42 ^ mul(7, 2) = 0x42 ^ 0x0e.
        let one = Share::parse("4501", "one").unwrap();
        let two = Share::parse(&format!("{:02x}02", 0x42 ^ 0x0e), "two").unwrap();
        assert_eq!(*combine(&[&one, &two]).unwrap(), vec![0x42]);
        let dup = Share::parse("4501", "dup").unwrap();
        let err = check(&[one, dup]).unwrap_err().to_string();
        assert!(err.contains("one and dup are the same share"), "{err}");
        assert!(Share::parse("zz", "bad").is_err());
        let labelled = Share::parse("Unseal Key 1: 4501", "file").unwrap();
        assert_eq!(labelled.x(), 1);
    }
}
