//! Fake third-party services for local development and tests. They speak the same HTTP contracts
//! as the real ones (the production code cannot tell the difference) and keep their state in
//! memory. Each starts on a given listener so tests can bind port 0.
pub mod fhir;
pub mod identity;
pub mod oidc;
pub mod query_executor;

use tokio::{net::TcpListener, task::JoinHandle};

/// Serves a router on `127.0.0.1:<port>` (0 = any free port); returns its base URL.
pub async fn spawn(router: axum::Router, port: u16) -> std::io::Result<(String, JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((url, handle))
}
