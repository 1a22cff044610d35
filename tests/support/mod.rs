//! Test support: every test gets its own DynamoDB table in the emulator (cloned from the template's
//! table, so the schema has one source of truth), its own app state and router.
pub mod cohort;
pub mod contract;
pub mod exports;
pub mod live;

use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::{
    config::{Credentials, Region},
    types::AttributeValue,
    types::{BillingMode, GlobalSecondaryIndex, KeySchemaElement, Projection, TimeToLiveSpecification},
    Client,
};
use axum::{body::Body, Router};
use c360::{
    config::test_settings,
    http::AppState,
    services::seed::{ensure_account, seed_perimeters, seed_roles, NewAccount, RoleOn},
};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const DEMO_TREE: &str = include_str!("../../infra/data/perimeters.demo.csv");
pub const ROOT_PERIMETER: i64 = 9999;

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// A DynamoDB client for the emulator with dummy credentials (never the EC2 metadata service).
static SDK_CONFIG: OnceLock<aws_config::SdkConfig> = OnceLock::new();

pub async fn dynamodb() -> Client {
    if SDK_CONFIG.get().is_none() {
        let config = c360::aws::sdk_loader()
            .endpoint_url(endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await;
        let _ = SDK_CONFIG.set(config);
    }
    Client::new(SDK_CONFIG.get().expect("set above"))
}

pub async fn s3() -> aws_sdk_s3::Client {
    dynamodb().await;
    c360::aws::s3_client(SDK_CONFIG.get().expect("loaded by dynamodb()"))
}

pub async fn ses() -> aws_sdk_sesv2::Client {
    dynamodb().await;
    aws_sdk_sesv2::Client::new(SDK_CONFIG.get().expect("loaded by dynamodb()"))
}

/// The scheduled tasks over this app's table, with the emulator's S3 and SES.
pub async fn tasks(
    app: &TestApp,
    expiry_alerts: Option<c360::services::access_alerts::ExpiryAlerts>,
) -> scheduled_tasks::Tasks {
    scheduled_tasks::Tasks {
        store: app.state.store.clone(),
        s3: s3().await,
        mailer: c360::clients::mail::SesMailer::new(ses().await, "no-reply@cohort360.test"),
        perimeters_source: None,
        expiry_alerts,
        fhir: c360::config::FhirSettings::default(),
        fhir_perimeters_sync: false,
        http: c360::aws::http_client(std::time::Duration::from_secs(10)),
        jobs: app.state.jobs.clone(),
        export_jobs: app.state.export_jobs.clone(),
        stuck_job_deadlines: c360::services::sweeper::Deadlines::parse(c360::services::sweeper::DEFAULT_DEADLINES)
            .expect("valid"),
        notifier: app.state.notifier.clone(),
        settings: app.state.settings.clone(),
    }
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    dynamodb().await;
    aws_sdk_sqs::Client::new(SDK_CONFIG.get().expect("loaded by dynamodb()"))
}

/// A fresh exports bucket (feasibility reports, exports).
pub async fn fresh_bucket() -> String {
    let name = format!("t-{}", uuid::Uuid::new_v4().simple());
    s3().await.create_bucket().bucket(&name).send().await.expect("create the test bucket");
    name
}

/// A fresh cohort jobs queue, so a test sees exactly the jobs it queued.
pub async fn fresh_queue() -> String {
    let name = format!("t-{}", uuid::Uuid::new_v4().simple());
    let out = sqs().await.create_queue().queue_name(name).send().await.expect("create the test queue");
    out.queue_url.expect("create_queue returns the url")
}

/// Deletes the test tables created over an hour ago (`t-<unix seconds>-…`): the emulator keeps every table in
/// memory, and a day of local test runs grew moto past 20 GB. No test runs that long.
async fn drop_stale_tables(client: &aws_sdk_dynamodb::Client, now: u64) {
    let mut start = None;
    loop {
        let Ok(page) = client.list_tables().set_exclusive_start_table_name(start).send().await else { return };
        for name in page.table_names() {
            let born = name.strip_prefix("t-").and_then(|rest| rest.split('-').next()?.parse::<u64>().ok());
            if born.is_some_and(|born| born + 3_600 < now) {
                // Another test process may be dropping it too: either way it goes.
                let _ = client.delete_table().table_name(name).send().await;
            }
        }
        match page.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_owned()),
            None => return,
        }
    }
}

