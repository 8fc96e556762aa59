//! Verifying inbound webhooks: does a request to `POST /ingest/{source}` come from the provider
//! its `[[sources]]` entry names?
//!
//! Pure: the headers, the body and the current time go in, a verdict comes out. No I/O and no
//! clock, so every scheme is tested against its provider's published example.
//!
//! | scheme | what is checked |
//! |---|---|
//! | `standard-webhooks` | `webhook-signature` (or `svix-signature`): space-separated `v1,<base64>` entries, any one the HMAC-SHA256 of `{id}.{timestamp}.{body}` under the decoded `whsec_` key; `webhook-timestamp` within the tolerance, past or future |
//! | `github` | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, keyed with the secret's bytes |
//! | `stripe` | `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, any `v1` the HMAC-SHA256 of `{t}.{body}` under the whole secret; `t` within the tolerance |
//! | `hmac-sha256` | the configured header: optional prefix, then the hex or base64 HMAC-SHA256 of the body |
//! | `basic` | `Authorization: Basic base64(user:password)` |
//! | `token` | the configured header (`Authorization: Bearer <token>` by default) |
//!
//! Every comparison of a secret-derived value is constant time: MACs through `hmac`'s
//! `verify_slice`, passwords and tokens by comparing their SHA-256 with `subtle`. A request
//! whose signature is right but whose timestamp is outside the tolerance is [`Rejection::Expired`];
//! the schemes without a timestamp (GitHub, generic HMAC, basic, token) have no such check, and
//! their only replay protection is the delivery-id window kept by the caller.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};

use crate::config::{SignatureEncoding, SourceScheme};

type HmacSha256 = Hmac<Sha256>;

/// Signatures looked at in one header, at most (several are allowed for key rotation).
pub const SIGNATURES_MAX: usize = 8;
/// Digits of a Unix timestamp in seconds, at most.
const TIMESTAMP_DIGITS_MAX: usize = 12;

/// One inbound request, as verification sees it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Header names lowercased, as the HTTP layer gives them; the first of a name counts.
    pub headers: &'a [(String, Vec<u8>)],
    /// The body exactly as received.
    pub body: &'a [u8],
    /// Now, in Unix seconds.
    pub now_secs: u64,
    /// Largest distance, in seconds, between a signed timestamp and now.
    pub tolerance_secs: u64,
}

impl<'a> Inbound<'a> {
    fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The header's value as trimmed UTF-8; missing, or not text, is a rejection.
    fn text(&self, name: &str) -> Result<&'a str, Rejection> {
        let value = self
            .header(name)
            .ok_or_else(|| Rejection::Missing(name.to_owned()))?;
        std::str::from_utf8(value)
            .map(str::trim)
            .map_err(|_| Rejection::malformed(name, "not UTF-8"))
    }
}

/// Why a request was not verified. Every one is answered 401 and nothing is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A header the scheme needs is absent.
    #[error("missing the {0} header")]
    Missing(String),
    /// A header is there but not in the scheme's format.
    #[error("malformed {header} header: {why}")]
    Malformed { header: String, why: &'static str },
    /// The signature is right but its timestamp is too far from now (an old delivery replayed,
    /// or a clock far off).
    #[error("timestamp {timestamp} is more than {tolerance_secs} s away from now ({now})")]
    Expired {
        timestamp: u64,
        now: u64,
        tolerance_secs: u64,
    },
    /// No signature matches the body.
    #[error("no signature matches")]
    BadSignature,
    /// The user name, password or token is wrong.
    #[error("wrong credentials")]
    BadCredentials,
}

impl Rejection {
    fn malformed(header: &str, why: &'static str) -> Self {
        Rejection::Malformed {
            header: header.to_owned(),
            why,
        }
    }
}

/// What a verified request proved beyond its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The delivery id covered by the signature (Standard Webhooks' `webhook-id`), if the
    /// scheme signs one.
    pub signed_id: Option<&'a str>,
}

