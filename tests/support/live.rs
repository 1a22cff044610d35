//! The app served on a local port, as `make dev` serves it: real HTTP (the fakes call it back), the
//! WebSocket endpoints `/ws/` and `/api/back/ws/`, and its own `/ws-management` for the pushes.
use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::TestApp;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A test app with `extra` settings, served on a free local port; returns the app and its address.
pub async fn served_app(extra: &[(&str, &str)]) -> (TestApp, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let endpoint = format!("http://{address}/ws-management");
    let mut settings = vec![("WS_MANAGEMENT_ENDPOINT", endpoint.as_str())];
    settings.extend_from_slice(extra);
    let app = TestApp::with_settings(&settings).await;
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (app, address)
}

/// The first frame a client sends (spec §10.3).
pub fn handshake(token: &str) -> String {
    json!({"token": token, "auth_method": "JWT"}).to_string()
}

/// A client connected to `/ws/` whose handshake was accepted.
pub async fn connect(address: SocketAddr, token: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws/")).await.unwrap();
    socket.send(Message::text(handshake(token))).await.unwrap();
    assert_eq!(read(&mut socket).await, json!({"type": "handshake", "status": "accepted", "details": ""}));
    socket
}

/// The next text frame, as JSON (10 s at most).
pub async fn read(socket: &mut Socket) -> Value {
    let frame = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a frame in time");
    match frame.expect("socket open").expect("valid frame") {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("a text frame, got {other:?}"),
    }
}

/// The `job_status` events about `uuid`, read until one has `status` (the earlier ones included).
pub async fn events_until(socket: &mut Socket, uuid: &str, status: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = read(socket).await;
        if event["type"] == "job_status" && event["uuid"] == uuid {
            let done = event["status"] == status;
            events.push(event);
            if done {
                return events;
            }
        }
    }
}
