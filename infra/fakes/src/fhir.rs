//! A FHIR server, as the backend uses it:
//! - the Organization search: `GET <prefix>/Organization?active=true&_count=N` answers a `searchset`
//!   Bundle of at most `min(N, page_size)` Organizations with a `next` link (`_offset`), as HAPI caps
//!   `_count`. With a token set, requests without `Authorization: Bearer <token>` get 401.
//! - the `$query` operation of the Solr formatting (spec §6.3): `GET <prefix>/<Resource>/$query?<params>`
//!   answers a `Parameters` resource with `collection` and a deterministic `fq` (`fq=<k>:(<v>)` per
//!   parameter, in order; `fq=*:*` without any). It needs some bearer token (401 otherwise), as a
//!   real server checks the requester's; each call is recorded with the headers it forwarded.
//! - the plain search of `TEST_FHIR_QUERIES` (`GET <prefix>/<Resource>?<params>&_count=0`): an empty
//!   Bundle, or 400 for a search parameter the fake does not know (see [`KNOWN_SEARCH_PARAMETERS`]).
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::{
    extract::{Path, Query, RawQuery, State},
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
    queries: Mutex<Vec<SolrQuery>>,
}

/// One `$query` or plain search call, as received.
#[derive(Clone, Debug, PartialEq)]
pub struct SolrQuery {
    pub resource: String,
    /// `true` for `$query`, `false` for the plain search.
    pub operation: bool,
    pub params: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub authorization_method: Option<String>,
    pub trace_id: Option<String>,
}

/// The resources the fake serves `$query` and searches for.
pub const RESOURCES: [&str; 13] = [
    "Patient",
    "Condition",
    "Composition",
    "Claim",
    "Procedure",
    "Specimen",
    "Observation",
    "Encounter",
    "MedicationRequest",
    "MedicationAdministration",
    "DocumentReference",
    "ImagingStudy",
    "QuestionnaireResponse",
];

/// Search parameters (before any `.chain` or `:modifier`) the plain search accepts.
pub const KNOWN_SEARCH_PARAMETERS: [&str; 28] = [
    "_id",
    "_list",
    "_text",
    "_filter",
    "_has",
    "_security",
    "_tag",
    "_count",
    "identifier",
    "active",
    "gender",
    "birthdate",
    "deceased",
    "code",
    "category",
    "status",
    "subject",
    "patient",
    "encounter",
    "date",
    "onset-date",
    "recorded-date",
    "type",
    "class",
    "service-provider",
    "value-quantity",
    "medication",
    "route",
];

impl FhirServer {
    /// `organizations` are FHIR `Organization` resources; an empty token disables the check.
    pub fn new(token: &str, page_size: usize, organizations: Vec<Value>) -> Self {
        Self {
            token: (!token.is_empty()).then(|| token.to_owned()),
            page_size: page_size.max(1),
            organizations: Mutex::new(organizations),
            searches: AtomicUsize::new(0),
            queries: Mutex::new(Vec::new()),
        }
    }

    /// The `$query` and plain search calls received so far.
    pub fn queries(&self) -> Vec<SolrQuery> {
        self.queries.lock().expect("queries lock").clone()
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
    let prefix = path_prefix.trim_end_matches('/');
    Router::new()
        .route(&format!("{prefix}/Organization"), get(search))
        .route(&format!("{prefix}/{{resource}}"), get(resource_search))
        .route(&format!("{prefix}/{{resource}}/$query"), get(solr_query))
        .with_state(server)
}

/// A refused call's status and OperationOutcome.
type Refusal = (StatusCode, Json<Value>);

/// Reads and records a `$query` or plain search call; `Err` is the answer when it is refused.
fn received(
    server: &FhirServer,
    resource: String,
    operation: bool,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Vec<(String, String)>, Refusal> {
    if !RESOURCES.contains(&resource.as_str()) {
        return Err((StatusCode::NOT_FOUND, Json(outcome("not-supported", "unknown resource type"))));
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| (StatusCode::BAD_REQUEST, Json(outcome("invalid", "unreadable query"))))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = header("authorization");
    server.queries.lock().expect("queries lock").push(SolrQuery {
        resource,
        operation,
        params: params.clone(),
        authorization: authorization.clone(),
        authorization_method: header("authorizationmethod"),
        trace_id: header("x-trace-id"),
    });
    match authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
        Some(token) if !token.trim().is_empty() => Ok(params),
        _ => Err((StatusCode::UNAUTHORIZED, Json(outcome("login", "invalid or missing bearer token")))),
    }
}

async fn solr_query(
    State(server): State<Arc<FhirServer>>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match received(&server, resource.clone(), true, &headers, query.as_deref()) {
        Ok(params) => params,
        Err(refused) => return refused.into_response(),
    };
    let fq = if params.is_empty() {
        "fq=*:*".to_owned()
    } else {
        params.iter().map(|(k, v)| format!("fq={k}:({})", v.replace(',', " "))).collect::<Vec<_>>().join("&")
    };
    Json(json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "collection", "valueString": format!("{}Aphp", resource.to_lowercase())},
            {"name": "fq", "valueString": fq},
        ],
    }))
    .into_response()
}

async fn resource_search(
    State(server): State<Arc<FhirServer>>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match received(&server, resource, false, &headers, query.as_deref()) {
        Ok(params) => params,
        Err(refused) => return refused.into_response(),
    };
    let base = |name: &str| name.split(['.', ':']).next().unwrap_or_default().to_owned();
    if let Some((unknown, _)) = params.iter().find(|(k, _)| !KNOWN_SEARCH_PARAMETERS.contains(&base(k).as_str())) {
        let message = format!("Unknown search parameter \"{unknown}\"");
        return (StatusCode::BAD_REQUEST, Json(outcome("not-supported", &message))).into_response();
    }
    Json(json!({"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []})).into_response()
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
            return (StatusCode::UNAUTHORIZED, Json(outcome("login", "invalid or missing bearer token")))
                .into_response();
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

fn outcome(code: &str, message: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": message}]})
}
