//! Authentication end to end through the router and the emulator (spec §2).
use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use c360::auth::{jwt::TokenType, password};
use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn login_returns_the_original_body_without_password() {
    let app = TestApp::new().await;
    let (status, body) = app
        .call(Method::POST, "/auth/login/")
        .header("authorization", "Bearer null")
        .header("authorizationmethod", "JWT")
        .json(json!({"username": ADMIN, "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["username"], ADMIN);
    assert_eq!(body["user"]["display_name"], "Test Useradmin (admin)");
    for key in ["firstname", "lastname", "email", "created_by", "updated_by"] {
        assert!(body["user"].get(key).is_some(), "user.{key} missing");
    }
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert!(body["last_login"].as_str().unwrap().ends_with('Z'));
    assert!(!body.to_string().contains("password") && !body.to_string().contains("argon2"));
}

#[tokio::test]
async fn multipart_login_as_the_front_ends_send_it() {
    let app = TestApp::new().await;
    let boundary = "----c360boundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n{ADMIN}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{PASSWORD}\r\n--{boundary}--\r\n"
    );
    let (status, body) = app
        .call(Method::POST, "/api/back/auth/login/")
        .header("authorization", "Bearer null")
        .header("authorizationmethod", "JWT")
        .raw(&format!("multipart/form-data; boundary={boundary}"), form)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["username"], ADMIN);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = TestApp::new().await;
    for (username, password) in [(ADMIN, "wrong"), ("nobody", PASSWORD)] {
        let (status, body) = app
            .call(Method::POST, "/auth/login/")
            .json(json!({"username": username, "password": password}))
            .send()
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"error": "Invalid username or password!"}));
    }
    let (status, body) = app.call(Method::POST, "/auth/login/").json(json!({"username": ADMIN})).send().await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"password": ["This field is required."]})));
    let (status, body) = app.call(Method::POST, "/auth/login/").raw("application/json", "{not json").send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().starts_with("JSON parse error"));
}

#[tokio::test]
async fn login_only_accepts_post() {
    let app = TestApp::new().await;
    let (status, body) = app.call(Method::GET, "/auth/login/").send().await;
    assert_eq!((status, body), (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"GET\" not allowed."})));
}

#[tokio::test]
async fn refresh_rotates_and_a_used_refresh_token_is_refused() {
    let app = TestApp::new().await;
    let (access, refresh) = app.login(ADMIN).await;
    let (status, body) =
        app.call(Method::POST, "/auth/refresh/").token(&access).json(json!({"refresh_token": refresh})).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (new_access, new_refresh) = (body["access_token"].as_str().unwrap(), body["refresh_token"].as_str().unwrap());
    assert_ne!(new_refresh, refresh);

    let (status, body) =
        app.call(Method::POST, "/auth/refresh/").token(new_access).json(json!({"refresh_token": refresh})).send().await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "Token is invalid or expired"})));

    let (status, body) = app
        .call(Method::POST, "/auth/refresh/")
        .token(new_access)
        .json(json!({"refresh_token": "garbage"}))
        .send()
        .await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "Token is invalid or expired"})));

    let (status, body) = app
        .call(Method::POST, "/auth/refresh/")
        .token(new_access)
        .json(json!({"refresh_token": new_access}))
        .send()
        .await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "Token has wrong type"})));
}

