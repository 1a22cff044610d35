//! Cohort jobs (spec §5.6–§5.8, §6.2) from the cohort jobs queue: counts, global counts, cohort
//! creations and feasibility studies, submitted to the QueryExecutor.
//!
//! Every step is a conditional write on the job's status, so the worker is idempotent and races
//! nothing: a job is claimed by moving it out of `new` (a redelivered message finds it claimed and
//! stops), and the launch bookkeeping only applies while the job is still where the launch left it —
//! a callback that arrives first (`finished`) is never overwritten. QueryExecutor failures end the
//! job as `failed` with the reason (the message is not retried); storage failures are retried.
//! A job the worker fails is told to its owner as a callback's failure is (`JobNews`); a launched
//! feasibility study e-mails "report requested".
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use c360::{
    clients::executor::{Executor, ExecutorError},
    clients::fhir::FhirClient,
    clients::jobs::{CohortJob, ExportQueue, ForwardedAuth, JobMessage, JOB_MESSAGE_VERSION},
    clients::mail::{SesMailer, SharedMailer},
    clients::push::Notifier,
    config::{ConfigError, Settings},
    domain::{
        cohort::{CohortResult, DatedMeasure, FeasibilityStudy, JobStatus, Kind, Workspace},
        query_executor::{sample_query, virtual_cohort_query, Job, JobKind, VIRTUAL_COHORT_OWNER},
        solr, time,
        tree::PerimeterTree,
    },
    services::job_news::{AsMoved, JobNews},
    services::notify::ReportNews,
    store::{
        cohort::{Changes, WorkspaceObject},
        DynamoStore, StoreError,
    },
    worker::{envelope, process_batch, MessageError},
};
use uuid::Uuid;

pub struct Worker {
    pub store: DynamoStore,
    /// `None` when `QUERY_EXECUTOR_URL` is not set: every job fails with that reason.
    pub executor: Option<Executor>,
    /// Set when `USE_SOLR` is on: criteria get their `filterSolr` from FHIR `$query` (spec §6.3).
    pub fhir: Option<FhirClient>,
    pub notifier: Notifier,
    pub mailer: SharedMailer,
    /// The export jobs queue: a subset failed at launch re-checks its export (spec §7.4).
    pub exports: ExportQueue,
    /// `COHORT_SIZE_LIMIT` (larger cohorts are built by the Solr ETL), and what the e-mails link to.
    pub settings: Settings,
}

impl Worker {
    /// `TABLE_NAME`, `QUERY_EXECUTOR_URL`, `COHORT_SIZE_LIMIT`, `HTTP_CLIENT_TIMEOUT_SECONDS`,
    /// `WS_MANAGEMENT_ENDPOINT`, `DEFAULT_FROM_EMAIL`.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::new(Settings::from_env()?, &c360::aws::sdk_config().await)
    }

    /// The worker over the AWS services `sdk` points at, e-mailing through SES.
    pub fn new(settings: Settings, sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(sdk), settings.default_from_email.clone());
        let http = c360::aws::http_client(settings.http_timeout);
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table_name.clone());
        Ok(Self {
            fhir: solr_client(&settings, http.clone())?,
            executor: settings.query_executor_url.clone().map(|url| Executor::new(http, url)),
            notifier: Notifier::new(sdk, settings.ws_management_endpoint.as_deref(), store.clone()),
            mailer: SharedMailer::new(mailer),
            exports: ExportQueue::new(aws_sdk_sqs::Client::new(sdk), settings.export_jobs_queue_url.clone()),
            store,
            settings,
        })
    }

    fn news(&self) -> JobNews<'_, SharedMailer> {
        JobNews {
            store: &self.store,
            notifier: &self.notifier,
            mailer: &self.mailer,
            settings: &self.settings,
            exports: &self.exports,
        }
    }
}

/// The FHIR client of the Solr formatting, when `USE_SOLR` asks for it.
pub fn solr_client(settings: &Settings, http: reqwest::Client) -> Result<Option<FhirClient>, ConfigError> {
    let Some(url) = settings.fhir.url.as_deref().filter(|_| settings.use_solr) else { return Ok(None) };
    let client = FhirClient::new(url, settings.fhir.access_token.clone(), http)
        .map_err(|e| ConfigError::Invalid { name: "FHIR_URL".into(), reason: e.to_string() })?;
    Ok(Some(client))
}

