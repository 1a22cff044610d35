//! A FHIR server's Organization search: `GET <prefix>/Organization?active=true&_count=N` answers a
//! `searchset` Bundle of at most `min(N, page_size)` Organizations with a `next` link (`_offset`),
//! as HAPI caps `_count`. With a token set, requests without `Authorization: Bearer <token>` get 401.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

/// The demo Organizations: the tree of infra/data/perimeters.demo.csv.
pub const DEMO_ORGANIZATIONS: &str = include_str!("../fixtures/organizations.demo.json");

pub struct FhirServer {
    token: Option<String>,
    page_size: usize,
    organizations: Mutex<Vec<Value>>,
    searches: AtomicUsize,
}

impl FhirServer {
    /// `organizations` are FHIR `Organization` resources; an empty token disables the check.
    pub fn new(token: &str, page_size: usize, organizations: Vec<Value>) -> Self {
        Self {
            token: (!token.is_empty()).then(|| token.to_owned()),
            page_size: page_size.max(1),
            organizations: Mutex::new(organizations),
            searches: AtomicUsize::new(0),
        }
    }

    /// Replaces what the server holds (an Organization closed, moved, added...).
    pub fn set_organizations(&self, organizations: Vec<Value>) {
        *self.organizations.lock().expect("organizations lock") = organizations;
    }

    /// Search requests served (pages included), authorised or not.
    pub fn searches(&self) -> usize {
        self.searches.load(Ordering::SeqCst)
    }
}

/// The demo Organizations as resources.
pub fn demo_organizations() -> Vec<Value> {
    serde_json::from_str(DEMO_ORGANIZATIONS).expect("the bundled fixture is a JSON array")
}

/// Routes under `path_prefix` (the path of `FHIR_URL`, e.g. `/fhir`).
pub fn router(path_prefix: &str, server: Arc<FhirServer>) -> Router {
    Router::new().route(&format!("{}/Organization", path_prefix.trim_end_matches('/')), get(search)).with_state(server)
}

async fn search(
    State(server): State<Arc<FhirServer>>,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    server.searches.fetch_add(1, Ordering::SeqCst);
    if let Some(token) = &server.token {
        let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if bearer != Some(format!("Bearer {token}").as_str()) {
            return (StatusCode::UNAUTHORIZED, Json(outcome("invalid or missing bearer token"))).into_response();
        }
    }
    let number = |name: &str, default: usize| params.get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let count = number("_count", server.page_size).clamp(1, server.page_size);
    let offset = number("_offset", 0);
    let active_only = params.get("active").map(String::as_str);
    let matching: Vec<Value> = server
        .organizations
        .lock()
        .expect("organizations lock")
        .iter()
        .filter(|o| match active_only {
            Some(wanted) => o["active"].as_bool().unwrap_or(true).to_string() == wanted,
            None => true,
        })
        .cloned()
        .collect();
    // Absolute links on the address the client used, as real servers build them.
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    let page_url = |offset: usize| {
        let mut query: Vec<String> =
            params.iter().filter(|(k, _)| *k != "_offset").map(|(k, v)| format!("{k}={v}")).collect();
        query.sort();
        query.push(format!("_offset={offset}"));
        format!("http://{host}{}?{}", uri.path(), query.join("&"))
    };
    let page: Vec<Value> = matching.iter().skip(offset).take(count).cloned().collect();
    let mut links = vec![json!({"relation": "self", "url": page_url(offset)})];
    if offset + count < matching.len() {
        links.push(json!({"relation": "next", "url": page_url(offset + count)}));
    }
    Json(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": matching.len(),
        "link": links,
        "entry": page.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    }))
    .into_response()
}

fn outcome(message: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login", "diagnostics": message}]})
}