#[tokio::test]
async fn refresh_needs_a_valid_access_token() {
    let app = TestApp::new().await;
    let (_, refresh) = app.login(ADMIN).await;
    let (status, body) = app.call(Method::POST, "/auth/refresh/").json(json!({"refresh_token": refresh})).send().await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"detail": "Authentication credentials were not provided."}))
    );
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_deletes_the_csrf_cookie() {
    let app = TestApp::new().await;
    let (access, refresh) = app.login(ADMIN).await;
    let (status, headers, body) = app
        .call(Method::POST, "/auth/logout/")
        .token(&access)
        .json(json!({"refresh_token": refresh}))
        .send_full()
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert!(headers["set-cookie"].to_str().unwrap().starts_with("csrftoken=\"\""));
    let (status, _) =
        app.call(Method::POST, "/auth/refresh/").token(&access).json(json!({"refresh_token": refresh})).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An expired session can still revoke the refresh token it holds; nothing else is anonymous.
    let (_, refresh) = app.login(ADMIN).await;
    let (status, _) = app.call(Method::POST, "/auth/logout/").json(json!({"refresh_token": refresh})).send().await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.call(Method::POST, "/auth/logout/").json(json!({})).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn expired_tampered_unsigned_and_foreign_algorithm_tokens_are_anonymous() {
    let app = TestApp::new().await;
    let (access, refresh) = app.login(ADMIN).await;
    let now = c360::domain::time::now().unix_timestamp();
    let expired =
        app.state.tokens.mint(TokenType::Access, ADMIN, now - 3600, std::time::Duration::from_secs(300)).unwrap();
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("access", "acces5"));
    let tampered = parts.join(".");
    let unsigned =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), access.split('.').nth(1).unwrap());
    let hs512 = {
        let claims = app.state.tokens.verify(&access, TokenType::Access).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"test-signing-key-with-enough-entropy-0123456789"),
        )
        .unwrap()
    };
    for (case, token) in [
        ("expired", expired),
        ("tampered", tampered),
        ("alg none", unsigned),
        ("HS512", hs512),
        ("refresh as access", refresh),
    ] {
        let (status, body) = app.call(Method::GET, "/users/").token(&token).send().await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{case}");
        assert_eq!(body, json!({"detail": "Authentication credentials were not provided."}), "{case}");
    }
    let (status, body) = app.call(Method::GET, "/users/").header("authorization", "Bearer a b").send().await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"detail": "Authorization header must contain two space-delimited values"}))
    );
    let (status, _) = app.call(Method::GET, "/users/").token(&access).send().await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn legacy_sha256_password_is_accepted_once_and_upgraded_to_argon2() {
    let app = TestApp::new().await;
    app.account("1000001", None).await;
    let mut user = app.state.store.user("1000001").await.unwrap().unwrap();
    user.password = Some(password::legacy_sha256(PASSWORD));
    app.state.store.put_user(&user, c360::store::Condition::MustExist).await.unwrap();

    app.login("1000001").await;
    let stored = app.state.store.user("1000001").await.unwrap().unwrap().password.unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    app.login("1000001").await;
}

#[tokio::test]
async fn users_without_a_local_password_log_in_through_the_identity_server() {
    let people = fakes::identity::parse_people("1000002:from-identity:Marie:CURIE:marie@x.fr");
    let (url, _server) = fakes::spawn(fakes::identity::router("identity-key", people), 0).await.unwrap();
    let app =
        TestApp::with_settings(&[("IDENTITY_SERVER_URL", &url), ("IDENTITY_SERVER_AUTH_TOKEN", "identity-key")]).await;
    let (admin, _) = app.login(ADMIN).await;
    let marie = json!({"username": "1000002", "firstname": "Marie", "lastname": "CURIE", "email": "marie@x.fr"});
    assert_eq!(app.call(Method::POST, "/users/").token(&admin).json(marie).send().await.0, StatusCode::CREATED);
    for (password, expected) in [("from-identity", StatusCode::OK), ("neither", StatusCode::UNAUTHORIZED)] {
        let (status, _) = app
            .call(Method::POST, "/auth/login/")
            .json(json!({"username": "1000002", "password": password}))
            .send()
            .await;
        assert_eq!(status, expected, "{password}");
    }
}

