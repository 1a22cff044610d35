//! Lambda entry point: EventBridge schedules whose input is `{"task": "<name>"}`.
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    c360::telemetry::init();
    let tasks = scheduled_tasks::Tasks::from_env().await?;
    let tasks = &tasks;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        scheduled_tasks::function_handler(tasks, event.payload).await.map_err(lambda_runtime::Error::from)
    }))
    .await
}
