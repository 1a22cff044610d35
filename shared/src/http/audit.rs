//! The request audit log (spec §0.12): method, path, caller, masked body, status and duration of
//! the audited routes. Written before the response returns: a Lambda may freeze right after.
use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use serde_json::{Map, Value};

use super::{auth::CallerSlot, state::AppState};
use crate::domain::{
    request_log::{mask, RequestLog},
    time,
};

/// Filled by the [`super::Body`] extractor so the log holds the parsed (then masked) body.
#[derive(Clone, Default)]
pub struct BodySlot(pub Arc<Mutex<Option<Map<String, Value>>>>);

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub async fn record(State(state): State<AppState>, view: &'static str, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let requested_at = time::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query_params = req.uri().query().map(str::to_owned).unwrap_or_default();
    let host = header(&req, "host");
    let user_agent = header(&req, "user-agent");
    let remote_addr = header(&req, "x-forwarded-for").and_then(|f| f.split(',').next().map(|a| a.trim().to_owned()));
    let (caller, body) = (CallerSlot::default(), BodySlot::default());
    req.extensions_mut().insert(caller.clone());
    req.extensions_mut().insert(body.clone());

    let response = next.run(req).await;

    let username = caller.0.lock().ok().and_then(|c| c.clone());
    let data = body.0.lock().ok().and_then(|mut b| b.take()).map(|map| {
        let mut value = Value::Object(map);
        mask(&mut value);
        value.to_string()
    });
    let (view_name, view_method) = view.split_once('.').unwrap_or((view, ""));
    let log = RequestLog {
        id: (requested_at.unix_timestamp_nanos() / 1_000) as i64,
        user: username.clone(),
        username_persistent: username,
        requested_at,
        response_ms: started.elapsed().as_millis() as i64,
        path,
        view: view_name.to_owned(),
        view_method: view_method.to_owned(),
        remote_addr,
        host,
        method,
        user_agent,
        query_params,
        data,
        status_code: response.status().as_u16(),
    };
    let retention = ::time::Duration::days(state.settings.request_log_retention_days);
    if let Err(err) = state.store.put_request_log(log, retention).await {
        // Losing an audit line must not fail the user's request.
        tracing::warn!(error = %err, "could not write the request log");
    }
    response
}
