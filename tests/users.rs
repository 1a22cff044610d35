//! `/users/` (spec §8).
use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN};
use serde_json::json;

async fn app_with_users() -> (TestApp, String) {
    let app = TestApp::new().await;
    for (username, role) in [("2000001", Some(4)), ("2000002", None), ("3000003", Some(5))] {
        app.account(username, role).await;
    }
    let (token, _) = app.login(ADMIN).await;
    (app, token)
}

#[tokio::test]
async fn list_is_page_paginated_with_search_filters_and_ordering() {
    let (app, token) = app_with_users().await;
    let (status, body) = app.call(Method::GET, "/users/?ordering=-username").token(&token).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 4);
    let names: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "3000003", "2000002", "2000001"]);
    assert_eq!(body["next"], serde_json::Value::Null);
    assert_eq!(body["results"][0]["display_name"], "Test Useradmin (admin)");
    assert!(body["results"][0].get("password").is_none());

    let (_, body) = app.call(Method::GET, "/users/?search=user2000,test").token(&token).send().await;
    assert_eq!(body["count"], 2);
    let (_, body) = app.call(Method::GET, "/users/?email=3000003@").token(&token).send().await;
    assert_eq!(body["results"][0]["username"], "3000003");
    let (_, body) =
        app.call(Method::GET, "/users/?manual_only=true&with_access=true&ordering=lastname").token(&token).send().await;
    let names: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["2000001", "3000003", "admin"]);

    let (status, body) = app.call(Method::GET, "/users/?ordering=password").token(&token).send().await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"ordering": ["Select a valid choice. password is not one of the available choices."]})
        )
    );
    let (status, body) = app.call(Method::GET, "/users/?page=9").token(&token).send().await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"detail": "Invalid page."})));
    let (status, _) = app.call(Method::GET, "/users/?manual_only=yes").token(&token).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn any_authenticated_user_reads_users_but_only_managers_write() {
    let (app, _) = app_with_users().await;
    let (reader, _) = app.login("2000001").await;
    let (status, body) = app.call(Method::GET, "/users/2000002/").token(&reader).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["username"], "2000002");
    let (status, body) = app.call(Method::GET, "/users/nobody/").token(&reader).send().await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"detail": "No User matches the given query."})));

    let new_user = json!({"username": "4000004", "firstname": "Ada", "lastname": "Lovelace", "email": "ada@x.fr"});
    let (status, body) = app.call(Method::POST, "/users/").token(&reader).json(new_user.clone()).send().await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"detail": "You do not have permission to perform this action."}))
    );
    let (status, _) =
        app.call(Method::PATCH, "/users/2000002/").token(&reader).json(json!({"firstname": "X"})).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn create_and_edit_a_user() {
    let (app, token) = app_with_users().await;
    let body = json!({"username": "4000004", "firstname": "Zoë", "lastname": "D'Arc", "email": "zoe@x.fr", "password": "s3cret!"});
    let (status, created) = app.call(Method::POST, "/users/").token(&token).json(body.clone()).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["created_by"], "Test Useradmin (admin)");
    assert_eq!(created["display_name"], "Zoë D'Arc (4000004)");
    let stored = app.state.store.user("4000004").await.unwrap().unwrap();
    assert!(stored.password.unwrap().starts_with("$argon2id$"));
    let (status, _) =
        app.call(Method::POST, "/auth/login/").json(json!({"username": "4000004", "password": "s3cret!"})).send().await;
    assert_eq!(status, StatusCode::OK);

    let (status, errors) = app.call(Method::POST, "/users/").token(&token).json(body).send().await;
    assert_eq!(
        (status, errors),
        (StatusCode::BAD_REQUEST, json!({"username": ["user with this username already exists."]}))
    );
    let clash = json!({"username": "4000005", "firstname": "A", "lastname": "B", "email": "ZOE@x.fr"});
    let (status, errors) = app.call(Method::POST, "/users/").token(&token).json(clash).send().await;
    assert_eq!((status, errors), (StatusCode::BAD_REQUEST, json!({"email": ["user with this email already exists."]})));
    let invalid = json!({"username": "4000006", "firstname": "R2-D2!", "email": "not-an-email"});
    let (status, errors) = app.call(Method::POST, "/users/").token(&token).json(invalid).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(errors["lastname"], json!(["This field is required."]));
    assert_eq!(errors["email"], json!(["Enter a valid email address."]));
    assert!(errors["firstname"].is_array());

    let (status, edited) = app
        .call(Method::PATCH, "/users/4000004/")
        .token(&token)
        .json(json!({"lastname": "Darc", "email": "zd@x.fr", "uuid": ""}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!((edited["lastname"].as_str(), edited["email"].as_str()), (Some("Darc"), Some("zd@x.fr")));
    assert_eq!(edited["updated_by"], "Test Useradmin (admin)");
    // The old e-mail is free again, the new one is taken.
    let reuse = json!({"username": "4000007", "firstname": "A", "lastname": "B", "email": "zoe@x.fr"});
    assert_eq!(app.call(Method::POST, "/users/").token(&token).json(reuse).send().await.0, StatusCode::CREATED);
    let (status, _) =
        app.call(Method::PATCH, "/users/2000002/").token(&token).json(json!({"email": "zd@x.fr"})).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        app.call(Method::PATCH, "/users/nobody/").token(&token).json(json!({"lastname": "X"})).send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_and_put_are_refused_by_permission_before_the_method() {
    let (app, token) = app_with_users().await;
    for method in [Method::DELETE, Method::PUT] {
        let (status, body) = app.call(method.clone(), "/users/2000002/").token(&token).send().await;
        assert_eq!(
            (status, body),
            (StatusCode::FORBIDDEN, json!({"detail": "You do not have permission to perform this action."})),
            "{method}"
        );
    }
    let (status, body) = app.call(Method::DELETE, "/users/2000002/").send().await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"detail": "Authentication credentials were not provided."}))
    );
}

#[tokio::test]
async fn username_check_against_the_base_and_the_identity_server() {
    let people = fakes::identity::parse_people("5000005:pw:Louis:PASTEUR:louis@x.fr");
    let (url, _server) = fakes::spawn(fakes::identity::router("k", people), 0).await.unwrap();
    let app = TestApp::with_settings(&[("IDENTITY_SERVER_URL", &url), ("IDENTITY_SERVER_AUTH_TOKEN", "k")]).await;
    app.account("2000001", None).await;
    let (token, _) = app.login(ADMIN).await;

    let (status, body) = app.call(Method::GET, "/users/2000001/check/").token(&token).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["already_exists"].as_bool(), body["found"].as_bool()), (Some(true), Some(false)));
    let (status, body) = app.call(Method::GET, "/users/5000005/check/").token(&token).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"username": "5000005", "firstname": "Louis", "lastname": "PASTEUR", "email": "louis@x.fr", "already_exists": false, "found": true})
    );
    let (status, body) = app.call(Method::GET, "/users/6000006/check/").token(&token).send().await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"message": "User not found"})));
    let (status, body) = app.call(Method::GET, "/users/abc/check/").token(&token).send().await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"message": "Invalid username format"})));
}
