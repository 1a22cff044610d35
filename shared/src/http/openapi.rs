//! The OpenAPI document, generated from the route inventories, and the offline Swagger UI page.
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Exposure, RouteSpec};

pub fn document(specs: &[RouteSpec]) -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for spec in specs {
        let parameters: Vec<Value> = spec
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut operation = json!({
            "tags": [spec.tag],
            "summary": spec.summary,
            "operationId": format!("{}_{}", spec.method.as_str().to_lowercase(), spec.path.trim_matches('/').replace(['/', '{', '}', '-'], "_")),
            "parameters": parameters,
            "responses": {
                "200": {"description": "Success (201 on creation, 204 on deletion)."},
                "400": {"description": "Invalid input: DRF field errors."},
                "403": {"description": "Not authenticated, or not permitted."},
                "404": {"description": "Not found."}
            }
        });
        if spec.exposure == Exposure::Authenticated {
            operation["security"] = json!([{"bearer": [], "authorizationMethod": []}]);
        }
        paths.entry(spec.path).or_default().insert(spec.method.as_str().to_lowercase(), operation);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Cohort360 backend",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Serverless re-implementation of the Cohort360 back end, wire-compatible with the Cohort360 and Portail front ends."
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "authorizationMethod": {"type": "apiKey", "in": "header", "name": "authorizationMethod",
                    "description": "JWT (tokens from /auth/login/) or OIDC. Swagger UI requests are treated as JWT."}
            }
        },
        "paths": paths,
    })
}
