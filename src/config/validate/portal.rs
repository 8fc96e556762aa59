//! `[portal]`: the app portal's public URL, token lifetime, who may frame it, and its theme.
//! Everything here ends up in a URL, a Content-Security-Policy header or the page itself, so
//! every value is held to a narrow alphabet: nothing in it can end a directive or a string.

use std::time::Duration;

use super::super::raw::RawConfig;
use super::super::{PortalConfig, PortalTheme};
use super::{Checker, Zero};

/// The longest `token_expiry_max` allowed.
const EXPIRY_CEILING: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest URL (public URL, logo).
const URL_BYTES_MAX: usize = 2048;
/// Most `frame_ancestors` entries.
const FRAME_ANCESTORS_MAX: usize = 32;
/// Longest title, in characters.
const TITLE_CHARS_MAX: usize = 80;
/// The highest `tokens_per_app_max`. The access route counts an app's tokens up to it on a
/// shard, and one refused at the limit reads their records: about 3 ms at 2,000 (20 ms at
/// 10,000), measured by hand on 2026-12-06.
const TOKENS_PER_APP_CEILING: i64 = 2_000;

pub(super) fn portal(c: &mut Checker, raw: &RawConfig) -> PortalConfig {
    let r = &raw.portal;
    let d = PortalConfig::default();
    let token_expiry_max = c.duration(
        "portal.token_expiry_max",
        r.token_expiry_max.as_deref(),
        d.token_expiry_max,
        Zero::Refused,
    );
    if token_expiry_max > EXPIRY_CEILING {
        c.error("portal.token_expiry_max", "must be at most 366d");
    }
    let public_url = r.public_url.as_ref().and_then(|u| {
        let trimmed = u.trim_end_matches('/');
        if web_url(trimmed) {
            Some(trimmed.to_owned())
        } else {
            c.error(
                "portal.public_url",
                format!(
                    "{u:?} is not an http:// or https:// URL without query or fragment \
                     (e.g. \"https://hooks.example.com\")"
                ),
            );
            None
        }
    });
    let frame_ancestors = match &r.frame_ancestors {
        None => Vec::new(),
        Some(list) => {
            if list.len() > FRAME_ANCESTORS_MAX {
                c.error(
                    "portal.frame_ancestors",
                    format!(
                        "has {} entries, at most {FRAME_ANCESTORS_MAX} are allowed",
                        list.len()
                    ),
                );
            }
            for (i, source) in list.iter().enumerate() {
                if !frame_source(source) {
                    c.error(
                        format!("portal.frame_ancestors[{i}]"),
                        format!(
                            "{source:?} is not a frame source: \"'self'\", an origin such as \
                             \"https://app.example.com\" or \"https://*.example.com:8443\", or a \
                             scheme such as \"https:\""
                        ),
                    );
                }
            }
            list.clone()
        }
    };
    PortalConfig {
        enabled: r.enabled.unwrap_or(d.enabled),
        public_url,
        token_expiry_max,
        tokens_per_app_max: c.count(
            "portal.tokens_per_app_max",
            r.tokens_per_app_max,
            d.tokens_per_app_max,
            1..=TOKENS_PER_APP_CEILING,
        ),
        frame_ancestors,
        theme: theme(c, raw),
    }
}

fn theme(c: &mut Checker, raw: &RawConfig) -> PortalTheme {
    let d = PortalConfig::default();
    let t = &raw.portal.theme;
    let title = match &t.title {
        None => d.theme.title.clone(),
        Some(title) => {
            let n = title.chars().count();
            if n == 0 || n > TITLE_CHARS_MAX || title.chars().any(char::is_control) {
                c.error(
                    "portal.theme.title",
                    format!("must be 1 to {TITLE_CHARS_MAX} characters without control characters"),
                );
            }
            title.clone()
        }
    };
    let mut colour = |key: &str, value: &Option<String>| {
        let v = value.as_ref()?;
        if !hex_colour(v) {
            c.error(
                format!("portal.theme.{key}"),
                format!("{v:?} is not a colour: \"#rgb\" or \"#rrggbb\""),
            );
        }
        Some(v.to_ascii_lowercase())
    };
    let accent = colour("accent", &t.accent);
    let background = colour("background", &t.background);
    let text = colour("text", &t.text);
    let logo_url = t.logo_url.as_ref().map(|u| {
        if !web_url(u) {
            c.error(
                "portal.theme.logo_url",
                format!("{u:?} is not an http:// or https:// URL without query or fragment"),
            );
        }
        u.clone()
    });
    PortalTheme {
        title,
        accent,
        background,
        text,
        logo_url,
    }
}

/// `http(s)://host[:port][/path]`, from a small alphabet (no query, fragment, quote, space,
/// comma or semicolon).
fn web_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    u.len() <= URL_BYTES_MAX
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
        && rest.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'_' | b'~' | b'/' | b':' | b'[' | b']' | b'%'
                )
        })
}

/// A CSP source expression for `frame-ancestors`: `'self'`, a scheme (`https:`), or
/// `[scheme://][*.]host[:port|:*]`.
fn frame_source(s: &str) -> bool {
    if s == "'self'" || s == "https:" || s == "http:" {
        return true;
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        && port.is_none_or(|p| {
            p == "*" || (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

fn hex_colour(v: &str) -> bool {
    v.strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_urls_keep_to_their_alphabet() {
        for ok in [
            "'self'",
            "https:",
            "https://app.example.com",
            "https://*.example.com:8443",
            "example.com",
            "http://localhost:*",
        ] {
            assert!(frame_source(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            "'none' https://x",
            "https://a.com;script-src *",
            "https://a.com,b",
            "'unsafe-inline'",
            "https://a.com/path",
            "https://a.com:99999a",
        ] {
            assert!(!frame_source(bad), "{bad}");
        }
        assert!(web_url("https://hooks.example.com/base"));
        assert!(web_url("http://127.0.0.1:8071"));
        for bad in [
            "ftp://x",
            "https://",
            "https://x/?q",
            "https://x/#f",
            "https://x/a b",
            "https://x/\"",
            "javascript:alert(1)",
        ] {
            assert!(!web_url(bad), "{bad}");
        }
        assert!(hex_colour("#0af") && hex_colour("#00AAff"));
        assert!(!hex_colour("#0af0") && !hex_colour("red") && !hex_colour("#zzz"));
    }
}
