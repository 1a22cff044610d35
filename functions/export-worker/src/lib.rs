//! Export jobs from the export jobs queue (spec §7.5). A launch sends the export to the Export API;
//! the task is then followed without sleeping in a Lambda: each poll is an SQS message delayed until
//! it is due (`EXPORT_POLL_SECONDS`, doubled each time up to a minute), the chain stops on an end
//! state, after 5 failed calls in a row, or past `EXPORT_MAX_WAIT_HOURS`. A hive export first has its
//! database created by a Hadoop task (followed the same way) and handed to `HIVE_USER`, and once the
//! Export API has filled it, handed to the datalab; each stage is recorded on the export
//! ([`c360::domain::export_run`]) so that any message resumes where the stored export is. Every
//! status change is a conditional write on the export's revision: a redelivered or late message
//! re-reads the export and does nothing once it has ended or moved past its task.
use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use c360::{
    clients::export_api::ExportApi,
    clients::hadoop_api::{HadoopApi, HadoopApiError},
    clients::jobs::{ExportJob, ExportMessage, ExportQueue, JOB_MESSAGE_VERSION},
    clients::mail::{SesMailer, SharedMailer},
    clients::push::Notifier,
    config::{ConfigError, Settings},
    domain::{
        cohort::{python_duration, CohortResult, JobStatus},
        export_run::{database_location, launch_step, poll_step, HiveStage, LaunchStep, PollStep},
        exports::{api_status, export_params, Export, OutputFormat, ParamsContext, Yaml},
        time,
    },
    services::notify::{self, ExportNews},
    store::{DynamoStore, StoreError},
    worker::{process_batch, MessageError},
};
use serde_json::Value;
use uuid::Uuid;

/// Failed calls in a row after which a poll chain gives up (spec §7.5).
pub const MAX_POLL_ERRORS: u32 = 5;
/// The longest wait between two polls: a finished export is seen within a minute (doubling up to
/// SQS's 900 s would leave the owner waiting up to 15 minutes for a long export), at one poll a minute
/// per running export.
const MAX_POLL_INTERVAL_SECONDS: u32 = 60;

/// The prefixes of the failure messages (spec §7.5): the Export API's part, the preparation of a hive
/// database, its hand-over to the datalab.
const EXPORT_ERROR: &str = "Export terminated with an error";
const PREPARE_ERROR: &str = "Error while preparing DB for export";
const CONCLUDE_ERROR: &str = "Could not conclude export";

pub struct Worker {
    pub store: DynamoStore,
    pub queue: ExportQueue,
    /// `None` when `EXPORT_API_URL` is not set: every export fails with that reason.
    pub api: Option<ExportApi>,
    /// `None` when `HADOOP_API_URL` is not set: every hive export fails with that reason.
    pub hadoop: Option<HadoopApi>,
    /// The owner's e-mails: received, succeeded (download link), failed.
    pub mailer: SharedMailer,
    /// The owner's `job_status` pushes, at each change of status or stage.
    pub notifier: Notifier,
    pub settings: Settings,
}

pub async fn function_handler(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    process_batch(event, |body| async move { worker.handle(&body).await }).await
}

/// The delay before poll number `attempt` (0-based): `base`, doubled each time, at most a minute.
pub fn poll_delay(base: u32, attempt: u32) -> u32 {
    base.saturating_mul(1 << attempt.min(10)).min(MAX_POLL_INTERVAL_SECONDS)
}

fn failure(err: impl std::fmt::Display) -> MessageError {
    MessageError(err.to_string())
}

fn reason(prefix: &str, detail: impl std::fmt::Display) -> String {
    format!("{prefix}: {detail}")
}

fn ended_with(task: &str, status: JobStatus) -> String {
    format!("Job `{task}` ended with status `{}`", status.as_str())
}

/// The mapped `task_status` of an Export API or Hadoop API answer.
fn status_of(answer: &Value) -> JobStatus {
    api_status(answer.get("task_status").and_then(Value::as_str).unwrap_or_default())
}

