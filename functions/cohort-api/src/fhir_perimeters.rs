//! `/fhir-perimeters/` (spec §6.6): the FHIR perimeter sync on demand, and the QueryExecutor callback
//! setting a perimeter's virtual cohort. Full admins and the QueryExecutor / Solr ETL only.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::Method,
    Json, Router,
};
use c360::{
    domain::time,
    error::{AppError, AppResult},
    http::{Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec},
    services::perimeter_sync::{queue_virtual_cohorts, set_virtual_cohort, sync_fhir},
};
use serde_json::{json, Value};

use crate::common::is_applicative;

fn allowed(principal: &Principal) -> bool {
    principal.is_full_admin() || is_applicative(principal)
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "cohort")
        .method_policy(MethodPolicy::NotAllowedIf(allowed))
        .route(
            Method::PUT,
            "/fhir-perimeters/_sync/",
            Exposure::Authenticated,
            "Synchronise the perimeter tree from FHIR Organizations now",
            sync,
        )
        .route(
            Method::PATCH,
            "/fhir-perimeters/{id}/",
            Exposure::Authenticated,
            "QueryExecutor callback: a perimeter's virtual cohort",
            set_cohort,
        )
        .build()
}

async fn sync(State(state): State<AppState>, principal: Arc<Principal>) -> AppResult<Json<Value>> {
    principal.ensure(allowed)?;
    let mut report = sync_fhir(&state.store, &state.settings.fhir, &state.http, time::now()).await?;
    queue_virtual_cohorts(&state.jobs, &mut report).await?;
    state.invalidate_perimeter_tree();
    tracing::info!(?report, "FHIR perimeter sync");
    Ok(Json(Value::Null))
}

/// `{"group.id", "group.count"}` (not validated; numbers are taken as text, missing keys clear).
async fn set_cohort(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    principal.ensure(allowed)?;
    let id: i64 = id.parse().map_err(|_| AppError::NotFound("Perimeter"))?;
    let text = |key: &str| match body.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    set_virtual_cohort(&state.store, id, text("group.id").as_deref(), text("group.count").as_deref()).await?;
    state.invalidate_perimeter_tree();
    Ok(Json(json!({})))
}
