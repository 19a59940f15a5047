//! The browser client (from `client/web/`), embedded into the binary, and the headers its pages carry.
//!
//! Every file is compiled in with `include_bytes!`, so cargo rebuilds the relay when one changes and a
//! self-hoster gets the whole product from one binary. The pages have no inline script or style at
//! all, which keeps the Content-Security-Policy free of hashes, nonces and `unsafe-inline`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// One embedded file: the URL path that serves it, its media type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_bytes!("../../../client/web/index.html"),
    },
    Asset {
        path: "/chat",
        content_type: HTML,
        body: include_bytes!("../../../client/web/chat.html"),
    },
    Asset {
        path: "/security",
        content_type: HTML,
        body: include_bytes!("../../../client/web/security.html"),
    },
    Asset {
        path: "/style.css",
        content_type: CSS,
        body: include_bytes!("../../../client/web/style.css"),
    },
    Asset {
        path: "/page.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/page.js"),
    },
    Asset {
        path: "/app.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/app.js"),
    },
    Asset {
        path: "/crypto.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/crypto.js"),
    },
    Asset {
        path: "/kdf.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/kdf.js"),
    },
    Asset {
        path: "/kdf-worker.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/kdf-worker.js"),
    },
    Asset {
        path: "/channel.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/channel.js"),
    },
    Asset {
        path: "/steg.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/steg.js"),
    },
    Asset {
        path: "/gone",
        content_type: HTML,
        body: include_bytes!("../../../client/web/gone.html"),
    },
    Asset {
        path: "/gone.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/gone.js"),
    },
    Asset {
        path: "/reasons.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/reasons.js"),
    },
    Asset {
        path: "/ui.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/ui.js"),
    },
    Asset {
        path: "/entry.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/entry.js"),
    },
    Asset {
        path: "/session.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/session.js"),
    },
    Asset {
        path: "/chat.js",
        content_type: JS,
        body: include_bytes!("../../../client/web/chat.js"),
    },
    Asset {
        path: "/robots.txt",
        content_type: TEXT,
        body: b"User-agent: *\nDisallow: /\n",
    },
];

/// Nothing inline and nothing from elsewhere: scripts, styles, the key worker and the socket all
/// come from this origin. `connect-src 'self'` covers the same-origin ws:/wss: socket in current
/// browsers; `img-src data:` admits only the empty favicon that stops a request for /favicon.ico.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; worker-src 'self'; img-src 'self' data:; font-src 'self'; manifest-src 'none'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Powerful features the client never uses, denied so an injected script could not use them either.
const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";

/// Two years, the usual preload-ready value.
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Headers every response of the web client carries.
const COMMON_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", PERMISSIONS_POLICY),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-robots-tag", "noindex, nofollow"),
];

/// The response for a GET/HEAD of `path` (no query string) when it names a page or asset of the
/// browser client, else `None` (the server then answers 404). `hsts` is set when the operator says
/// the relay is served over TLS.
pub(crate) fn serve(path: &str, hsts: bool) -> Option<Response<Full<Bytes>>> {
    let asset = ASSETS.iter().find(|a| a.path == path)?;
    let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // no-store everywhere: a shared or seized device keeps no copy of even the static files, and
    // an upgrade of the relay is never mixed with stale modules.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in COMMON_HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    if hsts {
        headers.insert("strict-transport-security", HeaderValue::from_static(HSTS));
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_asset_is_served_with_the_security_headers() {
        for asset in ASSETS {
            let response = serve(asset.path, false).unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let h = response.headers();
            assert_eq!(h[CONTENT_TYPE], asset.content_type);
            assert_eq!(h[CACHE_CONTROL], "no-store");
            assert_eq!(h["x-frame-options"], "DENY");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert_eq!(h["x-robots-tag"], "noindex, nofollow");
            assert!(h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self';"));
            assert!(!h.contains_key("strict-transport-security"));
        }
    }

    #[test]
    fn hsts_only_when_configured() {
        let response = serve("/chat", true).unwrap();
        assert_eq!(response.headers()["strict-transport-security"], HSTS);
    }

    #[test]
    fn unknown_paths_are_not_ours() {
        for path in [
            "/x",
            "/healthz",
            "/favicon.ico",
            "/chat/",
            "/../Cargo.toml",
            "/index.html",
        ] {
            assert!(serve(path, false).is_none(), "{path}");
        }
    }

    // The client may be mounted under a path prefix (`/stelgano/`), so no page or script may name
    // a root-absolute URL of ours: every link, fetch, socket and redirect is relative.
    #[test]
    fn pages_and_scripts_use_only_relative_urls() {
        for asset in ASSETS
            .iter()
            .filter(|a| a.content_type == HTML || a.content_type == JS)
        {
            let text = std::str::from_utf8(asset.body).unwrap();
            for absolute in [
                "href=\"/",
                "src=\"/",
                "'/api/",
                "`/api/",
                "'/room/",
                "`/room/",
                "'/x'",
                "'/chat'",
                "'/security'",
                "Worker('/",
            ] {
                assert!(
                    !text.contains(absolute),
                    "{}: root-absolute URL {absolute}",
                    asset.path
                );
            }
        }
    }

    // The CSP forbids inline code, so the pages must have none: no inline <script> body, no
    // style attribute or element, no on* handler attribute.
    #[test]
    fn pages_carry_no_inline_script_or_style() {
        for asset in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let page = std::str::from_utf8(asset.body)
                .unwrap()
                .to_ascii_lowercase();
            assert!(!page.contains("<style"), "{}", asset.path);
            assert!(!page.contains(" style="), "{}", asset.path);
            assert!(!page.contains(" onclick="), "{}", asset.path);
            assert!(!page.contains(" onload="), "{}", asset.path);
            for tag in page.split("<script").skip(1) {
                assert!(tag.contains(" src=\""), "{}: inline script", asset.path);
                let after = tag.split_once('>').map(|(_, rest)| rest).unwrap_or("");
                assert!(
                    after.starts_with("</script>"),
                    "{}: inline script",
                    asset.path
                );
            }
        }
    }
}
