//! The route inventory: every route of every HTTP function refuses an anonymous caller unless it
//! is on the reviewed allow-list below; methods a route does not serve follow DRF's order
//! (authentication, then permission, then 405). Also: no secret in logs or error bodies.
use http::{Method, StatusCode};
use integration_tests::{LogCapture, TestApp, ADMIN, PASSWORD};
use serde_json::json;

/// Routes anyone may call, reviewed one by one against the spec (§1.1, §9).
const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("POST", "/"),
    ("PUT", "/"),
    ("PATCH", "/"),
    ("DELETE", "/"),
    ("POST", "/auth/login/"),
    ("GET", "/maintenances/"),
    ("GET", "/maintenances/next/"),
    ("GET", "/maintenances/{id}/"),
    ("GET", "/webcontent/contents/"),
    ("GET", "/webcontent/contents/content_types/"),
    ("GET", "/webcontent/contents/{id}/"),
    ("GET", "/docs"),
    ("GET", "/docs/swagger-ui-bundle.js"),
    ("GET", "/docs/swagger-ui.css"),
    ("GET", "/schema"),
    ("GET", "/schema/"),
    ("GET", "/cohort/cohorts/jobs/active/"),
];

fn concrete(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') { "1" } else { seg }).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn every_route_refuses_anonymous_callers_unless_allow_listed() {
    let app = TestApp::new().await;
    let (_, specs) = dev_server::all_routes(&app.state);
    assert!(specs.len() >= 40, "the inventory looks incomplete: {} routes", specs.len());
    let mut public_seen = Vec::new();
    for spec in &specs {
        let key = (spec.method.as_str(), spec.path);
        let listed = PUBLIC_ROUTES.contains(&key);
        assert_eq!(listed, spec.exposure == c360::http::Exposure::Public, "{key:?}: exposure and allow-list disagree");
        if listed {
            public_seen.push(key);
            continue;
        }
        let (status, body) = app.call(spec.method.clone(), &concrete(spec.path)).json(json!({})).send().await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{key:?} answered {status} to an anonymous caller: {body}");
        assert_eq!(body, json!({"detail": "Authentication credentials were not provided."}), "{key:?}");
    }
    for entry in PUBLIC_ROUTES {
        assert!(public_seen.contains(entry), "{entry:?} is allow-listed but no longer exists");
    }
}

#[tokio::test]
async fn permission_comes_before_the_method_check() {
    let app = TestApp::new().await;
    app.account("2000001", Some(4)).await;
    let (admin, _) = app.login(ADMIN).await;
    let (reader, _) = app.login("2000001").await;
    let cases = [
        // (method, path, anonymous, reader, admin)
        (Method::DELETE, "/users/admin/", 403, 403, 403),
        (Method::PUT, "/maintenances/1/", 403, 403, 405),
        (Method::DELETE, "/logs/1/", 403, 403, 405),
        (Method::PUT, "/webcontent/contents/1/", 403, 403, 405),
        (Method::DELETE, "/release-notes/1/", 403, 405, 405),
        (Method::GET, "/auth/refresh/", 403, 405, 405),
        (Method::PUT, "/auth/login/", 405, 405, 405),
    ];
    for (method, path, anonymous, as_reader, as_admin) in cases {
        let got = [
            app.call(method.clone(), path).send().await.0.as_u16(),
            app.call(method.clone(), path).token(&reader).send().await.0.as_u16(),
            app.call(method.clone(), path).token(&admin).send().await.0.as_u16(),
        ];
        assert_eq!(got, [anonymous, as_reader, as_admin], "{method} {path}");
    }
    let (_, body) = app.call(Method::PUT, "/maintenances/1/").token(&admin).send().await;
    assert_eq!(body, json!({"detail": "Method \"PUT\" not allowed."}));
}

#[tokio::test]
async fn no_password_or_token_in_logs_or_error_bodies() {
    let (capture, _guard) = LogCapture::start();

    let app = TestApp::new().await;
    let (access, refresh) = app.login(ADMIN).await;
    let mut bodies = Vec::new();
    for call in [
        app.call(Method::POST, "/auth/login/").json(json!({"username": ADMIN, "password": "typo-secret"})),
        app.call(Method::POST, "/auth/refresh/").token(&access).json(json!({"refresh_token": format!("{refresh}x")})),
        app.call(Method::GET, "/users/").header("authorization", &format!("Bearer {access} extra")),
        app.call(Method::POST, "/users/").token(&access).json(json!({"username": "1", "password": "created-secret"})),
    ] {
        bodies.push(call.send().await.1.to_string());
    }
    app.call(Method::POST, "/auth/logout/").token(&access).json(json!({"refresh_token": refresh})).send().await;

    let logs = capture.text();
    assert!(logs.contains("\"handled\""), "the capture saw no request log line");
    for secret in [PASSWORD, "typo-secret", "created-secret", &access, &refresh, "test-signing-key"] {
        assert!(!logs.contains(secret), "a secret reached the logs");
        for body in &bodies {
            assert!(!body.contains(secret), "a secret reached an error body: {body}");
        }
    }
}
