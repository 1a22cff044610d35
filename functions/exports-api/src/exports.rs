//! `/exports/` (spec §7.3, §7.6): export requests, their list, downloads, and the admins' retry,
//! relaunch and logs. An export is created `new` and its launch is queued for the export worker, or,
//! when tables are filtered through cohort subsets (§7.4), created `pending` with its subsets, whose
//! creations are queued for the cohort worker: the end of the last one launches it (`c360::services::subsets`).
use std::{
    collections::{hash_map::Entry, HashMap},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    clients::export_api::{ExportApi, ExportApiError},
    clients::jobs::{CohortJob, ExportJob, ForwardedAuth, JobMessage},
    domain::{
        access_rules::my_data_rights,
        cohort::{
            CohortResult, DatedMeasure, FhirFilter, Job, JobStatus, Request, Snapshot, SnapshotQuery, Stamps,
            DEFAULT_QUERY_VERSION,
        },
        exports::{
            check_tables, clean_motivation, invalid, missing_data_right, needs_subset, note_filter_name,
            permission_refusal, s3_location, subset_name, target_name, Export, ExportRequest, ExportSummary,
            OutputFormat, TableRequest, NOTE_FILTER, NOTE_FILTER_FHIR_VERSION, NOTE_FILTER_RESOURCE, NOTE_TABLE,
        },
        query_executor::single_criterion_query,
        rights::Right,
        summary::RequestLine,
        time::{self, DateTime},
    },
    error::{AppError, AppResult},
    http::{
        contract::{Doc, Paging},
        listing::{matches_search, sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::{exports::NewSubset, StoreError},
};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::views::{ExportListed, ExportRowView, ExportView, LogsView, Message, TaskLogs};

/// Downloads up to this size go through the function (Lambda answers at most 6 MB, base64 included);
/// larger files are a redirect to a presigned S3 GET.
pub const STREAM_LIMIT_BYTES: i64 = 4 * 1024 * 1024;
/// How long a presigned download URL works.
const PRESIGNED_TTL: Duration = Duration::from_secs(300);

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "exports")
        .route(Method::GET, "/exports/", Exposure::Authenticated, "List exports (LIMIT; 204 when empty)", list)
        .doc(list_doc())
        .audited(Method::POST, "/exports/", Exposure::Authenticated, "Request an export", "exports.create", create)
        .doc(
            Doc::new()
                .body::<ExportRequestBody>()
                .reply::<ExportView>(
                    201,
                    "The new export (`export_tables` empty), launched or waiting for its subsets.",
                )
                .error(400, "Field errors, or `[\"Invalid export data: <reason>\"]` (the exporter's validation).")
                .error(403, "Not authenticated, or not allowed to export in this format and mode (French `detail`)."),
        )
        .route(Method::GET, "/exports/{uuid}/", Exposure::Authenticated, "Get one of the caller's exports", retrieve)
        .doc(Doc::new().reply::<ExportView>(200, "The export."))
        .audited(
            Method::GET,
            "/exports/{uuid}/download/",
            Exposure::Authenticated,
            "Download a finished csv/xlsx export (zip; a presigned redirect above 4 MB)",
            "exports.download",
            download,
        )
        .doc(
            Doc::new()
                .file(200, "application/zip", "The zip, as an attachment named `export_<group id>.zip`.")
                .empty(302, "A larger zip: `Location` is a presigned GET, valid for 5 minutes.")
                .error(400, "Not finished, not downloadable, or no longer available (a message)."),
        )
        .audited(
            Method::POST,
            "/exports/{uuid}/retry/",
            Exposure::Authenticated,
            "Launch an export again (full admin)",
            "exports.retry",
            retry,
        )
        .doc(Doc::new().reply::<Message>(200, "\"The export `<uuid>` has been relaunched\"."))
        .audited(
            Method::POST,
            "/exports/{uuid}/relaunch/",
            Exposure::Authenticated,
            "Copy an export and launch the copy (full admin)",
            "exports.relaunch",
            relaunch,
        )
        .doc(Doc::new().reply::<ExportView>(201, "The copy (`export_tables` empty), launched."))
        .route(
            Method::GET,
            "/exports/{uuid}/logs/",
            Exposure::Authenticated,
            "The Export API's logs (full admin)",
            logs,
        )
        .doc(
            Doc::new()
                .reply::<LogsView>(200, "A message (finished export), or the task's logs as a JSON attachment.")
                .error(400, "\"The target export has no job ID\".")
                .reply::<Message>(408, "The Export API did not answer in time (a message).")
                .reply::<Message>(500, "The Export API failed (a message)."),
        )
        .build()
}