#[tokio::test]
async fn oidc_code_login_token_validation_refresh_and_logout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/realms/test", listener.local_addr().unwrap());
    let realm = Arc::new(fakes::oidc::Realm::new(&issuer, "cohort360", "oidc-secret"));
    let router = fakes::oidc::router("/realms/test", realm.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = TestApp::with_settings(&[
        ("ENABLE_OIDC_AUTH", "true"),
        ("OIDC_AUTH_SERVER_1", &issuer),
        ("OIDC_CLIENT_ID_1", "cohort360"),
        ("OIDC_CLIENT_SECRET_1", "oidc-secret"),
        ("OIDC_REDIRECT_URI_1", "http://localhost:3000/"),
        ("OIDC_AUDIENCE", "cohort360"),
    ])
    .await;

    let login = |code: &str| {
        app.call(Method::POST, "/auth/login/")
            .header("authorizationmethod", "OIDC")
            .json(json!({"auth_code": code, "redirect_uri": "http://localhost:3000/"}))
    };
    let (status, body) = login(&format!("ok:{ADMIN}")).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    let (status, _) = app
        .call(Method::GET, "/users/")
        .header("authorization", &format!("Bearer {access}"))
        .header("authorizationmethod", "OIDC")
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    // An OIDC token is not a backend JWT.
    let (status, _) = app.call(Method::GET, "/users/").token(&access).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token signed by the right key but for an unknown audience is refused.
    let foreign = fakes::oidc::Realm::new(&issuer, "another-client", "x").token(ADMIN, "Bearer", 300);
    let (status, _) = app
        .call(Method::GET, "/users/")
        .header("authorization", &format!("Bearer {foreign}"))
        .header("authorizationmethod", "OIDC")
        .send()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) =
        oidc(app.call(Method::POST, "/auth/refresh/"), &access).json(json!({"refresh_token": refresh})).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) =
        oidc(app.call(Method::POST, "/auth/refresh/"), &access).json(json!({"refresh_token": refresh})).send().await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "Token is invalid or expired"})));
    let (status, _) =
        oidc(app.call(Method::POST, "/auth/logout/"), &access).json(json!({"refresh_token": rotated})).send().await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = login("bad-code").send().await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"error": "Invalid username or password"})));
    let (status, body) = login("ok:somebody-unknown").send().await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"error": "User matching query does not exist."})));
    let (status, body) = app
        .call(Method::POST, "/auth/login/")
        .header("authorizationmethod", "OIDC")
        .json(json!({"redirect_uri": "x"}))
        .send()
        .await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"error": "Missing `'auth_code'`"})));
}

#[tokio::test]
async fn impersonation_is_for_full_admins_only() {
    let app = TestApp::new().await;
    app.account("1000003", Some(9)).await; // user manager, not full admin
    let (admin, _) = app.login(ADMIN).await;
    let (manager, _) = app.login("1000003").await;

    let (status, body) = app
        .call(Method::POST, "/release-notes/")
        .token(&admin)
        .header("x-impersonate", "1000003")
        .json(json!({"title": "t", "message": []}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Acting as the manager: full-admin-only endpoints refuse.
    let (status, _) = app.call(Method::GET, "/logs/").token(&admin).header("x-impersonate", "1000003").send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::GET, "/logs/").token(&admin).send().await;
    assert_eq!(status, StatusCode::OK);
    // An unknown target: the admin stays themself.
    let (status, _) = app.call(Method::GET, "/logs/").token(&admin).header("x-impersonate", "ghost").send().await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.call(Method::GET, "/users/").token(&manager).header("x-impersonate", ADMIN).send().await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"detail": "Vous n'avez pas le droit d'impersonnifier un autre utilisateur"}))
    );
}

#[tokio::test]
async fn applicative_keys_authenticate_without_authorization_method() {
    let app = TestApp::new().await;
    let body =
        json!({"subject": "s", "start_datetime": "2030-01-01T00:00:00Z", "end_datetime": "2030-01-02T00:00:00Z"});
    let (status, _) = app
        .call(Method::POST, "/maintenances/")
        .header("authorization", "Bearer test-qe-token")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .call(Method::POST, "/maintenances/")
        .header("authorization", "Bearer test-qe-tokeN")
        .json(body)
        .send()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn oidc<'a>(call: integration_tests::Call<'a>, access: &str) -> integration_tests::Call<'a> {
    call.header("authorization", &format!("Bearer {access}")).header("authorizationmethod", "OIDC")
}
