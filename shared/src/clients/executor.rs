//! The QueryExecutor over HTTP (spec §6.2, §5.6): job submission and cancellation. What is sent is
//! built by `domain::query_executor`; this adapter only talks HTTP and reads the answers.
use crate::domain::{
    cohort::JobStatus,
    query_executor::{parse_answer, Answer, Job},
};

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The executor could not be reached or answered an HTTP error; the text is stored as the job's
    /// failure message, so it never carries a token (no authentication header is sent anyway).
    #[error("QueryExecutor unreachable: {0}")]
    Unreachable(String),
    #[error("QueryExecutor answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("{0}")]
    Answer(String),
}

#[derive(Clone)]
pub struct Executor {
    http: reqwest::Client,
    base_url: String,
}

fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

impl Executor {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self { http, base_url: base_url.into() }
    }

    /// POSTs the job's one-line body; QE answers `{"status", "jobId"}` at once.
    pub async fn submit(&self, job: &Job) -> Result<Answer, ExecutorError> {
        let body = job.body().map_err(|e| ExecutorError::Answer(e.to_string()))?;
        let response = self
            .http
            .post(format!("{}{}", self.base_url, job.path()))
            .body(body)
            .send()
            .await
            .map_err(|e| ExecutorError::Unreachable(short(&e.without_url().to_string())))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| ExecutorError::Unreachable(short(&e.to_string())))?;
        if !status.is_success() {
            return Err(ExecutorError::Refused { status: status.as_u16(), body: short(&text) });
        }
        parse_answer(&text).map_err(|e| ExecutorError::Answer(e.to_string()))
    }

    /// `DELETE /jobs/<id>` (spec §5.6 step 1): 403 means the job already ended (finished); 200 carries
    /// `KILLED` (cancelled) or `FINISHED`; anything else is an error.
    pub async fn cancel(&self, job_id: &str) -> Result<JobStatus, ExecutorError> {
        let response = self
            .http
            .delete(format!("{}/jobs/{job_id}", self.base_url))
            .send()
            .await
            .map_err(|e| ExecutorError::Unreachable(short(&e.without_url().to_string())))?;
        let status = response.status();
        if status == reqwest::StatusCode::FORBIDDEN {
            return Ok(JobStatus::Finished);
        }
        let text = response.text().await.map_err(|e| ExecutorError::Unreachable(short(&e.to_string())))?;
        if !status.is_success() {
            return Err(ExecutorError::Refused { status: status.as_u16(), body: short(&text) });
        }
        match parse_answer(&text).map(|a| a.status) {
            Ok(s @ (JobStatus::Cancelled | JobStatus::Finished)) => Ok(s),
            Ok(other) => Err(ExecutorError::Answer(format!("unexpected status after cancel: {}", other.as_str()))),
            Err(e) => Err(ExecutorError::Answer(e.to_string())),
        }
    }
}
