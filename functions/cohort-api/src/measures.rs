//! `/cohort/dated-measures/` (spec §5.6): counts of a snapshot. Creating one queues its job; the
//! QueryExecutor reports back by PATCH, which only ever moves a job that has not ended.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode},
    Json, Router,
};
use c360::{
    clients::jobs::CohortJob,
    domain::{
        cohort::{python_duration, DatedMeasure, JobStatus, Kind, MeasureMode},
        time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{Doc, FormField, Mode, Paging, Pk, Schema},
        fields::Fields,
        listing::{sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::{cohort::Changes, keys, StoreError},
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{common::*, rows, views::DatedMeasureView};

/// `stageDetails`: passed on to the QueryExecutor when it is a string, ignored otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct StageDetails(Option<String>);

impl FormField for StageDetails {
    fn read(value: &Value) -> Result<Self, String> {
        Ok(Self(value.as_str().map(str::to_owned)))
    }

    fn schema() -> Schema {
        json!({"type": "string"})
    }
}

c360::form! {
    /// A count request (`*_id` aliases are read as the relation).
    pub struct CountForm {
        /// The caller's username, if sent.
        optional owner: OwnerRef,
        /// One of the caller's versions.
        required request_query_snapshot: Pk,
        /// The QueryExecutor's detail level for this count (the app's "stage details").
        optional stage_details as "stageDetails": StageDetails,
    }
}

/// The QueryExecutor's callback (spec §5.6), read by hand: an unknown status fails the count first.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `patch`
struct CountCallback {
    /// A QueryExecutor status (`FINISHED`, `FAILED`, `PENDING`…).
    request_job_status: String,
    /// The count (an integer, or its text).
    count: Option<i64>,
    /// A global count's range.
    minimum: Option<i64>,
    maximum: Option<i64>,
    #[schema(value_type = Object)]
    extra: Option<Value>,
    /// The failure's message.
    message: Option<String>,
}

const ORDERING: [&str; 2] = ["created_at", "modified_at"];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "cohort")
        .method_policy(MethodPolicy::NotAllowedIf(method_allowed_for))
        .route(Method::GET, "/cohort/dated-measures/", Exposure::Authenticated, "List counts (LIMIT)", list)
        .doc(
            Doc::new()
                .paged::<DatedMeasureView>(Paging::Limit)
                .ordering(&ORDERING)
                .param("request_query_snapshot", "Of this version.", json!({"type": "string", "format": "uuid"}))
                .param("request_job_status", "Comma-separated statuses.", json!({"type": "string"})),
        )
        .audited(
            Method::POST,
            "/cohort/dated-measures/",
            Exposure::Authenticated,
            "Count the patients of a snapshot (queues the job)",
            "dated_measures.create",
            create,
        )
        .doc(
            Doc::new()
                .form::<CountForm>(Mode::Create)
                .reply::<DatedMeasureView>(201, "The count; its job is queued.")
                .error(404, "The version is not the caller's."),
        )
        .route(Method::GET, "/cohort/dated-measures/{uuid}/", Exposure::Authenticated, "Get a count", retrieve)
        .doc(Doc::new().reply::<DatedMeasureView>(200, "The count."))
        .audited(
            Method::PATCH,
            "/cohort/dated-measures/{uuid}/",
            Exposure::Authenticated,
            "QueryExecutor callback: status and result of a count",
            "dated_measures.partial_update",
            patch,
        )
        .doc(
            Doc::new()
                .body::<CountCallback>()
                .reply::<DatedMeasureView>(200, "The count (unchanged when its job had ended).")
                .error(400, "An unknown status (a bare message: the count fails) or a count that is no integer."),
        )
        .build()
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<DatedMeasureView>>> {
    let mut measures: Vec<DatedMeasure> = if is_applicative(&principal) {
        state.store.objects_of_everyone().await?
    } else {
        load(&state, owner(&principal), &[Kind::DatedMeasure]).await?.measures
    };
    measures.retain(|m| {
        query.get("request_query_snapshot").is_none_or(|s| m.request_query_snapshot.to_string() == s)
            && matches_any(&query, "request_job_status", m.job.request_job_status.as_str())
    });
    let orders = query.ordering("ordering", &ORDERING)?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    sort_by(&mut measures, &orders, |m, field| match field {
        "modified_at" => SortValue::Text(time::iso(m.stamps.modified_at)),
        _ => SortValue::Text(time::iso(m.stamps.created_at)),
    });
    let now = time::now();
    Ok(Json(query.limited_of(measures).map(|m| DatedMeasureView::of(&state.settings, &m, now))))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<DatedMeasureView>)> {
    refuse_applicative(&principal)?;
    let owner = owner(&principal);
    apply_id_aliases(&mut body, &["request_query_snapshot", "owner"]);
    let named = body.get("request_query_snapshot").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s.trim()).ok());
    // The snapshot alone: never the counts and cohorts it has accumulated.
    let visible = rows::visible_snapshot(&state, owner, named).await?.map(|(snapshot, _)| snapshot);
    let mut fields = Fields::new(&body);
    let form: CountForm = fields.form(Mode::Create);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    let snapshot = form.request_query_snapshot.as_ref().and_then(|pk| {
        pk.check(&mut fields, "request_query_snapshot", |u| visible.as_ref().is_some_and(|s| s.uuid == u))
    });
    fields.finish()?;
    let stage_details = form.stage_details.and_then(|s| s.0);
    let snapshot = snapshot.and(visible).ok_or(AppError::NotFound(Kind::Snapshot.model()))?;
    let measure = DatedMeasure::new(owner, snapshot.uuid, snapshot.request, MeasureMode::Snapshot, time::now());
    let job = CohortJob::Count { owner: owner.to_owned(), dated_measure: measure.uuid, stage_details };
    let key = keys::workspace_object(Kind::DatedMeasure, owner, measure.uuid);
    if !create_and_queue(&state, &headers, state.store.new_count_writes(&measure)?, vec![key], vec![job]).await? {
        // Its request went to the bin meanwhile.
        let pk = snapshot.uuid;
        return Err(AppError::field("request_query_snapshot", format!("Invalid pk \"{pk}\" - object does not exist.")));
    }
    Ok((StatusCode::CREATED, Json(DatedMeasureView::of(&state.settings, &measure, time::now()))))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<DatedMeasureView>> {
    let measure: DatedMeasure = visible(&state, &principal, path_uuid(&uuid, Kind::DatedMeasure)?).await?;
    Ok(Json(DatedMeasureView::of(&state.settings, &measure, time::now())))
}

/// The QueryExecutor callback (spec §5.6): `{"request_job_status", "count"?, "minimum"?, "maximum"?,
/// "extra"?, "message"?}`. A job that has ended keeps its state: a late or duplicated callback is
/// answered with the stored count, unchanged.
async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(body): Body,
) -> AppResult<Json<DatedMeasureView>> {
    let measure: DatedMeasure = visible(&state, &principal, path_uuid(&uuid, Kind::DatedMeasure)?).await?;
    let now = time::now();
    let mut changes = Changes::modified(now);
    changes.while_status(&JobStatus::not_final());
    let status = match callback_status(&body) {
        Ok(status) => status,
        Err(message) => {
            changes
                .job_status(Kind::DatedMeasure, measure.uuid, JobStatus::Failed)?
                .set("request_job_fail_msg", &message)?;
            let failed = apply(&state, &measure, changes).await?;
            state.job_news().count(&failed, now).await?;
            return Err(AppError::InvalidString(message));
        }
    };
    let mut fields = Fields::new(&body);
    let count = callback_number(&mut fields, &body, "count");
    let minimum = callback_number(&mut fields, &body, "minimum");
    let maximum = callback_number(&mut fields, &body, "maximum");
    fields.finish()?;
    changes.job_status(Kind::DatedMeasure, measure.uuid, status)?;
    changes.set("request_job_duration", &python_duration(now - measure.stamps.created_at))?;
    let updated = match status {
        JobStatus::Finished => {
            changes.set("measure", &count)?.set("extra", &body.get("extra"))?;
            if measure.mode == MeasureMode::Global {
                changes.set("measure_min", &minimum)?.set("measure_max", &maximum)?;
            }
            // The value goes to the rows that show it, in the same transaction.
            match state.store.record_count(&measure, changes).await {
                Err(StoreError::ConditionFailed) => ignored(&state, &measure).await?,
                other => other?,
            }
        }
        JobStatus::Failed => {
            let message = body.get("message").and_then(Value::as_str).unwrap_or_default();
            changes.set("request_job_fail_msg", &message)?;
            apply(&state, &measure, changes).await?
        }
        _ => apply(&state, &measure, changes).await?,
    };
    state.job_news().count(&updated, now).await?;
    Ok(Json(DatedMeasureView::of(&state.settings, &updated, now)))
}

/// Applies a callback's changes unless the job has ended meanwhile; returns the stored count.
async fn apply(state: &AppState, measure: &DatedMeasure, changes: Changes) -> AppResult<DatedMeasure> {
    match state.store.update_object::<DatedMeasure>(&measure.owner, measure.uuid, changes).await {
        Ok(updated) => Ok(updated),
        Err(StoreError::ConditionFailed) => ignored(state, measure).await,
        Err(other) => Err(other.into()),
    }
}

/// The stored count, when a callback came after its job ended.
async fn ignored(state: &AppState, measure: &DatedMeasure) -> AppResult<DatedMeasure> {
    let current = state.store.workspace_object::<DatedMeasure>(&measure.owner, measure.uuid).await?;
    let current = current.ok_or(AppError::NotFound(Kind::DatedMeasure.model()))?;
    tracing::info!(
        dated_measure = %measure.uuid,
        status = current.job.request_job_status.as_str(),
        "callback ignored: the count has already ended"
    );
    Ok(current)
}
