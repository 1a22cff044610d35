//! The fake QueryExecutor (infra/fakes/src/query_executor.rs) against the contract of spec §6.2 and
//! §6.5: bodies built by the backend's payload module are accepted, and the callbacks reach a small
//! receiver standing for the backend with the paths, bodies and tokens the backend expects.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, Method, Uri},
    Json, Router,
};
use c360::domain::query_executor::{
    json_string_literal, sample_query, virtual_cohort_query, Job, JobKind, COUNT_PATH, CREATE_PATH,
};
use fakes::query_executor::{count_of, Config, JobState, Mode, QueryExecutor, ERROR_MARKER, MAX_COUNT};
use serde_json::{json, Value};
use uuid::Uuid;

const QE_TOKEN: &str = "qe-test-token";
const ETL_TOKEN: &str = "etl-test-token";
const OWNER: &str = "4212345";
const ROOT: &str = "8312002244";
/// A query of the front's shape; its filter holds a comma, as real filters do.
const QUERY: &str = r#"{"_type":"request","sourcePopulation":{"caresiteCohortList":["8312002244","8312016825"]},
  "request":{"_type":"andGroup","_id":0,"isInclusive":true,"criteria":[{"_type":"basicResource","_id":1,
  "isInclusive":true,"resourceType":"Patient","filterFhir":"gender=female,male&active=true","criteria":[],
  "dateRangeList":[],"temporalConstraints":[]}],"dateRangeList":[],"temporalConstraints":[]},
  "temporalConstraints":[]}"#;

#[derive(Clone, Debug)]
struct Callback {
    method: Method,
    path: String,
    authorization: String,
    content_type: String,
    body: Value,
}

/// Stands for the backend: records every request it gets.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Callback>>>);

