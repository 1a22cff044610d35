//! The identity server behind the original's authentication hooks: `POST /user/authenticate`
//! (form `username`, `password`; 200 when valid) and `POST /user/info` (form `username`; 200 with
//! `data.attributes.{givenName, sn, cn, mail}`, 404 when unknown). Both require `Key-auth`.
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Form, Json, Router,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Clone, Debug)]
pub struct Person {
    pub username: String,
    pub password: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
}

struct Directory {
    key: String,
    people: HashMap<String, Person>,
}

/// `username:password:firstname:lastname:email;...` (the `FAKE_IDENTITY_USERS` format).
pub fn parse_people(spec: &str) -> Vec<Person> {
    spec.split(';')
        .filter_map(|entry| {
            let f: Vec<&str> = entry.trim().split(':').collect();
            (f.len() == 5).then(|| Person {
                username: f[0].into(),
                password: f[1].into(),
                firstname: f[2].into(),
                lastname: f[3].into(),
                email: f[4].into(),
            })
        })
        .collect()
}

pub fn router(key: &str, people: Vec<Person>) -> Router {
    let directory =
        Directory { key: key.to_owned(), people: people.into_iter().map(|p| (p.username.clone(), p)).collect() };
    Router::new()
        .route("/user/authenticate", post(authenticate))
        .route("/user/info", post(info))
        .with_state(Arc::new(directory))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    #[serde(default)]
    password: String,
}

fn authorised(directory: &Directory, headers: &HeaderMap) -> bool {
    headers.get("key-auth").and_then(|v| v.to_str().ok()) == Some(directory.key.as_str())
}

async fn authenticate(
    State(directory): State<Arc<Directory>>,
    headers: HeaderMap,
    Form(c): Form<Credentials>,
) -> StatusCode {
    if !authorised(&directory, &headers) {
        return StatusCode::FORBIDDEN;
    }
    match directory.people.get(&c.username) {
        Some(p) if p.password == c.password => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn info(State(directory): State<Arc<Directory>>, headers: HeaderMap, Form(c): Form<Credentials>) -> Response {
    if !authorised(&directory, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    match directory.people.get(&c.username) {
        Some(p) => Json(json!({"data": {"attributes": {"givenName": p.firstname, "sn": p.lastname, "cn": p.username, "mail": p.email}}}))
            .into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response(),
    }
}
