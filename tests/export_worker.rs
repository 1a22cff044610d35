//! The export worker against the fake Export API and Hadoop API (spec §7.5): the YAML request on the
//! wire, the poll chain on delayed messages, each end state, an API that is down or refuses,
//! redeliveries and late polls, the whole path POST → worker → Export API → zip in the bucket →
//! download, and a hive export's stages (database created, given to HIVE_USER, filled, given to the
//! datalab) with their failures and redeliveries.
use std::{sync::Arc, time::Duration};

use c360::{
    clients::hadoop_api::HadoopApi as HadoopClient,
    domain::{
        cohort::{CohortResult, JobStatus},
        export_run::HiveStage,
    },
};
use fakes::{
    export_api::{made_up_rows, made_up_workbook, Config, ExportApi, Outcome},
    hadoop_api::{Call, Chown, Config as HadoopConfig, HadoopApi, Outcome as Creation},
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
/// Told of every failed export (spec §10.2 "export_failed_admins").
const ADMINS: &str = "Ops,ops@cohort360.test";
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
    let app = app_with(&[("EXPORT_API_AUTH_TOKEN", TOKEN), ("EXPORT_API_URL", &url), ("ADMINS", ADMINS)]).await;
    let worker = worker(&app, Some(&url));
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g-alice").await;
    Stack { app, api, worker, alice, cohort }
}

/// Handles queued export jobs until none is left (polls are not delayed in tests); returns them.
async fn drain(s: &Stack) -> Vec<Value> {
    drain_with(&s.app, &s.worker).await
}

