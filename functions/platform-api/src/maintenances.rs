//! `/maintenances/` (spec §9.1): readable by anyone; written by full admins and applicative users.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        maintenance::{next_phase, validate, MaintenancePhase},
        time::{self, DateTime},
    },
    error::{AppError, AppResult},
    http::{
        contract::{Doc, Paging},
        listing::{matches_regex_search, sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, PublicCaller, RouteSpec,
    },
    store::Condition,
};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::views::{MaintenanceView, NextMaintenanceView, NoMaintenance};

/// A phase as POST creates it and PATCH edits it. Documentation only: the domain's `validate` reads
/// the body, its quirks kept (only JSON strings for `subject`, a non-boolean
/// `is_data_saved_message_hidden` ignored, the start/end check after merging on PATCH).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct MaintenanceBody {
    /// Not blank.
    subject: String,
    message: Option<String>,
    /// `partial` (the default) or `full`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(partial|full)$")]
    kind: Option<String>,
    #[schema(format = DateTime)]
    start_datetime: String,
    /// Not before `start_datetime`.
    #[schema(format = DateTime)]
    end_datetime: String,
    /// Only a JSON boolean is taken; anything else leaves the value as it is.
    is_data_saved_message_hidden: Option<bool>,
}

const ORDERING: [&str; 2] = ["start_datetime", "end_datetime"];
/// Exact date-time filters.
const DATETIME_FILTERS: [&str; 2] = ["start_datetime", "end_datetime"];

fn list_doc() -> Doc {
    let datetime = json!({"type": "string", "format": "date-time"});
    let mut doc = Doc::new().paged::<MaintenanceView>(Paging::Page).ordering(&ORDERING).search(&["subject"]);
    doc = doc.param("subject", "Exact subject.", json!({"type": "string"}));
    for name in DATETIME_FILTERS {
        doc = doc.param(name, &format!("Exact {name}."), datetime.clone());
    }
    doc.param("min_start_datetime", "Starting on or after.", datetime.clone()).param(
        "max_end_datetime",
        "Ending on or before.",
        datetime,
    )
}
/// Full admins, the rollout pipeline and the QueryExecutor / Solr ETL keys (spec §2.8).
fn can_manage(principal: &Principal) -> bool {
    principal.is_full_admin() || principal.app.is_some()
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "maintenances")
        .method_policy(MethodPolicy::NotAllowedIf(can_manage))
        .route(Method::GET, "/maintenances/", Exposure::Public, "List maintenance phases (PAGE)", list)
        .doc(list_doc())
        .route(Method::POST, "/maintenances/", Exposure::Authenticated, "Create a maintenance phase", create)
        .doc(Doc::new().body::<MaintenanceBody>().reply::<MaintenanceView>(201, "The new phase."))
        .route(
            Method::GET,
            "/maintenances/next/",
            Exposure::Public,
            "The phase in progress, else the next one, else {}",
            next,
        )
        .doc(Doc::new().reply::<NextMaintenanceView>(
            200,
            "The phase in progress (the one ending last), else the next to start, else `{}`.",
        ))
        .route(Method::GET, "/maintenances/{id}/", Exposure::Public, "Get a maintenance phase", retrieve)
        .doc(Doc::new().reply::<MaintenanceView>(200, "The phase."))
        .route(Method::PATCH, "/maintenances/{id}/", Exposure::Authenticated, "Edit a maintenance phase", patch)
        .doc(Doc::new().patched_body::<MaintenanceBody>().reply::<MaintenanceView>(200, "The phase as changed."))
        .route(Method::DELETE, "/maintenances/{id}/", Exposure::Authenticated, "Delete a maintenance phase", delete)
        .doc(Doc::new().empty(204, "Deleted; connected clients are told a phase in progress is over."))
        .build()
}

fn datetime_filter(query: &ListQuery, name: &str) -> AppResult<Option<DateTime>> {
    query
        .get(name)
        .map(|raw| time::parse(raw).ok_or_else(|| AppError::field(name, "Enter a valid date/time.")))
        .transpose()
}

