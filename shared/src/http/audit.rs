//! The request audit log (spec §0.12): method, path, caller, masked body, status and duration of
//! the audited routes.
//!
//! The row is written **before** the handler runs, and the request is refused (503, nothing done)
//! when it cannot be: an audited write never takes effect without its row. The status and duration
//! are added once the handler has answered. Every recorded text is masked and bounded, so the row
//! always fits in a DynamoDB item whatever the client sends.
use std::time::Instant;

use axum::{
    body::{to_bytes, Body as RawBody},
    extract::{FromRequest, FromRequestParts, MatchedPath, Request, State},
    http::{header::CONTENT_TYPE, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    auth::Caller,
    body::{Body, MAX_BODY_BYTES},
    state::AppState,
};
use crate::{
    domain::{
        request_log::{self, RecordedBody, RequestLog},
        time,
    },
    error::AppError,
};

const AUDIT_UNAVAILABLE: &str = "The audit log could not be written: nothing was done. Please retry.";

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(request_log::masked_header)
}

/// The route template of the request, relative like its path (a nesting prefix such as the dev
/// server's `/api/back` removed).
fn route_of(parts: &Parts) -> Option<String> {
    let template: Vec<&str> = parts.extensions.get::<MatchedPath>()?.as_str().split('/').collect();
    let depth = parts.uri.path().split('/').count();
    Some(template.get(template.len().checked_sub(depth)?..)?.join("/"))
}

/// The body as the handler will parse it, for the log: `None` when it does not parse (the handler
/// answers 400 and nothing happens).
async fn parsed_body(parts: &Parts, bytes: &axum::body::Bytes) -> Option<RecordedBody> {
    let mut copy = Request::new(RawBody::from(bytes.clone()));
    if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
        copy.headers_mut().insert(CONTENT_TYPE, content_type.clone());
    }
    let Body(map) = Body::from_request(copy, &()).await.ok()?;
    Some(RecordedBody::masked(map))
}

pub async fn record(
    State(state): State<AppState>,
    view: &'static str,
    authenticated: bool,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let requested_at = time::now();
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return AppError::ParseError("Request body too large or unreadable.".into()).into_response();
    };
    // Resolved here so the row names the caller; the handler's extractor reuses it.
    let user = if authenticated {
        Caller::from_request_parts(&mut parts, &state)
            .await
            .ok()
            .and_then(|c| c.principal().map(|p| p.username.clone()))
    } else {
        None
    };
    let recorded = parsed_body(&parts, &bytes).await.unwrap_or_default();
    let (view_name, view_method) = view.split_once('.').unwrap_or((view, ""));
    let log = RequestLog {
        id: (requested_at.unix_timestamp_nanos() / 1_000) as i64,
        user: user.clone(),
        username_persistent: user,
        requested_at,
        response_ms: 0,
        path: request_log::masked_path(parts.uri.path()),
        route: route_of(&parts),
        view: view_name.to_owned(),
        view_method: view_method.to_owned(),
        remote_addr: header(&parts, "x-forwarded-for").and_then(|f| f.split(',').next().map(|a| a.trim().to_owned())),
        host: header(&parts, "host"),
        method: parts.method.to_string(),
        user_agent: header(&parts, "user-agent"),
        query_params: request_log::masked_query(parts.uri.query().unwrap_or_default()),
        data: recorded.text,
        data_size: recorded.size,
        data_sha256: recorded.sha256,
        status_code: None,
    };
    let retention = ::time::Duration::days(state.settings.request_log_retention_days);
    let id = match state.store.put_request_log(log, retention).await {
        Ok(id) => id,
        Err(err) => {
            tracing::error!(error = %err, "could not write the request log: request refused");
            return AppError::Message { status: 503, message: AUDIT_UNAVAILABLE.into() }.into_response();
        }
    };

    let response = next.run(Request::from_parts(parts, RawBody::from(bytes))).await;

    let elapsed_ms = started.elapsed().as_millis() as i64;
    if let Err(err) = state.store.finish_request_log(id, response.status().as_u16(), elapsed_ms).await {
        // The row exists with the request; only its outcome is missing.
        tracing::warn!(error = %err, log_id = id, "could not record the response status in the request log");
    }
    response
}