/// Verifies `req` under `scheme`.
pub fn verify<'a>(scheme: &SourceScheme, req: &Inbound<'a>) -> Result<Verified<'a>, Rejection> {
    let unsigned = Verified { signed_id: None };
    match scheme {
        SourceScheme::StandardWebhooks { key } => standard_webhooks(Key::Hmac(&key.0), req),
        SourceScheme::StandardWebhooksEd25519 { public_key } => {
            standard_webhooks(Key::Ed25519(&public_key.0), req)
        }
        SourceScheme::GitHub { secret } => {
            const HEADER: &str = "x-hub-signature-256";
            let hex_mac = req
                .text(HEADER)?
                .strip_prefix("sha256=")
                .ok_or_else(|| Rejection::malformed(HEADER, "does not start with sha256="))?;
            let tag = hex::decode(hex_mac)
                .map_err(|_| Rejection::malformed(HEADER, "not hex after sha256="))?;
            check_mac(keyed(&secret.0, &[req.body]), &[tag])?;
            Ok(unsigned)
        }
        SourceScheme::Stripe { secret } => stripe(&secret.0, req).map(|()| unsigned),
        SourceScheme::HmacSha256 {
            secret,
            header,
            encoding,
            prefix,
        } => {
            let text = req
                .text(header)?
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| Rejection::malformed(header, "does not start with the prefix"))?;
            let tag = match encoding {
                SignatureEncoding::Hex => hex::decode(text).ok(),
                SignatureEncoding::Base64 => B64.decode(text).ok(),
            }
            .ok_or_else(|| Rejection::malformed(header, "not the configured encoding"))?;
            check_mac(keyed(&secret.0, &[req.body]), &[tag])?;
            Ok(unsigned)
        }
        SourceScheme::Basic {
            username,
            password_sha256,
        } => {
            const HEADER: &str = "authorization";
            let value = req.text(HEADER)?;
            let b64 = value
                .split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("basic"))
                .map(|(_, rest)| rest.trim())
                .ok_or_else(|| Rejection::malformed(HEADER, "not Basic credentials"))?;
            let pair = B64
                .decode(b64)
                .map_err(|_| Rejection::malformed(HEADER, "not base64 after Basic"))?;
            let colon = pair
                .iter()
                .position(|&b| b == b':')
                .ok_or_else(|| Rejection::malformed(HEADER, "no ':' between user and password"))?;
            let (user, password) = (&pair[..colon], &pair[colon + 1..]);
            // Both compared whole, without an early exit on the first wrong one.
            let user_ok = sha256(user).ct_eq(&sha256(username.as_bytes()));
            let password_ok = sha256(password).ct_eq(password_sha256);
            if bool::from(user_ok & password_ok) {
                Ok(unsigned)
            } else {
                Err(Rejection::BadCredentials)
            }
        }
        SourceScheme::Token {
            header,
            sha256: want,
        } => {
            let value = req.text(header)?;
            let token = if header == "authorization" {
                value
                    .split_once(' ')
                    .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
                    .map(|(_, t)| t.trim())
                    .ok_or_else(|| Rejection::malformed(header, "not Bearer <token>"))?
            } else {
                value
            };
            if bool::from(sha256(token.as_bytes()).ct_eq(want)) {
                Ok(unsigned)
            } else {
                Err(Rejection::BadCredentials)
            }
        }
    }
}

/// What a Standard Webhooks source verifies with.
enum Key<'a> {
    /// The shared secret: `v1` entries, HMAC-SHA256.
    Hmac(&'a [u8]),
    /// The sender's public key: `v1a` entries, ed25519.
    Ed25519(&'a [u8]),
}

fn standard_webhooks<'a>(key: Key<'_>, req: &Inbound<'a>) -> Result<Verified<'a>, Rejection> {
    // Svix sends the same three headers with its own prefix; either family verifies.
    let [id_h, ts_h, sig_h] = if req.header("webhook-id").is_some() {
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    } else {
        ["svix-id", "svix-timestamp", "svix-signature"]
    };
    let id = req.text(id_h)?;
    let ts_text = req.text(ts_h)?;
    let signatures = req.text(sig_h)?;
    let timestamp = unix_secs(ts_h, ts_text)?;
    if signatures.split(' ').count() > SIGNATURES_MAX {
        return Err(Rejection::malformed(sig_h, "too many signatures"));
    }
    // The MAC (or signature) over `{id}.{timestamp}.{body}`, as deliveries are signed.
    let content = [id.as_bytes(), b".", ts_text.as_bytes(), b".", req.body];
    let entries = |version: &str| -> Vec<Vec<u8>> {
        signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix(version))
            .filter_map(|b64| B64.decode(b64).ok())
            .collect()
    };
    match key {
        Key::Hmac(secret) => check_mac(keyed(secret, &content), &entries("v1,"))?,
        Key::Ed25519(public) => {
            let signed = content.concat();
            let key = UnparsedPublicKey::new(&ED25519, public);
            // Every entry is checked, as for MACs.
            let matched = entries("v1a,")
                .iter()
                .fold(false, |found, sig| key.verify(&signed, sig).is_ok() | found);
            if !matched {
                return Err(Rejection::BadSignature);
            }
        }
    }
    within_tolerance(timestamp, req)?;
    Ok(Verified {
        signed_id: Some(id),
    })
}

