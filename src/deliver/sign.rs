//! Standard Webhooks signatures (version `v1`, HMAC-SHA256).
//!
//! The signed content is `{msg_id}.{timestamp}.{body}`: the message id, the attempt's unix
//! seconds in decimal, and the body bytes exactly as sent. Each key is the raw bytes of a secret,
//! which is written `whsec_` + base64 (standard alphabet, padded). The `webhook-signature` value
//! is one `v1,<base64 of the 32-byte MAC>` entry per valid key, separated by single spaces, in
//! the order the keys are given: the current key first, then older keys still in their rotation
//! grace. A receiver accepts the message if any `v1` entry matches and ignores other versions.
//!
//! A [`Signer`] keys one HMAC state per key once, per endpoint key set, and clones it for each
//! signature, so a delivery costs no key setup and one allocation (the header value).
//!
//! [`legacy_header`] signs in another provider's scheme (GitHub, Stripe, a generic HMAC), for
//! endpoints whose receivers still check those (`crate::model::legacy`).

use std::fmt::{self, Write as _};
use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use storage::state::{LegacySignature, SigningKey};

type HmacSha256 = Hmac<Sha256>;

pub use crate::model::secret::{format_secret, SECRET_BYTES_MAX, SECRET_BYTES_MIN, SECRET_PREFIX};

const VERSION_PREFIX: &str = "v1,";
/// Base64 (padded) length of a 32-byte HMAC-SHA256 output.
const MAC_B64_BYTES: usize = 44;
const _: () = assert!(MAC_B64_BYTES == 32usize.div_ceil(3) * 4);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("no signing key is valid")]
    NoKeys,
    #[error("bad secret: {0}")]
    BadSecret(String),
}

/// The prepared signing states of one endpoint's valid keys, current key first.
#[derive(Clone)]
pub struct Signer {
    macs: Vec<Key>,
}

/// One prepared key: an HMAC state (`v1`) or an ed25519 key pair (`v1a`).
#[derive(Clone)]
enum Key {
    Hmac(HmacSha256),
    Ed25519(Arc<Ed25519KeyPair>),
}

/// The entry prefix of an ed25519 signature.
const V1A_PREFIX: &str = "v1a,";
/// Base64 (padded) length of a 64-byte ed25519 signature.
const SIG_B64_BYTES: usize = 88;
const _: () = assert!(SIG_B64_BYTES == 64usize.div_ceil(3) * 4);

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Signer")
            .field("keys", &self.macs.len())
            .finish()
    }
}

impl Signer {
    /// Keys are raw (decoded) bytes, current key first. At least one is required.
    pub fn new(keys: &[&[u8]]) -> Result<Signer, SignError> {
        if keys.is_empty() {
            return Err(SignError::NoKeys);
        }
        let macs = keys
            .iter()
            .map(|k| match crate::model::secret::ed25519_pair(k) {
                Some(pair) => Key::Ed25519(Arc::new(pair)),
                None => Key::Hmac(keyed(k)),
            })
            .collect();
        Ok(Signer { macs })
    }

    /// The endpoint's keys that still sign at `now_ms`: no expiry, or an expiry after `now_ms`.
    pub fn from_endpoint(secrets: &[SigningKey], now_ms: u64) -> Result<Signer, SignError> {
        let valid: Vec<&[u8]> = secrets
            .iter()
            .filter(|k| k.expires_ms.is_none_or(|t| t > now_ms))
            .map(|k| k.key.as_slice())
            .collect();
        Signer::new(&valid)
    }

