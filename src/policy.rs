//! Endpoint policies (`[endpoint_policy]`): rules every endpoint URL, and every application's
//! endpoint count, must satisfy.
//!
//! | rule (its config key) | violated when |
//! |---|---|
//! | `endpoint_policy.https_only` | the URL is `http://` |
//! | `endpoint_policy.allowed_host_suffixes` | the list is not empty and the host is under none of its entries |
//! | `endpoint_policy.denied_hosts` | the host is, or is under, one of its entries |
//! | `endpoint_policy.endpoints_per_app_max` | the endpoint would be one more than the maximum in its app |
//!
//! Host matching: an entry `example.com` matches `example.com` and every name under it
//! (`a.example.com`), never `badexample.com`; an entry `.example.com` matches only the names
//! under it. An IP address matches only an entry that is the same address.
//!
//! [`violations`] is pure. The API calls it on endpoint create and update (a violation is a
//! 422 naming the rule). The rules can change when the config does: at start and on every
//! config reload (SIGHUP), `reload::recheck` calls it for every stored endpoint, in
//! creation order per application, and disables those that now violate a rule, with the
//! [`Violation`] as the reason. Config validation checks the URLs of the endpoints declared in
//! the file with [`url_violations_of`].

use storage::state::EndpointRecord;

pub use crate::config::policy::{url_violations_of, Violation};
use crate::{
    config::{policy::url_violations, EndpointPolicy},
    model::url::Url,
};

/// The rules `endpoint` breaks under `policy`. `rank` is its place among its application's
/// endpoints in creation order, counting from 0 (for a new endpoint: how many the app has
/// already), or `None` to leave the count rule out (an update adds no endpoint). A URL that
/// does not parse breaks none of these rules; URL validation reports it.
pub fn violations(
    policy: &EndpointPolicy,
    endpoint: &EndpointRecord,
    rank: Option<usize>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Ok(url) = Url::parse(&endpoint.url) {
        url_violations(policy, &url, &mut out);
    }
    let max = policy.endpoints_per_app_max as usize;
    if let Some(rank) = rank.filter(|&r| r >= max) {
        out.push(Violation {
            rule: "endpoint_policy.endpoints_per_app_max",
            detail: format!(
                "the application has {rank} endpoints already; at most {max} are allowed"
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> EndpointRecord {
        EndpointRecord::new(1, 1, "ep_1".into(), url.into(), Vec::new(), 0)
    }

    fn rules(policy: &EndpointPolicy, url: &str, rank: Option<usize>) -> Vec<&'static str> {
        violations(policy, &endpoint(url), rank)
            .iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn the_default_policy_allows_any_url() {
        let p = EndpointPolicy::default();
        assert!(rules(&p, "http://example.com/", Some(0)).is_empty());
        assert!(rules(&p, "https://10.0.0.1:8443/x", None).is_empty());
        assert_eq!(
            rules(&p, "https://example.com/", Some(1000)),
            ["endpoint_policy.endpoints_per_app_max"]
        );
        assert!(rules(&p, "https://example.com/", Some(999)).is_empty());
    }

    #[test]
    fn https_only() {
        let p = EndpointPolicy {
            https_only: true,
            ..EndpointPolicy::default()
        };
        assert_eq!(
            rules(&p, "http://example.com/", None),
            ["endpoint_policy.https_only"]
        );
        assert!(rules(&p, "HTTPS://example.com/", None).is_empty());
        assert!(
            rules(&p, "not a url", None).is_empty(),
            "URL validation's job"
        );
    }

    #[test]
    fn host_lists_match_names_under_an_entry_not_mere_suffixes() {
        let p = EndpointPolicy {
            allowed_host_suffixes: vec![
                "example.com".into(),
                ".hooks.test".into(),
                "10.1.2.3".into(),
            ],
            denied_hosts: vec!["bad.example.com".into(), "10.1.2.3".into()],
            ..EndpointPolicy::default()
        };
        let allowed = "endpoint_policy.allowed_host_suffixes";
        let denied = "endpoint_policy.denied_hosts";
        for ok in [
            "https://example.com/",
            "https://a.example.com/",
            "https://EXAMPLE.com./x",
            "https://x.y.hooks.test/",
        ] {
            assert!(rules(&p, ok, None).is_empty(), "{ok}");
        }
        assert_eq!(rules(&p, "https://badexample.com/", None), [allowed]);
        assert_eq!(
            rules(&p, "https://hooks.test/", None),
            [allowed],
            "only under .hooks.test"
        );
        assert_eq!(rules(&p, "https://example.org/", None), [allowed]);
        assert_eq!(rules(&p, "https://bad.example.com/", None), [denied]);
        assert_eq!(rules(&p, "https://x.bad.example.com/", None), [denied]);
        // Addresses match only themselves, never as a suffix.
        assert_eq!(rules(&p, "https://10.1.2.3/", None), [denied]);
        assert_eq!(rules(&p, "https://110.1.2.3/", None), [allowed]);
        assert_eq!(rules(&p, "https://[::1]/", None), [allowed]);
        // Every broken rule is named, in a stable order.
        let strict = EndpointPolicy {
            https_only: true,
            endpoints_per_app_max: 1,
            ..p
        };
        assert_eq!(
            rules(&strict, "http://badexample.com/", Some(1)),
            [
                "endpoint_policy.https_only",
                allowed,
                "endpoint_policy.endpoints_per_app_max"
            ]
        );
        let v = &violations(&strict, &endpoint("http://example.com/"), None)[0];
        assert_eq!(
            v.to_string(),
            "endpoint_policy.https_only: the URL must start with https://"
        );
    }
}
