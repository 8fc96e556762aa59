//! A web page served as one compiled-in file (the status page, the app portal): the
//! Content-Security-Policy hash of its inline blocks and the answer with its security headers.

use base64::Engine as _;
use sha2::Digest as _;

use super::Response;

/// The text between `<tag>` and `</tag>` (a page has one of each, without attributes).
pub fn inline_block<'a>(html: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = html.find(&open)? + open.len();
    let len = html[start..].find(&format!("</{tag}>"))?;
    Some(&html[start..start + len])
}

/// The CSP source naming the page's one inline `<tag>` block by its SHA-256
/// (`'sha256-...'`), so that it runs and nothing injected would.
pub fn block_hash(html: &str, tag: &str) -> String {
    let body = inline_block(html, tag).unwrap_or("");
    let digest = sha2::Sha256::digest(body.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// `200` with `html` and the headers every page gets: its policy, no sniffing, no referrer,
/// revalidated on each load.
pub fn response(html: Vec<u8>, csp: String) -> Response {
    Response {
        status: 200,
        headers: vec![
            ("content-type", "text/html; charset=utf-8".into()),
            ("content-security-policy", csp),
            ("x-content-type-options", "nosniff".into()),
            ("referrer-policy", "no-referrer".into()),
            ("cache-control", "no-cache".into()),
        ],
        body: html,
    }
}

/// Fails unless `html` is a self-contained page: one inline `<script>` and one `<style>` (the
/// blocks its policy names), nothing fetched from another origin (the SVG namespace name is
/// never fetched), and no markup built from strings. For the pages' own tests.
#[cfg(test)]
pub fn assert_self_contained(html: &str) {
    for tag in ["script", "style"] {
        assert_eq!(html.matches(&format!("<{tag}")).count(), 1, "one <{tag}>");
        assert!(inline_block(html, tag).is_some_and(|b| b.len() > 100));
    }
    let text = html.replace("http://www.w3.org/2000/svg", "");
    for bad in [
        "http://",
        "https://",
        "//cdn",
        "src=",
        "@import",
        "innerHTML",
        "eval(",
    ] {
        assert!(!text.contains(bad), "the page contains {bad:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_found_and_hashed() {
        let html = "<style>a{}</style><script>x()</script>";
        assert_eq!(inline_block(html, "script"), Some("x()"));
        assert_eq!(inline_block(html, "nope"), None);
        // SHA-256 of "x()", base64.
        let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"x()"));
        assert_eq!(block_hash(html, "script"), format!("'sha256-{want}'"));
    }
}
