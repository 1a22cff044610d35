//! Export jobs from the export jobs queue (spec §7.5). A launch sends the export to the Export API;
//! the task is then followed without sleeping in a Lambda: each poll is an SQS message delayed until
//! it is due (`EXPORT_POLL_SECONDS`, doubled each time up to SQS's 900 s), the chain stops on an end
//! state, after 5 failed calls in a row, or past `EXPORT_MAX_WAIT_HOURS`. Every status change is a
//! conditional write on the export's revision: a redelivered or late message re-reads the export and
//! does nothing once it has ended or moved to another task.
use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use c360::{
    config::{ConfigError, Settings},
    domain::{
        cohort::{python_duration, CohortResult, JobStatus},
        exports::{api_status, export_params, Export, OutputFormat, ParamsContext},
        time,
    },
    export_api::ExportApi,
    jobs::{ExportJob, ExportMessage, ExportQueue, JOB_MESSAGE_VERSION},
    mail::{SesMailer, SharedMailer},
    notify::{self, ExportNews},
    store::{DynamoStore, StoreError},
    worker::{process_batch, MessageError},
};
use uuid::Uuid;

/// Failed calls in a row after which a poll chain gives up (spec §7.5).
pub const MAX_POLL_ERRORS: u32 = 5;
/// SQS delays a message at most this long.
const MAX_DELAY_SECONDS: u32 = 900;

pub struct Worker {
    pub store: DynamoStore,
    pub queue: ExportQueue,
    /// `None` when `EXPORT_API_URL` is not set: every export fails with that reason.
    pub api: Option<ExportApi>,
    /// The owner's e-mails: received, succeeded (download link), failed.
    pub mailer: SharedMailer,
    pub settings: Settings,
}

pub async fn function_handler(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    process_batch(event, |body| async move { worker.handle(&body).await }).await
}

/// The delay before poll number `attempt` (0-based): `base`, doubled each time, at most 900 s.
pub fn poll_delay(base: u32, attempt: u32) -> u32 {
    base.saturating_mul(1 << attempt.min(10)).min(MAX_DELAY_SECONDS)
}

fn failure(err: impl std::fmt::Display) -> MessageError {
    MessageError(err.to_string())
}

fn ended_with(task: &str, status: JobStatus) -> String {
    format!("Export terminated with an error: Job `{task}` ended with status `{}`", status.as_str())
}

