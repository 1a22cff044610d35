//! `/cohort/request-query-snapshots/` and `/cohort/requests/{request_id}/query-snapshots/` (spec §5.5):
//! versioned queries, their history and sharing.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    domain::{
        cohort::{
            perimeters_ids, query_too_large, CohortResult, Folder, Kind, Request, Snapshot, SnapshotQuery, Stamps,
            Workspace, MAX_QUERY_BYTES,
        },
        summary::{FolderLine, RequestSummary, SnapshotLine, SnapshotSummary},
        time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{BlankText, Doc, FormField, Mode, Paging, Pk, Schema},
        fields::{Fields, Text},
        listing::{sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    services::notify,
    store::{
        cohort::{
            object_entry, patch_history_write, put_object, snapshot_perimeter_writes, snapshot_query_write, Changes,
        },
        keys,
        summaries::{request_entry_with, ItemUpdate},
        Condition, StoreError, StoreResult, Write,
    },
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::{common::*, views::SnapshotView};

const RELATIONS: [&str; 3] = ["request", "previous_snapshot", "owner"];
/// What rendering a snapshot reads (its counts and cohorts, and their requests).
const SNAPSHOT_KINDS: [Kind; 4] = [Kind::Request, Kind::Snapshot, Kind::DatedMeasure, Kind::Cohort];

/// A new version (spec §5.5), read by hand: its steps run in order with their bare-string errors
/// (which version it follows, whether the request may take a first one, the query's size).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `try_create`
struct SnapshotCreation {
    /// The caller's username, if sent.
    owner: Option<String>,
    /// The version it follows (given by the path under `next-snapshots/`)…
    previous_snapshot: Option<Uuid>,
    /// …or, for a request's first version, the request (given by the path under a request).
    request: Option<Uuid>,
    /// The Cohort360 app's query document, as a JSON string (at most 1 MiB).
    serialized_query: String,
    name: Option<String>,
}

/// The perimeters a version's query reads, by cohort id.
#[derive(Clone, Debug, PartialEq)]
pub struct PerimeterIds(Vec<String>);

impl FormField for PerimeterIds {
    fn read(value: &Value) -> Result<Self, String> {
        match value {
            Value::Array(items) if items.iter().all(Value::is_string) => {
                Ok(Self(items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect()))
            }
            _ => Err("Expected a list of items.".into()),
        }
    }

    fn schema() -> Schema {
        json!({"type": "array", "items": {"type": "string"}})
    }
}

c360::form! {
    /// A version's edit (`*_id` aliases are read as the relation). Changing the query keeps the
    /// previous text in its history.
    pub struct SnapshotEdit {
        /// The caller's username, if sent.
        optional owner: OwnerRef,
        optional name: Option<BlankText>,
        /// At most 1 MiB.
        optional serialized_query: BlankText,
        optional version: i64,
        /// Another of the caller's requests: the version moves there.
        optional request: Pk,
        optional previous_snapshot: Option<Pk>,
        optional perimeters_ids: Option<PerimeterIds>,
    }
}

/// `share/`'s body, read by hand (no field error: only "no recipients" and unknown users refuse).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `share`
struct Sharing {
    /// Comma-separated usernames.
    recipients: String,
    /// The copies' request name (default: the shared request's).
    name: Option<String>,
    /// E-mail each recipient.
    notify_by_email: Option<bool>,
}

const ORDERING: [&str; 4] = ["created_at", "modified_at", "version", "name"];

fn list_doc() -> Doc {
    let (text, uuid) = (json!({"type": "string"}), json!({"type": "string", "format": "uuid"}));
    Doc::new()
        .paged::<SnapshotView>(Paging::Limit)
        .ordering(&ORDERING)
        .param("request", "Versions of this request.", uuid.clone())
        .param("previous_snapshot", "Versions following this one.", uuid.clone())
        .param("request__parent_folder", "Versions of the requests of this folder.", uuid)
        .param("name", "Exact name.", text.clone())
        .param("shared_by", "Shared by this username.", text)
}

fn create_doc() -> Doc {
    Doc::new()
        .body::<SnapshotCreation>()
        .reply::<SnapshotView>(201, "The new version.")
        .error(400, "A step of spec §5.5 refused it (a bare message), or invalid fields.")
}

fn patch_doc() -> Doc {
    Doc::new().form::<SnapshotEdit>(Mode::Update).reply::<SnapshotView>(200, "The version as changed.")
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/cohort/request-query-snapshots/";
    Api::new(state, "cohort")
        .route(Method::GET, ROOT, Exposure::Authenticated, "List the caller's query snapshots (LIMIT)", list)
        .doc(list_doc())
        .audited(Method::POST, ROOT, Exposure::Authenticated, "Save a new version of a query", "rqs.create", create)
        .doc(create_doc())
        .route(
            Method::GET,
            "/cohort/request-query-snapshots/{uuid}/",
            Exposure::Authenticated,
            "Get a snapshot",
            retrieve,
        )
        .doc(Doc::new().reply::<SnapshotView>(200, "The version."))
        .audited(
            Method::PATCH,
            "/cohort/request-query-snapshots/{uuid}/",
            Exposure::Authenticated,
            "Rename a snapshot",
            "rqs.partial_update",
            patch,
        )
        .doc(patch_doc())
        .audited(
            Method::POST,
            "/cohort/request-query-snapshots/{uuid}/share/",
            Exposure::Authenticated,
            "Copy a snapshot into other users' shared folder",
            "rqs.share",
            share,
        )
        .doc(
            Doc::new()
                .body::<Sharing>()
                .empty(201, "Copied into each recipient's shared folder.")
                .error(400, "No recipients, or unknown ones (a bare message)."),
        )
        .route(
            Method::GET,
            "/cohort/request-query-snapshots/{previous_snapshot}/next-snapshots/",
            Exposure::Authenticated,
            "List the versions saved after a snapshot (LIMIT)",
            list_next,
        )
        .doc(list_doc())
        .audited(
            Method::POST,
            "/cohort/request-query-snapshots/{previous_snapshot}/next-snapshots/",
            Exposure::Authenticated,
            "Save a version after a snapshot",
            "rqs.create",
            create_next,
        )
        .doc(create_doc())
        .route(
            Method::GET,
            "/cohort/requests/{request_id}/query-snapshots/",
            Exposure::Authenticated,
            "List the versions of a request (LIMIT)",
            list_of_request,
        )
        .doc(list_doc())
        .audited(
            Method::POST,
            "/cohort/requests/{request_id}/query-snapshots/",
            Exposure::Authenticated,
            "Save the first version of a request",
            "rqs.create",
            create_for_request,
        )
        .doc(create_doc())
        .route(
            Method::GET,
            "/cohort/requests/{request_id}/query-snapshots/{uuid}/",
            Exposure::Authenticated,
            "Get a version of a request",
            retrieve_of_request,
        )
        .doc(Doc::new().reply::<SnapshotView>(200, "The version."))
        .audited(
            Method::PATCH,
            "/cohort/requests/{request_id}/query-snapshots/{uuid}/",
            Exposure::Authenticated,
            "Rename a version of a request",
            "rqs.partial_update",
            patch_of_request,
        )
        .doc(patch_doc())
        .build()
}

/// Restricts a listing to the snapshots of a request or the children of a snapshot.
#[derive(Clone, Copy)]
enum Scope {
    All,
    Request(Uuid),
    After(Uuid),
}

async fn list_scoped(state: &AppState, owner: &str, query: &ListQuery, scope: Scope) -> AppResult<Page<SnapshotView>> {
    let (request, previous, folder) =
        (query.uuid("request")?, query.uuid("previous_snapshot")?, query.uuid("request__parent_folder")?);
    let ws = load(state, owner, &SNAPSHOT_KINDS).await?;
    let mut snapshots: Vec<&Snapshot> = ws
        .snapshots
        .iter()
        .filter(|s| !ws.hidden_snapshot(s.uuid))
        .filter(|s| match scope {
            Scope::All => true,
            Scope::Request(r) => s.request == r,
            Scope::After(p) => s.previous_snapshot == Some(p),
        })
        .filter(|s| request.is_none_or(|r| s.request == r))
        .filter(|s| query.get("name").is_none_or(|n| s.name.as_deref() == Some(n)))
        .filter(|s| query.get("shared_by").is_none_or(|u| s.shared_by.as_deref() == Some(u)))
        .filter(|s| previous.is_none_or(|p| s.previous_snapshot == Some(p)))
        .filter(|s| folder.is_none_or(|f| ws.request(s.request).is_some_and(|r| r.parent_folder == f)))
        .collect();
    let orders = query.ordering("ordering", &ORDERING)?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    sort_by(&mut snapshots, &orders, |s, field| match field {
        "modified_at" => SortValue::Text(time::iso(s.stamps.modified_at)),
        "version" => SortValue::Int(s.version),
        "name" => s.name.as_deref().into(),
        _ => SortValue::Text(time::iso(s.stamps.created_at)),
    });
    let page = query.limited_of(snapshots);
    let uuids: Vec<Uuid> = page.results.iter().map(|s| s.uuid).collect();
    let texts = state.store.snapshot_queries(owner, &uuids).await?;
    let now = time::now();
    Ok(page.map(|s| {
        let text = texts.get(&s.uuid).map(|q| q.serialized_query.as_str()).unwrap_or("{}");
        SnapshotView::of(&state.settings, &ws, s, text, now)
    }))
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<SnapshotView>>> {
    Ok(Json(list_scoped(&state, owner(&principal), &query, Scope::All).await?))
}

async fn list_next(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(previous): Path<String>,
    query: ListQuery,
) -> AppResult<Json<Page<SnapshotView>>> {
    let previous = Uuid::parse_str(&previous).unwrap_or(Uuid::nil());
    Ok(Json(list_scoped(&state, owner(&principal), &query, Scope::After(previous)).await?))
}

async fn list_of_request(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(request): Path<String>,
    query: ListQuery,
) -> AppResult<Json<Page<SnapshotView>>> {
    let request = Uuid::parse_str(&request).unwrap_or(Uuid::nil());
    Ok(Json(list_scoped(&state, owner(&principal), &query, Scope::Request(request)).await?))
}

/// The field errors already recorded.
fn invalid(fields: Fields) -> AppError {
    fields.finish().err().unwrap_or_else(|| AppError::internal("a relation was refused without an error"))
}

/// How often a snapshot whose version another save took meanwhile is validated again.
const VERSION_ATTEMPTS: usize = 5;

/// Spec §5.5's creation. Two snapshots of one request saved at once cannot take the same version: the
/// loser is validated again against what the winner wrote — a second first snapshot then gets the 400 of
/// step 2, a next snapshot the following version.
async fn create_scoped(state: &AppState, owner: &str, body: Map<String, Value>) -> AppResult<Response> {
    for attempt in 0..VERSION_ATTEMPTS as u64 {
        if let Some(created) = try_create(state, owner, body.clone()).await? {
            return Ok(created);
        }
        // Jittered backoff: the savers that lost do not all read again at the same instant.
        let jitter = (Uuid::new_v4().as_u128() % 20) as u64;
        tokio::time::sleep(std::time::Duration::from_millis(10 * (attempt + 1) + jitter)).await;
    }
    Err(AppError::InvalidString(
        "Another version of this request was saved at the same time: please save again.".into(),
    ))
}

/// The request with the previous version when its row lists it (not a hidden subset copy), and how
/// many versions the row lists. Nothing when the request is not the owner's or went to the bin.
async fn version_context(
    state: &AppState,
    owner: &str,
    request: Uuid,
    previous: Option<Snapshot>,
) -> AppResult<(Workspace, Option<usize>)> {
    let Some(row) = state.store.request_row(owner, request).await? else { return Ok((Workspace::default(), Some(0))) };
    let listed = |uuid: Uuid| row.summary.snapshots.get(&uuid).is_some_and(|line| !line.hidden);
    let snapshots = previous.filter(|p| listed(p.uuid)).into_iter().collect();
    let versions = row.summary.snapshots.values().filter(|line| !line.hidden).count();
    Ok((Workspace { requests: vec![row.request], snapshots, ..Workspace::default() }, Some(versions)))
}

/// Steps 1–6 of spec §5.5, in order, with their bare-string errors; then the field checks. `None` when
/// another save took the version meanwhile.
async fn try_create(state: &AppState, owner: &str, mut body: Map<String, Value>) -> AppResult<Option<Response>> {
    apply_id_aliases(&mut body, &RELATIONS);
    let named = |field: &str| body.get(field).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s.trim()).ok());
    // The named previous version and its request (or the named request), whose row says how many
    // versions it lists: a new version reads neither the other versions nor any count or cohort.
    let ready = state.store.workspace_layout_ready().await?;
    let (ws, listed) = match (named("previous_snapshot"), named("request")) {
        (Some(previous), _) if ready => match state.store.workspace_object::<Snapshot>(owner, previous).await? {
            Some(previous) => version_context(state, owner, previous.request, Some(previous)).await?,
            None => (Workspace::default(), Some(0)),
        },
        (None, Some(request)) if ready => version_context(state, owner, request, None).await?,
        _ => (load(state, owner, &SNAPSHOT_KINDS).await?, None),
    };
    // Export subsets' hidden copies are no versions (the original's default manager leaves them out).
    let versions_of = |request: Uuid| {
        listed.unwrap_or_else(|| {
            ws.snapshots.iter().filter(|s| s.request == request && !ws.hidden_snapshot(s.uuid)).count()
        }) as i64
    };
    let given = |field: &str| body.get(field).filter(|v| !v.is_null());
    let mut fields = Fields::new(&body);
    let request = if given("previous_snapshot").is_some() {
        let previous = fields.relation("previous_snapshot", true, |u| ws.snapshot(u).is_some()).flatten();
        let Some(previous) = previous.and_then(|p| ws.snapshot(p)) else { return Err(invalid(fields)) };
        if given("request").is_some() {
            // The original compares the body's string with a uuid: sending both always fails [quirk].
            return Err(AppError::InvalidString(
                "The provided request is different from the previous_snapshot's request".into(),
            ));
        }
        previous.request
    } else if given("request").is_some() {
        let request = fields.relation("request", false, |u| ws.request(u).is_some()).flatten();
        let Some(request) = request else { return Err(invalid(fields)) };
        let claimed = ws.request(request).and_then(|r| r.snapshot_versions).unwrap_or(0);
        if claimed > 0 || versions_of(request) > 0 {
            return Err(AppError::InvalidString(
                "Must provide a `previous_snapshot` if the request already has snapshots".into(),
            ));
        }
        request
    } else {
        return Err(AppError::InvalidString("Neither `previous_snapshot` nor `request` were provided".into()));
    };
    let Some(Value::String(serialized_query)) = body.get("serialized_query") else {
        return Err(AppError::InvalidString("serialized_query is required".into()));
    };
    if serialized_query.len() > MAX_QUERY_BYTES {
        return Err(AppError::InvalidString(query_too_large()));
    }
    let perimeters = perimeters_ids(serialized_query).map_err(AppError::InvalidString)?;
    // The request's claimed version is authoritative (counting covers requests older than the claim);
    // a first snapshot is version 1, so its claim fails if another first snapshot won meanwhile.
    let version = if given("previous_snapshot").is_some() {
        versions_of(request).max(ws.request(request).and_then(|r| r.snapshot_versions).unwrap_or(0)) + 1
    } else {
        1
    };
    check_owner(&mut fields, owner);
    let name = fields.text("name", Text::default().nullable().blank()).flatten();
    fields.finish()?;
    let snapshot = Snapshot {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        request,
        name,
        previous_snapshot: given("previous_snapshot").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok()),
        shared_by: None,
        perimeters_ids: Some(perimeters),
        version,
        query_patches: 0,
        stamps: Stamps::new(time::now()),
    };
    let text = SnapshotQuery { serialized_query: serialized_query.clone(), translated_query: None };
    // The request claims the version and lists the snapshot, in one update of its item.
    let mut summary = ItemUpdate::request(owner, request);
    summary.claim_version(version).snapshot_added(owner, request, snapshot.uuid, &SnapshotLine::of(&snapshot))?;
    let mut writes = vec![
        state.store.update(summary)?,
        snapshot_query_write(owner, snapshot.uuid, &text)?,
        put_object(&snapshot, Condition::MustNotExist)?,
    ];
    writes.extend(snapshot_perimeter_writes(&snapshot)?);
    match state.store.transact(writes).await {
        Err(StoreError::TransactionConflict(failed)) if failed.first() == Some(&true) => return Ok(None),
        other => other?,
    }
    let value = SnapshotView::of(&state.settings, &Workspace::default(), &snapshot, serialized_query, time::now());
    Ok(Some((StatusCode::CREATED, Json(value)).into_response()))
}

