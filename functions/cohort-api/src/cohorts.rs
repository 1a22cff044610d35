//! `/cohort/cohorts/` (spec §5.7, §4.11): cohorts built from a count, samples of a cohort, their
//! QueryExecutor / Solr ETL callbacks, the active-jobs counter and the rights on cohorts.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode},
    Json, Router,
};
use c360::{
    auth::AppActor,
    clients::jobs::CohortJob,
    domain::{
        access_rules::cohort_rights,
        cohort::{python_duration, CohortResult, DatedMeasure, Job, JobStatus, Kind, MeasureMode, Stamps, Workspace},
        summary::{CohortSummary, CountLine, CountRole, RequestLine, RequestSummary, SampleLine},
        time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{Doc, Paging},
        fields::{Fields, Text},
        listing::{matches_regex_search, sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, PublicCaller, RouteSpec,
    },
    services::notify,
    store::{
        cohort::{object_entry, Changes},
        keys,
        summaries::{cohort_entry_with, count_entry_with, CohortRow, ItemUpdate},
        Condition, StoreError, Write,
    },
};
use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::{
    common::*,
    rows::{self, Parents},
    views::CohortView,
};

const RELATIONS: [&str; 4] = ["request_query_snapshot", "dated_measure", "parent_cohort", "owner"];
/// What rendering a cohort reads: its counts, its snapshot's request, its samples.
const COHORT_KINDS: [Kind; 4] = [Kind::Request, Kind::Snapshot, Kind::DatedMeasure, Kind::Cohort];
/// Keys a cohort PATCH refuses (spec §5.7).
const NOT_UPDATABLE: [&str; 6] =
    ["owner", "owner_id", "request_query_snapshot", "request_query_snapshot_id", "dated_measure", "dated_measure_id"];

/// A cohort to build (spec §5.7), read by hand: a sample (`parent_cohort` and `sampling_ratio`) and
/// a regular cohort (`request_query_snapshot`, `dated_measure`) validate different fields.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `create_once`
struct CohortCreation {
    /// The caller's username, if sent.
    owner: Option<String>,
    #[schema(max_length = 255)]
    name: Option<String>,
    description: Option<String>,
    favorite: Option<bool>,
    /// A regular cohort: one of the caller's versions, and its count.
    request_query_snapshot: Option<Uuid>,
    dated_measure: Option<Uuid>,
    /// Also count the version over the whole warehouse (a global count).
    global_estimate: Option<bool>,
    /// A sample: its parent (not a sample itself) and the ratio, strictly between 0 and 1.
    parent_cohort: Option<Uuid>,
    sampling_ratio: Option<f64>,
}

/// A cohort edit by its owner, or a QueryExecutor / Solr ETL callback (spec §5.7), read by hand:
/// a callback's unknown status fails the cohort first.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `patch`
struct CohortEdit {
    name: Option<String>,
    description: Option<String>,
    favorite: Option<bool>,
    /// Another alive cohort of the caller (samples only).
    parent_cohort: Option<Uuid>,
    /// Callbacks: a QueryExecutor status (`FINISHED`, `FAILED`…), the group built, its size and the
    /// failure's message.
    request_job_status: Option<String>,
    #[schema(rename = "group.id")]
    group_id: Option<String>,
    #[schema(rename = "group.count")]
    group_count: Option<i64>,
    message: Option<String>,
}

/// `/cohort/cohorts/jobs/active/`.
#[derive(Serialize, utoipa::ToSchema)]
struct ActiveJobs {
    jobs_count: i64,
}

/// What the caller may do with a cohort's patients (spec §4.11).
#[derive(Serialize, utoipa::ToSchema)]
struct CohortRights {
    /// The cohort's group id.
    cohort_id: String,
    rights: RightsView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RightsView {
    read_patient_nomi: bool,
    read_patient_pseudo: bool,
    export_csv_xlsx_nomi: bool,
    export_jupyter_nomi: bool,
    export_jupyter_pseudo: bool,
}

const ORDERING: [&str; 6] = ["created_at", "modified_at", "name", "result_size", "favorite", "request"];

fn list_doc() -> Doc {
    let (text, uuid) = (json!({"type": "string"}), json!({"type": "string", "format": "uuid"}));
    let (integer, boolean) = (json!({"type": "integer"}), json!({"type": "boolean"}));
    Doc::new()
        .paged::<CohortView>(Paging::Limit)
        .ordering(&ORDERING)
        .search(&["name", "description"])
        .param("name", "Case-insensitive part of the name.", text.clone())
        .param("min_result_size", "Size at least.", integer.clone())
        .param("max_result_size", "Size at most.", integer)
        .date_range("created_at")
        .param("request_id", "Built from this request.", uuid.clone())
        .param("favorite", "Favorites only (true) or the others.", boolean.clone())
        .param("group_id", "Comma-separated group ids.", text.clone())
        .param("status", "Comma-separated job statuses.", text)
        .param("parent_cohort", "Samples of this cohort.", uuid)
        .param("is_sample", "Samples only (true) or the others.", boolean.clone())
        .param("exportable", "Within the export size limit (true) or not.", boolean)
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "cohort")
        .method_policy(MethodPolicy::NotAllowedIf(method_allowed_for))
        .route(Method::GET, "/cohort/cohorts/", Exposure::Authenticated, "List cohorts (LIMIT)", list)
        .doc(list_doc())
        .audited(
            Method::POST,
            "/cohort/cohorts/",
            Exposure::Authenticated,
            "Create a cohort from a count, or a sample of a cohort (queues the job)",
            "cohorts.create",
            create,
        )
        .doc(
            Doc::new()
                .body::<CohortCreation>()
                .reply::<CohortView>(201, "The cohort; its job is queued.")
                .error(404, "The version (or the parent's) is not the caller's."),
        )
        .route(
            Method::GET,
            "/cohort/cohorts/jobs/active/",
            Exposure::Public,
            "Number of cohorts still to be built",
            active_jobs,
        )
        .doc(Doc::new().reply::<ActiveJobs>(200, "Cohorts whose job has not ended."))
        .route(
            Method::GET,
            "/cohort/cohorts/cohort-rights/",
            Exposure::Authenticated,
            "The caller's rights on their cohorts, by group id",
            rights,
        )
        .doc(
            Doc::new()
                .param("group_id", "Comma-separated group ids of the caller's cohorts.", json!({"type": "string"}))
                .reply_list::<CohortRights>(200, "One entry per cohort found.")
                .error(404, "No cohort of the caller has these group ids, or the caller has no valid access."),
        )
        .route(Method::GET, "/cohort/cohorts/{uuid}/", Exposure::Authenticated, "Get a cohort", retrieve)
        .doc(Doc::new().reply::<CohortView>(200, "The cohort."))
        .audited(
            Method::PATCH,
            "/cohort/cohorts/{uuid}/",
            Exposure::Authenticated,
            "Edit a cohort, or QueryExecutor / ETL callback",
            "cohorts.partial_update",
            patch,
        )
        .doc(
            Doc::new()
                .body::<CohortEdit>()
                .reply::<CohortView>(200, "The cohort (a callback to an ended job changes nothing).")
                .error(400, "Invalid fields, a non-updatable field, or an unknown status (the cohort fails)."),
        )
        .audited(
            Method::DELETE,
            "/cohort/cohorts/{uuid}/",
            Exposure::Authenticated,
            "Delete cohorts (comma-separated uuids)",
            "cohorts.destroy",
            destroy,
        )
        .doc(Doc::new().empty(204, "Deleted.").error(400, "A comma-separated list holding something else than uuids."))
        .build()
}

/// The cohorts a caller may list (export subsets included: callers filter them). Applicative actors
/// see every owner's cohorts: the cohort index (16 Queries), then their owners' cohorts in parallel.
async fn listable(state: &AppState, principal: &Principal) -> AppResult<Vec<CohortRow>> {
    if !is_applicative(principal) {
        return rows::all_cohorts(state, &principal.username).await;
    }
    let cohorts: Vec<CohortResult> = state.store.objects_of_everyone().await?;
    let mut owners: Vec<String> = cohorts.into_iter().map(|c| c.owner).collect();
    owners.sort_unstable();
    owners.dedup();
    let mut tasks = tokio::task::JoinSet::new();
    for owner in owners {
        let state = state.clone();
        tasks.spawn(async move { rows::all_cohorts(&state, &owner).await });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(AppError::internal)??);
    }
    Ok(all)
}

