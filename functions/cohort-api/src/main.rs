//! Lambda entry point (or a local server on $PORT when not under Lambda).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    c360::http::serve::run_function(cohort_api::api).await
}
