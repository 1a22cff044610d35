//! `/release-notes/` (spec §9.3): any authenticated user may read, add and edit; no deletion.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        release_note::{validate, ReleaseNote},
        time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{Doc, Paging},
        listing::{matches_search, ListQuery, Page},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::Condition,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::views::ReleaseNoteView;

/// A release note as POST creates it and PATCH edits it. Documentation only: the domain's
/// `validate` reads the body, its messages kept (a non-string title, `null` included, is "Not a
/// valid string.", a title is not trimmed, a message that is no list is "Expected a list of items…").
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ReleaseNoteBody {
    #[schema(min_length = 1)]
    title: String,
    /// Its paragraphs.
    message: Vec<String>,
    author: Option<String>,
}

/// The text fields `search` looks in.
const SEARCHED: [&str; 2] = ["title", "message"];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "release-notes")
        .route(Method::GET, "/release-notes/", Exposure::Authenticated, "List release notes, newest first (PAGE)", list)
        .doc(Doc::new().paged::<ReleaseNoteView>(Paging::Page).search(&SEARCHED))
        .route(Method::POST, "/release-notes/", Exposure::Authenticated, "Add a release note", create)
        .doc(Doc::new().body::<ReleaseNoteBody>().reply::<ReleaseNoteView>(201, "The new note."))
        .route(Method::GET, "/release-notes/{id}/", Exposure::Authenticated, "Get a release note", retrieve)
        .doc(Doc::new().reply::<ReleaseNoteView>(200, "The note."))
        .route(Method::PATCH, "/release-notes/{id}/", Exposure::Authenticated, "Edit a release note", patch)
        .doc(Doc::new().patched_body::<ReleaseNoteBody>().reply::<ReleaseNoteView>(200, "The note as changed."))
        .build()
}

async fn list(
    State(state): State<AppState>,
    _: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<ReleaseNoteView>>> {
    let terms = query.search_terms();
    let notes: Vec<ReleaseNoteView> = state
        .store
        .release_notes()
        .await?
        .iter()
        .filter(|n| {
            let message = n.message.join("\n");
            matches_search(&terms, &[Some(&n.title), Some(&message)])
        })
        .map(ReleaseNoteView::of)
        .collect();
    Ok(Json(query.page_of(notes)?))
}

async fn find(state: &AppState, id: &str) -> AppResult<ReleaseNote> {
    let id = id.parse().map_err(|_| AppError::NotFound("ReleaseNote"))?;
    state.store.release_note(id).await?.ok_or(AppError::NotFound("ReleaseNote"))
}

async fn retrieve(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Json<ReleaseNoteView>> {
    Ok(Json(ReleaseNoteView::of(&find(&state, &id).await?)))
}

async fn create(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<ReleaseNoteView>)> {
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
    Ok((StatusCode::CREATED, Json(ReleaseNoteView::of(&note))))
}

async fn patch(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<ReleaseNoteView>> {
    let mut note = find(&state, &id).await?;
    let fields = validate(&body, Some(&note))?;
    note.title = fields.title;
    note.message = fields.message;
    note.author = fields.author;
    note.update_datetime = time::now();
    state.store.put_release_note(&note, Condition::MustExist).await?;
    Ok(Json(ReleaseNoteView::of(&note)))
}
