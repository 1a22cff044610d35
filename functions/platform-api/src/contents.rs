//! `/webcontent/contents/` (spec §9.2): banners and news, readable by anyone, written by full admins.
use std::sync::Arc;

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        content::{content_type_label, validate, Content, CONTENT_TYPES},
        time,
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
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::views::{ContentTypesView, ContentView};

/// A content as POST creates it and PATCH edits it. Documentation only: the domain's `validate`
/// reads the body, its messages kept (texts taken as sent, not trimmed; a non-string, `null`
/// included, is "Not a valid string."; `metadata` values of any type kept as text).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ContentBody {
    #[schema(min_length = 1)]
    title: String,
    #[schema(min_length = 1)]
    content: String,
    /// The front-end page it is shown on.
    page: Option<String>,
    /// One of `/webcontent/contents/content_types/`.
    #[schema(min_length = 1)]
    content_type: String,
    /// `order`, `style` and/or `tags` (PATCH: replaces the whole set; `null`: none).
    #[schema(value_type = Option<Object>)]
    metadata: Option<BTreeMap<String, Value>>,
}

const ORDERING: [&str; 3] = ["created_at", "modified_at", "title"];
/// The text fields `search` looks in.
const SEARCHED: [&str; 2] = ["title", "content"];
/// Comma-separated filters.
const TYPE_FILTER: &str = "content_type";
const PAGE_FILTER: &str = "page_source";

fn list_doc() -> Doc {
    let types: Vec<&str> = CONTENT_TYPES.iter().map(|(k, _)| *k).collect();
    Doc::new()
        .paged::<ContentView>(Paging::Page)
        .ordering(&ORDERING)
        .search(&SEARCHED)
        .param(TYPE_FILTER, &format!("Comma-separated types among: {}.", types.join(", ")), json!({"type": "string"}))
        .param(PAGE_FILTER, "Comma-separated pages the contents are shown on.", json!({"type": "string"}))
}
pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "webcontent")
        .method_policy(MethodPolicy::NotAllowedIf(Principal::is_full_admin))
        .route(Method::GET, "/webcontent/contents/", Exposure::Public, "List contents, newest first (PAGE)", list)
        .doc(list_doc())
        .route(Method::POST, "/webcontent/contents/", Exposure::Authenticated, "Add a content (full admin)", create)
        .doc(Doc::new().body::<ContentBody>().reply::<ContentView>(201, "The new content."))
        .route(Method::GET, "/webcontent/contents/content_types/", Exposure::Public, "The content types", types)
        .doc(Doc::new().reply::<ContentTypesView>(200, "Each type's label and description, by type."))
        .route(Method::GET, "/webcontent/contents/{id}/", Exposure::Public, "Get a content", retrieve)
        .doc(Doc::new().reply::<ContentView>(200, "The content."))
        .route(
            Method::PATCH,
            "/webcontent/contents/{id}/",
            Exposure::Authenticated,
            "Edit a content (full admin)",
            patch,
        )
        .doc(Doc::new().patched_body::<ContentBody>().reply::<ContentView>(200, "The content as changed."))
        .route(
            Method::DELETE,
            "/webcontent/contents/{id}/",
            Exposure::Authenticated,
            "Delete a content (full admin)",
            delete,
        )
        .doc(Doc::new().empty(204, "Deleted."))
        .build()
}

async fn types(_: PublicCaller) -> Json<ContentTypesView> {
    Json(ContentTypesView::all())
}

async fn list(State(state): State<AppState>, _: PublicCaller, query: ListQuery) -> AppResult<Json<Page<ContentView>>> {
    let orders = query.ordering("ordering", &ORDERING)?;
    let types = match query.list(TYPE_FILTER) {
        Some(requested) => {
            let valid: Vec<String> = requested.into_iter().filter(|t| content_type_label(t).is_some()).collect();
            if valid.is_empty() {
                let available: Vec<&str> = CONTENT_TYPES.iter().map(|(k, _)| *k).collect();
                return Err(AppError::field(
                    TYPE_FILTER,
                    format!("Invalid content type. Available types are: {}", available.join(", ")),
                ));
            }
            Some(valid)
        }
        None => None,
    };
    let pages = query.list(PAGE_FILTER);
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
    let page = query.page_of(contents)?;
    Ok(Json(Page {
        count: page.count,
        next: page.next,
        previous: page.previous,
        results: page.results.iter().map(ContentView::of).collect(),
    }))
}

async fn find(state: &AppState, id: &str) -> AppResult<Content> {
    let id = id.parse().map_err(|_| AppError::NotFound("Content"))?;
    state.store.content(id).await?.ok_or(AppError::NotFound("Content"))
}

async fn retrieve(
    State(state): State<AppState>,
    _: PublicCaller,
    Path(id): Path<String>,
) -> AppResult<Json<ContentView>> {
    Ok(Json(ContentView::of(&find(&state, &id).await?)))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<ContentView>)> {
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
    Ok((StatusCode::CREATED, Json(ContentView::of(&content))))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<ContentView>> {
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
    Ok(Json(ContentView::of(&content)))
}

async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    principal.ensure(Principal::is_full_admin)?;
    let mut content = find(&state, &id).await?;
    content.deleted_at = Some(time::now());
    state.store.put_content(&content, Condition::MustExist).await?;
    Ok(StatusCode::NO_CONTENT)
}
