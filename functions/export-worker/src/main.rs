//! Lambda entry point: SQS batches from the queue named in template.yaml.
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    c360::telemetry::init();
    let worker = export_worker::Worker::from_env().await?;
    let worker = &worker;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(export_worker::function_handler(worker, event.payload).await)
    }))
    .await
}
