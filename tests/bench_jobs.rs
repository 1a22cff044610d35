//! `bench-jobs [JOBS]` (infra/scripts/bench-jobs.sh): cohort job latency and worker throughput through the
//! in-process stack of the integration tests (tests/cohort_worker.rs): the app served on a local port, SQS and
//! DynamoDB in the emulator, the dev server's SQS poller running `cohort_worker::Worker`, the fake QueryExecutor
//! over HTTP calling the API back, a WebSocket client on `/ws/`. Every timestamp is an `Instant` taken here:
//! * the fake's `POST /jobs` and the API's callback `PATCH` are timed by a middleware wrapped around their
//!   routers (arrival, and for the PATCH the moment its response is ready: the count is stored `finished`);
//! * the `201` of `POST /cohort/dated-measures/` and the `job_status` frame when this program receives them.
//!
//! Phase 1 runs JOBS counts one after another (each finishes before the next is posted). Phase 2 queues JOBS
//! counts (one request each, so no count cancels another), drains the queue, then times `Worker::handle` on
//! each message in turn against a fake QueryExecutor with callbacks off, then with WORKERS workers at once
//! (the Lambda event source's `MaximumConcurrency`). Phase 3: USERS users at once, each with its own
//! WebSocket, post JOBS counts in all (each user waits for its count on screen before the next), through
//! WORKERS SQS pollers: the time from POST to the `finished` frame, and jobs completed per second.
//!
//! Phase 4 (exports): EXPORTS csv exports of one user, posted one after another every EXPORT_PACE, through
//! EXPORT_WORKERS SQS pollers running `export_worker::Worker` and the fake Export API over HTTP (each task
//! runs EXPORT_TASK, then writes its zip into the bucket), once with the deployment's poll schedule
//! (`EXPORT_POLL_SECONDS` 10, doubled up to a minute) and once polling every second: the time from the POST
//! to the fake's receiving the YAML, and from the task's end to the `finished` frame on the owner's socket.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::{BillingMode, GlobalSecondaryIndex, Projection};
use axum::{
    extract::{Request, State},
    middleware::{from_fn_with_state, Next},
    response::Response,
};
use c360::{
    config::test_settings,
    http::AppState,
    services::seed::{seed_perimeters, seed_roles},
};
use cohort_worker::Worker;
use fakes::{
    export_api::{ExportApi, Outcome},
    query_executor::{Config, QueryExecutor},
};
use http::{Method, StatusCode};
use integration_tests::{
    live::{connect, read},
    TestApp,
};
use serde_json::{json, Value};

const QUERY: &str = r#"{"version": "v1.6.1", "_type": "request", "sourcePopulation": {"caresiteCohortList": ["9999"]},
 "request": {"_type": "andGroup", "_id": 0, "isInclusive": true, "criteria": [{"_type": "basicResource", "_id": 1,
 "isInclusive": true, "resourceType": "Patient", "filterFhir": "gender=female"}]}}"#;
const QE_DELAY: Duration = Duration::from_millis(20);
/// Concurrent workers: the cohort worker's `MaximumConcurrency` in template.yaml.
const WORKERS: usize = 5;
/// Users counting at the same time in phase 3.
const USERS: usize = 10;
const WAIT: Duration = Duration::from_secs(30);
/// How long each fake Export API task runs.
const EXPORT_TASK: Duration = Duration::from_secs(3);
/// Time between two export requests of phase 4.
const EXPORT_PACE: Duration = Duration::from_millis(50);
/// Concurrent export workers: the export worker's `MaximumConcurrency` in template.yaml.
const EXPORT_WORKERS: usize = 5;
const EXPORT_TOKEN: &str = "bench-export-token";

/// Instants recorded by the middlewares.
#[derive(Default)]
struct Marks {
    /// Arrival of each `POST /jobs` at the fake QueryExecutor.
    submissions: Mutex<Vec<Instant>>,
    /// Callback `PATCH` by path: arrival at the API, and response ready once answered.
    patches: Mutex<HashMap<String, (Instant, Option<Instant>)>>,
}

async fn mark_submission(State(marks): State<Arc<Marks>>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let is_submission = request.method() == Method::POST && request.uri().path() == "/jobs";
    let response = next.run(request).await;
    if is_submission {
        marks.submissions.lock().expect("marks").push(arrived);
    }
    response
}