/// `GET /exports/`'s filters (spec §7.6), each with its description.
const OUTPUT_FORMAT: &str = "output_format";
const STATUS: &str = "status";
/// The Portail's name for `status`.
const REQUEST_JOB_STATUS: &str = "request_job_status";
const OWNER: &str = "owner";
const MOTIVATION: &str = "motivation";
const FULL_OBJECTS: &str = "return_full_objects";
const SEARCHED: [&str; 10] = [
    "owner username",
    "owner first name",
    "owner last name",
    "motivation",
    "request_job_status",
    "output_format",
    "target_name",
    "datalab name",
    "cohort name",
    "cohort id",
];

fn list_doc() -> Doc {
    let text = json!({"type": "string"});
    Doc::new()
        .paged::<ExportListed>(Paging::Limit)
        .empty(204, "The page is empty (no export, or an offset beyond the last).")
        .ordering(&ORDERINGS)
        .search(&SEARCHED)
        .param(FULL_OBJECTS, "`true`: rows of the full serializer.", text.clone())
        .param(OUTPUT_FORMAT, "Formats, comma-separated (csv, xlsx, hive).", text.clone())
        .param(STATUS, "Statuses, comma-separated.", text.clone())
        .param(REQUEST_JOB_STATUS, "Statuses, comma-separated (the Portail's name for `status`).", text.clone())
        .param(OWNER, "Words in the owner's username, first name or last name (any case).", text.clone())
        .param(MOTIVATION, "Words in the motivation (any case).", text)
}

/// Callers who manage exports or datalabs list everyone's exports (the Portail's datalab pages);
/// everyone else lists their own (docs/architecture.md).
pub fn sees_every_export(principal: &Principal) -> bool {
    principal.is_full_admin() || principal.has(Right::MANAGE_DATALABS) || principal.has(Right::READ_DATALABS)
}

const ORDERINGS: [&str; 6] = ["created_at", "modified_at", "output_format", "status", "patients_count", "owner"];

