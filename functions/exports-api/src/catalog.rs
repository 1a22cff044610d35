//! `/exports/cohorts/` and `/exports/fhir-filters/` (spec §7.6): what the export forms offer. The
//! original lists every user's; here a list reads one workspace: `owner_id`'s when the caller may see
//! every export (the Portail always sends it) or is that owner, else the caller's own.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::Method,
    Json, Router,
};
use c360::{
    domain::{
        cohort::{CohortResult, FhirFilter, JobStatus, Kind},
        time,
    },
    error::{AppError, AppResult},
    http::{
        listing::{matches_regex_search, sort_by, ListQuery, SortValue},
        Api, AppState, Exposure, Principal, RouteSpec,
    },
};
use serde_json::Value;
use uuid::Uuid;

use crate::{exports::sees_every_export, views};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "exports")
        .route(Method::GET, "/exports/cohorts/", Exposure::Authenticated, "Finished cohorts to export (LIMIT)", cohorts)
        .route(Method::GET, "/exports/cohorts/{uuid}/", Exposure::Authenticated, "One of the caller's cohorts", cohort)
        .route(
            Method::GET,
            "/exports/fhir-filters/",
            Exposure::Authenticated,
            "Saved filters to export with (LIMIT)",
            filters,
        )
        .route(
            Method::GET,
            "/exports/fhir-filters/{uuid}/",
            Exposure::Authenticated,
            "One of the caller's saved filters",
            filter,
        )
        .build()
}

/// The workspace a list reads, or `None` when `owner_id` names one the caller may not see.
fn listed_owner<'a>(principal: &'a Principal, query: &'a ListQuery) -> Option<&'a str> {
    match query.get("owner_id") {
        None => Some(principal.username.as_str()),
        Some(owner) if owner == principal.username || sees_every_export(principal) => Some(owner),
        Some(_) => None,
    }
}

async fn cohorts(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let mut cohorts = match listed_owner(&principal, &query) {
        Some(owner) => state.store.workspace(owner, &[Kind::Cohort]).await?.cohorts,
        None => Vec::new(),
    };
    cohorts.retain(|c| !c.is_subset && c.job.request_job_status == JobStatus::Finished);
    cohorts.sort_by_key(|c| std::cmp::Reverse(c.stamps.created_at));
    Ok(Json(query.limited_of(cohorts).envelope(|c| views::cohort(&c))))
}

async fn cohort(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<Value>> {
    let uuid = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound(Kind::Cohort.model()))?;
    let found: Option<CohortResult> = state.store.workspace_object(&principal.username, uuid).await?;
    let cohort = found.filter(|c| !c.is_subset).ok_or(AppError::NotFound(Kind::Cohort.model()))?;
    Ok(Json(views::cohort(&cohort)))
}

async fn filters(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let orders = query.ordering("ordering", &["created_at", "modified_at", "name"])?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    let mut filters = match listed_owner(&principal, &query) {
        Some(owner) => state.store.workspace(owner, &[Kind::Filter]).await?.filters,
        None => Vec::new(),
    };
    let terms = query.search_terms();
    filters.retain(|f| {
        !f.auto_generated
            && query.get("fhir_resource").is_none_or(|r| f.fhir_resource == r)
            && query.flag("identifying").is_none_or(|i| f.identifying == i)
            && matches_regex_search(
                &terms,
                &[Some(f.name.as_str()), Some(f.fhir_resource.as_str()), Some(f.filter.as_str())],
            )
    });
    sort_by(&mut filters, &orders, |f: &FhirFilter, field| match field {
        "name" => SortValue::Text(f.name.clone()),
        "modified_at" => SortValue::Text(time::iso(f.stamps.modified_at)),
        _ => SortValue::Text(time::iso(f.stamps.created_at)),
    });
    Ok(Json(query.limited_of(filters).envelope(|f| views::filter(&f))))
}

async fn filter(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<Value>> {
    let uuid = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound(Kind::Filter.model()))?;
    let found: Option<FhirFilter> = state.store.workspace_object(&principal.username, uuid).await?;
    Ok(Json(views::filter(&found.ok_or(AppError::NotFound(Kind::Filter.model()))?)))
}
