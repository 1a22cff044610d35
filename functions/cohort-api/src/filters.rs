//! `/cohort/fhir-filters/` (spec §5.10): saved criteria filters, unique by (name, resource) per owner.
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        cohort::{clean_filter, FhirFilter, Kind, Stamps, DEFAULT_QUERY_VERSION},
        time,
    },
    error::{AppError, AppResult},
    http::{
        fields::{Fields, Text},
        listing::{sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::{
        cohort::{filter_name_guard, patch_history_write, put_object, Changes},
        keys, Condition, StoreError, Write,
    },
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    common::*,
    views::{self, FilterView},
};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/cohort/fhir-filters/";
    const ONE: &str = "/cohort/fhir-filters/{uuid}/";
    Api::new(state, "cohort")
        .route(Method::GET, ROOT, Exposure::Authenticated, "List the caller's saved filters (LIMIT)", list)
        .audited(Method::POST, ROOT, Exposure::Authenticated, "Save a filter", "fhir_filters.create", create)
        .audited(
            Method::DELETE,
            "/cohort/fhir-filters/delete_multiple/",
            Exposure::Authenticated,
            "Delete the saved filters listed in the body",
            "fhir_filters.delete_multiple",
            delete_multiple,
        )
        .route(Method::GET, ONE, Exposure::Authenticated, "Get a saved filter", retrieve)
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "Edit a saved filter",
            "fhir_filters.partial_update",
            patch,
        )
        .audited(
            Method::DELETE,
            ONE,
            Exposure::Authenticated,
            "Delete saved filters (comma-separated uuids)",
            "fhir_filters.destroy",
            destroy,
        )
        .build()
}