async fn create(State(state): State<AppState>, principal: Arc<Principal>, Body(body): Body) -> AppResult<Response> {
    create_scoped(&state, owner(&principal), body).await
}

async fn create_next(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(previous): Path<String>,
    Body(mut body): Body,
) -> AppResult<Response> {
    body.remove("previous_snapshot_id");
    body.insert("previous_snapshot".into(), Value::String(previous));
    create_scoped(&state, owner(&principal), body).await
}

async fn create_for_request(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(request): Path<String>,
    Body(mut body): Body,
) -> AppResult<Response> {
    body.remove("request_id");
    body.insert("request".into(), Value::String(request));
    create_scoped(&state, owner(&principal), body).await
}

/// The caller's visible snapshot `uuid` (of `request` for nested routes), with what renders it: its
/// request, counts and cohorts (`whole`: the owner's whole workspace, for edits that move it).
async fn owned_snapshot(
    state: &AppState,
    owner: &str,
    uuid: &str,
    request: Option<&str>,
    whole: bool,
) -> AppResult<(Workspace, Snapshot, SnapshotQuery)> {
    let uuid = path_uuid(uuid, Kind::Snapshot)?;
    let (ws, text) = tokio::join!(
        async {
            if whole || !state.store.workspace_layout_ready().await? {
                load(state, owner, &SNAPSHOT_KINDS).await
            } else {
                snapshot_workspace(state, owner, uuid).await
            }
        },
        state.store.snapshot_query(owner, uuid)
    );
    let ws = ws?;
    let snapshot = ws
        .snapshot(uuid)
        .filter(|s| !ws.hidden_snapshot(s.uuid))
        .filter(|s| request.is_none_or(|r| s.request.to_string() == r))
        .cloned()
        .ok_or(AppError::NotFound(Kind::Snapshot.model()))?;
    let text = text?.unwrap_or(SnapshotQuery { serialized_query: "{}".into(), translated_query: None });
    Ok((ws, snapshot, text))
}

