//! API Gateway's WebSocket side, played locally: `/ws/` upgrades a connection and hands its frames to
//! the ws-api functions (as the `$connect` / `$default` / `$disconnect` routes would), and
//! `/ws-management/@connections/{id}` is the Management API (`WS_MANAGEMENT_ENDPOINT`) through which
//! the same notifier code as in AWS reaches the sockets of this process.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Path, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{any, post},
    Router,
};
use c360::http::AppState;
use tokio::sync::mpsc;

enum Outgoing {
    Text(String),
    Close,
}

/// The open sockets of this process by connection id.
#[derive(Clone, Default)]
struct Sockets(Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Outgoing>>>>);

impl Sockets {
    /// False when the connection is not open here (API Gateway's 410).
    fn send(&self, id: &str, message: Outgoing) -> bool {
        let sockets = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sockets.get(id).is_some_and(|socket| socket.send(message).is_ok())
    }

    fn insert(&self, id: String, socket: mpsc::UnboundedSender<Outgoing>) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(id, socket);
    }

    fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
    }
}

#[derive(Clone)]
struct Local {
    state: AppState,
    sockets: Sockets,
}

/// `/ws/` and `/api/back/ws/` (the real apps' URL), and the Management API under `/ws-management`.
pub fn routes(state: &AppState) -> Router {
    let local = Local { state: state.clone(), sockets: Sockets::default() };
    Router::new()
        .route("/ws/", any(upgrade))
        .route("/api/back/ws/", any(upgrade))
        .route("/ws-management/@connections/{id}", post(post_to_connection).delete(delete_connection))
        .with_state(local)
}

async fn upgrade(State(local): State<Local>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve(local, socket))
}

async fn serve(local: Local, mut socket: WebSocket) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (outgoing, mut queued) = mpsc::unbounded_channel();
    local.sockets.insert(id.clone(), outgoing);
    loop {
        tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Err(err) = ws_api::on_message(&local.state, &id, text.as_str()).await {
                        tracing::error!(connection_id = %id, error = %err, "websocket frame failed");
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {} // binary, ping, pong: nothing to do
            },
            message = queued.recv() => match message {
                Some(Outgoing::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
        }
    }
    local.sockets.remove(&id);
    if let Err(err) = ws_api::on_disconnect(&local.state, &id).await {
        tracing::warn!(connection_id = %id, error = %err, "websocket disconnect not recorded");
    }
}

/// API Gateway's answer for a connection that is not open.
fn gone() -> Response {
    (StatusCode::GONE, [("x-amzn-ErrorType", "GoneException")], "{\"message\":null}").into_response()
}

async fn post_to_connection(State(local): State<Local>, Path(id): Path<String>, body: Bytes) -> Response {
    match local.sockets.send(&id, Outgoing::Text(String::from_utf8_lossy(&body).into_owned())) {
        true => StatusCode::OK.into_response(),
        false => gone(),
    }
}

async fn delete_connection(State(local): State<Local>, Path(id): Path<String>) -> Response {
    match local.sockets.send(&id, Outgoing::Close) {
        true => StatusCode::NO_CONTENT.into_response(),
        false => gone(),
    }
}
