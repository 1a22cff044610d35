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
        contract::{BlankText, Choice, Choices, Doc, FormField, Mode, Paging, Schema, Text},
        fields::{unknown_pk, Fields},
        listing::{sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::Condition,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{exports::sees_every_export, views::StatView};

/// The types a stat's value may have.
pub struct StatType;

impl Choices for StatType {
    const VALUES: &'static [&'static str] = &STAT_TYPES;
}

/// `export` in a stat's body: looked up as the uuid of an export the caller sees; whatever names
/// none (a number, `null`, another user's export…) is DRF's unknown-pk message with the value as sent.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRef {
    /// The value as sent (as JSON when it is not a string).
    pub sent: String,
    /// The uuid a string value spells.
    pub uuid: Option<Uuid>,
}

impl FormField for ExportRef {
    fn read(value: &Value) -> Result<Self, String> {
        Ok(Self {
            sent: value.as_str().map_or_else(|| value.to_string(), str::to_owned),
            uuid: value.as_str().and_then(|s| Uuid::parse_str(s).ok()),
        })
    }

    fn schema() -> Schema {
        json!({"type": "string", "format": "uuid"})
    }
}

c360::form! {
    /// An export result stat as POST records it and PATCH edits it.
    pub struct StatForm {
        required name: Text<55>,
        required kind as "type": Choice<StatType>,
        required value: BlankText<55>,
        /// The export measured: one of the caller's, or any for those who see every export. Ignored
        /// by PATCH (a stat stays with its export).
        required export: ExportRef,
    }
}

const ORDERING: [&str; 4] = ["name", "type", "value", "export"];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/exports/export-stats/";
    const ONE: &str = "/exports/export-stats/{uuid}/";
    let text = json!({"type": "string"});
    Api::new(state, "exports")
        .route(Method::GET, ROOT, Exposure::Authenticated, "List export result stats (LIMIT)", list)
        .doc(
            Doc::new()
                .paged::<StatView>(Paging::Limit)
                .ordering(&ORDERING)
                .param("name", "Exact name.", text.clone())
                .param("type", "Exact type.", text.clone())
                .param("export", "The export's uuid.", json!({"type": "string", "format": "uuid"}))
                .param("export_target_name", "Words in the export's target name (any case).", text),
        )
        .audited(
            Method::POST,
            ROOT,
            Exposure::Authenticated,
            "Record an export result stat",
            "export_stats.create",
            create,
        )
        .doc(Doc::new().form::<StatForm>(Mode::Create).reply::<StatView>(201, "The new stat."))
        .route(Method::GET, ONE, Exposure::Authenticated, "Get an export result stat", retrieve)
        .doc(Doc::new().reply::<StatView>(200, "The stat."))
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "Edit an export result stat",
            "export_stats.partial_update",
            patch,
        )
        .doc(Doc::new().form::<StatForm>(Mode::Update).reply::<StatView>(200, "The stat as changed."))
        .build()
}

fn visible(principal: &Principal, stat: &ExportResultStat) -> bool {
    stat.export_owner == principal.username || sees_every_export(principal)
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<StatView>>> {
    let orders = query.ordering("ordering", &ORDERING)?;
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
    Ok(Json(query.limited_of(stats).map(|s| StatView::of(&s))))
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
) -> AppResult<Json<StatView>> {
    Ok(Json(StatView::of(&visible_stat(&state, &principal, &raw).await?)))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<StatView>)> {
    let mut fields = Fields::new(&body);
    let form: StatForm = fields.form(Mode::Create);
    let export = match form.export.as_ref().and_then(|e| e.uuid) {
        Some(uuid) => state.store.export(uuid).await?,
        None => None,
    };
    let export = export.filter(|e| e.owner == principal.username || sees_every_export(&principal));
    if let (None, Some(sent)) = (&export, &form.export) {
        fields.error("export", unknown_pk(&sent.sent));
    }
    fields.finish()?;
    let (Some(export), Some(name), Some(kind), Some(value)) = (export, form.name, form.kind, form.value) else {
        return Err(AppError::internal("validated stat fields are missing"));
    };
    let stat = ExportResultStat {
        uuid: Uuid::new_v4(),
        export: export.uuid,
        export_owner: export.owner,
        export_target: export.target_name,
        name: name.0,
        kind: kind.0,
        value: value.0,
        stamps: Stamps::new(time::now()),
    };
    state.store.put_export_stat(&stat, Condition::MustNotExist).await?;
    Ok((StatusCode::CREATED, Json(StatView::of(&stat))))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
    Body(body): Body,
) -> AppResult<Json<StatView>> {
    let mut stat = visible_stat(&state, &principal, &raw).await?;
    let mut fields = Fields::new(&body);
    // `export` is read (it cannot fail) and ignored.
    let form: StatForm = fields.form(Mode::Update);
    fields.finish()?;
    if let Some(name) = form.name {
        stat.name = name.0;
    }
    if let Some(kind) = form.kind {
        stat.kind = kind.0;
    }
    if let Some(value) = form.value {
        stat.value = value.0;
    }
    stat.stamps.modified_at = time::now();
    state.store.put_export_stat(&stat, Condition::MustExist).await?;
    Ok(Json(StatView::of(&stat)))
}
