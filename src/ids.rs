//! Public ids: a prefix and 27 base62 characters, like Svix's (`app_2Z...`).
//!
//! The 27 characters encode 160 bits, big-endian: 48 bits of creation time in milliseconds,
//! 64 bits of the object's internal key (for messages, the log sequence number), and 48 random
//! bits. So ids sort by creation time, as strings and as numbers, and an id names its object's
//! key without an index lookup; the random bits make ids unguessable from each other, and a
//! lookup checks them against the stored object so that a forged id finds nothing.

/// The kinds of id and their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    App,
    Endpoint,
    Message,
    Attempt,
    Task,
}

impl Kind {
    /// The prefix, underscore included.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::App => "app_",
            Kind::Endpoint => "ep_",
            Kind::Message => "msg_",
            Kind::Attempt => "atmpt_",
            Kind::Task => "qtask_",
        }
    }
}

/// Number of base62 characters after the prefix.
pub const ID_CHARS: usize = 27;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The parts of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub ts_ms: u64,
    pub key: u64,
    /// Only the low 48 bits are kept.
    pub rand: u64,
}

/// Builds the id of `kind` from its parts.
pub fn encode(kind: Kind, parts: Parts) -> String {
    let mut n = [0u8; 20];
    n[..6].copy_from_slice(&parts.ts_ms.to_be_bytes()[2..]);
    n[6..14].copy_from_slice(&parts.key.to_be_bytes());
    n[14..].copy_from_slice(&parts.rand.to_be_bytes()[2..]);
    let mut digits = [0u8; ID_CHARS];
    for d in digits.iter_mut().rev() {
        // Long division of the 160-bit number by 62.
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*byte);
            *byte = (cur / 62) as u8;
            rem = cur % 62;
        }
        *d = ALPHABET[rem as usize];
    }
    let mut s = String::with_capacity(kind.prefix().len() + ID_CHARS);
    s.push_str(kind.prefix());
    s.extend(digits.iter().map(|&b| b as char));
    s
}

/// Reads the parts back from an id of `kind`; `None` if it is not one.
pub fn decode(kind: Kind, id: &str) -> Option<Parts> {
    let digits = id.strip_prefix(kind.prefix())?.as_bytes();
    if digits.len() != ID_CHARS {
        return None;
    }
    let mut n = [0u8; 20];
    for &c in digits {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        // n = n * 62 + v, refusing overflow past 160 bits.
        let mut carry = u32::from(v);
        for byte in n.iter_mut().rev() {
            let cur = u32::from(*byte) * 62 + carry;
            *byte = cur as u8;
            carry = cur >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    let mut ts = [0u8; 8];
    ts[2..].copy_from_slice(&n[..6]);
    let mut key = [0u8; 8];
    key.copy_from_slice(&n[6..14]);
    let mut rand = [0u8; 8];
    rand[2..].copy_from_slice(&n[14..]);
    Some(Parts {
        ts_ms: u64::from_be_bytes(ts),
        key: u64::from_be_bytes(key),
        rand: u64::from_be_bytes(rand),
    })
}

/// 48 random bits for a new id.
pub fn random_bits() -> u64 {
    rand::random::<u64>() & 0xFFFF_FFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_svix_shape() {
        let p = Parts {
            ts_ms: 1_700_000_000_123,
            key: 42,
            rand: 0xABCD_EF01_2345,
        };
        let id = encode(Kind::Message, p);
        assert_eq!(id.len(), 4 + 27);
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(decode(Kind::Message, &id), Some(p));
        assert_eq!(decode(Kind::App, &id), None, "prefix is checked");
    }

    #[test]
    fn extremes_round_trip_and_garbage_is_refused() {
        let max = Parts {
            ts_ms: (1 << 48) - 1,
            key: u64::MAX,
            rand: (1 << 48) - 1,
        };
        assert_eq!(decode(Kind::App, &encode(Kind::App, max)), Some(max));
        assert_eq!(
            decode(Kind::App, "app_zzzzzzzzzzzzzzzzzzzzzzzzzzz"),
            None,
            "over 160 bits"
        );
        assert_eq!(decode(Kind::App, "app_short"), None);
        assert_eq!(decode(Kind::App, "app_00000000000000000000000000!"), None);
    }

    #[test]
    fn ids_sort_by_time_then_key() {
        let id = |ts, key| {
            encode(
                Kind::Endpoint,
                Parts {
                    ts_ms: ts,
                    key,
                    rand: 999,
                },
            )
        };
        let mut ids = vec![id(5, 1), id(3, 9), id(3, 2), id(1_000_000, 0)];
        ids.sort();
        assert_eq!(ids, vec![id(3, 2), id(3, 9), id(5, 1), id(1_000_000, 0)]);
    }
}
