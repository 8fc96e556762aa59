//! The text form of a signing secret: `whsec_` + base64 (standard alphabet, padded) of the
//! key bytes, as Svix and Standard Webhooks write it.

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