async fn mark_patch(State(marks): State<Arc<Marks>>, request: Request, next: Next) -> Response {
    let path = (request.method() == Method::PATCH).then(|| request.uri().path().to_owned());
    if let Some(path) = &path {
        marks.patches.lock().expect("marks").insert(path.clone(), (Instant::now(), None));
    }
    let response = next.run(request).await;
    if let Some(path) = path {
        let answered = Instant::now();
        marks.patches.lock().expect("marks").entry(path).and_modify(|(_, done)| *done = Some(answered));
    }
    response
}

async fn created(app: &TestApp, token: &str, path: &str, body: Value) -> (Value, Instant) {
    let (status, value) = app.call(Method::POST, path).token(token).json(body).send().await;
    let answered = Instant::now();
    assert_eq!(status, StatusCode::CREATED, "{path}: {value}");
    (value, answered)
}

/// A folder, a request and a snapshot of [`QUERY`]; returns the snapshot's uuid.
async fn snapshot(app: &TestApp, token: &str, folder: &Value) -> Value {
    let (request, _) = created(app, token, "/cohort/requests/", json!({"name": "R", "parent_folder": folder})).await;
    let body = json!({"request_id": request["uuid"], "serialized_query": QUERY});
    created(app, token, "/cohort/request-query-snapshots/", body).await.0["uuid"].clone()
}

/// `TestApp::with_settings`, except that with `AWS_ENDPOINT_URL_DYNAMODB` set (infra/scripts/bench-dynamodb.sh:
/// dynalite) the table lives there, cloned from the emulator's reference table; SQS and S3 stay on the emulator.
async fn test_app(extra: &[(&str, &str)]) -> TestApp {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        return TestApp::with_settings(extra).await;
    }
    let reference = std::env::var("C360_REFERENCE_TABLE").unwrap_or_else(|_| "c360-local-AppTable".into());
    let described = integration_tests::dynamodb().await.describe_table().table_name(&reference).send().await;
    let source = described.expect("the emulator's reference table").table.expect("a table");
    // No endpoint pinned: the DynamoDB client reads AWS_ENDPOINT_URL_DYNAMODB, the others AWS_ENDPOINT_URL.
    let sdk = c360::aws::sdk_config().await;
    let table = format!("t-{}", uuid::Uuid::new_v4().simple());
    let indexes: Vec<GlobalSecondaryIndex> = source
        .global_secondary_indexes()
        .iter()
        .map(|gsi| {
            GlobalSecondaryIndex::builder()
                .index_name(gsi.index_name().unwrap_or_default())
                .set_key_schema(Some(gsi.key_schema().to_vec()))
                .projection(gsi.projection().cloned().unwrap_or_else(|| Projection::builder().build()))
                .build()
                .expect("index of the reference table")
        })
        .collect();
    aws_sdk_dynamodb::Client::new(&sdk)
        .create_table()
        .table_name(&table)
        .set_attribute_definitions(Some(source.attribute_definitions().to_vec()))
        .set_key_schema(Some(source.key_schema().to_vec()))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the bench table in dynalite");
    let (queue, bucket) = (integration_tests::fresh_queue().await, integration_tests::fresh_bucket().await);
    let mut settings: Vec<(&str, &str)> = vec![("COHORT_JOBS_QUEUE_URL", &queue), ("EXPORTS_BUCKET", &bucket)];
    settings.extend_from_slice(extra);
    let state = AppState::new(test_settings(&table, &settings), &sdk).expect("valid bench state");
    seed_roles(&state.store, c360::domain::time::now()).await.expect("seed roles");
    seed_perimeters(&state.store, integration_tests::DEMO_TREE).await.expect("seed perimeters");
    let app = TestApp { router: dev_server::app(&state), state, outbox: integration_tests::Outbox::default() };
    app.account(integration_tests::ADMIN, Some(1)).await;
    app
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (p50, p99, max) by nearest rank.
fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    (rank(0.50), rank(0.99), values[values.len() - 1])
}

fn row(name: &str, values: &mut [f64]) -> String {
    let (p50, p99, max) = percentiles(values);
    format!("| {name} | {} | {p50:.1} | {p99:.1} | {max:.1} |", values.len())
}

