//! `/cache` (spec §9.6). The original inspects its Redis response cache; we keep no response
//! cache, only per-container caches of reference data, which this endpoint shows and clears.
use std::sync::Arc;

use axum::{
    extract::State,
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    error::AppResult,
    http::{listing::ListQuery, Api, AppState, Exposure, MethodPolicy, Principal, RouteSpec},
};
use serde_json::json;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    let mut api = Api::new(state, "cache").method_policy(MethodPolicy::NotAllowedIf(Principal::is_full_admin));
    for path in ["/cache", "/cache/"] {
        api = api.route(Method::GET, path, Exposure::Authenticated, "Container caches (full admin)", show).route(
            Method::DELETE,
            path,
            Exposure::Authenticated,
            "Clear the container caches (full admin)",
            clear,
        );
    }
    api.build()
}

async fn show(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Response> {
    principal.ensure(Principal::is_full_admin)?;
    let roles = state.roles().await?;
    if query.get("keys_only").is_some() {
        return Ok(Json(json!(["roles"])).into_response());
    }
    Ok(Json(json!({"roles": format!("{} roles", roles.len())})).into_response())
}

async fn clear(State(state): State<AppState>, principal: Arc<Principal>) -> AppResult<Response> {
    principal.ensure(Principal::is_full_admin)?;
    state.invalidate_roles();
    Ok(StatusCode::NO_CONTENT.into_response())
}