/// Creates a fresh table with the schema of `C360_REFERENCE_TABLE` (made from template.yaml by
/// infra/bootstrap.py; `make test` sets it, `make dev` creates `c360-local-AppTable`).
pub async fn fresh_table() -> String {
    let client = dynamodb().await;
    let reference = std::env::var("C360_REFERENCE_TABLE").unwrap_or_else(|_| "c360-local-AppTable".into());
    let described = client.describe_table().table_name(&reference).send().await.unwrap_or_else(|e| {
        panic!(
            "the emulator at {} has no reference table {reference} ({e:?}). Run the tests with `make test`, \
             or start the stack with `make dev` first.",
            endpoint()
        )
    });
    let source = described.table.expect("describe_table returns the table");
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    drop_stale_tables(&client, created).await;
    let name = format!("t-{created}-{}", uuid::Uuid::new_v4().simple());
    let indexes: Vec<GlobalSecondaryIndex> = source
        .global_secondary_indexes()
        .iter()
        .map(|gsi| {
            GlobalSecondaryIndex::builder()
                .index_name(gsi.index_name().unwrap_or_default())
                .set_key_schema(Some(gsi.key_schema().to_vec()))
                .projection(gsi.projection().cloned().unwrap_or_else(|| Projection::builder().build()))
                .build()
                .expect("index from the reference table is complete")
        })
        .collect();
    let key_schema: Vec<KeySchemaElement> = source.key_schema().to_vec();
    client
        .create_table()
        .table_name(&name)
        .set_attribute_definitions(Some(source.attribute_definitions().to_vec()))
        .set_key_schema(Some(key_schema))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the test table");
    // A table created by this version: every workspace item carries its list summary.
    client
        .put_item()
        .table_name(&name)
        .item("pk", AttributeValue::S("META#WORKSPACES".into()))
        .item("sk", AttributeValue::S("#LAYOUT".into()))
        .item("summaries", AttributeValue::Bool(true))
        .send()
        .await
        .expect("mark the test table's layout");
    if let Ok(ttl) = client.describe_time_to_live().table_name(&reference).send().await {
        if let Some(attribute) = ttl.time_to_live_description().and_then(|d| d.attribute_name()) {
            let spec =
                TimeToLiveSpecification::builder().attribute_name(attribute).enabled(true).build().expect("ttl spec");
            let _ = client.update_time_to_live().table_name(&name).time_to_live_specification(spec).send().await;
        }
    }
    name
}

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    /// Every e-mail the app and its workers sent.
    pub outbox: Outbox,
}

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A fresh table with the demo roles and tree, and a full admin `admin`.
    pub async fn new() -> Self {
        Self::with_settings(&[]).await
    }

    /// A cohort worker on the app's table, e-mails and WebSocket endpoint, submitting to
    /// `query_executor_url` with `COHORT_SIZE_LIMIT` = `cohort_size_limit`.
    pub fn worker(&self, query_executor_url: Option<&str>, cohort_size_limit: i64) -> cohort_worker::Worker {
        let mut settings = self.state.settings.clone();
        settings.query_executor_url = query_executor_url.map(str::to_owned);
        settings.cohort_size_limit = cohort_size_limit;
        let http = c360::aws::http_client(std::time::Duration::from_secs(5));
        cohort_worker::Worker {
            store: self.state.store.clone(),
            fhir: cohort_worker::solr_client(&settings, http.clone()).expect("a valid FHIR_URL"),
            executor: query_executor_url.map(|url| c360::clients::executor::Executor::new(http, url)),
            notifier: self.state.notifier.clone(),
            mailer: c360::clients::mail::SharedMailer::new(self.outbox.clone()),
            exports: self.state.export_jobs.clone(),
            settings,
        }
    }

    /// Every job message queued so far (received and deleted, so each is returned once).
    pub async fn queued_jobs(&self) -> Vec<Value> {
        let url = self.state.settings.cohort_jobs_queue_url.clone().expect("test apps have a queue");
        let client = sqs().await;
        let mut jobs = Vec::new();
        loop {
            let out = client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive from the test queue");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return jobs;
            }
            for m in messages {
                jobs.push(serde_json::from_str(m.body().unwrap_or("null")).expect("job messages are JSON"));
                client
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle().unwrap_or(""))
                    .send()
                    .await
                    .ok();
            }
        }
    }

    /// An app over `settings` as they are: no table, queue or data is created (failure tests).
    pub async fn unseeded(settings: c360::config::Settings) -> Self {
        dynamodb().await;
        let sdk = SDK_CONFIG.get().expect("loaded by dynamodb()");
        let outbox = Outbox::default();
        let state = AppState::with_mailer(settings, sdk, c360::clients::mail::SharedMailer::new(outbox.clone()))
            .expect("valid test state");
        Self { router: dev_server::app(&state), state, outbox }
    }

    pub async fn with_settings(extra: &[(&str, &str)]) -> Self {
        let table = fresh_table().await;
        let queue = fresh_queue().await;
        let bucket = fresh_bucket().await;
        let mut settings: Vec<(&str, &str)> = vec![("COHORT_JOBS_QUEUE_URL", &queue), ("EXPORTS_BUCKET", &bucket)];
        settings.extend_from_slice(extra);
        dynamodb().await;
        let sdk = SDK_CONFIG.get().expect("loaded by dynamodb()");
        let outbox = Outbox::default();
        let mailer = c360::clients::mail::SharedMailer::new(outbox.clone());
        let state = AppState::with_mailer(test_settings(&table, &settings), sdk, mailer).expect("valid test state");
        let now = c360::domain::time::now();
        seed_roles(&state.store, now).await.expect("seed roles");
        seed_perimeters(&state.store, DEMO_TREE).await.expect("seed perimeters");
        let app = Self { router: dev_server::app(&state), state, outbox };
        app.account(ADMIN, Some(1)).await;
        app
    }

    /// A user with password [`PASSWORD`] and, if given, one valid access to that role on the root.
    pub async fn account(&self, username: &str, role: Option<i64>) {
        self.account_on(username, role, ROOT_PERIMETER).await;
    }

    /// As [`Self::account`], with the access on `perimeter`.
    pub async fn account_on(&self, username: &str, role: Option<i64>, perimeter: i64) {
        let path = self.state.perimeter_tree().await.expect("the demo tree").path(perimeter);
        ensure_account(
            &self.state.store,
            NewAccount {
                username,
                firstname: "Test",
                lastname: &format!("User{username}"),
                email: Some(&format!("{username}@cohort360.test")),
                password: Some(PASSWORD),
                role: role.map(|role_id| RoleOn { role_id, perimeter_id: perimeter, perimeter_path: &path }),
                validity: time::Duration::days(30),
            },
            c360::domain::time::now(),
        )
        .await
        .expect("create account");
    }

    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call { app: self, request: Request::builder().method(method).uri(path), body: Body::empty() }
    }

    /// Logs in through the API; returns `(access, refresh)`.
    pub async fn login(&self, username: &str) -> (String, String) {
        let (status, body) = self
            .call(Method::POST, "/auth/login/")
            .json(serde_json::json!({"username": username, "password": PASSWORD}))
            .send()
            .await;
        assert_eq!(status, StatusCode::OK, "login of {username}: {body}");
        (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
    }
}