async fn list(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Response> {
    let orders = query.ordering("ordering", &ORDERINGS)?;
    let default_order = query.ordering_from("-created_at");
    let full = query.flag(FULL_OBJECTS) == Some(true);
    let render = |e: &Export| {
        if full {
            ExportListed::Full(ExportView::of(e, true))
        } else {
            ExportListed::Row(ExportRowView::of(e))
        }
    };
    let scope = (!sees_every_export(&principal)).then_some(principal.username.as_str());
    let (limit, offset) = query.limit_offset();
    let in_index_order = (orders.is_empty() || orders == default_order)
        && query.has_only(&["limit", "offset", "ordering", FULL_OBJECTS]);
    let (count, page) = if in_index_order {
        let (count, page) =
            tokio::try_join!(state.store.exports_count(scope), state.store.exports_page(scope, offset, limit))?;
        (usize::try_from(count).unwrap_or_default(), page)
    } else {
        let orders = if orders.is_empty() { default_order } else { orders };
        let mut exports = state.store.exports_matching(scope, |e| matches_filters(e, &query)).await?;
        sort_by(&mut exports, &orders, sort_value);
        let page: Vec<Export> = exports.iter().skip(offset).take(limit).cloned().collect();
        // Read without their tables: the full rows read the page's exports again.
        let page = if full {
            state.store.exports_by_uuid(&page.iter().map(|e| e.uuid).collect::<Vec<_>>()).await?
        } else {
            page
        };
        (exports.len(), page)
    };
    if page.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let results: Vec<ExportListed> = page.iter().map(render).collect();
    Ok(Json(query.limited_window(count, results)).into_response())
}

fn contains(value: &str, wanted: &str) -> bool {
    value.to_lowercase().contains(&wanted.to_lowercase())
}

/// The filters and search of spec §7.6 (`request_job_status` is the Portail's name for `status`).
fn matches_filters(e: &Export, query: &ListQuery) -> bool {
    let any_of = |param: &str, value: &str| query.list(param).is_none_or(|wanted| wanted.iter().any(|w| w == value));
    let s = &e.summary;
    let status = e.job.request_job_status.as_str();
    any_of(OUTPUT_FORMAT, e.output_format.as_str())
        && any_of(STATUS, status)
        && any_of(REQUEST_JOB_STATUS, status)
        && query
            .get(OWNER)
            .is_none_or(|w| contains(&e.owner, w) || contains(&s.owner_firstname, w) || contains(&s.owner_lastname, w))
        && query.get(MOTIVATION).is_none_or(|w| e.motivation.as_deref().is_some_and(|m| contains(m, w)))
        && matches_search(
            &query.search_terms(),
            &[
                Some(e.owner.as_str()),
                Some(s.owner_firstname.as_str()),
                Some(s.owner_lastname.as_str()),
                e.motivation.as_deref(),
                Some(status),
                Some(e.output_format.as_str()),
                Some(e.target_name.as_str()),
                s.datalab_name.as_deref(),
                s.cohort_name.as_deref(),
                s.cohort_id.as_deref(),
            ],
        )
}

fn sort_value(e: &Export, field: &str) -> SortValue {
    match field {
        "modified_at" => SortValue::Text(time::iso(e.stamps.modified_at)),
        "output_format" => SortValue::Text(e.output_format.as_str().into()),
        "status" => SortValue::Text(e.job.request_job_status.as_str().into()),
        "patients_count" => e.summary.patients_count.map_or(SortValue::Null, SortValue::Int),
        "owner" => SortValue::Text(e.summary.owner_firstname.clone()),
        _ => SortValue::Text(time::iso(e.stamps.created_at)),
    }
}

/// An export of the caller's; another user's export does not exist for them (404, never 403).
async fn owned(state: &AppState, principal: &Principal, raw: &str) -> AppResult<Export> {
    let uuid = Uuid::parse_str(raw).map_err(|_| AppError::NotFound("Export"))?;
    state.store.export(uuid).await?.filter(|e| e.owner == principal.username).ok_or(AppError::NotFound("Export"))
}

/// Any export, for the full admins' actions (403 for anyone else, before the lookup as in DRF).
async fn administered(state: &AppState, principal: &Principal, raw: &str) -> AppResult<Export> {
    if !principal.is_full_admin() {
        return Err(AppError::permission_denied());
    }
    let uuid = Uuid::parse_str(raw).map_err(|_| AppError::NotFound("Export"))?;
    state.store.export(uuid).await?.ok_or(AppError::NotFound("Export"))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<ExportView>> {
    Ok(Json(ExportView::of(&owned(&state, &principal, &raw).await?, true)))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<ExportView>)> {
    let request = parse_request(&body)?;
    if let Some(detail) = permission_refusal(&request.output_format, request.nominative, principal.rights) {
        return Err(AppError::PermissionDenied(detail.into()));
    }
    // A source request renamed or deleted between the reads and the write: read again.
    for _ in 0..3 {
        let (mut export, cohorts) = prepare(&state, &principal, &request).await?;
        let (filters, subsets) = plan_subsets(&state, &mut export, &request, &cohorts).await?;
        match state.store.create_export_with(&export, &filters, &subsets).await {
            Err(StoreError::TransactionConflict(_)) => continue,
            other => other?,
        }
        let export = if subsets.is_empty() {
            launch(&state, export).await?
        } else {
            build_subsets(&state, &headers, export, &subsets).await?
        };
        return Ok((StatusCode::CREATED, Json(ExportView::of(&export, false))));
    }
    Err(invalid_data("The source cohort changed meanwhile, please try again"))
}

fn invalid_data(reason: impl std::fmt::Display) -> AppError {
    AppError::InvalidList(vec![invalid(reason)])
}

fn string_list(value: Option<&Value>) -> Result<Option<Vec<String>>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or(())).collect::<Result<_, _>>().map(Some)
        }
        Some(_) => Err(()),
    }
}

fn flag(value: Option<&Value>, default: bool) -> Result<bool, ()> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(()),
    }
}

fn optional_uuid(value: Option<&Value>) -> Result<Option<Uuid>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            Uuid::parse_str(s.trim()).map(Some).map_err(|_| format!("Invalid pk \"{s}\" - object does not exist."))
        }
        Some(other) => Err(format!("Invalid pk \"{other}\" - object does not exist.")),
    }
}

// The body of `POST /exports/`, for the document only: its reading stays hand-written
// (`parse_request`, then `prepare`) because it is not DRF's field by field, which the form field types
// read: booleans are JSON booleans only, a non-string text is refused, a table has one message for
// any of its defects, a missing `output_format` and the exporter's checks answer
// `["Invalid export data: <reason>"]` (spec §7.3) rather than field errors.
/// An export request (spec §7.3). Booleans are JSON booleans; the exporter's validation answers
/// `["Invalid export data: <reason>"]`.
#[derive(ToSchema)]
#[allow(dead_code)] // a description, never built
pub struct ExportRequestBody {
    /// csv, xlsx or hive (missing: "Invalid export data: output_format is required").
    output_format: String,
    nominative: Option<bool>,
    /// Newlines become " - ".
    motivation: Option<String>,
    /// Required by hive exports.
    datalab: Option<Uuid>,
    shift_dates: Option<bool>,
    group_tables: Option<bool>,
    export_tables: Option<Vec<ExportTableRequestBody>>,
}

