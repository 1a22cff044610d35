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
