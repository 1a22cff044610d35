//! `/cohort/folders/` (spec §5.3): the user's projects.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        cohort::{Folder, Kind, Stamps, Workspace},
        summary::FolderLine,
        time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{BlankText, Doc, Mode, Paging, Text},
        fields::Fields,
        listing::{matches_regex_search, sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::{
        cohort::{put_object, Changes},
        summaries::ItemUpdate,
        Condition, StoreError,
    },
};
use serde_json::json;
use uuid::Uuid;

use crate::{common::*, views::FolderView};

c360::form! {
    /// A folder as POST creates it and PATCH edits it (`owner_id` is read as `owner`).
    pub struct FolderForm {
        /// The caller's username, if sent: a folder belongs to whoever creates it.
        optional owner: OwnerRef,
        required name: Text<50>,
        optional description: Option<BlankText>,
    }
}

const ORDERING: [&str; 3] = ["name", "created_at", "modified_at"];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "cohort")
        .route(Method::GET, "/cohort/folders/", Exposure::Authenticated, "List the caller's folders (LIMIT)", list)
        .doc(
            Doc::new()
                .paged::<FolderView>(Paging::Limit)
                .ordering(&ORDERING)
                .search(&["name"])
                .param("name", "Exact name.", json!({"type": "string"}))
                .date_range("created_at"),
        )
        .audited(Method::POST, "/cohort/folders/", Exposure::Authenticated, "Create a folder", "folders.create", create)
        .doc(Doc::new().form::<FolderForm>(Mode::Create).reply::<FolderView>(201, "The new folder."))
        .route(Method::GET, "/cohort/folders/{uuid}/", Exposure::Authenticated, "Get a folder", retrieve)
        .doc(Doc::new().reply::<FolderView>(200, "The folder."))
        .audited(
            Method::PATCH,
            "/cohort/folders/{uuid}/",
            Exposure::Authenticated,
            "Rename or describe a folder",
            "folders.partial_update",
            patch,
        )
        .doc(Doc::new().form::<FolderForm>(Mode::Update).reply::<FolderView>(200, "The folder as changed."))
        .audited(
            Method::DELETE,
            "/cohort/folders/{uuid}/",
            Exposure::Authenticated,
            "Delete folders (comma-separated uuids) and everything in them",
            "folders.destroy",
            destroy,
        )
        .doc(
            Doc::new()
                .empty(204, "Deleted, with their requests, versions, counts and cohorts.")
                .error(400, "A comma-separated list holding something else than uuids."),
        )
        .build()
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<FolderView>>> {
    let orders = query.ordering("ordering", &ORDERING)?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    let created = query.date_range("created_at")?;
    let ws = folders_with_counts(&state, owner(&principal)).await?;
    let terms = query.search_terms();
    let mut folders: Vec<&Folder> = ws
        .folders
        .iter()
        .filter(|f| query.get("name").is_none_or(|n| n == f.name))
        .filter(|f| created.contains(Some(f.stamps.created_at)))
        .filter(|f| matches_regex_search(&terms, &[Some(&f.name)]))
        .collect();
    sort_by(&mut folders, &orders, |f, field| match field {
        "name" => SortValue::Text(f.name.clone()),
        "modified_at" => SortValue::Text(time::iso(f.stamps.modified_at)),
        _ => SortValue::Text(time::iso(f.stamps.created_at)),
    });
    let rows = folders.into_iter().map(|f| FolderView::of(f, requests_count(&ws, f))).collect();
    Ok(Json(query.limited_of(rows)))
}

/// The owner's folders, and their requests when the folders do not count them yet (tables not
/// backfilled: a count written meanwhile only holds the changes since).
async fn folders_with_counts(state: &AppState, owner: &str) -> AppResult<Workspace> {
    if state.store.workspace_layout_ready().await? {
        load(state, owner, &[Kind::Folder]).await
    } else {
        let mut ws = load(state, owner, &[Kind::Folder, Kind::Request]).await?;
        ws.folders.iter_mut().for_each(|f| f.requests_count = None);
        Ok(ws)
    }
}

