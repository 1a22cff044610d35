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
        contract::{Doc, Mode, Paging, Text},
        fields::{unknown_pk, Fields},
        listing::{matches_regex_search, matches_search, sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::{Condition, StoreError},
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::views::{DatalabView, ProviderView};

c360::form! {
    /// A datalab as POST creates it and PATCH edits it.
    pub struct DatalabForm {
        /// A Hive user and database prefix: unique, without spaces.
        required name: Text<255>,
        /// An infrastructure provider (not deleted).
        required infrastructure_provider: Uuid,
    }
}

c360::form! {
    /// An infrastructure provider as POST creates it and PATCH renames it.
    pub struct ProviderForm {
        required name: Text<255>,
    }
}

const DATALAB_ORDERING: [&str; 2] = ["created_at", "name"];
const PROVIDER_ORDERING: [&str; 1] = ["name"];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const LABS: &str = "/exports/datalabs/";
    const LAB: &str = "/exports/datalabs/{uuid}/";
    const PROVIDERS: &str = "/exports/infrastructure-providers/";
    const PROVIDER: &str = "/exports/infrastructure-providers/{uuid}/";
    let text = json!({"type": "string"});
    Api::new(state, "exports")
        .method_policy(MethodPolicy::NotAllowedIf(may_manage))
        .route(Method::GET, LABS, Exposure::Authenticated, "List datalabs (PAGE)", list_datalabs)
        .doc(
            Doc::new()
                .paged::<DatalabView>(Paging::Page)
                .ordering(&DATALAB_ORDERING)
                .search(&["name", "infrastructure provider's name"])
                .param("name", "Exact name.", text.clone())
                .param("infra_provider", "Words in the provider's name (any case).", text.clone())
                .error(404, "No such page."),
        )
        .audited(Method::POST, LABS, Exposure::Authenticated, "Create a datalab", "datalabs.create", create_datalab)
        .doc(Doc::new().form::<DatalabForm>(Mode::Create).reply::<DatalabView>(201, "The new datalab."))
        .route(Method::GET, LAB, Exposure::Authenticated, "Get a datalab", get_datalab)
        .doc(Doc::new().reply::<DatalabView>(200, "The datalab."))
        .audited(
            Method::PATCH,
            LAB,
            Exposure::Authenticated,
            "Edit a datalab",
            "datalabs.partial_update",
            patch_datalab,
        )
        .doc(Doc::new().form::<DatalabForm>(Mode::Update).reply::<DatalabView>(200, "The datalab as changed."))
        .route(Method::GET, PROVIDERS, Exposure::Authenticated, "List infrastructure providers (LIMIT)", list_providers)
        .doc(Doc::new().paged::<ProviderView>(Paging::Limit).ordering(&PROVIDER_ORDERING).search(&["name"]).param(
            "name",
            "Exact name.",
            text,
        ))
        .audited(
            Method::POST,
            PROVIDERS,
            Exposure::Authenticated,
            "Create an infrastructure provider",
            "infrastructure_providers.create",
            create_provider,
        )
        .doc(Doc::new().form::<ProviderForm>(Mode::Create).reply::<ProviderView>(201, "The new provider."))
        .route(Method::GET, PROVIDER, Exposure::Authenticated, "Get an infrastructure provider", get_provider)
        .doc(Doc::new().reply::<ProviderView>(200, "The provider."))
        .audited(
            Method::PATCH,
            PROVIDER,
            Exposure::Authenticated,
            "Rename an infrastructure provider",
            "infrastructure_providers.partial_update",
            patch_provider,
        )
        .doc(Doc::new().form::<ProviderForm>(Mode::Update).reply::<ProviderView>(200, "The provider as changed."))
        .audited(
            Method::DELETE,
            PROVIDER,
            Exposure::Authenticated,
            "Delete an infrastructure provider (soft)",
            "infrastructure_providers.destroy",
            delete_provider,
        )
        .doc(Doc::new().empty(204, "Deleted (its datalabs still name it)."))
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
) -> AppResult<Json<Page<DatalabView>>> {
    require(may_read(&principal))?;
    let orders = query.ordering("ordering", &DATALAB_ORDERING)?;
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
    Ok(Json(page.map(|d| DatalabView::of(&d, providers.get(&d.infrastructure_provider)))))
}

