//! A fake Hadoop API (spec §7.5 hive specifics). `POST /hadoop/hive/create_base_hive?name=&location=`
//! answers a `task_id`; `GET /hadoop/task_status?task_uuid=…` answers `Running` until the configured
//! delay has passed, then the configured outcome; `POST /hadoop/hdfs/chown_directory?location=&uid=&gid=`
//! answers `{"status": "success", "ret_code": 0}` or the configured failure. Every call needs the
//! `auth-token` header; `GET /fake/calls` lists the accepted calls in order, with their parameters.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;
use serde_json::json;

/// How database creation tasks end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `FinishedSuccessfully`.
    Success,
    /// The given final `task_status` (e.g. `FinishedWithError`).
    Status(String),
    /// `create_base_hive` answers 500: no task is created.
    RefuseCreate,
    /// `task_status` answers 503 (the API is down while the task runs).
    StatusDown,
}

impl Outcome {
    /// `success`, `refuse`, `down`, or a final task status.
    pub fn parse(value: &str) -> Self {
        match value {
            "" | "success" => Self::Success,
            "refuse" => Self::RefuseCreate,
            "down" => Self::StatusDown,
            other => Self::Status(other.to_owned()),
        }
    }
}

/// What `chown_directory` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chown {
    /// 200 `{"status": "success", "ret_code": 0}`.
    Success,
    /// 500 with a text body.
    Refuse,
    /// 200 `{"status": "failure", "ret_code": 1, "err": …}`: the command ran and failed.
    Fail,
}

impl Chown {
    /// `success`, `refuse` or `fail`.
    pub fn parse(value: &str) -> Self {
        match value {
            "refuse" => Self::Refuse,
            "fail" => Self::Fail,
            _ => Self::Success,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The `auth-token` expected (`HADOOP_API_AUTH_TOKEN`; empty accepts any).
    pub token: String,
    /// How long a creation task runs before its outcome (`FAKE_HADOOP_DELAY_MS`).
    pub delay: Duration,
    pub outcome: Outcome,
    pub chown: Chown,
}

/// An accepted call, as the tests read it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// The query parameters, decoded.
    pub query: BTreeMap<String, String>,
}

pub struct HadoopApi {
    config: Mutex<Config>,
    calls: Mutex<Vec<Call>>,
    /// Creation tasks: id and when they started.
    tasks: Mutex<Vec<(String, Instant)>>,
}

impl HadoopApi {
    pub fn new(config: Config) -> Self {
        Self { config: Mutex::new(config), calls: Mutex::new(Vec::new()), tasks: Mutex::new(Vec::new()) }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// Changes what the next calls do (tests drive each outcome).
    pub fn set(&self, delay: Duration, outcome: Outcome, chown: Chown) {
        let mut config = self.config.lock().expect("config lock");
        config.delay = delay;
        config.outcome = outcome;
        config.chown = chown;
    }

    fn config(&self) -> Config {
        self.config.lock().expect("config lock").clone()
    }
}

pub fn router(api: Arc<HadoopApi>) -> Router {
    Router::new()
        .route("/hadoop/hive/create_base_hive", post(create_base_hive))
        .route("/hadoop/task_status", get(task_status))
        .route("/hadoop/hdfs/chown_directory", post(chown_directory))
        .route("/fake/calls", get(list))
        .with_state(api)
}

fn detail(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({"detail": detail}))).into_response()
}

type Params = Query<BTreeMap<String, String>>;

/// Records the call when its token is right; else the 401 to answer.
fn accept(api: &HadoopApi, method: &Method, uri: &Uri, headers: &HeaderMap, query: &Params) -> Option<Response> {
    let token = api.config().token;
    if !token.is_empty() && headers.get("auth-token").and_then(|v| v.to_str().ok()) != Some(token.as_str()) {
        return Some(detail(StatusCode::UNAUTHORIZED, "invalid auth-token"));
    }
    let call = Call { method: method.to_string(), path: uri.path().to_owned(), query: query.0.clone() };
    api.calls.lock().expect("calls lock").push(call);
    None
}

/// The first of `names` missing from the query, as FastAPI's 422.
fn missing(query: &Params, names: &[&str]) -> Option<Response> {
    let name = names.iter().find(|n| query.get(**n).is_none_or(|v| v.is_empty()))?;
    Some(detail(StatusCode::UNPROCESSABLE_ENTITY, &format!("query parameter `{name}` is required")))
}

async fn create_base_hive(
    State(api): State<Arc<HadoopApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Params,
) -> Response {
    if let Some(refused) =
        accept(&api, &method, &uri, &headers, &query).or_else(|| missing(&query, &["name", "location"]))
    {
        return refused;
    }
    if api.config().outcome == Outcome::RefuseCreate {
        return detail(StatusCode::INTERNAL_SERVER_ERROR, "the fake Hadoop API refuses databases");
    }
    let task_id = uuid::Uuid::new_v4().to_string();
    api.tasks.lock().expect("tasks lock").push((task_id.clone(), Instant::now()));
    Json(json!({"task_id": task_id})).into_response()
}

async fn task_status(
    State(api): State<Arc<HadoopApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Params,
) -> Response {
    if let Some(refused) = accept(&api, &method, &uri, &headers, &query).or_else(|| missing(&query, &["task_uuid"])) {
        return refused;
    }
    let config = api.config();
    if config.outcome == Outcome::StatusDown {
        return detail(StatusCode::SERVICE_UNAVAILABLE, "the fake Hadoop API is down");
    }
    let wanted = query.get("task_uuid").cloned().unwrap_or_default();
    let started = api.tasks.lock().expect("tasks lock").iter().find(|(id, _)| *id == wanted).map(|(_, at)| *at);
    let Some(started) = started else {
        return Json(json!({"task_status": "NotFound", "out_logs": "", "err_logs": "no such task"})).into_response();
    };
    let status = match &config.outcome {
        _ if started.elapsed() < config.delay => "Running",
        Outcome::Status(status) => status.as_str(),
        Outcome::Success | Outcome::RefuseCreate | Outcome::StatusDown => "FinishedSuccessfully",
    };
    Json(json!({"task_status": status, "out_logs": format!("[fake] task {wanted}"), "err_logs": ""})).into_response()
}

async fn chown_directory(
    State(api): State<Arc<HadoopApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Params,
) -> Response {
    if let Some(refused) =
        accept(&api, &method, &uri, &headers, &query).or_else(|| missing(&query, &["location", "uid", "gid"]))
    {
        return refused;
    }
    match api.config().chown {
        Chown::Success => Json(json!({"status": "success", "ret_code": 0, "out": "", "err": ""})).into_response(),
        Chown::Refuse => (StatusCode::INTERNAL_SERVER_ERROR, "the fake Hadoop API refuses chown").into_response(),
        Chown::Fail => {
            let err = format!("chown: `{}`: no such user", query.get("uid").map_or("", String::as_str));
            Json(json!({"status": "failure", "ret_code": 1, "out": "", "err": err})).into_response()
        }
    }
}

async fn list(State(api): State<Arc<HadoopApi>>) -> Json<Vec<Call>> {
    Json(api.calls())
}