/// Why `uid` could not be given the export's database.
fn not_granted(uid: &str, export: &Export, err: HadoopApiError) -> String {
    format!("Error granting `{uid}` rights on DB `{}` - {err}", export.target_name)
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
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table_name.clone());
        Self {
            mailer: SharedMailer::new(mailer),
            notifier: Notifier::new(sdk, settings.ws_management_endpoint.as_deref(), store.clone()),
            store,
            queue: ExportQueue::new(aws_sdk_sqs::Client::new(sdk), settings.export_jobs_queue_url.clone()),
            api: settings
                .export_api_url
                .clone()
                .map(|url| ExportApi::new(http.clone(), url, settings.export_api_auth_token.clone())),
            hadoop: settings
                .hadoop_api_url
                .clone()
                .map(|url| HadoopApi::new(http, url, settings.hadoop_api_auth_token.clone())),
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

    /// Applies `change` to the stored export while it has not ended and `applies` holds, re-reading
    /// after a concurrent write. `None` when the export is gone, ended, or no longer in a state the
    /// change applies to.
    async fn update(
        &self,
        uuid: Uuid,
        applies: impl Fn(&Export) -> bool,
        change: impl Fn(&mut Export),
    ) -> Result<Option<Export>, MessageError> {
        for _ in 0..5 {
            let Some(mut export) = self.store.export(uuid).await.map_err(failure)? else { return Ok(None) };
            if export.job.request_job_status.is_final() || !applies(&export) {
                return Ok(None);
            }
            let before = (export.job.request_job_status, export.hive_stage.clone());
            change(&mut export);
            match self.store.save_export(&export).await {
                Ok(saved) => {
                    if before != (saved.job.request_job_status, saved.hive_stage.clone()) {
                        self.notifier.export_status(&saved, time::now()).await;
                    }
                    return Ok(Some(saved));
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(other) => return Err(failure(other)),
            }
        }
        Err(failure("the export kept changing under the worker"))
    }

    /// Ends the export as failed while it is still where `still` says (the step that failed).
    async fn fail(&self, uuid: Uuid, still: impl Fn(&Export) -> bool, reason: String) -> Result<(), MessageError> {
        tracing::warn!(export = %uuid, reason = %reason, "export failed");
        let failed = self
            .update(uuid, still, |e| {
                e.job.request_job_status = JobStatus::Failed;
                e.job.request_job_fail_msg = reason.clone();
                e.is_user_notified = true;
            })
            .await?;
        match failed {
            Some(export) => {
                notify::tell_export_failure(&self.store, &self.mailer, &self.settings, &export).await.map_err(failure)
            }
            None => Ok(()),
        }
    }

    /// Ends the export as finished while `still` holds, and tells its owner.
    async fn finish(&self, export: &Export, still: impl Fn(&Export) -> bool) -> Result<(), MessageError> {
        let launched = export.launched_at.unwrap_or(export.stamps.created_at);
        let finished = self
            .update(export.uuid, still, |e| {
                e.job.request_job_status = JobStatus::Finished;
                e.job.request_job_duration = python_duration(time::now() - launched);
                e.is_user_notified = true;
            })
            .await?;
        match finished {
            Some(export) => {
                tracing::info!(export = %export.uuid, "export finished");
                self.tell(&export, ExportNews::Succeeded).await
            }
            None => Ok(()),
        }
    }

    /// E-mails the export's owner; a delivery failure is logged, never retried.
    async fn tell(&self, export: &Export, news: ExportNews) -> Result<(), MessageError> {
        notify::tell_export_owner(&self.store, &self.mailer, &self.settings, export, news).await.map_err(failure)
    }

    async fn launch(&self, uuid: Uuid) -> Result<(), MessageError> {
        let Some(export) = self.store.export(uuid).await.map_err(failure)? else { return Ok(()) };
        match export.job.request_job_status {
            JobStatus::New => self.start(export).await,
            // A redelivered launch: a previous delivery claimed the export; go on from what it recorded.
            // One that stopped after the Export API accepted the export but before its task id was saved
            // sends it again: the params say `overwrite: true`, so the second task rewrites the same target.
            JobStatus::Pending if export.launched_at.is_some() => {
                if launch_step(&export) == LaunchStep::Send {
                    tracing::warn!(export = %uuid, "a previous delivery claimed the export but recorded no task: sent again");
                }
                self.advance(&export, None).await
            }
            _ => Ok(()),
        }
    }

    /// Claims a `new` export (`pending`), tells its owner, and takes the first step of its run.
    async fn start(&self, export: Export) -> Result<(), MessageError> {
        let uuid = export.uuid;
        let unclaimed = |e: &Export| e.job.request_job_id.is_empty() && e.hive_stage.is_none();
        if self.api.is_none() {
            return self.fail(uuid, unclaimed, reason(EXPORT_ERROR, "EXPORT_API_URL is not set")).await;
        }
        if export.output_format == OutputFormat::Hive && self.hadoop.is_none() {
            return self.fail(uuid, unclaimed, reason(PREPARE_ERROR, "HADOOP_API_URL is not set")).await;
        }
        // Built before anything is done: no hive database is made for an export that cannot be sent.
        let params = match export_params(&export, &self.context_of(&export).await?.view()) {
            Ok(params) => params,
            Err(e) => return self.fail(uuid, unclaimed, reason(EXPORT_ERROR, e)).await,
        };
        let claimed = self
            .update(uuid, unclaimed, |e| {
                e.job.request_job_status = JobStatus::Pending;
                e.launched_at = Some(time::now());
            })
            .await?;
        let Some(claimed) = claimed else { return Ok(()) };
        self.tell(&claimed, ExportNews::Received).await?;
        self.advance(&claimed, Some(params)).await
    }

    /// The step of a claimed export's run that no delivery has recorded yet.
    async fn advance(&self, export: &Export, params: Option<Yaml>) -> Result<(), MessageError> {
        match launch_step(export) {
            LaunchStep::Poll(task) => self.queue_poll(export.uuid, &task, 0, 0).await,
            LaunchStep::CreateDatabase => self.create_database(export).await,
            LaunchStep::Send => self.send(export, params).await,
        }
    }

    /// Asks the Hadoop API for the hive database and records the creating task.
    async fn create_database(&self, export: &Export) -> Result<(), MessageError> {
        let uuid = export.uuid;
        let not_asked = |e: &Export| e.job.request_job_id.is_empty() && e.hive_stage.is_none();
        let Some(hadoop) = &self.hadoop else {
            return self.fail(uuid, not_asked, reason(PREPARE_ERROR, "HADOOP_API_URL is not set")).await;
        };
        let task = match hadoop.create_database(&export.target_name, &database_location(export)).await {
            Ok(task) => task,
            Err(e) => return self.fail(uuid, not_asked, reason(PREPARE_ERROR, e)).await,
        };
        tracing::info!(export = %uuid, task = %task, "hive database asked of the Hadoop API");
        let stage = HiveStage::CreatingDatabase { task: task.clone() };
        let recorded = self.update(uuid, not_asked, |e| e.hive_stage = Some(stage.clone())).await?;
        match recorded {
            Some(_) => self.queue_poll(uuid, &task, 0, 0).await,
            None => Ok(()),
        }
    }

    /// Sends the export to the Export API (`params` when the launch built them) and records the task.
    async fn send(&self, export: &Export, params: Option<Yaml>) -> Result<(), MessageError> {
        let uuid = export.uuid;
        let unsent = |e: &Export| e.job.request_job_id.is_empty() && e.hive_stage == export.hive_stage;
        let Some(api) = &self.api else {
            return self.fail(uuid, unsent, reason(EXPORT_ERROR, "EXPORT_API_URL is not set")).await;
        };
        let params = match params {
            Some(params) => params,
            None => match export_params(export, &self.context_of(export).await?.view()) {
                Ok(params) => params,
                Err(e) => return self.fail(uuid, unsent, reason(EXPORT_ERROR, e)).await,
            },
        };
        let task = match api.launch(&params.render()).await {
            Ok(task) => task,
            Err(e) => return self.fail(uuid, unsent, reason(EXPORT_ERROR, e)).await,
        };
        tracing::info!(export = %uuid, task = %task, "export sent to the Export API");
        let recorded = self.update(uuid, unsent, |e| e.job.request_job_id = task.clone()).await?;
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
        match poll_step(&export, task) {
            PollStep::Stale => Ok(()),
            PollStep::Database => self.poll_database(&export, task, attempt, errors).await,
            PollStep::Send => self.send(&export, None).await,
            PollStep::Export => self.poll_export(&export, task, attempt, errors).await,
            PollStep::HandOver => self.hand_over(&export).await,
        }
    }

    /// Why a task followed since the launch must be given up: it ran past `EXPORT_MAX_WAIT_HOURS`.
    fn overdue(&self, export: &Export, task: &str) -> Option<String> {
        let launched = export.launched_at.unwrap_or(export.stamps.created_at);
        let hours = self.settings.export_max_wait_hours;
        (time::now() - launched > ::time::Duration::hours(hours))
            .then(|| format!("Job `{task}` did not end within {hours} hours"))
    }

    /// Follows the Hadoop task creating the database; once created, hands it to `HIVE_USER`, records
    /// the database ready and sends the export.
    async fn poll_database(&self, export: &Export, task: &str, attempt: u32, errors: u32) -> Result<(), MessageError> {
        let uuid = export.uuid;
        let stage = Some(HiveStage::CreatingDatabase { task: task.to_owned() });
        let creating = |e: &Export| e.hive_stage == stage;
        if let Some(late) = self.overdue(export, task) {
            return self.fail(uuid, creating, reason(PREPARE_ERROR, late)).await;
        }
        let Some(hadoop) = &self.hadoop else {
            return self.fail(uuid, creating, reason(PREPARE_ERROR, "HADOOP_API_URL is not set")).await;
        };
        let answer = match hadoop.task_status(task).await {
            Ok(answer) => answer,
            Err(e) if errors + 1 >= MAX_POLL_ERRORS => {
                return self.fail(uuid, creating, reason(PREPARE_ERROR, e)).await
            }
            Err(e) => {
                tracing::warn!(export = %uuid, error = %e, "Hadoop API poll failed");
                return self.queue_poll(uuid, task, attempt + 1, errors + 1).await;
            }
        };
        match status_of(&answer) {
            JobStatus::Finished => {}
            s if s.is_final() => return self.fail(uuid, creating, reason(PREPARE_ERROR, ended_with(task, s))).await,
            _ => return self.queue_poll(uuid, task, attempt + 1, 0).await,
        }
        let user = &self.settings.hive_user;
        if let Err(e) = hadoop.chown(&database_location(export), user).await {
            return self.fail(uuid, creating, reason(PREPARE_ERROR, not_granted(user, export, e))).await;
        }
        tracing::info!(export = %uuid, "hive database created and given to HIVE_USER");
        let ready = HiveStage::DatabaseReady { task: task.to_owned() };
        let recorded = self.update(uuid, creating, |e| e.hive_stage = Some(ready.clone())).await?;
        match recorded {
            Some(ready) => self.send(&ready, None).await,
            None => Ok(()),
        }
    }

    /// Follows the Export API task: saves each new status, ends the export on an end state (a
    /// finished hive export is first handed to its datalab).
    async fn poll_export(&self, export: &Export, task: &str, attempt: u32, errors: u32) -> Result<(), MessageError> {
        let uuid = export.uuid;
        let running = |e: &Export| e.job.request_job_id == task;
        if let Some(late) = self.overdue(export, task) {
            return self.fail(uuid, running, reason(EXPORT_ERROR, late)).await;
        }
        let Some(api) = &self.api else {
            return self.fail(uuid, running, reason(EXPORT_ERROR, "EXPORT_API_URL is not set")).await;
        };
        let answer = match api.task_status(task).await {
            Ok(answer) => answer,
            Err(e) if errors + 1 >= MAX_POLL_ERRORS => return self.fail(uuid, running, reason(EXPORT_ERROR, e)).await,
            Err(e) => {
                tracing::warn!(export = %uuid, error = %e, "Export API poll failed");
                return self.queue_poll(uuid, task, attempt + 1, errors + 1).await;
            }
        };
        match status_of(&answer) {
            JobStatus::Finished if export.output_format == OutputFormat::Hive => {
                let filled = |e: &Export| running(e) && e.hive_stage != Some(HiveStage::HandingOver);
                let handing = self.update(uuid, filled, |e| e.hive_stage = Some(HiveStage::HandingOver)).await?;
                match handing {
                    Some(handing) => self.hand_over(&handing).await,
                    None => Ok(()),
                }
            }
            JobStatus::Finished => self.finish(export, running).await,
            s if s.is_final() => self.fail(uuid, running, reason(EXPORT_ERROR, ended_with(task, s))).await,
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

    /// Gives the filled hive database to the datalab (the name the export was made for), then ends
    /// the export finished.
    async fn hand_over(&self, export: &Export) -> Result<(), MessageError> {
        let uuid = export.uuid;
        let handing = |e: &Export| {
            e.job.request_job_id == export.job.request_job_id && e.hive_stage == Some(HiveStage::HandingOver)
        };
        let Some(hadoop) = &self.hadoop else {
            return self.fail(uuid, handing, reason(CONCLUDE_ERROR, "HADOOP_API_URL is not set")).await;
        };
        let Some(datalab) = export.summary.datalab_name.as_deref() else {
            return self.fail(uuid, handing, reason(CONCLUDE_ERROR, "the export has no datalab")).await;
        };
        if let Err(e) = hadoop.chown(&database_location(export), datalab).await {
            return self.fail(uuid, handing, reason(CONCLUDE_ERROR, not_granted(datalab, export, e))).await;
        }
        tracing::info!(export = %uuid, "hive database given to the datalab");
        self.finish(export, handing).await
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
    fn polls_back_off_to_a_minute() {
        let delays: Vec<u32> = (0..6).map(|a| poll_delay(10, a)).collect();
        assert_eq!(delays, [10, 20, 40, 60, 60, 60]);
        assert_eq!(poll_delay(0, 5), 0);
        assert_eq!(poll_delay(10, u32::MAX), 60);
    }
}
