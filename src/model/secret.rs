//! The text forms of signing secrets, as Svix and Standard Webhooks write them (base64 with
//! the standard alphabet, padded):
//!
//! - `whsec_` + the key bytes: a shared HMAC-SHA256 key (signatures `v1`);
//! - `whsk_` + the 32-byte ed25519 seed and the 32-byte public key (signatures `v1a`), and
//!   `whpk_` + the public key alone, what a receiver verifies with. A bare 32-byte seed is
//!   accepted on import; a 64-byte key whose public half is not the seed's is refused.
//!
//! An endpoint keeps its keys as bytes: an ed25519 key is stored as its 64 bytes (seed, then
//! public key), which is also how it is told from an HMAC key: 64 bytes whose second half is
//! the public key of the first. No HMAC key written through hookd is such a pair (a `whsec_`
//! that is one is refused: write it `whsk_`), and a random one is one with odds of 2^-256.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::{engine::general_purpose::STANDARD as B64, Engine};

/// Prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Accepted decoded sizes of a secret brought by a client (as Svix).
pub const SECRET_BYTES_MIN: usize = 24;
pub const SECRET_BYTES_MAX: usize = 75;

/// Why a secret's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad secret: {0}")]
pub struct BadSecret(pub String);

/// Decodes `whsec_<base64>` (or bare base64) to the key bytes.
pub fn parse_secret(s: &str) -> Result<Vec<u8>, BadSecret> {
    let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
    let key = B64
        .decode(b64)
        .map_err(|e| BadSecret(format!("not base64 after {SECRET_PREFIX}: {e}")))?;
    if (SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
        Ok(key)
    } else {
        Err(BadSecret(format!(
            "must decode to {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, got {}",
            key.len()
        )))
    }
}

/// The text form of a key: `whsec_` + base64.
pub fn format_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// Prefix of an ed25519 signing key's text form (seed and public key).
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// Prefix of an ed25519 public key's text form.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Bytes of an ed25519 seed, and of its public key.
pub const ED25519_HALF: usize = 32;

/// The ed25519 key pair that stored key `key` is, if it is one (see the module doc).
pub fn ed25519_pair(key: &[u8]) -> Option<Ed25519KeyPair> {
    if key.len() != 2 * ED25519_HALF {
        return None;
    }
    let (seed, public) = key.split_at(ED25519_HALF);
    Ed25519KeyPair::from_seed_and_public_key(seed, public).ok()
}

/// The stored form (seed, then public key) of the ed25519 key with seed `seed`.
pub fn ed25519_from_seed(seed: &[u8; ED25519_HALF]) -> Vec<u8> {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("any 32 bytes are a seed");
    let mut key = seed.to_vec();
    key.extend_from_slice(pair.public_key().as_ref());
    key
}

/// Decodes a secret as an endpoint keeps it: `whsec_` (or bare base64) for HMAC, `whsk_` for
/// ed25519 (64 bytes, or a 32-byte seed whose public key is derived).
pub fn parse_endpoint_secret(s: &str) -> Result<Vec<u8>, BadSecret> {
    let Some(b64) = s.strip_prefix(SIGNING_KEY_PREFIX) else {
        let key = parse_secret(s)?;
        if ed25519_pair(&key).is_some() {
            return Err(BadSecret(format!(
                "this is an ed25519 key (seed and public key): write it {SIGNING_KEY_PREFIX}"
            )));
        }
        return Ok(key);
    };
    let key = B64
        .decode(b64)
        .map_err(|e| BadSecret(format!("not base64 after {SIGNING_KEY_PREFIX}: {e}")))?;
    match key.len() {
        ED25519_HALF => {
            let seed: [u8; ED25519_HALF] = key.try_into().expect("length checked");
            Ok(ed25519_from_seed(&seed))
        }
        n if n == 2 * ED25519_HALF => match ed25519_pair(&key) {
            Some(_) => Ok(key),
            None => Err(BadSecret(
                "the second half of an ed25519 key must be the public key of its first".into(),
            )),
        },
        n => Err(BadSecret(format!(
            "an ed25519 key is 32 bytes (the seed) or 64 (seed and public key), got {n}"
        ))),
    }
}

/// What a receiver verifies with: `whpk_` + the public key for an ed25519 key, the `whsec_`
/// secret itself for an HMAC key.
pub fn verification_key(key: &[u8]) -> String {
    match ed25519_pair(key) {
        Some(pair) => format!(
            "{PUBLIC_KEY_PREFIX}{}",
            B64.encode(pair.public_key().as_ref())
        ),
        None => format_secret(key),
    }
}

/// Decodes `whpk_` + base64 of a 32-byte ed25519 public key.
pub fn parse_public_key(s: &str) -> Result<[u8; ED25519_HALF], BadSecret> {
    let b64 = s
        .strip_prefix(PUBLIC_KEY_PREFIX)
        .ok_or_else(|| BadSecret(format!("an ed25519 public key starts {PUBLIC_KEY_PREFIX}")))?;
    let key = B64
        .decode(b64)
        .map_err(|e| BadSecret(format!("not base64 after {PUBLIC_KEY_PREFIX}: {e}")))?;
    key.try_into().map_err(|k: Vec<u8>| {
        BadSecret(format!(
            "an ed25519 public key is 32 bytes, got {}",
            k.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = include_str!("../../tests/vectors/standard-webhooks-v1a.json");

    /// The text form of a stored key: `whsk_` for an ed25519 key, `whsec_` for an HMAC key.
    fn format_endpoint_secret(key: &[u8]) -> String {
        match ed25519_pair(key) {
            Some(_) => format!("{SIGNING_KEY_PREFIX}{}", B64.encode(key)),
            None => format_secret(key),
        }
    }

    fn vector() -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(VECTOR).unwrap();
        let v = &v["vectors"][0];
        (
            v["secret_key"].as_str().unwrap().to_owned(),
            v["public_key"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn ed25519_keys_round_trip_and_show_their_public_key() {
        let (secret, public) = vector();
        let key = parse_endpoint_secret(&secret).unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(format_endpoint_secret(&key), secret);
        assert_eq!(verification_key(&key), public);
        assert_eq!(parse_public_key(&public).unwrap(), key[32..]);
        // The seed alone gives the same key.
        let seed = format!("{SIGNING_KEY_PREFIX}{}", B64.encode(&key[..32]));
        assert_eq!(parse_endpoint_secret(&seed).unwrap(), key);
    }

    #[test]
    fn inconsistent_or_misfiled_keys_are_refused() {
        let (secret, _) = vector();
        let mut key = parse_endpoint_secret(&secret).unwrap();
        // The same pair written as an HMAC secret.
        assert!(parse_endpoint_secret(&format_secret(&key)).is_err());
        key[63] ^= 1;
        let bad = format!("{SIGNING_KEY_PREFIX}{}", B64.encode(&key));
        assert!(parse_endpoint_secret(&bad)
            .unwrap_err()
            .0
            .contains("public key"));
        let short = format!("{SIGNING_KEY_PREFIX}{}", B64.encode([7u8; 40]));
        assert!(parse_endpoint_secret(&short).is_err());
        assert!(parse_endpoint_secret("whsk_!!").is_err());
        // HMAC keys stay HMAC keys, 64 bytes included.
        let hmac = parse_endpoint_secret(&format_secret(&[9u8; 64])).unwrap();
        assert_eq!(format_endpoint_secret(&hmac), format_secret(&[9u8; 64]));
        assert!(parse_public_key("whpk_AAAA").is_err());
    }
}
