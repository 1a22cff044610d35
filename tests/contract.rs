//! The OpenAPI document (issue 14): valid OpenAPI 3.1, one operation per route of the inventory,
//! and the operations described by their types answer what the document says they answer.
use std::collections::BTreeSet;

use c360::domain::cohort::JobStatus;
use http::{Method, StatusCode};
use integration_tests::{
    cohort::query,
    contract::{python_check, Answers},
    exports::{app_with, csv_request, finished_cohort, user, QE},
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
    requests_answer_what_the_document_says(&app, &token, created["uuid"].as_str().expect("uuid"), &mut answers).await;
    let call = app.call(Method::DELETE, &path).token(&token);
    assert_eq!(answers.send(call, Method::DELETE, one).await.0, StatusCode::NO_CONTENT);
    let call = app.call(Method::GET, &path).token(&token);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::NOT_FOUND);

    match answers.check(&document(&app).await) {
        Ok(report) => eprintln!("{report}"),
        Err(report) => panic!("answers differ from /schema:\n{report}"),
    }
}

/// `/cohort/requests/` and its routes under a folder.
async fn requests_answer_what_the_document_says(app: &TestApp, token: &str, folder: &str, answers: &mut Answers) {
    let (requests, one) = ("/cohort/requests/", "/cohort/requests/{uuid}/");
    let (nested, nested_one) =
        ("/cohort/folders/{parent_folder}/requests/", "/cohort/folders/{parent_folder}/requests/{uuid}/");
    let call = app.call(Method::POST, requests).token(token).json(json!({"name": "r", "parent_folder": folder}));
    let (status, created) = answers.send(call, Method::POST, requests).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created.get("updated_at").is_none(), "the POST answer has no updated_at: {created}");
    let body = json!({"name": "x".repeat(256), "favorite": "maybe", "parent_folder_id": uuid::Uuid::new_v4()});
    let call = app.call(Method::POST, requests).token(token).json(body);
    let (status, errors) = answers.send(call, Method::POST, requests).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(errors.as_object().map(|e| e.len()), Some(3), "{errors}");
    let call =
        app.call(Method::POST, &format!("/cohort/folders/{folder}/requests/")).token(token).json(json!({"name": "n"}));
    assert_eq!(answers.send(call, Method::POST, nested).await.0, StatusCode::CREATED);
    for query in ["", "?ordering=name", "?favorite=false&search=r", "?parent_folder=nope"] {
        let call = app.call(Method::GET, &format!("{requests}{query}")).token(token);
        answers.send(call, Method::GET, requests).await;
    }
    let call = app.call(Method::GET, &format!("/cohort/folders/{folder}/requests/?limit=1")).token(token);
    assert_eq!(answers.send(call, Method::GET, nested).await.0, StatusCode::OK);
    let uuid = created["uuid"].as_str().expect("uuid");
    let call = app.call(Method::GET, &format!("/cohort/folders/{folder}/requests/{uuid}/")).token(token);
    assert_eq!(answers.send(call, Method::GET, nested_one).await.0, StatusCode::OK);
    let call = app.call(Method::PATCH, &format!("{requests}{uuid}/")).token(token).json(json!({"favorite": true}));
    let (status, patched) = answers.send(call, Method::PATCH, one).await;
    assert_eq!((status, &patched["favorite"]), (StatusCode::OK, &json!(true)));
    assert!(patched.get("updated_at").is_some());
    let call = app.call(Method::PATCH, &format!("{requests}{uuid}/")).token(token).json(json!({"parent_folder": 3}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::DELETE, &format!("{requests}{uuid},nope/")).token(token);
    assert_eq!(answers.send(call, Method::DELETE, one).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::DELETE, &format!("/cohort/folders/{folder}/requests/{uuid}/")).token(token);
    assert_eq!(answers.send(call, Method::DELETE, nested_one).await.0, StatusCode::NO_CONTENT);
}

