//! One function for every schedule of template.yaml, dispatching on the rule's input
//! `{"task": "<name>"}` (the names below are the single list both sides use).
mod export_cleanup;

use serde::Deserialize;
use serde_json::{json, Value};

use c360::{
    clients::jobs::{ExportQueue, JobQueue},
    clients::mail::SesMailer,
    clients::push::Notifier,
    config::{ConfigError, FhirSettings, Settings},
    domain::time,
    services::access_alerts::ExpiryAlerts,
    services::job_news::JobNews,
    services::sweeper::{Deadlines, DEFAULT_DEADLINES},
    store::DynamoStore,
};

/// Every task: the scheduled ones in the order of template.yaml, then the one-shot ones an operator
/// invokes (`aws lambda invoke --payload '{"task": "workspace_summaries_backfill"}'`).
pub const TASKS: [&str; 9] = [
    "maintenance_broadcast",
    "expiring_accesses_alerts",
    "count_users_on_perimeters",
    "perimeters_sync",
    "fhir_perimeters_sync",
    "export_cleanup",
    "refresh_schedules",
    "stuck_jobs_sweeper",
    "workspace_summaries_backfill",
];

/// What the tasks need, built once per container.
pub struct Tasks {
    pub store: DynamoStore,
    pub s3: aws_sdk_s3::Client,
    pub mailer: SesMailer,
    /// `PERIMETERS_SOURCE`: where the perimeter tree document is published (`s3://bucket/key`).
    pub perimeters_source: Option<String>,
    /// Set when `ENABLE_ACCESS_EXPIRY_ALERTS` is true.
    pub expiry_alerts: Option<ExpiryAlerts>,
    /// `FHIR_URL`, `FHIR_ACCESS_TOKEN`, `PERIMETER_TYPES`.
    pub fhir: FhirSettings,
    /// `ENABLE_FHIR_PERIMETERS_SYNC`: the schedule runs the FHIR perimeter sync (operators can run it
    /// anyway with `sync-perimeters --fhir`).
    pub fhir_perimeters_sync: bool,
    /// Calls to third parties (FHIR), with `HTTP_CLIENT_TIMEOUT_SECONDS`.
    pub http: reqwest::Client,
    /// The cohort jobs queue (`COHORT_JOBS_QUEUE_URL`): scheduled re-counts go through it.
    pub jobs: JobQueue,
    /// The export jobs queue (`EXPORT_JOBS_QUEUE_URL`): a swept subset re-checks its export.
    pub export_jobs: ExportQueue,
    /// `STUCK_JOB_DEADLINES`: how long a job may stay in each status.
    pub stuck_job_deadlines: Deadlines,
    /// Pushes to WebSocket clients (`WS_MANAGEMENT_ENDPOINT`): the maintenance broadcasts and the
    /// swept jobs' events.
    pub notifier: Notifier,
    /// What the e-mails about swept jobs link to (`FRONTEND_URL`, `EMAIL_SUPPORT_CONTACT`).
    pub settings: Settings,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

fn number(name: &'static str, default: i64, unit: &str) -> Result<i64, ConfigError> {
    env(name, &default.to_string())
        .parse()
        .map_err(|_| ConfigError::Invalid { name: name.into(), reason: format!("not a number of {unit}") })
}

fn flag(name: &str) -> bool {
    matches!(env(name, "false").as_str(), "true" | "1")
}

impl Tasks {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let table = std::env::var("TABLE_NAME").map_err(|_| ConfigError::Missing("TABLE_NAME"))?;
        let sdk = c360::aws::sdk_config().await;
        let expiry_alerts = flag("ENABLE_ACCESS_EXPIRY_ALERTS")
            .then(|| -> Result<ExpiryAlerts, ConfigError> {
                Ok(ExpiryAlerts {
                    offsets_days: vec![
                        number("ACCESS_EXPIRY_FIRST_ALERT_IN_DAYS", 30, "days")?,
                        number("ACCESS_EXPIRY_SECOND_ALERT_IN_DAYS", 2, "days")?,
                    ],
                    managers_link: env("ACCESS_MANAGERS_LIST_LINK", ""),
                    contact: env("EMAIL_SUPPORT_CONTACT", ""),
                })
            })
            .transpose()?;
        let fhir = FhirSettings::from_lookup(|name| std::env::var(name).ok())?;
        let fhir_perimeters_sync = flag("ENABLE_FHIR_PERIMETERS_SYNC");
        if fhir_perimeters_sync && fhir.url.is_none() {
            return Err(ConfigError::Missing("FHIR_URL"));
        }
        let timeout = number("HTTP_CLIENT_TIMEOUT_SECONDS", 60, "seconds")?.max(1) as u64;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
        let ws_endpoint = std::env::var("WS_MANAGEMENT_ENDPOINT").ok().filter(|s| !s.is_empty());
        Ok(Self {
            settings: Settings::from_env()?,
            notifier: Notifier::new(&sdk, ws_endpoint.as_deref(), store.clone()),
            store,
            s3: c360::aws::s3_client(&sdk),
            mailer: SesMailer::new(
                aws_sdk_sesv2::Client::new(&sdk),
                env("DEFAULT_FROM_EMAIL", "no-reply@cohort360.local"),
            ),
            perimeters_source: std::env::var("PERIMETERS_SOURCE").ok().filter(|s| !s.is_empty()),
            expiry_alerts,
            fhir,
            fhir_perimeters_sync,
            http: c360::aws::http_client(std::time::Duration::from_secs(timeout)),
            jobs: JobQueue::new(aws_sdk_sqs::Client::new(&sdk), std::env::var("COHORT_JOBS_QUEUE_URL").ok()),
            export_jobs: ExportQueue::new(aws_sdk_sqs::Client::new(&sdk), std::env::var("EXPORT_JOBS_QUEUE_URL").ok()),
            stuck_job_deadlines: Deadlines::parse(&env("STUCK_JOB_DEADLINES", DEFAULT_DEADLINES))
                .map_err(|reason| ConfigError::Invalid { name: "STUCK_JOB_DEADLINES".into(), reason })?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct TaskInput {
    task: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("the scheduled event has no task name: {0}")]
    BadInput(String),
    #[error("unknown task {0:?}")]
    Unknown(String),
    #[error("task {task} failed: {cause}")]
    Failed { task: String, cause: String },
}

pub async fn function_handler(tasks: &Tasks, input: Value) -> Result<Value, TaskError> {
    let TaskInput { task } = serde_json::from_value(input).map_err(|e| TaskError::BadInput(e.to_string()))?;
    if !TASKS.contains(&task.as_str()) {
        return Err(TaskError::Unknown(task));
    }
    let failed = |cause: c360::AppError| TaskError::Failed { task: task.clone(), cause: cause.to_string() };
    match task.as_str() {
        "perimeters_sync" => {
            let Some(source) = &tasks.perimeters_source else {
                tracing::info!("PERIMETERS_SOURCE is not set: no tree document to apply");
                return Ok(json!({"task": task, "status": "skipped", "reason": "PERIMETERS_SOURCE is not set"}));
            };
            let document = c360::clients::documents::read_document(&tasks.s3, source).await.map_err(failed)?;
            let report = c360::services::perimeter_sync::apply_document(&tasks.store, &document, time::now())
                .await
                .map_err(failed)?;
            tracing::info!(?report, "perimeter tree synchronised");
            Ok(json!({"task": task, "status": "done", "report": report}))
        }
        "fhir_perimeters_sync" => {
            if !tasks.fhir_perimeters_sync {
                return Ok(
                    json!({"task": task, "status": "skipped", "reason": "ENABLE_FHIR_PERIMETERS_SYNC is not true"}),
                );
            }
            let mut report =
                c360::services::perimeter_sync::sync_fhir(&tasks.store, &tasks.fhir, &tasks.http, time::now())
                    .await
                    .map_err(failed)?;
            c360::services::perimeter_sync::queue_virtual_cohorts(&tasks.jobs, &mut report).await.map_err(failed)?;
            tracing::info!(?report, "perimeter tree synchronised from FHIR");
            Ok(json!({"task": task, "status": "done", "report": report}))
        }
        "expiring_accesses_alerts" => {
            let Some(alerts) = &tasks.expiry_alerts else {
                return Ok(
                    json!({"task": task, "status": "skipped", "reason": "ENABLE_ACCESS_EXPIRY_ALERTS is not true"}),
                );
            };
            let sent =
                c360::services::access_alerts::send_expiry_alerts(&tasks.store, &tasks.mailer, alerts, time::now())
                    .await
                    .map_err(failed)?;
            tracing::info!(sent, "expiring-access alerts sent");
            Ok(json!({"task": task, "status": "done", "emails_sent": sent}))
        }
        // Resumable: a run stopped by the Lambda timeout goes on from its cursor when invoked again.
        "workspace_summaries_backfill" => {
            if tasks.store.workspace_layout_ready().await.map_err(|e| failed(e.into()))? {
                return Ok(json!({"task": task, "status": "skipped", "reason": "the summaries are complete"}));
            }
            let done = c360::services::backfill::backfill_summaries(
                &tasks.store,
                |p| tracing::info!(progress = %p, "backfill"),
            )
            .await
            .map_err(|e| failed(e.into()))?;
            Ok(json!({"task": task, "status": "done", "report": done.to_string()}))
        }
        "stuck_jobs_sweeper" => {
            let news = JobNews {
                store: &tasks.store,
                notifier: &tasks.notifier,
                mailer: &tasks.mailer,
                settings: &tasks.settings,
                exports: &tasks.export_jobs,
            };
            let report =
                c360::services::sweeper::sweep(&news, &tasks.stuck_job_deadlines, time::now()).await.map_err(failed)?;
            tracing::info!(?report, "stuck jobs swept");
            Ok(json!({"task": task, "status": "done", "report": report}))
        }
        "refresh_schedules" => {
            let run = c360::services::refresh::run_due_schedules(&tasks.store, &tasks.jobs, time::now())
                .await
                .map_err(failed)?;
            tracing::info!(?run, "refresh schedules");
            Ok(json!({"task": task, "status": "done", "run": run}))
        }
        "maintenance_broadcast" => {
            let (events, delivered) =
                tasks.notifier.broadcast_maintenances(time::now()).await.map_err(|e| failed(e.into()))?;
            if events > 0 {
                tracing::info!(events, delivered, "maintenance events broadcast");
            }
            Ok(json!({"task": task, "status": "done", "events": events, "delivered": delivered}))
        }
        "export_cleanup" => {
            let run = export_cleanup::run(&tasks.store, &tasks.s3, &tasks.mailer, &tasks.settings, time::now())
                .await
                .map_err(|e| failed(e.into()))?;
            tracing::info!(?run, "export files cleaned");
            Ok(json!({"task": task, "status": "done", "cleaned": run.cleaned, "failed": run.failed}))
        }
        "count_users_on_perimeters" => {
            let changed = c360::services::perimeter_sync::refresh_allowed_users(&tasks.store, time::now())
                .await
                .map_err(failed)?;
            tracing::info!(changed, "allowed-users counters refreshed");
            Ok(json!({"task": task, "status": "done", "perimeters_changed": changed}))
        }
        // `TASKS` was checked above: every name it holds has its arm.
        other => Err(TaskError::Unknown(other.to_owned())),
    }
}