/// A table of `POST /exports/`.
#[derive(ToSchema)]
#[allow(dead_code)] // a description, never built
pub struct ExportTableRequestBody {
    /// Kept to its first 55 characters.
    #[schema(min_length = 1)]
    table_name: String,
    columns: Option<Vec<String>>,
    /// The source cohort.
    cohort_result_source: Option<Uuid>,
    /// A saved filter of the caller or of the source cohort's owner: the table exports a subset.
    fhir_filter: Option<Uuid>,
    /// Defaults to true.
    respect_table_relationships: Option<bool>,
    pivot_merge: Option<bool>,
    pivot_merge_columns: Option<Vec<String>>,
    pivot_merge_ids: Option<Vec<String>>,
}

/// The typed body (spec §7.3); a field of the wrong type is a 400 naming it.
fn parse_request(body: &Map<String, Value>) -> AppResult<ExportRequest> {
    let mut errors: c360::error::FieldErrors = Default::default();
    let mut error = |field: &str, message: String| errors.entry(field.to_owned()).or_default().push(message);
    let output_format = match body.get("output_format") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            error("output_format", "Not a valid string.".into());
            String::new()
        }
    };
    let motivation = match body.get("motivation") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            error("motivation", "Not a valid string.".into());
            String::new()
        }
    };
    let mut boolean = |field: &str| {
        flag(body.get(field), false).unwrap_or_else(|()| {
            error(field, "Must be a valid boolean.".into());
            false
        })
    };
    let (nominative, shift_dates, group_tables) =
        (boolean("nominative"), boolean("shift_dates"), boolean("group_tables"));
    let datalab = optional_uuid(body.get("datalab")).unwrap_or_else(|m| {
        error("datalab", m);
        None
    });
    let tables = match body.get("export_tables") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| {
                let table = item.as_object().and_then(|t| parse_table(t).ok());
                if table.is_none() {
                    error(
                        "export_tables",
                        "Each table needs a `table_name` string; `columns`, `pivot_merge_columns` and \
                         `pivot_merge_ids` are lists of strings, `fhir_filter` a uuid."
                            .into(),
                    );
                }
                table
            })
            .collect(),
        Some(_) => {
            error("export_tables", "Expected a list of items.".into());
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    Ok(ExportRequest {
        output_format,
        nominative,
        motivation: Some(clean_motivation(&motivation)),
        datalab,
        shift_dates,
        group_tables,
        tables,
    })
}

fn parse_table(t: &Map<String, Value>) -> Result<TableRequest, ()> {
    let table_name = t.get("table_name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or(())?;
    let cohort_result_source = match t.get("cohort_result_source") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(()),
    };
    Ok(TableRequest {
        table_name: table_name.chars().take(55).collect(),
        cohort_result_source,
        fhir_filter: optional_uuid(t.get("fhir_filter")).map_err(|_| ())?,
        columns: string_list(t.get("columns"))?,
        respect_table_relationships: flag(t.get("respect_table_relationships"), true)?,
        pivot_merge: flag(t.get("pivot_merge"), false)?,
        pivot_merge_columns: string_list(t.get("pivot_merge_columns"))?,
        pivot_merge_ids: string_list(t.get("pivot_merge_ids"))?,
    })
}

