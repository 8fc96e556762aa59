//! API tokens: how they are made and how they are stored in the config.
//!
//! A token is `hkd_` followed by 64 lowercase hex digits (32 random bytes from
//! the operating system). The config never holds a token, only the lowercase
//! hex SHA-256 of the whole token string, prefix included, so a leaked config
//! file does not leak credentials.

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Every token starts with this, so that tokens are easy to recognise in logs
/// and by secret scanners.
pub const TOKEN_PREFIX: &str = "hkd_";

/// Random bytes in a token.
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// The operating system could not provide random bytes.
#[derive(Debug, Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError(#[source] rand::Error);

/// Lowercase hex SHA-256 of `token` (the whole string, prefix included): the
/// value that goes in `auth.tokens[].sha256`.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Builds a token from its random bytes. Deterministic, for tests.
pub fn token_from_bytes(bytes: &[u8; TOKEN_RANDOM_BYTES]) -> String {
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 2 * TOKEN_RANDOM_BYTES);
    token.push_str(TOKEN_PREFIX);
    token.push_str(&hex::encode(bytes));
    token
}

/// A new token from 32 bytes of operating-system randomness.
pub fn new_token() -> Result<String, RandomError> {
    random_token(TOKEN_PREFIX)
}

/// `prefix` and 64 lowercase hex digits from 32 bytes of operating-system randomness (API
/// tokens, and the app portal's `hkp_` tokens).
pub fn random_token(prefix: &str) -> Result<String, RandomError> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    OsRng.try_fill_bytes(&mut bytes).map_err(RandomError)?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            token_sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_layout() {
        let token = token_from_bytes(&[0xab; TOKEN_RANDOM_BYTES]);
        assert_eq!(token, format!("hkd_{}", "ab".repeat(32)));
        assert_eq!(token.len(), 68);
    }

    #[test]
    fn new_tokens_are_well_formed_and_differ() {
        let a = new_token().expect("os randomness");
        let b = new_token().expect("os randomness");
        assert_ne!(a, b);
        for token in [&a, &b] {
            let hex_part = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
            assert_eq!(hex_part.len(), 64);
            assert!(hex_part
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
    }
}