/// What became of a launch.
enum Launch<T> {
    /// QueryExecutor took the job (or refused it: the job is then `failed`); this is the job as recorded.
    Recorded(T),
    /// The job had moved on (an early callback) or could not be launched.
    NotRecorded,
}

pub async fn function_handler(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    // Boxed: the job futures are deep enough to exhaust the compiler's layout recursion otherwise.
    process_batch(event, |body| async move { Box::pin(worker.handle(&body)).await }).await
}

fn storage(err: StoreError) -> MessageError {
    MessageError(format!("storage: {err}"))
}

/// The changes that set a job's status (and its open-jobs index entry).
fn status<T: WorkspaceObject>(uuid: Uuid, status: JobStatus) -> Result<Changes, MessageError> {
    let mut changes = Changes::modified(time::now());
    changes.job_status(T::KIND, uuid, status).map_err(storage)?;
    Ok(changes)
}

/// Whether the conditional write applied (`false`: the job had moved on).
fn applied<T>(result: Result<T, StoreError>) -> Result<bool, MessageError> {
    match result {
        Ok(_) => Ok(true),
        Err(StoreError::ConditionFailed) => Ok(false),
        Err(other) => Err(storage(other)),
    }
}

impl Worker {
    pub async fn handle(&self, body: &str) -> Result<(), MessageError> {
        let header = envelope(body)?;
        if header.version != JOB_MESSAGE_VERSION {
            return Err(MessageError(format!("unknown cohort job message version {}", header.version)));
        }
        let message: JobMessage =
            serde_json::from_str(body).map_err(|e| MessageError(format!("malformed cohort job message: {e}")))?;
        let auth = message.fhir_auth.as_ref();
        match message.job {
            CohortJob::Count { owner, dated_measure, stage_details } => {
                self.count(&owner, dated_measure, stage_details.as_deref(), false, auth).await
            }
            CohortJob::CountAll { owner, dated_measure } => self.count(&owner, dated_measure, None, true, auth).await,
            CohortJob::Create { owner, cohort } => self.create(&owner, cohort, auth).await,
            CohortJob::Feasibility { owner, study } => self.feasibility(&owner, study, auth).await,
            CohortJob::VirtualCohort { perimeter_id } => self.virtual_cohort(perimeter_id).await,
        }
    }

    /// Moves a job out of `new`; `false` when another delivery already did (or it is gone).
    async fn claim<T: WorkspaceObject>(&self, owner: &str, uuid: Uuid, to: JobStatus) -> Result<bool, MessageError> {
        let mut changes = status::<T>(uuid, to)?;
        changes.while_status(&[JobStatus::New]);
        applied(self.store.update_object::<T>(owner, uuid, changes).await)
    }

    /// Ends a job that could not be launched (unless it ended meanwhile) and tells its owner.
    async fn fail<T: WorkspaceObject + AsMoved>(
        &self,
        owner: &str,
        uuid: Uuid,
        reason: &str,
    ) -> Result<Launch<T>, MessageError> {
        tracing::warn!(job = %uuid, kind = ?T::KIND, reason, "cohort job failed at launch");
        let mut changes = status::<T>(uuid, JobStatus::Failed)?;
        changes.set("request_job_fail_msg", &reason).map_err(storage)?;
        changes.while_status(&JobStatus::not_final());
        match self.store.update_object::<T>(owner, uuid, changes).await {
            Ok(failed) => self.tell_failure(&failed).await,
            Err(StoreError::ConditionFailed) => {}
            Err(other) => return Err(storage(other)),
        }
        Ok(Launch::NotRecorded)
    }

    /// The owner hears of a failure the worker wrote (a launch is never retried for telling).
    async fn tell_failure<T: AsMoved>(&self, job: &T) {
        if let Err(err) = self.news().failed(job.moved(), time::now()).await {
            tracing::warn!(error = %err, "the owner of a failed job was not told");
        }
    }

