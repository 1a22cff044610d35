//! SQS batch handling shared by the workers: each record is handled on its own, failures are
//! reported as partial batch failures (the rest of the batch is deleted), and after the queue's
//! `maxReceiveCount` a failing message moves to its DLQ.
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

/// Why one message failed; the text is logged with the message id, never the body.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

pub async fn process_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), MessageError>>,
{
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let outcome = match record.body {
            Some(body) => handle(body).await,
            None => Err(MessageError("empty message body".into())),
        };
        if let Err(err) = outcome {
            tracing::warn!(message_id = %id, error = %err, "message failed");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failures.push(failure);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// The envelope every job message carries (see `messages` in the cohort issue).
#[derive(Debug, serde::Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub kind: String,
}

pub fn envelope(body: &str) -> Result<Envelope, MessageError> {
    serde_json::from_str(body).map_err(|e| MessageError(format!("not a job message: {e}")))
}