fn stripe(secret: &[u8], req: &Inbound<'_>) -> Result<(), Rejection> {
    const HEADER: &str = "stripe-signature";
    let value = req.text(HEADER)?;
    let mut ts_text = None;
    let mut tags = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) if ts_text.is_none() => ts_text = Some(t),
            Some(("v1", hex_mac)) => {
                if tags.len() == SIGNATURES_MAX {
                    return Err(Rejection::malformed(HEADER, "too many signatures"));
                }
                // A v1 entry that is not hex cannot match; the others still may.
                if let Ok(tag) = hex::decode(hex_mac) {
                    tags.push(tag);
                }
            }
            // Other schemes (v0, the test-mode one) are ignored, as Stripe's libraries do.
            _ => {}
        }
    }
    let ts_text = ts_text.ok_or_else(|| Rejection::malformed(HEADER, "no t= timestamp"))?;
    if tags.is_empty() {
        return Err(Rejection::malformed(HEADER, "no v1= signature"));
    }
    let timestamp = unix_secs(HEADER, ts_text)?;
    check_mac(keyed(secret, &[ts_text.as_bytes(), b".", req.body]), &tags)?;
    within_tolerance(timestamp, req)
}

/// A Unix timestamp in seconds, in decimal digits.
fn unix_secs(header: &str, text: &str) -> Result<u64, Rejection> {
    let digits = !text.is_empty()
        && text.len() <= TIMESTAMP_DIGITS_MAX
        && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u64>() {
        Ok(t) if digits => Ok(t),
        _ => Err(Rejection::malformed(
            header,
            "timestamp is not Unix seconds",
        )),
    }
}

fn within_tolerance(timestamp: u64, req: &Inbound<'_>) -> Result<(), Rejection> {
    if timestamp.abs_diff(req.now_secs) <= req.tolerance_secs {
        Ok(())
    } else {
        Err(Rejection::Expired {
            timestamp,
            now: req.now_secs,
            tolerance_secs: req.tolerance_secs,
        })
    }
}