    /// Submits a job and records QE's answer while the job is still in `launched_as`.
    async fn submit<T: WorkspaceObject + AsMoved>(
        &self,
        owner: &str,
        uuid: Uuid,
        job: Result<Job, String>,
        launched_as: JobStatus,
        auth: Option<&ForwardedAuth>,
    ) -> Result<Launch<T>, MessageError> {
        let Some(executor) = &self.executor else {
            return self.fail::<T>(owner, uuid, "QUERY_EXECUTOR_URL is not configured").await;
        };
        let job = match job {
            Ok(job) => self.solr_formatted(job, auth).await,
            Err(reason) => Err(reason),
        };
        let job = match job {
            Ok(job) => job,
            Err(reason) => return self.fail::<T>(owner, uuid, &reason).await,
        };
        let answer = match executor.submit(&job).await {
            Ok(answer) => answer,
            Err(err) => return self.fail::<T>(owner, uuid, &err.to_string()).await,
        };
        // A cohort the ETL builds stays `long_pending` until the ETL reports (spec §5.7).
        let next = if launched_as == JobStatus::LongPending { JobStatus::LongPending } else { answer.status };
        let mut changes = status::<T>(uuid, next)?;
        changes.set("request_job_id", &answer.job_id.unwrap_or_default()).map_err(storage)?;
        if next == JobStatus::Failed {
            changes.set("request_job_fail_msg", &answer.message.unwrap_or_default()).map_err(storage)?;
        }
        changes.while_status(&[launched_as]);
        match self.store.update_object::<T>(owner, uuid, changes).await {
            Ok(recorded) => {
                if next == JobStatus::Failed {
                    self.tell_failure(&recorded).await;
                }
                Ok(Launch::Recorded(recorded))
            }
            Err(StoreError::ConditionFailed) => {
                tracing::info!(job = %uuid, "the job moved on before its launch was recorded (early callback)");
                Ok(Launch::NotRecorded)
            }
            Err(other) => Err(storage(other)),
        }
    }

    /// Spec §6.3: with `USE_SOLR`, every `basicResource` criterion gets the `filterSolr` FHIR
    /// `$query` gives for its `filterFhir` (which stays as it is).
    async fn solr_formatted(&self, mut job: Job, auth: Option<&ForwardedAuth>) -> Result<Job, String> {
        let Some(fhir) = &self.fhir else { return Ok(job) };
        for criterion in job.query.basic_resources_mut() {
            let id = criterion.id.unwrap_or_default();
            let lookup = solr::lookup(criterion).map_err(|e| format!("Solr formatting of criterion {id}: {e}"))?;
            let fq = fhir
                .solr_fq(&lookup, auth, self.settings.test_fhir_queries)
                .await
                .map_err(|e| format!("Solr formatting of criterion {id} ({}): {e}", lookup.resource.as_str()))?;
            criterion.filter_solr = Some(solr::filter_solr(&fq, lookup.ipps.as_deref()));
        }
        Ok(job)
    }

    async fn count(
        &self,
        owner: &str,
        uuid: Uuid,
        stage_details: Option<&str>,
        global: bool,
        auth: Option<&ForwardedAuth>,
    ) -> Result<(), MessageError> {
        let Some(measure) = self.store.workspace_object::<DatedMeasure>(owner, uuid).await.map_err(storage)? else {
            return Ok(()); // deleted meanwhile
        };
        if !self.claim::<DatedMeasure>(owner, uuid, JobStatus::Pending).await? {
            return Ok(());
        }
        if !global {
            self.cancel_previous_counts(owner, &measure).await?;
        }
        let job = match self.store.snapshot_query(owner, measure.request_query_snapshot).await.map_err(storage)? {
            None => Err("the snapshot's query is gone".to_owned()),
            Some(text) if global => match self.root_cohort_id().await? {
                Some(root) => Job::new(
                    JobKind::CountAll { dated_measure: uuid, root_cohort_id: &root },
                    owner,
                    &text.serialized_query,
                )
                .map_err(|e| e.to_string()),
                None => Err("no root perimeter with a cohort id".to_owned()),
            },
            Some(text) => {
                Job::new(JobKind::Count { dated_measure: uuid, stage_details }, owner, &text.serialized_query)
                    .map_err(|e| e.to_string())
            }
        };
        self.submit::<DatedMeasure>(owner, uuid, job, JobStatus::Pending, auth).await.map(|_| ())
    }

