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
        contract::{Doc, Paging},
        listing::{matches_regex_search, sort_by, ListQuery, Page, SortValue},
        views::FilterView,
        Api, AppState, Exposure, Principal, RouteSpec,
    },
};
use serde_json::json;
use uuid::Uuid;

use crate::{exports::sees_every_export, views::ExportCohortView};

/// The owner whose workspace a list reads.
const OWNER_ID: &str = "owner_id";
const OWNER_ID_DOC: &str = "The username whose objects are listed (the caller's by default; another's for callers who \
                            see every export, else the list is empty).";
const FILTER_ORDERING: [&str; 3] = ["created_at", "modified_at", "name"];
const FILTER_SEARCH: [&str; 3] = ["name", "fhir_resource", "filter"];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    let text = json!({"type": "string"});
    Api::new(state, "exports")
        .route(Method::GET, "/exports/cohorts/", Exposure::Authenticated, "Finished cohorts to export (LIMIT)", cohorts)
        .doc(Doc::new().paged::<ExportCohortView>(Paging::Limit).param(OWNER_ID, OWNER_ID_DOC, text.clone()))
        .route(Method::GET, "/exports/cohorts/{uuid}/", Exposure::Authenticated, "One of the caller's cohorts", cohort)
        .doc(Doc::new().reply::<ExportCohortView>(200, "The cohort."))
        .route(
            Method::GET,
            "/exports/fhir-filters/",
            Exposure::Authenticated,
            "Saved filters to export with (LIMIT)",
            filters,
        )
        .doc(
            Doc::new()
                .paged::<FilterView>(Paging::Limit)
                .ordering(&FILTER_ORDERING)
                .search(&FILTER_SEARCH)
                .param(OWNER_ID, OWNER_ID_DOC, text.clone())
                .param("fhir_resource", "Exact FHIR resource.", text)
                .param("identifying", "true or false (anything else: no filter).", json!({"type": "string"})),
        )
        .route(
            Method::GET,
            "/exports/fhir-filters/{uuid}/",
            Exposure::Authenticated,
            "One of the caller's saved filters",
            filter,
        )
        .doc(Doc::new().reply::<FilterView>(200, "The filter."))
        .build()
}

/// The workspace a list reads, or `None` when `owner_id` names one the caller may not see.
fn listed_owner<'a>(principal: &'a Principal, query: &'a ListQuery) -> Option<&'a str> {
    match query.get(OWNER_ID) {
        None => Some(principal.username.as_str()),
        Some(owner) if owner == principal.username || sees_every_export(principal) => Some(owner),
        Some(_) => None,
    }
}

async fn cohorts(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<ExportCohortView>>> {
    let mut cohorts = match listed_owner(&principal, &query) {
        Some(owner) => state.store.workspace(owner, &[Kind::Cohort]).await?.cohorts,
        None => Vec::new(),
    };
    cohorts.retain(|c| !c.is_subset && c.job.request_job_status == JobStatus::Finished);
    cohorts.sort_by_key(|c| std::cmp::Reverse(c.stamps.created_at));
    Ok(Json(query.limited_of(cohorts).map(|c| ExportCohortView::of(&c))))
}

async fn cohort(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<ExportCohortView>> {
    let uuid = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound(Kind::Cohort.model()))?;
    let found: Option<CohortResult> = state.store.workspace_object(&principal.username, uuid).await?;
    let cohort = found.filter(|c| !c.is_subset).ok_or(AppError::NotFound(Kind::Cohort.model()))?;
    Ok(Json(ExportCohortView::of(&cohort)))
}

async fn filters(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<FilterView>>> {
    let orders = query.ordering("ordering", &FILTER_ORDERING)?;
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
    Ok(Json(query.limited_of(filters).map(|f| FilterView::of(&f, f.owner.clone()))))
}

async fn filter(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<FilterView>> {
    let uuid = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound(Kind::Filter.model()))?;
    let found: Option<FhirFilter> = state.store.workspace_object(&principal.username, uuid).await?;
    Ok(Json({
        let filter = found.ok_or(AppError::NotFound(Kind::Filter.model()))?;
        FilterView::of(&filter, filter.owner.clone())
    }))
}
