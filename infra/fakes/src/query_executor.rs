//! The QueryExecutor (spec §6.2, §6.5): `POST /jobs?appName=omop-spark-job&classPath=…` takes the
//! one-line HOCON-like body the backend sends and answers `{"status": "STARTED", "jobId"}`; after
//! [`Config::delay`] the job calls back as the real one does, `PATCH <callback base><path>` with
//! `Authorization: Bearer <QE token>` and string values:
//! * `count` → `{"request_job_status": "FINISHED", "count": "<n>", "extra": {}}`;
//! * `count_all` → `{"request_job_status": "FINISHED", "minimum": "<⌊0.9 n⌋>", "maximum": "<⌈1.1 n⌉>", "extra": {}}`;
//! * `count_with_details` → `{"request_job_status": "FINISHED", "count": "<n>", "extra": {"<cohort id>": "<c>"…}}`,
//!   n split over the ids of `sourcePopulation.caresiteCohortList`;
//! * `create` → `{"request_job_status": "FINISHED", "group.id", "group.count", "extra": {}}` when the size
//!   (n, or n × `modeOptions.sampling` rounded) is below [`Config::cohort_size_limit`]; otherwise
//!   `LONG_PENDING` with the same keys, then after another delay the Solr ETL's `{"request_job_status":
//!   "FINISHED"}` with `Authorization: Bearer <ETL token>`. With a `callbackPath` (FHIR virtual cohorts,
//!   `/fhir-perimeters/<id>/`) a creation reports `{"request_job_status": "FINISHED", "group.id",
//!   "group.count"}` once: no ETL follows, as it only indexes cohort results.
//!
//! Paths: `callbackPath` when given, else `/cohort/dated-measures/<cohortUuid>/` (counts) or
//! `/cohort/cohorts/<cohortUuid>/` (creations); no `cohortUuid` and no `callbackPath` → no callback.
//!
//! n is deterministic: [`count_of`]. A syntax containing [`ERROR_MARKER`], or one that is not JSON,
//! fails: `{"request_job_status": "ERROR", "message": "…"}` instead. `DELETE /jobs/<id>` kills a running
//! job (`KILLED`, no callback afterwards) or reports its end (`FINISHED`/`ERROR`); unknown → 404.
//! `group.id` is random per job (unique across restarts of `make dev`). `GET /fake/jobs` lists what was
//! received.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A query whose syntax contains this fails (ERROR callback), to try the failure paths.
pub const ERROR_MARKER: &str = "FAKE_QE_ERROR";
/// Counts fall in `0..=MAX_COUNT`.
pub const MAX_COUNT: u64 = 50_000;

const APP_NAME: &str = "omop-spark-job";
const COUNT_CLASS: &str = "fr.aphp.id.eds.requester.CountQuery";
const CREATE_CLASS: &str = "fr.aphp.id.eds.requester.CreateQuery";
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Config {
    /// Base URL of the backend the callbacks go to (`FAKES_CALLBACK_URL`).
    pub callback_url: String,
    /// Bearer token of the QueryExecutor's callbacks (`QUERY_EXECUTOR_TOKEN`).
    pub query_executor_token: String,
    /// Bearer token of the Solr ETL's callback after a `LONG_PENDING` creation (`SOLR_ETL_TOKEN`).
    pub solr_etl_token: String,
    /// Time a job "runs" before its callback, and between `LONG_PENDING` and the ETL's callback.
    pub delay: Duration,
    /// `false` accepts jobs and never calls back (they stay running until cancelled).
    pub callbacks: bool,
    /// Creations of at least this many patients go through the ETL (`COHORT_SIZE_LIMIT`).
    pub cohort_size_limit: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Count,
    CountAll,
    CountWithDetails,
    Create,
}

impl Mode {
    fn parse(value: &str) -> Option<Self> {
        [Self::Count, Self::CountAll, Self::CountWithDetails, Self::Create].into_iter().find(|m| m.as_str() == value)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::CountAll => "count_all",
            Self::CountWithDetails => "count_with_details",
            Self::Create => "create",
        }
    }

    fn class_path(self) -> &'static str {
        match self {
            Self::Create => CREATE_CLASS,
            Self::Count | Self::CountAll | Self::CountWithDetails => COUNT_CLASS,
        }
    }
}

/// The QueryExecutor's side of a job: `Finished`/`Error` once it has called back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobState {
    Running,
    Finished,
    Error,
    Killed,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Error => "ERROR",
            Self::Killed => "KILLED",
        }
    }
}

