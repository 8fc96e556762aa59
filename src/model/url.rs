//! Endpoint URLs: the small part of RFC 3986 that webhook delivery needs.
//!
//! `http` or `https`, a host (name, IPv4, or bracketed IPv6), an optional port, and a path with
//! an optional query. No user info (credentials in URLs end up in logs), no fragment.

use std::net::IpAddr;

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// Lowercased; an IPv6 literal without its brackets.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Longest URL accepted (as Svix).
pub const URL_BYTES_MAX: usize = 65_536;

impl Url {
    /// Parses and checks an endpoint URL; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > URL_BYTES_MAX {
            return Err(format!("longer than {URL_BYTES_MAX} bytes"));
        }
        if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("contains spaces or control characters".into());
        }
        let (https, rest) = if let Some(r) = strip_prefix_ci(s, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(s, "http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if rest.contains('#') {
            return Err("must not have a fragment (#...)".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err("must not contain credentials (user@host)".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in IPv6 host")?;
            h.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("{h:?} is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("junk after IPv6 host")?),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err("has no host".into());
        }
        if !host.contains(':')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(format!(
                "host {host:?} has characters a host name cannot have"
            ));
        }
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("port {p:?} is not a number from 1 to 65535")),
            },
        };
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Self {
            https,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// The host as an IP address, when it is a literal one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let u = Url::parse("https://Example.com/hook?x=1").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "example.com", 443, "/hook?x=1")
        );
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.ip()),
            (8080, "/", Some("127.0.0.1".parse().unwrap()))
        );
        let u = Url::parse("http://[::1]:9/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(Url::parse("http://h?q").unwrap().path, "/?q");
    }

    #[test]
    fn refuses_what_it_must() {
        for bad in [
            "ftp://x",
            "https://",
            "https://user:pw@x/",
            "https://x:0/",
            "https://x:99999/",
            "https://x/#frag",
            "https://x y/",
            "https://[::1/",
            "https://[zz]/",
            "x",
            "https://ex\u{e9}mple.com/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