async fn receive(
    State(receiver): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    receiver.0.lock().unwrap().push(Callback {
        method,
        path: uri.path().to_owned(),
        authorization: header(header::AUTHORIZATION),
        content_type: header(header::CONTENT_TYPE),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    Json(json!({}))
}

struct Harness {
    executor: Arc<QueryExecutor>,
    url: String,
    received: Receiver,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn start(delay_ms: u64, callbacks: bool, cohort_size_limit: u64) -> Harness {
    let received = Receiver::default();
    let backend = Router::new().fallback(receive).with_state(received.clone());
    let (callback_url, backend_task) = fakes::spawn(backend, 0).await.expect("bind a local port");
    let executor = Arc::new(QueryExecutor::new(Config {
        callback_url,
        query_executor_token: QE_TOKEN.into(),
        solr_etl_token: ETL_TOKEN.into(),
        delay: Duration::from_millis(delay_ms),
        callbacks,
        cohort_size_limit,
    }));
    let (url, task) =
        fakes::spawn(fakes::query_executor::router(executor.clone()), 0).await.expect("bind a local port");
    Harness { executor, url, received, tasks: vec![backend_task, task] }
}

impl Harness {
    async fn request(&self, method: Method, path_and_query: &str, body: &str) -> (u16, Value) {
        let http = c360::aws::http_client(Duration::from_secs(5));
        let response = http
            .request(method, format!("{}{path_and_query}", self.url))
            .body(body.to_owned())
            .send()
            .await
            .expect("the fake answers");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Submits a job as the backend does; returns QE's job id.
    async fn submit(&self, job: &Job) -> String {
        let (status, answer) = self.request(Method::POST, job.path(), &job.body().unwrap()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "STARTED");
        let job_id = answer["jobId"].as_str().expect("a job id").to_owned();
        Uuid::parse_str(&job_id).expect("job ids are uuids");
        job_id
    }

    async fn cancel(&self, job_id: &str) -> (u16, Value) {
        self.request(Method::DELETE, &format!("/jobs/{job_id}"), "").await
    }

    /// The callbacks once there are `n` of them (5 s at most).
    async fn callbacks(&self, n: usize) -> Vec<Callback> {
        for _ in 0..500 {
            if self.received.0.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let received = self.received.0.lock().unwrap().clone();
        assert_eq!(received.len(), n, "{received:#?}");
        received
    }

    /// Lets any late callback arrive, then returns them all.
    async fn settled_callbacks(&self) -> Vec<Callback> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.received.0.lock().unwrap().clone()
    }

    fn state(&self, job_id: &str) -> JobState {
        self.executor.jobs().into_iter().find(|j| j.job_id == job_id).expect("a recorded job").state
    }
}

fn assert_qe_patch(callback: &Callback, path: &str) {
    assert_eq!(callback.method, Method::PATCH);
    assert_eq!(callback.path, path);
    assert_eq!(callback.authorization, format!("Bearer {QE_TOKEN}"));
    assert_eq!(callback.content_type, "application/json");
}

fn count_job(dm: Uuid, query: &str) -> Job {
    Job::new(JobKind::Count { dated_measure: dm, stage_details: None }, OWNER, query).unwrap()
}

fn create_job(cohort: Uuid, sampling_ratio: Option<f64>, query: &str) -> Job {
    Job::new(JobKind::Create { cohort, sampling_ratio }, OWNER, query).unwrap()
}

fn syntax(job: &Job) -> String {
    job.query.syntax().unwrap()
}

/// A query of the front's shape with another filter: another count.
fn query_with_filter(filter: &str) -> String {
    QUERY.replace("gender=female,male&active=true", filter)
}

#[tokio::test]
async fn a_count_calls_back_its_dated_measure_with_a_count_derived_from_the_query() {
    let qe = start(20, true, 20_000).await;
    let (dm, other_dm) = (Uuid::new_v4(), Uuid::new_v4());
    let job = count_job(dm, QUERY);
    let job_id = qe.submit(&job).await;

    let callbacks = qe.callbacks(1).await;
    assert_qe_patch(&callbacks[0], &format!("/cohort/dated-measures/{dm}/"));
    let n = count_of(&syntax(&job)).unwrap();
    assert!(n <= MAX_COUNT);
    assert_eq!(callbacks[0].body, json!({"request_job_status": "FINISHED", "count": n.to_string(), "extra": {}}));

    let recorded = qe.executor.jobs();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].job_id, job_id);
    assert_eq!(recorded[0].mode, Mode::Count);
    assert_eq!(recorded[0].cohort_uuid.as_deref(), Some(dm.to_string().as_str()));
    assert_eq!(recorded[0].owner, OWNER);
    assert_eq!(recorded[0].body, job.body().unwrap());
    assert_eq!(recorded[0].syntax, syntax(&job));
    assert_eq!(recorded[0].state, JobState::Finished);

    // Another count of the same query (another DM, so another instance_id) gives the same number.
    qe.submit(&count_job(other_dm, QUERY)).await;
    let callbacks = qe.callbacks(2).await;
    assert_qe_patch(&callbacks[1], &format!("/cohort/dated-measures/{other_dm}/"));
    assert_eq!(callbacks[1].body["count"], n.to_string());
    // Another query, another count.
    assert_ne!(count_of(&syntax(&count_job(dm, &query_with_filter("gender=other")))), Some(n));
}

#[tokio::test]
async fn a_global_count_reports_a_range_around_the_count() {
    let qe = start(20, true, 20_000).await;
    let dm = Uuid::new_v4();
    let job = Job::new(JobKind::CountAll { dated_measure: dm, root_cohort_id: ROOT }, OWNER, QUERY).unwrap();
    qe.submit(&job).await;

    let callbacks = qe.callbacks(1).await;
    assert_qe_patch(&callbacks[0], &format!("/cohort/dated-measures/{dm}/"));
    let n = count_of(&syntax(&job)).unwrap();
    let (minimum, maximum) = (n * 9 / 10, (n * 11).div_ceil(10));
    assert!(minimum <= n && n <= maximum);
    let (minimum, maximum) = (minimum.to_string(), maximum.to_string());
    let expected = json!({"request_job_status": "FINISHED", "minimum": minimum, "maximum": maximum, "extra": {}});
    assert_eq!(callbacks[0].body, expected);
    assert_eq!(qe.executor.jobs()[0].mode, Mode::CountAll);
}

#[tokio::test]
async fn a_feasibility_count_reports_per_source_cohort_to_its_callback_path() {
    let qe = start(20, true, 20_000).await;
    let study = Uuid::new_v4();
    let job = Job::new(JobKind::CountWithDetails { study, root_cohort_id: ROOT }, OWNER, QUERY).unwrap();
    qe.submit(&job).await;
    let callbacks = qe.callbacks(1).await;
    assert_qe_patch(&callbacks[0], &format!("/cohort/feasibility-studies/{study}/"));
    let n = count_of(&syntax(&job)).unwrap().to_string();
    assert_eq!(callbacks[0].body, json!({"request_job_status": "FINISHED", "count": n, "extra": {ROOT: n}}));

    // Several source cohorts (integers or strings): one share each, summing to the count.
    let text = r#"{"sourcePopulation":{"caresiteCohortList":[11,"12",13]},"_type":"request","request":{}}"#;
    let body = format!(
        "input.cohortDefinitionName = Created from C360 backend,input.cohortDefinitionSyntax = {},\
         input.ownerEntityId = {OWNER},input.mode = count_with_details,input.cohortUuid = {study},\
         input.callbackPath = /cohort/feasibility-studies/{study}/",
        json_string_literal(text)
    );
    let (status, _) = qe.request(Method::POST, COUNT_PATH, &body).await;
    assert_eq!(status, 200);
    let callbacks = qe.callbacks(2).await;
    assert_qe_patch(&callbacks[1], &format!("/cohort/feasibility-studies/{study}/"));
    let extra = callbacks[1].body["extra"].as_object().unwrap();
    let mut ids: Vec<&str> = extra.keys().map(String::as_str).collect();
    ids.sort();
    assert_eq!(ids, ["11", "12", "13"]);
    let sum: u64 = extra.values().map(|v| v.as_str().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(callbacks[1].body["count"], count_of(text).unwrap().to_string());
    assert_eq!(sum, count_of(text).unwrap());
}

#[tokio::test]
async fn a_small_cohort_is_finished_by_the_query_executor_alone() {
    let qe = start(20, true, MAX_COUNT + 1).await;
    let cohort = Uuid::new_v4();
    let job = create_job(cohort, None, QUERY);
    assert_eq!(job.path(), CREATE_PATH);
    let job_id = qe.submit(&job).await;

    let callbacks = qe.callbacks(1).await;
    assert_qe_patch(&callbacks[0], &format!("/cohort/cohorts/{cohort}/"));
    let body = &callbacks[0].body;
    assert_eq!(body["request_job_status"], "FINISHED");
    assert_eq!(body["group.count"], count_of(&syntax(&job)).unwrap().to_string());
    assert!(body["group.id"].as_str().unwrap().parse::<u64>().is_ok(), "{body}");
    assert_eq!(body["extra"], json!({}));
    assert_eq!(body.as_object().unwrap().len(), 4);
    assert_eq!(qe.settled_callbacks().await.len(), 1, "no ETL callback for a small cohort");
    assert_eq!(qe.state(&job_id), JobState::Finished);
}

#[tokio::test]
async fn a_large_cohort_is_long_pending_until_the_etl_reports() {
    let qe = start(20, true, 0).await;
    let cohort = Uuid::new_v4();
    let job = create_job(cohort, None, QUERY);
    let job_id = qe.submit(&job).await;

    let callbacks = qe.callbacks(2).await;
    let path = format!("/cohort/cohorts/{cohort}/");
    assert_qe_patch(&callbacks[0], &path);
    assert_eq!(callbacks[0].body["request_job_status"], "LONG_PENDING");
    assert_eq!(callbacks[0].body["group.count"], count_of(&syntax(&job)).unwrap().to_string());
    assert!(callbacks[0].body["group.id"].as_str().unwrap().parse::<u64>().is_ok());
    // Then the Solr ETL, with its own token.
    assert_eq!(callbacks[1].method, Method::PATCH);
    assert_eq!(callbacks[1].path, path);
    assert_eq!(callbacks[1].authorization, format!("Bearer {ETL_TOKEN}"));
    assert_eq!(callbacks[1].content_type, "application/json");
    assert_eq!(callbacks[1].body, json!({"request_job_status": "FINISHED"}));
    // The QueryExecutor's part ended with LONG_PENDING.
    assert_eq!(qe.cancel(&job_id).await, (200, json!({"status": "FINISHED"})));
}

#[tokio::test]
async fn a_sample_is_the_count_of_its_query_times_the_ratio() {
    let qe = start(20, true, MAX_COUNT + 1).await;
    let cohort = Uuid::new_v4();
    let job = create_job(cohort, Some(0.25), &sample_query("8312099999"));
    qe.submit(&job).await;
    let callbacks = qe.callbacks(1).await;
    let expected = (count_of(&syntax(&job)).unwrap() as f64 * 0.25).round() as u64;
    assert_eq!(callbacks[0].body["group.count"], expected.to_string());
    assert_eq!(qe.executor.jobs()[0].sampling, Some(0.25));
}

#[tokio::test]
async fn a_virtual_cohort_reports_once_to_its_perimeter() {
    // Even above the limit: the ETL only reports to cohort results.
    let qe = start(20, true, 0).await;
    let query = virtual_cohort_query(42, &[43, 44]);
    let job = Job::new(JobKind::VirtualCohort { perimeter_id: 42 }, "admin", &query).unwrap();
    qe.submit(&job).await;

    let callbacks = qe.callbacks(1).await;
    assert_qe_patch(&callbacks[0], "/fhir-perimeters/42/");
    let body = callbacks[0].body.as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["group.count", "group.id", "request_job_status"]);
    assert_eq!(body["request_job_status"], "FINISHED");
    assert_eq!(body["group.count"], count_of(&syntax(&job)).unwrap().to_string());
    assert_eq!(qe.settled_callbacks().await.len(), 1);
    assert_eq!(qe.executor.jobs()[0].cohort_uuid.as_deref(), Some("None"));
}

#[tokio::test]
async fn the_error_marker_and_an_unreadable_query_fail_the_job() {
    let qe = start(20, true, 0).await;
    let dm = Uuid::new_v4();
    let failing = count_job(dm, &query_with_filter(&format!("_text={ERROR_MARKER}")));
    let job_id = qe.submit(&failing).await;
    let callbacks = qe.callbacks(1).await;
    assert_qe_patch(&callbacks[0], &format!("/cohort/dated-measures/{dm}/"));
    assert_eq!(callbacks[0].body["request_job_status"], "ERROR");
    assert!(callbacks[0].body["message"].as_str().unwrap().contains(ERROR_MARKER));
    assert_eq!(callbacks[0].body.as_object().unwrap().len(), 2);
    assert_eq!(qe.state(&job_id), JobState::Error);
    assert_eq!(qe.cancel(&job_id).await, (200, json!({"status": "ERROR"})));

    // A creation fails the same way, with no ETL afterwards.
    let cohort = Uuid::new_v4();
    qe.submit(&create_job(cohort, None, &query_with_filter(ERROR_MARKER))).await;
    let callbacks = qe.callbacks(2).await;
    assert_qe_patch(&callbacks[1], &format!("/cohort/cohorts/{cohort}/"));
    assert_eq!(callbacks[1].body["request_job_status"], "ERROR");

    // The real executor reads the query once the job runs: a literal that is not JSON fails the job.
    let other = Uuid::new_v4();
    let body = format!(
        "input.cohortDefinitionName = x,input.cohortDefinitionSyntax = \"not json\",input.ownerEntityId = {OWNER},\
         input.mode = count,input.cohortUuid = {other}"
    );
    assert_eq!(qe.request(Method::POST, COUNT_PATH, &body).await.0, 200);
    let callbacks = qe.callbacks(3).await;
    assert_qe_patch(&callbacks[2], &format!("/cohort/dated-measures/{other}/"));
    assert_eq!(callbacks[2].body["request_job_status"], "ERROR");
    assert!(callbacks[2].body["message"].as_str().unwrap().starts_with("Invalid JSON query"));
    assert_eq!(qe.settled_callbacks().await.len(), 3);
}

#[tokio::test]
async fn cancelling_kills_a_running_job_and_reports_an_ended_one() {
    // Long enough for the DELETE to come first.
    let qe = start(300, true, 20_000).await;
    let running = qe.submit(&count_job(Uuid::new_v4(), QUERY)).await;
    assert_eq!(qe.cancel(&running).await, (200, json!({"status": "KILLED"})));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(qe.settled_callbacks().await.is_empty(), "no callback after KILLED");
    assert_eq!(qe.state(&running), JobState::Killed);
    assert_eq!(qe.cancel(&running).await, (200, json!({"status": "KILLED"})));

    let finished = qe.submit(&count_job(Uuid::new_v4(), QUERY)).await;
    qe.callbacks(1).await;
    assert_eq!(qe.cancel(&finished).await, (200, json!({"status": "FINISHED"})));

    let (status, answer) = qe.cancel(&Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404);
    assert_eq!(answer["status"], "ERROR");
}

#[tokio::test]
async fn with_callbacks_off_jobs_are_accepted_and_stay_running() {
    let qe = start(20, false, 20_000).await;
    let job =
        Job::new(JobKind::Count { dated_measure: Uuid::new_v4(), stage_details: Some("all") }, OWNER, QUERY).unwrap();
    let job_id = qe.submit(&job).await;
    assert!(qe.settled_callbacks().await.is_empty());
    assert_eq!(qe.state(&job_id), JobState::Running);
    assert_eq!(qe.executor.jobs()[0].details.as_deref(), Some("all"));

    // Humans can see the same list.
    let (status, listed) = qe.request(Method::GET, "/fake/jobs", "").await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["job_id"], job_id.as_str());
    assert_eq!(listed[0]["mode"], "count");
    assert_eq!(listed[0]["state"], "RUNNING");

    assert_eq!(qe.cancel(&job_id).await, (200, json!({"status": "KILLED"})));
}

#[tokio::test]
async fn the_syntax_literal_is_read_whole_whatever_it_holds() {
    let qe = start(20, false, 20_000).await;
    // Commas, `,input.` and escaped quotes inside the literal must not end it.
    let tricky = query_with_filter(r#"code=a,input.mode = create,\"b\""#);
    let job = count_job(Uuid::new_v4(), &tricky);
    qe.submit(&job).await;
    let recorded = &qe.executor.jobs()[0];
    assert_eq!(recorded.mode, Mode::Count);
    assert_eq!(recorded.syntax, syntax(&job));
    assert!(recorded.syntax.contains(r#"code=a,input.mode = create,\"b\""#));
}

#[tokio::test]
async fn garbled_submissions_are_refused() {
    let qe = start(20, true, 20_000).await;
    let uuid = Uuid::new_v4();
    let literal = json_string_literal(QUERY);
    let valid = format!(
        "input.cohortDefinitionName = Created from C360 backend,input.cohortDefinitionSyntax = {literal},\
         input.ownerEntityId = {OWNER},input.mode = count,input.cohortUuid = {uuid}"
    );
    let bad_bodies = [
        String::new(),
        "hello".to_owned(),
        "{\"mode\": \"count\"}".to_owned(),
        valid.replace("input.mode = count", "input.mode = explode"),
        valid.replace(",input.mode = count", ""),
        valid.replace(",input.ownerEntityId = 4212345", ""),
        valid.replace(&literal, QUERY),
        valid.replace(&literal, &literal[..literal.len() - 1]),
        valid.replace(&literal, &format!("{literal} trailing")),
        format!("{valid},input.mode = count"),
        format!("{valid},input.modeOptions = {{\"sampling\": \"half\"}}"),
        format!("{valid},garbage"),
    ];
    for body in &bad_bodies {
        let (status, answer) = qe.request(Method::POST, COUNT_PATH, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["status"], "ERROR", "{body}");
    }
    // A count sent as a creation, or to another application.
    assert_eq!(qe.request(Method::POST, CREATE_PATH, &valid).await.0, 400);
    let other_app = COUNT_PATH.replace("omop-spark-job", "other-job");
    assert_eq!(qe.request(Method::POST, &other_app, &valid).await.0, 400);

    assert!(qe.executor.jobs().is_empty());
    assert!(qe.settled_callbacks().await.is_empty());
    // The valid one passes.
    assert_eq!(qe.request(Method::POST, COUNT_PATH, &valid).await.0, 200);
}

#[tokio::test]
async fn a_job_without_uuid_nor_callback_path_ends_silently() {
    let qe = start(20, true, 20_000).await;
    let body = format!(
        "input.cohortDefinitionName = x,input.cohortDefinitionSyntax = {},input.ownerEntityId = {OWNER},\
         input.mode = count",
        json_string_literal(QUERY)
    );
    let (status, answer) = qe.request(Method::POST, COUNT_PATH, &body).await;
    assert_eq!(status, 200);
    assert!(qe.settled_callbacks().await.is_empty());
    assert_eq!(qe.state(answer["jobId"].as_str().unwrap()), JobState::Finished);
}
