//! AWS SDK configuration shared by every function: rustls with ring (no aws-lc-sys build), and the
//! standard environment chain, so `AWS_ENDPOINT_URL` points the SDK at a local emulator.
use aws_smithy_http_client::{tls, Builder};

pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_loader().load().await
}

/// The loader behind [`sdk_config`], for callers that set more (tests pin endpoint and credentials).
pub fn sdk_loader() -> aws_config::ConfigLoader {
    let http = Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

/// An HTTP client for third-party services (identity server, OIDC, QueryExecutor, FHIR...).
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    // reqwest is built without a bundled crypto provider; use ring like the AWS SDK.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .build()
        .unwrap_or_default()
}

/// An S3 client; path-style addressing when an emulator endpoint is configured (bucket names as
/// host names do not resolve on 127.0.0.1).
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some() || sdk.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style).build())
}
