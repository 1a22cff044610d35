//! The cohort jobs end to end through real parts: the API queues a job on SQS (emulator), the worker
//! submits it to the fake QueryExecutor over HTTP, which calls the API back with its API key; the
//! stored count or cohort ends as spec §5.6–§5.7 say. Also: redelivered messages, an unreachable
//! executor, the ETL path of large cohorts and the cancelling of earlier counts.
use std::{sync::Arc, time::Duration};

use c360::jobs::JobMessage;
use cohort_worker::Worker;
use fakes::query_executor::{Config, JobState, QueryExecutor};
use http::{Method, StatusCode};
use integration_tests::TestApp;
use serde_json::{json, Value};

const QUERY: &str = r#"{"version": "v1.6.1", "_type": "request", "sourcePopulation": {"caresiteCohortList": ["9999"]},
 "request": {"_type": "andGroup", "_id": 0, "isInclusive": true, "criteria": [{"_type": "basicResource", "_id": 1,
 "isInclusive": true, "resourceType": "Patient", "filterFhir": "gender=female"}]}}"#;

/// The app served on a local port (the fake's callbacks reach it), the fake QueryExecutor and a worker.
struct Stack {
    app: TestApp,
    token: String,
    executor: Arc<QueryExecutor>,
    worker: Worker,
}

async fn stack(cohort_size_limit: i64) -> Stack {
    let app = TestApp::new().await;
    let (api_url, _) = fakes::spawn(dev_server::app(&app.state), 0).await.unwrap();
    let executor = Arc::new(QueryExecutor::new(Config {
        callback_url: api_url,
        query_executor_token: "test-qe-token".into(),
        solr_etl_token: "test-etl-token".into(),
        delay: Duration::from_millis(20),
        callbacks: true,
        cohort_size_limit: cohort_size_limit as u64,
    }));
    let (qe_url, _) = fakes::spawn(fakes::query_executor::router(executor.clone()), 0).await.unwrap();
    let worker = app.worker(Some(&qe_url), cohort_size_limit);
    app.account("alice", None).await;
    let (token, _) = app.login("alice").await;
    Stack { app, token, executor, worker }
}

impl Stack {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let call = self.app.call(method, path).token(&self.token);
        match body {
            Some(body) => call.json(body).send().await,
            None => call.send().await,
        }
    }

    async fn created(&self, path: &str, body: Value) -> Value {
        let (status, created) = self.call(Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {created}");
        created
    }

    /// A request with one snapshot of `query`; returns (request, snapshot).
    async fn snapshot(&self, query: &str) -> (String, String) {
        let folder = self.created("/cohort/folders/", json!({"name": "Projet"})).await;
        let request =
            self.created("/cohort/requests/", json!({"name": "Femmes", "parent_folder": folder["uuid"]})).await;
        let snapshot = self
            .created(
                "/cohort/request-query-snapshots/",
                json!({"request_id": request["uuid"], "serialized_query": query}),
            )
            .await;
        (request["uuid"].as_str().unwrap().into(), snapshot["uuid"].as_str().unwrap().into())
    }

    /// Hands every queued job message to the worker (what the SQS trigger does), returning them.
    async fn run_worker(&self) -> Vec<Value> {
        let jobs = self.app.queued_jobs().await;
        for job in &jobs {
            self.worker.handle(&job.to_string()).await.expect("the worker handles its messages");
        }
        jobs
    }

    /// Polls an object until `done` holds (callbacks arrive asynchronously).
    async fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let (_, value) = self.call(Method::GET, path, None).await;
            if done(&value) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("{path} never reached the expected state");
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["request_job_status"] == status
}

#[tokio::test]
async fn a_count_is_submitted_once_and_the_callback_finishes_it() {
    let s = stack(20_000).await;
    let (_, snapshot) = s.snapshot(QUERY).await;
    let count = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    let jobs = s.run_worker().await;
    assert_eq!(jobs.len(), 1);
    // SQS may deliver a message twice: the second delivery finds the count claimed.
    s.worker.handle(&jobs[0].to_string()).await.unwrap();
    assert_eq!(s.executor.jobs().len(), 1, "one submission for two deliveries");
    let submitted = &s.executor.jobs()[0];
    assert_eq!((submitted.owner.as_str(), submitted.cohort_uuid.as_deref()), ("alice", count["uuid"].as_str()));

    let path = format!("/cohort/dated-measures/{}/", count["uuid"].as_str().unwrap());
    let done = s.until(&path, status_is("finished")).await;
    let expected = fakes::query_executor::count_of(&submitted.syntax).unwrap() as i64;
    assert_eq!(done["measure"], expected);
    assert_eq!(done["request_job_id"], json!(submitted.job_id));
    assert!(done["request_job_duration"].as_str().unwrap().starts_with("0:00:"), "{done}");
}

