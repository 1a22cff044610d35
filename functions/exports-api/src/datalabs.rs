//! `/exports/datalabs/` (PAGE) and `/exports/infrastructure-providers/` (LIMIT, soft delete), spec
//! §7.6: reading needs `right_read_datalabs`, writing also `right_manage_datalabs`.
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        cohort::Stamps,
        exports::{datalab_name_error, Datalab, InfrastructureProvider},
        rights::Right,
        time,
    },
    error::{AppError, AppResult},
    http::{
        fields::{Fields, Text},
        listing::{matches_regex_search, matches_search, sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::{Condition, StoreError},
};
use serde_json::Value;
use uuid::Uuid;

use crate::views;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const LABS: &str = "/exports/datalabs/";
    const LAB: &str = "/exports/datalabs/{uuid}/";
    const PROVIDERS: &str = "/exports/infrastructure-providers/";
    const PROVIDER: &str = "/exports/infrastructure-providers/{uuid}/";
    Api::new(state, "exports")
        .method_policy(MethodPolicy::NotAllowedIf(may_manage))
        .route(Method::GET, LABS, Exposure::Authenticated, "List datalabs (PAGE)", list_datalabs)
        .audited(Method::POST, LABS, Exposure::Authenticated, "Create a datalab", "datalabs.create", create_datalab)
        .route(Method::GET, LAB, Exposure::Authenticated, "Get a datalab", get_datalab)
        .audited(
            Method::PATCH,
            LAB,
            Exposure::Authenticated,
            "Edit a datalab",
            "datalabs.partial_update",
            patch_datalab,
        )
        .route(Method::GET, PROVIDERS, Exposure::Authenticated, "List infrastructure providers (LIMIT)", list_providers)
        .audited(
            Method::POST,
            PROVIDERS,
            Exposure::Authenticated,
            "Create an infrastructure provider",
            "infrastructure_providers.create",
            create_provider,
        )
        .route(Method::GET, PROVIDER, Exposure::Authenticated, "Get an infrastructure provider", get_provider)
        .audited(
            Method::PATCH,
            PROVIDER,
            Exposure::Authenticated,
            "Rename an infrastructure provider",
            "infrastructure_providers.partial_update",
            patch_provider,
        )
        .audited(
            Method::DELETE,
            PROVIDER,
            Exposure::Authenticated,
            "Delete an infrastructure provider (soft)",
            "infrastructure_providers.destroy",
            delete_provider,
        )
        .build()
}

fn may_read(principal: &Principal) -> bool {
    principal.has(Right::READ_DATALABS)
}

fn may_manage(principal: &Principal) -> bool {
    may_read(principal) && principal.has(Right::MANAGE_DATALABS)
}

fn require(allowed: bool) -> AppResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(AppError::permission_denied())
    }
}

fn path_uuid(raw: &str, model: &'static str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound(model))
}

/// Providers by uuid: the alive ones (what a datalab may be given), or all (what a datalab shows: the
/// original still names a soft-deleted provider on the datalabs that had it).
async fn providers_by_id(state: &AppState, deleted_too: bool) -> AppResult<HashMap<Uuid, InfrastructureProvider>> {
    let all = state.store.infrastructure_providers().await?;
    Ok(all.into_iter().filter(|p| deleted_too || p.stamps.deleted.is_none()).map(|p| (p.uuid, p)).collect())
}

