//! SCRAM-SHA-1 as MongoDB 3.x speaks it (RFC 5802; MongoDB's
//! `src/mongo/client/sasl_scram_client_conversation.cpp` and
//! `native_sasl_client_session`): the password is first digested as
//! `hex(md5("<user>:mongo:<password>"))`, then salted with PBKDF2-HMAC-SHA1.
//! The server's signature is checked, so a server that does not know the
//! password cannot pass for the source; a server asking for absurd work
//! (iterations, salt or nonce sizes) is refused before the work is done.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::Digest as _;
use ring::{digest, hmac, pbkdf2};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

/// Fewest iterations accepted (mongod's `scramIterationCount` minimum).
const MIN_ITERATIONS: u32 = 4096;
/// Most iterations accepted: 100 times mongod's default of 10,000, a few
/// seconds of work; more is a server making the client spin.
const MAX_ITERATIONS: u32 = 1_000_000;

/// The client's side of one conversation.
pub struct Conversation {
    nonce: String,
    first_bare: String,
    salted: Option<Zeroizing<[u8; 20]>>,
    auth_message: String,
}

/// Why a conversation failed.
#[derive(Debug, PartialEq, Eq)]
pub struct ScramError(pub String);

fn fail<T>(what: impl Into<String>) -> Result<T, ScramError> {
    Err(ScramError(what.into()))
}

/// `,` and `=` escaped as RFC 5802 says for a user name.
fn escape_user(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The fields `a=value` of a SCRAM message.
fn fields(message: &str) -> impl Iterator<Item = (char, &str)> {
    message.split(',').filter_map(|field| {
        let mut chars = field.chars();
        let key = chars.next()?;
        field.get(1..)?.strip_prefix('=').map(|value| (key, value))
    })
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 20];
    out.copy_from_slice(tag.as_ref());
    out
}

impl Conversation {
    /// Starts a conversation for `user` with a client nonce (24 random
    /// bytes, base64); returns it and the client-first message.
    pub fn start(user: &str, nonce: &[u8]) -> (Conversation, String) {
        let nonce = STANDARD.encode(nonce);
        let first_bare = format!("n={},r={nonce}", escape_user(user));
        let message = format!("n,,{first_bare}");
        (
            Conversation {
                nonce,
                first_bare,
                salted: None,
                auth_message: String::new(),
            },
            message,
        )
    }

    /// Answers the server-first message with the client-final one
    /// (holding the proof).
    pub fn answer(
        &mut self,
        user: &str,
        password: &SecretString,
        server_first: &[u8],
    ) -> Result<String, ScramError> {
        let Ok(server_first) = std::str::from_utf8(server_first) else {
            return fail("the server's first message is not UTF-8");
        };
        if server_first.len() > 4096 {
            return fail(format!(
                "the server's first message is {} bytes long",
                server_first.len()
            ));
        }
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for (key, value) in fields(server_first) {
            match key {
                'r' => nonce = Some(value),
                's' => salt = Some(value),
                'i' => iterations = Some(value),
                'm' => return fail("the server asks for a SCRAM extension (m=)"),
                'e' => return fail(format!("the server refused: {value}")),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return fail("the server's first message lacks its nonce, salt or iteration count");
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return fail("the server's nonce does not extend the client's");
        }
        let Ok(salt) = STANDARD.decode(salt) else {
            return fail("the server's salt is not base64");
        };
        let iterations: u32 = match iterations.parse() {
            Ok(i) if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&i) => i,
            _ => {
                return fail(format!(
                    "the server asks for {iterations} iterations (accepted: {MIN_ITERATIONS} to {MAX_ITERATIONS})"
                ));
            }
        };
        // MongoDB's SCRAM-SHA-1 password: the legacy digest, in hex.
        let mut md5 = md5::Md5::new();
        md5.update(user.as_bytes());
        md5.update(b":mongo:");
        md5.update(password.expose_secret().as_bytes());
        let digest = Zeroizing::new(
            md5.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
        let mut salted = Zeroizing::new([0u8; 20]);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA1,
            std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN),
            &salt,
            digest.as_bytes(),
            &mut salted[..],
        );
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let client_key = Zeroizing::new(hmac_sha1(&salted[..], b"Client Key"));
        let stored_key = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &client_key[..]);
        let signature = hmac_sha1(stored_key.as_ref(), self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        self.salted = Some(salted);
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks the server-final message's signature.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let Some(salted) = &self.salted else {
            return fail("the server ended the conversation early");
        };
        let Ok(server_final) = std::str::from_utf8(server_final) else {
            return fail("the server's final message is not UTF-8");
        };
        let mut signature = None;
        for (key, value) in fields(server_final) {
            match key {
                'v' => signature = Some(value),
                'e' => return fail(format!("the server refused: {value}")),
                _ => {}
            }
        }
        let Some(Ok(signature)) = signature.map(|s| STANDARD.decode(s)) else {
            return fail("the server's final message has no signature");
        };
        let server_key = hmac_sha1(&salted[..], b"Server Key");
        let expected = hmac_sha1(&server_key, self.auth_message.as_bytes());
        // Not secret: the signature proves the server knows the password.
        if signature != expected {
            return fail("the server's signature is wrong: it does not know the user's password");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example conversation from MongoDB's own SCRAM-SHA-1 test
    /// (`sasl_scram_sha1_client_conversation` in the auth spec's
    /// `tests/README`: user `user`, password `pencil`, client nonce
    /// `fyko+d2lbbFgONRv9qkxdawL`).
    #[test]
    fn the_specs_example_conversation() {
        let nonce = STANDARD.decode("fyko+d2lbbFgONRv9qkxdawL").unwrap();
        let (mut conversation, first) = Conversation::start("user", &nonce);
        assert_eq!(first, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let server_first =
            b"r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=rQ9ZY3MntBeuP3E1TDVC4w==,i=10000";
        let final_message = conversation
            .answer("user", &SecretString::from("pencil"), server_first)
            .unwrap();
        assert_eq!(
            final_message,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY="
        );
        conversation
            .verify(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=")
            .unwrap();
        assert!(
            conversation
                .verify(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9e1=")
                .is_err()
        );
    }

    #[test]
    fn a_server_asking_for_absurd_work_or_another_nonce_is_refused() {
        let (mut c, _) = Conversation::start("u", b"abc");
        let p = SecretString::from("p");
        let too_many = b"r=YWJjxyz,s=c2FsdA==,i=4000000000";
        assert!(
            c.answer("u", &p, too_many)
                .unwrap_err()
                .0
                .contains("iterations")
        );
        assert!(c.answer("u", &p, b"r=other,s=c2FsdA==,i=10000").is_err());
        assert!(c.answer("u", &p, b"r=YWJj,s=c2FsdA==,i=10000").is_err());
        assert!(c.verify(b"v=AAAA").is_err(), "no answer yet");
        assert_eq!(escape_user("a=b,c"), "a=3Db=2Cc");
    }
}
