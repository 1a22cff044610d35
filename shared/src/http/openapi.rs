//! The OpenAPI document, generated from the route inventories: an operation with a [`Doc`] is
//! described by the types its handler uses (issue 14); one without, generically until it is typed.
use std::collections::{BTreeMap, HashSet};

use axum::http::Method;
use serde_json::{json, Map, Value};

use super::{
    contract::{Components, Doc},
    Exposure, RouteSpec,
};

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn operation_id(spec: &RouteSpec) -> String {
    let path = spec.path.trim_matches('/').replace(['/', '{', '}', '-'], "_");
    format!("{}_{path}", spec.method.as_str().to_lowercase())
}

/// Operation ids must be unique: a path served with and without its trailing slash (`/cache`,
/// `/cache/`) gets a numbered second id.
fn unique(id: String, taken: &mut HashSet<String>) -> String {
    let mut candidate = id.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{id}_{n}");
        n += 1;
    }
    candidate
}

fn content(media_type: &str, schema: Value) -> Value {
    json!({ media_type: {"schema": schema} })
}

fn json_content(schema: Value) -> Value {
    content("application/json", schema)
}

/// The answers of a typed operation: its own, then the errors every such operation can give.
fn responses(spec: &RouteSpec, doc: &Doc, components: &mut Components) -> Map<String, Value> {
    let mut responses = Map::new();
    for reply in &doc.replies {
        let mut response = json!({"description": reply.description});
        if let Some(body) = reply.body {
            response["content"] = content(reply.media_type, body(components));
        }
        responses.insert(reply.status.to_string(), response);
    }
    let mut error = |status: u16, description: &str| {
        let response = json!({"description": description, "content": json_content(components.error(status))});
        responses.entry(status.to_string()).or_insert(response);
    };
    for (status, description) in &doc.errors {
        error(*status, description);
    }
    if doc.body.is_some() || !doc.query.is_empty() {
        error(400, "Invalid body or query parameter: the fields' messages (DRF), or a message.");
    }
    if spec.exposure == Exposure::Authenticated {
        error(403, "Not authenticated, or not permitted.");
    }
    if spec.path.contains('{') {
        error(404, "No such object, or not the caller's.");
    }
    if ![Method::GET, Method::HEAD, Method::OPTIONS].contains(&spec.method) {
        error(503, "Maintenance in progress, or the audit log is unavailable: nothing was done.");
    }
    responses
}

fn typed_operation(spec: &RouteSpec, doc: &Doc, components: &mut Components) -> Value {
    let mut parameters = path_parameters(spec.path);
    parameters.extend(doc.query.iter().map(
        |p| json!({"name": p.name, "in": "query", "required": false, "description": p.description, "schema": p.schema}),
    ));
    let mut operation = json!({
        "tags": [spec.tag],
        "summary": spec.summary,
        "parameters": parameters,
        "responses": responses(spec, doc, components),
    });
    if let Some(body) = doc.body {
        let schema = body(components);
        let mut content = json_content(schema.clone());
        for media in &doc.body_media {
            content[*media] = json!({"schema": schema});
        }
        operation["requestBody"] = json!({"required": true, "content": content});
    }
    operation
}

fn untyped_operation(spec: &RouteSpec) -> Value {
    json!({
        "tags": [spec.tag],
        "summary": spec.summary,
        "parameters": path_parameters(spec.path),
        "responses": {
            "200": {"description": "Success (201 on creation, 204 on deletion). Not yet described by its types."},
            "400": {"description": "Invalid input: DRF field errors."},
            "403": {"description": "Not authenticated, or not permitted."},
            "404": {"description": "Not found."}
        }
    })
}

pub fn document(specs: &[RouteSpec]) -> Value {
    let mut components = Components::default();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut ids = HashSet::new();
    for spec in specs {
        let mut operation = match &spec.doc {
            Some(doc) => typed_operation(spec, doc, &mut components),
            None => untyped_operation(spec),
        };
        operation["operationId"] = json!(unique(operation_id(spec), &mut ids));
        if spec.exposure == Exposure::Authenticated {
            operation["security"] = json!([{"bearer": [], "authorizationMethod": []}]);
        }
        paths.entry(spec.path).or_default().insert(spec.method.as_str().to_lowercase(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cohort360 backend",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Serverless re-implementation of the Cohort360 back end, wire-compatible with the Cohort360 and Portail front ends."
        },
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "authorizationMethod": {"type": "apiKey", "in": "header", "name": "authorizationMethod",
                    "description": "JWT (tokens from /auth/login/) or OIDC. Swagger UI requests are treated as JWT."}
            }
        },
        "paths": paths,
    })
}
