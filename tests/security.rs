//! The security rules of docs/architecture.md ("Who may change whom", audit, links, CORS): each
//! reproduction of the attack run that found them, and the cases around it.
use c360::domain::{request_log::MASK, user::Credentials};
use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN, PASSWORD};
use serde_json::{json, Value};

const FULL_ADMIN: i64 = 1;
const ADMIN_MANAGER: i64 = 2;
const PSEUDO_READER: i64 = 5;
const USER_MANAGER: i64 = 9;

async fn login_with(app: &TestApp, username: &str, password: &str) -> StatusCode {
    app.call(Method::POST, "/auth/login/").json(json!({"username": username, "password": password})).send().await.0
}

async fn patch(app: &TestApp, token: &str, username: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PATCH, &format!("/users/{username}/")).token(token).json(body).send().await
}

#[tokio::test]
async fn a_user_manager_cannot_take_over_a_full_admin() {
    let app = TestApp::new().await;
    app.account("2000001", Some(USER_MANAGER)).await;
    let (manager, _) = app.login("2000001").await;

    // The reproduction: PATCH the full admin's password, then log in with it.
    let (status, body) = patch(&app, &manager, ADMIN, json!({"password": "taken-over"})).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"detail": "You cannot modify a user who holds rights you could not grant."}))
    );
    assert_eq!(login_with(&app, ADMIN, "taken-over").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_with(&app, ADMIN, PASSWORD).await, StatusCode::OK);
    // Identity fields are guarded the same way (an e-mail change is a password reset elsewhere).
    assert_eq!(patch(&app, &manager, ADMIN, json!({"email": "me@evil.example"})).await.0, StatusCode::FORBIDDEN);
    let stored = app.state.store.user(ADMIN).await.unwrap().unwrap();
    assert_eq!(stored.email.as_deref(), Some("admin@cohort360.test"));
}

