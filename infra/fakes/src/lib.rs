//! Fake third-party services for local development and tests. They speak the same HTTP contracts
//! as the real ones (the production code cannot tell the difference) and keep their state in
//! memory. Each starts on a given listener so tests can bind port 0.
pub mod export_api;
pub mod fhir;
pub mod hadoop_api;
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

/// An S3 client from the environment (`AWS_ENDPOINT_URL` points it at the emulator, path-style), with
/// rustls over ring as the functions use.
pub async fn s3_from_env() -> aws_sdk_s3::Client {
    use aws_smithy_http_client::{tls, Builder};
    let http = Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).load().await;
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(path_style).build())
}