async fn fake_executor(callback_url: String, callbacks: bool, marks: &Arc<Marks>) -> (Arc<QueryExecutor>, String) {
    let executor = Arc::new(QueryExecutor::new(Config {
        callback_url,
        query_executor_token: "test-qe-token".into(),
        solr_etl_token: "test-etl-token".into(),
        delay: QE_DELAY,
        callbacks,
        cohort_size_limit: 20_000,
    }));
    let router =
        fakes::query_executor::router(executor.clone()).layer(from_fn_with_state(marks.clone(), mark_submission));
    let (url, _) = fakes::spawn(router, 0).await.expect("serve the fake QueryExecutor");
    (executor, url)
}

fn worker(app: &TestApp, qe_url: String) -> Worker {
    app.worker(Some(&qe_url), 20_000)
}

async fn latency(jobs: usize) -> Vec<String> {
    let marks = Arc::new(Marks::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let app = test_app(&[("WS_MANAGEMENT_ENDPOINT", &format!("http://{address}/ws-management"))]).await;
    let served = app.router.clone().layer(from_fn_with_state(marks.clone(), mark_patch));
    tokio::spawn(async move { axum::serve(listener, served).await });
    let (executor, qe_url) = fake_executor(format!("http://{address}"), true, &marks).await;
    let queue = app.state.settings.cohort_jobs_queue_url.clone().expect("test apps have a queue");
    // The dev server's SQS trigger (long polling, 10 messages, delete once handled).
    tokio::spawn(dev_server::triggers::poll_cohort_jobs(worker(&app, qe_url), integration_tests::sqs().await, queue));

    app.account("alice", None).await;
    let (token, _) = app.login("alice").await;
    let mut socket = connect(address, &token).await;

    let (folder, _) = created(&app, &token, "/cohort/folders/", json!({"name": "Bench"})).await;
    let snapshot = snapshot(&app, &token, &folder["uuid"]).await;
    let (mut to_qe, mut from_sent, mut patch, mut to_ws, mut post) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..jobs {
        let sent = Instant::now();
        let body = json!({"request_query_snapshot_id": snapshot});
        let (count, answered) = created(&app, &token, "/cohort/dated-measures/", body).await;
        let uuid = count["uuid"].as_str().expect("uuid").to_owned();
        let deadline = Instant::now() + WAIT;
        let received = loop {
            if let Some(at) = marks.submissions.lock().expect("marks").get(i) {
                break *at;
            }
            assert!(Instant::now() < deadline, "job {i} never reached the fake QueryExecutor");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let pushed = loop {
            let event = read(&mut socket).await;
            if event["type"] == "job_status" && event["uuid"] == uuid.as_str() && event["status"] == "finished" {
                break Instant::now();
            }
        };
        let path = format!("/cohort/dated-measures/{uuid}/");
        let (arrived, stored) = loop {
            if let Some((arrived, Some(stored))) = marks.patches.lock().expect("marks").get(&path) {
                break (*arrived, *stored);
            }
            assert!(Instant::now() < deadline, "the callback of job {i} was never answered");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let (_, done) = app.call(Method::GET, &path).token(&token).send().await;
        assert_eq!(done["request_job_status"], "finished", "{done}");
        post.push(ms(answered - sent));
        // Signed: the message is queued before the 201 is written, a fast worker may beat the client.
        to_qe.push(if received >= answered { ms(received - answered) } else { -ms(answered - received) });
        from_sent.push(ms(received - sent));
        patch.push(ms(stored - arrived));
        to_ws.push(ms(pushed - arrived));
    }
    assert_eq!(executor.jobs().len(), jobs, "one submission per job");
    vec![
        row("`POST /cohort/dated-measures/` sent → 201 received", &mut post),
        row("201 received → fake QueryExecutor receives the job", &mut to_qe),
        row("POST sent → fake QueryExecutor receives the job", &mut from_sent),
        row("callback PATCH arrives → answered (count stored `finished`)", &mut patch),
        row("callback PATCH arrives → `job_status` frame received on `/ws/`", &mut to_ws),
    ]
}

/// CPU seconds a process has used (`/proc/<pid>/stat` utime + stime, at Linux's USER_HZ of 100).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis start at field 3 (state): utime is 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
}

/// CPU used per wall-clock second by this process and the emulators (pids from bench-jobs.sh) over a phase.
struct CpuMeter {
    started: Instant,
    before: Vec<(&'static str, String, f64)>,
}

impl CpuMeter {
    fn start() -> Self {
        let mut processes = vec![("the bench process", "self".to_owned())];
        for (name, var) in [("dynalite", "BENCH_DYNALITE_PID"), ("moto", "BENCH_MOTO_PID")] {
            if let Some(pid) = std::env::var(var).ok().filter(|p| !p.is_empty()) {
                processes.push((name, pid));
            }
        }
        let before = processes.into_iter().filter_map(|(n, pid)| Some((n, pid.clone(), cpu_seconds(&pid)?))).collect();
        Self { started: Instant::now(), before }
    }

    /// "CPU-seconds per second: the bench process 1.10, dynalite 0.97, moto 0.05".
    fn report(&self) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        let shares: Vec<String> = self
            .before
            .iter()
            .filter_map(|(name, pid, before)| Some(format!("{name} {:.2}", (cpu_seconds(pid)? - before) / wall)))
            .collect();
        format!("CPU-seconds per second: {}", shares.join(", "))
    }
}

/// Table rows, and the sentences printed under the table.
type Figures = (Vec<String>, Vec<String>);

async fn throughput(jobs: usize) -> Figures {
    let marks = Arc::new(Marks::default());
    let app = test_app(&[]).await;
    let (executor, qe_url) = fake_executor("http://127.0.0.1:9".into(), false, &marks).await;
    let worker = worker(&app, qe_url.clone());
    app.account("alice", None).await;
    let (token, _) = app.login("alice").await;
    let (folder, _) = created(&app, &token, "/cohort/folders/", json!({"name": "Bench"})).await;
    let messages = queued_counts(&app, &token, &folder, jobs).await;
    let mut each = Vec::with_capacity(jobs);
    let cpu = CpuMeter::start();
    let started = Instant::now();
    for message in &messages {
        let at = Instant::now();
        worker.handle(message).await.expect("the worker handles its messages");
        each.push(ms(at.elapsed()));
    }
    let elapsed = started.elapsed();
    assert_eq!(executor.jobs().len(), jobs, "one submission per job");
    let rate = jobs as f64 / elapsed.as_secs_f64();
    let sequential_cpu = cpu.report();
    let (concurrent, concurrent_cpu) = concurrent_throughput(&app, &folder, (&executor, &qe_url), jobs).await;
    let rows = vec![row("`Worker::handle` of one count message (callbacks off)", &mut each)];
    let note = format!(
        "Worker throughput: {jobs} messages in {:.2} s = **{rate:.1} jobs/s** (one worker, sequential; \
         {sequential_cpu}); {WORKERS} workers at once: **{concurrent:.1} jobs/s** ({concurrent_cpu}).",
        elapsed.as_secs_f64()
    );
    (rows, vec![note])
}

/// `jobs` counts posted in `folder`, one request each (so no count cancels another), and their job
/// messages taken off the queue.
async fn queued_counts(app: &TestApp, token: &str, folder: &Value, jobs: usize) -> Vec<String> {
    for _ in 0..jobs {
        let snapshot = snapshot(app, token, &folder["uuid"]).await;
        created(app, token, "/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await;
    }
    let messages: Vec<String> = app.queued_jobs().await.iter().map(Value::to_string).collect();
    assert_eq!(messages.len(), jobs, "one message per count");
    messages
}

/// `jobs` more count messages handled by WORKERS workers at once (each takes the next message).
async fn concurrent_throughput(
    app: &TestApp,
    folder: &Value,
    (executor, qe_url): (&QueryExecutor, &str),
    jobs: usize,
) -> (f64, String) {
    let before = executor.jobs().len();
    // A fresh token: on moto the phase before can outlast an access token's 300 s.
    let (token, _) = app.login("alice").await;
    let messages = queued_counts(app, &token, folder, jobs).await;
    let pending = Arc::new(Mutex::new(messages));
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (worker, pending) = (worker(app, qe_url.to_owned()), pending.clone());
        tasks.spawn(async move {
            loop {
                let Some(message) = pending.lock().expect("pending").pop() else { break };
                worker.handle(&message).await.expect("the worker handles its messages");
            }
        });
    }
    tasks.join_all().await;
    let elapsed = started.elapsed();
    assert_eq!(executor.jobs().len(), before + jobs, "one submission per job");
    (jobs as f64 / elapsed.as_secs_f64(), cpu.report())
}

/// USERS users counting at once: POST → `finished` frame on each user's socket, and completed jobs/s.
async fn concurrent_users(jobs: usize) -> Figures {
    let marks = Arc::new(Marks::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let app = Arc::new(test_app(&[("WS_MANAGEMENT_ENDPOINT", &format!("http://{address}/ws-management"))]).await);
    let served = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, served).await });
    let (executor, qe_url) = fake_executor(format!("http://{address}"), true, &marks).await;
    let queue = app.state.settings.cohort_jobs_queue_url.clone().expect("test apps have a queue");
    for _ in 0..WORKERS {
        let poller = dev_server::triggers::poll_cohort_jobs(
            worker(&app, qe_url.clone()),
            integration_tests::sqs().await,
            queue.clone(),
        );
        tokio::spawn(poller);
    }
    let per_user = jobs.div_ceil(USERS);
    let mut users = tokio::task::JoinSet::new();
    let mut sessions = Vec::new();
    for u in 0..USERS {
        let username = format!("800{u:04}");
        app.account(&username, None).await;
        let (token, _) = app.login(&username).await;
        let socket = connect(address, &token).await;
        let (folder, _) = created(&app, &token, "/cohort/folders/", json!({"name": "Bench"})).await;
        let snapshot = snapshot(&app, &token, &folder["uuid"]).await;
        sessions.push((token, socket, snapshot));
    }
    let cpu = CpuMeter::start();
    let started = Instant::now();
    for (token, mut socket, snapshot) in sessions {
        let app = app.clone();
        users.spawn(async move {
            let mut on_screen = Vec::with_capacity(per_user);
            for _ in 0..per_user {
                let sent = Instant::now();
                let body = json!({"request_query_snapshot_id": snapshot});
                let (count, _) = created(&app, &token, "/cohort/dated-measures/", body).await;
                loop {
                    let event = read(&mut socket).await;
                    if event["uuid"] == count["uuid"] && event["status"] == "finished" {
                        break;
                    }
                }
                on_screen.push(ms(sent.elapsed()));
            }
            on_screen
        });
    }
    let mut on_screen: Vec<f64> = users.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    let done = on_screen.len();
    assert_eq!(executor.jobs().len(), done, "one submission per job");
    let rows = vec![row(
        &format!("{USERS} users at once, {WORKERS} SQS pollers: POST sent → `finished` frame on the user's socket"),
        &mut on_screen,
    )];
    let note = format!(
        "{USERS} users at once, {WORKERS} SQS pollers: {done} counts in {:.2} s = **{:.1} counts/s** end to end \
         (the fake QueryExecutor takes {} ms per job; {}).",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        QE_DELAY.as_millis(),
        cpu.report()
    );
    (rows, vec![note])
}

