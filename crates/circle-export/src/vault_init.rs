//! Vault init output in the old contexts-Vault data directory.
//!
//! CircleCI's Vault container writes the output of `vault init` — every
//! unseal key share and the initial root token, in plain text — into a
//! file inside its data directory. An archive carrying that file lets
//! whoever holds it unseal the old storage and read every context secret.
//! It also keeps the root token alone in `client-token`. Export leaves
//! such files out unless told otherwise, and verify reports an archive
//! that carries one.

/// Bytes of a file read to decide (init output is small and comes first).
pub const SCAN_LIMIT: usize = 1 << 20;

/// Whether `bytes` look like `vault init` / `vault operator init` output:
/// `Unseal Key N: …`, `Initial Root Token: …` (text), or
/// `"unseal_keys_b64"`, `"unseal_keys_hex"`, `"root_token"` (JSON).
pub fn holds_init_output(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SCAN_LIMIT)]).to_lowercase();
    let text_form = text.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("initial root token:")
            || line
                .strip_prefix("unseal key ")
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    text_form
        || text.contains("\"unseal_keys_b64\"")
        || text.contains("\"unseal_keys_hex\"")
        || (text.contains("\"root_token\"") && text.contains("\"keys\""))
}

/// Names of the files CircleCI's Vault container keeps a Vault token in
/// (the root token, for the services to read): secret by name, whatever
/// they hold.
pub const TOKEN_FILES: [&str; 2] = ["client-token", "root-token"];

/// Whether the file at `path` (a storage-relative or archive path) is one
/// of [`TOKEN_FILES`].
pub fn is_token_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    TOKEN_FILES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::{holds_init_output, is_token_file};

    #[test]
    fn token_files_are_known_by_name() {
        assert!(is_token_file("vault-data/client-token"));
        assert!(is_token_file("root-token"));
        assert!(!is_token_file("vault-data/core/_keyring"));
        assert!(!is_token_file("vault-data/client-token.bak"));
    }

    #[test]
    fn init_output_in_text_and_json_is_recognised_and_storage_is_not() {
        assert!(holds_init_output(
            b"Unseal Key 1: abc\nUnseal Key 2: def\nInitial Root Token: s.xyz\n"
        ));
        assert!(holds_init_output(b"Initial Root Token: 1234\n"));
        assert!(holds_init_output(
            br#"{"unseal_keys_b64":["a"],"unseal_keys_hex":["b"],"root_token":"s.x"}"#
        ));
        assert!(!holds_init_output(
            b"{\"Key\":\"core/keyring\",\"Value\":\"AAAA\"}"
        ));
        assert!(!holds_init_output(b"\x00\x01binary storage"));
        assert!(!holds_init_output(b"the unseal key is kept elsewhere\n"));
    }
}