fn integer_filter(query: &ListQuery, key: &str) -> AppResult<Option<i64>> {
    query.get(key).map(|raw| raw.trim().parse::<i64>().map_err(|_| AppError::field(key, "Enter a number."))).transpose()
}

/// Renders cohort rows with the parents they name.
async fn render(state: &AppState, rows: &[&CohortRow], annotated: bool) -> AppResult<Vec<CohortView>> {
    let parents = Parents::of(state, rows).await?;
    Ok(rows.iter().map(|row| CohortView::of_row(&state.settings, row, parents.of_row(row), annotated)).collect())
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<CohortView>>> {
    let orders = query.ordering("ordering", &ORDERING)?;
    let default_order = query.ordering_from("-created_at");
    let in_index_order = !is_applicative(&principal)
        && (orders.is_empty() || orders == default_order)
        && query.has_only(&["limit", "offset", "ordering"]);
    if in_index_order {
        let (limit, offset) = query.limit_offset();
        if let Some((total, page)) = rows::cohorts_page(&state, &principal.username, offset, limit).await? {
            let rendered = render(&state, &page.iter().collect::<Vec<_>>(), true).await?;
            return Ok(Json(query.limited_window(total, rendered)));
        }
    }
    let orders = if orders.is_empty() { default_order } else { orders };
    let created = query.date_range("created_at")?;
    let (min_size, max_size) = (integer_filter(&query, "min_result_size")?, integer_filter(&query, "max_result_size")?);
    let (request_id, parent) = (query.uuid("request_id")?, query.uuid("parent_cohort")?);
    let all = listable(&state, &principal).await?;
    let alive: HashSet<Uuid> = all.iter().map(|row| row.cohort.uuid).collect();
    // A deleted parent leaves its samples as regular cohorts (`parent_cohort` is SET_NULL, spec §3.3).
    let alive_parent = |c: &CohortResult| c.parent_cohort.filter(|p| alive.contains(p));
    // Ordering by request name reads the owners' requests (their items only).
    let request_names: HashMap<Uuid, String> = if orders.iter().any(|o| o.field == "request") {
        let owners: HashSet<&str> = all.iter().map(|row| row.cohort.owner.as_str()).collect();
        let mut names = HashMap::new();
        for owner in owners {
            let requests = state.store.workspace(owner, &[Kind::Request]).await?.requests;
            names.extend(requests.into_iter().map(|r| (r.uuid, r.name)));
        }
        names
    } else {
        HashMap::new()
    };
    let limit = state.settings.cohort_size_limit;
    let name = query.get("name").map(str::to_lowercase);
    let terms = query.search_terms();
    let mut cohorts: Vec<&CohortRow> = all
        .iter()
        .filter(|row| {
            let (c, size) = (&row.cohort, row.summary.result_size);
            !c.is_subset
                && name.as_deref().is_none_or(|n| c.name.as_deref().is_some_and(|v| v.to_lowercase().contains(n)))
                && min_size.is_none_or(|m| size.is_some_and(|s| s >= m))
                && max_size.is_none_or(|m| size.is_some_and(|s| s <= m))
                && created.contains(Some(c.stamps.created_at))
                && request_id.is_none_or(|r| c.request == Some(r))
                && flag_matches(&query, "favorite", c.favorite)
                && matches_any(&query, "group_id", &c.group_id)
                && matches_any(&query, "status", c.job.request_job_status.as_str())
                && parent.is_none_or(|p| alive_parent(c) == Some(p))
                && flag_matches(&query, "is_sample", alive_parent(c).is_some())
                && flag_matches(&query, "exportable", size.is_some_and(|s| s <= limit))
                && matches_regex_search(&terms, &[c.name.as_deref(), c.description.as_deref()])
        })
        .collect();
    sort_by(&mut cohorts, &orders, |row, field| {
        let c = &row.cohort;
        match field {
            "modified_at" => SortValue::Text(time::iso(c.stamps.modified_at)),
            "name" => c.name.as_deref().into(),
            "result_size" => row.summary.result_size.map_or(SortValue::Null, SortValue::Int),
            "favorite" => SortValue::Bool(c.favorite),
            "request" => c.request.and_then(|r| request_names.get(&r)).map(String::as_str).into(),
            _ => SortValue::Text(time::iso(c.stamps.created_at)),
        }
    });
    let page = query.limited_of(cohorts);
    let rendered = render(&state, &page.results, true).await?;
    Ok(Json(query.limited_window(page.count, rendered)))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<CohortView>> {
    let uuid = path_uuid(&uuid, Kind::Cohort)?;
    // Applicative actors find the owner through the uuid index; users read their own cohort at once.
    let owner = if is_applicative(&principal) {
        visible::<CohortResult>(&state, &principal, uuid).await?.owner
    } else {
        principal.username.clone()
    };
    let row = rows::one_cohort(&state, &owner, uuid).await?.ok_or(AppError::NotFound(Kind::Cohort.model()))?;
    if row.cohort.is_subset && !is_applicative(&principal) {
        return Err(AppError::NotFound(Kind::Cohort.model()));
    }
    let mut rendered = render(&state, &[&row], true).await?;
    Ok(Json(rendered.pop().ok_or_else(|| AppError::internal("a rendered cohort is missing"))?))
}

/// A regular cohort (from a snapshot and its count) or a sample (from a parent cohort and a ratio).
async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<CohortView>)> {
    refuse_applicative(&principal)?;
    apply_id_aliases(&mut body, &RELATIONS);
    // A rename of its request (or a delete) between the reads and the write: read again.
    for _ in 0..3 {
        if let Some(created) = create_once(&state, owner(&principal), &headers, &body).await? {
            return Ok(created);
        }
    }
    Err(AppError::InvalidString("The request of this cohort changed meanwhile, please try again".into()))
}

/// `None` when a concurrent write changed what the cohort's rows copy (nothing written).
async fn create_once(
    state: &AppState,
    owner: &str,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> AppResult<Option<(StatusCode, Json<CohortView>)>> {
    let (state, headers) = (state.clone(), headers.clone());
    let ws = named_around(&state, owner, body).await?;
    let now = time::now();
    let mut fields = Fields::new(body);
    check_owner(&mut fields, owner);
    let name = fields.text("name", Text::max(255).nullable()).flatten();
    let description = fields.text("description", Text::default().nullable().blank()).flatten();
    let favorite = fields.boolean("favorite").unwrap_or(false);
    let is_sample = body.get("parent_cohort").is_some_and(|v| !v.is_null());
    let mut cohort = CohortResult {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        name,
        description,
        favorite,
        request_query_snapshot: None,
        request: None,
        group_id: String::new(),
        dated_measure: None,
        dated_measure_global: None,
        create_task_id: String::new(),
        is_subset: false,
        export: None,
        parent_cohort: None,
        sampling_ratio: None,
        job: Job::new(),
        stamps: Stamps::new(now),
    };
    let mut measures: Vec<DatedMeasure> = Vec::new();
    // What the rows of its request, its parent and its counts show of the new cohort.
    let mut summaries: Vec<ItemUpdate> = vec![counted_cohort(owner)];
    let mut summary = CohortSummary::default();
    if is_sample {
        let parent = fields
            .relation("parent_cohort", true, |u| ws.cohort(u).is_some_and(|c| !c.is_subset))
            .flatten()
            .and_then(|u| ws.cohort(u));
        if parent.is_some_and(|p| p.parent_cohort.is_some()) {
            fields.error("parent_cohort", "A sample cohort cannot be sampled.");
        }
        if !fields.present("sampling_ratio") {
            fields.error("sampling_ratio", "This field is required.");
        }
        let ratio = fields.float("sampling_ratio", false).flatten();
        if ratio.is_some_and(|r| r <= 0.0 || r >= 1.0) {
            fields.error("sampling_ratio", "Sampling ratio must be between 0 and 1");
        }
        let snapshot = parent.and_then(|p| p.request_query_snapshot).and_then(|s| ws.snapshot(s));
        fields.finish()?;
        let (parent, snapshot) = parent.zip(snapshot).ok_or(AppError::NotFound(Kind::Snapshot.model()))?;
        let measure = DatedMeasure::new(owner, snapshot.uuid, snapshot.request, MeasureMode::Snapshot, now);
        cohort.request_query_snapshot = Some(snapshot.uuid);
        cohort.request = Some(snapshot.request);
        cohort.dated_measure = Some(measure.uuid);
        cohort.parent_cohort = Some(parent.uuid);
        cohort.sampling_ratio = ratio;
        let mut parent_row = ItemUpdate::cohort(owner, parent.uuid);
        parent_row.sample_line(cohort.uuid, &SampleLine::of(&cohort))?;
        summaries.push(parent_row);
        // The sample's count is listed with the snapshot, never shown as its count.
        let mut listed = ItemUpdate::request(owner, snapshot.request);
        listed.count_added(snapshot.uuid, measure.uuid);
        summaries.push(listed);
        measures.push(measure);
    } else {
        let snapshot =
            fields.required_relation("request_query_snapshot", |u| ws.snapshot(u).is_some() && !ws.hidden_snapshot(u));
        let measure = fields.required_relation("dated_measure", |u| ws.measure(u).is_some());
        let global_estimate = fields.boolean("global_estimate").unwrap_or(false);
        fields.finish()?;
        let snapshot = snapshot.and_then(|s| ws.snapshot(s)).ok_or(AppError::NotFound(Kind::Snapshot.model()))?;
        cohort.request_query_snapshot = Some(snapshot.uuid);
        cohort.request = Some(snapshot.request);
        cohort.dated_measure = measure;
        if let Some(measure) = measure {
            summary.result_size = ws.measure(measure).and_then(|m| m.measure);
            let mut built = ItemUpdate::count(owner, measure);
            built.built_on(cohort.uuid, CountRole::Size)?;
            summaries.push(built);
        }
        if global_estimate {
            let global = DatedMeasure::new(owner, snapshot.uuid, snapshot.request, MeasureMode::Global, now);
            cohort.dated_measure_global = Some(global.uuid);
            // The global count is the snapshot's newest: its request shows it.
            let mut shown = ItemUpdate::request(owner, snapshot.request);
            shown.count_created(snapshot.uuid, &CountLine::of(&global))?;
            summaries.push(shown);
            measures.push(global);
        }
    }
    summary.request = cohort.request.and_then(|r| ws.request(r)).map(RequestLine::of);
    if let (Some(snapshot), Some(request)) = (cohort.request_query_snapshot, cohort.request) {
        let mut listed = ItemUpdate::request(owner, request);
        listed.cohort_added(snapshot, cohort.uuid);
        if let Some(line) = &summary.request {
            listed.still_named(line);
        }
        summaries.push(listed);
    }
    let mut writes: Vec<Write> = Vec::new();
    for m in &measures {
        let built_on = BTreeMap::from([(cohort.uuid, CountRole::of(m))]);
        writes.push(Write::Put(count_entry_with(object_entry(m)?, &built_on)?, Condition::MustNotExist));
    }
    writes.push(Write::Put(cohort_entry_with(object_entry(&cohort)?, &summary)?, Condition::MustNotExist));
    writes.extend(state.store.updates(summaries)?);
    let mut jobs: Vec<CohortJob> = measures
        .iter()
        .filter(|m| m.mode == MeasureMode::Global)
        .map(|m| CohortJob::CountAll { owner: owner.to_owned(), dated_measure: m.uuid })
        .collect();
    jobs.push(CohortJob::Create { owner: owner.to_owned(), cohort: cohort.uuid });
    let mut created = vec![keys::workspace_object(Kind::Cohort, owner, cohort.uuid)];
    created.extend(measures.iter().map(|m| keys::workspace_object(Kind::DatedMeasure, owner, m.uuid)));
    if !create_and_queue(&state, &headers, writes, created, jobs).await? {
        return Ok(None);
    }
    let mut rendered = ws;
    rendered.measures.extend(measures);
    Ok(Some((StatusCode::CREATED, Json(CohortView::of(&state.settings, &rendered, &cohort, false)))))
}

/// What a cohort's creation validates and renders: the snapshot it names (or its parent's) with its
/// request, the parent, and the count it names. A handful of GetItems, never the snapshot's other
/// counts and cohorts.
async fn named_around(state: &AppState, owner: &str, body: &Map<String, Value>) -> AppResult<Workspace> {
    let named = |field: &str| body.get(field).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s.trim()).ok());
    if !state.store.workspace_layout_ready().await? {
        return load(state, owner, &COHORT_KINDS).await;
    }
    let store = &state.store;
    let parent = match named("parent_cohort") {
        Some(parent) if body.get("parent_cohort").is_some_and(|v| !v.is_null()) => {
            store.workspace_object::<CohortResult>(owner, parent).await?
        }
        _ => None,
    };
    let snapshot = match &parent {
        Some(parent) => parent.request_query_snapshot,
        None => named("request_query_snapshot"),
    };
    let measure = async {
        match named("dated_measure") {
            Some(measure) => store.workspace_object::<DatedMeasure>(owner, measure).await,
            None => Ok(None),
        }
    };
    let (visible, measure) = tokio::join!(rows::visible_snapshot(state, owner, snapshot), measure);
    let (snapshots, requests) = visible?.map(|(s, r)| (vec![s], vec![r])).unwrap_or_default();
    Ok(Workspace {
        requests,
        snapshots,
        cohorts: parent.into_iter().collect(),
        measures: measure?.into_iter().collect(),
        ..Workspace::default()
    })
}