/// Phase 4: `exports` csv exports of one user through the export pollers and the fake Export API, polled
/// every `poll_seconds` at first (doubled up to a minute, as deployed).
async fn export_latency(exports: usize, poll_seconds: u32) -> Vec<String> {
    let api = Arc::new(ExportApi::new(
        fakes::export_api::Config { token: EXPORT_TOKEN.into(), delay: EXPORT_TASK, outcome: Outcome::Success },
        Some(integration_tests::s3().await),
    ));
    let (api_url, _) =
        fakes::spawn(fakes::export_api::router(api.clone()), 0).await.expect("serve the fake Export API");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let queue = integration_tests::fresh_queue().await;
    let app = test_app(&[
        ("WS_MANAGEMENT_ENDPOINT", &format!("http://{address}/ws-management")),
        ("EXPORT_JOBS_QUEUE_URL", &queue),
        ("EXPORT_API_URL", &api_url),
        ("EXPORT_API_AUTH_TOKEN", EXPORT_TOKEN),
    ])
    .await;
    let served = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, served).await });
    for _ in 0..EXPORT_WORKERS {
        let mut worker = integration_tests::exports::worker(&app, Some(&api_url));
        worker.settings.export_poll_seconds = poll_seconds;
        let sqs = integration_tests::sqs().await;
        tokio::spawn(dev_server::triggers::poll_export_jobs(worker, sqs, queue.clone()));
    }
    // Allowed to export csv (role 6 of the seeded catalogue), with one finished cohort to export.
    let token = integration_tests::exports::user(&app, "alice", Some(6), integration_tests::ROOT_PERIMETER).await;
    let cohort = integration_tests::exports::finished_cohort(&app, &token, json!(["3"]), "g-bench").await;
    let mut socket = connect(address, &token).await;
    let frames: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = frames.clone();
    let reader = tokio::spawn(async move {
        while seen.lock().expect("frames").len() < exports {
            let event = read(&mut socket).await;
            if event["job_name"] == "export" && event["status"] == "finished" {
                let uuid = event["uuid"].as_str().unwrap_or_default().to_owned();
                seen.lock().expect("frames").entry(uuid).or_insert_with(Instant::now);
            }
        }
    });

    let mut posted = Vec::new();
    for _ in 0..exports {
        let sent = Instant::now();
        let body = integration_tests::exports::csv_request(&cohort, &["person"]);
        let (export, answered) = created(&app, &token, "/exports/", body).await;
        let (uuid, target) = (export["uuid"].as_str().expect("uuid"), export["target_name"].as_str().expect("name"));
        posted.push((uuid.to_owned(), format!("/{target}.zip"), sent, answered));
        tokio::time::sleep(EXPORT_PACE.saturating_sub(sent.elapsed())).await;
    }
    // Polls due up to a minute apart: allow the slowest chain to end.
    tokio::time::timeout(Duration::from_secs(180), reader).await.expect("every export finished in time").ok();

    let tasks = api.tasks();
    let frames = frames.lock().expect("frames").clone();
    let (mut post, mut to_api, mut to_owner) = (vec![], vec![], vec![]);
    for (uuid, file, sent, answered) in &posted {
        let task = tasks.iter().find(|t| t.file_path.as_deref().is_some_and(|p| p.ends_with(file)));
        let received = task.and_then(|t| t.received_at()).expect("every export reached the fake Export API");
        post.push(ms(*answered - *sent));
        to_api.push(ms(received - *sent));
        let notified = frames.get(uuid).expect("every export's finished frame");
        to_owner.push(ms(notified.saturating_duration_since(received + EXPORT_TASK)));
    }
    assert_eq!(tasks.len(), exports, "one Export API task per export");
    let schedule = format!("polls from {poll_seconds} s");
    vec![
        row(&format!("`POST /exports/` sent → 201 received ({schedule})"), &mut post),
        row(&format!("POST sent → fake Export API receives the job ({schedule})"), &mut to_api),
        row(&format!("Export API task finished → `finished` frame on the owner's socket ({schedule})"), &mut to_owner),
    ]
}

#[tokio::main]
async fn main() {
    let jobs = std::env::args().nth(1).map_or(200, |v| v.parse().expect("usage: bench-jobs [JOBS]"));
    let started = Instant::now();
    let mut lines =
        vec!["| measure | jobs | p50 ms | p99 ms | max ms |".to_owned(), "|---|---|---|---|---|".to_owned()];
    lines.extend(latency(jobs).await);
    let mut notes = Vec::new();
    for (rows, sentences) in [throughput(jobs).await, concurrent_users(jobs).await] {
        lines.extend(rows);
        notes.extend(sentences);
    }
    let exports = std::env::var("BENCH_EXPORTS").map_or(100, |v| v.parse().expect("BENCH_EXPORTS: a number"));
    if exports > 0 {
        // The deployment's schedule (EXPORT_POLL_SECONDS' default), then polls every second.
        lines.extend(export_latency(exports, 10).await);
        lines.extend(export_latency(exports, 1).await);
    }
    println!("{}\n\n{}", lines.join("\n"), notes.join("\n\n"));
    eprintln!("[bench-jobs] {jobs} jobs per phase in {:.1} s", started.elapsed().as_secs_f64());
}