    /// The full `webhook-signature` header value: one entry per key, `v1,` for an HMAC key,
    /// `v1a,` for an ed25519 key.
    pub fn sign(&self, msg_id: &str, timestamp: u64, body: &[u8]) -> String {
        let len = self
            .macs
            .iter()
            .map(|k| match k {
                Key::Hmac(_) => VERSION_PREFIX.len() + MAC_B64_BYTES + 1,
                Key::Ed25519(_) => V1A_PREFIX.len() + SIG_B64_BYTES + 1,
            })
            .sum::<usize>()
            - 1;
        let mut out = String::with_capacity(len);
        for (i, key) in self.macs.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            match key {
                Key::Hmac(mac) => {
                    out.push_str(VERSION_PREFIX);
                    let tag = content(mac.clone(), msg_id, timestamp, body).finalize();
                    B64.encode_string(tag.into_bytes(), &mut out);
                }
                Key::Ed25519(pair) => {
                    out.push_str(V1A_PREFIX);
                    let signed = pair.sign(&signed_content(msg_id, timestamp, body));
                    B64.encode_string(signed.as_ref(), &mut out);
                }
            }
        }
        debug_assert_eq!(out.len(), len);
        out
    }
}

/// The header (name, value) that `sig` adds to a delivery of `body` at `timestamp` (Unix
/// seconds): GitHub's `sha256=<hex>` of the body, Stripe's `t=<timestamp>,v1=<hex>` of
/// `<timestamp>.<body>`, or the generic scheme's prefix and hex or base64 of the body, each an
/// HMAC-SHA256 keyed with the secret's bytes as given.
pub fn legacy_header<'a>(
    sig: &'a LegacySignature,
    timestamp: u64,
    body: &[u8],
) -> (&'a str, String) {
    let mac = |secret: &[u8], parts: &[&[u8]]| {
        let mut mac = keyed(secret);
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes()
    };
    let name = crate::model::legacy::header_of(sig);
    let value = match sig {
        LegacySignature::GitHub { secret } => {
            format!("sha256={}", hex::encode(mac(secret, &[body])))
        }
        LegacySignature::Stripe { secret } => {
            let t = timestamp.to_string();
            let tag = mac(secret, &[t.as_bytes(), b".", body]);
            format!("t={t},v1={}", hex::encode(tag))
        }
        LegacySignature::Hmac {
            secret,
            base64,
            prefix,
            ..
        } => {
            let tag = mac(secret, &[body]);
            let mut out = prefix.clone();
            match base64 {
                true => B64.encode_string(tag, &mut out),
                false => out.push_str(&hex::encode(tag)),
            }
            out
        }
    };
    (name, value)
}

/// True if any `v1` entry of `header` is the MAC of the content under `secret` (compared in
/// constant time). Other versions and malformed entries are ignored.
pub fn verify(secret: &[u8], msg_id: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
    let mac = content(keyed(secret), msg_id, timestamp, body);
    header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix(VERSION_PREFIX))
        .filter_map(|b64| B64.decode(b64).ok())
        .any(|tag| mac.clone().verify_slice(&tag).is_ok())
}

/// True if any `v1a` entry of `header` is an ed25519 signature of the content by the key
/// whose public half is `public_key`. Other versions and malformed entries are ignored.
pub fn verify_v1a(
    public_key: &[u8],
    msg_id: &str,
    timestamp: u64,
    body: &[u8],
    header: &str,
) -> bool {
    let key = UnparsedPublicKey::new(&ED25519, public_key);
    let signed = signed_content(msg_id, timestamp, body);
    header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix(V1A_PREFIX))
        .filter_map(|b64| B64.decode(b64).ok())
        .any(|sig| key.verify(&signed, &sig).is_ok())
}

/// `{msg_id}.{timestamp}.{body}`, what a `v1a` signature signs.
fn signed_content(msg_id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{msg_id}.{timestamp}.").into_bytes();
    out.extend_from_slice(body);
    out
}