/// §7.3.2 and §7.3.3: the exporter validation, the data-right check and the completed export, with
/// the source cohorts it names.
async fn prepare(
    state: &AppState,
    principal: &Principal,
    request: &ExportRequest,
) -> AppResult<(Export, HashMap<Uuid, CohortResult>)> {
    if request.output_format.is_empty() {
        return Err(invalid_data("output_format is required"));
    }
    let mut cohorts: HashMap<Uuid, CohortResult> = HashMap::new();
    for uuid in request.source_ids().into_iter().filter_map(|id| Uuid::parse_str(id).ok()) {
        let found: Option<CohortResult> = state.store.object_by_id(uuid).await?;
        if let Some(cohort) = found.filter(|c| c.stamps.deleted.is_none()) {
            cohorts.insert(uuid, cohort);
        }
    }
    let format = check_tables(request, &principal.username, &cohorts).map_err(invalid_data)?;
    if request.tables.iter().any(|t| t.fhir_filter.is_some() && t.source().is_none()) {
        return Err(invalid_data("A FHIR filter was provided but not a cohort source to filter"));
    }
    let user = principal.user.as_ref();
    let email = user.and_then(|u| u.email.as_deref()).filter(|e| !e.is_empty());
    let email = email.ok_or_else(|| invalid_data("No email address is configured. Please contact an administrator"))?;
    if !state.user_rules.email_has_valid_format(email) {
        return Err(invalid_data(format!("Invalid email address '{email}'. Please contact an administrator.")));
    }
    check_data_rights(state, principal, &cohorts, format, request.nominative).await?;

    let datalab =
        match request.datalab {
            Some(uuid) => Some(state.store.datalab(uuid).await?.ok_or_else(|| {
                AppError::field("datalab", format!("Invalid pk \"{uuid}\" - object does not exist."))
            })?),
            None => None,
        };
    let now = time::now();
    let (prefix, location) = match format {
        OutputFormat::Csv | OutputFormat::Xlsx => {
            let bucket = state
                .settings
                .exports_bucket
                .as_deref()
                .ok_or_else(|| AppError::internal("EXPORTS_BUCKET is not set"))?;
            (principal.username.clone(), format!("s3://{bucket}/exports"))
        }
        OutputFormat::Hive => {
            let lab = datalab.as_ref().ok_or_else(|| invalid_data("A `hive` export needs a `datalab`"))?;
            (lab.name.clone(), state.settings.hive_db_path.clone())
        }
    };
    let source = request.tables.iter().find_map(|t| t.source()).and_then(|u| cohorts.get(&u));
    let patients_count = match source.and_then(|c| c.dated_measure.map(|m| (c.owner.as_str(), m))) {
        Some((owner, measure)) => {
            state.store.workspace_object::<DatedMeasure>(owner, measure).await?.and_then(|m| m.measure)
        }
        None => None,
    };
    let export = Export {
        uuid: Uuid::new_v4(),
        owner: principal.username.clone(),
        output_format: format,
        datalab: datalab.as_ref().map(|d| d.uuid),
        nominative: request.nominative,
        shift_dates: request.shift_dates,
        group_tables: request.group_tables,
        motivation: request.motivation.clone(),
        target_name: target_name(&prefix, now),
        target_location: location,
        is_user_notified: false,
        clean_datetime: None,
        retried: false,
        launched_at: None,
        awaiting_subsets: false,
        hive_stage: None,
        tables: request.tables.iter().map(TableRequest::table).collect(),
        summary: ExportSummary {
            owner_display: user.map_or_else(|| principal.username.clone(), |u| u.display_name()),
            owner_firstname: user.and_then(|u| u.firstname.clone()).unwrap_or_default(),
            owner_lastname: user.and_then(|u| u.lastname.clone()).unwrap_or_default(),
            cohort_id: source.map(|c| c.group_id.clone()),
            cohort_name: source.and_then(|c| c.name.clone()),
            patients_count,
            datalab_name: datalab.map(|d| d.name),
        },
        rev: 0,
        job: Default::default(),
        stamps: Stamps::new(now),
    };
    Ok((export, cohorts))
}

/// What the subsets of one source cohort copy: its snapshot, its count and its request's line (when
/// the request is in the export owner's workspace).
struct SourceParts {
    snapshot: Snapshot,
    measure: Option<DatedMeasure>,
    request: Option<RequestLine>,
}

/// §7.4, table by table: the notes' auto-generated filter, then a cohort subset for each table that
/// needs one, recorded on the table. An export with subsets waits for them (`pending`).
async fn plan_subsets(
    state: &AppState,
    export: &mut Export,
    request: &ExportRequest,
    cohorts: &HashMap<Uuid, CohortResult>,
) -> AppResult<(Vec<FhirFilter>, Vec<NewSubset>)> {
    let (owner, now) = (export.owner.clone(), export.stamps.created_at);
    let mut filters: Vec<FhirFilter> = Vec::new();
    let mut subsets: Vec<NewSubset> = Vec::new();
    let mut sources: HashMap<Uuid, SourceParts> = HashMap::new();
    for (table, asked) in export.tables.iter_mut().zip(&request.tables) {
        let Some(source) = table.cohort_result_source.and_then(|u| cohorts.get(&u)) else { continue };
        if table.name == NOTE_TABLE && table.fhir_filter.is_none() {
            // One per export: its name is the export's.
            if filters.is_empty() {
                filters.push(note_filter(export.uuid, &owner, now));
            }
            table.fhir_filter = filters.first().map(|f| f.uuid);
        }
        let Some(filter) = table.fhir_filter.filter(|_| needs_subset(asked)) else { continue };
        let filter = match filters.iter().find(|f| f.uuid == filter) {
            Some(auto) => auto.clone(),
            None => saved_filter(state, &owner, &source.owner, filter).await?,
        };
        let parts = match sources.entry(source.uuid) {
            Entry::Occupied(read) => read.into_mut(),
            Entry::Vacant(unread) => unread.insert(source_parts(state, &owner, source).await?),
        };
        let subset = subset_of(parts, &owner, export.uuid, &table.name, source, &filter, now);
        table.cohort_result_subset = Some(subset.cohort.uuid);
        subsets.push(subset);
    }
    if !subsets.is_empty() {
        export.job.request_job_status = JobStatus::Pending;
        export.awaiting_subsets = true;
    }
    Ok((filters, subsets))
}

