//! WebSocket live updates (spec §10.3, §5.6, §5.7; client contract §5.8): the handshake and its exact
//! frames, connection records, `job_status` pushes to the owner only, 410 Gone cleanup, and the dev
//! server's `/ws/` end to end with a real WebSocket client. Pushes go through the real Management API
//! client to a stub endpoint (moto never answers 410 and keeps no posted data).
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use futures_util::{SinkExt, StreamExt};
use http::Method;
use integration_tests::{
    live::{handshake, read, served_app},
    TestApp,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use ws_api::Handshake;

const QE: &str = "Bearer test-qe-token";

/// What the stub Management API received.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    Post(String, Value),
    Delete(String),
}

#[derive(Clone, Default)]
struct Stub {
    calls: Arc<Mutex<Vec<Call>>>,
    gone: Arc<Mutex<HashSet<String>>>,
}

impl Stub {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }

    fn posts_to(&self, id: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Post(to, body) if to == id => Some(body),
                _ => None,
            })
            .collect()
    }
}

async fn stub_post(State(stub): State<Stub>, Path(id): Path<String>, body: Bytes) -> Response {
    if stub.gone.lock().unwrap().contains(&id) {
        return (StatusCode::GONE, [("x-amzn-ErrorType", "GoneException")], "{\"message\":null}").into_response();
    }
    let body = serde_json::from_slice(&body).expect("pushes are JSON");
    stub.calls.lock().unwrap().push(Call::Post(id, body));
    StatusCode::OK.into_response()
}

async fn stub_delete(State(stub): State<Stub>, Path(id): Path<String>) -> StatusCode {
    stub.calls.lock().unwrap().push(Call::Delete(id));
    StatusCode::NO_CONTENT
}

/// A test app whose Management API is a stub recording every call.
async fn app_with_stub() -> (TestApp, Stub) {
    let stub = Stub::default();
    let router =
        Router::new().route("/stage/@connections/{id}", post(stub_post).delete(stub_delete)).with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/stage", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = TestApp::with_settings(&[("WS_MANAGEMENT_ENDPOINT", &endpoint)]).await;
    (app, stub)
}