/// An HMAC-SHA256 state keyed with `key` that has absorbed `parts`, in order.
fn keyed(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // An empty key is refused by the config (`sources[].secret`); HMAC takes every other.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Ok if any of `tags` is the MAC; each compared in constant time.
fn check_mac(mac: HmacSha256, tags: &[Vec<u8>]) -> Result<(), Rejection> {
    // Every tag is compared, even after a match, so that the time taken does not tell which.
    let matched = tags.iter().fold(false, |found, tag| {
        mac.clone().verify_slice(tag).is_ok() | found
    });
    if matched {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// Standard Webhooks vectors, each checked against the reference library.
    const VECTORS: &str = include_str!("../tests/vectors/standard-webhooks.json");

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn check(
        scheme: &SourceScheme,
        pairs: &[(&str, &str)],
        body: &str,
        now: u64,
    ) -> Result<Option<String>, Rejection> {
        let h = headers(pairs);
        let req = Inbound {
            headers: &h,
            body: body.as_bytes(),
            now_secs: now,
            tolerance_secs: 300,
        };
        verify(scheme, &req).map(|v| v.signed_id.map(str::to_owned))
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        secret: String,
        id: String,
        timestamp: u64,
        body: String,
        signature: String,
    }

    /// The specification's ed25519 example verifies with its `whpk_` public key, and only
    /// as `v1a`.
    #[test]
    fn standard_webhooks_v1a_example() {
        const V1A: &str = include_str!("../tests/vectors/standard-webhooks-v1a.json");
        let v: serde_json::Value = serde_json::from_str(V1A).unwrap();
        let v = &v["vectors"][0];
        let public =
            crate::model::secret::parse_public_key(v["public_key"].as_str().unwrap()).unwrap();
        let scheme = SourceScheme::StandardWebhooksEd25519 {
            public_key: Secret(public.to_vec()),
        };
        let (id, at) = (
            v["msg_id"].as_str().unwrap(),
            v["timestamp"].as_u64().unwrap(),
        );
        let (body, sig) = (
            v["payload"].as_str().unwrap(),
            v["signature"].as_str().unwrap(),
        );
        let ts = at.to_string();
        let sent = [
            ("webhook-id", id),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig),
        ];
        assert_eq!(check(&scheme, &sent, body, at), Ok(Some(id.to_owned())));
        let tampered = format!("{body} ");
        assert_eq!(
            check(&scheme, &sent, &tampered, at),
            Err(Rejection::BadSignature)
        );
        // The same bytes as a v1 entry do not count.
        let as_v1 = sig.replacen("v1a,", "v1,", 1);
        let wrong = [sent[0], sent[1], ("webhook-signature", as_v1.as_str())];
        assert_eq!(
            check(&scheme, &wrong, body, at),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn standard_webhooks_vectors() {
        #[derive(serde::Deserialize)]
        struct File {
            vectors: Vec<Vector>,
        }
        let file: File = serde_json::from_str(VECTORS).unwrap();
        assert!(!file.vectors.is_empty());
        for v in file.vectors {
            let scheme = SourceScheme::StandardWebhooks {
                key: Secret(crate::model::secret::parse_secret(&v.secret).unwrap()),
            };
            let ts = v.timestamp.to_string();
            let sent = [
                ("webhook-id", v.id.as_str()),
                ("webhook-timestamp", ts.as_str()),
                ("webhook-signature", v.signature.as_str()),
            ];
            let at = v.timestamp;
            assert_eq!(check(&scheme, &sent, &v.body, at), Ok(Some(v.id.clone())));
            // The svix-* family carries the same values.
            let svix = [
                ("svix-id", v.id.as_str()),
                ("svix-timestamp", ts.as_str()),
                ("svix-signature", v.signature.as_str()),
            ];
            assert_eq!(check(&scheme, &svix, &v.body, at), Ok(Some(v.id.clone())));
            // One matching entry among others (a rotated key, a future version) is enough.
            let several = format!("v1,AAAA v2,xyz {}", v.signature);
            let rotated = [sent[0], sent[1], ("webhook-signature", several.as_str())];
            assert!(check(&scheme, &rotated, &v.body, at).is_ok());
            // Tampered body, id or timestamp: no match.
            let tampered = format!("{} ", v.body);
            assert_eq!(
                check(&scheme, &sent, &tampered, at),
                Err(Rejection::BadSignature)
            );
            let other_id = [("webhook-id", "msg_other"), sent[1], sent[2]];
            assert_eq!(
                check(&scheme, &other_id, &v.body, at),
                Err(Rejection::BadSignature)
            );
            let later = (at + 1).to_string();
            let moved = [sent[0], ("webhook-timestamp", later.as_str()), sent[2]];
            assert_eq!(
                check(&scheme, &moved, &v.body, at),
                Err(Rejection::BadSignature)
            );
            // Right signature, outside the tolerance either way: expired; at the edge: fine.
            assert!(check(&scheme, &sent, &v.body, at + 300).is_ok());
            assert!(check(&scheme, &sent, &v.body, at - 300).is_ok());
            for now in [at + 301, at - 301] {
                assert_eq!(
                    check(&scheme, &sent, &v.body, now),
                    Err(Rejection::Expired {
                        timestamp: at,
                        now,
                        tolerance_secs: 300
                    })
                );
            }
            // Missing or malformed headers.
            assert_eq!(
                check(&scheme, &sent[..2], &v.body, at),
                Err(Rejection::Missing("webhook-signature".into()))
            );
            let bad_ts = [sent[0], ("webhook-timestamp", "soon"), sent[2]];
            assert!(matches!(
                check(&scheme, &bad_ts, &v.body, at),
                Err(Rejection::Malformed { .. })
            ));
            let many = [v.signature.as_str(); SIGNATURES_MAX + 1].join(" ");
            let flood = [sent[0], sent[1], ("webhook-signature", many.as_str())];
            assert!(matches!(
                check(&scheme, &flood, &v.body, at),
                Err(Rejection::Malformed { .. })
            ));
        }
    }

    /// GitHub's example in "Validating webhook deliveries": secret "It's a Secret to
    /// Everybody", payload "Hello, World!".
    #[test]
    fn github_documented_example() {
        let scheme = SourceScheme::GitHub {
            secret: Secret(b"It's a Secret to Everybody".to_vec()),
        };
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let sent = [("x-hub-signature-256", sig)];
        assert_eq!(check(&scheme, &sent, "Hello, World!", 0), Ok(None));
        // No timestamp in this scheme: any time is the same.
        assert_eq!(check(&scheme, &sent, "Hello, World!", u64::MAX), Ok(None));
        assert_eq!(
            check(&scheme, &sent, "Hello, World?", 0),
            Err(Rejection::BadSignature)
        );
        let other_key = SourceScheme::GitHub {
            secret: Secret(b"another secret".to_vec()),
        };
        assert_eq!(
            check(&other_key, &sent, "Hello, World!", 0),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&scheme, &[], "Hello, World!", 0),
            Err(Rejection::Missing("x-hub-signature-256".into()))
        );
        for bad in [&sig[7..], "sha1=757107ea", "sha256=xyz"] {
            assert!(matches!(
                check(&scheme, &[("x-hub-signature-256", bad)], "Hello, World!", 0),
                Err(Rejection::Malformed { .. })
            ));
        }
        // A truncated MAC is a mismatch, not a prefix match.
        assert_eq!(
            check(
                &scheme,
                &[("x-hub-signature-256", &sig[..sig.len() - 2])],
                "Hello, World!",
                0
            ),
            Err(Rejection::BadSignature)
        );
    }

    /// Stripe publishes the scheme, not a vector with its secret: this one was made with
    /// Python's `hmac` and accepted by the official `stripe` library's
    /// `WebhookSignature.verify_header` (and a tampered body refused by it).
    #[test]
    fn stripe_signature_header() {
        let scheme = SourceScheme::Stripe {
            secret: Secret(b"whsec_test_secret".to_vec()),
        };
        let body =
            r#"{"id":"evt_test_webhook","object":"event","type":"payment_intent.succeeded"}"#;
        let v1 = "add268875c77da0b0493b2ae7deba5dabc736b8c4b5a40755158e5471b4c3fe2";
        let t = 1_492_774_577;
        let header = format!(
            "t={t},v1={v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
        );
        let sent = [("stripe-signature", header.as_str())];
        assert_eq!(check(&scheme, &sent, body, t), Ok(None));
        // Several v1 entries (a rolled secret): one match is enough.
        let rolled = format!("t={t},v1={},v1={v1}", "0".repeat(64));
        assert!(check(&scheme, &[("stripe-signature", &rolled)], body, t).is_ok());
        assert_eq!(
            check(&scheme, &sent, &body.replace("succeeded", "failed"), t),
            Err(Rejection::BadSignature)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = format!("t={},v1={v1}", t + 1);
        assert_eq!(
            check(&scheme, &[("stripe-signature", &moved)], body, t),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&scheme, &sent, body, t + 301),
            Err(Rejection::Expired {
                timestamp: t,
                now: t + 301,
                tolerance_secs: 300
            })
        );
        assert!(matches!(
            check(&scheme, &sent, body, t - 301),
            Err(Rejection::Expired { .. })
        ));
        for bad in [format!("v1={v1}"), format!("t={t}"), format!("t=x,v1={v1}")] {
            assert!(
                matches!(
                    check(&scheme, &[("stripe-signature", &bad)], body, t),
                    Err(Rejection::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    /// RFC 4231 test case 2 (key "Jefe"), in hex and in base64, with and without a prefix.
    #[test]
    fn generic_hmac_rfc_4231() {
        let data = "what do ya want for nothing?";
        let hex_mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let b64_mac = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";
        let scheme = |encoding, prefix: &str| SourceScheme::HmacSha256 {
            secret: Secret(b"Jefe".to_vec()),
            header: "x-signature".into(),
            encoding,
            prefix: prefix.into(),
        };
        let hex = scheme(SignatureEncoding::Hex, "");
        assert_eq!(check(&hex, &[("x-signature", hex_mac)], data, 0), Ok(None));
        let upper = hex_mac.to_uppercase();
        assert!(check(&hex, &[("x-signature", &upper)], data, 0).is_ok());
        assert_eq!(
            check(
                &hex,
                &[("x-signature", hex_mac)],
                "what do ya want for something?",
                0
            ),
            Err(Rejection::BadSignature)
        );
        assert!(matches!(
            check(&hex, &[("x-signature", b64_mac)], data, 0),
            Err(Rejection::Malformed { .. })
        ));
        let b64 = scheme(SignatureEncoding::Base64, "sha256=");
        let prefixed = format!("sha256={b64_mac}");
        assert_eq!(
            check(&b64, &[("x-signature", &prefixed)], data, 0),
            Ok(None)
        );
        assert!(matches!(
            check(&b64, &[("x-signature", b64_mac)], data, 0),
            Err(Rejection::Malformed { .. })
        ));
        assert_eq!(
            check(&b64, &[("x-other", &prefixed)], data, 0),
            Err(Rejection::Missing("x-signature".into()))
        );
    }

    /// RFC 7617's example: user "Aladdin", password "open sesame".
    #[test]
    fn basic_auth_rfc_7617() {
        let scheme = SourceScheme::Basic {
            username: "Aladdin".into(),
            password_sha256: sha256(b"open sesame"),
        };
        let ok = [("authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")];
        assert_eq!(check(&scheme, &ok, "{}", 0), Ok(None));
        assert!(check(
            &scheme,
            &[("authorization", "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")],
            "{}",
            0
        )
        .is_ok());
        let wrong_password = format!("Basic {}", B64.encode("Aladdin:open sesame!"));
        let wrong_user = format!("Basic {}", B64.encode("aladdin:open sesame"));
        for h in [wrong_password, wrong_user] {
            assert_eq!(
                check(&scheme, &[("authorization", &h)], "{}", 0),
                Err(Rejection::BadCredentials)
            );
        }
        let no_colon = format!("Basic {}", B64.encode("Aladdin"));
        for h in [
            "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Basic !!",
            no_colon.as_str(),
        ] {
            assert!(matches!(
                check(&scheme, &[("authorization", h)], "{}", 0),
                Err(Rejection::Malformed { .. })
            ));
        }
        assert_eq!(
            check(&scheme, &[], "{}", 0),
            Err(Rejection::Missing("authorization".into()))
        );
    }

    #[test]
    fn static_tokens() {
        let bearer = SourceScheme::Token {
            header: "authorization".into(),
            sha256: sha256(b"s3cr3t-token"),
        };
        assert!(check(
            &bearer,
            &[("authorization", "Bearer s3cr3t-token")],
            "{}",
            0
        )
        .is_ok());
        assert_eq!(
            check(
                &bearer,
                &[("authorization", "Bearer s3cr3t-tokem")],
                "{}",
                0
            ),
            Err(Rejection::BadCredentials)
        );
        assert!(matches!(
            check(&bearer, &[("authorization", "s3cr3t-token")], "{}", 0),
            Err(Rejection::Malformed { .. })
        ));
        let custom = SourceScheme::Token {
            header: "x-webhook-token".into(),
            sha256: sha256(b"s3cr3t-token"),
        };
        assert!(check(&custom, &[("x-webhook-token", "s3cr3t-token")], "{}", 0).is_ok());
        assert_eq!(
            check(
                &custom,
                &[("authorization", "Bearer s3cr3t-token")],
                "{}",
                0
            ),
            Err(Rejection::Missing("x-webhook-token".into()))
        );
    }
}
