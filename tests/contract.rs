//! The OpenAPI document (issue 14): valid OpenAPI 3.1, one operation per route of the inventory,
//! and the operations described by their types answer what the document says they answer (folders,
//! and every operation of exports-api, errors and empty lists included).
use std::collections::BTreeSet;

use c360::domain::cohort::JobStatus;
use http::{Method, StatusCode};
use integration_tests::{
    contract::{python_check, Answers},
    exports::{app_with, csv_request, finished_cohort, user},
    s3, TestApp, ADMIN, ROOT_PERIMETER,
};
use serde_json::{json, Value};
use uuid::Uuid;

async fn document(app: &TestApp) -> Value {
    let (status, document) = app.call(Method::GET, "/schema").send().await;
    assert_eq!(status, StatusCode::OK);
    document
}

#[tokio::test]
async fn the_document_is_valid_openapi_with_every_route_once() {
    let app = TestApp::new().await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");

    let (_, specs) = dev_server::all_routes(&app.state);
    let routes: BTreeSet<(String, String)> =
        specs.iter().map(|s| (s.method.as_str().to_lowercase(), s.path.to_owned())).collect();
    assert_eq!(routes.len(), specs.len(), "a route is registered twice");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| item.as_object().expect("path item").keys().map(|m| (m.clone(), path.clone())))
        .collect();
    assert_eq!(documented, routes, "the document and the route table differ");

    let validate = "import json, sys\nfrom openapi_spec_validator import validate\n\
                    validate(json.load(open(sys.argv[1])))\nprint('valid')";
    if let Err(report) = python_check(&["-c", validate], &document) {
        panic!("/schema is not valid OpenAPI:\n{report}");
    }
}

#[tokio::test]
async fn typed_operations_answer_what_the_document_says() {
    let app = TestApp::new().await;
    let (token, _) = app.login(ADMIN).await;
    let mut answers = Answers::default();
    let (folders, one) = ("/cohort/folders/", "/cohort/folders/{uuid}/");

    let call = app.call(Method::POST, folders).token(&token).json(json!({"name": "typed"}));
    let (status, created) = answers.send(call, Method::POST, folders).await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({"name": "", "description": [], "owner": "someone-else"});
    let call = app.call(Method::POST, folders).token(&token).json(body);
    let invalid = answers.send(call, Method::POST, folders).await;
    let errors = json!({
        "name": ["This field may not be blank."],
        "description": ["Not a valid string."],
        "owner": ["Invalid pk \"someone-else\" - object does not exist."],
    });
    assert_eq!(invalid, (StatusCode::BAD_REQUEST, errors));
    for query in ["", "?ordering=-name&limit=1", "?search=typ&min_created_at=2020-01-01T00:00:00Z"] {
        let call = app.call(Method::GET, &format!("{folders}{query}")).token(&token);
        assert_eq!(answers.send(call, Method::GET, folders).await.0, StatusCode::OK);
    }
    let call = app.call(Method::GET, &format!("{folders}?min_created_at=yesterday")).token(&token);
    assert_eq!(answers.send(call, Method::GET, folders).await.0, StatusCode::BAD_REQUEST);

    let path = format!("{folders}{}/", created["uuid"].as_str().expect("uuid"));
    let call = app.call(Method::GET, &path).token(&token);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::OK);
    let call = app.call(Method::PATCH, &path).token(&token).json(json!({"description": null}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::OK);
    assert_eq!(answers.send(app.call(Method::GET, &path), Method::GET, one).await.0, StatusCode::FORBIDDEN);
    let call = app.call(Method::DELETE, &path).token(&token);
    assert_eq!(answers.send(call, Method::DELETE, one).await.0, StatusCode::NO_CONTENT);
    let call = app.call(Method::GET, &path).token(&token);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::NOT_FOUND);

    match answers.check(&document(&app).await) {
        Ok(report) => eprintln!("{report}"),
        Err(report) => panic!("answers differ from /schema:\n{report}"),
    }
}

/// Roles of the demo seed (shared/src/services/seed.rs).
const EXPORT_CSV: i64 = 6;
const DATALABS: i64 = 10;

