//! `/cohort/feasibility-studies/` (spec §5.8): count-by-perimeter reports of a snapshot. Creating one
//! queues its job; the QueryExecutor reports back by PATCH.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        cohort::{FeasibilityStudy, Job, JobStatus, Kind, Stamps, STUDY_DISPLAY_FLAGS},
        time,
    },
    error::{AppError, AppResult},
    http::{
        fields::Fields,
        listing::{sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    jobs::CohortJob,
    store::{
        cohort::{put_object, Changes},
        keys, Condition, StoreError,
    },
};
use serde_json::Value;
use uuid::Uuid;

use crate::{common::*, views};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/cohort/feasibility-studies/";
    const ONE: &str = "/cohort/feasibility-studies/{uuid}/";
    Api::new(state, "cohort")
        .method_policy(MethodPolicy::NotAllowedIf(method_allowed_for))
        .route(Method::GET, ROOT, Exposure::Authenticated, "List feasibility studies (LIMIT)", list)
        .audited(
            Method::POST,
            ROOT,
            Exposure::Authenticated,
            "Request a feasibility report on a snapshot (queues the job)",
            "feasibility_studies.create",
            create,
        )
        .route(Method::GET, ONE, Exposure::Authenticated, "Get a feasibility study", retrieve)
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "QueryExecutor callback: counts by perimeter",
            "feasibility_studies.partial_update",
            patch,
        )
        .route(
            Method::GET,
            "/cohort/feasibility-studies/{uuid}/download/",
            Exposure::Authenticated,
            "Download the zipped report",
            download,
        )
        .build()
}

async fn list(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let mut studies: Vec<FeasibilityStudy> = if is_applicative(&principal) {
        state.store.objects_of_everyone().await?
    } else {
        load(&state, owner(&principal), &[Kind::Study]).await?.studies
    };
    let orders = query.ordering("ordering", &["created_at", "modified_at"])?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    sort_by(&mut studies, &orders, |s, field| match field {
        "modified_at" => SortValue::Text(time::iso(s.stamps.modified_at)),
        _ => SortValue::Text(time::iso(s.stamps.created_at)),
    });
    Ok(Json(query.limited_of(studies).envelope(|s| views::study(&s))))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<Value>)> {
    refuse_applicative(&principal)?;
    let owner = owner(&principal);
    apply_id_aliases(&mut body, &["request_query_snapshot", "owner"]);
    let ws = load(&state, owner, &[Kind::Snapshot, Kind::Cohort]).await?;
    let mut fields = Fields::new(&body);
    check_owner(&mut fields, owner);
    // The original does not check whose snapshot it is; only the caller's are accepted here.
    let snapshot =
        fields.required_relation("request_query_snapshot", |u| ws.snapshot(u).is_some() && !ws.hidden_snapshot(u));
    let display: Vec<String> = STUDY_DISPLAY_FLAGS
        .iter()
        .filter(|flag| fields.boolean(flag).unwrap_or(false))
        .map(|flag| (*flag).to_owned())
        .collect();
    fields.finish()?;
    let study = FeasibilityStudy {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        request_query_snapshot: snapshot.ok_or(AppError::NotFound(Kind::Snapshot.model()))?,
        total_count: None,
        display,
        job: Job::new(),
        stamps: Stamps::new(time::now()),
    };
    state.store.transact(vec![put_object(&study, Condition::MustNotExist)?]).await?;
    if let Err(err) = queue(&state, CohortJob::Feasibility { owner: owner.to_owned(), study: study.uuid }).await {
        let key = keys::workspace_object(Kind::Study, owner, study.uuid);
        state.store.delete(&key, Condition::None).await.ok();
        return Err(err);
    }
    Ok((StatusCode::CREATED, Json(views::study(&study))))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<Value>> {
    let study: FeasibilityStudy = visible(&state, &principal, path_uuid(&uuid, Kind::Study)?).await?;
    Ok(Json(views::study(&study)))
}

/// The QueryExecutor callback (spec §5.8): `{"request_job_status", "count"?, "extra"?: {cohort_id:
/// count}, "message"?}`. Only a study whose job has not ended moves.
async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    let study: FeasibilityStudy = visible(&state, &principal, path_uuid(&uuid, Kind::Study)?).await?;
    let status = callback_status(&body).map_err(AppError::InvalidString)?;
    let mut fields = Fields::new(&body);
    let count = callback_number(&mut fields, &body, "count");
    fields.finish()?;
    let mut changes = Changes::modified(time::now());
    changes.while_status(&JobStatus::not_final());
    changes.job_status(Kind::Study, study.uuid, status)?;
    if status == JobStatus::Finished {
        if body.get("extra").and_then(Value::as_object).is_none_or(|extra| extra.is_empty()) {
            return Err(AppError::InvalidString("Bad Request: Payload missing `extra` key".into()));
        }
        changes.set("total_count", &count)?;
    }
    let updated = match state.store.update_object::<FeasibilityStudy>(&study.owner, study.uuid, changes).await {
        Ok(updated) => updated,
        Err(StoreError::ConditionFailed) => {
            tracing::info!(study = %study.uuid, "callback ignored: the study has already ended");
            visible(&state, &principal, study.uuid).await?
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Json(views::study(&updated)))
}

/// The zipped HTML report. Reports are generated when the QueryExecutor's counts come back (the
/// cohort jobs issue); until a study has one the answer is 404 "Report not found" (spec §5.8).
async fn download(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<Value>> {
    let _: FeasibilityStudy = visible(&state, &principal, path_uuid(&uuid, Kind::Study)?).await?;
    Err(AppError::NotFoundString("Report not found".into()))
}