fn requests_count(ws: &Workspace, folder: &Folder) -> i64 {
    match folder.requests_count {
        Some(n) => n.max(0),
        None => ws.requests.iter().filter(|r| r.parent_folder == folder.uuid).count() as i64,
    }
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<FolderView>)> {
    apply_id_aliases(&mut body, &["owner"]);
    let mut fields = Fields::new(&body);
    let form: FolderForm = fields.form(Mode::Create);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner(&principal));
    }
    fields.finish()?;
    let folder = Folder {
        uuid: Uuid::new_v4(),
        owner: owner(&principal).to_owned(),
        name: form.name.map(|n| n.0).unwrap_or_default(),
        description: form.description.flatten().map(|d| d.0),
        requests_count: Some(0),
        stamps: Stamps::new(time::now()),
    };
    state.store.transact(vec![put_object(&folder, Condition::MustNotExist)?]).await?;
    Ok((StatusCode::CREATED, Json(FolderView::of(&folder, 0))))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<FolderView>> {
    let uuid = path_uuid(&uuid, Kind::Folder)?;
    let folder: Folder = owned(&state, owner(&principal), uuid).await?;
    let count = count_of(&state, owner(&principal), &folder).await?;
    Ok(Json(FolderView::of(&folder, count)))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(mut body): Body,
) -> AppResult<Json<FolderView>> {
    let uuid = path_uuid(&uuid, Kind::Folder)?;
    let owner = owner(&principal);
    apply_id_aliases(&mut body, &["owner"]);
    let mut fields = Fields::new(&body);
    let form: FolderForm = fields.form(Mode::Update);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    let name = form.name.map(|n| n.0);
    let description = form.description.map(|d| d.map(|d| d.0));
    checked::<Folder>(&state, owner, uuid, fields).await?;
    // A request added to the folder between the reads and the write: read again.
    let mut folder = None;
    for _ in 0..3 {
        folder = rename(&state, owner, uuid, name.clone(), description.clone()).await?;
        if folder.is_some() {
            break;
        }
    }
    let folder =
        folder.ok_or_else(|| AppError::InvalidString("The folder changed meanwhile, please try again".into()))?;
    let count = count_of(&state, owner, &folder).await?;
    Ok(Json(FolderView::of(&folder, count)))
}

/// Renames or describes a folder, and its requests' rows with it (they show its name): one
/// transaction, on condition that the folder still holds the requests read (100 operations per
/// transaction; the requests beyond follow). `None` when a request came or went meanwhile.
async fn rename(
    state: &AppState,
    owner: &str,
    uuid: Uuid,
    name: Option<String>,
    description: Option<Option<String>>,
) -> AppResult<Option<Folder>> {
    let current: Folder = owned(state, owner, uuid).await?;
    let line = FolderLine {
        name: name.clone().unwrap_or_else(|| current.name.clone()),
        description: description.clone().unwrap_or_else(|| current.description.clone()),
    };
    let mut changes = Changes::modified(time::now());
    if let Some(name) = &name {
        changes.set("name", name)?;
    }
    if let Some(description) = &description {
        changes.set("description", description)?;
    }
    let renamed = line != FolderLine::of(&current) && state.store.workspace_layout_ready().await?;
    if !renamed {
        return Ok(Some(update_owned(state, owner, uuid, changes).await?));
    }
    let held: Vec<Uuid> = state
        .store
        .request_keys(owner)
        .await?
        .into_iter()
        .filter(|r| r.parent_folder == uuid)
        .map(|r| r.uuid)
        .collect();
    changes.while_number("requests_count", current.requests_count);
    // A transaction returns nothing: the folder is what the changes make of it.
    let mut renamed = current.clone();
    changes.apply_to(&mut renamed)?;
    let mut writes = vec![state.store.update_write::<Folder>(owner, uuid, changes)?];
    for request in held {
        let mut row = ItemUpdate::request(owner, request);
        row.folder_line(&line)?;
        writes.push(state.store.update(row)?);
    }
    match state.store.transact_in_chunks(writes).await {
        Err(StoreError::TransactionConflict(_)) => return Ok(None),
        other => other?,
    }
    Ok(Some(renamed))
}

/// One folder's request count: its own counter once the table is backfilled (no other read), else
/// its requests counted in the owner's request items.
async fn count_of(state: &AppState, owner: &str, folder: &Folder) -> AppResult<i64> {
    if state.store.workspace_layout_ready().await? {
        return Ok(folder.requests_count.unwrap_or(0).max(0));
    }
    let ws = load(state, owner, &[Kind::Request]).await?;
    Ok(ws.requests.iter().filter(|r| r.parent_folder == folder.uuid).count() as i64)
}

async fn destroy(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuids): Path<String>,
) -> AppResult<StatusCode> {
    let uuids = delete_targets(&uuids, Kind::Folder)?;
    delete_owned(&state, owner(&principal), Kind::Folder, &uuids).await
}