async fn connections_of(app: &TestApp, username: &str) -> Vec<String> {
    let mut ids: Vec<String> =
        app.state.store.ws_connections_of(username).await.unwrap().into_iter().map(|c| c.connection_id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn handshake_accepts_a_valid_token_and_records_the_connection() {
    let (app, stub) = app_with_stub().await;
    let (token, _) = app.login("admin").await;
    let outcome = ws_api::on_message(&app.state, "c1", &handshake(&token)).await.unwrap();
    assert_eq!(outcome, Handshake::Accepted("admin".into()));
    assert_eq!(
        stub.calls(),
        [Call::Post("c1".into(), json!({"type": "handshake", "status": "accepted", "details": ""}))]
    );
    assert_eq!(connections_of(&app, "admin").await, ["c1"]);
    let all: Vec<String> = app.state.store.ws_connections().await.unwrap().into_iter().map(|c| c.username).collect();
    assert_eq!(all, ["admin"]);
}

#[tokio::test]
async fn handshake_without_token_is_pending_and_bad_tokens_are_refused_then_closed() {
    let (app, stub) = app_with_stub().await;
    let pending = json!({"type": "handshake", "status": "pending",
        "details": "Could not understand the JSON object, \"token\" key missing"});
    for frame in [json!({"auth_method": "JWT"}), json!({"token": "x"}), json!([1])] {
        stub.clear();
        let outcome = ws_api::on_message(&app.state, "c1", &frame.to_string()).await.unwrap();
        assert_eq!(outcome, Handshake::Pending, "{frame}");
        assert_eq!(stub.calls(), [Call::Post("c1".into(), pending.clone())], "{frame}");
    }

    let (token, refresh) = app.login("admin").await;
    let forbidden = json!({"type": "handshake", "status": "forbidden", "details": "Bad token"});
    for frame in [
        handshake("not-a-jwt"),
        handshake(&refresh), // a refresh token is not an access token
        json!({"token": token, "auth_method": "SAML"}).to_string(),
        json!({"token": "test-qe-token", "auth_method": "JWT"}).to_string(), // no applicative keys
    ] {
        stub.clear();
        let outcome = ws_api::on_message(&app.state, "c2", &frame).await.unwrap();
        assert_eq!(outcome, Handshake::Forbidden, "{frame}");
        assert_eq!(stub.calls(), [Call::Post("c2".into(), forbidden.clone()), Call::Delete("c2".into())], "{frame}");
    }

    stub.clear();
    assert_eq!(ws_api::on_message(&app.state, "c3", "hello").await.unwrap(), Handshake::Ignored);
    assert_eq!(stub.calls(), []);
    assert!(app.state.store.ws_connections().await.unwrap().is_empty());
}

#[tokio::test]
async fn handshake_honours_impersonation_like_http() {
    let (app, stub) = app_with_stub().await;
    app.account("bob", None).await;
    let (admin, _) = app.login("admin").await;
    let (bob, _) = app.login("bob").await;
    let frame = json!({"token": admin, "auth_method": "JWT", "headers": {"X-Impersonate": "bob"}}).to_string();
    assert_eq!(ws_api::on_message(&app.state, "a1", &frame).await.unwrap(), Handshake::Accepted("bob".into()));
    assert_eq!(connections_of(&app, "bob").await, ["a1"]);
    assert_eq!(connections_of(&app, "admin").await, Vec::<String>::new());

    // A user who may not impersonate is refused, as the HTTP edge answers 403.
    let frame = json!({"token": bob, "auth_method": "JWT", "headers": {"x-impersonate": "admin"}}).to_string();
    assert_eq!(ws_api::on_message(&app.state, "b1", &frame).await.unwrap(), Handshake::Forbidden);
    assert_eq!(stub.calls().last(), Some(&Call::Delete("b1".into())));
}

#[tokio::test]
async fn the_lambda_routes_record_and_forget_connections() {
    let (app, stub) = app_with_stub().await;
    let (token, _) = app.login("admin").await;
    let event = |route: &str, body: Option<String>| {
        let mut event: aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest =
            serde_json::from_str(include_str!("../events/ws-api/handshake.json")).unwrap();
        event.request_context.route_key = Some(route.into());
        event.request_context.connection_id = Some("L0SM9cOFvHcCIhw=".into());
        event.body = body;
        event
    };
    assert_eq!(ws_api::function_handler(&app.state, event("$connect", None)).await.status_code, 200);
    assert_eq!(stub.calls(), []);
    let response = ws_api::function_handler(&app.state, event("$default", Some(handshake(&token)))).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(stub.posts_to("L0SM9cOFvHcCIhw="), [json!({"type": "handshake", "status": "accepted", "details": ""})]);
    assert_eq!(connections_of(&app, "admin").await, ["L0SM9cOFvHcCIhw="]);
    assert_eq!(ws_api::function_handler(&app.state, event("$disconnect", None)).await.status_code, 200);
    assert_eq!(connections_of(&app, "admin").await, Vec::<String>::new());
}

async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Value) -> Value {
    let (status, body) = app.call(method, path).token(token).json(body).send().await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn qe_patch(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PATCH, path).header("authorization", QE).json(body).send().await
}

/// A request, its first snapshot and a count: `(snapshot, count)` uuids.
async fn counted(app: &TestApp, token: &str) -> (String, String) {
    let folder = call(app, token, Method::POST, "/cohort/folders/", json!({"name": "Projet"})).await;
    let request =
        call(app, token, Method::POST, "/cohort/requests/", json!({"name": "R", "parent_folder": folder["uuid"]}))
            .await;
    let query = json!({"version": "v1.6.1", "_type": "request", "sourcePopulation": {"caresiteCohortList": ["9999"]},
        "request": {"_type": "andGroup", "_id": 0, "isInclusive": true, "criteria": [], "temporalConstraints": []}});
    let body = json!({"request_id": request["uuid"], "serialized_query": query.to_string()});
    let snapshot = call(app, token, Method::POST, "/cohort/request-query-snapshots/", body).await;
    let body = json!({"request_query_snapshot_id": snapshot["uuid"]});
    let measure = call(app, token, Method::POST, "/cohort/dated-measures/", body).await;
    (snapshot["uuid"].as_str().unwrap().to_owned(), measure["uuid"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn count_callbacks_reach_every_connection_of_the_owner_and_only_them() {
    let (app, stub) = app_with_stub().await;
    app.account("alice", None).await;
    app.account("bob", None).await;
    let (alice, _) = app.login("alice").await;
    let (bob, _) = app.login("bob").await;
    for (id, token) in [("alice-1", &alice), ("alice-2", &alice), ("bob-1", &bob)] {
        ws_api::on_message(&app.state, id, &handshake(token)).await.unwrap();
    }
    let (snapshot, measure) = counted(&app, &alice).await;
    stub.clear();

    let path = format!("/cohort/dated-measures/{measure}/");
    let (status, body) =
        qe_patch(&app, &path, json!({"request_job_status": "FINISHED", "count": "42", "extra": {"a": 1}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = json!({
        "type": "job_status", "status": "finished", "uuid": measure, "job_name": "count",
        "extra_info": {"request_job_status": "finished", "request_job_fail_msg": "", "measure": 42,
            "snapshot_id": snapshot, "extra": {"a": 1}},
    });
    assert_eq!(stub.posts_to("alice-1"), std::slice::from_ref(&event));
    assert_eq!(stub.posts_to("alice-2"), [event]);
    assert_eq!(stub.posts_to("bob-1"), Vec::<Value>::new());

    // After a 400 (unknown status), the failed count is announced too.
    let (_, second) = counted(&app, &alice).await;
    stub.clear();
    let (status, _) =
        qe_patch(&app, &format!("/cohort/dated-measures/{second}/"), json!({"request_job_status": "weird"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let pushed = stub.posts_to("alice-1");
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!((&pushed[0]["uuid"], &pushed[0]["status"]), (&json!(second), &json!("failed")));
    assert!(pushed[0]["extra_info"]["request_job_fail_msg"].as_str().is_some_and(|m| !m.is_empty()), "{pushed:?}");
    assert_eq!(stub.posts_to("bob-1"), Vec::<Value>::new());
}

#[tokio::test]
async fn a_gone_connection_loses_its_record_and_the_others_keep_theirs() {
    let (app, stub) = app_with_stub().await;
    app.account("alice", None).await;
    let (alice, _) = app.login("alice").await;
    for id in ["stale", "live"] {
        ws_api::on_message(&app.state, id, &handshake(&alice)).await.unwrap();
    }
    assert_eq!(connections_of(&app, "alice").await, ["live", "stale"]);
    stub.gone.lock().unwrap().insert("stale".into());
    let (_, measure) = counted(&app, &alice).await;
    stub.clear();
    let path = format!("/cohort/dated-measures/{measure}/");
    let (status, _) = qe_patch(&app, &path, json!({"request_job_status": "PENDING"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stub.posts_to("live").len(), 1);
    assert_eq!(connections_of(&app, "alice").await, ["live"]);
}

#[tokio::test]
async fn cohort_callbacks_announce_the_creation_with_its_size() {
    let (app, stub) = app_with_stub().await;
    app.account("alice", None).await;
    let (alice, _) = app.login("alice").await;
    ws_api::on_message(&app.state, "alice-1", &handshake(&alice)).await.unwrap();
    let (snapshot, measure) = counted(&app, &alice).await;
    let (status, _) = qe_patch(
        &app,
        &format!("/cohort/dated-measures/{measure}/"),
        json!({"request_job_status": "FINISHED", "count": "10"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = json!({"name": "C", "request_query_snapshot_id": snapshot, "dated_measure_id": measure});
    let cohort = call(&app, &alice, Method::POST, "/cohort/cohorts/", body).await;
    let uuid = cohort["uuid"].as_str().unwrap();
    stub.clear();

    let body = json!({"request_job_status": "FINISHED", "group.id": "123", "group.count": "456", "extra": {}});
    let (status, updated) = qe_patch(&app, &format!("/cohort/cohorts/{uuid}/"), body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        stub.posts_to("alice-1"),
        [json!({"type": "job_status", "status": "finished", "uuid": uuid, "job_name": "create",
            "extra_info": {"request_job_status": "finished", "group_id": "123", "result_size": 456,
                "request_job_fail_msg": ""}})]
    );
}

/// The dev server's `/api/back/ws/` with a real client: the handshake, then a count's `job_status`
/// delivered through the dev server's own `/ws-management`, then the record goes with the socket.
#[tokio::test]
async fn the_dev_server_serves_websockets_end_to_end() {
    let (app, address) = served_app(&[]).await;
    app.account("alice", None).await;
    let (alice, _) = app.login("alice").await;

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/back/ws/")).await.unwrap();

    socket.send(Message::text(json!({"auth_method": "JWT"}).to_string())).await.unwrap();
    assert_eq!(read(&mut socket).await["status"], "pending");
    socket.send(Message::text(handshake(&alice))).await.unwrap();
    assert_eq!(read(&mut socket).await, json!({"type": "handshake", "status": "accepted", "details": ""}));
    let connection = app.state.store.ws_connections_of("alice").await.unwrap();
    assert_eq!(connection.len(), 1);

    let (_, measure) = counted(&app, &alice).await;
    let path = format!("/cohort/dated-measures/{measure}/");
    let (status, _) = qe_patch(&app, &path, json!({"request_job_status": "FINISHED", "count": "7"})).await;
    assert_eq!(status, StatusCode::OK);
    let event = read(&mut socket).await;
    assert_eq!(
        (&event["type"], &event["uuid"], &event["extra_info"]["measure"]),
        (&json!("job_status"), &json!(measure), &json!(7))
    );

    socket.close(None).await.unwrap();
    for _ in 0..50 {
        if app.state.store.ws_connections_of("alice").await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.state.store.ws_connections_of("alice").await.unwrap().is_empty(), "the record went with the socket");

    // A bad token: the forbidden frame, then the server closes the socket.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws/")).await.unwrap();
    socket.send(Message::text(handshake("nope"))).await.unwrap();
    assert_eq!(read(&mut socket).await, json!({"type": "handshake", "status": "forbidden", "details": "Bad token"}));
    let closed = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("closed in time");
    assert!(matches!(closed, None | Some(Ok(Message::Close(_))) | Some(Err(_))), "{closed:?}");
}

#[tokio::test]
async fn maintenance_phases_are_broadcast_to_every_connection() {
    let (app, stub) = app_with_stub().await;
    app.account("alice", None).await;
    let (admin, _) = app.login("admin").await;
    let (alice, _) = app.login("alice").await;
    ws_api::on_message(&app.state, "admin-1", &handshake(&admin)).await.unwrap();
    ws_api::on_message(&app.state, "alice-1", &handshake(&alice)).await.unwrap();
    let tasks = integration_tests::tasks(&app, None).await;
    let run = || scheduled_tasks::function_handler(&tasks, json!({"task": "maintenance_broadcast"}));

    stub.clear();
    assert_eq!(run().await.unwrap()["events"], 0);
    assert_eq!(stub.calls(), []);

    let now = c360::domain::time::now();
    let (start, end) = (now - time::Duration::minutes(5), now + time::Duration::hours(1));
    let body = json!({"subject": "Mise à jour", "message": "upgrade", "type": "full",
        "start_datetime": c360::domain::time::iso(start), "end_datetime": c360::domain::time::iso(end)});
    let phase = call(&app, &admin, Method::POST, "/maintenances/", body).await;
    let info = |active: bool| {
        json!({"type": "maintenance", "info": {"id": phase["id"], "subject": "Mise à jour",
            "maintenance_start": c360::domain::time::python_isoformat(start),
            "maintenance_end": c360::domain::time::python_isoformat(end),
            "active": active, "type": "full", "message": "upgrade"}})
    };
    stub.clear();
    let out = run().await.unwrap();
    assert_eq!((&out["events"], &out["delivered"]), (&json!(1), &json!(2)), "{out}");
    assert_eq!(stub.posts_to("admin-1"), [info(true)]);
    assert_eq!(stub.posts_to("alice-1"), [info(true)]);

    // Deleting the phase in progress tells everyone it is over.
    stub.clear();
    let path = format!("/maintenances/{}/", phase["id"]);
    let (status, _) = app.call(Method::DELETE, &path).token(&admin).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stub.posts_to("alice-1"), [info(false)]);
    stub.clear();
    assert_eq!(run().await.unwrap()["events"], 0);
}