    /// Spec §5.6 step 1: a new count of a request stops the earlier ones still running, unless a
    /// cohort uses them.
    async fn cancel_previous_counts(&self, owner: &str, current: &DatedMeasure) -> Result<(), MessageError> {
        // Once counts say which cohorts are built on them, the running ones are read from the open-jobs
        // index; before (tables not yet backfilled), from the owner's counts and cohorts.
        let running: Vec<(DatedMeasure, bool)> = if self.store.workspace_layout_ready().await.map_err(storage)? {
            self.store.running_counts_of(owner, current.request).await.map_err(storage)?
        } else {
            let ws: Workspace =
                self.store.workspace(owner, &[Kind::DatedMeasure, Kind::Cohort]).await.map_err(storage)?;
            let used =
                |m: Uuid| ws.cohorts.iter().any(|c| c.dated_measure == Some(m) || c.dated_measure_global == Some(m));
            ws.measures.iter().filter(|m| m.request == current.request).map(|m| (m.clone(), used(m.uuid))).collect()
        };
        let earlier = running.iter().map(|(m, used)| (m, *used)).filter(|(m, used)| {
            m.uuid != current.uuid
                && matches!(m.job.request_job_status, JobStatus::Started | JobStatus::Pending)
                && !used
        });
        for (measure, _) in earlier {
            let was = measure.job.request_job_status;
            let outcome = match (was, &self.executor) {
                (JobStatus::Started, Some(executor)) => executor.cancel(&measure.job.request_job_id).await,
                (JobStatus::Started, None) => Err(ExecutorError::Answer("QUERY_EXECUTOR_URL is not configured".into())),
                _ => Ok(JobStatus::Cancelled),
            };
            let mut changes = match outcome {
                Ok(new_status) => status::<DatedMeasure>(measure.uuid, new_status)?,
                Err(err) => {
                    let mut changes = status::<DatedMeasure>(measure.uuid, JobStatus::Failed)?;
                    let reason =
                        format!("Error cancelling a {} DM job [{}] - {err}", was.as_str(), measure.job.request_job_id);
                    changes.set("request_job_fail_msg", &reason).map_err(storage)?;
                    changes
                }
            };
            changes.while_status(&[was]);
            applied(self.store.update_object::<DatedMeasure>(owner, measure.uuid, changes).await)?;
        }
        Ok(())
    }

    async fn create(&self, owner: &str, uuid: Uuid, auth: Option<&ForwardedAuth>) -> Result<(), MessageError> {
        let Some(cohort) = self.store.workspace_object::<CohortResult>(owner, uuid).await.map_err(storage)? else {
            return Ok(());
        };
        if cohort.job.request_job_status != JobStatus::New {
            return Ok(());
        }
        let measure_of = |m: Option<Uuid>| async move {
            match m {
                Some(m) => {
                    self.store.workspace_object::<DatedMeasure>(owner, m).await.map(|d| d.and_then(|d| d.measure))
                }
                None => Ok(None),
            }
        };
        // Samples are built from their parent cohort's FHIR group (spec §6.4).
        let (query, expected) = match cohort.parent_cohort {
            Some(parent) => {
                let parent = self.store.workspace_object::<CohortResult>(owner, parent).await.map_err(storage)?;
                let size = match &parent {
                    Some(p) => measure_of(p.dated_measure).await.map_err(storage)?,
                    None => None,
                };
                let ratio = cohort.sampling_ratio.unwrap_or(1.0);
                let expected = size.map(|s| (s as f64 * ratio).round() as i64);
                (parent.map(|p| sample_query(&p.group_id)).ok_or("the parent cohort is gone".to_owned()), expected)
            }
            None => {
                let snapshot = cohort.request_query_snapshot.unwrap_or_default();
                let text = self.store.snapshot_query(owner, snapshot).await.map_err(storage)?;
                let expected = measure_of(cohort.dated_measure).await.map_err(storage)?;
                (text.map(|t| t.serialized_query).ok_or("the snapshot's query is gone".to_owned()), expected)
            }
        };
        let launched_as = if expected.is_some_and(|size| size >= self.settings.cohort_size_limit) {
            JobStatus::LongPending
        } else {
            JobStatus::Pending
        };
        if !self.claim::<CohortResult>(owner, uuid, launched_as).await? {
            return Ok(());
        }
        let job = query.and_then(|q| {
            Job::new(JobKind::Create { cohort: uuid, sampling_ratio: cohort.sampling_ratio }, owner, &q)
                .map_err(|e| e.to_string())
        });
        self.submit::<CohortResult>(owner, uuid, job, launched_as, auth).await.map(|_| ())
    }

