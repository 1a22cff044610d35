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
        fields::Fields,
        listing::{sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::{cohort::Changes, keys, StoreError},
};
use serde_json::Value;
use uuid::Uuid;

use crate::{common::*, rows, views::DatedMeasureView};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "cohort")
        .method_policy(MethodPolicy::NotAllowedIf(method_allowed_for))
        .route(Method::GET, "/cohort/dated-measures/", Exposure::Authenticated, "List counts (LIMIT)", list)
        .audited(
            Method::POST,
            "/cohort/dated-measures/",
            Exposure::Authenticated,
            "Count the patients of a snapshot (queues the job)",
            "dated_measures.create",
            create,
        )
        .route(Method::GET, "/cohort/dated-measures/{uuid}/", Exposure::Authenticated, "Get a count", retrieve)
        .audited(
            Method::PATCH,
            "/cohort/dated-measures/{uuid}/",
            Exposure::Authenticated,
            "QueryExecutor callback: status and result of a count",
            "dated_measures.partial_update",
            patch,
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
    let orders = query.ordering("ordering", &["created_at", "modified_at"])?;
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
    check_owner(&mut fields, owner);
    let snapshot =
        fields.required_relation("request_query_snapshot", |u| visible.as_ref().is_some_and(|s| s.uuid == u));
    let stage_details = match body.get("stageDetails") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    fields.finish()?;
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