/// Marks an export finished as the worker would, its zip in the exports bucket.
async fn finished_export(app: &TestApp, export: &str) {
    let mut e = app.state.store.export(Uuid::parse_str(export).expect("uuid")).await.expect("read").expect("one");
    e.job.request_job_status = JobStatus::Finished;
    e.job.request_job_id = "task-1".into();
    let e = app.state.store.save_export(&e).await.expect("saved");
    let bucket = app.state.settings.exports_bucket.clone().expect("an exports bucket");
    let zip = c360::domain::feasibility::zip_one("person.csv", b"person_id\n1\n");
    let key = format!("exports/{}.zip", e.target_name);
    s3().await.put_object().bucket(&bucket).key(key).body(zip.into()).send().await.expect("zip uploaded");
}

#[tokio::test]
async fn export_operations_answer_what_the_document_says() {
    let app = app_with(&[]).await;
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let labs = user(&app, "labs", Some(DATALABS), ROOT_PERIMETER).await;
    let (admin, _) = app.login(ADMIN).await;
    let mut answers = Answers::default();
    let (exports, one) = ("/exports/", "/exports/{uuid}/");

    let call = app.call(Method::GET, exports).token(&alice);
    assert_eq!(answers.send(call, Method::GET, exports).await, (StatusCode::NO_CONTENT, Value::Null), "empty");
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g-typed").await;
    let call =
        app.call(Method::POST, exports).token(&alice).json(csv_request(&cohort, &["person", "condition_occurrence"]));
    let (status, export) = answers.send(call, Method::POST, exports).await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    let uuid = export["uuid"].as_str().expect("uuid").to_owned();
    let refusals = [
        (
            json!({"nominative": true}),
            StatusCode::BAD_REQUEST,
            json!(["Invalid export data: output_format is required"]),
        ),
        (
            json!({"output_format": "csv", "nominative": "yes", "export_tables": 3}),
            StatusCode::BAD_REQUEST,
            json!({"nominative": ["Must be a valid boolean."], "export_tables": ["Expected a list of items."]}),
        ),
        (
            json!({"output_format": "csv", "nominative": false}),
            StatusCode::FORBIDDEN,
            json!({"detail": "Vous n'avez pas le droit d'export CSV/Excel pseudonymisé"}),
        ),
    ];
    for (body, status, answer) in refusals {
        let call = app.call(Method::POST, exports).token(&alice).json(body);
        assert_eq!(answers.send(call, Method::POST, exports).await, (status, answer));
    }
    for query in
        ["?limit=1", "?return_full_objects=true", "?search=g-typed&ordering=-created_at&output_format=csv,xlsx"]
    {
        let call = app.call(Method::GET, &format!("{exports}{query}")).token(&alice);
        assert_eq!(answers.send(call, Method::GET, exports).await.0, StatusCode::OK, "{query}");
    }
    let call = app.call(Method::GET, &format!("{exports}?ordering=motivation")).token(&alice);
    assert_eq!(answers.send(call, Method::GET, exports).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(answers.send(app.call(Method::GET, exports), Method::GET, exports).await.0, StatusCode::FORBIDDEN);

    let path = format!("/exports/{uuid}/");
    let call = app.call(Method::GET, &path).token(&alice);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::OK);
    let call = app.call(Method::GET, "/exports/not-a-uuid/").token(&alice);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::NOT_FOUND);
    let download = "/exports/{uuid}/download/";
    let call = app.call(Method::GET, &format!("{path}download/")).token(&alice);
    assert_eq!(answers.send(call, Method::GET, download).await.0, StatusCode::BAD_REQUEST, "not finished");
    finished_export(&app, &uuid).await;
    let call = app.call(Method::GET, &format!("{path}download/")).token(&alice);
    assert_eq!(answers.send(call, Method::GET, download).await.0, StatusCode::OK, "the zip");
    let logs = "/exports/{uuid}/logs/";
    let call = app.call(Method::GET, &format!("{path}logs/")).token(&admin);
    assert_eq!(answers.send(call, Method::GET, logs).await.0, StatusCode::OK, "finished: no logs");
    for action in ["retry", "relaunch"] {
        let template = format!("/exports/{{uuid}}/{action}/");
        let call = app.call(Method::POST, &format!("{path}{action}/")).token(&alice);
        assert_eq!(answers.send(call, Method::POST, &template).await.0, StatusCode::FORBIDDEN);
    }
    let call = app.call(Method::POST, &format!("{path}retry/")).token(&admin);
    assert_eq!(answers.send(call, Method::POST, "/exports/{uuid}/retry/").await.0, StatusCode::OK);
    let call = app.call(Method::POST, &format!("{path}relaunch/")).token(&admin);
    assert_eq!(answers.send(call, Method::POST, "/exports/{uuid}/relaunch/").await.0, StatusCode::CREATED);
    let call = app.call(Method::GET, &format!("{path}logs/")).token(&admin);
    assert_eq!(answers.send(call, Method::GET, logs).await.0, StatusCode::BAD_REQUEST, "retried: no job id yet");

    // What the export forms offer.
    let (cohorts, filters) = ("/exports/cohorts/", "/exports/fhir-filters/");
    let call = app.call(Method::GET, &format!("{filters}?owner_id=alice")).token(&alice);
    let (status, empty) = answers.send(call, Method::GET, filters).await;
    assert_eq!((status, &empty["count"]), (StatusCode::OK, &json!(0)), "an empty list");
    let body = json!({"fhir_resource": "Condition", "name": "Diabète", "filter": "code=E11", "fhir_version": "4.0"});
    let (_, saved) = app.call(Method::POST, "/cohort/fhir-filters/").token(&alice).json(body).send().await;
    let call = app.call(Method::GET, &format!("{filters}?ordering=-created_at&search=diab&identifying=false"));
    assert_eq!(answers.send(call.token(&alice), Method::GET, filters).await.0, StatusCode::OK);
    let call = app.call(Method::GET, &format!("{filters}?ordering=owner")).token(&alice);
    assert_eq!(answers.send(call, Method::GET, filters).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::GET, &format!("{filters}{}/", saved["uuid"].as_str().expect("uuid"))).token(&alice);
    assert_eq!(answers.send(call, Method::GET, "/exports/fhir-filters/{uuid}/").await.0, StatusCode::OK);
    let call = app.call(Method::GET, &format!("{cohorts}?owner_id=alice")).token(&labs);
    assert_eq!(answers.send(call, Method::GET, cohorts).await.0, StatusCode::OK);
    for (token, status) in [(&alice, StatusCode::OK), (&labs, StatusCode::NOT_FOUND)] {
        let call = app.call(Method::GET, &format!("{cohorts}{cohort}/")).token(token);
        assert_eq!(answers.send(call, Method::GET, "/exports/cohorts/{uuid}/").await.0, status);
    }

    // Datalabs and their infrastructure providers.
    let (providers, provider) = ("/exports/infrastructure-providers/", "/exports/infrastructure-providers/{uuid}/");
    let (labs_path, lab) = ("/exports/datalabs/", "/exports/datalabs/{uuid}/");
    let call = app.call(Method::POST, providers).token(&labs).json(json!({"name": "Cloud"}));
    let (status, cloud) = answers.send(call, Method::POST, providers).await;
    assert_eq!(status, StatusCode::CREATED);
    let cloud_path = format!("{providers}{}/", cloud["uuid"].as_str().expect("uuid"));
    let call = app.call(Method::POST, providers).token(&labs).json(json!({"name": ""}));
    assert_eq!(answers.send(call, Method::POST, providers).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::GET, &format!("{providers}?search=clo&ordering=-name")).token(&labs);
    assert_eq!(answers.send(call, Method::GET, providers).await.0, StatusCode::OK);
    let call = app.call(Method::GET, providers).token(&alice);
    assert_eq!(answers.send(call, Method::GET, providers).await.0, StatusCode::FORBIDDEN, "no datalab right");
    let call = app.call(Method::PATCH, &cloud_path).token(&labs).json(json!({"name": "Cloud AP-HP"}));
    assert_eq!(answers.send(call, Method::PATCH, provider).await.0, StatusCode::OK);
    let body = json!({"name": "lab 1", "infrastructure_provider": Uuid::new_v4()});
    let call = app.call(Method::POST, labs_path).token(&labs).json(body);
    let (status, errors) = answers.send(call, Method::POST, labs_path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(errors["name"], json!(["No spaces allowed"]));
    let body = json!({"name": "lab1", "infrastructure_provider": cloud["uuid"]});
    let (status, created) =
        answers.send(app.call(Method::POST, labs_path).token(&labs).json(body), Method::POST, labs_path).await;
    assert_eq!(status, StatusCode::CREATED);
    let lab_path = format!("{labs_path}{}/", created["uuid"].as_str().expect("uuid"));
    let call = app.call(Method::PATCH, &lab_path).token(&labs).json(json!({"name": "lab2"}));
    assert_eq!(answers.send(call, Method::PATCH, lab).await.0, StatusCode::OK);
    for (query, status) in [("?ordering=name&search=cloud", StatusCode::OK), ("?page=9", StatusCode::NOT_FOUND)] {
        let call = app.call(Method::GET, &format!("{labs_path}{query}")).token(&labs);
        assert_eq!(answers.send(call, Method::GET, labs_path).await.0, status, "{query}");
    }
    let call = app.call(Method::DELETE, &cloud_path).token(&labs);
    assert_eq!(answers.send(call, Method::DELETE, provider).await, (StatusCode::NO_CONTENT, Value::Null));
    let call = app.call(Method::GET, &cloud_path).token(&labs);
    assert_eq!(answers.send(call, Method::GET, provider).await.0, StatusCode::NOT_FOUND, "soft-deleted");
    let call = app.call(Method::GET, &lab_path).token(&labs);
    let (status, shown) = answers.send(call, Method::GET, lab).await;
    assert_eq!((status, &shown["infrastructure_provider"]["name"]), (StatusCode::OK, &json!("Cloud AP-HP")));

    // Export result stats.
    let (stats, stat) = ("/exports/export-stats/", "/exports/export-stats/{uuid}/");
    let body = json!({"name": "rows", "type": "Integer", "value": "1200", "export": uuid});
    let (status, created) =
        answers.send(app.call(Method::POST, stats).token(&alice).json(body), Method::POST, stats).await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({"type": "Float", "value": null, "export": 3});
    let call = app.call(Method::POST, stats).token(&alice).json(body);
    let errors = json!({
        "name": ["This field is required."],
        "type": ["\"Float\" is not a valid choice."],
        "value": ["This field may not be null."],
        "export": ["Invalid pk \"3\" - object does not exist."],
    });
    assert_eq!(answers.send(call, Method::POST, stats).await, (StatusCode::BAD_REQUEST, errors));
    let call = app.call(Method::GET, &format!("{stats}?type=Integer&ordering=-value&export={uuid}")).token(&alice);
    assert_eq!(answers.send(call, Method::GET, stats).await.0, StatusCode::OK);
    let call = app.call(Method::GET, &format!("{stats}?export=nope")).token(&alice);
    assert_eq!(answers.send(call, Method::GET, stats).await.0, StatusCode::BAD_REQUEST);
    let stat_path = format!("{stats}{}/", created["uuid"].as_str().expect("uuid"));
    let call = app.call(Method::PATCH, &stat_path).token(&alice).json(json!({"value": "1300", "export": null}));
    assert_eq!(answers.send(call, Method::PATCH, stat).await.0, StatusCode::OK);
    let call = app.call(Method::GET, &stat_path).token(&alice);
    assert_eq!(answers.send(call, Method::GET, stat).await.0, StatusCode::OK);
    let call = app.call(Method::GET, &stat_path).token(&labs);
    assert_eq!(answers.send(call, Method::GET, stat).await.0, StatusCode::OK, "managers see every stat");

    match answers.check(&document(&app).await) {
        Ok(report) => eprintln!("{report}"),
        Err(report) => panic!("answers differ from /schema:\n{report}"),
    }
}
