//! Helpers of the cohort tests: a logged-in cohort user, JSON calls, and readers of answers.
use http::{Method, StatusCode};
use serde_json::Value;

use crate::TestApp;

pub async fn app_with_alice() -> (TestApp, String) {
    let app = TestApp::new().await;
    app.account("alice", None).await;
    let (alice, _) = app.login("alice").await;
    (app, alice)
}

pub async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, path).token(token).json(body).send().await
}

/// A POST that must answer 201; returns the created object.
pub async fn created(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, created) = post(app, token, path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {created}");
    created
}

pub async fn patch(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PATCH, path).token(token).json(body).send().await
}

pub async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path).token(token).send().await
}

pub async fn delete(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    app.call(Method::DELETE, path).token(token).send().await
}

pub fn keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> =
        object.as_object().unwrap_or_else(|| panic!("an object: {object}")).keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

pub fn uuid_of(value: &Value) -> String {
    value["uuid"].as_str().unwrap_or_else(|| panic!("a uuid in {value}")).to_owned()
}

pub fn names(list: &Value) -> Vec<String> {
    list["results"]
        .as_array()
        .unwrap_or_else(|| panic!("an envelope: {list}"))
        .iter()
        .map(|o| o["name"].as_str().unwrap_or("<null>").to_owned())
        .collect()
}

/// A serialized query (client contract §5.3) on the given `caresiteCohortList`, as the front sends it.
pub fn query(cohort_ids: Value) -> String {
    serde_json::json!({
        "version": "v1.6.1",
        "_type": "request",
        "sourcePopulation": {"caresiteCohortList": cohort_ids},
        "request": {"_type": "andGroup", "_id": 0, "isInclusive": true, "criteria": [], "temporalConstraints": []},
    })
    .to_string()
}
