//! `/release-notes/` (spec §9.3): any authenticated user may read, add and edit; no deletion.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    domain::{
        release_note::{validate, ReleaseNote},
        time,
    },
    error::{AppError, AppResult},
    http::{listing::matches_search, listing::ListQuery, Api, AppState, Body, Exposure, Principal, RouteSpec},
    store::Condition,
};
use serde_json::Value;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "release-notes")
        .route(Method::GET, "/release-notes/", Exposure::Authenticated, "List release notes, newest first (PAGE)", list)
        .route(Method::POST, "/release-notes/", Exposure::Authenticated, "Add a release note", create)
        .route(Method::GET, "/release-notes/{id}/", Exposure::Authenticated, "Get a release note", retrieve)
        .route(Method::PATCH, "/release-notes/{id}/", Exposure::Authenticated, "Edit a release note", patch)
        .build()
}

async fn list(State(state): State<AppState>, _: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let terms = query.search_terms();
    let notes: Vec<Value> = state
        .store
        .release_notes()
        .await?
        .into_iter()
        .filter(|n| {
            let message = n.message.join("\n");
            matches_search(&terms, &[Some(&n.title), Some(&message)])
        })
        .map(|n| n.to_json())
        .collect();
    Ok(Json(query.page(notes)?))
}

async fn find(state: &AppState, id: &str) -> AppResult<ReleaseNote> {
    let id = id.parse().map_err(|_| AppError::NotFound("ReleaseNote"))?;
    state.store.release_note(id).await?.ok_or(AppError::NotFound("ReleaseNote"))
}

async fn retrieve(State(state): State<AppState>, _: Arc<Principal>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    Ok(Json(find(&state, &id).await?.to_json()))
}

async fn create(State(state): State<AppState>, _: Arc<Principal>, Body(body): Body) -> AppResult<Response> {
    let fields = validate(&body, None)?;
    let now = time::now();
    let note = ReleaseNote {
        id: state.store.next_id("release_note").await?,
        title: fields.title,
        message: fields.message,
        author: fields.author,
        insert_datetime: now,
        update_datetime: now,
    };
    state.store.put_release_note(&note, Condition::MustNotExist).await?;
    Ok((StatusCode::CREATED, Json(note.to_json())).into_response())
}

async fn patch(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    let mut note = find(&state, &id).await?;
    let fields = validate(&body, Some(&note))?;
    note.title = fields.title;
    note.message = fields.message;
    note.author = fields.author;
    note.update_datetime = time::now();
    state.store.put_release_note(&note, Condition::MustExist).await?;
    Ok(Json(note.to_json()))
}
