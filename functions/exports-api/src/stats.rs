//! `/exports/export-stats/` (spec §7.6, LIMIT): figures about an export's result. Visible as the
//! exports are: managers of exports or datalabs see every stat, everyone else those of their exports.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        cohort::Stamps,
        exports::{ExportResultStat, STAT_TYPES},
        time,
    },
    error::{AppError, AppResult},
    http::{
        fields::{Fields, Text},
        listing::{sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::Condition,
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::exports::sees_every_export;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/exports/export-stats/";
    const ONE: &str = "/exports/export-stats/{uuid}/";
    Api::new(state, "exports")
        .route(Method::GET, ROOT, Exposure::Authenticated, "List export result stats (LIMIT)", list)
        .audited(
            Method::POST,
            ROOT,
            Exposure::Authenticated,
            "Record an export result stat",
            "export_stats.create",
            create,
        )
        .route(Method::GET, ONE, Exposure::Authenticated, "Get an export result stat", retrieve)
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "Edit an export result stat",
            "export_stats.partial_update",
            patch,
        )
        .build()
}

fn render(s: &ExportResultStat) -> Value {
    json!({
        "uuid": s.uuid,
        "deleted": s.stamps.deleted.map(time::iso),
        "deleted_by_cascade": s.stamps.deleted_by_cascade,
        "created_at": time::iso(s.stamps.created_at),
        "modified_at": time::iso(s.stamps.modified_at),
        "export": s.export,
        "name": s.name,
        "type": s.kind,
        "value": s.value,
        "export_target": s.export_target,
    })
}

fn visible(principal: &Principal, stat: &ExportResultStat) -> bool {
    stat.export_owner == principal.username || sees_every_export(principal)
}

async fn list(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let orders = query.ordering("ordering", &["name", "type", "value", "export"])?;
    let export = query.uuid("export")?;
    let mut stats = state.store.export_stats().await?;
    stats.retain(|s| {
        visible(&principal, s)
            && query.get("name").is_none_or(|n| s.name == n)
            && query.get("type").is_none_or(|t| s.kind == t)
            && export.is_none_or(|e| s.export == e)
            && query
                .get("export_target_name")
                .is_none_or(|t| s.export_target.to_lowercase().contains(&t.to_lowercase()))
    });
    stats.sort_by_key(|s| s.stamps.created_at);
    sort_by(&mut stats, &orders, |s, field| match field {
        "type" => SortValue::Text(s.kind.clone()),
        "value" => SortValue::Text(s.value.clone()),
        "export" => SortValue::Text(s.export_target.clone()),
        _ => SortValue::Text(s.name.clone()),
    });
    Ok(Json(query.limited_of(stats).envelope(|s| render(&s))))
}

async fn visible_stat(state: &AppState, principal: &Principal, raw: &str) -> AppResult<ExportResultStat> {
    let uuid = Uuid::parse_str(raw).map_err(|_| AppError::NotFound("ExportResultStat"))?;
    let stats = state.store.export_stats().await?;
    stats.into_iter().find(|s| s.uuid == uuid && visible(principal, s)).ok_or(AppError::NotFound("ExportResultStat"))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<Value>> {
    Ok(Json(render(&visible_stat(&state, &principal, &raw).await?)))
}

/// The name, type and value of a body (each optional: PATCH).
fn stat_fields(fields: &mut Fields) -> (Option<String>, Option<String>, Option<String>) {
    let name = fields.text("name", Text::max(55)).flatten();
    let kind = fields.present("type").then(|| fields.choice("type", &STAT_TYPES)).flatten();
    let value = fields.text("value", Text::max(55).blank()).flatten();
    (name, kind, value)
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<Value>)> {
    let mut fields = Fields::new(&body);
    for required in ["name", "type", "value", "export"] {
        if !fields.present(required) {
            fields.error(required, "This field is required.");
        }
    }
    let (name, kind, value) = stat_fields(&mut fields);
    let export = match body.get("export").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok()) {
        Some(uuid) => state.store.export(uuid).await?,
        None => None,
    };
    let export = export.filter(|e| e.owner == principal.username || sees_every_export(&principal));
    if export.is_none() && fields.present("export") {
        let raw = body.get("export").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        fields.error("export", format!("Invalid pk \"{}\" - object does not exist.", raw.unwrap_or_default()));
    }
    fields.finish()?;
    let (Some(export), Some(name), Some(kind), Some(value)) = (export, name, kind, value) else {
        return Err(AppError::internal("validated stat fields are missing"));
    };
    let stat = ExportResultStat {
        uuid: Uuid::new_v4(),
        export: export.uuid,
        export_owner: export.owner,
        export_target: export.target_name,
        name,
        kind,
        value,
        stamps: Stamps::new(time::now()),
    };
    state.store.put_export_stat(&stat, Condition::MustNotExist).await?;
    Ok((StatusCode::CREATED, Json(render(&stat))))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    let mut stat = visible_stat(&state, &principal, &raw).await?;
    let body: Map<String, Value> = body.into_iter().filter(|(k, _)| k != "export").collect();
    let mut fields = Fields::new(&body);
    let (name, kind, value) = stat_fields(&mut fields);
    fields.finish()?;
    stat.name = name.unwrap_or(stat.name);
    stat.kind = kind.unwrap_or(stat.kind);
    stat.value = value.unwrap_or(stat.value);
    stat.stamps.modified_at = time::now();
    state.store.put_export_stat(&stat, Condition::MustExist).await?;
    Ok(Json(render(&stat)))
}