/// An accepted submission.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedJob {
    pub job_id: String,
    pub mode: Mode,
    /// `input.cohortUuid` as sent (the backend writes `None` for virtual cohorts).
    pub cohort_uuid: Option<String>,
    pub owner: String,
    pub callback_path: Option<String>,
    pub sampling: Option<f64>,
    pub details: Option<String>,
    /// `input.cohortDefinitionSyntax`, decoded: the query's JSON text.
    pub syntax: String,
    pub body: String,
    pub state: JobState,
}

pub struct QueryExecutor {
    config: Config,
    http: reqwest::Client,
    jobs: Mutex<Vec<ReceivedJob>>,
}

impl QueryExecutor {
    pub fn new(config: Config) -> Self {
        // reqwest is built without a bundled crypto provider (workspace features); use ring as c360 does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(CALLBACK_TIMEOUT).build().unwrap_or_default();
        Self { config, http, jobs: Mutex::new(Vec::new()) }
    }

    /// The jobs accepted so far, oldest first, in their current state.
    pub fn jobs(&self) -> Vec<ReceivedJob> {
        self.jobs.lock().expect("jobs lock").clone()
    }

    /// Marks a running job ended with `state`; `false` if it was killed meanwhile (no callback then).
    fn end(&self, job_id: &str, state: JobState) -> bool {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        let running = jobs.iter_mut().find(|j| j.job_id == job_id).filter(|j| j.state == JobState::Running);
        running.map(|job| job.state = state).is_some()
    }
}

pub fn router(executor: Arc<QueryExecutor>) -> Router {
    Router::new()
        .route("/jobs", post(submit))
        .route("/jobs/{job_id}", delete(cancel))
        .route("/fake/jobs", get(list))
        .with_state(executor)
}

/// The count of a query: FNV-1a (64 bits) of the compact JSON text of the decoded
/// `cohortDefinitionSyntax` with its keys sorted and the top-level `instance_id` removed (it is the
/// DM's uuid, new for each count), modulo `MAX_COUNT + 1`. `None` when the syntax is not JSON.
pub fn count_of(syntax: &str) -> Option<u64> {
    let mut query: Value = serde_json::from_str(syntax).ok()?;
    if let Some(object) = query.as_object_mut() {
        object.remove("instance_id");
    }
    // serde_json's maps are sorted: the text is canonical whatever the key order sent.
    Some(fnv1a(query.to_string().as_bytes()) % (MAX_COUNT + 1))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The body's fields; the real executor reads it with Typesafe Config (`ConfigFactory.parseString`).
struct Submission {
    mode: Mode,
    syntax: String,
    owner: String,
    cohort_uuid: Option<String>,
    callback_path: Option<String>,
    sampling: Option<f64>,
    details: Option<String>,
}

#[derive(Deserialize)]
struct ModeOptions {
    sampling: Option<f64>,
    details: Option<String>,
}

/// Reads the first JSON value of `text`; returns it and what follows.
fn json_prefix<'a, T: Deserialize<'a>>(text: &'a str, key: &str) -> Result<(T, &'a str), String> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<T>();
    match values.next() {
        Some(Ok(value)) => Ok((value, &text[values.byte_offset()..])),
        Some(Err(e)) => Err(format!("input.{key}: {e}")),
        None => Err(format!("input.{key}: no value")),
    }
}

