//! Cohort jobs (counts, cohort creations, feasibility studies) from the cohort jobs queue.
//! The job kinds arrive with the cohort-jobs issue: until then every message is reported failed,
//! so nothing is lost — it waits in the DLQ.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use c360::worker::{envelope, process_batch, MessageError};

pub async fn function_handler(event: SqsEvent) -> SqsBatchResponse {
    process_batch(event, |body| async move {
        let job = envelope(&body)?;
        Err(MessageError(format!("no handler for cohort job kind {:?} (version {})", job.kind, job.version)))
    })
    .await
}
