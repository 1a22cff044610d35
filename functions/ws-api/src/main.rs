//! Lambda entry point: the `$connect`, `$disconnect` and `$default` routes of the WebSocket API.
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    c360::telemetry::init();
    let state = c360::http::AppState::from_env().await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(ws_api::function_handler(state, event.payload).await)
    }))
    .await
}
