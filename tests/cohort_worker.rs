//! The cohort jobs end to end through real parts: the API queues a job on SQS (emulator), the worker
//! submits it to the fake QueryExecutor over HTTP, which calls the API back with its API key; the
//! stored count or cohort ends as spec §5.6–§5.7 say. Also: redelivered messages, an unreachable
//! executor, the ETL path of large cohorts and the cancelling of earlier counts.
use std::{sync::Arc, time::Duration};

use c360::clients::jobs::JobMessage;
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
    stack_with(cohort_size_limit, &[]).await
}

async fn stack_with(cohort_size_limit: i64, settings: &[(&str, &str)]) -> Stack {
    let app = TestApp::with_settings(settings).await;
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
    /// A count of `snapshot` POSTed with a trace id, as the Cohort360 app sends it.
    async fn count_traced(&self, snapshot: &str, trace_id: &str) -> String {
        let (status, count) = self
            .app
            .call(Method::POST, "/cohort/dated-measures/")
            .token(&self.token)
            .header("X-Trace-Id", trace_id)
            .json(json!({"request_query_snapshot_id": snapshot}))
            .send()
            .await;
        assert_eq!(status, StatusCode::CREATED, "{count}");
        count["uuid"].as_str().unwrap().to_owned()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let call = self.app.call(method, path).token(&self.token);
        match body {
            Some(body) => call.json(body).send().await,
            None => call.send().await,
        }
    }

    async fn created(&self, path: &str, body: Value) -> Value {
        integration_tests::cohort::created(&self.app, &self.token, path, body).await
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
    tasks.stuck_job_deadlines = c360::services::sweeper::Deadlines::parse("new=0m").unwrap();
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

const SOLR_QUERY: &str = r#"{"_type": "request", "sourcePopulation": {"caresiteCohortList": ["9999"]},
 "request": {"_type": "andGroup", "_id": 0, "isInclusive": true, "criteria": [
   {"_type": "basicResource", "_id": 1, "isInclusive": true, "resourceType": "IPPList",
    "filterFhir": "identifier.value=8000001,8000002&gender=female"},
   {"_type": "orGroup", "_id": -1, "isInclusive": true, "criteria": [
     {"_type": "basicResource", "_id": 2, "isInclusive": true, "resourceType": "Condition",
      "filterFhir": "code=https%3A%2F%2Fsmt.esante.gouv.fr%2Fterminologie-cim-10%2F%7CE11&subject.active=true"}]}]}}"#;

/// A fake FHIR server with its `$query` operation, and a stack whose API and worker use it.
async fn solr_stack(extra: &[(&str, &str)]) -> (Stack, Arc<fakes::fhir::FhirServer>) {
    let (fhir, fhir_url) = integration_tests::fake_fhir().await;
    let mut settings = vec![("USE_SOLR", "true"), ("FHIR_URL", fhir_url.as_str()), ("FHIR_ACCESS_TOKEN", "svc-token")];
    settings.extend_from_slice(extra);
    (stack_with(20_000, &settings).await, fhir)
}

/// Spec §6.3: with USE_SOLR, each basicResource gets the `fq` FHIR `$query` gives, asked with the
/// requester's headers; an IPP list is asked as Patients and its identifiers go to Solr directly.
#[tokio::test]
async fn with_solr_each_criterion_gets_its_fq_from_fhir_asked_with_the_requesters_headers() {
    let (s, fhir) = solr_stack(&[]).await;
    let (_, snapshot) = s.snapshot(SOLR_QUERY).await;
    let count = s.count_traced(&snapshot, "trace-solr-1").await;
    s.run_worker().await;
    let queries = fhir.queries();
    let asked: Vec<(&str, bool)> = queries.iter().map(|q| (q.resource.as_str(), q.operation)).collect();
    assert_eq!(asked, [("Patient", true), ("Condition", true)], "no plain search without TEST_FHIR_QUERIES");
    for query in &queries {
        assert_eq!(query.authorization.as_deref(), Some(format!("Bearer {}", s.token).as_str()));
        assert_eq!(query.authorization_method.as_deref(), Some("JWT"));
        assert_eq!(query.trace_id.as_deref(), Some("trace-solr-1"));
    }
    let pairs = |q: &fakes::fhir::SolrQuery| q.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
    assert_eq!(pairs(&queries[0]), ["gender=female"], "identifiers are not asked to FHIR");
    assert_eq!(
        pairs(&queries[1]),
        ["code=https://smt.esante.gouv.fr/terminologie-cim-10/|E11", "subject.active=true"],
        "values are sent decoded once, as the original's requests params"
    );

    let submitted = &s.executor.jobs()[0];
    let syntax: Value = serde_json::from_str(&submitted.syntax).unwrap();
    let ipp = &syntax["request"]["criteria"][0];
    assert_eq!(ipp["filterSolr"], "fq=gender:(female)&fq=identifier.value:(8000001 8000002)");
    assert_eq!(ipp["filterFhir"], "identifier.value=8000001,8000002&gender=female", "filterFhir is unchanged");
    let condition = &syntax["request"]["criteria"][1]["criteria"][0];
    assert_eq!(
        condition["filterSolr"],
        "fq=code:(https://smt.esante.gouv.fr/terminologie-cim-10/|E11)&fq=subject.active:(true)"
    );
    s.until(&format!("/cohort/dated-measures/{count}/"), status_is("finished")).await;
}

/// Jobs nobody requested over HTTP (scheduled re-counts) ask FHIR with the service token.
#[tokio::test]
async fn with_solr_a_job_without_requester_uses_the_service_token() {
    let (s, fhir) = solr_stack(&[]).await;
    let (_, snapshot) = s.snapshot(SOLR_QUERY).await;
    s.count_traced(&snapshot, "t").await;
    for mut job in s.app.queued_jobs().await {
        assert!(job["fhir_auth"]["authorization"].as_str().is_some_and(|a| a.starts_with("Bearer ")));
        job.as_object_mut().unwrap().remove("fhir_auth");
        s.worker.handle(&job.to_string()).await.unwrap();
    }
    let queries = fhir.queries();
    assert_eq!(queries.len(), 2);
    assert!(queries.iter().all(|q| q.authorization.as_deref() == Some("Bearer svc-token") && q.trace_id.is_none()));
}

/// TEST_FHIR_QUERIES tries each filter on the search itself first: a parameter FHIR refuses fails
/// the count with the reason, and QueryExecutor never sees it.
#[tokio::test]
async fn with_solr_a_filter_fhir_refuses_fails_the_count_with_the_reason() {
    let (s, fhir) = solr_stack(&[("TEST_FHIR_QUERIES", "true")]).await;
    let query = SOLR_QUERY.replace("subject.active=true", "no-such-param=1");
    let (_, snapshot) = s.snapshot(&query).await;
    let count = s.count_traced(&snapshot, "t").await;
    s.run_worker().await;
    let (_, failed) = s.call(Method::GET, &format!("/cohort/dated-measures/{count}/"), None).await;
    assert_eq!(failed["request_job_status"], "failed");
    assert_eq!(
        failed["request_job_fail_msg"], "Solr formatting of criterion 2 (Condition): FHIR server answered 400",
        "{failed}"
    );
    let asked: Vec<(String, bool)> = fhir.queries().into_iter().map(|q| (q.resource, q.operation)).collect();
    assert_eq!(
        asked,
        [("Patient".into(), false), ("Patient".into(), true), ("Condition".into(), false)],
        "searched first, then asked"
    );
    assert!(s.executor.jobs().is_empty());
}