#[tokio::test]
async fn who_may_change_whom() {
    let app = TestApp::new().await;
    app.account("2000001", Some(USER_MANAGER)).await;
    app.account("2000002", Some(ADMIN_MANAGER)).await;
    app.account("3000001", None).await; // no right at all
    app.account("3000002", Some(PSEUDO_READER)).await;
    app.account("3000003", Some(ADMIN_MANAGER)).await;
    app.account("3000004", Some(FULL_ADMIN)).await;
    let (user_manager, _) = app.login("2000001").await;
    let (admin_manager, _) = app.login("2000002").await;
    let (admin, _) = app.login(ADMIN).await;
    let rename = || json!({"firstname": "Renamed"});

    let cases = [
        (&user_manager, "3000001", StatusCode::OK),
        (&user_manager, "3000002", StatusCode::FORBIDDEN), // reading rights need data-access management
        (&user_manager, "2000001", StatusCode::OK),        // oneself
        (&admin_manager, "3000002", StatusCode::OK),
        (&admin_manager, "3000003", StatusCode::FORBIDDEN), // admin managers are granted by full admins
        (&admin_manager, "3000004", StatusCode::FORBIDDEN),
        (&admin, "3000004", StatusCode::OK),
    ];
    for (token, target, expected) in cases {
        assert_eq!(patch(&app, token, target, rename()).await.0, expected, "PATCH {target}");
    }
    // An access that has ended grants nothing: its holder is anyone's to edit again.
    let bundle = app.state.store.user_bundle("3000002").await.unwrap().unwrap();
    let access = bundle.accesses[0].id;
    let (status, _) =
        app.call(Method::PATCH, &format!("/accesses/accesses/{access}/close/")).token(&admin).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patch(&app, &user_manager, "3000002", rename()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn applicative_users_are_never_modified_through_the_api() {
    let app = TestApp::new().await;
    let (admin, _) = app.login(ADMIN).await;
    let settings = &app.state.settings;
    for name in [&settings.query_executor_username, &settings.solr_etl_username, &settings.rollout_username] {
        app.account(name, None).await;
        let (status, body) = patch(&app, &admin, name, json!({"password": "now-mine"})).await;
        assert_eq!(
            (status, body),
            (StatusCode::FORBIDDEN, json!({"detail": "Applicative users cannot be modified through the API."})),
            "{name}"
        );
        assert_eq!(login_with(&app, name, "now-mine").await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn passwords_are_set_only_for_local_users_and_revoke_their_sessions() {
    let app = TestApp::new().await;
    let (admin, _) = app.login(ADMIN).await;

    // Created without a password: the identity server's user. No password can be set here.
    let external = json!({"username": "4000001", "firstname": "Ada", "lastname": "Byron", "email": "ada@x.fr"});
    assert_eq!(app.call(Method::POST, "/users/").token(&admin).json(external).send().await.0, StatusCode::CREATED);
    let (status, body) = patch(&app, &admin, "4000001", json!({"password": "local-now"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"password": ["This user logs in through the identity server or OIDC: no password can be set here."]})
    );
    assert_eq!(login_with(&app, "4000001", "local-now").await, StatusCode::UNAUTHORIZED);

    // A local user: the new password works, and every token issued before it dies.
    app.account("4000002", Some(PSEUDO_READER)).await;
    let (old_access, old_refresh) = app.login("4000002").await;
    // Tokens carry whole seconds: the change must fall in a later second to be told apart.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(patch(&app, &admin, "4000002", json!({"password": "fresh one"})).await.0, StatusCode::OK);
    let (status, _) = app.call(Method::GET, "/users/4000002/").token(&old_access).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the old access token is anonymous now");
    assert_eq!(login_with(&app, "4000002", PASSWORD).await, StatusCode::UNAUTHORIZED);
    let (status, login) = app
        .call(Method::POST, "/auth/login/")
        .json(json!({"username": "4000002", "password": "fresh one"}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(Method::POST, "/auth/refresh/")
        .token(login["access_token"].as_str().unwrap())
        .json(json!({"refresh_token": old_refresh}))
        .send()
        .await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "Token is invalid or expired"})));
}

#[tokio::test]
async fn the_login_never_accepts_a_local_password_for_an_external_user() {
    let people = fakes::identity::parse_people("5000001:from-identity:Marie:CURIE:marie@x.fr");
    let (url, _server) = fakes::spawn(fakes::identity::router("identity-key", people), 0).await.unwrap();
    let app =
        TestApp::with_settings(&[("IDENTITY_SERVER_URL", &url), ("IDENTITY_SERVER_AUTH_TOKEN", "identity-key")]).await;
    // A record as the previous version's PATCH could leave it: an external user with a local hash.
    app.account("5000001", None).await;
    let mut user = app.state.store.user("5000001").await.unwrap().unwrap();
    user.credentials = Some(Credentials::External);
    app.state.store.put_user(&user, c360::store::Condition::MustExist).await.unwrap();

    assert_eq!(login_with(&app, "5000001", "from-identity").await, StatusCode::OK);
    assert_eq!(login_with(&app, "5000001", PASSWORD).await, StatusCode::UNAUTHORIZED);
    // Local users log in with their own password; the identity server is not asked.
    assert_eq!(login_with(&app, ADMIN, PASSWORD).await, StatusCode::OK);
}

/// The audit row of the newest request to `path`, read through `/logs/` as the admin would.
async fn newest_log(app: &TestApp, admin: &str, path: &str) -> Value {
    let (status, logs) = app.call(Method::GET, &format!("/logs/?path={path}")).token(admin).send().await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    logs["results"][0].clone()
}

#[tokio::test]
async fn an_oversized_body_cannot_dodge_the_audit() {
    let app = TestApp::new().await;
    let (admin, _) = app.login(ADMIN).await;
    let filler = "x".repeat(1_900_000);
    let body = json!({"username": "6000001", "firstname": "Big", "lastname": "Body", "email": "big@x.fr",
                      "password": "hidden-in-a-big-body", "notes": filler});
    let (status, created) = app.call(Method::POST, "/users/").token(&admin).json(body).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let row = newest_log(&app, &admin, "/users/").await;
    assert_eq!((row["status_code"].as_u64(), row["user"].as_str()), (Some(201), Some(ADMIN)));
    let data = row["data"].as_str().unwrap();
    assert_eq!(data.len(), c360::domain::request_log::MAX_DATA_BYTES);
    assert!(!row.to_string().contains("hidden-in-a-big-body"));
    assert!(row["data_size"].as_u64().unwrap() > 1_900_000);
    assert_eq!(row["data_sha256"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn secrets_in_query_strings_never_reach_the_log() {
    let app = TestApp::new().await;
    let (admin, _) = app.login(ADMIN).await;
    let query = "password=qs-secret-1&token=qs-secret-2&client_secret=qs-secret-3&x-api-key=qs-secret-4&page=7";
    let (status, _) = app
        .call(Method::POST, &format!("/auth/login/?{query}"))
        .header("user-agent", "probe token=ua-secret-5")
        .json(json!({"username": ADMIN, "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, logs) = app.call(Method::GET, "/logs/?path=/auth/login/").token(&admin).send().await;
    let text = logs.to_string();
    for secret in ["qs-secret-1", "qs-secret-2", "qs-secret-3", "qs-secret-4", "ua-secret-5", PASSWORD] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let row = newest_log(&app, &admin, "/auth/login/").await;
    assert_eq!(
        row["query_params"],
        format!("password={MASK}&token={MASK}&client_secret={MASK}&x-api-key={MASK}&page=7")
    );
}

#[tokio::test]
async fn a_request_whose_audit_row_cannot_be_written_is_refused_before_it_runs() {
    let app = TestApp::new().await;
    // The same settings on a table that does not exist: every write fails.
    let mut settings = app.state.settings.clone();
    settings.table_name = "no-such-table".into();
    let broken = TestApp::unseeded(settings).await;
    let (status, body) =
        broken.call(Method::POST, "/auth/login/").json(json!({"username": ADMIN, "password": PASSWORD})).send().await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"message": "The audit log could not be written: nothing was done. Please retry."})
        )
    );
}

#[tokio::test]
async fn hostile_paging_is_a_page_not_a_crash() {
    let app = TestApp::new().await;
    let (admin, _) = app.login(ADMIN).await;
    for query in [
        "offset=18446744073709551615",
        "offset=18446744073709551615&limit=18446744073709551615",
        "limit=-9223372036854775808&offset=-1",
        "offset=99999999999999999999999999999",
        "limit=abc&offset=1e9",
    ] {
        let (status, body) = app.call(Method::GET, &format!("/cohort/requests/?{query}")).token(&admin).send().await;
        assert!(status.is_success(), "{query}: {status} {body}");
    }
    let (status, body) =
        app.call(Method::GET, "/accesses/roles/?offset=18446744073709551615&limit=5").token(&admin).send().await;
    assert_eq!((status, body["next"].clone()), (StatusCode::OK, Value::Null));
    let (status, _) = app.call(Method::GET, "/users/?page=99999999999999999999999").token(&admin).send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn links_come_from_configuration_not_from_forwarding_headers() {
    let app = TestApp::with_settings(&[("PUBLIC_BASE_URL", "https://cohort360.example.org/api/back/")]).await;
    let (admin, _) = app.login(ADMIN).await;
    let (status, body) = app
        .call(Method::GET, "/accesses/roles/?limit=1")
        .token(&admin)
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "javascript")
        .header("host", "evil.example")
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["next"], "https://cohort360.example.org/api/back/accesses/roles/?limit=1&offset=1");
}

#[tokio::test]
async fn cors_answers_exactly_the_configured_front_ends() {
    let app =
        TestApp::with_settings(&[("FRONTEND_URLS", "https://cohort360.example.org,http://localhost:3000/")]).await;
    let preflight = |origin: &'static str| {
        app.call(Method::OPTIONS, "/cohort/requests/")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,authorizationmethod,x-impersonate,content-type")
    };
    let (status, headers, _) = preflight("http://localhost:3000").send_full().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["access-control-allow-origin"], "http://localhost:3000");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    for name in ["authorization", "authorizationmethod", "x-impersonate", "content-type"] {
        assert!(allowed.split(", ").any(|h| h == name), "{name} in {allowed}");
    }
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("PATCH"));

    let (status, headers, _) = preflight("https://evil.example").send_full().await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("access-control-allow-origin").is_none());

    let (status, headers, _) = app
        .call(Method::GET, "/maintenances/next/")
        .header("origin", "https://cohort360.example.org")
        .send_full()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["access-control-allow-origin"], "https://cohort360.example.org");
    assert_eq!(headers["vary"], "origin");
}

#[tokio::test]
async fn deeply_nested_and_oversized_bodies_are_refused_without_harm() {
    let app = TestApp::new().await;
    let (admin, _) = app.login(ADMIN).await;
    // 100,000 levels of nesting: the parser stops at its depth limit, on an audited and a plain route.
    let deep = format!("{{\"name\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    for (method, path) in [(Method::POST, "/cohort/folders/"), (Method::PATCH, "/users/admin/")] {
        let (status, body) =
            app.call(method.clone(), path).token(&admin).raw("application/json", deep.clone()).send().await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert!(body["detail"].as_str().is_some_and(|d| d.starts_with("JSON parse error")), "{method} {path}: {body}");
    }
    // Over the 10 MiB limit: refused before anything is parsed or written.
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(11 * 1024 * 1024));
    let (status, _) =
        app.call(Method::POST, "/cohort/folders/").token(&admin).raw("application/json", huge).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, folders) = app.call(Method::GET, "/cohort/folders/").token(&admin).send().await;
    assert_eq!(folders["count"], 0, "nothing was created: {folders}");
}
