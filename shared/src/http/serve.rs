//! Running a router: under Lambda (API Gateway events) or as a plain local HTTP server, with the
//! layers every HTTP function shares.
use std::time::Instant;

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode},
    middleware::{from_fn, from_fn_with_state, Next},
    response::{IntoResponse, Response},
    Json, Router,
};
use serde_json::json;
use tracing::Instrument;

use super::{maintenance, state::AppState};

/// Adds the shared layers: trace id and access log, maintenance gate, JSON 404 for unknown paths.
pub fn finish(router: Router, state: &AppState) -> Router {
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."}))) })
        .layer(from_fn_with_state(state.clone(), maintenance::gate))
        .layer(from_fn(trace))
}

/// One span per request carrying the trace id (`X-Trace-Id`, generated when absent), one access
/// line per response, and an embedded-metric-format latency figure. Never logs headers or bodies.
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
    let span = tracing::info_span!("request", trace_id = %trace_id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), latency_ms = elapsed_ms, "handled");
    });
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
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