async fn list(
    State(state): State<AppState>,
    _: PublicCaller,
    query: ListQuery,
) -> AppResult<Json<Page<MaintenanceView>>> {
    let orders = query.ordering("ordering", &ORDERING)?;
    let [start, end] = DATETIME_FILTERS;
    let (start, end) = (datetime_filter(&query, start)?, datetime_filter(&query, end)?);
    let min_start = datetime_filter(&query, "min_start_datetime")?;
    let max_end = datetime_filter(&query, "max_end_datetime")?;
    let terms = query.search_terms();
    let mut phases: Vec<MaintenancePhase> = state
        .store
        .maintenances()
        .await?
        .into_iter()
        .filter(|p| query.get("subject").is_none_or(|s| p.subject == s))
        .filter(|p| start.is_none_or(|s| p.start_datetime == s) && end.is_none_or(|e| p.end_datetime == e))
        .filter(|p| min_start.is_none_or(|s| p.start_datetime >= s) && max_end.is_none_or(|e| p.end_datetime <= e))
        .filter(|p| matches_regex_search(&terms, &[Some(&p.subject)]))
        .collect();
    sort_by(&mut phases, &orders, |p, field| {
        let dt = if field == "start_datetime" { p.start_datetime } else { p.end_datetime };
        SortValue::Text(time::iso(dt))
    });
    let now = time::now();
    let page = query.page_of(phases)?;
    Ok(Json(Page {
        count: page.count,
        next: page.next,
        previous: page.previous,
        results: page.results.iter().map(|p| MaintenanceView::of(p, now)).collect(),
    }))
}

async fn next(State(state): State<AppState>, _: PublicCaller) -> AppResult<Json<NextMaintenanceView>> {
    let now = time::now();
    let phases = state.maintenances_not_ended().await?;
    Ok(Json(match next_phase(&phases, now) {
        Some(p) => NextMaintenanceView::Phase(Box::new(MaintenanceView::of(p, now))),
        None => NextMaintenanceView::Nothing(NoMaintenance {}),
    }))
}

fn parse_id(raw: &str) -> AppResult<i64> {
    raw.parse().map_err(|_| AppError::NotFound("MaintenancePhase"))
}

async fn retrieve(
    State(state): State<AppState>,
    _: PublicCaller,
    Path(id): Path<String>,
) -> AppResult<Json<MaintenanceView>> {
    let phase = state.store.maintenance(parse_id(&id)?).await?.ok_or(AppError::NotFound("MaintenancePhase"))?;
    Ok(Json(MaintenanceView::of(&phase, time::now())))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<MaintenanceView>)> {
    principal.ensure(can_manage)?;
    let fields = validate(&body, None)?;
    let now = time::now();
    let phase = MaintenancePhase {
        id: state.store.next_id("maintenance").await?,
        subject: fields.subject,
        message: fields.message,
        kind: fields.kind,
        start_datetime: fields.start_datetime,
        end_datetime: fields.end_datetime,
        is_data_saved_message_hidden: fields.is_data_saved_message_hidden,
        insert_datetime: now,
        update_datetime: now,
        delete_datetime: None,
    };
    state.store.put_maintenance(&phase, Condition::MustNotExist).await?;
    state.invalidate_maintenances();
    Ok((StatusCode::CREATED, Json(MaintenanceView::of(&phase, now))))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<MaintenanceView>> {
    principal.ensure(can_manage)?;
    let mut phase = state.store.maintenance(parse_id(&id)?).await?.ok_or(AppError::NotFound("MaintenancePhase"))?;
    let fields = validate(&body, Some(&phase))?;
    phase.subject = fields.subject;
    phase.message = fields.message;
    phase.kind = fields.kind;
    phase.start_datetime = fields.start_datetime;
    phase.end_datetime = fields.end_datetime;
    phase.is_data_saved_message_hidden = fields.is_data_saved_message_hidden;
    phase.update_datetime = time::now();
    state.store.put_maintenance(&phase, Condition::MustExist).await?;
    state.invalidate_maintenances();
    Ok(Json(MaintenanceView::of(&phase, time::now())))
}

/// Soft delete; connected clients learn first that a phase in progress is over (`active: false`).
async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    principal.ensure(can_manage)?;
    let mut phase = state.store.maintenance(parse_id(&id)?).await?.ok_or(AppError::NotFound("MaintenancePhase"))?;
    let now = time::now();
    if phase.is_active_at(now) {
        state.notifier.to_everyone(&c360::clients::push::maintenance_event(phase.websocket_info(false))).await;
    }
    phase.delete_datetime = Some(now);
    phase.update_datetime = now;
    state.store.put_maintenance(&phase, Condition::MustExist).await?;
    state.invalidate_maintenances();
    Ok(StatusCode::NO_CONTENT)
}
