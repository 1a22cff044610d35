//! The OpenAPI document (issue 14): valid OpenAPI 3.1, one operation per route of the inventory,
//! and the operations described by their types answer what the document says they answer.
use std::collections::BTreeSet;

use http::{Method, StatusCode};
use integration_tests::{
    contract::{python_check, Answers},
    TestApp, ADMIN,
};
use serde_json::{json, Value};

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