/// The notes' filter (spec §7.4): the documents that are not imported ones, in plain text.
fn note_filter(export: Uuid, owner: &str, now: DateTime) -> FhirFilter {
    FhirFilter {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        fhir_resource: NOTE_FILTER_RESOURCE.to_owned(),
        fhir_version: NOTE_FILTER_FHIR_VERSION.to_owned(),
        query_version: DEFAULT_QUERY_VERSION.to_owned(),
        name: note_filter_name(export),
        filter: NOTE_FILTER.to_owned(),
        identifying: false,
        auto_generated: true,
        filter_patches: 0,
        stamps: Stamps::new(now),
    }
}

/// A saved filter a table names: the caller's, or the source cohort owner's (the forms list the
/// filters of the owner they show). Filters are found by owner, never by uuid alone.
async fn saved_filter(state: &AppState, owner: &str, source_owner: &str, uuid: Uuid) -> AppResult<FhirFilter> {
    for candidate in [owner, source_owner] {
        if let Some(filter) = state.store.workspace_object::<FhirFilter>(candidate, uuid).await? {
            return Ok(filter);
        }
    }
    Err(AppError::field("export_tables", format!("Invalid pk \"{uuid}\" - object does not exist.")))
}

async fn source_parts(state: &AppState, owner: &str, source: &CohortResult) -> AppResult<SourceParts> {
    let no_snapshot = || invalid_data(format!("Cohort `{}` has no query snapshot to filter", source.uuid));
    let snapshot = source.request_query_snapshot.ok_or_else(no_snapshot)?;
    let snapshot = state.store.workspace_object::<Snapshot>(&source.owner, snapshot).await?.ok_or_else(no_snapshot)?;
    let measure = match source.dated_measure {
        Some(m) => state.store.workspace_object::<DatedMeasure>(&source.owner, m).await?,
        None => None,
    };
    let request = if source.owner == owner {
        state.store.workspace_object::<Request>(owner, snapshot.request).await?.map(|r| RequestLine::of(&r))
    } else {
        None
    };
    Ok(SourceParts { snapshot, measure, request })
}

/// A cohort subset of `source` through `filter` for `table` (spec §7.4): in the export owner's
/// workspace, since a cohort's snapshot and count live in its owner's. The source is the owner's for
/// csv/xlsx; for a hive export of another user's cohort the copies keep that user's request without
/// being listed on it.
fn subset_of(
    parts: &SourceParts,
    owner: &str,
    export: Uuid,
    table: &str,
    source: &CohortResult,
    filter: &FhirFilter,
    now: DateTime,
) -> NewSubset {
    let request = parts.snapshot.request;
    let snapshot = Snapshot {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        request,
        name: None,
        previous_snapshot: None,
        shared_by: None,
        perimeters_ids: parts.snapshot.perimeters_ids.clone(),
        version: 1,
        query_patches: 0,
        stamps: Stamps::new(now),
    };
    let query = single_criterion_query(&source.group_id, &filter.fhir_resource, &filter.filter);
    let measure = parts.measure.as_ref().map(|m| DatedMeasure {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        request_query_snapshot: snapshot.uuid,
        request,
        measure: m.measure,
        measure_min: None,
        measure_max: None,
        extra: None,
        count_task_id: String::new(),
        mode: m.mode,
        job: Job {
            request_job_status: m.job.request_job_status,
            request_job_duration: m.job.request_job_duration.clone(),
            ..Job::new()
        },
        stamps: Stamps::new(now),
    });
    let cohort = CohortResult {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        name: Some(subset_name(table, &source.group_id)),
        description: None,
        favorite: false,
        request_query_snapshot: Some(snapshot.uuid),
        request: Some(request),
        group_id: String::new(),
        dated_measure: measure.as_ref().map(|m| m.uuid),
        dated_measure_global: None,
        create_task_id: String::new(),
        is_subset: true,
        export: Some(export),
        parent_cohort: None,
        sampling_ratio: None,
        job: Job::new(),
        stamps: Stamps::new(now),
    };
    NewSubset {
        snapshot,
        query: SnapshotQuery { serialized_query: query, translated_query: None },
        measure,
        cohort,
        request: parts.request.clone(),
    }
}

