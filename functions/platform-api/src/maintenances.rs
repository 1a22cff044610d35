//! `/maintenances/` (spec §9.1): readable by anyone; written by full admins and applicative users.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    domain::{
        maintenance::{next_phase, validate, MaintenancePhase},
        time::{self, DateTime},
    },
    error::{AppError, AppResult},
    http::{
        listing::{matches_regex_search, sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, PublicCaller, RouteSpec,
    },
    store::Condition,
};
use serde_json::{json, Value};

/// Full admins, the rollout pipeline and the QueryExecutor / Solr ETL keys (spec §2.8).
fn can_manage(principal: &Principal) -> bool {
    principal.is_full_admin() || principal.app.is_some()
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "maintenances")
        .method_policy(MethodPolicy::NotAllowedIf(can_manage))
        .route(Method::GET, "/maintenances/", Exposure::Public, "List maintenance phases (PAGE)", list)
        .route(Method::POST, "/maintenances/", Exposure::Authenticated, "Create a maintenance phase", create)
        .route(
            Method::GET,
            "/maintenances/next/",
            Exposure::Public,
            "The phase in progress, else the next one, else {}",
            next,
        )
        .route(Method::GET, "/maintenances/{id}/", Exposure::Public, "Get a maintenance phase", retrieve)
        .route(Method::PATCH, "/maintenances/{id}/", Exposure::Authenticated, "Edit a maintenance phase", patch)
        .route(Method::DELETE, "/maintenances/{id}/", Exposure::Authenticated, "Delete a maintenance phase", delete)
        .build()
}

fn datetime_filter(query: &ListQuery, name: &str) -> AppResult<Option<DateTime>> {
    query
        .get(name)
        .map(|raw| time::parse(raw).ok_or_else(|| AppError::field(name, "Enter a valid date/time.")))
        .transpose()
}

async fn list(State(state): State<AppState>, _: PublicCaller, query: ListQuery) -> AppResult<Json<Value>> {
    let orders = query.ordering("ordering", &["start_datetime", "end_datetime"])?;
    let start = datetime_filter(&query, "start_datetime")?;
    let end = datetime_filter(&query, "end_datetime")?;
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
    Ok(Json(query.page(phases.iter().map(|p| p.to_json(now)).collect())?))
}

async fn next(State(state): State<AppState>, _: PublicCaller) -> AppResult<Json<Value>> {
    let now = time::now();
    let phases = state.maintenances_not_ended().await?;
    Ok(Json(next_phase(&phases, now).map_or_else(|| json!({}), |p| p.to_json(now))))
}

fn parse_id(raw: &str) -> AppResult<i64> {
    raw.parse().map_err(|_| AppError::NotFound("MaintenancePhase"))
}

async fn retrieve(State(state): State<AppState>, _: PublicCaller, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let phase = state.store.maintenance(parse_id(&id)?).await?.ok_or(AppError::NotFound("MaintenancePhase"))?;
    Ok(Json(phase.to_json(time::now())))
}

async fn create(State(state): State<AppState>, principal: Arc<Principal>, Body(body): Body) -> AppResult<Response> {
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
    Ok((StatusCode::CREATED, Json(phase.to_json(now))).into_response())
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
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
    Ok(Json(phase.to_json(time::now())))
}

/// Soft delete; connected clients learn first that a phase in progress is over (`active: false`).
async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Response> {
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
    Ok(StatusCode::NO_CONTENT.into_response())
}
