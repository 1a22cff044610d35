//! Platform endpoints (spec §9) and the maintenance gate.
use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN, PASSWORD};
use serde_json::json;
use time::Duration;

fn iso(offset: Duration) -> String {
    c360::domain::time::iso(c360::domain::time::now() + offset)
}

#[tokio::test]
async fn next_maintenance_is_an_empty_object_then_the_current_or_upcoming_phase() {
    let app = TestApp::new().await;
    let (status, body) = app.call(Method::GET, "/maintenances/next/").send().await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    let (admin, _) = app.login(ADMIN).await;
    let future = json!({"subject": "Upgrade", "message": "v2", "type": "full", "start_datetime": iso(Duration::hours(2)), "end_datetime": iso(Duration::hours(3))});
    let (status, created) = app.call(Method::POST, "/maintenances/").token(&admin).json(future).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["active"], false);
    assert_eq!(created["maintenance_start"], created["start_datetime"]);
    let (_, next) =
        app.call(Method::GET, "/api/back/maintenances/next/").header("authorization", "Bearer null").send().await;
    assert_eq!(next["id"], created["id"]);
    assert_eq!(next["type"], "full");

    let (status, list) =
        app.call(Method::GET, "/maintenances/?ordering=-start_datetime&page=1&page_size=20").send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["count"], 1);
    let (status, one) = app.call(Method::GET, &format!("/maintenances/{}/", created["id"])).send().await;
    assert_eq!((status, one["subject"].as_str()), (StatusCode::OK, Some("Upgrade")));
    let (status, _) = app.call(Method::GET, "/maintenances/999/").send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn maintenance_writes_are_validated_and_reserved_to_admins_and_applications() {
    let app = TestApp::new().await;
    app.account("2000001", Some(4)).await;
    let (admin, _) = app.login(ADMIN).await;
    let (reader, _) = app.login("2000001").await;
    let body =
        json!({"subject": "s", "start_datetime": iso(Duration::hours(1)), "end_datetime": iso(Duration::hours(2))});
    let (status, _) = app.call(Method::POST, "/maintenances/").token(&reader).json(body.clone()).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::POST, "/maintenances/").json(body.clone()).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::POST, "/maintenances/")
        .header("authorization", "Bearer test-rollout-token")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let backwards =
        json!({"subject": "s", "start_datetime": iso(Duration::hours(3)), "end_datetime": iso(Duration::hours(2))});
    let (status, errors) = app.call(Method::POST, "/maintenances/").token(&admin).json(backwards).send().await;
    assert_eq!(
        (status, errors),
        (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["end_datetime is lower than start_datetime"]}))
    );
    let (status, errors) =
        app.call(Method::POST, "/maintenances/").token(&admin).json(json!({"type": "total"})).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(errors["subject"], json!(["This field is required."]));
    assert_eq!(errors["type"], json!(["\"total\" is not a valid choice."]));

    let (_, created) = app.call(Method::POST, "/maintenances/").token(&admin).json(body).send().await;
    let path = format!("/maintenances/{}/", created["id"]);
    let (status, patched) =
        app.call(Method::PATCH, &path).token(&admin).json(json!({"message": "longer"})).send().await;
    assert_eq!((status, patched["message"].as_str()), (StatusCode::OK, Some("longer")));
    let (status, _) = app.call(Method::PUT, &path).token(&admin).json(json!({})).send().await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = app.call(Method::PUT, &path).token(&reader).json(json!({})).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::DELETE, &path).token(&admin).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, &path).send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_active_phase_blocks_writes_but_not_reads_auth_maintenances_or_callbacks() {
    let app = TestApp::new().await;
    let (admin, _) = app.login(ADMIN).await;
    let phase = json!({"subject": "Now", "message": "database upgrade", "start_datetime": iso(-Duration::minutes(5)), "end_datetime": iso(Duration::hours(1))});
    let (status, created) = app.call(Method::POST, "/maintenances/").token(&admin).json(phase).send().await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["active"], true);

    let note = json!({"title": "t", "message": ["m"]});
    let (status, body) = app.call(Method::POST, "/release-notes/").token(&admin).json(note.clone()).send().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["message"].as_str().unwrap().starts_with("The server is unavailable for maintenance up to "));
    assert!(body["message"].as_str().unwrap().ends_with("for the following reason: database upgrade"));
    assert_eq!(
        (body["active"].as_bool(), body["maintenance_end"].clone()),
        (Some(true), created["end_datetime"].clone())
    );

    assert_eq!(app.call(Method::GET, "/release-notes/").token(&admin).send().await.0, StatusCode::OK);
    app.login(ADMIN).await;
    let path = format!("/maintenances/{}/", created["id"]);
    assert_eq!(
        app.call(Method::PATCH, &path).token(&admin).json(json!({"message": "soon over"})).send().await.0,
        StatusCode::OK
    );
    // QueryExecutor callbacks pass; the rollout key does not bypass maintenance.
    let later =
        json!({"subject": "l", "start_datetime": iso(Duration::days(1)), "end_datetime": iso(Duration::days(2))});
    assert_eq!(
        app.call(Method::POST, "/maintenances/")
            .header("authorization", "Bearer test-etl-token")
            .json(later)
            .send()
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.call(Method::POST, "/users/")
            .header("authorization", "Bearer test-qe-token")
            .json(json!({}))
            .send()
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call(Method::POST, "/users/")
            .header("authorization", "Bearer test-rollout-token")
            .json(json!({}))
            .send()
            .await
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    assert_eq!(app.call(Method::DELETE, &path).token(&admin).send().await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.call(Method::POST, "/release-notes/").token(&admin).json(note).send().await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn release_notes_for_authenticated_users_newest_first() {
    let app = TestApp::new().await;
    app.account("2000001", None).await;
    let (user, _) = app.login("2000001").await;
    assert_eq!(app.call(Method::GET, "/release-notes/").send().await.0, StatusCode::FORBIDDEN);
    for title in ["v1.0", "v1.1"] {
        let (status, _) = app
            .call(Method::POST, "/release-notes/")
            .token(&user)
            .json(json!({"title": title, "message": ["fix"], "author": "me"}))
            .send()
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, errors) =
        app.call(Method::POST, "/release-notes/").token(&user).json(json!({"title": "no message"})).send().await;
    assert_eq!((status, errors), (StatusCode::BAD_REQUEST, json!({"message": ["This field is required."]})));
    let (_, list) = app.call(Method::GET, "/release-notes/").token(&user).send().await;
    assert_eq!(list["results"][0]["title"], "v1.1");
    let id = list["results"][0]["id"].clone();
    let (status, note) = app
        .call(Method::PATCH, &format!("/release-notes/{id}/"))
        .token(&user)
        .json(json!({"message": ["a", "b"]}))
        .send()
        .await;
    assert_eq!((status, note["message"].clone()), (StatusCode::OK, json!(["a", "b"])));
    let (_, found) = app.call(Method::GET, "/release-notes/?search=v1.0").token(&user).send().await;
    assert_eq!(found["count"], 1);
    assert_eq!(
        app.call(Method::DELETE, &format!("/release-notes/{id}/")).token(&user).send().await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn web_contents_are_public_to_read_and_admin_to_write() {
    let app = TestApp::new().await;
    app.account("2000001", Some(4)).await;
    let (admin, _) = app.login(ADMIN).await;
    let (reader, _) = app.login("2000001").await;
    let banner =
        json!({"title": "Hello", "content": "**News**", "content_type": "BANNER_INFO", "metadata": {"order": 1}});
    assert_eq!(
        app.call(Method::POST, "/webcontent/contents/").token(&reader).json(banner.clone()).send().await.0,
        StatusCode::FORBIDDEN
    );
    let (status, created) = app.call(Method::POST, "/webcontent/contents/").token(&admin).json(banner).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"], json!({"order": "1"}));
    assert_eq!(created["content_type_display"], "Bannière d'information");
    let note = json!({"title": "v2", "content": "x", "content_type": "RELEASE_NOTE"});
    app.call(Method::POST, "/webcontent/contents/").token(&admin).json(note).send().await;

    let (status, list) = app
        .call(
            Method::GET,
            "/webcontent/contents/?ordering=-created_at&content_type=BANNER_WARNING,BANNER_ERROR,BANNER_INFO",
        )
        .send()
        .await;
    assert_eq!((status, list["count"].clone()), (StatusCode::OK, json!(1)));
    let (status, types) = app.call(Method::GET, "/webcontent/contents/content_types/").send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(types["RELEASE_NOTE"], json!({"label": "Note de version", "description": "Note de version"}));

    let bad = json!({"title": "t", "content": "c", "content_type": "POPUP"});
    let (status, errors) = app.call(Method::POST, "/webcontent/contents/").token(&admin).json(bad).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors["content_type"][0].as_str().unwrap().starts_with("Invalid content type."));

    let path = format!("/webcontent/contents/{}/", created["id"]);
    let (status, patched) = app.call(Method::PATCH, &path).token(&admin).json(json!({"metadata": {}})).send().await;
    assert_eq!((status, patched["metadata"].clone()), (StatusCode::OK, json!({})));
    assert_eq!(app.call(Method::DELETE, &path).token(&admin).send().await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.call(Method::GET, &path).send().await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn audited_requests_are_listed_for_full_admins_with_secrets_masked() {
    let app = TestApp::new().await;
    app.account("2000001", Some(9)).await;
    let (admin, _) = app.login(ADMIN).await;
    let (manager, _) = app.login("2000001").await;
    let new_user = json!({"username": "7000007", "firstname": "A", "lastname": "B", "email": "a@b.fr", "password": "do-not-log-me"});
    assert_eq!(app.call(Method::POST, "/users/").token(&manager).json(new_user).send().await.0, StatusCode::CREATED);

    assert_eq!(app.call(Method::GET, "/logs/").token(&manager).send().await.0, StatusCode::FORBIDDEN);
    let (status, logs) = app.call(Method::GET, "/logs/?ordering=-requested_at&page=1").token(&admin).send().await;
    assert_eq!(status, StatusCode::OK);
    let text = logs.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains("do-not-log-me"), "{text}");
    assert!(text.contains("********************"));
    assert_eq!(logs["count"], 3, "two logins and one user creation: {logs}");
    let creation = &logs["results"][0];
    assert_eq!(
        (creation["path"].as_str(), creation["method"].as_str(), creation["status_code"].as_i64()),
        (Some("/users/"), Some("POST"), Some(201))
    );
    assert_eq!(creation["username_persistent"], "2000001");
    assert_eq!(creation["user_details"]["username"], "2000001");

    let (_, filtered) =
        app.call(Method::GET, "/logs/?path_contains=login&status_code=200&method=post").token(&admin).send().await;
    assert_eq!(filtered["count"], 2);
    let (status, one) = app.call(Method::GET, &format!("/logs/{}/", creation["id"])).token(&admin).send().await;
    assert_eq!((status, one["id"].clone()), (StatusCode::OK, creation["id"].clone()));
    let (status, _) = app.call(Method::GET, "/logs/?status_code=abc").token(&admin).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn root_docs_schema_and_cache() {
    let app = TestApp::new().await;
    let (status, body) = app.call(Method::DELETE, "/").send().await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"error": "Page Not Found"})));
    let (status, page) = app.call(Method::GET, "/docs").send().await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("swagger-ui-bundle.js"));
    assert_eq!(app.call(Method::GET, "/api/back/docs/swagger-ui.css").send().await.0, StatusCode::OK);
    let (status, schema) = app.call(Method::GET, "/schema").send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(schema["openapi"], "3.1.0");
    for path in ["/auth/login/", "/users/{username}/", "/maintenances/next/", "/logs/"] {
        assert!(schema["paths"].get(path).is_some(), "{path} missing from /schema");
    }

    let (admin, _) = app.login(ADMIN).await;
    assert_eq!(app.call(Method::GET, "/cache").token(&admin).send().await.0, StatusCode::OK);
    assert_eq!(app.call(Method::DELETE, "/cache/").token(&admin).send().await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.call(Method::GET, "/cache").send().await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.call(Method::GET, "/no/such/path/").send().await.0, StatusCode::NOT_FOUND);
}
