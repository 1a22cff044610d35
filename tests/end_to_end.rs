//! The Cohort360 flow end to end, as `make dev` runs it: the app served over HTTP and WebSocket,
//! the dev server's SQS poller feeding the cohort worker, the fake FHIR `$query` (USE_SOLR) and the
//! fake QueryExecutor calling back over HTTP with its API key, then the Solr ETL for large cohorts.
//! What the user sees is read where the user sees it: WebSocket frames and e-mails.
use std::{sync::Arc, time::Duration};

use c360::{domain::time, services::sweeper::Deadlines};
use fakes::query_executor::{Config, QueryExecutor};
use http::{Method, StatusCode};
use integration_tests::{
    cohort::{created, uuid_of},
    live::{connect, events_until, served_app, Socket},
    TestApp,
};
use serde_json::json;

const QUERY: &str = r#"{"_type": "request", "sourcePopulation": {"caresiteCohortList": ["9999"]},
 "request": {"_type": "andGroup", "_id": 0, "isInclusive": true, "criteria": [{"_type": "basicResource", "_id": 1,
 "isInclusive": true, "resourceType": "Patient", "filterFhir": "gender=female&active=true"}]}}"#;

const ALICE_MAIL: &str = "alice@cohort360.test";

/// A folder, a request and its first snapshot of `query`; returns the snapshot's uuid.
async fn snapshot(app: &TestApp, token: &str, query: &str) -> String {
    let folder = created(app, token, "/cohort/folders/", json!({"name": "Projet diabète"})).await;
    let request =
        created(app, token, "/cohort/requests/", json!({"name": "Femmes actives", "parent_folder": folder["uuid"]}))
            .await;
    let body = json!({"request_id": request["uuid"], "serialized_query": query});
    uuid_of(&created(app, token, "/cohort/request-query-snapshots/", body).await)
}

