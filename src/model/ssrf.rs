//! The SSRF guard: which addresses an endpoint may be dialled at.
//!
//! With `delivery.allow_private_networks = false` (the default) a delivery never connects to
//! an address that is not plainly on the public internet: loopback, private, link-local,
//! shared (CGNAT), multicast, documentation, benchmarking and reserved ranges, in IPv4 and
//! IPv6. The client applies [`check`] to every address it is about to dial, after name
//! resolution, so a name that resolves to `127.0.0.1` is refused as surely as the literal.
//!
//! IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
//! `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by that IPv4 address, so they
//! cannot be used to smuggle a private one past the guard, while NAT64 to a public address
//! (the normal path on IPv6-only hosts) is allowed. The deprecated IPv4-compatible form
//! `::a.b.c.d` is refused outright. Any IPv6 address outside global unicast (`2000::/3`) is
//! refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `Ok` when `ip` may be dialled; otherwise why not, as a short phrase ("loopback address").
pub fn check(ip: IpAddr) -> Result<(), &'static str> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

/// The sentence an attempt or an API error carries when `ip`, dialled for `host`, is refused;
/// `None` when it is allowed.
pub fn refusal(host: &str, ip: IpAddr) -> Option<String> {
    let reason = check(ip).err()?;
    let hint = "set delivery.allow_private_networks = true to allow it";
    Some(if host.parse::<IpAddr>().ok() == Some(ip) {
        format!("{ip} is refused: {reason} ({hint})")
    } else {
        format!("{host} resolves to {ip}, refused: {reason} ({hint})")
    })
}

/// IPv4 ranges refused, most specific first where they overlap.
const V4_REFUSED: &[(u32, u8, &str)] = &[
    (0xffff_ffff, 32, "broadcast address"),
    (0x0000_0000, 8, "\"this network\" address (0.0.0.0/8)"),
    (0x0a00_0000, 8, "private address (10.0.0.0/8)"),
    (
        0x6440_0000,
        10,
        "shared address space (CGNAT, 100.64.0.0/10)",
    ),
    (0x7f00_0000, 8, "loopback address"),
    (0xa9fe_0000, 16, "link-local address (169.254.0.0/16)"),
    (0xac10_0000, 12, "private address (172.16.0.0/12)"),
    (
        0xc000_0000,
        24,
        "IETF protocol assignment address (192.0.0.0/24)",
    ),
    (0xc000_0200, 24, "documentation address (192.0.2.0/24)"),
    (
        0xc058_6300,
        24,
        "6to4 relay anycast address (192.88.99.0/24)",
    ),
    (0xc0a8_0000, 16, "private address (192.168.0.0/16)"),
    (0xc612_0000, 15, "benchmarking address (198.18.0.0/15)"),
    (0xc633_6400, 24, "documentation address (198.51.100.0/24)"),
    (0xcb00_7100, 24, "documentation address (203.0.113.0/24)"),
    (0xe000_0000, 4, "multicast address"),
    (0xf000_0000, 4, "reserved address (240.0.0.0/4)"),
];

fn check_v4(ip: Ipv4Addr) -> Result<(), &'static str> {
    let bits = u32::from(ip);
    for &(net, len, reason) in V4_REFUSED {
        let mask = u32::MAX << (32 - u32::from(len));
        if bits & mask == net {
            return Err(reason);
        }
    }
    Ok(())
}

/// IPv6 ranges refused outright (within or beside `2000::/3`), checked after the forms that
/// embed an IPv4 address.
const V6_REFUSED: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified address (::)"),
    (1, 128, "loopback address"),
    (0, 96, "deprecated IPv4-compatible IPv6 address (::/96)"),
    (
        0x0064_ff9b_0001 << 80,
        48,
        "local-use NAT64 address (64:ff9b:1::/48)",
    ),
    (0x0100 << 112, 64, "discard-only address (100::/64)"),
    (
        0x2001 << 112,
        23,
        "IETF protocol assignment address (2001::/23)",
    ),
    (
        0x2001_0db8 << 96,
        32,
        "documentation address (2001:db8::/32)",
    ),
    (0x3fff << 112, 20, "documentation address (3fff::/20)"),
    (
        0xfc00 << 112,
        7,
        "unique local (private) address (fc00::/7)",
    ),
    (0xfe80 << 112, 10, "link-local address (fe80::/10)"),
    (
        0xfec0 << 112,
        10,
        "deprecated site-local address (fec0::/10)",
    ),
    (0xff00 << 112, 8, "multicast address"),
];

fn in_v6(bits: u128, net: u128, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    bits & mask == net
}

