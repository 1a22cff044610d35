//! `/schema` (the OpenAPI document of every function) and `/docs` (Swagger UI, served from assets
//! compiled into the binary: it works offline).
use std::sync::OnceLock;

use axum::{
    extract::State,
    http::{header, Method},
    response::{Html, IntoResponse},
    Router,
};
use c360::http::{contract::Doc, openapi, Api, AppState, Exposure, MethodPolicy, RouteSpec};

const BUNDLE: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const STYLE: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

/// Relative URLs so the page works at `/docs` and behind the `/api/back` prefix alike.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Cohort360 backend API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "schema", dom_id: "#swagger-ui", persistAuthorization: true });
  </script>
</body>
</html>
"##;

fn document_doc() -> Doc {
    Doc::new().document(200, "This document: OpenAPI 3.1, generated from the operations' types.")
}

/// The document, serialized once per container on its first request: a cold start that serves
/// `/maintenances/next/` never builds it.
static DOCUMENT: OnceLock<String> = OnceLock::new();

async fn schema(State(state): State<AppState>) -> impl IntoResponse {
    let document = DOCUMENT.get_or_init(|| openapi::document(&crate::every_route(&state)).to_string());
    ([(header::CONTENT_TYPE, "application/json")], document.as_str())
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "docs")
        .method_policy(MethodPolicy::Open)
        .route(Method::GET, "/schema", Exposure::Public, "OpenAPI document", schema)
        .doc(document_doc())
        .route(Method::GET, "/schema/", Exposure::Public, "OpenAPI document", schema)
        .doc(document_doc())
        .route(Method::GET, "/docs", Exposure::Public, "Swagger UI", || async { Html(PAGE) })
        .doc(Doc::new().file(200, "text/html", "Swagger UI, showing this document."))
        .route(Method::GET, "/docs/swagger-ui-bundle.js", Exposure::Public, "Swagger UI script", || async {
            (
                [(header::CONTENT_TYPE, "application/javascript"), (header::CACHE_CONTROL, "public, max-age=86400")],
                BUNDLE,
            )
                .into_response()
        })
        .doc(Doc::new().file(200, "application/javascript", "Swagger UI's script."))
        .route(Method::GET, "/docs/swagger-ui.css", Exposure::Public, "Swagger UI style", || async {
            ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "public, max-age=86400")], STYLE)
                .into_response()
        })
        .doc(Doc::new().file(200, "text/css", "Swagger UI's style sheet."))
        .build()
}
