//! The app portal: `GET /portal`, the page a producer embeds (or links to) so that its own
//! customers manage the endpoints of one application and see its deliveries.
//!
//! Like the status page it is one compiled-in HTML file (`page.html`: inline CSS and plain
//! JavaScript, no external assets) that holds no data. Its link carries a portal token in the
//! URL fragment (`/portal#token=hkp_...`, made by `POST /api/v1/auth/app-portal-access/{app}`),
//! which browsers never send to a server; the page moves it to `sessionStorage` and talks to
//! hookd only through the public API with it, so the token's app and capabilities
//! (`crate::api` checks them) bound what the page can do. Read-only tokens get no write
//! controls, and the API refuses their writes anyway.
//!
//! `[portal]` sets who may frame the page (`frame-ancestors`) and its theme; the theme travels
//! as `data-` attributes of `<body>`, so the script and style stay fixed and are named in the
//! Content-Security-Policy by their SHA-256.

use std::sync::LazyLock;

use crate::{
    api::error::{ApiError, ApiResult},
    config::PortalConfig,
    http::{self, page::block_hash, Method, Request},
    service::Service,
};

/// The page, as compiled in.
const PAGE: &str = include_str!("page.html");

/// Where the theme's attributes go.
const BODY_TAG: &str = "<body>";

/// The hashes of the page's script and style, for its policy.
static HASHES: LazyLock<(String, String)> =
    LazyLock::new(|| (block_hash(PAGE, "script"), block_hash(PAGE, "style")));

/// Answers `/portal`; `None` for every other path.
pub fn handle(svc: &Service, req: &Request) -> Option<ApiResult> {
    if !matches!(req.path(), "/portal" | "/portal/") {
        return None;
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return Some(Err(ApiError::MethodNotAllowed(&["GET", "HEAD"])));
    }
    let config = svc.config();
    if !config.portal.enabled {
        return Some(Err(ApiError::NotFound(
            "the app portal is turned off (portal.enabled)".into(),
        )));
    }
    Some(Ok(http::page::response(
        render(&config.portal).into_bytes(),
        policy(&config.portal),
    )))
}

/// The page with the theme in its `<body>` attributes.
fn render(p: &PortalConfig) -> String {
    let t = &p.theme;
    let mut attrs = format!(" data-title=\"{}\"", escape(&t.title));
    for (name, value) in [
        ("accent", &t.accent),
        ("background", &t.background),
        ("text", &t.text),
        ("logo", &t.logo_url),
    ] {
        if let Some(v) = value {
            attrs.push_str(&format!(" data-{name}=\"{}\"", escape(v)));
        }
    }
    PAGE.replacen(BODY_TAG, &format!("<body{attrs}>"), 1)
}

/// Only the page's own script and style run, requests go only to its own origin, images come
/// from it or the theme's logo, and only `frame_ancestors` may frame it.
fn policy(p: &PortalConfig) -> String {
    let (script, style) = &*HASHES;
    let logo = p
        .theme
        .logo_url
        .as_deref()
        .map(|u| format!(" {}", origin(u)))
        .unwrap_or_default();
    let ancestors = if p.frame_ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        p.frame_ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; \
         img-src 'self' data:{logo}; base-uri 'none'; form-action 'none'; \
         frame-ancestors {ancestors}"
    )
}

/// `https://host:port` of a URL the config checked (`scheme://host[:port]/...`).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Escapes text for a double-quoted HTML attribute.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::page::inline_block;

    #[test]
    fn the_page_is_self_contained_and_its_policy_names_its_blocks() {
        http::page::assert_self_contained(PAGE);
        assert_eq!(PAGE.matches(BODY_TAG).count(), 1);
        let p = PortalConfig::default();
        let csp = policy(&p);
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(csp.ends_with("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
        // The theme changes the body only: the hashed blocks stay as they are.
        let mut themed = PortalConfig::default();
        themed.theme.title = "Acme \"hooks\" <b>".into();
        themed.theme.accent = Some("#0af".into());
        themed.theme.logo_url = Some("https://cdn.example.com:8443/a/logo.svg".into());
        themed.frame_ancestors = vec!["'self'".into(), "https://*.example.com".into()];
        let html = render(&themed);
        assert!(html.contains(
            "<body data-title=\"Acme &quot;hooks&quot; &lt;b&gt;\" data-accent=\"#0af\" \
             data-logo=\"https://cdn.example.com:8443/a/logo.svg\">"
        ));
        assert_eq!(inline_block(&html, "script"), inline_block(PAGE, "script"));
        let csp = policy(&themed);
        assert!(
            csp.contains("img-src 'self' data: https://cdn.example.com:8443;"),
            "{csp}"
        );
        assert!(
            csp.ends_with("frame-ancestors 'self' https://*.example.com"),
            "{csp}"
        );
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin("https://a.example.com/x/y.png"),
            "https://a.example.com"
        );
        assert_eq!(origin("http://a:8080"), "http://a:8080");
    }
}
