//! The web console at `/ui/`: a few static files (HTML, CSS, ES modules)
//! compiled into the binary, served with the headers that keep a page
//! holding an admin token safe, and `GET /` sending browsers there.
//!
//! The console is a client of the JSON API like any other: it has no
//! endpoint of its own, sees exactly what the token it is given may see,
//! and is never fetched from anywhere but this binary (no CDN, no build
//! step). Not here: the data the pages show (the API's handlers), or any
//! layer: these routes add nothing to the evaluation endpoints.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::errors::ApiError;

/// Where the console is served.
pub const CONSOLE_PATH: &str = "/ui/";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Every file of the console; `index.html` is also `/ui/` itself.
const ASSETS: [Asset; 8] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../console/index.html"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../console/console.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/api.js"),
    },
    Asset {
        name: "pages.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/pages.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/charts.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/dom.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../console/favicon.svg"),
    },
];

/// Scripts, styles and requests from this origin only, no inline script or
/// style, no framing: a page that holds an admin token runs nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// `GET /`: browsers go to the console.
pub async fn root() -> Redirect {
    Redirect::temporary(CONSOLE_PATH)
}

/// `GET /ui/`: the console's page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /ui/{file}`: one of its files, or 404.
pub async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return ApiError::no_route().into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            // Revalidated on every load: the files change with the binary.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files `body` names: module imports (`from "./x.js"`) and
    /// `href`/`src` attributes, page anchors (`#/flags`) aside.
    fn references(body: &str) -> Vec<&str> {
        let mut names = Vec::new();
        for opening in ["from \"./", "href=\"", "src=\""] {
            for (at, _) in body.match_indices(opening) {
                let rest = &body[at + opening.len()..];
                let name = &rest[..rest.find('"').unwrap_or(rest.len())];
                if !name.starts_with('#') {
                    names.push(name);
                }
            }
        }
        names
    }

    #[test]
    fn every_file_the_console_names_is_embedded_and_nothing_comes_from_elsewhere() {
        let mut named = 0;
        for asset in &ASSETS {
            for reference in references(asset.body) {
                named += 1;
                assert!(
                    ASSETS.iter().any(|a| a.name == reference),
                    "{} names `{reference}`, which is not embedded",
                    asset.name
                );
            }
            // The SVG namespace is a name, not a place anything is fetched from.
            let fetched = asset.body.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !fetched.contains("http://")
                    && !fetched.contains("https://")
                    && !fetched.contains("//cdn"),
                "{} names another origin",
                asset.name
            );
        }
        // index.html's icon, stylesheet and script, and the modules' imports.
        assert!(named >= ASSETS.len(), "only {named} references found");
    }

    #[test]
    fn an_unknown_file_is_a_404_and_a_known_one_has_its_type() {
        assert_eq!(serve("nope.js").status(), 404);
        assert_eq!(serve("../Cargo.toml").status(), 404);
        let page = serve("index.html");
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}