/// §7.3.2 over §4.10: the caller's data rights on the perimeters of the source cohorts' snapshots.
async fn check_data_rights(
    state: &AppState,
    principal: &Principal,
    cohorts: &HashMap<Uuid, CohortResult>,
    format: OutputFormat,
    nominative: bool,
) -> AppResult<()> {
    let mut cohort_ids: Vec<String> = Vec::new();
    for cohort in cohorts.values() {
        let Some(snapshot) = cohort.request_query_snapshot else { continue };
        if let Some(s) = state.store.workspace_object::<Snapshot>(&cohort.owner, snapshot).await? {
            cohort_ids.extend(s.perimeters_ids.unwrap_or_default());
        }
    }
    if cohort_ids.is_empty() {
        return Ok(());
    }
    let tree = state.perimeter_tree().await?;
    let perimeters: Vec<i64> = tree
        .iter()
        .filter(|p| p.cohort_id().is_some_and(|id| cohort_ids.iter().any(|c| c == id)))
        .map(|p| p.id)
        .collect();
    let rights = my_data_rights(&principal.grants, Some(&perimeters), &tree);
    match missing_data_right(&rights, format, nominative) {
        Some(reason) => Err(invalid_data(reason)),
        None => Ok(()),
    }
}

/// Queues the launch of a `new` export. An export that cannot be queued would never run: it is
/// marked failed and the request fails.
async fn launch(state: &AppState, export: Export) -> AppResult<Export> {
    let Err(err) = state.export_jobs.send(ExportJob::Launch { export: export.uuid }, 0).await else {
        return Ok(export);
    };
    Err(not_queued(state, export, "export launch", err).await)
}

/// Queues the creation of an export's subsets, as a cohort's creation is queued (spec §5.7 step 2).
/// A subset that cannot be queued would never end: the export fails and the request fails (the
/// subsets queued before end on their own and find it failed).
async fn build_subsets(
    state: &AppState,
    headers: &HeaderMap,
    export: Export,
    subsets: &[NewSubset],
) -> AppResult<Export> {
    let fhir_auth = ForwardedAuth::of_request(state.settings.use_solr, headers);
    for subset in subsets {
        let job = CohortJob::Create { owner: subset.cohort.owner.clone(), cohort: subset.cohort.uuid };
        let message = JobMessage { fhir_auth: fhir_auth.clone(), ..JobMessage::new(job) };
        if let Err(err) = state.jobs.send_message(&message).await {
            return Err(not_queued(state, export, "cohort subset", err).await);
        }
    }
    Ok(export)
}

/// Fails an export whose next step (`what`) could not be queued; the request's error.
async fn not_queued(state: &AppState, export: Export, what: &str, err: impl std::fmt::Display) -> AppError {
    let mut failed = export;
    failed.job.request_job_status = JobStatus::Failed;
    failed.job.request_job_fail_msg = format!("Export terminated with an error: {err}");
    failed.awaiting_subsets = false;
    state.store.save_export(&failed).await.ok();
    AppError::internal(format!("{what} not queued: {err}"))
}

