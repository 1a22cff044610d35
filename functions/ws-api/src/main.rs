//! Lambda entry point: the `$connect`, `$disconnect` and `$default` routes of the WebSocket API.
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    c360::telemetry::init();
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(ws_api::function_handler(event.payload).await)
    }))
    .await
}
