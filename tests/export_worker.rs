//! The export worker against the fake Export API (spec §7.5): the YAML request on the wire, the poll
//! chain on delayed messages, each end state, an API that is down or refuses, redeliveries and late
//! polls, and the whole path POST → worker → Export API → zip in the bucket → download.
use std::{sync::Arc, time::Duration};

use c360::domain::cohort::{CohortResult, JobStatus};
use fakes::{
    export_api::{made_up_rows, Config, ExportApi, Outcome},
    query_executor::{Config as QeConfig, QueryExecutor},
};
use http::{Method, StatusCode};
use integration_tests::{
    cohort::{created, get, post, uuid_of},
    exports::{app_with, csv_request, export_jobs, finished_cohort, user, worker},
    s3, tasks, LogCapture, TestApp, ADMIN, ROOT_PERIMETER,
};
use serde_json::{json, Value};
use uuid::Uuid;

const TOKEN: &str = "export-api-test-token";
const EXPORT_CSV: i64 = 6;

struct Stack {
    app: TestApp,
    api: Arc<ExportApi>,
    worker: export_worker::Worker,
    alice: String,
    cohort: String,
}

async fn stack(outcome: Outcome) -> Stack {
    let config = Config { token: TOKEN.into(), delay: Duration::ZERO, outcome };
    let api = Arc::new(ExportApi::new(config, Some(s3().await)));
    let (url, _) = fakes::spawn(fakes::export_api::router(api.clone()), 0).await.unwrap();
    let app = app_with(&[("EXPORT_API_AUTH_TOKEN", TOKEN), ("EXPORT_API_URL", &url)]).await;
    let worker = worker(&app, Some(&url));
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g-alice").await;
    Stack { app, api, worker, alice, cohort }
}

/// Handles queued export jobs until none is left (polls are not delayed in tests); returns them.
async fn drain(s: &Stack) -> Vec<Value> {
    let mut handled = Vec::new();
    for _ in 0..50 {
        let jobs = export_jobs(&s.app).await;
        if jobs.is_empty() {
            return handled;
        }
        for job in jobs {
            s.worker.handle(&job.to_string()).await.unwrap_or_else(|e| panic!("{job}: {e}"));
            handled.push(job);
        }
    }
    panic!("the poll chain never ended: {handled:?}");
}

async fn export(s: &Stack, tables: &[&str]) -> String {
    uuid_of(&created(&s.app, &s.alice, "/exports/", csv_request(&s.cohort, tables)).await)
}

async fn stored(s: &Stack, uuid: &str) -> c360::domain::exports::Export {
    s.app.state.store.export(Uuid::parse_str(uuid).unwrap()).await.unwrap().unwrap()
}

#[tokio::test]
async fn an_export_goes_from_request_to_a_downloadable_zip() {
    let s = stack(Outcome::Success).await;
    let uuid = export(&s, &["visit_occurrence", "person"]).await;
    let handled = drain(&s).await;
    let kinds: Vec<&str> = handled.iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["launch", "poll"], "one poll: the task ends at once");

    let tasks = s.api.tasks();
    assert_eq!(tasks.len(), 1);
    let e = stored(&s, &uuid).await;
    let bucket = s.app.state.settings.exports_bucket.clone().unwrap();
    let golden = format!(
        "joinOnPrimaryKey: false
output:
  type: csv
  filePath: s3://{bucket}/exports/{}.zip
overwrite: true
tablesToExport:
- tableName: person
  cohortId: g-alice
  relation: true
- tableName: visit_occurrence
  relation: true
noDateShift: true
disableTerminology: false
",
        e.target_name
    );
    assert_eq!(tasks[0].yaml, golden, "the YAML file on the wire, person first");
    assert_eq!(tasks[0].tables, ["person", "visit_occurrence"]);
    assert_eq!(
        (e.job.request_job_status, e.job.request_job_id.as_str(), e.job.request_job_fail_msg.as_str()),
        (JobStatus::Finished, tasks[0].task_id.as_str(), "")
    );
    assert!(e.job.request_job_duration.starts_with("0:00:"), "{}", e.job.request_job_duration);

    let (status, headers, _) =
        s.app.call(Method::GET, &format!("/exports/{uuid}/download/")).token(&s.alice).send_full().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-disposition"], "attachment; filename=export_g-alice.zip");
    let object = s3().await.get_object().bucket(&bucket).key(format!("exports/{}.zip", e.target_name)).send().await;
    let zip = object.unwrap().body.collect().await.unwrap().into_bytes();
    assert_eq!(&zip[..4], b"PK\x03\x04");
    let csv = made_up_rows("person");
    assert!(zip.windows(csv.len()).any(|w| w == csv.as_slice()), "the person CSV is in the zip");

    let to = "alice@cohort360.test";
    assert_eq!(
        s.app.outbox.subjects_to(to),
        [
            "[Cohorte g-alice] Demande d'export `Cohorte g-alice` reçue",
            "[Cohorte g-alice] Export `Cohorte g-alice` terminé"
        ]
    );
    let emails = s.app.outbox.emails();
    assert!(emails[0].text.contains("Tables demandées : visit_occurrence, person"), "{}", emails[0].text);
    assert!(emails[1].text.contains(&format!("http://localhost:3000/download/exports/{uuid}/")), "{}", emails[1].text);
    assert!(e.is_user_notified, "the success e-mail marks the export notified");
}

