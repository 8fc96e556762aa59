//! The URL rules of `[endpoint_policy]`: which endpoint URLs a policy allows. Pure, and the
//! config's own: static endpoint definitions are checked with them at load, and
//! the endpoint policy (`src/policy.rs`) applies them (with the per-app count rule) to every stored endpoint.
//!
//! Host matching: an entry `example.com` matches `example.com` and every name under it
//! (`a.example.com`), never `badexample.com`; an entry `.example.com` matches only the names
//! under it. An IP address matches only an entry that is the same address.

use std::fmt;

use super::EndpointPolicy;
use crate::model::url::Url;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's config key, e.g. `endpoint_policy.https_only`.
    pub rule: &'static str,
    /// What is wrong, in words.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// The URL rules `url` breaks under `policy` (the count rule left out). A URL that does not
/// parse breaks none of them.
pub fn url_violations_of(policy: &EndpointPolicy, url: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Ok(url) = Url::parse(url) {
        url_violations(policy, &url, &mut out);
    }
    out
}

pub(crate) fn url_violations(policy: &EndpointPolicy, url: &Url, out: &mut Vec<Violation>) {
    if policy.https_only && !url.https {
        out.push(Violation {
            rule: "endpoint_policy.https_only",
            detail: "the URL must start with https://".into(),
        });
    }
    let host = url.host.strip_suffix('.').unwrap_or(&url.host);
    let is_ip = url.ip().is_some();
    if !policy.allowed_host_suffixes.is_empty()
        && !policy
            .allowed_host_suffixes
            .iter()
            .any(|entry| host_matches(entry, host, is_ip))
    {
        out.push(Violation {
            rule: "endpoint_policy.allowed_host_suffixes",
            detail: format!("host {host} is not under any allowed suffix"),
        });
    }
    if let Some(entry) = policy
        .denied_hosts
        .iter()
        .find(|entry| host_matches(entry, host, is_ip))
    {
        out.push(Violation {
            rule: "endpoint_policy.denied_hosts",
            detail: format!("host {host} is denied (by {entry:?})"),
        });
    }
}

/// Whether the (lowercase) `host` is the config `entry` or under it; see the module doc.
fn host_matches(entry: &str, host: &str, is_ip: bool) -> bool {
    if is_ip {
        return entry == host;
    }
    match entry.strip_prefix('.') {
        Some(parent) => is_under(host, parent),
        None => host == entry || is_under(host, entry),
    }
}

/// `a.example.com` is under `example.com`; `example.com` and `badexample.com` are not.
fn is_under(host: &str, parent: &str) -> bool {
    host.len() > parent.len()
        && host.ends_with(parent)
        && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
}
