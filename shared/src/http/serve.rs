//! Running a router: under Lambda (API Gateway events) or as a plain local HTTP server, with the
//! layers every HTTP function shares.
use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderValue, StatusCode},
    middleware::{from_fn, from_fn_with_state, Next},
    response::{IntoResponse, Response},
    Json, Router,
};
use serde_json::json;
use tracing::Instrument;

use super::{cors, maintenance, state::AppState};

/// Adds the shared layers: trace id and access log, CORS, panic containment, maintenance gate, JSON 404
/// for unknown paths.
pub fn finish(router: Router, state: &AppState) -> Router {
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."}))) })
        .layer(from_fn_with_state(state.clone(), maintenance::gate))
        .layer(from_fn(contain_panics))
        .layer(from_fn_with_state(state.clone(), cors::layer))
        .layer(from_fn(trace))
}

/// A handler that panics answers the 500 of any internal error, instead of dropping the connection
/// (dev server) or failing the whole invocation (API Gateway's 502 under Lambda). No handler should
/// panic; this keeps one that does from taking more than its own request down.
async fn contain_panics(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req).instrument(tracing::Span::current())).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(panicked = err.is_panic(), "handler did not complete");
            crate::error::AppError::Internal("handler did not complete".into()).into_response()
        }
    }
}

/// One span per request carrying the trace id (`X-Trace-Id`, generated when absent), one access
/// line per response, and under Lambda an embedded-metric-format line. Never logs headers or bodies.
async fn trace(mut req: Request, next: Next) -> Response {
    let trace_id = req
        .headers()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        req.headers_mut().insert("x-trace-id", value);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let span = tracing::info_span!("request", trace_id = %trace_id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), latency_ms = elapsed_ms, "handled");
    });
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        // CloudWatch embedded metric format: a metric per route template (low cardinality), no log parsing.
        println!(
            "{}",
            latency_metric(
                route.as_deref().unwrap_or("unmatched"),
                method.as_str(),
                response.status().as_u16(),
                elapsed_ms
            )
        );
    }
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
}

/// One EMF line: `Latency` (ms) and `Errors5xx` by route and method, namespace `Cohort360`.
pub fn latency_metric(route: &str, method: &str, status: u16, latency_ms: f64) -> String {
    json!({
        "_aws": {
            "Timestamp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            "CloudWatchMetrics": [{
                "Namespace": "Cohort360",
                "Dimensions": [["Route", "Method"]],
                "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}, {"Name": "Errors5xx", "Unit": "Count"}]
            }]
        },
        "Route": route,
        "Method": method,
        "Status": status,
        "Latency": latency_ms,
        "Errors5xx": u8::from(status >= 500),
    })
    .to_string()
}

/// Runs under Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else serves on `127.0.0.1:$PORT`.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_http::run(router).await;
    }
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, "listening");
    axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// A 404 JSON body for `/` (spec §9.7).
pub async fn page_not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(json!({"error": "Page Not Found"})))
}

/// The whole `main` of an HTTP function: logging, state from the environment, its routes.
pub async fn run_function(api: super::FunctionApi) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let (routes, _) = api(&state);
    run(finish(routes, &state)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_router_keeps_serving() {
        use tower::ServiceExt;
        let router = Router::new()
            .route("/boom", axum::routing::get(|| async { panic!("a bug") as &'static str }))
            .route("/ok", axum::routing::get(|| async { "fine" }))
            .layer(from_fn(contain_panics));
        let call = |path: &str| {
            router.clone().oneshot(axum::http::Request::get(path).body(axum::body::Body::empty()).expect("a request"))
        };
        let boom = call("/boom").await.expect("infallible");
        assert_eq!(boom.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(boom.into_body(), 1024).await.expect("a body");
        assert!(!String::from_utf8_lossy(&body).contains("a bug"), "the cause stays in the logs");
        assert_eq!(call("/ok").await.expect("infallible").status(), StatusCode::OK);
    }

    #[test]
    fn latency_metric_is_embedded_metric_format() {
        let line: serde_json::Value =
            serde_json::from_str(&latency_metric("/users/{username}/", "GET", 503, 12.5)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Cohort360");
        assert_eq!(
            (line["Route"].as_str(), line["Latency"].as_f64(), line["Errors5xx"].as_u64()),
            (Some("/users/{username}/"), Some(12.5), Some(1))
        );
    }
}