    async fn feasibility(&self, owner: &str, uuid: Uuid, auth: Option<&ForwardedAuth>) -> Result<(), MessageError> {
        let Some(study) = self.store.workspace_object::<FeasibilityStudy>(owner, uuid).await.map_err(storage)? else {
            return Ok(());
        };
        if !self.claim::<FeasibilityStudy>(owner, uuid, JobStatus::Pending).await? {
            return Ok(());
        }
        let text = self.store.snapshot_query(owner, study.request_query_snapshot).await.map_err(storage)?;
        let job = match (text, self.root_cohort_id().await?) {
            (None, _) => Err("the snapshot's query is gone".to_owned()),
            (_, None) => Err("no root perimeter with a cohort id".to_owned()),
            (Some(text), Some(root)) => Job::new(
                JobKind::CountWithDetails { study: uuid, root_cohort_id: &root },
                owner,
                &text.serialized_query,
            )
            .map_err(|e| e.to_string()),
        };
        // Spec §5.8: "report requested" once QueryExecutor took the study (a failure says "failed").
        if let Launch::Recorded(study) =
            self.submit::<FeasibilityStudy>(owner, uuid, job, JobStatus::Pending, auth).await?
        {
            if study.job.request_job_status != JobStatus::Failed {
                if let Err(err) = self.news().study(&study, ReportNews::Requested).await {
                    tracing::warn!(error = %err, "the \"report requested\" e-mail was not sent");
                }
            }
        }
        Ok(())
    }

    /// A perimeter's virtual cohort (spec §6.4): its encounters and its descendants'. There is no job
    /// record; a failed submission is retried by the queue (then parked in the DLQ), and the next
    /// sync lists the perimeter again while it has no cohort id.
    async fn virtual_cohort(&self, perimeter_id: i64) -> Result<(), MessageError> {
        let tree = self.tree().await?;
        if !tree.contains(perimeter_id) {
            return Ok(()); // removed since the sync
        }
        let descendants: Vec<i64> = tree.descendants(perimeter_id).map(|p| p.id).collect();
        let query = virtual_cohort_query(perimeter_id, &descendants);
        let job = Job::new(JobKind::VirtualCohort { perimeter_id }, VIRTUAL_COHORT_OWNER, &query)
            .map_err(|e| MessageError(format!("virtual cohort query: {e}")))?;
        let job = self.solr_formatted(job, None).await.map_err(MessageError)?;
        let executor =
            self.executor.as_ref().ok_or_else(|| MessageError("QUERY_EXECUTOR_URL is not configured".into()))?;
        let answer = executor.submit(&job).await.map_err(|e| MessageError(e.to_string()))?;
        tracing::info!(perimeter_id, job_id = ?answer.job_id, "virtual cohort submitted");
        Ok(())
    }

    /// The cohort id of the root perimeter (level 1, no parent): global counts and studies run on it.
    async fn root_cohort_id(&self) -> Result<Option<String>, MessageError> {
        Ok(self.tree().await?.roots().find_map(|p| p.cohort_id().map(str::to_owned)))
    }

    /// The tree from its stored snapshot (one Query), not from every perimeter record.
    async fn tree(&self) -> Result<PerimeterTree, MessageError> {
        let (_, tree) = c360::services::perimeter_sync::current_tree(&self.store)
            .await
            .map_err(|e| MessageError(format!("the perimeter tree: {e}")))?;
        Ok(tree)
    }
}
