//! `/cohort/requests/` and `/cohort/folders/{parent_folder}/requests/` (spec §5.4).
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        cohort::{Folder, Kind, Request, Stamps},
        summary::{FolderLine, RequestLine, RequestSummary},
        time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{BlankText, Doc, Mode, Paging, Pk, Text},
        fields::Fields,
        listing::{matches_regex_search, sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::{
        cohort::{object_entry, Changes},
        summaries::{request_entry_with, ItemUpdate, RequestKey, RequestRow, FOLDER_LINE},
        Condition, StoreError, Write,
    },
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::{
    common::*,
    rows,
    views::{self, RequestView},
};

const RELATIONS: [&str; 2] = ["parent_folder", "owner"];
const ORDERING: [&str; 3] = ["name", "updated_at", "parent_folder"];

c360::form! {
    /// A request as POST creates it and PATCH edits it (`owner_id` and `parent_folder_id` are read as
    /// `owner` and `parent_folder`).
    pub struct RequestForm {
        /// The caller's username, if sent.
        optional owner: OwnerRef,
        required name: Text<255>,
        optional description: BlankText,
        optional favorite: bool,
        /// One of the caller's folders (the path's, on the routes under a folder).
        required parent_folder: Pk,
    }
}

fn list_doc() -> Doc {
    let text = json!({"type": "string"});
    Doc::new()
        .paged::<RequestView>(Paging::Limit)
        .ordering(&ORDERING)
        .search(&["name", "description"])
        .param("favorite", "Favorites only (true) or the others (false).", json!({"type": "boolean"}))
        .param("shared_by", "Shared by this username.", text)
        .param("parent_folder", "In this folder.", json!({"type": "string", "format": "uuid"}))
        .date_range("updated_at")
}

fn create_doc() -> Doc {
    Doc::new().form::<RequestForm>(Mode::Create).reply::<RequestView>(201, "The new request (without `updated_at`).")
}

fn patch_doc() -> Doc {
    Doc::new()
        .form::<RequestForm>(Mode::Update)
        .reply::<RequestView>(200, "The request as changed.")
        .error(400, "Invalid fields, or the request changed meanwhile (a message: retry).")
}

fn destroy_doc() -> Doc {
    Doc::new()
        .empty(204, "Deleted, with their versions, counts and cohorts.")
        .error(400, "A comma-separated list holding something else than uuids.")
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "cohort")
        .route(Method::GET, "/cohort/requests/", Exposure::Authenticated, "List the caller's requests (LIMIT)", list)
        .doc(list_doc())
        .audited(
            Method::POST,
            "/cohort/requests/",
            Exposure::Authenticated,
            "Create a request",
            "requests.create",
            create,
        )
        .doc(create_doc())
        .route(Method::GET, "/cohort/requests/{uuid}/", Exposure::Authenticated, "Get a request", retrieve)
        .doc(Doc::new().reply::<RequestView>(200, "The request."))
        .audited(
            Method::PATCH,
            "/cohort/requests/{uuid}/",
            Exposure::Authenticated,
            "Edit a request",
            "requests.partial_update",
            patch,
        )
        .doc(patch_doc())
        .audited(
            Method::DELETE,
            "/cohort/requests/{uuid}/",
            Exposure::Authenticated,
            "Delete requests (comma-separated uuids) and everything below them",
            "requests.destroy",
            destroy,
        )
        .doc(destroy_doc())
        .route(
            Method::GET,
            "/cohort/folders/{parent_folder}/requests/",
            Exposure::Authenticated,
            "List the requests of a folder (LIMIT)",
            list_in_folder,
        )
        .doc(list_doc())
        .audited(
            Method::POST,
            "/cohort/folders/{parent_folder}/requests/",
            Exposure::Authenticated,
            "Create a request in a folder",
            "requests.create",
            create_in_folder,
        )
        .doc(create_doc())
        .route(
            Method::GET,
            "/cohort/folders/{parent_folder}/requests/{uuid}/",
            Exposure::Authenticated,
            "Get a request of a folder",
            retrieve_in_folder,
        )
        .doc(Doc::new().reply::<RequestView>(200, "The request."))
        .audited(
            Method::PATCH,
            "/cohort/folders/{parent_folder}/requests/{uuid}/",
            Exposure::Authenticated,
            "Edit a request of a folder",
            "requests.partial_update",
            patch_in_folder,
        )
        .doc(patch_doc())
        .audited(
            Method::DELETE,
            "/cohort/folders/{parent_folder}/requests/{uuid}/",
            Exposure::Authenticated,
            "Delete requests of a folder",
            "requests.destroy",
            destroy_in_folder,
        )
        .doc(destroy_doc())
        .build()
}

