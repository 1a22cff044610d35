//! What AWS triggers in production, played locally: the SQS event sources of the cohort and export
//! workers (long polling of the same queues; a message is deleted once handled, else it comes back
//! after the visibility timeout and ends in the DLQ, as with Lambda; delayed messages wait in SQS as
//! they do in AWS) and the EventBridge schedules of the refresh task and of the maintenance broadcasts.
use std::{future::Future, time::Duration};

use c360::{clients::jobs::JobQueue, domain::time, services::refresh::run_due_schedules, worker::MessageError};

pub async fn poll_cohort_jobs(worker: cohort_worker::Worker, sqs: aws_sdk_sqs::Client, queue_url: String) {
    let worker = &worker;
    poll("cohort", &sqs, &queue_url, |body| async move { Box::pin(worker.handle(&body)).await }).await
}

pub async fn poll_export_jobs(worker: export_worker::Worker, sqs: aws_sdk_sqs::Client, queue_url: String) {
    let worker = &worker;
    poll("export", &sqs, &queue_url, |body| async move { Box::pin(worker.handle(&body)).await }).await
}

async fn poll<F, Fut>(kind: &str, sqs: &aws_sdk_sqs::Client, queue_url: &str, handle: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), MessageError>>,
{
    loop {
        let received =
            sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).wait_time_seconds(5).send().await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(kind, error = ?err.as_service_error(), "jobs queue unreachable; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        for message in messages {
            let id = message.message_id().unwrap_or_default().to_owned();
            match handle(message.body().unwrap_or_default().to_owned()).await {
                Ok(()) => {
                    let receipt = message.receipt_handle().unwrap_or_default();
                    if let Err(err) = sqs.delete_message().queue_url(queue_url).receipt_handle(receipt).send().await {
                        tracing::warn!(message_id = %id, error = ?err.as_service_error(), "handled job not deleted");
                    }
                }
                Err(err) => tracing::warn!(kind, message_id = %id, error = %err, "job failed; it will be retried"),
            }
        }
    }
}

/// The `refresh_schedules` task once a minute (EventBridge runs it every 5 minutes in AWS).
pub async fn run_refresh_schedules(store: c360::store::DynamoStore, jobs: JobQueue) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        match run_due_schedules(&store, &jobs, time::now()).await {
            Ok(run) if run.due > 0 => tracing::info!(?run, "refresh schedules"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "refresh schedules failed"),
        }
    }
}

/// The `maintenance_broadcast` task once a minute, as its EventBridge schedule.
pub async fn broadcast_maintenances(notifier: c360::clients::push::Notifier) {
    let mut every = tokio::time::interval(c360::clients::push::MAINTENANCE_BROADCAST_PERIOD.unsigned_abs());
    loop {
        every.tick().await;
        if let Err(err) = notifier.broadcast_maintenances(time::now()).await {
            tracing::warn!(error = %err, "maintenance broadcast failed");
        }
    }
}
