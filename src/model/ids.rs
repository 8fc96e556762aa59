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

/// 62^10, the largest power of 62 whose remainders fit a `u64` digit group.
const P10: u64 = 839_299_365_868_340_224;

/// A new id of `kind` for internal key `key`, made at `ts_ms`, with fresh random bits.
pub fn fresh(kind: Kind, key: u64, ts_ms: u64) -> String {
    encode(
        kind,
        Parts {
            ts_ms,
            key,
            rand: random_bits(),
        },
    )
}

/// Builds the id of `kind` from its parts.
pub fn encode(kind: Kind, parts: Parts) -> String {
    // The 160-bit number as (hi: top 32 bits, lo: low 128 bits).
    let hi = (parts.ts_ms & 0xFFFF_FFFF_FFFF) >> 16;
    let lo = (u128::from(parts.ts_ms & 0xFFFF) << 112)
        | (u128::from(parts.key) << 48)
        | u128::from(parts.rand & 0xFFFF_FFFF_FFFF);
    // Two long divisions by 62^10 leave three groups: 7, 10 and 10 digits.
    let div = |hi: u64, lo: u128| -> (u64, u128, u64) {
        let top = u128::from(hi);
        let (q_hi, r) = (top / u128::from(P10), top % u128::from(P10));
        // (r << 128 | lo) / P10 in two 64-bit steps.
        let mid = (r << 64) | (lo >> 64);
        let (q_mid, r) = (mid / u128::from(P10), mid % u128::from(P10));
        let low = (r << 64) | (lo & u128::from(u64::MAX));
        let (q_low, r) = (low / u128::from(P10), low % u128::from(P10));
        (q_hi as u64, (q_mid << 64) | q_low, r as u64)
    };
    let (hi1, lo1, g3) = div(hi, lo);
    let (_, lo2, g2) = div(hi1, lo1);
    let g1 = lo2 as u64;
    let mut digits = [0u8; ID_CHARS];
    let mut put = |group: u64, range: std::ops::Range<usize>| {
        let mut n = group;
        for d in digits[range].iter_mut().rev() {
            *d = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
    };
    put(g1, 0..7);
    put(g2, 7..17);
    put(g3, 17..27);
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

    /// The fast encoder against the obvious one (digit by digit over the whole number).
    #[test]
    fn encode_matches_plain_long_division() {
        fn slow(p: Parts) -> String {
            let mut n = [0u8; 20];
            n[..6].copy_from_slice(&p.ts_ms.to_be_bytes()[2..]);
            n[6..14].copy_from_slice(&p.key.to_be_bytes());
            n[14..].copy_from_slice(&p.rand.to_be_bytes()[2..]);
            let mut digits = [0u8; ID_CHARS];
            for d in digits.iter_mut().rev() {
                let mut rem = 0u32;
                for byte in n.iter_mut() {
                    let cur = (rem << 8) | u32::from(*byte);
                    *byte = (cur / 62) as u8;
                    rem = cur % 62;
                }
                *d = ALPHABET[rem as usize];
            }
            format!("app_{}", String::from_utf8(digits.to_vec()).unwrap())
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = Parts {
                ts_ms: x >> 16,
                key: x.rotate_left(17),
                rand: x & 0xFFFF_FFFF_FFFF,
            };
            assert_eq!(encode(Kind::App, p), slow(p));
            assert_eq!(decode(Kind::App, &encode(Kind::App, p)), Some(p));
        }
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