/// Display names of the sharers the rendered requests mention.
async fn sharer_names(state: &AppState, requests: &[&Request]) -> AppResult<views::Names> {
    let sharers: Vec<&str> = requests.iter().filter_map(|r| r.shared_by.as_deref()).collect();
    if sharers.is_empty() {
        return Ok(HashMap::new());
    }
    let users = state.store.users_by_name(&sharers).await?;
    Ok(users.into_iter().map(|(name, user)| (name, user.display_name())).collect())
}

/// Renders rows with their sharers' names (one BatchGetItem, only when the rows name sharers).
async fn render(state: &AppState, rows: &[&RequestRow]) -> AppResult<Vec<RequestView>> {
    let requests: Vec<&Request> = rows.iter().map(|r| &r.request).collect();
    let names = sharer_names(state, &requests).await?;
    Ok(rows.iter().map(|row| RequestView::of(row, &names, true)).collect())
}

async fn rendered_one(state: &AppState, row: &RequestRow) -> AppResult<RequestView> {
    let names = sharer_names(state, &[&row.request]).await?;
    Ok(RequestView::of(row, &names, true))
}

async fn list_scoped(
    state: &AppState,
    owner: &str,
    query: &ListQuery,
    folder: Option<Uuid>,
) -> AppResult<Page<RequestView>> {
    let orders = query.ordering("ordering", &ORDERING)?;
    let default_order = query.ordering_from("-updated_at");
    let in_index_order = folder.is_none()
        && (orders.is_empty() || orders == default_order)
        && query.has_only(&["limit", "offset", "ordering"]);
    if in_index_order {
        let (limit, offset) = query.limit_offset();
        if let Some((total, page)) = rows::requests_page(state, owner, offset, limit).await? {
            let rendered = render(state, &page.iter().collect::<Vec<_>>()).await?;
            return Ok(query.limited_window(total, rendered));
        }
    }
    let orders = if orders.is_empty() { default_order } else { orders };
    let updated_range = query.date_range("updated_at")?;
    let parent_folder = query.uuid("parent_folder")?;
    let (all, folders, known) = rows::all_requests(state, owner).await?;
    let terms = query.search_terms();
    let mut requests: Vec<(&RequestKey, Option<String>)> = all
        .iter()
        .filter(|r| {
            folder.is_none_or(|f| r.parent_folder == f)
                && flag_matches(query, "favorite", r.favorite)
                && query.get("shared_by").is_none_or(|s| r.shared_by.as_deref() == Some(s))
                && parent_folder.is_none_or(|p| r.parent_folder == p)
                && matches_regex_search(&terms, &[Some(&r.name), Some(&r.description)])
        })
        .map(|r| (r, r.updated_at.map(time::iso)))
        .filter(|(_, updated)| updated_range.contains(updated.as_deref().and_then(time::parse)))
        .collect();
    let folder_name = |uuid: Uuid| folders.iter().find(|f| f.uuid == uuid).map(|f| f.name.as_str());
    sort_by(&mut requests, &orders, |(r, updated), field| match field {
        "name" => SortValue::Text(r.name.clone()),
        "parent_folder" => folder_name(r.parent_folder).into(),
        _ => updated.as_deref().into(),
    });
    let page = query.limited_of(requests.into_iter().map(|(r, _)| r.uuid).collect::<Vec<_>>());
    let rows = rows::requests_by_id(state, owner, &page.results, known).await?;
    let rendered = render(state, &rows.iter().collect::<Vec<_>>()).await?;
    Ok(query.limited_window(page.count, rendered))
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<RequestView>>> {
    Ok(Json(list_scoped(&state, owner(&principal), &query, None).await?))
}

async fn list_in_folder(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(folder): Path<String>,
    query: ListQuery,
) -> AppResult<Json<Page<RequestView>>> {
    // An unknown folder has no requests.
    let folder = Uuid::parse_str(&folder).unwrap_or(Uuid::nil());
    Ok(Json(list_scoped(&state, owner(&principal), &query, Some(folder)).await?))
}

async fn create_scoped(
    state: &AppState,
    owner: &str,
    mut body: Map<String, Value>,
    folder: Option<&str>,
) -> AppResult<(StatusCode, Json<RequestView>)> {
    apply_id_aliases(&mut body, &RELATIONS);
    if let Some(folder) = folder {
        body.insert("parent_folder".into(), Value::String(folder.to_owned()));
    }
    let folder = named_folder(state, owner, &body).await?;
    let mut fields = Fields::new(&body);
    let form: RequestForm = fields.form(Mode::Create);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    let parent_folder = form
        .parent_folder
        .as_ref()
        .and_then(|pk| pk.check(&mut fields, "parent_folder", |u| folder.as_ref().is_some_and(|f| f.uuid == u)));
    fields.finish()?;
    let request = Request {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        name: form.name.map(|n| n.0).unwrap_or_default(),
        description: form.description.map(|d| d.0).unwrap_or_default(),
        favorite: form.favorite.unwrap_or(false),
        parent_folder: parent_folder.unwrap_or_default(),
        shared_by: None,
        snapshot_versions: None,
        summary_rev: 0,
        stamps: Stamps::new(time::now()),
    };
    // A folder renamed between the read and the write: read it again (a folder gone is the 400 of a
    // missing folder).
    let mut folder = folder;
    for _ in 0..3 {
        let Some(current) = folder.take() else { break };
        let summary = RequestSummary { folder: Some(FolderLine::of(&current)), ..RequestSummary::default() };
        if insert_request(state, &request, &summary).await? {
            let row = RequestRow { request, summary };
            return Ok((StatusCode::CREATED, Json(RequestView::of(&row, &HashMap::new(), false))));
        }
        folder = state.store.workspace_object::<Folder>(owner, request.parent_folder).await?;
    }
    let missing = format!("Invalid pk \"{}\" - object does not exist.", request.parent_folder);
    Err(AppError::field("parent_folder", missing))
}

/// Writes a new request with its folder's count and the owner's; `false` when the folder was renamed
/// or went to the bin meanwhile (nothing written).
async fn insert_request(state: &AppState, request: &Request, summary: &RequestSummary) -> AppResult<bool> {
    let mut counts = ItemUpdate::counts(&request.owner);
    counts.add_requests(1);
    let mut holds = ItemUpdate::folder(&request.owner, request.parent_folder);
    holds.folder_requests(1);
    if let Some(line) = &summary.folder {
        holds.folder_still_named(line);
    }
    let entry = request_entry_with(object_entry(request)?, request, summary)?;
    let writes =
        vec![Write::Put(entry, Condition::MustNotExist), state.store.update(holds)?, state.store.update(counts)?];
    match state.store.transact(writes).await {
        Err(StoreError::TransactionConflict(failed)) if failed.get(1) == Some(&true) => Ok(false),
        other => other.map(|()| true).map_err(Into::into),
    }
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<RequestView>)> {
    create_scoped(&state, owner(&principal), body, None).await
}

async fn create_in_folder(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(folder): Path<String>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<RequestView>)> {
    create_scoped(&state, owner(&principal), body, Some(&folder)).await
}

/// The folder a body's `parent_folder` names, if it is one of the owner's.
async fn named_folder(state: &AppState, owner: &str, body: &Map<String, Value>) -> AppResult<Option<Folder>> {
    let Some(uuid) = body.get("parent_folder").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s.trim()).ok())
    else {
        return Ok(None);
    };
    Ok(state.store.workspace_object::<Folder>(owner, uuid).await?)
}

