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
    http::{contract::Doc, Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec},
    services::perimeter_sync::{queue_virtual_cohorts, set_virtual_cohort, sync_fhir},
};
use serde::Serialize;
use serde_json::Value;

use crate::common::is_applicative;

fn allowed(principal: &Principal) -> bool {
    principal.is_full_admin() || is_applicative(principal)
}

/// The virtual cohort callback's body (not validated: numbers are taken as text, a missing key clears).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `set_cohort`
struct VirtualCohort {
    #[schema(rename = "group.id")]
    group_id: Option<String>,
    #[schema(rename = "group.count")]
    group_count: Option<String>,
}

/// An empty JSON object.
#[derive(Serialize, utoipa::ToSchema)]
struct Empty {}

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
        .doc(
            Doc::new()
                .reply::<()>(200, "Done: `null`.")
                .error(502, "The FHIR server failed or listed nothing usable: nothing was changed.")
                .error(503, "The FHIR server is not configured."),
        )
        .route(
            Method::PATCH,
            "/fhir-perimeters/{id}/",
            Exposure::Authenticated,
            "QueryExecutor callback: a perimeter's virtual cohort",
            set_cohort,
        )
        .doc(Doc::new().body::<VirtualCohort>().reply::<Empty>(200, "Recorded: `{}`."))
        .build()
}

async fn sync(State(state): State<AppState>, principal: Arc<Principal>) -> AppResult<Json<()>> {
    principal.ensure(allowed)?;
    let mut report = sync_fhir(&state.store, &state.settings.fhir, &state.http, time::now()).await?;
    queue_virtual_cohorts(&state.jobs, &mut report).await?;
    state.invalidate_perimeter_tree();
    tracing::info!(?report, "FHIR perimeter sync");
    Ok(Json(()))
}

/// `{"group.id", "group.count"}` (not validated; numbers are taken as text, missing keys clear).
async fn set_cohort(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Empty>> {
    principal.ensure(allowed)?;
    let id: i64 = id.parse().map_err(|_| AppError::NotFound("Perimeter"))?;
    let text = |key: &str| match body.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    set_virtual_cohort(&state.store, id, text("group.id").as_deref(), text("group.count").as_deref()).await?;
    state.invalidate_perimeter_tree();
    Ok(Json(Empty {}))
}