/// What a snapshot's page shows, read through its request's summary: the snapshot, its request, its
/// counts and cohorts, and the cohorts those counts are built on and their parents (empty when it is
/// not the owner's).
async fn snapshot_workspace(state: &AppState, owner: &str, uuid: Uuid) -> AppResult<Workspace> {
    let store = &state.store;
    let Some(snapshot) = store.workspace_object::<Snapshot>(owner, uuid).await? else {
        return Ok(Workspace::default());
    };
    let Some(row) = store.request_row(owner, snapshot.request).await? else { return Ok(Workspace::default()) };
    let listed = row.summary.snapshots.get(&uuid).cloned().unwrap_or_else(|| SnapshotSummary {
        line: SnapshotLine::of(&snapshot),
        cohorts: Default::default(),
        counts: Default::default(),
        hidden: false,
        newest_count: None,
    });
    let counts: Vec<Uuid> = listed.counts.iter().copied().collect();
    let built: Vec<Uuid> = listed.cohorts.iter().copied().collect();
    let (cohorts, measures) =
        tokio::join!(store.workspace_objects::<CohortResult>(owner, &built), store.counts_with_cohorts(owner, &counts));
    let (mut cohorts, measures) = (cohorts?, measures?);
    // Cohorts built on these counts elsewhere, and parents of samples, decide what is shown too.
    let mut missing: Vec<Uuid> = measures.iter().flat_map(|(_, built)| built.keys().copied()).collect();
    missing.extend(cohorts.iter().filter_map(|c| c.parent_cohort));
    missing.retain(|u| !cohorts.iter().any(|c| c.uuid == *u));
    if !missing.is_empty() {
        cohorts.extend(store.workspace_objects::<CohortResult>(owner, &missing).await?);
    }
    Ok(Workspace {
        requests: vec![row.request],
        snapshots: vec![snapshot],
        measures: measures.into_iter().map(|(m, _)| m).collect(),
        cohorts,
        ..Workspace::default()
    })
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<SnapshotView>> {
    let (ws, snapshot, text) = owned_snapshot(&state, owner(&principal), &uuid, None, false).await?;
    Ok(Json(SnapshotView::of(&state.settings, &ws, &snapshot, &text.serialized_query, time::now())))
}

async fn retrieve_of_request(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path((request, uuid)): Path<(String, String)>,
) -> AppResult<Json<SnapshotView>> {
    let (ws, snapshot, text) = owned_snapshot(&state, owner(&principal), &uuid, Some(&request), false).await?;
    Ok(Json(SnapshotView::of(&state.settings, &ws, &snapshot, &text.serialized_query, time::now())))
}

async fn patch_scoped(
    state: &AppState,
    owner: &str,
    uuid: &str,
    request: Option<&str>,
    mut body: Map<String, Value>,
) -> AppResult<Json<SnapshotView>> {
    // Moving a snapshot (another request or previous version) validates against the whole workspace.
    let moves =
        ["request", "request_id", "previous_snapshot", "previous_snapshot_id"].iter().any(|k| body.contains_key(*k));
    let (ws, snapshot, mut text) = owned_snapshot(state, owner, uuid, request, moves).await?;
    apply_id_aliases(&mut body, &RELATIONS);
    let mut fields = Fields::new(&body);
    let form: SnapshotEdit = fields.form(Mode::Update);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    let name = form.name.map(|n| n.map(|n| n.0));
    let serialized_query = form.serialized_query.map(|q| q.0);
    if serialized_query.as_ref().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        fields.error("serialized_query", query_too_large());
    }
    let version = form.version;
    let request = form.request.as_ref().and_then(|pk| pk.check(&mut fields, "request", |u| ws.request(u).is_some()));
    let previous = match &form.previous_snapshot {
        Some(Some(pk)) => pk.check(&mut fields, "previous_snapshot", |u| ws.snapshot(u).is_some()).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let perimeters = form.perimeters_ids.map(|ids| ids.map(|ids| ids.0));
    fields.finish()?;
    let now = time::now();
    let mut changes = Changes::modified(now);
    if let Some(name) = &name {
        changes.set("name", name)?;
    }
    if let Some(version) = version {
        changes.set("version", &version)?;
    }
    if let Some(request) = request {
        changes.set("request", &request)?;
    }
    if let Some(previous) = previous {
        changes.set("previous_snapshot", &previous)?;
    }
    let mut writes: Vec<Write> = Vec::new();
    if let Some(perimeters) = &perimeters {
        changes.set("perimeters_ids", perimeters)?;
        // A transaction touches an item once: only the references that come or go.
        let new_ids: Vec<String> = perimeters.clone().unwrap_or_default();
        let old_ids: Vec<String> = snapshot.perimeters_ids.clone().unwrap_or_default();
        for gone in old_ids.iter().filter(|id| !new_ids.contains(id)) {
            writes.push(Write::Delete(keys::snapshot_perimeter(gone, owner, snapshot.uuid), Condition::None));
        }
        let added: Vec<String> = new_ids.into_iter().filter(|id| !old_ids.contains(id)).collect();
        writes.extend(snapshot_perimeter_writes(&Snapshot { perimeters_ids: Some(added), ..snapshot.clone() })?);
    }
    // Each change of the query keeps the previous text in the history (spec §3.3).
    if let Some(new_text) = serialized_query.filter(|q| *q != text.serialized_query) {
        let patch_version = snapshot.query_patches + 1;
        let history_key = keys::snapshot_query_patch(owner, snapshot.uuid, patch_version);
        writes.push(patch_history_write(&history_key, snapshot.uuid, patch_version, &text.serialized_query, now)?);
        changes.set("query_patches", &patch_version)?;
        text.serialized_query = new_text;
        writes.push(snapshot_query_write(owner, snapshot.uuid, &text)?);
    }
    writes.push(state.store.update_write::<Snapshot>(owner, snapshot.uuid, changes)?);
    let moved = Snapshot {
        name: name.clone().unwrap_or(snapshot.name.clone()),
        version: version.unwrap_or(snapshot.version),
        request: request.unwrap_or(snapshot.request),
        ..snapshot.clone()
    };
    for update in summary_changes(&ws, &snapshot, &moved)? {
        writes.push(state.store.update(update)?);
    }
    match state.store.transact(writes).await {
        // A request's summary changed meanwhile: the whole edit is refused, nothing was written.
        Err(StoreError::TransactionConflict(_)) if moved.request != snapshot.request => {
            return Err(AppError::InvalidString("The request changed meanwhile, please try again".into()))
        }
        other => other?,
    }
    let (ws, updated, text) = owned_snapshot(state, owner, &snapshot.uuid.to_string(), None, false).await?;
    Ok(Json(SnapshotView::of(&state.settings, &ws, &updated, &text.serialized_query, now)))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(body): Body,
) -> AppResult<Json<SnapshotView>> {
    patch_scoped(&state, owner(&principal), &uuid, None, body).await
}

async fn patch_of_request(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path((request, uuid)): Path<(String, String)>,
    Body(body): Body,
) -> AppResult<Json<SnapshotView>> {
    patch_scoped(&state, owner(&principal), &uuid, Some(&request), body).await
}

/// Copies the snapshot and its request into each recipient's shared folder (spec §5.5 share).
/// The summary changes of a snapshot edit: its line on its request, or, when it moves to another
/// request, both requests' whole summaries (computed from the workspace, on condition that nothing
/// changed them since it was read).
fn summary_changes(ws: &Workspace, before: &Snapshot, after: &Snapshot) -> StoreResult<Vec<ItemUpdate>> {
    let owner = &before.owner;
    if after.request == before.request {
        if SnapshotLine::of(after) == SnapshotLine::of(before) {
            return Ok(Vec::new());
        }
        let mut update = ItemUpdate::request(owner, before.request);
        update.snapshot_line(before.uuid, &SnapshotLine::of(after))?;
        return Ok(vec![update]);
    }
    let mut moved = ws.clone();
    moved.snapshots.retain(|s| s.uuid != before.uuid);
    moved.snapshots.push(after.clone());
    let mut updates = Vec::new();
    for (request, gone) in [(before.request, vec![before.uuid]), (after.request, Vec::new())] {
        let rev = ws.request(request).map_or(0, |r| r.summary_rev);
        let mut update = ItemUpdate::request(owner, request);
        update.whole_request(owner, request, rev, &RequestSummary::from_workspace(&moved, request), &gone)?;
        updates.push(update);
    }
    Ok(updates)
}

async fn share(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(body): Body,
) -> AppResult<Response> {
    let sharer = owner(&principal);
    let (ws, snapshot, text) = owned_snapshot(&state, sharer, &uuid, None, false).await?;
    let recipients: Vec<String> = match body.get("recipients") {
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if recipients.is_empty() {
        return Err(AppError::InvalidString("No 'recipients' provided".into()));
    }
    let names: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let users = state.store.users_by_name(&names).await?;
    let unknown: Vec<&str> =
        names.iter().copied().filter(|n| users.get(*n).is_none_or(|u| u.delete_datetime.is_some())).collect();
    if !unknown.is_empty() {
        return Err(AppError::InvalidString(format!("No users found with the following IDs: {}", unknown.join(","))));
    }
    let source = ws.request(snapshot.request).ok_or(AppError::NotFound(Kind::Request.model()))?;
    let new_name = match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => source.name.clone(),
    };
    let mut unique: Vec<&str> = names.clone();
    unique.sort_unstable();
    unique.dedup();
    let now = time::now();
    for recipient in unique {
        let folders = load(&state, recipient, &[Kind::Folder]).await?.folders;
        let mut writes = Vec::new();
        let folder = match folders.into_iter().find(|f| f.name == state.settings.shared_folder_name) {
            Some(folder) => {
                let mut holds = ItemUpdate::folder(recipient, folder.uuid);
                holds.folder_requests(1).folder_still_named(&FolderLine::of(&folder));
                writes.push(state.store.update(holds)?);
                folder
            }
            None => {
                let folder = Folder {
                    uuid: Uuid::new_v4(),
                    owner: recipient.to_owned(),
                    name: state.settings.shared_folder_name.clone(),
                    description: None,
                    requests_count: Some(1),
                    stamps: Stamps::new(now),
                };
                writes.push(put_object(&folder, Condition::MustNotExist)?);
                folder
            }
        };
        let (folder, folder_line) = (folder.uuid, FolderLine::of(&folder));
        let request = Request {
            uuid: Uuid::new_v4(),
            owner: recipient.to_owned(),
            name: new_name.clone(),
            description: source.description.clone(),
            favorite: false,
            parent_folder: folder,
            shared_by: Some(sharer.to_owned()),
            snapshot_versions: Some(1),
            summary_rev: 0,
            stamps: Stamps::new(now),
        };
        let copy = Snapshot {
            uuid: Uuid::new_v4(),
            owner: recipient.to_owned(),
            request: request.uuid,
            name: snapshot.name.clone(),
            previous_snapshot: None,
            shared_by: Some(sharer.to_owned()),
            perimeters_ids: snapshot.perimeters_ids.clone(),
            version: 1,
            query_patches: 0,
            stamps: Stamps::new(now),
        };
        let mut listed = RequestSummary { folder: Some(folder_line), ..RequestSummary::default() };
        let line = SnapshotLine::of(&copy);
        listed.snapshots.insert(
            copy.uuid,
            SnapshotSummary {
                line,
                cohorts: Default::default(),
                counts: Default::default(),
                hidden: false,
                newest_count: None,
            },
        );
        writes
            .push(Write::Put(request_entry_with(object_entry(&request)?, &request, &listed)?, Condition::MustNotExist));
        let mut counts = ItemUpdate::counts(recipient);
        counts.add_requests(1);
        writes.push(state.store.update(counts)?);
        writes.push(snapshot_query_write(recipient, copy.uuid, &text)?);
        writes.push(put_object(&copy, Condition::MustNotExist)?);
        writes.extend(snapshot_perimeter_writes(&copy)?);
        match state.store.transact(writes).await {
            // The recipient's folder was renamed or deleted meanwhile.
            Err(StoreError::TransactionConflict(_)) => {
                return Err(AppError::InvalidString("A recipient's folder changed meanwhile, please try again".into()))
            }
            other => other?,
        }
    }
    let notify = match body.get("notify_by_email") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "True" | "1"),
        _ => false,
    };
    if notify {
        if let Some(sharer) = principal.user.as_ref() {
            for recipient in users.values() {
                let email = notify::shared_request(&state.settings, sharer, recipient, &new_name);
                notify::deliver(&state.mailer, email, "shared_request").await;
            }
        }
    }
    Ok(StatusCode::CREATED.into_response())
}
