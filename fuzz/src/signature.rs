//! `signature`: the Standard Webhooks signatures of `hookd::deliver::sign`: the secret
//! parser, the signer and the `webhook-signature` verifier.
//!
//! Input (through `arbitrary`): keys, a message id, a timestamp, a body, a header as an
//! attacker would send it, an edit to apply to a real header, and a secret's text form.
//!
//! Checked, beyond "no panic":
//! - `verify` accepts exactly the headers that hold, as one space-separated entry, the entry
//!   `sign` makes for that key and content: for the attacker's header, for the signed header,
//!   for the signed header with one byte changed, and for the signed header against a
//!   neighbouring timestamp;
//! - `sign` makes one `v1,<base64>` entry per key, in order, each equal to an HMAC-SHA256
//!   computed here independently (over `sha2`, not the `hmac` crate the signer uses);
//! - `parse_secret` accepts only secrets in bounds, in their one canonical text form, and
//!   `format_secret` round-trips.

use arbitrary::{Arbitrary, Unstructured};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use hookd::deliver::sign::{
    format_secret, parse_secret, verify, SignError, Signer, SECRET_BYTES_MAX, SECRET_BYTES_MIN,
    SECRET_PREFIX,
};
use sha2::{Digest, Sha256};

/// Keys per signer, at most.
const KEYS_MAX: usize = 4;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    keys: Vec<&'a [u8]>,
    msg_id: &'a str,
    timestamp: u64,
    body: &'a [u8],
    header: &'a str,
    edit_at: u16,
    edit_xor: u8,
    secret: &'a str,
}

pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check_secret_text(input.secret);

    let keys = &input.keys[..input.keys.len().min(KEYS_MAX)];
    let Some(&key) = keys.first() else {
        assert_eq!(Signer::new(keys).unwrap_err(), SignError::NoKeys);
        return;
    };
    let (id, ts, body) = (input.msg_id, input.timestamp, input.body);

    // Whatever a client sends is accepted only if it carries the real entry.
    accepts_exactly_its_entry(key, id, ts, body, input.header);

    let signer = Signer::new(keys).expect("keys given");
    let header = signer.sign(id, ts, body);
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), keys.len(), "one entry per key: {header}");
    for (entry, k) in entries.iter().zip(keys) {
        assert_eq!(
            *entry,
            reference_entry(k, id, ts, body),
            "entry differs from HMAC"
        );
        assert!(
            verify(k, id, ts, body, &header),
            "a key's own signature is refused"
        );
    }
    accepts_exactly_its_entry(key, id, ts, body, &header);
    accepts_exactly_its_entry(key, id, ts.wrapping_add(1), body, &header);

    let mut edited = header.clone().into_bytes();
    let at = usize::from(input.edit_at) % edited.len();
    edited[at] ^= input.edit_xor;
    if let Ok(edited) = String::from_utf8(edited) {
        accepts_exactly_its_entry(key, id, ts, body, &edited);
    }
}

/// `verify` says yes exactly when `header` has the entry `sign` makes for `key`.
fn accepts_exactly_its_entry(key: &[u8], id: &str, ts: u64, body: &[u8], header: &str) {
    let own = Signer::new(&[key]).expect("one key").sign(id, ts, body);
    let present = header.split(' ').any(|entry| entry == own);
    assert_eq!(
        verify(key, id, ts, body, header),
        present,
        "verify disagrees with the signed entry {own:?} for header {header:?}"
    );
}

/// `v1,` and the base64 of HMAC-SHA256(key, `{id}.{ts}.{body}`), computed from RFC 2104.
fn reference_entry(key: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(format!("{id}.{ts}.").as_bytes())
        .chain_update(body)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    format!("v1,{}", B64.encode(outer))
}

fn check_secret_text(text: &str) {
    match parse_secret(text) {
        Ok(key) => {
            assert!((SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()));
            let canonical = format_secret(&key);
            let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
            assert_eq!(
                &canonical[SECRET_PREFIX.len()..],
                b64,
                "a secret was accepted in a non-canonical form"
            );
            assert_eq!(parse_secret(&canonical).as_ref(), Ok(&key));
        }
        Err(SignError::BadSecret(why)) => assert!(!why.is_empty()),
        Err(e) => panic!("parse_secret failed with {e:?}"),
    }
    // Any key in bounds round-trips through its text form.
    let bytes = text.as_bytes();
    if (SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&bytes.len()) {
        assert_eq!(parse_secret(&format_secret(bytes)).as_deref(), Ok(bytes));
    }
}