#[tokio::test]
async fn a_new_count_cancels_the_running_one_of_the_same_request() {
    let s = stack(20_000).await;
    let slow = QueryExecutor::new(Config {
        callback_url: "http://127.0.0.1:9".into(),
        query_executor_token: String::new(),
        solr_etl_token: String::new(),
        delay: Duration::from_secs(60),
        callbacks: false,
        cohort_size_limit: 20_000,
    });
    let slow = Arc::new(slow);
    let (slow_url, _) = fakes::spawn(fakes::query_executor::router(slow.clone()), 0).await.unwrap();
    let worker = s.app.worker(Some(&slow_url), 20_000);
    let (_, snapshot) = s.snapshot(QUERY).await;
    let first = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    let second = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    let jobs = s.app.queued_jobs().await;
    worker.handle(&jobs[0].to_string()).await.unwrap();
    let first_path = format!("/cohort/dated-measures/{}/", first["uuid"].as_str().unwrap());
    assert_eq!(s.call(Method::GET, &first_path, None).await.1["request_job_status"], "started");
    worker.handle(&jobs[1].to_string()).await.unwrap();
    assert_eq!(s.call(Method::GET, &first_path, None).await.1["request_job_status"], "cancelled");
    assert_eq!(slow.jobs()[0].state, JobState::Killed);
    let second_path = format!("/cohort/dated-measures/{}/", second["uuid"].as_str().unwrap());
    assert_eq!(s.call(Method::GET, &second_path, None).await.1["request_job_status"], "started");
}

#[tokio::test]
async fn an_unreachable_executor_fails_the_job_with_its_reason_and_the_message_is_done() {
    let s = stack(20_000).await;
    let worker = s.app.worker(Some("http://127.0.0.1:9"), 20_000);
    let (_, snapshot) = s.snapshot(QUERY).await;
    let count = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    for job in s.app.queued_jobs().await {
        worker.handle(&job.to_string()).await.expect("not retried: the failure is recorded on the job");
    }
    let (_, failed) =
        s.call(Method::GET, &format!("/cohort/dated-measures/{}/", count["uuid"].as_str().unwrap()), None).await;
    assert_eq!(failed["request_job_status"], "failed");
    assert!(failed["request_job_fail_msg"].as_str().unwrap().starts_with("QueryExecutor unreachable"), "{failed}");
}

#[tokio::test]
async fn cohorts_are_built_by_the_executor_or_by_the_etl_when_large() {
    // With a limit of 1 every real count is "large": the ETL path.
    for (limit, path_taken) in [(20_000, "executor"), (1, "etl")] {
        let s = stack(limit).await;
        let (_, snapshot) = s.snapshot(QUERY).await;
        let count = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
        s.run_worker().await;
        let count_path = format!("/cohort/dated-measures/{}/", count["uuid"].as_str().unwrap());
        let counted = s.until(&count_path, status_is("finished")).await;
        let cohort = s
            .created(
                "/cohort/cohorts/",
                json!({"name": "C", "request_query_snapshot_id": snapshot, "dated_measure_id": count["uuid"]}),
            )
            .await;
        let jobs = s.run_worker().await;
        let kinds: Vec<String> = jobs
            .iter()
            .map(|j| serde_json::from_value::<JobMessage>(j.clone()).map(|_| j["kind"].to_string()).unwrap())
            .collect();
        assert_eq!(kinds, vec!["\"create\""]);
        let cohort_path = format!("/cohort/cohorts/{}/", cohort["uuid"].as_str().unwrap());
        if path_taken == "etl" {
            let (_, launched) = s.call(Method::GET, &cohort_path, None).await;
            assert!(
                ["long_pending", "finished"].contains(&launched["request_job_status"].as_str().unwrap()),
                "large cohorts wait for the ETL: {launched}"
            );
        }
        let built = s.until(&cohort_path, status_is("finished")).await;
        assert!(!built["group_id"].as_str().unwrap().is_empty(), "{path_taken}: {built}");
        assert_eq!(built["result_size"], counted["measure"], "{path_taken}: the executor sized the cohort");
        let (_, active) = s.app.call(Method::GET, "/cohort/cohorts/jobs/active/").send().await;
        assert_eq!(active["jobs_count"], 0, "{path_taken}");
    }
}