/// Decodes `whsec_<base64>` (or bare base64) to the key bytes (`model::secret`).
pub fn parse_secret(s: &str) -> Result<Vec<u8>, SignError> {
    crate::model::secret::parse_secret(s).map_err(|e| SignError::BadSecret(e.0))
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Feeds `{msg_id}.{timestamp}.{body}` into a keyed state, without building the string.
fn content(mut mac: HmacSha256, msg_id: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    struct Feed<'a>(&'a mut HmacSha256);
    impl fmt::Write for Feed<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }
    write!(Feed(&mut mac), "{msg_id}.{timestamp}.").expect("Feed never fails");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../tests/vectors/standard-webhooks.json");

    #[derive(serde::Deserialize)]
    struct Vector {
        secret: String,
        id: String,
        timestamp: u64,
        body: String,
        signature: String,
    }

    fn vectors() -> Vec<Vector> {
        #[derive(serde::Deserialize)]
        struct File {
            vectors: Vec<Vector>,
        }
        serde_json::from_str::<File>(VECTORS).unwrap().vectors
    }

    const K1: &[u8] = &[1; 24];
    const K2: &[u8] = &[2; 32];

    /// GitHub's documented example ("Validating webhook deliveries"): this secret and body
    /// give this `X-Hub-Signature-256`. The generic scheme's hex, and base64, are the same MAC.
    #[test]
    fn legacy_signatures_match_the_providers_examples() {
        let secret = b"It's a Secret to Everybody".to_vec();
        let body = b"Hello, World!";
        let mac = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let github = LegacySignature::GitHub {
            secret: secret.clone(),
        };
        assert_eq!(
            legacy_header(&github, 1, body),
            ("X-Hub-Signature-256", format!("sha256={mac}"))
        );
        let generic = |base64: bool| LegacySignature::Hmac {
            secret: secret.clone(),
            header: "X-Sig".into(),
            base64,
            prefix: "p=".into(),
        };
        assert_eq!(
            legacy_header(&generic(false), 1, body).1,
            format!("p={mac}")
        );
        let b64 = B64.encode(hex::decode(mac).unwrap());
        assert_eq!(legacy_header(&generic(true), 1, body).1, format!("p={b64}"));
        // Stripe signs "<t>.<body>" and says when.
        let stripe = LegacySignature::Stripe { secret };
        let (name, value) = legacy_header(&stripe, 1_700_000_000, body);
        assert_eq!(name, "Stripe-Signature");
        let mut expected = keyed(b"It's a Secret to Everybody");
        expected.update(b"1700000000.Hello, World!");
        let tag = hex::encode(expected.finalize().into_bytes());
        assert_eq!(value, format!("t=1700000000,v1={tag}"));
    }

    #[test]
    fn standard_webhooks_vectors() {
        let vs = vectors();
        assert_eq!(vs.len(), 2);
        for v in vs {
            let key = parse_secret(&v.secret).unwrap();
            let header = Signer::new(&[&key])
                .unwrap()
                .sign(&v.id, v.timestamp, v.body.as_bytes());
            assert_eq!(header, v.signature, "vector {}", v.id);
            assert!(verify(
                &key,
                &v.id,
                v.timestamp,
                v.body.as_bytes(),
                &v.signature
            ));
        }
    }

    /// The Standard Webhooks specification's ed25519 example, byte for byte.
    #[test]
    fn the_specifications_v1a_example() {
        const V1A: &str = include_str!("../../tests/vectors/standard-webhooks-v1a.json");
        let v: serde_json::Value = serde_json::from_str(V1A).unwrap();
        let v = &v["vectors"][0];
        let key =
            crate::model::secret::parse_endpoint_secret(v["secret_key"].as_str().unwrap()).unwrap();
        let (id, ts) = (
            v["msg_id"].as_str().unwrap(),
            v["timestamp"].as_u64().unwrap(),
        );
        let body = v["payload"].as_str().unwrap().as_bytes();
        let header = Signer::new(&[&key]).unwrap().sign(id, ts, body);
        assert_eq!(header, v["signature"].as_str().unwrap());
        let public =
            crate::model::secret::parse_public_key(v["public_key"].as_str().unwrap()).unwrap();
        assert!(verify_v1a(&public, id, ts, body, &header));
        assert!(!verify_v1a(&public, id, ts + 1, body, &header));
        assert!(!verify_v1a(&public, id, ts, b"{}", &header));
        // Beside an HMAC key (a rotation from one kind to the other): both entries, in order.
        let both = Signer::new(&[&key, K1]).unwrap().sign(id, ts, body);
        let (first, second) = both.split_once(' ').unwrap();
        assert_eq!(first, header);
        assert!(second.starts_with("v1,") && verify(K1, id, ts, body, second));
        assert!(verify_v1a(&public, id, ts, body, &both));
    }

    #[test]
    fn one_entry_per_key_in_order() {
        let header = Signer::new(&[K1, K2])
            .unwrap()
            .sign("msg_1", 1700000000, b"{}");
        let entries: Vec<&str> = header.split(' ').collect();
        let one = |k| Signer::new(&[k]).unwrap().sign("msg_1", 1700000000, b"{}");
        assert_eq!(entries, [one(K1), one(K2)]);
        assert_ne!(entries[0], entries[1]);
        assert!(verify(K1, "msg_1", 1700000000, b"{}", &header));
        assert!(verify(K2, "msg_1", 1700000000, b"{}", &header));
    }

    #[test]
    fn from_endpoint_skips_expired_keys() {
        let key = |k: &[u8], expires_ms| SigningKey {
            key: k.to_vec(),
            expires_ms,
        };
        let now = 1_000;
        let secrets = [
            key(K1, None),
            key(&[3; 24], Some(now)),
            key(K2, Some(now + 1)),
        ];
        let signer = Signer::from_endpoint(&secrets, now).unwrap();
        let want = Signer::new(&[K1, K2]).unwrap();
        assert_eq!(signer.sign("m", 5, b"x"), want.sign("m", 5, b"x"));

        let expired = [key(K1, Some(now)), key(K2, Some(now - 1))];
        assert_eq!(
            Signer::from_endpoint(&expired, now).unwrap_err(),
            SignError::NoKeys
        );
        assert_eq!(Signer::new(&[]).unwrap_err(), SignError::NoKeys);
    }

    #[test]
    fn verify_rejects_any_change() {
        let header = Signer::new(&[K1]).unwrap().sign("msg_1", 42, b"body");
        assert!(verify(K1, "msg_1", 42, b"body", &header));
        assert!(!verify(K1, "msg_1", 42, b"bodY", &header));
        assert!(!verify(K1, "msg_2", 42, b"body", &header));
        assert!(!verify(K1, "msg_1", 43, b"body", &header));
        assert!(!verify(K2, "msg_1", 42, b"body", &header));
        assert!(!verify(K1, "msg_1", 42, b"body", ""));
    }

    #[test]
    fn verify_ignores_other_versions_and_garbage() {
        let good = Signer::new(&[K1]).unwrap().sign("m", 1, b"b");
        let mac = good.strip_prefix(VERSION_PREFIX).unwrap();
        let mixed = format!("v2,abc v1,!!! v1,{} {good}", &mac[..40]);
        assert!(verify(K1, "m", 1, b"b", &mixed));
        assert!(!verify(K1, "m", 1, b"b", &format!("v2,{mac}")));
        assert!(!verify(K1, "m", 1, b"b", mac));
    }

    #[test]
    fn secrets_round_trip_and_bounds() {
        for n in [SECRET_BYTES_MIN, SECRET_BYTES_MAX] {
            let key: Vec<u8> = (0..n as u8).collect();
            let text = format_secret(&key);
            assert!(text.starts_with("whsec_"));
            assert_eq!(parse_secret(&text).unwrap(), key);
            assert_eq!(parse_secret(&text["whsec_".len()..]).unwrap(), key);
        }
        for bad in [
            "whsec_not base64!",
            "whsec_AQID",
            &format_secret(&[0; SECRET_BYTES_MIN - 1]),
            &format_secret(&[0; SECRET_BYTES_MAX + 1]),
        ] {
            assert!(
                matches!(parse_secret(bad), Err(SignError::BadSecret(_))),
                "{bad}"
            );
        }
    }
}