/// The cohort app's flow, each answer checked: a version, its count and callback, a cohort and its
/// callback and rights, a sample, saved filters, a refresh schedule, a feasibility study, a share.
#[tokio::test]
async fn the_cohort_flow_answers_what_the_document_says() {
    let app = app_with(&[]).await;
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await; // cohort-rights needs an access
    let bob = user(&app, "bob", None, ROOT_PERIMETER).await;
    let mut a = Answers::default();
    let call = |method: Method, path: &str, body: Option<Value>, token: Option<&str>| {
        let mut call = app.call(method, path);
        if let Some(token) = token {
            call = call.token(token);
        }
        match body {
            Some(body) => call.json(body),
            None => call,
        }
    };
    let me = Some(alice.as_str());

    let folder = call(Method::POST, "/cohort/folders/", Some(json!({"name": "f"})), me).send().await.1;
    let body = json!({"name": "r", "parent_folder": folder["uuid"]});
    let request = call(Method::POST, "/cohort/requests/", Some(body), me).send().await.1;
    let r = request["uuid"].as_str().expect("request").to_owned();

    let snapshots = "/cohort/request-query-snapshots/";
    let body = json!({"request": r, "serialized_query": query(json!(["3"]))});
    let (status, snapshot) =
        a.send(call(Method::POST, snapshots, Some(body.clone()), me), Method::POST, snapshots).await;
    assert_eq!(status, StatusCode::CREATED, "{snapshot}");
    let s = snapshot["uuid"].as_str().expect("snapshot").to_owned();
    let (status, _) = a.send(call(Method::POST, snapshots, Some(body), me), Method::POST, snapshots).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a second first version");
    let next = "/cohort/request-query-snapshots/{previous_snapshot}/next-snapshots/";
    let body = json!({"serialized_query": query(json!(["3", "4"])), "name": "v2"});
    let path = format!("{snapshots}{s}/next-snapshots/");
    assert_eq!(a.send(call(Method::POST, &path, Some(body), me), Method::POST, next).await.0, StatusCode::CREATED);
    assert_eq!(a.send(call(Method::GET, &path, None, me), Method::GET, next).await.0, StatusCode::OK);
    let of_request = "/cohort/requests/{request_id}/query-snapshots/";
    let path = format!("/cohort/requests/{r}/query-snapshots/?ordering=-version");
    assert_eq!(a.send(call(Method::GET, &path, None, me), Method::GET, of_request).await.0, StatusCode::OK);
    let one = "/cohort/request-query-snapshots/{uuid}/";
    let path = format!("{snapshots}{s}/");
    let body = json!({"name": "v1", "perimeters_ids": "3"});
    assert_eq!(a.send(call(Method::PATCH, &path, Some(body), me), Method::PATCH, one).await.0, StatusCode::BAD_REQUEST);
    let body = json!({"name": "v1"});
    assert_eq!(a.send(call(Method::PATCH, &path, Some(body), me), Method::PATCH, one).await.0, StatusCode::OK);
    let share = "/cohort/request-query-snapshots/{uuid}/share/";
    let path = format!("{snapshots}{s}/share/");
    let body = json!({"recipients": "bob", "name": "shared"});
    assert_eq!(a.send(call(Method::POST, &path, Some(body), me), Method::POST, share).await.0, StatusCode::CREATED);
    let body = json!({"recipients": "nobody-here"});
    assert_eq!(a.send(call(Method::POST, &path, Some(body), me), Method::POST, share).await.0, StatusCode::BAD_REQUEST);

    let counts = "/cohort/dated-measures/";
    let body = json!({"request_query_snapshot_id": s, "stageDetails": 3});
    let (status, count) = a.send(call(Method::POST, counts, Some(body), me), Method::POST, counts).await;
    assert_eq!(status, StatusCode::CREATED, "{count}");
    let m = count["uuid"].as_str().expect("count").to_owned();
    let callback = app
        .call(Method::PATCH, &format!("{counts}{m}/"))
        .header("authorization", QE)
        .json(json!({"request_job_status": "FINISHED", "count": "42"}));
    assert_eq!(a.send(callback, Method::PATCH, "/cohort/dated-measures/{uuid}/").await.0, StatusCode::OK);
    let path = format!("{counts}?request_query_snapshot={s}&request_job_status=finished,failed");
    assert_eq!(a.send(call(Method::GET, &path, None, me), Method::GET, counts).await.0, StatusCode::OK);

    let cohorts = "/cohort/cohorts/";
    let body = json!({"name": "c", "request_query_snapshot_id": s, "dated_measure_id": m, "global_estimate": true});
    let (status, cohort) = a.send(call(Method::POST, cohorts, Some(body), me), Method::POST, cohorts).await;
    assert_eq!(status, StatusCode::CREATED, "{cohort}");
    let c = cohort["uuid"].as_str().expect("cohort").to_owned();
    let done = json!({"request_job_status": "FINISHED", "group.id": "g-contract", "group.count": "42"});
    let callback = app.call(Method::PATCH, &format!("{cohorts}{c}/")).header("authorization", QE).json(done);
    assert_eq!(a.send(callback, Method::PATCH, "/cohort/cohorts/{uuid}/").await.0, StatusCode::OK);
    let body = json!({"name": "sample", "parent_cohort": c, "sampling_ratio": 0.5});
    assert_eq!(a.send(call(Method::POST, cohorts, Some(body), me), Method::POST, cohorts).await.0, StatusCode::CREATED);
    let body = json!({"name": "sample", "parent_cohort": c, "sampling_ratio": 2});
    let invalid = a.send(call(Method::POST, cohorts, Some(body), me), Method::POST, cohorts).await;
    assert_eq!(invalid.0, StatusCode::BAD_REQUEST);
    for query in ["", "?ordering=name&is_sample=false", "?min_result_size=x"] {
        a.send(call(Method::GET, &format!("{cohorts}{query}"), None, me), Method::GET, cohorts).await;
    }
    let rights = "/cohort/cohorts/cohort-rights/";
    let path = format!("{rights}?group_id=g-contract");
    assert_eq!(a.send(call(Method::GET, &path, None, me), Method::GET, rights).await.0, StatusCode::OK);
    let path = format!("{rights}?group_id=nothing");
    assert_eq!(a.send(call(Method::GET, &path, None, me), Method::GET, rights).await.0, StatusCode::NOT_FOUND);
    let active = "/cohort/cohorts/jobs/active/";
    assert_eq!(a.send(call(Method::GET, active, None, None), Method::GET, active).await.0, StatusCode::OK);
    let path = format!("{cohorts}{c}/");
    let body = json!({"owner": "bob"});
    let refused = a.send(call(Method::PATCH, &path, Some(body), me), Method::PATCH, "/cohort/cohorts/{uuid}/").await;
    assert_eq!(refused.0, StatusCode::BAD_REQUEST);

    let filters = "/cohort/fhir-filters/";
    let body = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "mine", "filter": "gender=f"});
    let (status, filter) = a.send(call(Method::POST, filters, Some(body.clone()), me), Method::POST, filters).await;
    assert_eq!(status, StatusCode::CREATED, "{filter}");
    let duplicate = a.send(call(Method::POST, filters, Some(body), me), Method::POST, filters).await;
    assert_eq!(duplicate.0, StatusCode::BAD_REQUEST);
    let body = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "x", "filter": ""});
    assert_eq!(
        a.send(call(Method::POST, filters, Some(body), me), Method::POST, filters).await.0,
        StatusCode::BAD_REQUEST
    );
    let path = format!("{filters}?name=MI&fhir_resource=pat");
    assert_eq!(a.send(call(Method::GET, &path, None, me), Method::GET, filters).await.0, StatusCode::OK);
    let multiple = "/cohort/fhir-filters/delete_multiple/";
    let body = json!({"uuids": [filter["uuid"]]});
    let deleted = a.send(call(Method::DELETE, multiple, Some(body), me), Method::DELETE, multiple).await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT);

    let schedules = "/cohort/refresh-schedules/";
    let body = json!({"request_snapshot_id": s, "refresh_time": "7:05", "refresh_frequency": "daily"});
    let (status, schedule) =
        a.send(call(Method::POST, schedules, Some(body.clone()), me), Method::POST, schedules).await;
    assert_eq!((status, &schedule["refresh_time"]), (StatusCode::CREATED, &json!("07:05:00")), "{schedule}");
    let again = a.send(call(Method::POST, schedules, Some(body), me), Method::POST, schedules).await;
    assert_eq!(again.0, StatusCode::BAD_REQUEST);
    let path = format!("{schedules}{}/", schedule["uuid"].as_str().expect("schedule"));
    let body = json!({"refresh_frequency": "hourly", "refresh_time": 7});
    let refused =
        a.send(call(Method::PATCH, &path, Some(body), me), Method::PATCH, "/cohort/refresh-schedules/{uuid}/").await;
    assert_eq!(refused.0, StatusCode::BAD_REQUEST);
    assert_eq!(a.send(call(Method::GET, schedules, None, me), Method::GET, schedules).await.0, StatusCode::OK);

    let studies = "/cohort/feasibility-studies/";
    let body = json!({"request_query_snapshot_id": s, "display_total_count": true});
    let (status, study) = a.send(call(Method::POST, studies, Some(body), me), Method::POST, studies).await;
    assert_eq!(status, StatusCode::CREATED, "{study}");
    let path = format!("{studies}{}/download/", study["uuid"].as_str().expect("study"));
    let template = "/cohort/feasibility-studies/{uuid}/download/";
    assert_eq!(a.send(call(Method::GET, &path, None, me), Method::GET, template).await.0, StatusCode::NOT_FOUND);
    assert_eq!(a.send(call(Method::GET, studies, None, me), Method::GET, studies).await.0, StatusCode::OK);

    assert_eq!(
        a.send(call(Method::GET, &format!("{snapshots}{s}/"), None, Some(&bob)), Method::GET, one).await.0,
        StatusCode::NOT_FOUND
    );
    match a.check(&document(&app).await) {
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

/// Checks the recorded answers against the document.
async fn conform(app: &TestApp, answers: &Answers) {
    match answers.check(&document(app).await) {
        Ok(report) => eprintln!("{report}"),
        Err(report) => panic!("answers differ from /schema:\n{report}"),
    }
}

/// platform-api: maintenances, release notes, web contents, request logs, the cache, the
/// documentation and the root.
#[tokio::test]
async fn platform_operations_answer_what_the_document_says() {
    let app = TestApp::new().await;
    let (token, _) = app.login(ADMIN).await;
    let mut answers = Answers::default();
    maintenances_answer_what_the_document_says(&app, &token, &mut answers).await;
    release_notes_answer_what_the_document_says(&app, &token, &mut answers).await;
    contents_answer_what_the_document_says(&app, &token, &mut answers).await;

    let (logs, log) = ("/logs/", "/logs/{id}/");
    let (status, listed) = answers.send(app.call(Method::GET, logs).token(&token), Method::GET, logs).await;
    assert_eq!(status, StatusCode::OK);
    for (query, expected) in [
        ("?ordering=requested_at&path_contains=maint&method=post,patch", StatusCode::OK),
        ("?response=x", StatusCode::OK),
        ("?status_code=abc", StatusCode::BAD_REQUEST),
        ("?requested_at_after=yesterday", StatusCode::BAD_REQUEST),
        ("?page=99", StatusCode::NOT_FOUND),
    ] {
        let call = app.call(Method::GET, &format!("{logs}{query}")).token(&token);
        assert_eq!(answers.send(call, Method::GET, logs).await.0, expected, "{query}");
    }
    assert_eq!(answers.send(app.call(Method::GET, logs), Method::GET, logs).await.0, StatusCode::FORBIDDEN);
    if let Some(id) = listed["results"].get(0).and_then(|l| l["id"].as_i64()) {
        let call = app.call(Method::GET, &format!("{logs}{id}/")).token(&token);
        assert_eq!(answers.send(call, Method::GET, log).await.0, StatusCode::OK);
    }
    let call = app.call(Method::GET, "/logs/1/").token(&token);
    assert_eq!(answers.send(call, Method::GET, log).await.0, StatusCode::NOT_FOUND);

    for cache in ["/cache", "/cache/"] {
        let (status, sizes) = answers.send(app.call(Method::GET, cache).token(&token), Method::GET, cache).await;
        assert_eq!(status, StatusCode::OK);
        assert!(sizes["roles"].is_string(), "{sizes}");
        let call = app.call(Method::GET, &format!("{cache}?keys_only=1")).token(&token);
        assert_eq!(answers.send(call, Method::GET, cache).await, (StatusCode::OK, json!(["roles"])));
        let call = app.call(Method::DELETE, cache).token(&token);
        assert_eq!(answers.send(call, Method::DELETE, cache).await.0, StatusCode::NO_CONTENT);
        assert_eq!(answers.send(app.call(Method::GET, cache), Method::GET, cache).await.0, StatusCode::FORBIDDEN);
    }

    for path in ["/schema", "/schema/", "/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        assert_eq!(answers.send(app.call(Method::GET, path), Method::GET, path).await.0, StatusCode::OK, "{path}");
    }
    for method in [Method::GET, Method::POST, Method::DELETE] {
        assert_eq!(answers.send(app.call(method.clone(), "/"), method, "/").await.0, StatusCode::NOT_FOUND);
    }
    conform(&app, &answers).await;
}

async fn maintenances_answer_what_the_document_says(app: &TestApp, token: &str, answers: &mut Answers) {
    let (phases, one, next) = ("/maintenances/", "/maintenances/{id}/", "/maintenances/next/");
    let (status, nothing) = answers.send(app.call(Method::GET, next), Method::GET, next).await;
    assert_eq!((status, nothing), (StatusCode::OK, json!({})));
    let (status, empty) = answers.send(app.call(Method::GET, phases), Method::GET, phases).await;
    assert_eq!((status, &empty["count"]), (StatusCode::OK, &json!(0)));
    let phase =
        json!({"subject": "upgrade", "start_datetime": "2099-01-01T00:00:00Z", "end_datetime": "2099-01-02T00:00:00Z"});
    let call = app.call(Method::POST, phases).token(token).json(phase.clone());
    let (status, created) = answers.send(call, Method::POST, phases).await;
    assert_eq!(status, StatusCode::CREATED);
    let call = app.call(Method::POST, phases).token(token).json(json!({"subject": 3, "type": "total"}));
    let (status, errors) = answers.send(call, Method::POST, phases).await;
    assert_eq!((status, &errors["type"]), (StatusCode::BAD_REQUEST, &json!(["\"total\" is not a valid choice."])));
    assert_eq!(
        answers.send(app.call(Method::POST, phases).json(phase), Method::POST, phases).await.0,
        StatusCode::FORBIDDEN
    );
    for (query, expected) in [
        ("?ordering=-start_datetime&search=upg&subject=upgrade", StatusCode::OK),
        ("?min_start_datetime=2098-01-01T00:00:00Z&max_end_datetime=2100-01-01T00:00:00Z&page=last", StatusCode::OK),
        ("?start_datetime=soon", StatusCode::BAD_REQUEST),
        ("?ordering=subject", StatusCode::BAD_REQUEST),
        ("?page=2", StatusCode::NOT_FOUND),
    ] {
        let call = app.call(Method::GET, &format!("{phases}{query}"));
        assert_eq!(answers.send(call, Method::GET, phases).await.0, expected, "{query}");
    }
    let (status, upcoming) = answers.send(app.call(Method::GET, next), Method::GET, next).await;
    assert_eq!((status, &upcoming["id"]), (StatusCode::OK, &created["id"]));
    let path = format!("{phases}{}/", created["id"]);
    assert_eq!(answers.send(app.call(Method::GET, &path), Method::GET, one).await.0, StatusCode::OK);
    let call = app.call(Method::PATCH, &path).token(token).json(json!({"message": "new schema", "type": "full"}));
    let (status, patched) = answers.send(call, Method::PATCH, one).await;
    assert_eq!((status, &patched["type"]), (StatusCode::OK, &json!("full")));
    let call = app.call(Method::PATCH, &path).token(token).json(json!({"start_datetime": "2100-01-01T00:00:00Z"}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::DELETE, &path).token(token);
    assert_eq!(answers.send(call, Method::DELETE, one).await.0, StatusCode::NO_CONTENT);
    assert_eq!(answers.send(app.call(Method::GET, &path), Method::GET, one).await.0, StatusCode::NOT_FOUND);
    let call = app.call(Method::DELETE, &path).token(token);
    assert_eq!(answers.send(call, Method::DELETE, one).await.0, StatusCode::NOT_FOUND);
}

async fn release_notes_answer_what_the_document_says(app: &TestApp, token: &str, answers: &mut Answers) {
    let (notes, one) = ("/release-notes/", "/release-notes/{id}/");
    let (status, empty) = answers.send(app.call(Method::GET, notes).token(token), Method::GET, notes).await;
    assert_eq!((status, &empty["results"]), (StatusCode::OK, &json!([])));
    let note = json!({"title": "v2", "message": ["typed answers"], "author": null});
    let call = app.call(Method::POST, notes).token(token).json(note);
    let (status, created) = answers.send(call, Method::POST, notes).await;
    assert_eq!(status, StatusCode::CREATED);
    let call = app.call(Method::POST, notes).token(token).json(json!({"title": "", "message": "one"}));
    assert_eq!(answers.send(call, Method::POST, notes).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(answers.send(app.call(Method::GET, notes), Method::GET, notes).await.0, StatusCode::FORBIDDEN);
    let call = app.call(Method::GET, &format!("{notes}?search=typed")).token(token);
    let (status, found) = answers.send(call, Method::GET, notes).await;
    assert_eq!((status, &found["count"]), (StatusCode::OK, &json!(1)));
    let path = format!("{notes}{}/", created["id"]);
    assert_eq!(answers.send(app.call(Method::GET, &path).token(token), Method::GET, one).await.0, StatusCode::OK);
    let call = app.call(Method::PATCH, &path).token(token).json(json!({"author": "me"}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::OK);
    let call = app.call(Method::PATCH, &path).token(token).json(json!({"message": [1]}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::GET, "/release-notes/nope/").token(token);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::NOT_FOUND);
}

async fn contents_answer_what_the_document_says(app: &TestApp, token: &str, answers: &mut Answers) {
    let (contents, one, types) =
        ("/webcontent/contents/", "/webcontent/contents/{id}/", "/webcontent/contents/content_types/");
    let (status, all) = answers.send(app.call(Method::GET, types), Method::GET, types).await;
    assert_eq!((status, &all["BANNER_INFO"]["label"]), (StatusCode::OK, &json!("Bannière d'information")));
    let (status, empty) = answers.send(app.call(Method::GET, contents), Method::GET, contents).await;
    assert_eq!((status, &empty["results"]), (StatusCode::OK, &json!([])));
    let content = json!({"title": "t", "content": "c", "content_type": "BANNER_INFO", "metadata": {"order": 1}});
    let call = app.call(Method::POST, contents).token(token).json(content);
    let (status, created) = answers.send(call, Method::POST, contents).await;
    assert_eq!(status, StatusCode::CREATED);
    let call = app.call(Method::POST, contents).token(token).json(json!({"content_type": "POPUP", "metadata": 1}));
    assert_eq!(answers.send(call, Method::POST, contents).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::POST, contents).json(json!({}));
    assert_eq!(answers.send(call, Method::POST, contents).await.0, StatusCode::FORBIDDEN);
    for (query, expected) in [
        ("?content_type=BANNER_INFO,RELEASE_NOTE&ordering=-title&search=t", StatusCode::OK),
        ("?page_source=home", StatusCode::OK),
        ("?content_type=POPUP", StatusCode::BAD_REQUEST),
        ("?page=3", StatusCode::NOT_FOUND),
    ] {
        let call = app.call(Method::GET, &format!("{contents}{query}"));
        assert_eq!(answers.send(call, Method::GET, contents).await.0, expected, "{query}");
    }
    let path = format!("{contents}{}/", created["id"]);
    assert_eq!(answers.send(app.call(Method::GET, &path), Method::GET, one).await.0, StatusCode::OK);
    let call = app.call(Method::PATCH, &path).token(token).json(json!({"page": "home", "metadata": null}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::OK);
    let call = app.call(Method::PATCH, &path).token(token).json(json!({"title": null}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::DELETE, &path).token(token);
    assert_eq!(answers.send(call, Method::DELETE, one).await.0, StatusCode::NO_CONTENT);
    assert_eq!(answers.send(app.call(Method::GET, &path), Method::GET, one).await.0, StatusCode::NOT_FOUND);
}

/// users-api: the directory, creation, edition and the username check (against a fake identity
/// server).
#[tokio::test]
async fn users_operations_answer_what_the_document_says() {
    let people = fakes::identity::parse_people("5000005:pw:Louis:PASTEUR:louis@x.fr");
    let (url, _server) = fakes::spawn(fakes::identity::router("k", people), 0).await.expect("identity server");
    let app = TestApp::with_settings(&[("IDENTITY_SERVER_URL", &url), ("IDENTITY_SERVER_AUTH_TOKEN", "k")]).await;
    let (token, _) = app.login(ADMIN).await;
    let mut answers = Answers::default();
    let (users, one, check) = ("/users/", "/users/{username}/", "/users/{username}/check/");

    let body = json!({"username": "4000004", "firstname": "Ada", "lastname": "Lovelace", "email": "ada@x.fr", "password": "s3cret!"});
    let (status, created) =
        answers.send(app.call(Method::POST, users).token(&token).json(body), Method::POST, users).await;
    assert_eq!((status, &created["username"]), (StatusCode::CREATED, &json!("4000004")));
    let invalid = json!({"username": "", "firstname": "R2-D2!", "email": "not-an-email", "password": 3});
    let (status, errors) =
        answers.send(app.call(Method::POST, users).token(&token).json(invalid), Method::POST, users).await;
    assert_eq!((status, errors.as_object().map(|e| e.len())), (StatusCode::BAD_REQUEST, Some(5)), "{errors}");
    assert_eq!(
        answers.send(app.call(Method::POST, users).json(json!({})), Method::POST, users).await.0,
        StatusCode::FORBIDDEN
    );

    for (query, expected) in [
        ("", StatusCode::OK),
        ("?ordering=-lastname,created_by&search=ada&manual_only=true&with_access=false", StatusCode::OK),
        ("?username=nobody-has-this-name", StatusCode::OK),
        ("?firstname=ad&lastname=love&email=x.fr", StatusCode::OK),
        ("?manual_only=yes", StatusCode::BAD_REQUEST),
        ("?ordering=password", StatusCode::BAD_REQUEST),
        ("?page=9", StatusCode::NOT_FOUND),
    ] {
        let call = app.call(Method::GET, &format!("{users}{query}")).token(&token);
        assert_eq!(answers.send(call, Method::GET, users).await.0, expected, "{query}");
    }
    assert_eq!(answers.send(app.call(Method::GET, users), Method::GET, users).await.0, StatusCode::FORBIDDEN);

    let call = app.call(Method::GET, "/users/4000004/").token(&token);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::OK);
    let call = app.call(Method::GET, "/users/9999999/").token(&token);
    assert_eq!(answers.send(call, Method::GET, one).await.0, StatusCode::NOT_FOUND);
    let call =
        app.call(Method::PATCH, "/users/4000004/").token(&token).json(json!({"firstname": "Augusta", "email": null}));
    let (status, patched) = answers.send(call, Method::PATCH, one).await;
    assert_eq!((status, &patched["firstname"]), (StatusCode::OK, &json!("Augusta")));
    let call = app.call(Method::PATCH, "/users/4000004/").token(&token).json(json!({"email": "nope", "lastname": " "}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::PATCH, "/users/9999999/").token(&token).json(json!({}));
    assert_eq!(answers.send(call, Method::PATCH, one).await.0, StatusCode::NOT_FOUND);

    for (username, expected) in [
        ("4000004", StatusCode::OK),
        ("5000005", StatusCode::OK),
        ("6000006", StatusCode::NOT_FOUND),
        ("abc", StatusCode::BAD_REQUEST),
    ] {
        let call = app.call(Method::GET, &format!("/users/{username}/check/")).token(&token);
        assert_eq!(answers.send(call, Method::GET, check).await.0, expected, "{username}");
    }
    conform(&app, &answers).await;
}

/// auth-api: login (JSON and url-encoded), refresh with rotation, logout; their refusals.
#[tokio::test]
async fn auth_operations_answer_what_the_document_says() {
    let app = TestApp::new().await;
    let mut answers = Answers::default();
    let (login, refresh, logout) = ("/auth/login/", "/auth/refresh/", "/auth/logout/");

    let credentials = json!({"username": ADMIN, "password": integration_tests::PASSWORD});
    let (status, session) = answers.send(app.call(Method::POST, login).json(credentials), Method::POST, login).await;
    assert_eq!(status, StatusCode::OK);
    let form = format!("username={ADMIN}&password={}", integration_tests::PASSWORD.replace(' ', "+"));
    let call = app.call(Method::POST, login).raw("application/x-www-form-urlencoded", form);
    assert_eq!(answers.send(call, Method::POST, login).await.0, StatusCode::OK);
    let call = app.call(Method::POST, login).json(json!({"username": ADMIN, "password": "wrong"}));
    assert_eq!(answers.send(call, Method::POST, login).await.0, StatusCode::UNAUTHORIZED);
    let call = app.call(Method::POST, login).json(json!({"username": 3}));
    let (status, errors) = answers.send(call, Method::POST, login).await;
    assert_eq!(errors.as_object().map(|e| e.len()), Some(2), "{errors}");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let call = app.call(Method::POST, login).header("authorizationMethod", "SAML").json(json!({}));
    assert_eq!(answers.send(call, Method::POST, login).await.0, StatusCode::BAD_REQUEST);
    let call = app.call(Method::POST, login).header("authorizationMethod", "OIDC").json(json!({"auth_code": "c"}));
    assert_eq!(answers.send(call, Method::POST, login).await.0, StatusCode::UNAUTHORIZED);

    let access = session["access_token"].as_str().expect("access token");
    let token = session["refresh_token"].clone();
    let call = app.call(Method::POST, refresh).token(access).json(json!({"refresh_token": token}));
    let (status, rotated) = answers.send(call, Method::POST, refresh).await;
    assert_eq!(status, StatusCode::OK);
    for body in [json!({}), json!({"refresh_token": token}), json!({"refresh_token": "garbage"})] {
        let call = app.call(Method::POST, refresh).token(access).json(body);
        assert_eq!(answers.send(call, Method::POST, refresh).await.0, StatusCode::BAD_REQUEST);
    }
    let call = app.call(Method::POST, refresh).json(json!({"refresh_token": rotated["refresh_token"]}));
    assert_eq!(answers.send(call, Method::POST, refresh).await.0, StatusCode::FORBIDDEN);

    let call = app.call(Method::POST, logout).token(access).json(json!({"refresh_token": rotated["refresh_token"]}));
    assert_eq!(answers.send(call, Method::POST, logout).await, (StatusCode::OK, json!({})));
    let call = app.call(Method::POST, logout).token(access).json(json!({}));
    assert_eq!(answers.send(call, Method::POST, logout).await.0, StatusCode::OK);
    assert_eq!(
        answers.send(app.call(Method::POST, logout).json(json!({})), Method::POST, logout).await.0,
        StatusCode::FORBIDDEN
    );
    conform(&app, &answers).await;
}