#[tokio::test]
async fn the_sweeper_fails_jobs_stuck_past_their_deadline_and_spares_the_others() {
    let s = stack(20_000).await;
    let (_, snapshot) = s.snapshot(QUERY).await;
    let stuck = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    let other = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    s.app.queued_jobs().await; // never handled: both stay `new`
    let mut tasks = integration_tests::tasks(&s.app, None).await;
    tasks.stuck_job_deadlines = c360::sweeper::Deadlines::parse("new=0m").unwrap();
    // With a zero deadline, both counts are stuck an instant later.
    let other_path = format!("/cohort/dated-measures/{}/", other["uuid"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let out = scheduled_tasks::function_handler(&tasks, json!({"task": "stuck_jobs_sweeper"})).await.unwrap();
    assert_eq!((out["status"].as_str(), out["report"]["open"].as_i64()), (Some("done"), Some(2)), "{out}");
    assert_eq!(out["report"]["failed"], 2);
    let stuck_path = format!("/cohort/dated-measures/{}/", stuck["uuid"].as_str().unwrap());
    let (_, swept) = s.call(Method::GET, &stuck_path, None).await;
    assert_eq!(swept["request_job_status"], "failed");
    assert!(swept["request_job_fail_msg"].as_str().unwrap().contains("stayed `new`"), "{swept}");
    // Ended jobs leave the open-jobs index: a second sweep finds nothing.
    let again = scheduled_tasks::function_handler(&tasks, json!({"task": "stuck_jobs_sweeper"})).await.unwrap();
    assert_eq!((again["report"]["open"].as_i64(), again["report"]["failed"].as_i64()), (Some(0), Some(0)));
    // Default deadlines spare a count created a moment ago.
    let recent = s.created("/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    let defaults = integration_tests::tasks(&s.app, None).await;
    let out = scheduled_tasks::function_handler(&defaults, json!({"task": "stuck_jobs_sweeper"})).await.unwrap();
    assert_eq!((out["report"]["open"].as_i64(), out["report"]["failed"].as_i64()), (Some(1), Some(0)));
    let recent_path = format!("/cohort/dated-measures/{}/", recent["uuid"].as_str().unwrap());
    assert_eq!(s.call(Method::GET, &recent_path, None).await.1["request_job_status"], "new");
    assert_eq!(s.call(Method::GET, &other_path, None).await.1["request_job_status"], "failed");
}

#[tokio::test]
async fn a_virtual_cohort_job_gives_the_perimeter_its_cohort_through_the_callback() {
    let s = stack(20_000).await;
    s.worker.handle(r#"{"version": 1, "kind": "virtual_cohort", "perimeter_id": 2}"#).await.unwrap();
    let submitted = &s.executor.jobs()[0];
    assert_eq!(submitted.callback_path.as_deref(), Some("/fhir-perimeters/2/"));
    assert_eq!(submitted.owner, "admin");
    assert!(
        submitted.body.contains("service-provider=2,10,11,13,14")
            || submitted.syntax.to_string().contains("service-provider=2,"),
        "the perimeter and its descendants: {}",
        submitted.body
    );
    let perimeter = s.until("/accesses/perimeters/2/", |p| p["cohort_id"] != "2").await;
    assert!(perimeter["cohort_id"].as_str().unwrap().chars().all(|c| c.is_ascii_digit()), "{perimeter}");
    assert!(perimeter["cohort_size"].as_str().is_some(), "{perimeter}");
    // A perimeter gone since the sync needs nothing.
    s.worker.handle(r#"{"version": 1, "kind": "virtual_cohort", "perimeter_id": 424242}"#).await.unwrap();
    assert_eq!(s.executor.jobs().len(), 1);
}