/// A subset's whole path: POST → cohort worker → fake QueryExecutor → its callback → the export's
/// launch → Export API, whose request names the subset's group for the notes (spec §7.4, §7.5).
#[tokio::test]
async fn an_export_through_a_subset_sends_the_subsets_group_to_the_export_api() {
    let s = stack(Outcome::Success).await;
    let (api_url, _) = fakes::spawn(dev_server::app(&s.app.state), 0).await.unwrap();
    let executor = Arc::new(QueryExecutor::new(QeConfig {
        callback_url: api_url,
        query_executor_token: "test-qe-token".into(),
        solr_etl_token: "test-etl-token".into(),
        delay: Duration::from_millis(20),
        callbacks: true,
        cohort_size_limit: 1_000_000,
    }));
    let (qe_url, _) = fakes::spawn(fakes::query_executor::router(executor.clone()), 0).await.unwrap();
    let cohort_worker = s.app.worker(Some(&qe_url), 1_000_000);
    // QueryExecutor reads group ids as numbers.
    let source = finished_cohort(&s.app, &s.alice, json!(["3"]), "500001").await;
    s.app.queued_jobs().await;

    let body = csv_request(&source, &["person", "note"]);
    let uuid = uuid_of(&created(&s.app, &s.alice, "/exports/", body).await);
    let subset = stored(&s, &uuid).await.tables[1].cohort_result_subset.unwrap();
    let jobs = s.app.queued_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    cohort_worker.handle(&jobs[0].to_string()).await.unwrap();
    let mut launches = Vec::new();
    for _ in 0..100 {
        launches.extend(export_jobs(&s.app).await);
        if !launches.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(launches, [json!({"version": 1, "kind": "launch", "export": uuid})], "the callback launched it");
    let submitted = executor.jobs();
    let syntax: Value = serde_json::from_str(&submitted[0].syntax).unwrap();
    assert_eq!(
        (&syntax["sourcePopulation"]["caresiteCohortList"], &syntax["request"]["resourceType"]),
        (&json!([500001]), &json!("DocumentReference"))
    );
    assert!(syntax["request"]["filterFhir"].as_str().unwrap().contains("doc-impor"), "{syntax}");

    s.worker.handle(&launches[0].to_string()).await.unwrap();
    drain(&s).await;
    let subset: CohortResult = s.app.state.store.workspace_object("alice", subset).await.unwrap().unwrap();
    assert_eq!(subset.job.request_job_status, JobStatus::Finished);
    let task = s.api.tasks().pop().unwrap();
    let tables = task.yaml.split("tablesToExport:\n").nth(1).unwrap();
    assert!(
        tables.starts_with(&format!(
            "- tableName: person\n  cohortId: '500001'\n  relation: true\n- tableName: note\n  relation: true\n  \
             cohortId: '{}'\n",
            subset.group_id
        )),
        "{}",
        task.yaml
    );
    assert_eq!(stored(&s, &uuid).await.job.request_job_status, JobStatus::Finished);
}

#[tokio::test]
async fn a_retry_before_the_subsets_are_built_fails_rather_than_export_unfiltered_rows() {
    let s = stack(Outcome::Success).await;
    let (admin, _) = s.app.login(ADMIN).await;
    let uuid = export(&s, &["person", "note"]).await;
    assert!(export_jobs(&s.app).await.is_empty(), "the export waits for its subset");
    let (status, _) = post(&s.app, &admin, &format!("/exports/{uuid}/retry/"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    drain(&s).await;
    let e = stored(&s, &uuid).await;
    assert_eq!(
        (e.job.request_job_status, e.job.request_job_fail_msg.as_str(), e.awaiting_subsets),
        (
            JobStatus::Failed,
            "Export terminated with an error: the cohort subset of the `note` table has no group id",
            false
        )
    );
    assert!(s.api.tasks().is_empty(), "nothing was sent to the Export API");
}

#[tokio::test]
async fn polls_follow_a_running_task_then_record_its_end_states() {
    for (outcome, status) in [
        ("FinishedWithError", "failed"),
        ("FinishedWithTimeout", "failed"),
        ("NotFound", "failed"),
        ("Revoked", "cancelled"),
        ("Whatever", "unknown"),
    ] {
        let s = stack(Outcome::Status(outcome.into())).await;
        s.api.set(Duration::from_secs(3600), Outcome::Status(outcome.into()));
        let uuid = export(&s, &["person"]).await;
        // Launch, then one poll: the task runs, the export is `started`, the next poll is queued.
        let launch = export_jobs(&s.app).await;
        s.worker.handle(&launch[0].to_string()).await.unwrap();
        assert_eq!(stored(&s, &uuid).await.job.request_job_status, JobStatus::Pending);
        let poll = export_jobs(&s.app).await;
        assert_eq!((poll[0]["kind"].as_str(), poll[0]["attempt"].as_u64()), (Some("poll"), Some(0)));
        s.worker.handle(&poll[0].to_string()).await.unwrap();
        assert_eq!(stored(&s, &uuid).await.job.request_job_status, JobStatus::Started);

        s.api.set(Duration::ZERO, Outcome::Status(outcome.into()));
        drain(&s).await;
        let e = stored(&s, &uuid).await;
        assert_eq!(e.job.request_job_status, JobStatus::Failed, "{outcome}");
        assert_eq!(
            e.job.request_job_fail_msg,
            format!("Export terminated with an error: Job `{}` ended with status `{status}`", e.job.request_job_id),
        );
        assert_eq!(
            s.app.outbox.subjects_to("alice@cohort360.test").last().map(String::as_str),
            Some("[Cohorte g-alice] Votre demande d'export `Cohorte g-alice` n'a pas abouti")
        );
    }
}

#[tokio::test]
async fn five_failed_polls_in_a_row_fail_the_export_with_the_error() {
    let s = stack(Outcome::StatusDown).await;
    let uuid = export(&s, &["person"]).await;
    let handled = drain(&s).await;
    assert_eq!(handled.len(), 1 + 5, "a launch and five polls");
    assert_eq!(handled.last().unwrap()["errors"], 4);
    let e = stored(&s, &uuid).await;
    assert_eq!(e.job.request_job_status, JobStatus::Failed);
    assert!(
        e.job.request_job_fail_msg.starts_with("Export terminated with an error: the Export API answered 503"),
        "{}",
        e.job.request_job_fail_msg
    );
    assert!(!e.job.request_job_fail_msg.contains(TOKEN));
    assert_eq!(s.api.tasks()[0].status_calls, 5);
}

#[tokio::test]
async fn a_refused_launch_fails_the_export_and_polls_nothing() {
    let s = stack(Outcome::RefuseLaunch).await;
    let uuid = export(&s, &["person"]).await;
    assert_eq!(drain(&s).await.len(), 1);
    let e = stored(&s, &uuid).await;
    assert_eq!(
        (e.job.request_job_status, e.job.request_job_fail_msg.as_str()),
        (
            JobStatus::Failed,
            "Export terminated with an error: the Export API answered 500: \
             {\"detail\":\"the fake Export API refuses exports\"}"
        )
    );
}

#[tokio::test]
async fn a_wrong_token_or_no_export_api_fails_the_export() {
    let s = stack(Outcome::Success).await;
    let mut wrong = worker(&s.app, None);
    let uuid = export(&s, &["person"]).await;
    let launch = export_jobs(&s.app).await;
    wrong.handle(&launch[0].to_string()).await.unwrap();
    let e = stored(&s, &uuid).await;
    assert_eq!(e.job.request_job_fail_msg, "Export terminated with an error: EXPORT_API_URL is not set");

    let other = export(&s, &["person"]).await;
    wrong = worker(&s.app, Some(&fake_url_with_other_token().await));
    let launch = export_jobs(&s.app).await;
    wrong.handle(&launch[0].to_string()).await.unwrap();
    let e = stored(&s, &other).await;
    assert_eq!(
        e.job.request_job_fail_msg,
        "Export terminated with an error: the Export API answered 401: {\"detail\":\"invalid auth-token\"}"
    );
}

/// A fake Export API expecting another token than the app's.
async fn fake_url_with_other_token() -> String {
    let config = Config { token: "another-token".into(), delay: Duration::ZERO, outcome: Outcome::Success };
    let api = Arc::new(ExportApi::new(config, None));
    fakes::spawn(fakes::export_api::router(api), 0).await.unwrap().0
}

#[tokio::test]
async fn redeliveries_and_late_polls_change_nothing_once_handled() {
    let s = stack(Outcome::Success).await;
    let uuid = export(&s, &["person"]).await;
    let launch = export_jobs(&s.app).await.remove(0);
    s.worker.handle(&launch.to_string()).await.unwrap();
    let poll = export_jobs(&s.app).await.remove(0);
    // The same launch delivered again: no second task; the poll is queued again (at least once).
    s.worker.handle(&launch.to_string()).await.unwrap();
    assert_eq!(s.api.tasks().len(), 1);
    let again = export_jobs(&s.app).await;
    assert_eq!(again, std::slice::from_ref(&poll));

    s.worker.handle(&poll.to_string()).await.unwrap();
    let finished = stored(&s, &uuid).await;
    assert_eq!(finished.job.request_job_status, JobStatus::Finished);
    // A late copy of the poll, and the launch once more: the ended export does not move.
    s.worker.handle(&poll.to_string()).await.unwrap();
    s.worker.handle(&launch.to_string()).await.unwrap();
    let after = stored(&s, &uuid).await;
    assert_eq!((after.rev, after.job.request_job_status), (finished.rev, JobStatus::Finished));
    assert!(export_jobs(&s.app).await.is_empty());
}

#[tokio::test]
async fn a_retried_export_stops_the_chain_of_its_previous_task() {
    let s = stack(Outcome::Status("Running".into())).await;
    let (admin, _) = s.app.login(ADMIN).await;
    let uuid = export(&s, &["person"]).await;
    let launch = export_jobs(&s.app).await.remove(0);
    s.worker.handle(&launch.to_string()).await.unwrap();
    let old_poll = export_jobs(&s.app).await.remove(0);

    let (status, _) = post(&s.app, &admin, &format!("/exports/{uuid}/retry/"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    s.api.set(Duration::ZERO, Outcome::Success);
    drain(&s).await;
    let e = stored(&s, &uuid).await;
    assert_eq!((e.job.request_job_status, e.retried), (JobStatus::Finished, true));
    assert_eq!(s.api.tasks().len(), 2, "the retry sent the export again");
    assert_eq!(e.job.request_job_id, s.api.tasks()[1].task_id);

    s.worker.handle(&old_poll.to_string()).await.unwrap();
    assert_eq!(stored(&s, &uuid).await.rev, e.rev, "the previous task's poll is stale");
    assert!(export_jobs(&s.app).await.is_empty());
}

#[tokio::test]
async fn logs_come_from_the_export_api_as_a_json_attachment() {
    let s = stack(Outcome::Status("FinishedWithError".into())).await;
    let (admin, _) = s.app.login(ADMIN).await;
    let uuid = export(&s, &["person"]).await;
    drain(&s).await;
    let e = stored(&s, &uuid).await;
    let (status, headers, body) =
        s.app.call(Method::GET, &format!("/exports/{uuid}/logs/")).token(&admin).send_full().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"logs_export_{}.json\"", e.target_name).as_str()
    );
    assert_eq!(body["task_status"], "FinishedWithError");
    assert_eq!(body["out_logs"], format!("[fake] task {} exporting person", e.job.request_job_id));
    let (status, _) = get(&s.app, &s.alice, &format!("/exports/{uuid}/")).await;
    assert_eq!(status, StatusCode::OK);
}

/// An export finished `days_ago` days ago whose zip is in the bucket.
async fn finished_export(s: &Stack, days_ago: i64) -> c360::domain::exports::Export {
    let uuid = export(s, &["person"]).await;
    drain(s).await;
    let mut e = stored(s, &uuid).await;
    e.stamps.created_at -= time::Duration::days(days_ago);
    s.app.state.store.save_export(&e).await.unwrap()
}

async fn object_exists(bucket: &str, key: &str) -> bool {
    s3().await.head_object().bucket(bucket).key(key).send().await.is_ok()
}

#[tokio::test]
async fn the_cleanup_deletes_expired_files_once_and_skips_what_it_cannot_delete() {
    let s = stack(Outcome::Success).await;
    let bucket = s.app.state.settings.exports_bucket.clone().unwrap();
    let expired = finished_export(&s, 8).await;
    let recent = finished_export(&s, 1).await;
    let mut broken = finished_export(&s, 9).await;
    broken.target_location = "/not/in/the/bucket".into();
    s.app.state.store.save_export(&broken).await.unwrap();
    let expired_key = format!("exports/{}.zip", expired.target_name);
    assert!(object_exists(&bucket, &expired_key).await);

    let tasks = tasks(&s.app, None).await;
    let run = || scheduled_tasks::function_handler(&tasks, json!({"task": "export_cleanup"}));
    assert_eq!(run().await.unwrap(), json!({"task": "export_cleanup", "status": "done", "cleaned": 1, "failed": 1}));
    assert!(!object_exists(&bucket, &expired_key).await, "the expired zip is deleted");
    assert!(object_exists(&bucket, &format!("exports/{}.zip", recent.target_name)).await, "the recent one is kept");
    let cleaned = stored(&s, &expired.uuid.to_string()).await;
    assert!(cleaned.clean_datetime.is_some());
    assert!(stored(&s, &recent.uuid.to_string()).await.clean_datetime.is_none());

    assert_eq!(run().await.unwrap(), json!({"task": "export_cleanup", "status": "done", "cleaned": 0, "failed": 1}));
    assert_eq!(stored(&s, &expired.uuid.to_string()).await.rev, cleaned.rev, "a second run changes nothing");
}

#[tokio::test]
async fn no_token_or_presigned_url_reaches_the_logs() {
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = stack(Outcome::StatusDown).await;
    let uuid = export(&s, &["person"]).await;
    drain(&s).await;
    s.api.set(Duration::ZERO, Outcome::Success);
    let e = finished_export(&s, 0).await;
    let big = vec![b'x'; usize::try_from(exports_api::STREAM_LIMIT_BYTES).unwrap() + 1];
    let bucket = s.app.state.settings.exports_bucket.clone().unwrap();
    let key = format!("exports/{}.zip", e.target_name);
    s3().await.put_object().bucket(&bucket).key(&key).body(big.into()).send().await.unwrap();
    let (status, headers, _) =
        s.app.call(Method::GET, &format!("/exports/{}/download/", e.uuid)).token(&s.alice).send_full().await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["location"].to_str().unwrap();
    let signature = location.split("X-Amz-Signature=").nth(1).unwrap();

    let logs = capture.text();
    assert!(logs.contains(&uuid), "the export's events are logged");
    for secret in [TOKEN, signature, location] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
}
