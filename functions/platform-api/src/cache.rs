//! `/cache` (spec §9.6). The original inspects its Redis response cache; we keep no response
//! cache, only per-container caches of reference data, which this endpoint shows and clears.
use std::sync::Arc;

use axum::{
    extract::State,
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    error::AppResult,
    http::{contract::Doc, listing::ListQuery, Api, AppState, Exposure, MethodPolicy, Principal, RouteSpec},
};
use serde_json::json;

use crate::views::{CacheSizesView, CacheView};

/// With it (any value), only the caches' names are listed.
const KEYS_ONLY: &str = "keys_only";

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    let mut api = Api::new(state, "cache").method_policy(MethodPolicy::NotAllowedIf(Principal::is_full_admin));
    for path in ["/cache", "/cache/"] {
        api = api
            .route(Method::GET, path, Exposure::Authenticated, "Container caches (full admin)", show)
            .doc(
                Doc::new()
                    .param(KEYS_ONLY, "Present: only the caches' names.", json!({"type": "string"}))
                    .reply::<CacheView>(200, "Each cache and its size, or with `keys_only` their names."),
            )
            .route(Method::DELETE, path, Exposure::Authenticated, "Clear the container caches (full admin)", clear)
            .doc(Doc::new().empty(204, "Cleared: the next calls read the reference data again."));
    }
    api.build()
}

async fn show(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<CacheView>> {
    principal.ensure(Principal::is_full_admin)?;
    let roles = state.roles().await?;
    if query.get(KEYS_ONLY).is_some() {
        return Ok(Json(CacheView::Keys(vec!["roles".to_owned()])));
    }
    Ok(Json(CacheView::Sizes(CacheSizesView { roles: format!("{} roles", roles.len()) })))
}

async fn clear(State(state): State<AppState>, principal: Arc<Principal>) -> AppResult<StatusCode> {
    principal.ensure(Principal::is_full_admin)?;
    state.invalidate_roles();
    Ok(StatusCode::NO_CONTENT)
}