async fn drain_with(app: &TestApp, worker: &export_worker::Worker) -> Vec<Value> {
    let mut handled = Vec::new();
    for _ in 0..50 {
        let jobs = export_jobs(app).await;
        if jobs.is_empty() {
            return handled;
        }
        for job in jobs {
            worker.handle(&job.to_string()).await.unwrap_or_else(|e| panic!("{job}: {e}"));
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
async fn an_xlsx_export_zips_one_workbook_per_table() {
    let s = stack(Outcome::Success).await;
    let mut body = csv_request(&s.cohort, &["person", "visit_occurrence"]);
    body["output_format"] = json!("xlsx");
    let uuid = uuid_of(&created(&s.app, &s.alice, "/exports/", body).await);
    drain(&s).await;
    let e = stored(&s, &uuid).await;
    assert_eq!(e.job.request_job_status, JobStatus::Finished);
    assert!(s.api.tasks()[0].yaml.contains("  type: xlsx\n"), "{}", s.api.tasks()[0].yaml);
    let bucket = s.app.state.settings.exports_bucket.clone().unwrap();
    let object = s3().await.get_object().bucket(&bucket).key(format!("exports/{}.zip", e.target_name)).send().await;
    let zip = object.unwrap().body.collect().await.unwrap().into_bytes();
    for table in ["person", "visit_occurrence"] {
        let (name, workbook) = (format!("{table}.xlsx"), made_up_workbook(table).unwrap());
        assert!(zip.windows(name.len()).any(|w| w == name.as_bytes()), "{name} is in the zip");
        assert!(zip.windows(workbook.len()).any(|w| w == workbook.as_slice()), "{name} is the fake's workbook");
    }
    let (status, headers, _) =
        s.app.call(Method::GET, &format!("/exports/{uuid}/download/")).token(&s.alice).send_full().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-disposition"], "attachment; filename=export_g-alice.zip");
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
        let admins = s.app.outbox.emails().into_iter().filter(|m| m.to == "ops@cohort360.test").collect::<Vec<_>>();
        assert_eq!(admins.len(), 1, "{outcome}: the admins are told once");
        assert_eq!(admins[0].subject, "Demande d'export échouée");
        assert!(
            admins[0].text.contains(&e.job.request_job_fail_msg) && admins[0].text.contains(&uuid),
            "{}",
            admins[0].text
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
async fn a_delivery_stopped_before_the_task_id_was_saved_sends_again_to_the_same_file() {
    let s = stack(Outcome::Success).await;
    let uuid = export(&s, &["person"]).await;
    let launch = export_jobs(&s.app).await.remove(0);
    s.worker.handle(&launch.to_string()).await.unwrap();
    // As if the worker had stopped between the Export API's answer and the save of its task id.
    let mut claimed = stored(&s, &uuid).await;
    claimed.job.request_job_id.clear();
    s.app.state.store.save_export(&claimed).await.unwrap();
    let first_poll = export_jobs(&s.app).await;
    assert_eq!(first_poll.len(), 1);

    s.worker.handle(&launch.to_string()).await.unwrap();
    let tasks = s.api.tasks();
    assert_eq!(tasks.len(), 2, "sent again: the first task id was lost");
    assert_eq!((&tasks[0].file_path, tasks[0].yaml.contains("overwrite: true")), (&tasks[1].file_path, true));
    drain(&s).await;
    // The first task's poll chain was never saved; only the recorded task's poll ends the export.
    s.worker.handle(&first_poll[0].to_string()).await.unwrap();
    let e = stored(&s, &uuid).await;
    assert_eq!(
        (e.job.request_job_status, e.job.request_job_id.as_str()),
        (JobStatus::Finished, tasks[1].task_id.as_str())
    );
    let finished = s.app.outbox.subjects_to("alice@cohort360.test");
    assert_eq!(finished.iter().filter(|s| s.contains("terminé")).count(), 1, "told once: {finished:?}");
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
    let (capture, _guard) = LogCapture::start();

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

// ---- hive exports ---------------------------------------------------------------------------------------

const HADOOP_TOKEN: &str = "hadoop-api-test-token";
const EXPORT_JUPYTER: i64 = 7;
const HIVE_USER: &str = "hive-writer";
const HIVE_DB_PATH: &str = "/user/hive/exports-test";
const JULES: &str = "jules@cohort360.test";

struct Hive {
    app: TestApp,
    api: Arc<ExportApi>,
    api_url: String,
    hadoop: Arc<HadoopApi>,
    hadoop_url: String,
    worker: export_worker::Worker,
    jules: String,
    cohort: String,
    lab: String,
}

async fn hive_stack() -> Hive {
    let config = Config { token: TOKEN.into(), delay: Duration::ZERO, outcome: Outcome::Success };
    let api = Arc::new(ExportApi::new(config, None));
    let (api_url, _) = fakes::spawn(fakes::export_api::router(api.clone()), 0).await.unwrap();
    let config = HadoopConfig {
        token: HADOOP_TOKEN.into(),
        delay: Duration::ZERO,
        outcome: Creation::Success,
        chown: Chown::Success,
    };
    let hadoop = Arc::new(HadoopApi::new(config));
    let (hadoop_url, _) = fakes::spawn(fakes::hadoop_api::router(hadoop.clone()), 0).await.unwrap();
    let app = app_with(&[
        ("EXPORT_API_AUTH_TOKEN", TOKEN),
        ("EXPORT_API_URL", &api_url),
        ("HADOOP_API_URL", &hadoop_url),
        ("HADOOP_API_AUTH_TOKEN", HADOOP_TOKEN),
        ("HIVE_USER", HIVE_USER),
        ("HIVE_DB_PATH", HIVE_DB_PATH),
    ])
    .await;
    let worker = worker(&app, Some(&api_url));
    let jules = user(&app, "jules", Some(EXPORT_JUPYTER), ROOT_PERIMETER).await;
    let cohort = finished_cohort(&app, &jules, json!(["3"]), "g-jules").await;
    let (admin, _) = app.login(ADMIN).await;
    let provider = created(&app, &admin, "/exports/infrastructure-providers/", json!({"name": "Cloud"})).await;
    let body = json!({"name": "lab1", "infrastructure_provider": provider["uuid"]});
    let lab = uuid_of(&created(&app, &admin, "/exports/datalabs/", body).await);
    Hive { app, api, api_url, hadoop, hadoop_url, worker, jules, cohort, lab }
}

/// A hive export of the person and visit tables of Jules's cohort to `lab1`; returns its uuid.
async fn hive_export(h: &Hive, nominative: bool) -> String {
    let tables: Vec<Value> = ["person", "visit_occurrence"]
        .iter()
        .map(|t| json!({"table_name": t, "cohort_result_source": h.cohort, "columns": null}))
        .collect();
    let body = json!({
        "output_format": "hive", "nominative": nominative, "shift_dates": true, "datalab": h.lab,
        "motivation": "Étude", "export_tables": tables,
    });
    uuid_of(&created(&h.app, &h.jules, "/exports/", body).await)
}

async fn stored_in(app: &TestApp, uuid: &str) -> c360::domain::exports::Export {
    app.state.store.export(Uuid::parse_str(uuid).unwrap()).await.unwrap().unwrap()
}

fn call(method: &str, path: &str, query: &[(&str, &str)]) -> Call {
    Call {
        method: method.into(),
        path: path.into(),
        query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn create_call(name: &str) -> Call {
    let location = format!("{HIVE_DB_PATH}/{name}.db");
    call("POST", "/hadoop/hive/create_base_hive", &[("name", name), ("location", &location), ("if_not_exists", "True")])
}

fn status_call(task: &str) -> Call {
    call("GET", "/hadoop/task_status", &[("task_uuid", task), ("return_out_logs", "True"), ("return_err_logs", "True")])
}

fn chown_call(name: &str, uid: &str) -> Call {
    let location = format!("{HIVE_DB_PATH}/{name}.db");
    call(
        "POST",
        "/hadoop/hdfs/chown_directory",
        &[("location", &location), ("uid", uid), ("gid", "hdfs"), ("recursive", "True")],
    )
}

#[tokio::test]
async fn a_hive_export_creates_its_database_fills_it_and_gives_it_to_the_datalab() {
    let h = hive_stack().await;
    let uuid = hive_export(&h, false).await;
    let e = stored_in(&h.app, &uuid).await;
    assert!(e.target_name.starts_with("lab1_"), "{}", e.target_name);
    assert_eq!(e.target_location, HIVE_DB_PATH);

    let handled = drain_with(&h.app, &h.worker).await;
    let kinds: Vec<&str> = handled.iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["launch", "poll", "poll"], "the database task, then the export task: each ends at once");
    let database_task = handled[1]["task"].as_str().unwrap();
    let tasks = h.api.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(handled[2]["task"], tasks[0].task_id.as_str());
    let name = e.target_name.as_str();
    assert_eq!(
        h.hadoop.calls(),
        [create_call(name), status_call(database_task), chown_call(name, HIVE_USER), chown_call(name, "lab1")],
        "create, poll, give to HIVE_USER, then (after the export) to the datalab"
    );
    let listed = c360::aws::http_client(Duration::from_secs(5))
        .get(format!("{}/fake/calls", h.hadoop_url))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed, serde_json::to_value(h.hadoop.calls()).unwrap(), "GET /fake/calls lists the same calls");

    let golden = format!(
        "output:
  type: hive
  databaseName: {name}
overwrite: true
tablesToExport:
- tableName: person
  cohortId: g-jules
  relation: true
- tableName: visit_occurrence
  relation: true
noDateShift: false
disableTerminology: false
pseudo: lab1
"
    );
    assert_eq!(tasks[0].yaml, golden);
    assert_eq!((tasks[0].database_name.as_deref(), tasks[0].file_path.as_deref()), (Some(name), None));

    let e = stored_in(&h.app, &uuid).await;
    assert_eq!(
        (e.job.request_job_status, e.job.request_job_id.as_str(), e.job.request_job_fail_msg.as_str()),
        (JobStatus::Finished, tasks[0].task_id.as_str(), "")
    );
    assert_eq!(e.hive_stage, Some(HiveStage::HandingOver), "the last stage reached");
    assert!(e.job.request_job_duration.starts_with("0:00:"), "{}", e.job.request_job_duration);
    assert!(e.is_user_notified);
    assert_eq!(
        h.app.outbox.subjects_to(JULES),
        [
            "[Cohorte g-jules] Demande reçue de transfert en environnement Jupyter",
            "[Cohorte g-jules] Export `Cohorte g-jules` terminé"
        ]
    );
    let emails = h.app.outbox.emails();
    let done = emails.iter().find(|m| m.subject.ends_with("terminé")).unwrap();
    assert!(done.text.contains(&format!("base de données « {name} »")), "{}", done.text);
    assert!(!done.text.contains("/download/"), "no download link for a database: {}", done.text);
}

#[tokio::test]
async fn each_failing_stage_of_a_hive_export_fails_it_with_its_message() {
    let h = hive_stack().await;
    let prepare = "Error while preparing DB for export";
    // Runs a new export with the fakes set so, to its end; returns it and the Hadoop API calls it made.
    let run = |creation: Creation, chown: Chown, export: Outcome| {
        let h = &h;
        async move {
            h.hadoop.set(Duration::ZERO, creation, chown);
            h.api.set(Duration::ZERO, export);
            let before = h.hadoop.calls().len();
            let uuid = hive_export(h, true).await;
            drain_with(&h.app, &h.worker).await;
            let e = stored_in(&h.app, &uuid).await;
            assert_eq!(e.job.request_job_status, JobStatus::Failed, "{}", e.job.request_job_fail_msg);
            (e, h.hadoop.calls()[before..].to_vec())
        }
    };

    let (e, calls) = run(Creation::RefuseCreate, Chown::Success, Outcome::Success).await;
    assert_eq!(
        e.job.request_job_fail_msg,
        format!("{prepare}: the Hadoop API answered 500: {{\"detail\":\"the fake Hadoop API refuses databases\"}}")
    );
    assert_eq!(calls, [create_call(&e.target_name)]);

    let (e, calls) = run(Creation::Status("FinishedWithError".into()), Chown::Success, Outcome::Success).await;
    let task = calls[1].query["task_uuid"].clone();
    assert_eq!(e.job.request_job_fail_msg, format!("{prepare}: Job `{task}` ended with status `failed`"));
    assert_eq!(calls, [create_call(&e.target_name), status_call(&task)], "no chown of a database not created");

    let (e, calls) = run(Creation::StatusDown, Chown::Success, Outcome::Success).await;
    assert!(
        e.job.request_job_fail_msg.starts_with(&format!("{prepare}: the Hadoop API answered 503")),
        "{}",
        e.job.request_job_fail_msg
    );
    assert_eq!(calls.len(), 1 + 5, "five failed polls in a row");

    let (e, calls) = run(Creation::Success, Chown::Fail, Outcome::Success).await;
    assert_eq!(
        e.job.request_job_fail_msg,
        format!(
            "{prepare}: Error granting `{HIVE_USER}` rights on DB `{}` - Granting rights did not succeed: \
             chown: `{HIVE_USER}`: no such user",
            e.target_name
        )
    );
    assert_eq!(calls[2], chown_call(&e.target_name, HIVE_USER));

    let (e, _) = run(Creation::Success, Chown::Refuse, Outcome::Success).await;
    assert_eq!(
        e.job.request_job_fail_msg,
        format!(
            "{prepare}: Error granting `{HIVE_USER}` rights on DB `{}` - the Hadoop API answered 500: \
             the fake Hadoop API refuses chown",
            e.target_name
        )
    );
    assert!(h.api.tasks().is_empty(), "no export is sent before its database is ready");

    let (e, calls) = run(Creation::Success, Chown::Success, Outcome::Status("FinishedWithError".into())).await;
    assert_eq!(
        e.job.request_job_fail_msg,
        format!("Export terminated with an error: Job `{}` ended with status `failed`", e.job.request_job_id)
    );
    assert_eq!(calls.last(), Some(&chown_call(&e.target_name, HIVE_USER)), "a failed export is not handed over");

    // The database is ready and filled, then the datalab cannot be given it.
    h.hadoop.set(Duration::ZERO, Creation::Success, Chown::Success);
    h.api.set(Duration::ZERO, Outcome::Success);
    let uuid = hive_export(&h, true).await;
    for _ in 0..2 {
        let job = export_jobs(&h.app).await.remove(0);
        h.worker.handle(&job.to_string()).await.unwrap();
    }
    h.hadoop.set(Duration::ZERO, Creation::Success, Chown::Fail);
    drain_with(&h.app, &h.worker).await;
    let e = stored_in(&h.app, &uuid).await;
    assert_eq!(
        (e.job.request_job_status, e.job.request_job_fail_msg.as_str()),
        (
            JobStatus::Failed,
            format!(
                "Could not conclude export: Error granting `lab1` rights on DB `{}` - Granting rights did not \
                 succeed: chown: `lab1`: no such user",
                e.target_name
            )
            .as_str()
        )
    );
    assert_eq!(h.hadoop.calls().last(), Some(&chown_call(&e.target_name, "lab1")));

    // No Hadoop API configured, or one expecting another token.
    let mut other = worker(&h.app, Some(&h.api_url));
    other.hadoop = None;
    let uuid = hive_export(&h, true).await;
    drain_with(&h.app, &other).await;
    assert_eq!(
        stored_in(&h.app, &uuid).await.job.request_job_fail_msg,
        format!("{prepare}: HADOOP_API_URL is not set")
    );
    let http = c360::aws::http_client(Duration::from_secs(5));
    other.hadoop = Some(HadoopClient::new(http, h.hadoop_url.clone(), c360::config::Secret::new("another-token")));
    let uuid = hive_export(&h, true).await;
    drain_with(&h.app, &other).await;
    assert_eq!(
        stored_in(&h.app, &uuid).await.job.request_job_fail_msg,
        format!("{prepare}: the Hadoop API answered 401: {{\"detail\":\"invalid auth-token\"}}")
    );

    let subjects = h.app.outbox.subjects_to(JULES);
    let count = |subject: &str| subjects.iter().filter(|s| *s == subject).count();
    // Without a Hadoop API the export fails before it is claimed: no "received" e-mail.
    assert_eq!(count("[Cohorte g-jules] Demande reçue de transfert en environnement Jupyter"), 8);
    assert_eq!(count("[Cohorte g-jules] Votre demande d'export `Cohorte g-jules` n'a pas abouti"), 9);
    assert_eq!(subjects.len(), 17, "no success: {subjects:?}");
}

#[tokio::test]
async fn redelivered_hive_messages_never_repeat_a_call_already_done() {
    let h = hive_stack().await;
    let uuid = hive_export(&h, true).await;
    let launch = export_jobs(&h.app).await.remove(0);
    h.worker.handle(&launch.to_string()).await.unwrap();
    assert_eq!(h.hadoop.calls().len(), 1, "the database is asked for");
    let database_poll = export_jobs(&h.app).await.remove(0);
    // The launch again: the database is not asked for twice; its poll is queued again.
    h.worker.handle(&launch.to_string()).await.unwrap();
    assert_eq!(h.hadoop.calls().len(), 1);
    assert_eq!(export_jobs(&h.app).await, std::slice::from_ref(&database_poll));

    h.worker.handle(&database_poll.to_string()).await.unwrap();
    assert_eq!(h.hadoop.calls().len(), 3, "polled and given to HIVE_USER");
    assert_eq!(h.api.tasks().len(), 1, "then sent to the Export API");
    let export_poll = export_jobs(&h.app).await.remove(0);
    // The database poll and the launch again: no Hadoop call, no second export; the launch queues the
    // export's poll again.
    h.worker.handle(&database_poll.to_string()).await.unwrap();
    h.worker.handle(&launch.to_string()).await.unwrap();
    assert_eq!((h.hadoop.calls().len(), h.api.tasks().len()), (3, 1));
    assert_eq!(export_jobs(&h.app).await, std::slice::from_ref(&export_poll));

    h.worker.handle(&export_poll.to_string()).await.unwrap();
    let finished = stored_in(&h.app, &uuid).await;
    assert_eq!(finished.job.request_job_status, JobStatus::Finished);
    assert_eq!(h.hadoop.calls().len(), 4, "given to the datalab");
    for late in [&export_poll, &database_poll, &launch] {
        h.worker.handle(&late.to_string()).await.unwrap();
    }
    let after = stored_in(&h.app, &uuid).await;
    assert_eq!((after.rev, h.hadoop.calls().len(), h.api.tasks()[0].status_calls), (finished.rev, 4, 1));
    assert!(export_jobs(&h.app).await.is_empty());
    assert_eq!(h.app.outbox.subjects_to(JULES).len(), 2, "received and finished, once each");
}

#[tokio::test]
async fn a_hive_export_resumes_at_the_stage_a_stopped_delivery_recorded() {
    let h = hive_stack().await;
    // A delivery of the database poll stopped after recording the database ready: the next one sends
    // the export without asking the Hadoop API anything.
    let uuid = hive_export(&h, true).await;
    let launch = export_jobs(&h.app).await.remove(0);
    h.worker.handle(&launch.to_string()).await.unwrap();
    let database_poll = export_jobs(&h.app).await.remove(0);
    let task = database_poll["task"].as_str().unwrap().to_owned();
    let mut e = stored_in(&h.app, &uuid).await;
    assert_eq!(e.hive_stage, Some(HiveStage::CreatingDatabase { task: task.clone() }));
    // The owner's list shows how far the preparation went.
    let (_, list) = get(&h.app, &h.jules, "/exports/?limit=20").await;
    assert_eq!(
        (list["results"][0]["uuid"].as_str(), list["results"][0]["stage"].as_str()),
        (Some(uuid.as_str()), Some("creating_database"))
    );
    e.hive_stage = Some(HiveStage::DatabaseReady { task });
    h.app.state.store.save_export(&e).await.unwrap();
    h.worker.handle(&database_poll.to_string()).await.unwrap();
    assert_eq!(h.hadoop.calls().len(), 1, "only the creation");
    assert_eq!(h.api.tasks().len(), 1);

    // A delivery of the export poll stopped after recording the hand-over: the next one gives the
    // database to the datalab without asking the Export API again.
    let export_poll = export_jobs(&h.app).await.remove(0);
    let mut e = stored_in(&h.app, &uuid).await;
    e.hive_stage = Some(HiveStage::HandingOver);
    h.app.state.store.save_export(&e).await.unwrap();
    h.worker.handle(&export_poll.to_string()).await.unwrap();
    assert_eq!(h.api.tasks()[0].status_calls, 0);
    assert_eq!(h.hadoop.calls()[1..], [chown_call(&e.target_name, "lab1")]);
    assert_eq!(stored_in(&h.app, &uuid).await.job.request_job_status, JobStatus::Finished);
}

#[tokio::test]
async fn a_retried_hive_export_starts_over_with_its_database() {
    let h = hive_stack().await;
    h.hadoop.set(Duration::ZERO, Creation::Success, Chown::Fail);
    let uuid = hive_export(&h, true).await;
    drain_with(&h.app, &h.worker).await;
    let failed = stored_in(&h.app, &uuid).await;
    assert_eq!(failed.job.request_job_status, JobStatus::Failed);

    h.hadoop.set(Duration::ZERO, Creation::Success, Chown::Success);
    let (admin, _) = h.app.login(ADMIN).await;
    let (status, _) = post(&h.app, &admin, &format!("/exports/{uuid}/retry/"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored_in(&h.app, &uuid).await.hive_stage, None, "the retry clears the stages");
    drain_with(&h.app, &h.worker).await;
    let e = stored_in(&h.app, &uuid).await;
    assert_eq!((e.job.request_job_status, e.retried), (JobStatus::Finished, true));
    let paths: Vec<String> = h.hadoop.calls().iter().map(|c| c.path.rsplit('/').next().unwrap().to_owned()).collect();
    assert_eq!(
        paths,
        [
            "create_base_hive",
            "task_status",
            "chown_directory",
            "create_base_hive",
            "task_status",
            "chown_directory",
            "chown_directory"
        ]
    );
}

#[tokio::test]
async fn no_hadoop_token_reaches_the_logs_or_the_messages() {
    let (capture, _guard) = LogCapture::start();

    let h = hive_stack().await;
    let mut uuids = Vec::new();
    for (creation, chown) in [
        (Creation::StatusDown, Chown::Success),
        (Creation::RefuseCreate, Chown::Success),
        (Creation::Success, Chown::Refuse),
        (Creation::Success, Chown::Success),
    ] {
        h.hadoop.set(Duration::ZERO, creation, chown);
        let uuid = hive_export(&h, true).await;
        drain_with(&h.app, &h.worker).await;
        uuids.push(uuid);
    }
    let logs = capture.text();
    for uuid in &uuids {
        assert!(logs.contains(uuid.as_str()), "the export's events are logged");
        let e = stored_in(&h.app, uuid).await;
        assert!(!e.job.request_job_fail_msg.contains(HADOOP_TOKEN));
    }
    assert!(logs.contains("hive database given to the datalab"));
    assert!(!logs.contains(HADOOP_TOKEN), "the Hadoop API token reached the logs");
    let emails = h.app.outbox.emails();
    assert!(emails.iter().all(|m| !m.text.contains(HADOOP_TOKEN) && !m.html.contains(HADOOP_TOKEN)));
}

/// The owner's connection sees each change of the export as a `job_status` push (`job_name: export`),
/// through the real Management API client to a stub endpoint; nobody else's connection does.
#[tokio::test]
async fn each_change_of_an_export_is_pushed_to_its_owner() {
    type Posts = Arc<std::sync::Mutex<Vec<(String, Value)>>>;
    let posts: Posts = Arc::default();
    let record = |axum::extract::State(posts): axum::extract::State<Posts>,
                  axum::extract::Path(id): axum::extract::Path<String>,
                  body: axum::body::Bytes| async move {
        posts.lock().unwrap().push((id, serde_json::from_slice(&body).expect("pushes are JSON")));
        StatusCode::OK
    };
    let management =
        axum::Router::new().route("/stage/@connections/{id}", axum::routing::post(record)).with_state(posts.clone());
    let (management_url, _) = fakes::spawn(management, 0).await.unwrap();
    let config = Config { token: TOKEN.into(), delay: Duration::ZERO, outcome: Outcome::Success };
    let api = Arc::new(ExportApi::new(config, Some(s3().await)));
    let (url, _) = fakes::spawn(fakes::export_api::router(api.clone()), 0).await.unwrap();
    let endpoint = format!("{}/stage", management_url.trim_end_matches('/'));
    let app =
        app_with(&[("EXPORT_API_AUTH_TOKEN", TOKEN), ("EXPORT_API_URL", &url), ("WS_MANAGEMENT_ENDPOINT", &endpoint)])
            .await;
    let worker = worker(&app, Some(&url));
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let bob = user(&app, "bob", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    for (id, token) in [("alice-1", &alice), ("bob-1", &bob)] {
        ws_api::on_message(&app.state, id, &integration_tests::live::handshake(token)).await.unwrap();
    }
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g-alice").await;
    let uuid = uuid_of(&created(&app, &alice, "/exports/", csv_request(&cohort, &["person"])).await);
    posts.lock().unwrap().clear();

    drain_with(&app, &worker).await;
    let pushed = posts.lock().unwrap().clone();
    assert!(pushed.iter().all(|(to, _)| to == "alice-1"), "only the owner's connection: {pushed:?}");
    let statuses: Vec<&str> = pushed.iter().map(|(_, frame)| frame["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.first(), Some(&"pending"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"finished"), "{statuses:?}");
    let last = &pushed.last().unwrap().1;
    assert_eq!(
        (last["type"].clone(), last["job_name"].clone(), last["uuid"].clone()),
        (json!("job_status"), json!("export"), json!(uuid))
    );
    assert_eq!(last["extra_info"]["request_job_status"], "finished");
    assert!(last["extra_info"]["elapsed_ms"].as_i64().is_some_and(|ms| ms >= 0), "{last}");
    assert_eq!(last["extra_info"]["stage"], Value::Null, "csv exports have no database stage");
}