impl Worker {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = Settings::from_env()?;
        let sdk = c360::aws::sdk_config().await;
        Ok(Self::new(settings, &sdk))
    }

    pub fn new(settings: Settings, sdk: &aws_config::SdkConfig) -> Self {
        let http = c360::aws::http_client(settings.http_timeout);
        let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(sdk), settings.default_from_email.clone());
        Self {
            mailer: SharedMailer::new(mailer),
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table_name.clone()),
            queue: ExportQueue::new(aws_sdk_sqs::Client::new(sdk), settings.export_jobs_queue_url.clone()),
            api: settings
                .export_api_url
                .clone()
                .map(|url| ExportApi::new(http, url, settings.export_api_auth_token.clone())),
            settings,
        }
    }

    pub async fn handle(&self, body: &str) -> Result<(), MessageError> {
        let message: ExportMessage =
            serde_json::from_str(body).map_err(|e| failure(format!("not an export job message: {e}")))?;
        if message.version != JOB_MESSAGE_VERSION {
            return Err(failure(format!("unknown export job message version {}", message.version)));
        }
        match message.job {
            // Boxed: the futures of the SDK calls nest deep enough to overflow the layout depth.
            ExportJob::Launch { export } => Box::pin(self.launch(export)).await,
            ExportJob::Poll { export, task, attempt, errors } => {
                Box::pin(self.poll(export, &task, attempt, errors)).await
            }
        }
    }

    /// Applies `change` to the stored export while `applies` holds, re-reading after a concurrent
    /// write. `None` when the export is gone or no longer in a state the change applies to.
    async fn update(
        &self,
        uuid: Uuid,
        applies: impl Fn(&Export) -> bool,
        change: impl Fn(&mut Export),
    ) -> Result<Option<Export>, MessageError> {
        for _ in 0..5 {
            let Some(mut export) = self.store.export(uuid).await.map_err(failure)? else { return Ok(None) };
            if !applies(&export) {
                return Ok(None);
            }
            change(&mut export);
            match self.store.save_export(&export).await {
                Ok(saved) => return Ok(Some(saved)),
                Err(StoreError::ConditionFailed) => continue,
                Err(other) => return Err(failure(other)),
            }
        }
        Err(failure("the export kept changing under the worker"))
    }

    /// Ends an export still running `task` (or not launched yet, `task` empty) as failed.
    async fn fail(&self, uuid: Uuid, task: &str, reason: String) -> Result<(), MessageError> {
        tracing::warn!(export = %uuid, reason = %reason, "export failed");
        let failed = self
            .update(
                uuid,
                |e| !e.job.request_job_status.is_final() && e.job.request_job_id == task,
                |e| {
                    e.job.request_job_status = JobStatus::Failed;
                    e.job.request_job_fail_msg = reason.clone();
                    e.is_user_notified = true;
                },
            )
            .await?;
        match failed {
            Some(export) => self.tell(&export, ExportNews::Failed).await,
            None => Ok(()),
        }
    }

    /// E-mails the export's owner; a delivery failure is logged, never retried.
    async fn tell(&self, export: &Export, news: ExportNews) -> Result<(), MessageError> {
        notify::tell_export_owner(&self.store, &self.mailer, &self.settings, export, news).await.map_err(failure)
    }

    async fn launch(&self, uuid: Uuid) -> Result<(), MessageError> {
        let Some(export) = self.store.export(uuid).await.map_err(failure)? else { return Ok(()) };
        let status = export.job.request_job_status;
        if status == JobStatus::Pending && !export.job.request_job_id.is_empty() {
            // A launch redelivered after the task was recorded: make sure it is followed.
            return self.queue_poll(uuid, &export.job.request_job_id, 0, 0).await;
        }
        // `new`, or `pending` without a task: a previous delivery stopped before recording it.
        if status != JobStatus::New && !(status == JobStatus::Pending && export.launched_at.is_some()) {
            return Ok(());
        }
        let Some(api) = &self.api else {
            return self.fail(uuid, "", "Export terminated with an error: EXPORT_API_URL is not set".into()).await;
        };
        if export.output_format == OutputFormat::Hive {
            let reason = "Export terminated with an error: hive exports need the Hadoop API, not supported yet";
            return self.fail(uuid, "", reason.into()).await;
        }
        let params = match export_params(&export, &self.context_of(&export).await?.view()) {
            Ok(params) => params,
            Err(e) => return self.fail(uuid, "", format!("Export terminated with an error: {e}")).await,
        };
        let claimed = self
            .update(
                uuid,
                |e| e.job.request_job_id.is_empty() && !e.job.request_job_status.is_final(),
                |e| {
                    e.job.request_job_status = JobStatus::Pending;
                    e.launched_at = Some(time::now());
                },
            )
            .await?;
        let Some(claimed) = claimed else { return Ok(()) };
        if status == JobStatus::New {
            self.tell(&claimed, ExportNews::Received).await?;
        }
        let task = match api.launch(&params.render()).await {
            Ok(task) => task,
            Err(e) => return self.fail(uuid, "", format!("Export terminated with an error: {e}")).await,
        };
        tracing::info!(export = %uuid, task = %task, "export sent to the Export API");
        let recorded = self
            .update(
                uuid,
                |e| e.job.request_job_id.is_empty() && e.job.request_job_status == JobStatus::Pending,
                |e| e.job.request_job_id = task.clone(),
            )
            .await?;
        match recorded {
            Some(_) => self.queue_poll(uuid, &task, 0, 0).await,
            None => Ok(()),
        }
    }

    /// The group ids of the tables' cohorts and the datalab's name.
    async fn context_of(&self, export: &Export) -> Result<OwnedContext, MessageError> {
        let mut group_ids = HashMap::new();
        let cohorts: Vec<Uuid> =
            export.tables.iter().flat_map(|t| [t.cohort_result_source, t.cohort_result_subset]).flatten().collect();
        for uuid in cohorts {
            if group_ids.contains_key(&uuid) {
                continue;
            }
            // By key in the owner's workspace (subsets, csv sources): a subset's group id was written
            // just before its callback launched the export, and the uuid index may not show it yet.
            let mut cohort: Option<CohortResult> =
                self.store.workspace_object(&export.owner, uuid).await.map_err(failure)?;
            if cohort.is_none() {
                // Another owner's source cohort (hive).
                cohort = self.store.object_by_id(uuid).await.map_err(failure)?;
            }
            if let Some(cohort) = cohort.filter(|c| !c.group_id.is_empty()) {
                group_ids.insert(uuid, cohort.group_id);
            }
        }
        Ok(OwnedContext {
            group_ids,
            datalab_name: export.summary.datalab_name.clone(),
            disable_terminology: self.settings.disable_data_translation,
        })
    }

    async fn queue_poll(&self, uuid: Uuid, task: &str, attempt: u32, errors: u32) -> Result<(), MessageError> {
        let delay = poll_delay(self.settings.export_poll_seconds, attempt);
        let job = ExportJob::Poll { export: uuid, task: task.to_owned(), attempt, errors };
        self.queue.send(job, delay).await.map_err(failure)
    }

    async fn poll(&self, uuid: Uuid, task: &str, attempt: u32, errors: u32) -> Result<(), MessageError> {
        let Some(export) = self.store.export(uuid).await.map_err(failure)? else { return Ok(()) };
        if export.job.request_job_status.is_final() || export.job.request_job_id != task {
            return Ok(()); // ended, or retried since: this chain is stale
        }
        let launched = export.launched_at.unwrap_or(export.stamps.created_at);
        if time::now() - launched > ::time::Duration::hours(self.settings.export_max_wait_hours) {
            let hours = self.settings.export_max_wait_hours;
            let reason = format!("Export terminated with an error: Job `{task}` did not end within {hours} hours");
            return self.fail(uuid, task, reason).await;
        }
        let Some(api) = &self.api else {
            return self.fail(uuid, task, "Export terminated with an error: EXPORT_API_URL is not set".into()).await;
        };
        let answer = match api.task_status(task).await {
            Ok(answer) => answer,
            Err(e) if errors + 1 >= MAX_POLL_ERRORS => {
                return self.fail(uuid, task, format!("Export terminated with an error: {e}")).await;
            }
            Err(e) => {
                tracing::warn!(export = %uuid, error = %e, "Export API poll failed");
                return self.queue_poll(uuid, task, attempt + 1, errors + 1).await;
            }
        };
        let status = api_status(answer.get("task_status").and_then(|s| s.as_str()).unwrap_or_default());
        let running = |e: &Export| !e.job.request_job_status.is_final() && e.job.request_job_id == task;
        match status {
            JobStatus::Finished => {
                let finished = self
                    .update(uuid, running, |e| {
                        e.job.request_job_status = JobStatus::Finished;
                        e.job.request_job_duration = python_duration(time::now() - launched);
                        e.is_user_notified = true;
                    })
                    .await?;
                match finished {
                    Some(export) => {
                        tracing::info!(export = %uuid, "export finished");
                        self.tell(&export, ExportNews::Succeeded).await
                    }
                    None => Ok(()),
                }
            }
            s if s.is_final() => self.fail(uuid, task, ended_with(task, s)).await,
            s if s == export.job.request_job_status => self.queue_poll(uuid, task, attempt + 1, 0).await,
            s => {
                let saved = self.update(uuid, running, |e| e.job.request_job_status = s).await?;
                match saved {
                    Some(_) => self.queue_poll(uuid, task, attempt + 1, 0).await,
                    None => Ok(()),
                }
            }
        }
    }
}

/// [`ParamsContext`] with owned values.
struct OwnedContext {
    group_ids: HashMap<Uuid, String>,
    datalab_name: Option<String>,
    disable_terminology: bool,
}

impl OwnedContext {
    fn view(&self) -> ParamsContext<'_> {
        ParamsContext {
            group_ids: &self.group_ids,
            datalab_name: self.datalab_name.as_deref(),
            disable_terminology: self.disable_terminology,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_to_the_sqs_maximum() {
        let delays: Vec<u32> = (0..9).map(|a| poll_delay(10, a)).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 900, 900]);
        assert_eq!(poll_delay(0, 5), 0);
        assert_eq!(poll_delay(10, u32::MAX), 900);
    }
}
