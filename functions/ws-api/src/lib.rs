//! The WebSocket API (spec §10.3): `$connect` accepts every connection; the first text frame on
//! `$default` is the handshake `{"token", "auth_method", "headers"?}`, authenticated like an HTTP
//! request; an accepted connection is recorded for its user until `$disconnect`. Answers go through
//! the Management API, so the Lambda and the dev server (which plays that API) run this same code.
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use serde_json::{json, Map, Value};

use c360::{
    auth::AuthMethod,
    domain::time,
    error::{AppError, AppResult},
    http::{auth::authenticate_user_token, AppState, Caller},
};

pub const PENDING_DETAILS: &str = "Could not understand the JSON object, \"token\" key missing";
pub const FORBIDDEN_DETAILS: &str = "Bad token";

/// What a client frame led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Not JSON: ignored, as the original does.
    Ignored,
    /// `token` or `auth_method` missing: the client may try again on the same connection.
    Pending,
    /// Refused; the connection is closed.
    Forbidden,
    /// Recorded for this user (the impersonated one under `X-Impersonate`).
    Accepted(String),
}

pub fn handshake_frame(status: &str, details: &str) -> Value {
    json!({"type": "handshake", "status": status, "details": details})
}

/// `X-Impersonate` among the handshake's `headers`, whatever its case.
fn impersonated(message: &Map<String, Value>) -> Option<&str> {
    let headers = message.get("headers")?.as_object()?;
    headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("x-impersonate")).and_then(|(_, v)| v.as_str())
}

/// Authenticates a handshake frame (no I/O besides the authentication itself).
async fn authenticate(state: &AppState, frame: &str) -> AppResult<Handshake> {
    let Ok(message) = serde_json::from_str::<Value>(frame) else { return Ok(Handshake::Ignored) };
    let Some(message) = message.as_object() else { return Ok(Handshake::Pending) };
    let (Some(token), Some(method)) = (message.get("token"), message.get("auth_method")) else {
        return Ok(Handshake::Pending);
    };
    let (Some(token), Some(method)) = (token.as_str(), method.as_str().and_then(AuthMethod::parse)) else {
        return Ok(Handshake::Forbidden);
    };
    match authenticate_user_token(state, token, method, impersonated(message)).await {
        Ok(Caller::User(principal)) => Ok(Handshake::Accepted(principal.username.clone())),
        Ok(Caller::Anonymous) | Err(AppError::PermissionDenied(_)) => Ok(Handshake::Forbidden),
        Err(other) => Err(other),
    }
}

/// `$default`: one client frame. Records an accepted connection before answering, so the client
/// never misses an event sent after its `accepted`.
pub async fn on_message(state: &AppState, connection_id: &str, frame: &str) -> AppResult<Handshake> {
    let outcome = authenticate(state, frame).await?;
    match &outcome {
        Handshake::Ignored => {}
        Handshake::Pending => {
            state.notifier.post(connection_id, &handshake_frame("pending", PENDING_DETAILS)).await;
        }
        Handshake::Forbidden => {
            state.notifier.post(connection_id, &handshake_frame("forbidden", FORBIDDEN_DETAILS)).await;
            state.notifier.close(connection_id).await;
        }
        Handshake::Accepted(username) => {
            state.store.put_ws_connection(connection_id, username, time::now()).await?;
            state.notifier.post(connection_id, &handshake_frame("accepted", "")).await;
        }
    }
    tracing::info!(connection_id, outcome = ?outcome, "websocket handshake");
    Ok(outcome)
}

/// `$disconnect`: the connection's record goes.
pub async fn on_disconnect(state: &AppState, connection_id: &str) -> AppResult<()> {
    state.store.delete_ws_connection(connection_id).await?;
    Ok(())
}

fn response(status_code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status_code;
    response
}

pub async fn function_handler(state: &AppState, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let connection_id = context.connection_id.as_deref().unwrap_or_default();
    let handled = match context.route_key.as_deref().unwrap_or("$default") {
        "$connect" => Ok(()),
        "$disconnect" => on_disconnect(state, connection_id).await,
        // Binary frames are not JSON text: ignored.
        _ if event.is_base64_encoded => Ok(()),
        _ => on_message(state, connection_id, event.body.as_deref().unwrap_or_default()).await.map(|_| ()),
    };
    match handled {
        Ok(()) => response(200),
        Err(err) => {
            tracing::error!(connection_id, error = %err, "websocket event failed");
            response(500)
        }
    }
}