pub struct Call<'a> {
    app: &'a TestApp,
    request: http::request::Builder,
    body: Body,
}

impl Call<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// `Authorization: Bearer <token>` with `authorizationMethod: JWT`, as the front ends send.
    pub fn token(self, access: &str) -> Self {
        self.header("authorization", &format!("Bearer {access}")).header("authorizationmethod", "JWT")
    }

    pub fn json(mut self, value: Value) -> Self {
        self.request = self.request.header("content-type", "application/json");
        self.body = Body::from(value.to_string());
        self
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<Body>) -> Self {
        self.request = self.request.header("content-type", content_type);
        self.body = body.into();
        self
    }

    pub async fn send_full(self) -> (StatusCode, http::HeaderMap, Value) {
        let request = self.request.body(self.body).expect("valid request");
        let response = self.app.router.clone().oneshot(request).await.expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, headers, body)
    }

    pub async fn send(self) -> (StatusCode, Value) {
        let (status, _, body) = self.send_full().await;
        (status, body)
    }
}

/// Captured log output, for asserting that no secret reaches the logs.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Captures every log line (JSON, debug level and up) of this thread until the guard drops.
    pub fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// The fake FHIR server (any bearer token accepted by `$query`), served on a free port; returns it and
/// its `FHIR_URL`.
pub async fn fake_fhir() -> (Arc<fakes::fhir::FhirServer>, String) {
    let fhir = Arc::new(fakes::fhir::FhirServer::new("", 100, vec![]));
    let (url, _) = fakes::spawn(fakes::fhir::router("/fhir", fhir.clone()), 0).await.expect("serve the fake FHIR");
    (fhir, format!("{url}/fhir"))
}

/// A mailer that keeps what it is asked to send, for tests that read the e-mails (moto's SES has
/// no API to read sent mail back).
#[derive(Clone, Default)]
pub struct Outbox(Arc<std::sync::Mutex<Vec<c360::clients::mail::Email>>>);

impl Outbox {
    /// The subjects sent so far to `to`, in order.
    pub fn subjects_to(&self, to: &str) -> Vec<String> {
        self.0.lock().expect("outbox lock").iter().filter(|e| e.to == to).map(|e| e.subject.clone()).collect()
    }

    pub fn emails(&self) -> Vec<c360::clients::mail::Email> {
        self.0.lock().expect("outbox lock").clone()
    }
}

impl c360::clients::mail::Mailer for Outbox {
    async fn send(&self, email: &c360::clients::mail::Email) -> Result<(), c360::clients::mail::MailError> {
        self.0.lock().expect("outbox lock").push(email.clone());
        Ok(())
    }
}
