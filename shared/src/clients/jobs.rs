//! Cohort job messages (the cohort jobs queue's contract between the API and the worker) and the
//! queue they go through. Messages carry ids only: the worker reads the current state, so a
//! redelivered or late message acts on what is stored, never on a stale copy. The one exception is
//! the caller's credentials, which the FHIR `$query` calls of the Solr formatting forward (spec
//! §6.3): they travel only when `USE_SOLR` is on.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The message format version; the worker refuses versions it does not know.
pub const JOB_MESSAGE_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CohortJob {
    /// Count the patients of a snapshot (QueryExecutor mode `count`).
    Count { owner: String, dated_measure: Uuid, stage_details: Option<String> },
    /// Global estimate of a snapshot (mode `count_all`).
    CountAll { owner: String, dated_measure: Uuid },
    /// Build a cohort (mode `create`; samples included).
    Create { owner: String, cohort: Uuid },
    /// Count by perimeter for a feasibility report (mode `count_with_details`).
    Feasibility { owner: String, study: Uuid },
    /// The virtual cohort of a perimeter after a FHIR perimeter sync (mode `create`, spec §6.4).
    VirtualCohort { perimeter_id: i64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub version: u32,
    #[serde(flatten)]
    pub job: CohortJob,
    /// The requester's credentials for FHIR `$query` (only with `USE_SOLR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_auth: Option<ForwardedAuth>,
}

impl JobMessage {
    pub fn new(job: CohortJob) -> Self {
        Self { version: JOB_MESSAGE_VERSION, job, fhir_auth: None }
    }
}

/// The request headers FHIR `$query` calls forward: `Authorization`, `authorizationMethod` and
/// `X-Trace-Id`. Never printed: `Debug` hides the credentials.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForwardedAuth {
    pub authorization: String,
    #[serde(default)]
    pub authorization_method: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
}

impl ForwardedAuth {
    /// The caller's credentials for the worker's FHIR `$query` calls (spec §6.3): only when `USE_SOLR`
    /// needs them, so no job message carries a token otherwise.
    pub fn of_request(use_solr: bool, headers: &axum::http::HeaderMap) -> Option<Self> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let authorization = header("authorization").filter(|_| use_solr)?;
        Some(Self {
            authorization,
            authorization_method: header("authorizationmethod"),
            trace_id: header("x-trace-id"),
        })
    }
}

impl std::fmt::Debug for ForwardedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardedAuth")
            .field("authorization", &"********")
            .field("authorization_method", &self.authorization_method)
            .field("trace_id", &self.trace_id)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("COHORT_JOBS_QUEUE_URL is not configured")]
    NotConfigured,
    #[error("EXPORT_JOBS_QUEUE_URL is not configured")]
    ExportsNotConfigured,
    #[error("SQS error: {0}")]
    Sqs(String),
}

/// The cohort jobs queue (SQS; the dev server polls the same queue).
#[derive(Clone)]
pub struct JobQueue {
    client: aws_sdk_sqs::Client,
    url: Option<String>,
}

impl JobQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> Self {
        Self { client, url }
    }

    pub async fn send(&self, job: CohortJob) -> Result<(), QueueError> {
        self.send_message(&JobMessage::new(job)).await
    }

    pub async fn send_message(&self, message: &JobMessage) -> Result<(), QueueError> {
        let url = self.url.as_deref().ok_or(QueueError::NotConfigured)?;
        let body = serde_json::to_string(message).map_err(|e| QueueError::Sqs(e.to_string()))?;
        self.client.send_message().queue_url(url).message_body(body).send().await.map_err(|e| {
            QueueError::Sqs(match e.as_service_error() {
                Some(service) => format!("{service:?}"),
                None => format!("{e:?}").chars().take(300).collect(),
            })
        })?;
        Ok(())
    }
}

/// Export job messages (the export jobs queue's contract between the API and the export worker).
/// Like cohort jobs they carry ids only: the worker acts on the stored export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportJob {
    /// Send a `new` export to the Export API.
    Launch { export: Uuid },
    /// Ask where `task` stands (the Export API task, or the Hadoop task creating a hive export's
    /// database): the `attempt`-th poll, after `errors` failed calls in a row. A poll of a task the
    /// export has moved past, or never had, is stale and does nothing.
    Poll { export: Uuid, task: String, attempt: u32, errors: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportMessage {
    pub version: u32,
    #[serde(flatten)]
    pub job: ExportJob,
}

impl ExportMessage {
    pub fn new(job: ExportJob) -> Self {
        Self { version: JOB_MESSAGE_VERSION, job }
    }
}

/// The export jobs queue; a poll is a message delayed until it is due (no sleeping in a Lambda).
#[derive(Clone)]
pub struct ExportQueue {
    client: aws_sdk_sqs::Client,
    url: Option<String>,
}

impl ExportQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> Self {
        Self { client, url }
    }

    /// Queues a job, delivered after `delay_seconds` (SQS allows at most 900).
    pub async fn send(&self, job: ExportJob, delay_seconds: u32) -> Result<(), QueueError> {
        let url = self.url.as_deref().ok_or(QueueError::ExportsNotConfigured)?;
        let body = serde_json::to_string(&ExportMessage::new(job)).map_err(|e| QueueError::Sqs(e.to_string()))?;
        let delay = i32::try_from(delay_seconds.min(900)).unwrap_or(900);
        self.client.send_message().queue_url(url).message_body(body).delay_seconds(delay).send().await.map_err(
            |e| {
                QueueError::Sqs(match e.as_service_error() {
                    Some(service) => format!("{service:?}"),
                    None => format!("{e:?}").chars().take(300).collect(),
                })
            },
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_version_and_kind_at_the_top_level() {
        let uuid = Uuid::nil();
        let message = JobMessage::new(CohortJob::Count { owner: "u".into(), dated_measure: uuid, stage_details: None });
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["kind"], "count");
        assert_eq!(json["dated_measure"], uuid.to_string());
        assert_eq!(serde_json::from_value::<JobMessage>(json.clone()).unwrap(), message);
        assert!(json.get("fhir_auth").is_none(), "no credentials unless the Solr formatting needs them");
    }

    #[test]
    fn export_messages_carry_version_and_kind() {
        let message =
            ExportMessage::new(ExportJob::Poll { export: Uuid::nil(), task: "t".into(), attempt: 2, errors: 1 });
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            (&json["version"], &json["kind"], &json["task"]),
            (&serde_json::json!(1), &serde_json::json!("poll"), &serde_json::json!("t"))
        );
        assert_eq!(serde_json::from_value::<ExportMessage>(json).unwrap(), message);
    }

    #[test]
    fn forwarded_credentials_travel_but_never_print() {
        let auth = ForwardedAuth {
            authorization: "Bearer secret-token".into(),
            authorization_method: Some("OIDC".into()),
            trace_id: Some("t-1".into()),
        };
        let message =
            JobMessage { fhir_auth: Some(auth), ..JobMessage::new(CohortJob::VirtualCohort { perimeter_id: 1 }) };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(serde_json::from_str::<JobMessage>(&text).unwrap(), message);
        assert!(!format!("{message:?}").contains("secret-token"));
    }
}