fn check_v6(ip: Ipv6Addr) -> Result<(), &'static str> {
    let bits = u128::from(ip);
    // Forms that carry an IPv4 address are judged by it.
    let embedded = if in_v6(bits, 0xffff << 32, 96) || in_v6(bits, 0x0064_ff9b << 96, 96) {
        // IPv4-mapped ::ffff:a.b.c.d, NAT64 well-known prefix 64:ff9b::a.b.c.d.
        Some(bits as u32)
    } else if in_v6(bits, 0x2002 << 112, 16) {
        // 6to4: 2002:aabb:ccdd::/48.
        Some((bits >> 80) as u32)
    } else {
        None
    };
    if let Some(v4) = embedded {
        return check_v4(Ipv4Addr::from(v4));
    }
    for &(net, len, reason) in V6_REFUSED {
        if in_v6(bits, net, len) {
            return Err(reason);
        }
    }
    if !in_v6(bits, 0x2000 << 112, 3) {
        return Err("reserved address (outside IPv6 global unicast 2000::/3)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each address and the start of its refusal, or `None` where it is allowed.
    const CASES: &[(&str, Option<&str>)] = &[
        // IPv4, public.
        ("1.1.1.1", None),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("9.255.255.255", None),
        ("11.0.0.0", None),
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        ("126.255.255.255", None),
        ("128.0.0.0", None),
        ("169.253.255.255", None),
        ("169.255.0.0", None),
        ("172.15.255.255", None),
        ("172.32.0.0", None),
        ("192.0.1.1", None),
        ("192.0.3.0", None),
        ("192.88.98.255", None),
        ("192.167.255.255", None),
        ("192.169.0.0", None),
        ("198.17.255.255", None),
        ("198.20.0.0", None),
        ("198.51.99.255", None),
        ("203.0.112.255", None),
        ("223.255.255.255", None),
        // IPv4, refused.
        ("0.0.0.0", Some("\"this network\"")),
        ("0.1.2.3", Some("\"this network\"")),
        ("10.0.0.1", Some("private")),
        ("10.255.255.255", Some("private")),
        ("100.64.0.1", Some("shared address space")),
        ("100.127.255.255", Some("shared address space")),
        ("127.0.0.1", Some("loopback")),
        ("127.255.255.254", Some("loopback")),
        ("169.254.169.254", Some("link-local")),
        ("172.16.0.1", Some("private")),
        ("172.31.255.255", Some("private")),
        ("192.0.0.8", Some("IETF protocol assignment")),
        ("192.0.2.1", Some("documentation")),
        ("192.88.99.1", Some("6to4 relay")),
        ("192.168.1.1", Some("private")),
        ("198.18.0.1", Some("benchmarking")),
        ("198.19.255.255", Some("benchmarking")),
        ("198.51.100.7", Some("documentation")),
        ("203.0.113.9", Some("documentation")),
        ("224.0.0.1", Some("multicast")),
        ("239.255.255.255", Some("multicast")),
        ("240.0.0.1", Some("reserved")),
        ("255.255.255.254", Some("reserved")),
        ("255.255.255.255", Some("broadcast")),
        // IPv6, public.
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:81b::200e", None),
        ("2001:200::1", None),
        ("2001:4860:4860::8888", None),
        ("64:ff9b::808:808", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::1", None),
        // IPv6, refused.
        ("::", Some("unspecified")),
        ("::1", Some("loopback")),
        ("::ffff:127.0.0.1", Some("loopback")),
        ("::ffff:10.1.2.3", Some("private")),
        ("::ffff:169.254.169.254", Some("link-local")),
        ("::ffff:0.0.0.0", Some("\"this network\"")),
        ("::127.0.0.1", Some("deprecated IPv4-compatible")),
        ("::8.8.8.8", Some("deprecated IPv4-compatible")),
        ("64:ff9b::7f00:1", Some("loopback")),
        ("64:ff9b::a00:1", Some("private")),
        ("64:ff9b:1::1", Some("local-use NAT64")),
        ("2002:7f00:1::1", Some("loopback")),
        ("2002:c0a8:101::", Some("private")),
        ("100::1", Some("discard-only")),
        ("2001::1", Some("IETF protocol assignment")),
        ("2001:2::1", Some("IETF protocol assignment")),
        ("2001:1ff:ffff::1", Some("IETF protocol assignment")),
        ("2001:db8::1", Some("documentation")),
        ("3fff::1", Some("documentation")),
        ("fc00::1", Some("unique local")),
        ("fd12:3456::1", Some("unique local")),
        ("fe80::1", Some("link-local")),
        ("febf:ffff::1", Some("link-local")),
        ("fec0::1", Some("deprecated site-local")),
        ("ff02::1", Some("multicast")),
        ("ff0e::1", Some("multicast")),
        ("1::1", Some("reserved")),
        ("4000::1", Some("reserved")),
        ("5f00::1", Some("reserved")),
        ("e000::1", Some("reserved")),
    ];

    #[test]
    fn every_range_is_judged_as_listed() {
        let mut wrong = Vec::new();
        for &(addr, expected) in CASES {
            let ip: IpAddr = addr.parse().expect(addr);
            let got = check(ip);
            let ok = match (expected, got) {
                (None, Ok(())) => true,
                (Some(prefix), Err(reason)) => reason.starts_with(prefix),
                _ => false,
            };
            if !ok {
                wrong.push(format!("{addr}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn v4_table_is_well_formed() {
        for &(net, len, reason) in V4_REFUSED {
            let mask = u32::MAX << (32 - u32::from(len));
            assert_eq!(net & !mask, 0, "{reason}: host bits set");
        }
        for &(net, len, reason) in V6_REFUSED {
            assert!(in_v6(net, net, len), "{reason}: host bits set");
        }
    }

    #[test]
    fn refusal_names_host_address_and_reason() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let by_name = refusal("localhost", ip).unwrap();
        assert!(
            by_name.starts_with("localhost resolves to 127.0.0.1, refused: loopback address"),
            "{by_name}"
        );
        assert!(by_name.contains("allow_private_networks"), "{by_name}");
        let literal = refusal("127.0.0.1", ip).unwrap();
        assert!(
            literal.starts_with("127.0.0.1 is refused: loopback address"),
            "{literal}"
        );
        assert_eq!(refusal("example.com", "1.1.1.1".parse().unwrap()), None);
    }
}
