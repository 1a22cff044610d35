//! Every sample trigger payload under events/ (the ones `cargo lambda invoke --data-file` uses)
//! runs through its function's real Lambda handler: HTTP events through lambda_http's request
//! conversion and the function's router, SQS, schedule and WebSocket events through the handlers.
use std::{collections::BTreeMap, path::Path};

use aws_lambda_events::event::{apigw::ApiGatewayWebsocketProxyRequest, sqs::SqsEvent};
use c360::http::{serve::finish, FunctionApi};
use http_body_util::BodyExt;
use integration_tests::TestApp;
use tower::ServiceExt;

fn http_function(name: &str) -> Option<FunctionApi> {
    Some(match name {
        "auth-api" => auth_api::api,
        "users-api" => users_api::api,
        "accesses-api" => accesses_api::api,
        "cohort-api" => cohort_api::api,
        "exports-api" => exports_api::api,
        "platform-api" => platform_api::api,
        _ => return None,
    })
}

/// What each sample event must produce (a new sample without an expectation fails the test).
fn expectations() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("auth-api/login.json", "200"),
        ("auth-api/login-wrong-method.json", "405"),
        ("users-api/list-users-anonymous.json", "403"),
        ("accesses-api/my-accesses-anonymous.json", "403"),
        ("cohort-api/list-folders-anonymous.json", "403"),
        ("exports-api/list-anonymous.json", "403"),
        ("platform-api/maintenances-next.json", "200"),
        ("platform-api/root.json", "404"),
        ("cohort-worker/batch-with-poison.json", "failures: msg-poison,msg-future-version"),
        ("export-worker/batch-with-poison.json", "failures: msg-poison"),
        ("scheduled-tasks/maintenance-broadcast.json", "done"),
        ("scheduled-tasks/expiring-accesses-alerts.json", "skipped"),
        ("scheduled-tasks/stuck-jobs-sweeper.json", "done"),
        ("scheduled-tasks/perimeters-sync.json", "skipped"),
        ("scheduled-tasks/fhir-perimeters-sync.json", "skipped"),
        ("scheduled-tasks/count-users-on-perimeters.json", "done"),
        ("scheduled-tasks/export-cleanup.json", "done"),
        ("scheduled-tasks/refresh-schedules.json", "done"),
        ("ws-api/connect.json", "200"),
        ("ws-api/handshake.json", "200"),
        ("ws-api/disconnect.json", "200"),
    ])
}

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> String {
    let ids: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    format!("failures: {}", ids.join(","))
}

#[tokio::test]
async fn every_sample_event_runs_through_its_lambda_handler() {
    // As template.yaml configures the functions: API Gateway's stage is not part of the path.
    std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true");
    let app = TestApp::new().await;
    let mut admin = app.state.store.user("admin").await.unwrap().unwrap();
    admin.password = Some(c360::auth::password::hash("admin").unwrap()); // the dev credentials the sample uses
    app.state.store.put_user(&admin, c360::store::Condition::MustExist).await.unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let expected = expectations();
    let mut seen = Vec::new();
    for function in std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()) {
        let name = function.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&function).unwrap().map(|e| e.unwrap().path()) {
            let key = format!("{name}/{}", file.file_name().unwrap().to_string_lossy());
            let payload = std::fs::read_to_string(&file).unwrap();
            let outcome = if let Some(api) = http_function(&name) {
                let request = lambda_http::request::from_str(&payload)
                    .unwrap_or_else(|e| panic!("{key}: not an API Gateway event: {e}"));
                let router = finish(api(&app.state).0, &app.state);
                let response = router.oneshot(request).await.unwrap();
                let status = response.status().as_u16().to_string();
                let _ = response.into_body().collect().await.unwrap();
                status
            } else {
                match name.as_str() {
                    "cohort-worker" => {
                        // A count that no longer exists is done with; malformed or future messages fail.
                        let worker = app.worker(None, 20_000);
                        let event = serde_json::from_str::<SqsEvent>(&payload).unwrap();
                        failures(&cohort_worker::function_handler(&worker, event).await)
                    }
                    "export-worker" => {
                        // An export that no longer exists is done with; malformed messages fail.
                        let worker = integration_tests::exports::worker(&app, None);
                        let event = serde_json::from_str::<SqsEvent>(&payload).unwrap();
                        failures(&export_worker::function_handler(&worker, event).await)
                    }
                    "scheduled-tasks" => {
                        let tasks = integration_tests::tasks(&app, None).await;
                        let out = scheduled_tasks::function_handler(&tasks, serde_json::from_str(&payload).unwrap())
                            .await
                            .unwrap();
                        out["status"].as_str().unwrap().to_owned()
                    }
                    "ws-api" => {
                        let event: ApiGatewayWebsocketProxyRequest = serde_json::from_str(&payload).unwrap();
                        ws_api::function_handler(&app.state, event).await.status_code.to_string()
                    }
                    other => panic!("events/{other}: no such function"),
                }
            };
            assert_eq!(Some(outcome.as_str()), expected.get(key.as_str()).copied(), "{key}");
            seen.push(key);
        }
    }
    assert_eq!(seen.len(), expected.len(), "an expectation has no sample event: {seen:?}");
}
