//! Helpers of the export tests: an app with an export jobs queue, users with one role, finished
//! cohorts built through the API, and the export jobs queued.
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    cohort::{created, query, uuid_of},
    fresh_queue, sqs, TestApp,
};

pub const QE: &str = "Bearer test-qe-token";

/// A test app whose exports are queued on a fresh queue (and `extra` settings).
pub async fn app_with(extra: &[(&str, &str)]) -> TestApp {
    let queue = fresh_queue().await;
    let mut settings = vec![("EXPORT_JOBS_QUEUE_URL", queue.as_str())];
    settings.extend_from_slice(extra);
    TestApp::with_settings(&settings).await
}

/// A user with one access (`role` on `perimeter`), logged in.
pub async fn user(app: &TestApp, username: &str, role: Option<i64>, perimeter: i64) -> String {
    app.account_on(username, role, perimeter).await;
    app.login(username).await.0
}

/// A QueryExecutor callback that must answer 200; returns the answer.
pub async fn as_qe(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, answer) = app.call(Method::PATCH, path).header("authorization", QE).json(body).send().await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer
}

/// A finished cohort of the token's owner on the perimeter cohort ids `perimeters`, with a count of
/// 42 and the group id `group_id`; returns its uuid.
pub async fn finished_cohort(app: &TestApp, token: &str, perimeters: Value, group_id: &str) -> String {
    let folder = created(app, token, "/cohort/folders/", json!({"name": format!("Projet {group_id}")})).await;
    let request = created(
        app,
        token,
        "/cohort/requests/",
        json!({"name": format!("Requête {group_id}"), "parent_folder": uuid_of(&folder)}),
    )
    .await;
    let body = json!({"request_id": uuid_of(&request), "serialized_query": query(perimeters)});
    let snapshot = created(app, token, "/cohort/request-query-snapshots/", body).await;
    let measure =
        created(app, token, "/cohort/dated-measures/", json!({"request_query_snapshot_id": uuid_of(&snapshot)})).await;
    let m = uuid_of(&measure);
    as_qe(app, &format!("/cohort/dated-measures/{m}/"), json!({"request_job_status": "FINISHED", "count": "42"})).await;
    let body = json!({
        "name": format!("Cohorte {group_id}"),
        "request_query_snapshot_id": uuid_of(&snapshot),
        "dated_measure_id": m,
    });
    let cohort = uuid_of(&created(app, token, "/cohort/cohorts/", body).await);
    let done = json!({"request_job_status": "FINISHED", "group.id": group_id, "group.count": "42"});
    as_qe(app, &format!("/cohort/cohorts/{cohort}/"), done).await;
    cohort
}

/// Every export job queued so far (received and deleted, so each is returned once).
pub async fn export_jobs(app: &TestApp) -> Vec<Value> {
    let url = app.state.settings.export_jobs_queue_url.clone().expect("export test apps have a queue");
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
            .expect("receive from the export queue");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return jobs;
        }
        for m in messages {
            jobs.push(serde_json::from_str(m.body().unwrap_or("null")).expect("export jobs are JSON"));
            client.delete_message().queue_url(&url).receipt_handle(m.receipt_handle().unwrap_or("")).send().await.ok();
        }
    }
}

/// The body of the Cohort360 app's export form (client contract §5.6) for one source cohort.
pub fn csv_request(cohort: &str, tables: &[&str]) -> Value {
    let tables: Vec<Value> = tables
        .iter()
        .map(|t| {
            json!({
                "table_name": t,
                "cohort_result_source": cohort,
                "respect_table_relationships": true,
                "columns": null,
            })
        })
        .collect();
    json!({
        "motivation": "Étude\nsur deux lignes",
        "export_tables": tables,
        "nominative": true,
        "shift_date": false,
        "output_format": "csv",
        "group_tables": false,
    })
}

/// An export worker on the app's table and export queue, calling the Export API at `export_api_url`
/// (and the Hadoop API at the app's `HADOOP_API_URL`) and polling without delay.
pub fn worker(app: &TestApp, export_api_url: Option<&str>) -> export_worker::Worker {
    let mut settings = app.state.settings.clone();
    settings.export_api_url = export_api_url.map(str::to_owned);
    settings.export_poll_seconds = 0;
    let http = c360::aws::http_client(std::time::Duration::from_secs(5));
    export_worker::Worker {
        store: app.state.store.clone(),
        queue: app.state.export_jobs.clone(),
        api: export_api_url.map(|url| {
            c360::clients::export_api::ExportApi::new(http.clone(), url, settings.export_api_auth_token.clone())
        }),
        hadoop: settings.hadoop_api_url.as_deref().map(|url| {
            c360::clients::hadoop_api::HadoopApi::new(http.clone(), url, settings.hadoop_api_auth_token.clone())
        }),
        mailer: c360::clients::mail::SharedMailer::new(app.outbox.clone()),
        notifier: app.state.notifier.clone(),
        settings,
    }
}