/// The `owner` field renders the owner's display name (the caller: lists are owner-scoped).
fn names(principal: &Principal) -> views::Names {
    let display = principal.user.as_ref().map(|u| u.display_name()).unwrap_or_else(|| principal.username.clone());
    HashMap::from([(principal.username.clone(), display)])
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<FilterView>>> {
    let orders = query.ordering("ordering", &["created_at", "modified_at"])?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    let mut filters = load(&state, owner(&principal), &[Kind::Filter]).await?.filters;
    let contains = |value: &str, param: &str| {
        query.get(param).is_none_or(|wanted| value.to_lowercase().contains(&wanted.to_lowercase()))
    };
    filters.retain(|f| {
        !f.auto_generated
            && contains(&f.filter, "fhir_filter")
            && contains(&f.fhir_resource, "fhir_resource")
            && contains(&f.name, "name")
            && query.get("owner").is_none_or(|o| o == f.owner)
            && query.get("query_version").is_none_or(|v| v == f.query_version)
            && flag_matches(&query, "identifying", f.identifying)
    });
    sort_by(&mut filters, &orders, |f, field| match field {
        "modified_at" => SortValue::Text(time::iso(f.stamps.modified_at)),
        _ => SortValue::Text(time::iso(f.stamps.created_at)),
    });
    let names = names(&principal);
    Ok(Json(query.limited_of(filters).map(|f| FilterView::of(&f, &names))))
}

/// The database's message for a duplicate (name, resource) of an owner (spec §5.10: 400 `{"error"}`).
fn duplicate(filter: &FhirFilter) -> AppError {
    AppError::BadRequest(format!(
        "duplicate key value violates unique constraint \"unique_name_fhir_resource_owner\"\nDETAIL:  Key (name, \
         fhir_resource, owner_id)=({}, {}, {}) already exists.\n",
        filter.name, filter.fhir_resource, filter.owner
    ))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<FilterView>)> {
    let owner = owner(&principal);
    apply_id_aliases(&mut body, &["owner"]);
    let mut fields = Fields::new(&body);
    check_owner(&mut fields, owner);
    let fhir_resource = fields.required_text("fhir_resource", Text::max(255));
    let fhir_version = fields.required_text("fhir_version", Text::max(50));
    let name = fields.required_text("name", Text::max(50).min(2));
    let filter = fields.required_text("filter", Text::default());
    let query_version = fields.text("query_version", Text::max(50)).flatten();
    let identifying = fields.boolean("identifying").unwrap_or(false);
    let auto_generated = fields.boolean("auto_generated").unwrap_or(false);
    fields.finish()?;
    let filter = FhirFilter {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        fhir_resource: fhir_resource.unwrap_or_default(),
        fhir_version: fhir_version.unwrap_or_default(),
        query_version: query_version.unwrap_or_else(|| DEFAULT_QUERY_VERSION.to_owned()),
        name: name.unwrap_or_default(),
        filter: clean_filter(&filter.unwrap_or_default()),
        identifying,
        auto_generated,
        filter_patches: 0,
        stamps: Stamps::new(time::now()),
    };
    match state.store.transact(vec![put_object(&filter, Condition::MustNotExist)?, filter_name_guard(&filter)?]).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(FilterView::of(&filter, &names(&principal))))),
        Err(StoreError::TransactionConflict(failed)) if failed.get(1) == Some(&true) => Err(duplicate(&filter)),
        Err(other) => Err(other.into()),
    }
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<FilterView>> {
    let uuid = path_uuid(&uuid, Kind::Filter)?;
    let filter: FhirFilter = owned(&state, owner(&principal), uuid).await?;
    Ok(Json(FilterView::of(&filter, &names(&principal))))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(mut body): Body,
) -> AppResult<Json<FilterView>> {
    let uuid = path_uuid(&uuid, Kind::Filter)?;
    let owner = owner(&principal);
    let current: FhirFilter = owned(&state, owner, uuid).await?;
    apply_id_aliases(&mut body, &["owner"]);
    let mut fields = Fields::new(&body);
    check_owner(&mut fields, owner);
    let fhir_resource = fields.text("fhir_resource", Text::max(255)).flatten();
    let fhir_version = fields.text("fhir_version", Text::max(50)).flatten();
    let name = fields.text("name", Text::max(50).min(2)).flatten();
    let text = fields.text("filter", Text::default()).flatten().map(|f| clean_filter(&f));
    let query_version = fields.text("query_version", Text::max(50)).flatten();
    let identifying = fields.boolean("identifying");
    fields.finish()?;
    let now = time::now();
    let mut updated = current.clone();
    let mut changes = Changes::modified(now);
    let mut writes = Vec::new();
    if let Some(v) = fhir_resource {
        changes.set("fhir_resource", &v)?;
        updated.fhir_resource = v;
    }
    if let Some(v) = name {
        changes.set("name", &v)?;
        updated.name = v;
    }
    if let Some(v) = fhir_version {
        changes.set("fhir_version", &v)?;
    }
    if let Some(v) = query_version {
        changes.set("query_version", &v)?;
    }
    if let Some(v) = identifying {
        changes.set("identifying", &v)?;
    }
    // Each change of the filter text keeps the previous one in the history (spec §3.3).
    if let Some(v) = text.filter(|t| *t != current.filter) {
        let version = current.filter_patches + 1;
        let key = keys::filter_patch(owner, uuid, version);
        writes.push(patch_history_write(&key, uuid, version, &current.filter, now)?);
        changes.set("filter", &v)?.set("filter_patches", &version)?;
    }
    let renamed = (updated.name.as_str(), updated.fhir_resource.as_str())
        != (current.name.as_str(), current.fhir_resource.as_str());
    let guard_index = writes.len() + 2;
    writes.push(state.store.update_write::<FhirFilter>(owner, uuid, changes)?);
    if renamed {
        let old = keys::filter_name_guard(owner, &current.fhir_resource, &current.name);
        writes.push(Write::Delete(old, Condition::None));
        writes.push(filter_name_guard(&updated)?);
    }
    match state.store.transact(writes).await {
        Ok(()) => {}
        Err(StoreError::TransactionConflict(failed)) if renamed && failed.get(guard_index) == Some(&true) => {
            return Err(duplicate(&updated))
        }
        Err(StoreError::TransactionConflict(_)) => return Err(AppError::NotFound(Kind::Filter.model())),
        Err(other) => return Err(other.into()),
    }
    let stored: FhirFilter = owned(&state, owner, uuid).await?;
    Ok(Json(FilterView::of(&stored, &names(&principal))))
}

async fn destroy(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuids): Path<String>,
) -> AppResult<StatusCode> {
    let uuids = delete_targets(&uuids, Kind::Filter)?;
    delete_owned(&state, owner(&principal), Kind::Filter, &uuids).await
}

/// `{"uuids": [...]}`; only the caller's filters (the original deletes anyone's).
async fn delete_multiple(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<StatusCode> {
    let listed: Vec<&Value> = match body.get("uuids") {
        Some(Value::Array(items)) => items.iter().collect(),
        _ => return Err(AppError::field("uuids", "This field is required.")),
    };
    let uuids: Vec<Uuid> = listed
        .iter()
        .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            let shown: Vec<String> = listed.iter().map(|v| format!("'{}'", v.as_str().unwrap_or_default())).collect();
            AppError::BadRequest(format!("Invalid value for uuid param, uuids=[{}]", shown.join(", ")))
        })?;
    if uuids.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    delete_owned(&state, owner(&principal), Kind::Filter, &uuids).await
}