/// `input.<key> = <value>` pairs separated by commas. The syntax is a JSON string literal (it may hold
/// commas and `,input.`), the mode options a JSON object; other values end at a comma (HOCON's unquoted strings).
fn parse_body(body: &str) -> Result<Submission, String> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut mode_options: Option<ModeOptions> = None;
    let mut rest = body.trim();
    while !rest.is_empty() {
        let pair =
            rest.strip_prefix("input.").ok_or_else(|| format!("expected `input.<key> = ` at `{}`", clip(rest)))?;
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("no `=` after `input.{}`", clip(pair)))?;
        let key = key.trim();
        let value = value.trim_start();
        if fields.iter().any(|(k, _)| *k == key) || (key == "modeOptions" && mode_options.is_some()) {
            return Err(format!("input.{key} given twice"));
        }
        rest = match key {
            "cohortDefinitionSyntax" => {
                let (syntax, after): (String, _) = json_prefix(value, key)?;
                fields.push((key, syntax));
                after
            }
            "modeOptions" => {
                let (options, after) = json_prefix(value, key)?;
                mode_options = Some(options);
                after
            }
            _ => {
                let end = value.find(',').unwrap_or(value.len());
                fields.push((key, value[..end].trim().to_owned()));
                &value[end..]
            }
        }
        .trim_start();
        if !rest.is_empty() {
            rest =
                rest.strip_prefix(',').ok_or_else(|| format!("expected `,` after input.{key} at `{}`", clip(rest)))?;
        }
    }
    let mut take = |key: &str| {
        let position = fields.iter().position(|(k, _)| *k == key)?;
        Some(fields.swap_remove(position).1).filter(|v| !v.is_empty())
    };
    let required = |value: Option<String>, key: &str| value.ok_or_else(|| format!("missing input.{key}"));
    required(take("cohortDefinitionName"), "cohortDefinitionName")?;
    let syntax = required(take("cohortDefinitionSyntax"), "cohortDefinitionSyntax")?;
    let owner = required(take("ownerEntityId"), "ownerEntityId")?;
    let mode = required(take("mode"), "mode")?;
    let mode = Mode::parse(&mode).ok_or_else(|| format!("unknown input.mode `{mode}`"))?;
    let cohort_uuid = take("cohortUuid");
    let callback_path = take("callbackPath");
    // Typesafe Config ignores keys nobody reads; so does the executor.
    take("cohortDefinitionDescription");
    if !fields.is_empty() {
        let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        tracing::warn!("fake QueryExecutor: ignoring unknown keys {keys:?}");
    }
    let (sampling, details) = mode_options.map_or((None, None), |o| (o.sampling, o.details));
    Ok(Submission { mode, syntax, owner, cohort_uuid, callback_path, sampling, details })
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"status": "ERROR", "result": message}))).into_response()
}