/// Polls the outbox until `subject` was sent to alice.
async fn mailed(app: &TestApp, subject: &str) -> Vec<String> {
    for _ in 0..200 {
        let subjects = app.outbox.subjects_to(ALICE_MAIL);
        if subjects.iter().any(|s| s == subject) {
            return subjects;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{subject:?} never sent; sent: {:?}", app.outbox.subjects_to(ALICE_MAIL));
}

/// Request → snapshot → count over the WebSocket → cohort (the executor's path when small, the Solr
/// ETL's when large, with its e-mail) → feasibility report (requested, then ready, by e-mail).
#[tokio::test]
async fn the_cohort360_flow_runs_end_to_end_through_the_dev_server() {
    // With a limit of 1 every real count is large: the ETL builds the cohort.
    for (limit, large) in [(1_000_000, false), (1, true)] {
        let (_fhir, fhir_url) = integration_tests::fake_fhir().await;
        let (app, address) = served_app(&[("USE_SOLR", "true"), ("FHIR_URL", &fhir_url)]).await;
        let executor = Arc::new(QueryExecutor::new(Config {
            callback_url: format!("http://{address}"),
            query_executor_token: "test-qe-token".into(),
            solr_etl_token: "test-etl-token".into(),
            delay: Duration::from_millis(30),
            callbacks: true,
            cohort_size_limit: limit as u64,
        }));
        let (qe_url, _) = fakes::spawn(fakes::query_executor::router(executor.clone()), 0).await.unwrap();
        let queue = app.state.settings.cohort_jobs_queue_url.clone().unwrap();
        let poller = tokio::spawn(dev_server::triggers::poll_cohort_jobs(
            app.worker(Some(&qe_url), limit),
            integration_tests::sqs().await,
            queue,
        ));
        app.account("alice", None).await;
        let (token, _) = app.login("alice").await;
        let mut socket: Socket = connect(address, &token).await;

        let snapshot = snapshot(&app, &token, QUERY).await;
        let count = uuid_of(
            &created(&app, &token, "/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await,
        );
        let events = events_until(&mut socket, &count, "finished").await;
        let counted = events.last().unwrap();
        let sent = &executor.jobs()[0];
        assert!(sent.syntax.contains(r#""filterSolr":"fq=gender:(female)&fq=active:(true)""#), "{}", sent.syntax);
        let measure = fakes::query_executor::count_of(&sent.syntax).unwrap() as i64;
        assert_eq!((&counted["job_name"], &counted["extra_info"]["measure"]), (&json!("count"), &json!(measure)));
        assert_eq!(counted["extra_info"]["snapshot_id"], snapshot);

        let body = json!({"name": "Cohorte", "request_query_snapshot_id": snapshot, "dated_measure_id": count});
        let cohort = uuid_of(&created(&app, &token, "/cohort/cohorts/", body).await);
        let events = events_until(&mut socket, &cohort, "finished").await;
        let statuses: Vec<&str> = events.iter().map(|e| e["status"].as_str().unwrap()).collect();
        let built = events.last().unwrap();
        assert_eq!(built["job_name"], "create");
        assert!(!built["extra_info"]["group_id"].as_str().unwrap().is_empty(), "{built}");
        assert_eq!(built["extra_info"]["result_size"], measure);
        if large {
            assert_eq!(statuses, ["long_pending", "finished"], "QE reports LONG_PENDING, then the ETL FINISHED");
            mailed(&app, "Votre cohorte est prête").await;
        } else {
            assert_eq!(statuses, ["finished"]);
            assert!(!app.outbox.subjects_to(ALICE_MAIL).contains(&"Votre cohorte est prête".to_owned()));
        }

        let study =
            created(&app, &token, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": snapshot})).await;
        let subjects = mailed(&app, "Votre rapport est prêt").await;
        let requested = subjects.iter().position(|s| s == "Votre demande de rapport").expect("report requested");
        assert!(requested < subjects.iter().position(|s| s == "Votre rapport est prêt").unwrap());
        let (status, _) = app
            .call(Method::GET, &format!("/cohort/feasibility-studies/{}/download/", uuid_of(&study)))
            .token(&token)
            .send()
            .await;
        assert_eq!(status, StatusCode::OK);
        poller.abort();
    }
}

/// Failures the worker or the stuck-job sweeper write reach the owner as a callback's would: the
/// `job_status` event, and the "report failed" e-mail for a study.
#[tokio::test]
async fn failures_written_by_the_worker_or_the_sweeper_reach_the_owner() {
    let (app, address) = served_app(&[]).await;
    app.account("alice", None).await;
    let (token, _) = app.login("alice").await;
    let mut socket = connect(address, &token).await;
    let snapshot = snapshot(&app, &token, QUERY).await;
    let worker = app.worker(Some("http://127.0.0.1:9"), 20_000); // nothing listens there

    let count = uuid_of(
        &created(&app, &token, "/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await,
    );
    created(&app, &token, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": snapshot})).await;
    for job in app.queued_jobs().await {
        worker.handle(&job.to_string()).await.expect("a launch failure is recorded, not retried");
    }
    let failed = events_until(&mut socket, &count, "failed").await.pop().unwrap();
    let reason = failed["extra_info"]["request_job_fail_msg"].as_str().unwrap();
    assert!(reason.starts_with("QueryExecutor unreachable"), "{failed}");
    assert_eq!(app.outbox.subjects_to(ALICE_MAIL), ["Votre demande de rapport a échoué"]);

    // A count whose message was lost stays `new`: the sweeper ends it past its deadline.
    let stuck = uuid_of(
        &created(&app, &token, "/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await,
    );
    app.queued_jobs().await;
    let deadlines = Deadlines::parse("new=30m").unwrap();
    let report =
        c360::services::sweeper::sweep(&app.state.job_news(), &deadlines, time::now() + ::time::Duration::hours(1))
            .await
            .unwrap();
    assert_eq!(report.failed, 1);
    let swept = events_until(&mut socket, &stuck, "failed").await.pop().unwrap();
    assert!(swept["extra_info"]["request_job_fail_msg"].as_str().unwrap().contains("stuck-job sweeper"), "{swept}");
}