/// `retry/`: the export starts over as `new` (spec §7.6); a poll of its previous task finds another
/// task id and stops.
async fn retry(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Json<Message>> {
    let mut export = administered(&state, &principal, &raw).await?;
    loop {
        let mut again = export.clone();
        again.job.request_job_status = JobStatus::New;
        again.job.request_job_id = String::new();
        again.job.request_job_fail_msg = String::new();
        again.job.request_job_duration = String::new();
        again.retried = true;
        again.launched_at = None;
        // Launched now: a subset still being built fails it at launch (no group id to send), and one
        // ending later finds it no longer waiting.
        again.awaiting_subsets = false;
        again.hive_stage = None;
        match state.store.save_export(&again).await {
            Ok(saved) => {
                launch(&state, saved).await?;
                return Ok(Json(Message(format!("The export `{}` has been relaunched", export.uuid))));
            }
            Err(StoreError::ConditionFailed) => {
                export = state.store.export(export.uuid).await?.ok_or(AppError::NotFound("Export"))?;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// `relaunch/`: a copy of the export for its owner, launched (the intended behaviour: 201 with the copy).
async fn relaunch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<(StatusCode, Json<ExportView>)> {
    let original = administered(&state, &principal, &raw).await?;
    let now = time::now();
    let prefix = match original.output_format {
        OutputFormat::Hive => original.summary.datalab_name.clone().unwrap_or_else(|| original.owner.clone()),
        OutputFormat::Csv | OutputFormat::Xlsx => original.owner.clone(),
    };
    let copy = Export {
        uuid: Uuid::new_v4(),
        target_name: target_name(&prefix, now),
        is_user_notified: false,
        clean_datetime: None,
        retried: false,
        launched_at: None,
        // The copy exports through the original's subsets (`tables` as they are), launched at once.
        awaiting_subsets: false,
        hive_stage: None,
        rev: 0,
        job: Default::default(),
        stamps: Stamps::new(now),
        ..original
    };
    state.store.create_export(&copy).await?;
    let copy = launch(&state, copy).await?;
    Ok((StatusCode::CREATED, Json(ExportView::of(&copy, false))))
}

async fn logs(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    let export = administered(&state, &principal, &raw).await?;
    let bare = |status: StatusCode, text: &str| (status, Json(Message(text.to_owned()))).into_response();
    if export.job.request_job_status == JobStatus::Finished {
        let finished = LogsView::Message("No logs available. The target export has finished successfully".into());
        return Ok(Json(finished).into_response());
    }
    if export.job.request_job_id.is_empty() {
        return Err(AppError::InvalidString("The target export has no job ID".into()));
    }
    let url = state.settings.export_api_url.clone().ok_or_else(|| AppError::internal("EXPORT_API_URL is not set"))?;
    let api = ExportApi::new(state.http.clone(), url, state.settings.export_api_auth_token.clone());
    match api.task_status(&export.job.request_job_id).await {
        Ok(answer) => {
            let text = serde_json::to_string_pretty(&LogsView::Logs(TaskLogs(answer))).map_err(AppError::internal)?;
            let disposition = format!("attachment; filename=\"logs_export_{}.json\"", export.target_name);
            Ok((
                [(header::CONTENT_TYPE, "application/json".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
                text,
            )
                .into_response())
        }
        Err(ExportApiError::Timeout) => {
            Ok(bare(StatusCode::REQUEST_TIMEOUT, "Timeout while fetching logs. Please try again later."))
        }
        Err(err) => Ok(bare(StatusCode::INTERNAL_SERVER_ERROR, &format!("Error fetching logs: {err}"))),
    }
}

/// `download/` (spec §7.6): the zip from the exports bucket, named `export_<group id>.zip` for a
/// browser navigation (the Cohort360 app's XHR names the blob itself). Files up to
/// [`STREAM_LIMIT_BYTES`] are answered directly; larger ones redirect to a presigned GET, which the
/// app's XHR follows thanks to the bucket's CORS rule (template.yaml).
async fn download(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    let export = owned(&state, &principal, &raw).await?;
    if export.job.request_job_status != JobStatus::Finished || !export.output_format.is_downloadable() {
        return Err(AppError::InvalidString(
            "Error downloading files: The export is not done yet or has failed or not downloadable".into(),
        ));
    }
    if !export.available_for_download(state.settings.days_to_keep_exported_files, time::now()) {
        return Err(AppError::InvalidString(
            "Error downloading files: The exported files are no longer available on the server.".into(),
        ));
    }
    let path = export.file_path();
    let (bucket, key) = s3_location(&path).ok_or_else(|| AppError::internal("the export has no S3 location"))?;
    let disposition = format!("attachment; filename={}", export.download_name());
    let head = state.s3.head_object().bucket(bucket).key(key).send().await.map_err(|e| {
        AppError::internal(format!("Storage provider error: {:?}", e.as_service_error().map(|s| s.to_string())))
    })?;
    let size = head.content_length().unwrap_or_default();
    if size > STREAM_LIMIT_BYTES {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(PRESIGNED_TTL).map_err(AppError::internal)?;
        let presigned = state
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .response_content_disposition(&disposition)
            .response_content_type("application/zip")
            .presigned(config)
            .await
            .map_err(|e| {
                AppError::internal(format!("Storage provider error: {:?}", e.as_service_error().map(|s| s.to_string())))
            })?;
        return Ok((StatusCode::FOUND, [(header::LOCATION, presigned.uri().to_owned())]).into_response());
    }
    let object = state.s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        AppError::internal(format!("Storage provider error: {:?}", e.as_service_error().map(|s| s.to_string())))
    })?;
    let bytes = object.body.collect().await.map_err(AppError::internal)?.into_bytes();
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, bytes.len().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