async fn list_datalabs(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Value>> {
    require(may_read(&principal))?;
    let orders = query.ordering("ordering", &["created_at", "name"])?;
    let (mut labs, providers) =
        tokio::try_join!(async { Ok::<_, AppError>(state.store.datalabs().await?) }, providers_by_id(&state, true))?;
    let provider_name = |d: &Datalab| providers.get(&d.infrastructure_provider).map(|p| p.name.as_str());
    let terms = query.search_terms();
    labs.retain(|d| {
        query.get("name").is_none_or(|n| d.name == n)
            && query
                .get("infra_provider")
                .is_none_or(|w| provider_name(d).is_some_and(|p| p.to_lowercase().contains(&w.to_lowercase())))
            && matches_search(&terms, &[Some(d.name.as_str()), provider_name(d)])
    });
    sort_by(&mut labs, &orders, |d, field| match field {
        "name" => SortValue::Text(d.name.clone()),
        _ => SortValue::Text(time::iso(d.stamps.created_at)),
    });
    let page = query.page_of(labs)?;
    Ok(Json(page.envelope(|d| views::datalab(&d, providers.get(&d.infrastructure_provider)))))
}

async fn datalab_or_404(state: &AppState, raw: &str) -> AppResult<Datalab> {
    let uuid = path_uuid(raw, "Datalab")?;
    state.store.datalab(uuid).await?.ok_or(AppError::NotFound("Datalab"))
}

async fn get_datalab(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<Value>> {
    require(may_read(&principal))?;
    let lab = datalab_or_404(&state, &raw).await?;
    let provider = state.store.infrastructure_provider(lab.infrastructure_provider).await?;
    Ok(Json(views::datalab(&lab, provider.as_ref())))
}

/// The validated name and provider of a datalab body (`required` on creation).
async fn datalab_fields(
    state: &AppState,
    body: &serde_json::Map<String, Value>,
    required: bool,
) -> AppResult<(Option<String>, Option<InfrastructureProvider>)> {
    let providers = providers_by_id(state, false).await?;
    let mut fields = Fields::new(body);
    let name = if required {
        fields.required_text("name", Text::max(255))
    } else {
        fields.text("name", Text::max(255)).flatten()
    };
    if let Some(message) = name.as_deref().and_then(datalab_name_error) {
        fields.error("name", message);
    }
    let provider = if required {
        fields.required_relation("infrastructure_provider", |u| providers.contains_key(&u))
    } else {
        fields.relation("infrastructure_provider", false, |u| providers.contains_key(&u)).flatten()
    };
    fields.finish()?;
    Ok((name, provider.and_then(|p| providers.get(&p).cloned())))
}

fn name_taken() -> AppError {
    AppError::field("name", "datalab with this name already exists.")
}

async fn create_datalab(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<Value>)> {
    require(may_manage(&principal))?;
    let (name, provider) = datalab_fields(&state, &body, true).await?;
    let (Some(name), Some(provider)) = (name, provider) else {
        return Err(AppError::internal("validated datalab fields are missing"));
    };
    let lab = Datalab {
        uuid: Uuid::new_v4(),
        name,
        infrastructure_provider: provider.uuid,
        stamps: Stamps::new(time::now()),
    };
    match state.store.create_datalab(&lab).await {
        Err(StoreError::ConditionFailed) => return Err(name_taken()),
        other => other?,
    }
    Ok((StatusCode::CREATED, Json(views::datalab(&lab, Some(&provider)))))
}

async fn patch_datalab(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    require(may_manage(&principal))?;
    let previous = datalab_or_404(&state, &raw).await?;
    let (name, provider) = datalab_fields(&state, &body, false).await?;
    let mut lab = previous.clone();
    if let Some(name) = name {
        lab.name = name;
    }
    if let Some(provider) = &provider {
        lab.infrastructure_provider = provider.uuid;
    }
    lab.stamps.modified_at = time::now();
    match state.store.update_datalab(&previous, &lab).await {
        Err(StoreError::ConditionFailed) => return Err(name_taken()),
        other => other?,
    }
    let provider = match provider {
        Some(p) => Some(p),
        None => state.store.infrastructure_provider(lab.infrastructure_provider).await?,
    };
    Ok(Json(views::datalab(&lab, provider.as_ref())))
}

async fn list_providers(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Value>> {
    require(may_read(&principal))?;
    let orders = query.ordering("ordering", &["name"])?;
    let mut providers: Vec<InfrastructureProvider> = providers_by_id(&state, false).await?.into_values().collect();
    let terms = query.search_terms();
    providers.retain(|p| {
        query.get("name").is_none_or(|n| p.name == n) && matches_regex_search(&terms, &[Some(p.name.as_str())])
    });
    providers.sort_by_key(|p| p.stamps.created_at);
    sort_by(&mut providers, &orders, |p, _| SortValue::Text(p.name.clone()));
    Ok(Json(query.limited_of(providers).envelope(|p| views::provider(&p))))
}

async fn provider_or_404(state: &AppState, raw: &str) -> AppResult<InfrastructureProvider> {
    let uuid = path_uuid(raw, "InfrastructureProvider")?;
    let found = state.store.infrastructure_provider(uuid).await?;
    found.filter(|p| p.stamps.deleted.is_none()).ok_or(AppError::NotFound("InfrastructureProvider"))
}

async fn get_provider(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<Value>> {
    require(may_read(&principal))?;
    Ok(Json(views::provider(&provider_or_404(&state, &raw).await?)))
}

async fn create_provider(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<Value>)> {
    require(may_manage(&principal))?;
    let mut fields = Fields::new(&body);
    let name = fields.required_text("name", Text::max(255));
    fields.finish()?;
    let name = name.ok_or_else(|| AppError::internal("validated name is missing"))?;
    let provider = InfrastructureProvider { uuid: Uuid::new_v4(), name, stamps: Stamps::new(time::now()) };
    state.store.put_infrastructure_provider(&provider, Condition::MustNotExist).await?;
    Ok((StatusCode::CREATED, Json(views::provider(&provider))))
}

async fn patch_provider(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    require(may_manage(&principal))?;
    let mut provider = provider_or_404(&state, &raw).await?;
    let mut fields = Fields::new(&body);
    let name = fields.text("name", Text::max(255)).flatten();
    fields.finish()?;
    if let Some(name) = name {
        provider.name = name;
    }
    provider.stamps.modified_at = time::now();
    state.store.put_infrastructure_provider(&provider, Condition::MustExist).await?;
    Ok(Json(views::provider(&provider)))
}

async fn delete_provider(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<StatusCode> {
    require(may_manage(&principal))?;
    let mut provider = provider_or_404(&state, &raw).await?;
    provider.stamps.deleted = Some(time::now());
    state.store.put_infrastructure_provider(&provider, Condition::MustExist).await?;
    Ok(StatusCode::NO_CONTENT)
}