async fn submit(
    State(executor): State<Arc<QueryExecutor>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    body: String,
) -> Response {
    let submission = match parse_body(&body) {
        Ok(s) => s,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let class_path = params.get("classPath").map(String::as_str);
    if params.get("appName").map(String::as_str) != Some(APP_NAME) || class_path != Some(submission.mode.class_path()) {
        let message = format!(
            "mode {} needs appName={APP_NAME}&classPath={}",
            submission.mode.as_str(),
            submission.mode.class_path()
        );
        return error(StatusCode::BAD_REQUEST, message);
    }
    let job = ReceivedJob {
        job_id: Uuid::new_v4().to_string(),
        mode: submission.mode,
        cohort_uuid: submission.cohort_uuid,
        owner: submission.owner,
        callback_path: submission.callback_path,
        sampling: submission.sampling,
        details: submission.details,
        syntax: submission.syntax,
        body,
        state: JobState::Running,
    };
    tracing::info!("fake QueryExecutor: {} job {} for {:?}", job.mode.as_str(), job.job_id, job.cohort_uuid);
    let job_id = job.job_id.clone();
    executor.jobs.lock().expect("jobs lock").push(job.clone());
    if executor.config.callbacks {
        tokio::spawn(run(executor, job));
    }
    Json(json!({"status": "STARTED", "jobId": job_id})).into_response()
}

async fn cancel(State(executor): State<Arc<QueryExecutor>>, Path(job_id): Path<String>) -> Response {
    let mut jobs = executor.jobs.lock().expect("jobs lock");
    let Some(job) = jobs.iter_mut().find(|j| j.job_id == job_id) else {
        return error(StatusCode::NOT_FOUND, format!("No such job ID {job_id}"));
    };
    if job.state == JobState::Running {
        job.state = JobState::Killed;
    }
    Json(json!({"status": job.state.as_str()})).into_response()
}

async fn list(State(executor): State<Arc<QueryExecutor>>) -> Json<Vec<ReceivedJob>> {
    Json(executor.jobs())
}

/// The callback body of a job that ran well, values as the real executor writes them: strings.
fn outcome(job: &ReceivedJob, limit: u64) -> Result<Map<String, Value>, String> {
    if job.syntax.contains(ERROR_MARKER) {
        return Err(format!("{ERROR_MARKER}: simulated failure of the {} job", job.mode.as_str()));
    }
    let n = count_of(&job.syntax).ok_or("Invalid JSON query: cohortDefinitionSyntax is not JSON")?;
    let mut body = Map::new();
    let mut put = |key: &str, value: Value| body.insert(key.to_owned(), value);
    let mut state = "FINISHED";
    match job.mode {
        Mode::Count => {
            put("count", n.to_string().into());
        }
        Mode::CountAll => {
            put("minimum", (n * 9 / 10).to_string().into());
            put("maximum", (n * 11).div_ceil(10).to_string().into());
        }
        Mode::CountWithDetails => {
            put("count", n.to_string().into());
            put("extra", Value::Object(split(n, &source_cohorts(&job.syntax))));
        }
        Mode::Create => {
            let size = job.sampling.map_or(n, |ratio| (n as f64 * ratio).round().max(0.0) as u64);
            // A cohort id of AP-HP's shape, unique per job (stable ones would clash across dev restarts).
            let group_id =
                1_000_000_000 + Uuid::parse_str(&job.job_id).map_or(0, |u| u.as_u64_pair().0 % 9_000_000_000);
            put("group.id", group_id.to_string().into());
            put("group.count", size.to_string().into());
            if job.callback_path.is_some() {
                return Ok(with_status("FINISHED", body));
            }
            if size >= limit {
                state = "LONG_PENDING";
            }
        }
    }
    body.entry("extra").or_insert_with(|| json!({}));
    Ok(with_status(state, body))
}

fn with_status(status: &str, mut body: Map<String, Value>) -> Map<String, Value> {
    body.insert("request_job_status".into(), status.into());
    body
}

/// `sourcePopulation.caresiteCohortList` as strings (the backend sends integers, the front strings).
fn source_cohorts(syntax: &str) -> Vec<String> {
    let query: Value = serde_json::from_str(syntax).unwrap_or_default();
    let mut ids: Vec<String> = query["sourcePopulation"]["caresiteCohortList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned).or_else(|| id.as_i64().map(|i| i.to_string())))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Splits `n` over `ids` with stable uneven weights (1 to 9, from each id's hash); the shares sum to `n`.
fn split(n: u64, ids: &[String]) -> Map<String, Value> {
    let weights: Vec<u64> = ids.iter().map(|id| 1 + fnv1a(id.as_bytes()) % 9).collect();
    let total: u64 = weights.iter().sum();
    let mut shares: Vec<u64> = weights.iter().map(|w| n * w / total).collect();
    let rounding = n - shares.iter().sum::<u64>();
    if let Some(first) = shares.first_mut() {
        *first += rounding;
    }
    ids.iter().cloned().zip(shares).map(|(id, share)| (id, share.to_string().into())).collect()
}

async fn run(executor: Arc<QueryExecutor>, job: ReceivedJob) {
    let config = &executor.config;
    tokio::time::sleep(config.delay).await;
    let (state, body) = match outcome(&job, config.cohort_size_limit) {
        Ok(body) => (JobState::Finished, body),
        Err(message) => (JobState::Error, with_status("ERROR", Map::from_iter([("message".into(), message.into())]))),
    };
    let path = match (&job.callback_path, &job.cohort_uuid, job.mode) {
        (Some(path), _, _) => Some(path.clone()),
        (None, Some(uuid), Mode::Create) => Some(format!("/cohort/cohorts/{uuid}/")),
        (None, Some(uuid), _) => Some(format!("/cohort/dated-measures/{uuid}/")),
        // The real executor ends such a job with nowhere to report to.
        (None, None, _) => None,
    };
    let (true, Some(path)) = (executor.end(&job.job_id, state), path) else {
        return;
    };
    let url = format!("{}{path}", config.callback_url.trim_end_matches('/'));
    let long_pending = body["request_job_status"] == "LONG_PENDING";
    patch(&executor.http, &url, &config.query_executor_token, Value::Object(body)).await;
    if long_pending {
        tokio::time::sleep(config.delay).await;
        patch(&executor.http, &url, &config.solr_etl_token, json!({"request_job_status": "FINISHED"})).await;
    }
}

/// Failures are only logged, as the real executor does; the token never is.
async fn patch(http: &reqwest::Client, url: &str, token: &str, body: Value) {
    let status = body["request_job_status"].as_str().unwrap_or_default().to_owned();
    match http.patch(url).bearer_auth(token).json(&body).send().await {
        Ok(response) if response.status().is_success() => {
            tracing::info!("fake QueryExecutor: PATCH {url} ({status}) → {}", response.status())
        }
        Ok(response) => tracing::warn!("fake QueryExecutor: PATCH {url} ({status}) → {}", response.status()),
        Err(e) => tracing::warn!("fake QueryExecutor: PATCH {url} ({status}) failed: {}", e.without_url()),
    }
}
