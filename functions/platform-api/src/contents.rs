//! `/webcontent/contents/` (spec §9.2): banners and news, readable by anyone, written by full admins.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    domain::{
        content::{content_type_label, content_types_json, validate, Content, CONTENT_TYPES},
        time,
    },
    error::{AppError, AppResult},
    http::{
        listing::{matches_regex_search, sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, PublicCaller, RouteSpec,
    },
    store::Condition,
};
use serde_json::Value;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "webcontent")
        .method_policy(MethodPolicy::NotAllowedIf(Principal::is_full_admin))
        .route(Method::GET, "/webcontent/contents/", Exposure::Public, "List contents, newest first (PAGE)", list)
        .route(Method::POST, "/webcontent/contents/", Exposure::Authenticated, "Add a content (full admin)", create)
        .route(Method::GET, "/webcontent/contents/content_types/", Exposure::Public, "The content types", types)
        .route(Method::GET, "/webcontent/contents/{id}/", Exposure::Public, "Get a content", retrieve)
        .route(
            Method::PATCH,
            "/webcontent/contents/{id}/",
            Exposure::Authenticated,
            "Edit a content (full admin)",
            patch,
        )
        .route(
            Method::DELETE,
            "/webcontent/contents/{id}/",
            Exposure::Authenticated,
            "Delete a content (full admin)",
            delete,
        )
        .build()
}

async fn types(_: PublicCaller) -> Json<Value> {
    Json(content_types_json())
}

async fn list(State(state): State<AppState>, _: PublicCaller, query: ListQuery) -> AppResult<Json<Value>> {
    let orders = query.ordering("ordering", &["created_at", "modified_at", "title"])?;
    let types = match query.list("content_type") {
        Some(requested) => {
            let valid: Vec<String> = requested.into_iter().filter(|t| content_type_label(t).is_some()).collect();
            if valid.is_empty() {
                let available: Vec<&str> = CONTENT_TYPES.iter().map(|(k, _)| *k).collect();
                return Err(AppError::field(
                    "content_type",
                    format!("Invalid content type. Available types are: {}", available.join(", ")),
                ));
            }
            Some(valid)
        }
        None => None,
    };
    let pages = query.list("page_source");
    let terms = query.search_terms();
    let mut contents: Vec<Content> = state
        .store
        .contents()
        .await?
        .into_iter()
        .filter(|c| types.as_ref().is_none_or(|t| t.contains(&c.content_type)))
        .filter(|c| pages.as_ref().is_none_or(|p| c.page.as_ref().is_some_and(|page| p.contains(page))))
        .filter(|c| matches_regex_search(&terms, &[Some(&c.title), Some(&c.content)]))
        .collect();
    sort_by(&mut contents, &orders, |c, field| match field {
        "title" => SortValue::Text(c.title.clone()),
        "modified_at" => SortValue::Text(time::iso(c.modified_at)),
        _ => SortValue::Text(time::iso(c.created_at)),
    });
    Ok(Json(query.page(contents.iter().map(Content::to_json).collect())?))
}

async fn find(state: &AppState, id: &str) -> AppResult<Content> {
    let id = id.parse().map_err(|_| AppError::NotFound("Content"))?;
    state.store.content(id).await?.ok_or(AppError::NotFound("Content"))
}

async fn retrieve(State(state): State<AppState>, _: PublicCaller, Path(id): Path<String>) -> AppResult<Json<Value>> {
    Ok(Json(find(&state, &id).await?.to_json()))
}

async fn create(State(state): State<AppState>, principal: Arc<Principal>, Body(body): Body) -> AppResult<Response> {
    principal.ensure(Principal::is_full_admin)?;
    let fields = validate(&body, None)?;
    let now = time::now();
    let content = Content {
        id: state.store.next_id("content").await?,
        title: fields.title,
        content: fields.content,
        page: fields.page,
        content_type: fields.content_type,
        metadata: fields.metadata,
        created_at: now,
        modified_at: now,
        deleted_at: None,
    };
    state.store.put_content(&content, Condition::MustNotExist).await?;
    Ok((StatusCode::CREATED, Json(content.to_json())).into_response())
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    principal.ensure(Principal::is_full_admin)?;
    let mut content = find(&state, &id).await?;
    let fields = validate(&body, Some(&content))?;
    content.title = fields.title;
    content.content = fields.content;
    content.page = fields.page;
    content.content_type = fields.content_type;
    content.metadata = fields.metadata;
    content.modified_at = time::now();
    state.store.put_content(&content, Condition::MustExist).await?;
    Ok(Json(content.to_json()))
}

async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    principal.ensure(Principal::is_full_admin)?;
    let mut content = find(&state, &id).await?;
    content.deleted_at = Some(time::now());
    state.store.put_content(&content, Condition::MustExist).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