/// One more cohort in its owner's list.
fn counted_cohort(owner: &str) -> ItemUpdate {
    let mut counts = ItemUpdate::counts(owner);
    counts.add_cohorts(1);
    counts
}

/// Python's `repr` of a JSON body, as the original quotes it in an error message.
fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => format!("[{}]", items.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter().map(|(k, v)| format!("'{k}': {}", python_repr(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Owner edits and QueryExecutor / Solr ETL callbacks (spec §5.7). Status changes apply only to a job
/// that has not ended: a late or duplicated callback leaves the cohort as it is.
async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(body): Body,
) -> AppResult<Json<CohortView>> {
    let uuid = path_uuid(&uuid, Kind::Cohort)?;
    let cohort: CohortResult = visible(&state, &principal, uuid).await?;
    if cohort.is_subset && !is_applicative(&principal) {
        return Err(AppError::NotFound(Kind::Cohort.model()));
    }
    if NOT_UPDATABLE.iter().any(|k| body.contains_key(*k)) {
        let repr = python_repr(&Value::Object(body.clone()));
        return Err(AppError::InvalidString(format!("The payload contains non-updatable fields `{repr}`")));
    }
    // Re-parenting validates the new parent and may change the count a request shows: the whole
    // workspace. Other edits and callbacks read the cohort and its parent only.
    let ws = if body.contains_key("parent_cohort") || !state.store.workspace_layout_ready().await? {
        load(&state, &cohort.owner, &COHORT_KINDS).await?
    } else {
        let parent: Vec<Uuid> = cohort.parent_cohort.into_iter().collect();
        let mut cohorts = state.store.workspace_objects::<CohortResult>(&cohort.owner, &parent).await?;
        cohorts.push(cohort.clone());
        Workspace { cohorts, ..Workspace::default() }
    };
    let now = time::now();
    let mut changes = Changes::modified(now);
    let mut measure_update: Option<(Uuid, Changes)> = None;
    if body.contains_key("request_job_status") {
        changes.while_status(&JobStatus::not_final());
        match callback_status(&body) {
            Err(message) => {
                changes
                    .job_status(Kind::Cohort, cohort.uuid, JobStatus::Failed)?
                    .set("request_job_fail_msg", &message)?;
                let (failed, _) = apply(&state, &cohort, changes).await?;
                state.job_news().cohort(&failed).await?;
                return Err(AppError::InvalidString(message));
            }
            Ok(status) => {
                changes.job_status(Kind::Cohort, cohort.uuid, status)?;
                if matches!(status, JobStatus::Finished | JobStatus::Failed) {
                    changes.set("request_job_duration", &python_duration(now - cohort.stamps.created_at))?;
                }
                if status == JobStatus::Failed {
                    changes.set("request_job_fail_msg", &body.get("message").and_then(Value::as_str).unwrap_or(""))?;
                }
                if let Some(measure) = cohort.dated_measure.filter(|_| body.contains_key("group.count")) {
                    let mut fields = Fields::new(&body);
                    let count = callback_number(&mut fields, &body, "group.count");
                    fields.finish()?;
                    // The count has usually ended (the cohort was built from it): it takes the size
                    // of the cohort whenever the cohort's own update applies.
                    let mut dm = Changes::modified(now);
                    dm.set("measure", &count)?.job_status(Kind::DatedMeasure, measure, status)?;
                    measure_update = Some((measure, dm));
                }
            }
        }
    }
    if let Some(group) = body.get("group.id") {
        changes.set("group_id", &group_text(group))?;
    }
    let edited = owner_edits(&body, &ws, &cohort, &mut changes)?;
    let summaries = sample_summaries(&ws, &cohort, &edited)?;
    let (updated, applied) = if summaries.is_empty() {
        apply(&state, &cohort, changes).await?
    } else {
        let mut writes = vec![state.store.update_write::<CohortResult>(&cohort.owner, cohort.uuid, changes)?];
        writes.extend(state.store.updates(summaries)?);
        match state.store.transact(writes).await {
            Err(StoreError::TransactionConflict(failed)) if failed.first() != Some(&true) => {
                return Err(AppError::InvalidString("The cohort changed meanwhile, please try again".into()))
            }
            Err(StoreError::TransactionConflict(_)) => {
                let current = state.store.workspace_object::<CohortResult>(&cohort.owner, cohort.uuid).await?;
                (current.ok_or(AppError::NotFound(Kind::Cohort.model()))?, false)
            }
            other => {
                other?;
                // A transaction returns nothing: the cohort is what the changes make of it.
                (edited, true)
            }
        }
    };
    // The Solr ETL reports the cohorts too large for the executor: their owner is told by e-mail.
    let by_etl = matches!(principal.app, Some(AppActor::SolrEtl));
    if applied && by_etl && updated.job.request_job_status == JobStatus::Finished {
        if let Some(owner) = state.store.user(&updated.owner).await? {
            let name = updated.name.clone().unwrap_or_default();
            let email = notify::large_cohort_ready(&state.settings, &owner, &name, &updated.group_id);
            notify::deliver(&state.mailer, email, "large_cohort_finished").await;
        }
    }
    if let Some((measure, dm)) = measure_update.filter(|_| applied) {
        let current = state.store.workspace_object::<DatedMeasure>(&cohort.owner, measure).await?;
        if let Some(current) = current {
            match state.store.record_count(&current, dm).await {
                Ok(_) | Err(StoreError::ConditionFailed) => {}
                Err(other) => return Err(other.into()),
            }
        }
    }
    state.job_news().cohort(&updated).await?;
    let row = match rows::one_cohort(&state, &updated.owner, updated.uuid).await? {
        Some(row) => CohortRow { cohort: updated, summary: row.summary },
        None => CohortRow { summary: CohortSummary::from_workspace(&ws, &updated), cohort: updated },
    };
    let mut rendered = render(&state, &[&row], false).await?;
    Ok(Json(rendered.pop().ok_or_else(|| AppError::internal("a rendered cohort is missing"))?))
}

/// `group.id` arrives as a string or a number; it is stored as text.
fn group_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a PATCH changes in the rows around a cohort: the sample lines of its parents, and the count
/// its request shows (a count used only by samples is not shown: re-parenting can change that).
fn sample_summaries(ws: &Workspace, before: &CohortResult, after: &CohortResult) -> AppResult<Vec<ItemUpdate>> {
    let owner = &before.owner;
    let mut updates = Vec::new();
    let (line_before, line_after) = (SampleLine::of(before), SampleLine::of(after));
    let alive = |p: &Option<uuid::Uuid>| p.filter(|p| ws.cohort(*p).is_some());
    if let Some(parent) = alive(&before.parent_cohort).filter(|p| Some(*p) != after.parent_cohort) {
        let mut row = ItemUpdate::cohort(owner, parent);
        row.sample_removed(before.uuid);
        updates.push(row);
    }
    if let Some(parent) = alive(&after.parent_cohort) {
        if Some(parent) != before.parent_cohort || line_before != line_after {
            let mut row = ItemUpdate::cohort(owner, parent);
            row.sample_line(after.uuid, &line_after)?;
            updates.push(row);
        }
    }
    if before.parent_cohort != after.parent_cohort {
        if let Some((snapshot, request)) =
            before.request_query_snapshot.and_then(|s| ws.snapshot(s)).map(|s| (s.uuid, s.request))
        {
            let mut edited = ws.clone();
            edited.cohorts.retain(|c| c.uuid != before.uuid);
            edited.cohorts.push(after.clone());
            let shown = |ws: &Workspace| RequestSummary::from_workspace(ws, request).snapshots.remove(&snapshot);
            let (was, will) = (shown(ws).and_then(|s| s.newest_count), shown(&edited).and_then(|s| s.newest_count));
            if was != will {
                let mut row = ItemUpdate::request(owner, request);
                row.shown_count(snapshot, was.map(|c| c.dm), will.as_ref())?;
                updates.push(row);
            }
        }
    }
    Ok(updates)
}

/// The writable fields of a cohort (spec §5.7) other than the callback keys; returns the cohort as
/// they leave it.
fn owner_edits(
    body: &Map<String, Value>,
    ws: &Workspace,
    cohort: &CohortResult,
    changes: &mut Changes,
) -> AppResult<CohortResult> {
    let mut fields = Fields::new(body);
    let name = fields.text("name", Text::max(255).nullable());
    let description = fields.text("description", Text::default().nullable().blank());
    let favorite = fields.boolean("favorite");
    let group_id = fields.text("group_id", Text::max(64).blank());
    let fail_msg = fields.text("request_job_fail_msg", Text::default().blank());
    let duration = fields.text("request_job_duration", Text::default().blank());
    let ratio = fields.float("sampling_ratio", true);
    let parent = fields.relation("parent_cohort", true, |u| u != cohort.uuid && ws.cohort(u).is_some());
    fields.finish()?;
    if let Some(name) = name {
        changes.set("name", &name)?;
    }
    if let Some(description) = description {
        changes.set("description", &description)?;
    }
    if let Some(favorite) = favorite {
        changes.set("favorite", &favorite)?;
    }
    if let Some(group_id) = group_id.flatten() {
        changes.set("group_id", &group_id)?;
    }
    if let Some(message) = fail_msg.flatten() {
        changes.set("request_job_fail_msg", &message)?;
    }
    if let Some(duration) = duration.flatten() {
        changes.set("request_job_duration", &duration)?;
    }
    if let Some(ratio) = ratio {
        changes.set("sampling_ratio", &ratio)?;
    }
    if let Some(parent) = parent {
        changes.set("parent_cohort", &parent)?;
    }
    let mut edited = cohort.clone();
    changes.apply_to(&mut edited)?;
    Ok(edited)
}

/// Applies changes unless the job ended meanwhile; returns the stored cohort and whether it moved.
async fn apply(state: &AppState, cohort: &CohortResult, changes: Changes) -> AppResult<(CohortResult, bool)> {
    match state.store.update_object::<CohortResult>(&cohort.owner, cohort.uuid, changes).await {
        Ok(updated) => Ok((updated, true)),
        Err(StoreError::ConditionFailed) => {
            let current = state.store.workspace_object::<CohortResult>(&cohort.owner, cohort.uuid).await?;
            let current = current.ok_or(AppError::NotFound(Kind::Cohort.model()))?;
            tracing::info!(
                cohort = %cohort.uuid,
                status = current.job.request_job_status.as_str(),
                "callback ignored: the cohort job has already ended"
            );
            Ok((current, false))
        }
        Err(other) => Err(other.into()),
    }
}

async fn destroy(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuids): Path<String>,
) -> AppResult<StatusCode> {
    refuse_applicative(&principal)?;
    let uuids = delete_targets(&uuids, Kind::Cohort)?;
    delete_owned(&state, owner(&principal), Kind::Cohort, &uuids).await
}

/// No authentication (spec §5.7): one counted Query of the active-jobs index.
async fn active_jobs(State(state): State<AppState>, _: PublicCaller) -> AppResult<Json<ActiveJobs>> {
    Ok(Json(ActiveJobs { jobs_count: state.store.count_active_cohort_jobs().await? }))
}

/// §4.11, over the caller's own cohorts (the original answers 500 when a group id belongs to someone
/// else; here another user's cohort is simply not found).
async fn rights(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Vec<CohortRights>>> {
    // An empty or missing list names no cohort: the 404 of §4.11 (never the cohorts without a group id yet).
    let wanted: HashSet<String> = query.list("group_id").unwrap_or_default().into_iter().collect();
    let groups: Vec<&str> = wanted.iter().map(String::as_str).filter(|g| !g.is_empty()).collect();
    let (found, tree) = tokio::join!(state.store.cohorts_by_group(owner(&principal), &groups), state.perimeter_tree());
    let ((cohorts, snapshots), tree) = (found?, tree?);
    // Export subsets included, as in the original: the app asks for a subset's rights when its
    // `job_status` frame arrives.
    let cohorts: Vec<&CohortResult> = cohorts.iter().collect();
    if cohorts.is_empty() {
        return Err(AppError::NotFoundDetail("No cohorts found. The provided `group_id`s are not valid".into()));
    }
    if principal.grants.is_empty() {
        let name = principal.user.as_ref().map(|u| u.display_name()).unwrap_or_else(|| principal.username.clone());
        return Err(AppError::NotFoundDetail(format!("The user `{name}` has no valid accesses")));
    }
    let rows: Vec<CohortRights> = cohorts
        .into_iter()
        .map(|c| {
            let cohort_ids: Vec<&String> = c
                .request_query_snapshot
                .and_then(|s| snapshots.iter().find(|snapshot| snapshot.uuid == s))
                .and_then(|s| s.perimeters_ids.as_ref())
                .map(|ids| ids.iter().collect())
                .unwrap_or_default();
            let perimeters: Vec<i64> = tree
                .iter()
                .filter(|p| p.cohort_id().is_some_and(|id| cohort_ids.iter().any(|c| *c == id)))
                .map(|p| p.id)
                .collect();
            let r = cohort_rights(&principal.grants, &perimeters, &tree);
            CohortRights {
                cohort_id: c.group_id.clone(),
                rights: RightsView {
                    read_patient_nomi: r.read_patient_nomi,
                    read_patient_pseudo: r.read_patient_pseudo,
                    export_csv_xlsx_nomi: r.export_csv_xlsx_nomi,
                    export_jupyter_nomi: r.export_jupyter_nomi,
                    export_jupyter_pseudo: r.export_jupyter_pseudo,
                },
            }
        })
        .collect();
    Ok(Json(rows))
}