async fn datalab_or_404(state: &AppState, raw: &str) -> AppResult<Datalab> {
    let uuid = path_uuid(raw, "Datalab")?;
    state.store.datalab(uuid).await?.ok_or(AppError::NotFound("Datalab"))
}

async fn get_datalab(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<DatalabView>> {
    require(may_read(&principal))?;
    let lab = datalab_or_404(&state, &raw).await?;
    let provider = state.store.infrastructure_provider(lab.infrastructure_provider).await?;
    Ok(Json(DatalabView::of(&lab, provider.as_ref())))
}

/// The validated name and provider of a datalab body (both required on creation).
async fn datalab_fields(
    state: &AppState,
    body: &serde_json::Map<String, Value>,
    mode: Mode,
) -> AppResult<(Option<String>, Option<InfrastructureProvider>)> {
    let providers = providers_by_id(state, false).await?;
    let mut fields = Fields::new(body);
    let form: DatalabForm = fields.form(mode);
    let name = form.name.map(|n| n.0);
    if let Some(message) = name.as_deref().and_then(datalab_name_error) {
        fields.error("name", message);
    }
    let provider = form.infrastructure_provider.and_then(|uuid| providers.get(&uuid).cloned());
    if form.infrastructure_provider.is_some() && provider.is_none() {
        let sent = fields.raw("infrastructure_provider").and_then(Value::as_str).unwrap_or_default();
        fields.error("infrastructure_provider", unknown_pk(sent));
    }
    fields.finish()?;
    Ok((name, provider))
}

fn name_taken() -> AppError {
    AppError::field("name", "datalab with this name already exists.")
}

async fn create_datalab(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<DatalabView>)> {
    require(may_manage(&principal))?;
    let (name, provider) = datalab_fields(&state, &body, Mode::Create).await?;
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
    Ok((StatusCode::CREATED, Json(DatalabView::of(&lab, Some(&provider)))))
}

async fn patch_datalab(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
    Body(body): Body,
) -> AppResult<Json<DatalabView>> {
    require(may_manage(&principal))?;
    let previous = datalab_or_404(&state, &raw).await?;
    let (name, provider) = datalab_fields(&state, &body, Mode::Update).await?;
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
    Ok(Json(DatalabView::of(&lab, provider.as_ref())))
}

async fn list_providers(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<ProviderView>>> {
    require(may_read(&principal))?;
    let orders = query.ordering("ordering", &PROVIDER_ORDERING)?;
    let mut providers: Vec<InfrastructureProvider> = providers_by_id(&state, false).await?.into_values().collect();
    let terms = query.search_terms();
    providers.retain(|p| {
        query.get("name").is_none_or(|n| p.name == n) && matches_regex_search(&terms, &[Some(p.name.as_str())])
    });
    providers.sort_by_key(|p| p.stamps.created_at);
    sort_by(&mut providers, &orders, |p, _| SortValue::Text(p.name.clone()));
    Ok(Json(query.limited_of(providers).map(|p| ProviderView::of(&p))))
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
) -> AppResult<Json<ProviderView>> {
    require(may_read(&principal))?;
    Ok(Json(ProviderView::of(&provider_or_404(&state, &raw).await?)))
}

async fn create_provider(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<ProviderView>)> {
    require(may_manage(&principal))?;
    let mut fields = Fields::new(&body);
    let form: ProviderForm = fields.form(Mode::Create);
    fields.finish()?;
    let name = form.name.ok_or_else(|| AppError::internal("validated name is missing"))?.0;
    let provider = InfrastructureProvider { uuid: Uuid::new_v4(), name, stamps: Stamps::new(time::now()) };
    state.store.put_infrastructure_provider(&provider, Condition::MustNotExist).await?;
    Ok((StatusCode::CREATED, Json(ProviderView::of(&provider))))
}

async fn patch_provider(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
    Body(body): Body,
) -> AppResult<Json<ProviderView>> {
    require(may_manage(&principal))?;
    let mut provider = provider_or_404(&state, &raw).await?;
    let mut fields = Fields::new(&body);
    let form: ProviderForm = fields.form(Mode::Update);
    fields.finish()?;
    if let Some(name) = form.name {
        provider.name = name.0;
    }
    provider.stamps.modified_at = time::now();
    state.store.put_infrastructure_provider(&provider, Condition::MustExist).await?;
    Ok(Json(ProviderView::of(&provider)))
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