/// The caller's request `uuid` (in `folder` for nested routes).
async fn owned_request(state: &AppState, owner: &str, uuid: &str, folder: Option<&str>) -> AppResult<RequestRow> {
    let uuid = path_uuid(uuid, Kind::Request)?;
    let row = rows::one_request(state, owner, uuid).await?.ok_or(AppError::NotFound("Request"))?;
    if folder.is_some_and(|f| row.request.parent_folder.to_string() != f) {
        return Err(AppError::NotFound("Request"));
    }
    Ok(row)
}

async fn retrieve_scoped(
    state: &AppState,
    owner: &str,
    uuid: &str,
    folder: Option<&str>,
) -> AppResult<Json<RequestView>> {
    let row = owned_request(state, owner, uuid, folder).await?;
    Ok(Json(rendered_one(state, &row).await?))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<RequestView>> {
    retrieve_scoped(&state, owner(&principal), &uuid, None).await
}

async fn retrieve_in_folder(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path((folder, uuid)): Path<(String, String)>,
) -> AppResult<Json<RequestView>> {
    retrieve_scoped(&state, owner(&principal), &uuid, Some(&folder)).await
}

async fn patch_scoped(
    state: &AppState,
    owner: &str,
    uuid: &str,
    folder: Option<&str>,
    mut body: Map<String, Value>,
) -> AppResult<Json<RequestView>> {
    apply_id_aliases(&mut body, &RELATIONS);
    // A cohort added or a folder emptied between the reads and the write: read again.
    for _ in 0..3 {
        if let Some(patched) = patch_once(state, owner, uuid, folder, &body).await? {
            return Ok(patched);
        }
    }
    Err(AppError::InvalidString("The request changed meanwhile, please try again".into()))
}

/// `None` when a concurrent write changed what the rows around the request show of it.
async fn patch_once(
    state: &AppState,
    owner: &str,
    uuid: &str,
    folder: Option<&str>,
    body: &Map<String, Value>,
) -> AppResult<Option<Json<RequestView>>> {
    let row = owned_request(state, owner, uuid, folder).await?;
    let named = named_folder(state, owner, body).await?;
    let mut fields = Fields::new(body);
    let form: RequestForm = fields.form(Mode::Update);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    let parent_folder = form
        .parent_folder
        .as_ref()
        .and_then(|pk| pk.check(&mut fields, "parent_folder", |u| named.as_ref().is_some_and(|f| f.uuid == u)));
    fields.finish()?;
    let (name, description, favorite) = (form.name.map(|n| n.0), form.description.map(|d| d.0), form.favorite);
    let mut changes = Changes::modified(time::now());
    if let Some(name) = &name {
        changes.set("name", name)?;
    }
    if let Some(description) = &description {
        changes.set("description", description)?;
    }
    if let Some(favorite) = favorite {
        changes.set("favorite", &favorite)?;
    }
    // What the rows around the request show of it: its folders' counts, its cohorts' request line.
    let mut summaries: Vec<ItemUpdate> = Vec::new();
    if let Some(folder) = parent_folder.filter(|f| *f != row.request.parent_folder) {
        changes.set("parent_folder", &folder)?.while_equal("parent_folder", &row.request.parent_folder.to_string());
        let (mut left, mut joined) =
            (ItemUpdate::folder(owner, row.request.parent_folder), ItemUpdate::folder(owner, folder));
        left.folder_requests(-1);
        joined.folder_requests(1);
        // The request's row shows its new folder, as named when read.
        if let Some(line) = named.as_ref().map(FolderLine::of) {
            changes.set(FOLDER_LINE, &line)?;
            joined.folder_still_named(&line);
        }
        summaries.extend([left, joined]);
    }
    let line = RequestLine {
        name: name.clone().unwrap_or_else(|| row.request.name.clone()),
        description: description.clone().unwrap_or_else(|| row.request.description.clone()),
    };
    if line != RequestLine::of(&row.request) {
        // The cohorts known now are all there are only while no cohort is added meanwhile.
        changes.while_rev(row.request.summary_rev);
        for cohort in row.summary.snapshots.values().flat_map(|s| s.cohorts.iter()) {
            let mut shown = ItemUpdate::cohort(owner, *cohort);
            shown.request_line(&line)?;
            summaries.push(shown);
        }
    }
    let updated: Request = if summaries.is_empty() {
        update_owned(state, owner, row.request.uuid, changes).await?
    } else {
        // A transaction returns nothing: the request is what the changes make of it.
        let mut updated = row.request.clone();
        changes.apply_to(&mut updated)?;
        let mut writes = vec![state.store.update_write::<Request>(owner, row.request.uuid, changes)?];
        writes.extend(state.store.updates(summaries)?);
        match state.store.transact_in_chunks(writes).await {
            Err(StoreError::TransactionConflict(_)) => return Ok(None),
            other => other?,
        }
        updated
    };
    let mut summary = row.summary;
    if updated.parent_folder != row.request.parent_folder {
        summary.folder = named.as_ref().map(FolderLine::of);
    }
    let row = RequestRow { request: updated, summary };
    Ok(Some(Json(rendered_one(state, &row).await?)))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(body): Body,
) -> AppResult<Json<RequestView>> {
    patch_scoped(&state, owner(&principal), &uuid, None, body).await
}

async fn patch_in_folder(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path((folder, uuid)): Path<(String, String)>,
    Body(body): Body,
) -> AppResult<Json<RequestView>> {
    patch_scoped(&state, owner(&principal), &uuid, Some(&folder), body).await
}

async fn destroy(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuids): Path<String>,
) -> AppResult<StatusCode> {
    let uuids = delete_targets(&uuids, Kind::Request)?;
    delete_owned(&state, owner(&principal), Kind::Request, &uuids).await
}

async fn destroy_in_folder(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path((folder, uuids)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let uuids = delete_targets(&uuids, Kind::Request)?;
    let requests: Vec<Request> = state.store.workspace_objects(owner(&principal), &uuids).await?;
    let in_folder = |u: &Uuid| requests.iter().any(|r| r.uuid == *u && r.parent_folder.to_string() == folder);
    if !uuids.iter().all(in_folder) {
        return Err(AppError::NotFound("Request"));
    }
    delete_owned(&state, owner(&principal), Kind::Request, &uuids).await
}
