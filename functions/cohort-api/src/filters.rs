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
        contract::{Doc, Mode, Paging, Text},
        fields::Fields,
        listing::{sort_by, ListQuery, Page, SortValue},
        views::FilterView,
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::{
        cohort::{filter_name_guard, patch_history_write, put_object, Changes},
        keys, Condition, StoreError, Write,
    },
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{common::*, views};

c360::form! {
    /// A saved FHIR filter as POST creates it and PATCH edits it (`owner_id` is read as `owner`).
    pub struct FilterForm {
        /// The caller's username, if sent.
        optional owner: OwnerRef,
        /// The FHIR resource it filters (`Patient`, `Encounter`…); unique with the name per owner.
        required fhir_resource: Text<255>,
        required fhir_version: Text<50>,
        required name: Text<50, 2>,
        /// The FHIR search parameters (`&` separated).
        required filter: Text,
        /// Defaults to the current query version.
        optional query_version: Text<50>,
        optional identifying: bool,
        /// Set on creation only.
        optional auto_generated: bool,
    }
}

/// `DELETE …/delete_multiple/`'s body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `delete_multiple`
struct DeleteMultiple {
    uuids: Vec<Uuid>,
}

const ORDERING: [&str; 2] = ["created_at", "modified_at"];
/// Query parameters matching a part of a field, case-insensitively (`fhir_filter`: the filter text).
const CONTAINS: [&str; 3] = ["fhir_filter", "fhir_resource", "name"];

fn list_doc() -> Doc {
    let mut doc = Doc::new().paged::<FilterView>(Paging::Limit).ordering(&ORDERING);
    for field in CONTAINS {
        doc = doc.param(field, "Case-insensitive part of the field.", json!({"type": "string"}));
    }
    doc.param("owner", "Owner's username.", json!({"type": "string"}))
        .param("query_version", "Exact query version.", json!({"type": "string"}))
        .param("identifying", "Identifying filters only (true) or the others.", json!({"type": "boolean"}))
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/cohort/fhir-filters/";
    const ONE: &str = "/cohort/fhir-filters/{uuid}/";
    Api::new(state, "cohort")
        .route(Method::GET, ROOT, Exposure::Authenticated, "List the caller's saved filters (LIMIT)", list)
        .doc(list_doc())
        .audited(Method::POST, ROOT, Exposure::Authenticated, "Save a filter", "fhir_filters.create", create)
        .doc(
            Doc::new()
                .form::<FilterForm>(Mode::Create)
                .reply::<FilterView>(201, "The saved filter.")
                .error(400, "Invalid fields, or a filter of that name and resource exists (a bare message)."),
        )
        .audited(
            Method::DELETE,
            "/cohort/fhir-filters/delete_multiple/",
            Exposure::Authenticated,
            "Delete the saved filters listed in the body",
            "fhir_filters.delete_multiple",
            delete_multiple,
        )
        .doc(
            Doc::new()
                .body::<DeleteMultiple>()
                .empty(204, "Deleted (nothing listed: nothing deleted).")
                .error(404, "A listed filter is not one of the caller's: nothing deleted."),
        )
        .route(Method::GET, ONE, Exposure::Authenticated, "Get a saved filter", retrieve)
        .doc(Doc::new().reply::<FilterView>(200, "The saved filter."))
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "Edit a saved filter",
            "fhir_filters.partial_update",
            patch,
        )
        .doc(
            Doc::new()
                .form::<FilterForm>(Mode::Update)
                .reply::<FilterView>(200, "The filter as changed.")
                .error(400, "Invalid fields, or the new name is taken (a bare message)."),
        )
        .audited(
            Method::DELETE,
            ONE,
            Exposure::Authenticated,
            "Delete saved filters (comma-separated uuids)",
            "fhir_filters.destroy",
            destroy,
        )
        .doc(Doc::new().empty(204, "Deleted.").error(400, "A comma-separated list holding something else than uuids."))
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
    let orders = query.ordering("ordering", &ORDERING)?;
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
    Ok(Json(query.limited_of(filters).map(|f| views::filter(&f, &names))))
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
    let form: FilterForm = fields.form(Mode::Create);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    fields.finish()?;
    let text = |field: Option<Text<255>>| field.map(|t| t.0).unwrap_or_default();
    let filter = FhirFilter {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        fhir_resource: text(form.fhir_resource),
        fhir_version: form.fhir_version.map(|t| t.0).unwrap_or_default(),
        query_version: form.query_version.map_or_else(|| DEFAULT_QUERY_VERSION.to_owned(), |t| t.0),
        name: form.name.map(|t| t.0).unwrap_or_default(),
        filter: clean_filter(&form.filter.map(|t| t.0).unwrap_or_default()),
        identifying: form.identifying.unwrap_or(false),
        auto_generated: form.auto_generated.unwrap_or(false),
        filter_patches: 0,
        stamps: Stamps::new(time::now()),
    };
    match state.store.transact(vec![put_object(&filter, Condition::MustNotExist)?, filter_name_guard(&filter)?]).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(views::filter(&filter, &names(&principal))))),
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
    Ok(Json(views::filter(&filter, &names(&principal))))
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
    let form: FilterForm = fields.form(Mode::Update);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    fields.finish()?;
    let (fhir_resource, fhir_version) = (form.fhir_resource.map(|t| t.0), form.fhir_version.map(|t| t.0));
    let (name, query_version, identifying) =
        (form.name.map(|t| t.0), form.query_version.map(|t| t.0), form.identifying);
    let text = form.filter.map(|f| clean_filter(&f.0));
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
    Ok(Json(views::filter(&stored, &names(&principal))))
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
