//! Drop-in migration from another sender: an endpoint's `legacySignatures` add GitHub's
//! (`X-Hub-Signature-256`), Stripe's (`Stripe-Signature`) or a generic HMAC signature header
//! beside the Standard Webhooks ones, and each verifies with that provider's own code: GitHub's
//! `@octokit/webhooks-methods` (npm) and Stripe's `stripe` library (PyPI), both pinned and
//! installed by `.ci/run`; the generic scheme with Python's `hmac`. A body changed by one byte
//! fails each of them.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use receiver::Receiver;
use serde_json::json;

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_test_8gYbT1vLqWnXbZ0";
const SHOPIFY_SECRET: &str = "shpss_0123456789abcdef";

const COMPAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat");

/// Runs a verifier; whether it accepted.
fn verifies(program: &str, args: &[&str]) -> bool {
    let out = Command::new(program)
        .current_dir(COMPAT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{program} {args:?} could not check:\n{stdout}\n{stderr}"
    );
    out.status.success()
}

/// Every legacy signature of a delivery of `body` verifies with its provider's code.
fn check_all(dir: &Path, body: &[u8], header: &dyn Fn(&str) -> String) -> [bool; 3] {
    let file = dir.join("body.json");
    std::fs::write(&file, body).unwrap();
    let file = file.to_str().unwrap();
    [
        verifies(
            "node",
            &[
                "js/github_verify.mjs",
                GITHUB_SECRET,
                file,
                &header("x-hub-signature-256"),
            ],
        ),
        verifies(
            "python3",
            &[
                "legacy_verify.py",
                "stripe",
                STRIPE_SECRET,
                file,
                &header("stripe-signature"),
            ],
        ),
        verifies(
            "python3",
            &[
                "legacy_verify.py",
                "hmac",
                SHOPIFY_SECRET,
                file,
                &header("x-shopify-hmac-sha256"),
                "base64",
                "",
            ],
        ),
    ]
}

#[test]
fn legacy_signatures_verify_with_each_providers_own_code() {
    let github_lib = Path::new(COMPAT).join("js/node_modules/@octokit/webhooks-methods");
    assert!(
        github_lib.is_dir(),
        "@octokit/webhooks-methods is missing: npm ci --prefix tests/compat/js (as .ci/run does)"
    );
    let probe = Command::new("python3")
        .args(["-c", "import stripe"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the stripe Python package is missing: pip install -r tests/compat/requirements.txt"
    );
    let rx = Receiver::start();
    let h = hookd::Hookd::start("[delivery]\nallow_private_networks = true\n");
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let ep = h.create(
        "/api/v1/app/shop/endpoint",
        json!({
            "url": rx.url("/hook"),
            "legacySignatures": [
                {"scheme": "github", "secret": GITHUB_SECRET},
                {"scheme": "stripe", "secret": STRIPE_SECRET},
                {"scheme": "hmac-sha256", "secret": SHOPIFY_SECRET,
                 "header": "X-Shopify-Hmac-Sha256", "encoding": "base64"},
            ],
        }),
    );
    // Shown without their secrets.
    let shown = ep["legacySignatures"].to_string();
    for secret in [GITHUB_SECRET, STRIPE_SECRET, SHOPIFY_SECRET] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(
        ep["legacySignatures"][2],
        json!({"scheme": "hmac-sha256", "header": "X-Shopify-Hmac-Sha256",
               "encoding": "base64", "prefix": ""})
    );
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/msg",
        Some(r#"{"eventType":"order.paid","payload":{"amount":1200,"note":"caf\u00e9"}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let got = rx.wait_for_requests(1, Duration::from_secs(20)).remove(0);
    let header = |name: &str| {
        got.header(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", got.headers))
            .to_owned()
    };
    // The Standard Webhooks headers are still there.
    assert!(header("webhook-signature").starts_with("v1,"));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(check_all(dir.path(), &got.body, &header), [true; 3]);
    // One byte changed: none of them accepts it.
    let mut tampered = got.body.clone();
    let at = tampered.iter().position(|&b| b == b'1').unwrap();
    tampered[at] = b'9';
    assert_eq!(check_all(dir.path(), &tampered, &header), [false; 3]);

    // `null` clears them: the next delivery has none.
    let path = format!("/api/v1/app/shop/endpoint/{ep_id}");
    let r = h.admin("PATCH", &path, Some(r#"{"legacySignatures":null}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().get("legacySignatures").is_none(), "{}", r.body);
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/msg",
        Some(r#"{"eventType":"order.paid","payload":{"n":2}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let second = rx.wait_for_requests(2, Duration::from_secs(20)).remove(1);
    for name in [
        "x-hub-signature-256",
        "stripe-signature",
        "x-shopify-hmac-sha256",
    ] {
        assert_eq!(second.header(name), None, "{name}");
    }
}

#[test]
fn bad_legacy_signatures_are_refused_where_they_are() {
    let h = hookd::Hookd::start("[delivery]\nallow_private_networks = true\n");
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let refused = |body: serde_json::Value| {
        let r = h.admin("POST", "/api/v1/app/shop/endpoint", Some(&body.to_string()));
        assert_eq!(r.status, 422, "{}", r.body);
        r.json()["detail"][0]["loc"].clone()
    };
    let url = "http://127.0.0.1:9/hook";
    assert_eq!(
        refused(json!({"url": url, "legacySignatures": [
            {"scheme": "github", "secret": "a"}, {"scheme": "gitlab", "secret": "b"}]})),
        json!(["body", "legacySignatures", "1", "scheme"])
    );
    assert_eq!(
        refused(json!({"url": url, "legacySignatures": [
            {"scheme": "hmac-sha256", "secret": "a", "header": "webhook-signature"}]})),
        json!(["body", "legacySignatures", "0", "header"])
    );
    assert_eq!(
        refused(json!({"url": url, "legacySignatures": [{"scheme": "stripe", "secret": ""}]})),
        json!(["body", "legacySignatures", "0", "secret"])
    );
    // The same header as a custom header.
    assert_eq!(
        refused(json!({"url": url, "headers": {"Stripe-Signature": "x"},
                       "legacySignatures": [{"scheme": "stripe", "secret": "a"}]})),
        json!(["body", "legacySignatures"])
    );
    // Unknown fields in an entry are refused too (a typo must not silently drop a setting).
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(
            &json!({"url": url, "legacySignatures": [
                {"scheme": "github", "secret": "a", "headr": "X"}]})
            .to_string(),
        ),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}
