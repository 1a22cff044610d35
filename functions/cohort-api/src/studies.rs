//! `/cohort/feasibility-studies/` (spec §5.8): count-by-perimeter reports of a snapshot. Creating one
//! queues its job; the QueryExecutor reports back by PATCH.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    clients::jobs::CohortJob,
    domain::{
        cohort::{FeasibilityStudy, Job, JobStatus, Kind, ReportFiles, Stamps, STUDY_DISPLAY_FLAGS},
        feasibility, time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{Doc, Mode, Paging, Pk},
        fields::Fields,
        listing::{sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    services::job_news::studied_request,
    services::notify::ReportNews,
    store::{
        cohort::{put_object, Changes},
        keys, Condition, StoreError,
    },
};
use serde_json::Value;
use uuid::Uuid;

use crate::{common::*, views::StudyView};

c360::form! {
    /// A feasibility study request (`*_id` aliases are read as the relation); the display flags
    /// are stored for the report.
    pub struct StudyForm {
        /// The caller's username, if sent.
        optional owner: OwnerRef,
        /// One of the caller's versions.
        required request_query_snapshot: Pk,
        optional display_eligibility_criteria: bool,
        optional display_total_count: bool,
        optional display_count_by_ghu: bool,
        optional display_count_by_hospital: bool,
        optional display_count_by_uf: bool,
        optional display_visit_dates: bool,
        optional display_demographic_info: bool,
        optional display_repartition_graphs: bool,
        optional display_visit_graph: bool,
        optional display_demographic_graph: bool,
    }
}

impl StudyForm {
    /// The flags set, by name (the order of `STUDY_DISPLAY_FLAGS`).
    fn display(&self) -> Vec<String> {
        let flags = [
            self.display_eligibility_criteria,
            self.display_total_count,
            self.display_count_by_ghu,
            self.display_count_by_hospital,
            self.display_count_by_uf,
            self.display_visit_dates,
            self.display_demographic_info,
            self.display_repartition_graphs,
            self.display_visit_graph,
            self.display_demographic_graph,
        ];
        STUDY_DISPLAY_FLAGS
            .iter()
            .zip(flags)
            .filter(|(_, set)| *set == Some(true))
            .map(|(f, _)| (*f).to_owned())
            .collect()
    }
}

/// The QueryExecutor's callback (spec §5.8), read by hand: an unknown status fails the study first.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the body read in `patch`
struct StudyCallback {
    /// A QueryExecutor status (`FINISHED`, `FAILED`, `PENDING`…).
    request_job_status: String,
    /// The total count (an integer, or its text).
    count: Option<i64>,
    /// Counts by perimeter cohort id, required with `FINISHED`.
    #[schema(value_type = Object)]
    extra: Option<Value>,
    message: Option<String>,
}

const ORDERING: [&str; 2] = ["created_at", "modified_at"];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/cohort/feasibility-studies/";
    const ONE: &str = "/cohort/feasibility-studies/{uuid}/";
    Api::new(state, "cohort")
        .method_policy(MethodPolicy::NotAllowedIf(method_allowed_for))
        .route(Method::GET, ROOT, Exposure::Authenticated, "List feasibility studies (LIMIT)", list)
        .doc(Doc::new().paged::<StudyView>(Paging::Limit).ordering(&ORDERING))
        .audited(
            Method::POST,
            ROOT,
            Exposure::Authenticated,
            "Request a feasibility report on a snapshot (queues the job)",
            "feasibility_studies.create",
            create,
        )
        .doc(Doc::new().form::<StudyForm>(Mode::Create).reply::<StudyView>(201, "The study; its job is queued."))
        .route(Method::GET, ONE, Exposure::Authenticated, "Get a feasibility study", retrieve)
        .doc(Doc::new().reply::<StudyView>(200, "The study."))
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "QueryExecutor callback: counts by perimeter",
            "feasibility_studies.partial_update",
            patch,
        )
        .doc(
            Doc::new()
                .body::<StudyCallback>()
                .reply::<StudyView>(200, "The study (unchanged when its job had ended).")
                .error(400, "An unknown status or a missing `extra` (a bare message): the study fails."),
        )
        .route(
            Method::GET,
            "/cohort/feasibility-studies/{uuid}/download/",
            Exposure::Authenticated,
            "Download the zipped report",
            download,
        )
        .doc(Doc::new().file(200, "application/zip", "The report: an HTML page and a JSON document, zipped."))
        .build()
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<StudyView>>> {
    let mut studies: Vec<FeasibilityStudy> = if is_applicative(&principal) {
        state.store.objects_of_everyone().await?
    } else {
        load(&state, owner(&principal), &[Kind::Study]).await?.studies
    };
    let orders = query.ordering("ordering", &ORDERING)?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    sort_by(&mut studies, &orders, |s, field| match field {
        "modified_at" => SortValue::Text(time::iso(s.stamps.modified_at)),
        _ => SortValue::Text(time::iso(s.stamps.created_at)),
    });
    Ok(Json(query.limited_of(studies).map(|s| StudyView::of(&s))))
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<StudyView>)> {
    refuse_applicative(&principal)?;
    let owner = owner(&principal);
    apply_id_aliases(&mut body, &["request_query_snapshot", "owner"]);
    let ws = load(&state, owner, &[Kind::Snapshot, Kind::Cohort]).await?;
    let mut fields = Fields::new(&body);
    let form: StudyForm = fields.form(Mode::Create);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    // The original does not check whose snapshot it is; only the caller's are accepted here.
    let snapshot = form.request_query_snapshot.as_ref().and_then(|pk| {
        pk.check(&mut fields, "request_query_snapshot", |u| ws.snapshot(u).is_some() && !ws.hidden_snapshot(u))
    });
    fields.finish()?;
    let display = form.display();
    let study = FeasibilityStudy {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        request_query_snapshot: snapshot.ok_or(AppError::NotFound(Kind::Snapshot.model()))?,
        total_count: None,
        display,
        report: None,
        job: Job::new(),
        stamps: Stamps::new(time::now()),
    };
    let job = CohortJob::Feasibility { owner: owner.to_owned(), study: study.uuid };
    let key = keys::workspace_object(Kind::Study, owner, study.uuid);
    let writes = vec![put_object(&study, Condition::MustNotExist)?];
    if !create_and_queue(&state, &headers, writes, vec![key], vec![job]).await? {
        return Err(AppError::internal("a new study's uuid was taken"));
    }
    Ok((StatusCode::CREATED, Json(StudyView::of(&study))))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<StudyView>> {
    let study: FeasibilityStudy = visible(&state, &principal, path_uuid(&uuid, Kind::Study)?).await?;
    Ok(Json(StudyView::of(&study)))
}

/// The QueryExecutor callback (spec §5.8): `{"request_job_status", "count"?, "extra"?: {cohort_id:
/// count}, "message"?}`. Only a study whose job has not ended moves. A finished study gets its report
/// (zipped HTML and JSON in the exports bucket) and its owner the "report ready" e-mail; a failed or
/// refused one, the "report failed" e-mail.
async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(body): Body,
) -> AppResult<Json<StudyView>> {
    let study: FeasibilityStudy = visible(&state, &principal, path_uuid(&uuid, Kind::Study)?).await?;
    let status = match callback_status(&body) {
        Ok(status) => status,
        Err(message) => {
            state.job_news().study(&study, ReportNews::Failed).await?;
            return Err(AppError::InvalidString(message));
        }
    };
    let mut fields = Fields::new(&body);
    let count = callback_number(&mut fields, &body, "count");
    fields.finish()?;
    let now = time::now();
    let mut changes = Changes::modified(now);
    changes.while_status(&JobStatus::not_final());
    changes.job_status(Kind::Study, study.uuid, status)?;
    if status == JobStatus::Finished {
        let Some(extra) = body.get("extra").and_then(Value::as_object).filter(|extra| !extra.is_empty()) else {
            state.job_news().study(&study, ReportNews::Failed).await?;
            return Err(AppError::InvalidString("Bad Request: Payload missing `extra` key".into()));
        };
        let files = save_report(&state, &study, extra)
            .await
            .map_err(|e| AppError::InvalidString(format!("Error saving feasibility report - {e}")))?;
        changes.set("total_count", &count)?.set("report", &files)?;
    }
    let updated = match state.store.update_object::<FeasibilityStudy>(&study.owner, study.uuid, changes).await {
        Ok(updated) => {
            match status {
                JobStatus::Finished => state.job_news().study(&updated, ReportNews::Ready(updated.uuid)).await?,
                JobStatus::Failed => state.job_news().study(&updated, ReportNews::Failed).await?,
                _ => {}
            }
            updated
        }
        Err(StoreError::ConditionFailed) => {
            tracing::info!(study = %study.uuid, "callback ignored: the study has already ended");
            visible(&state, &principal, study.uuid).await?
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Json(StudyView::of(&updated)))
}

/// Buckets the counts over the tree (spec §5.8) and stores the zipped HTML page and JSON document.
async fn save_report(
    state: &AppState,
    study: &FeasibilityStudy,
    extra: &serde_json::Map<String, Value>,
) -> Result<ReportFiles, String> {
    let bucket = state.settings.exports_bucket.clone().ok_or("EXPORTS_BUCKET is not configured")?;
    let tree = state.perimeter_tree().await.map_err(|e| e.to_string())?;
    let (request, snapshot) = studied_request(&state.store, study)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the studied request or snapshot is gone")?;
    let name = request.name;
    let (json, html) = feasibility::report(&tree, extra, &state.settings.reporting_perimeter_types);
    let file_name = feasibility::file_name(study.stamps.created_at, &name);
    let frontend = state.settings.frontend_url.trim_end_matches('/');
    let page = feasibility::page(
        &name,
        snapshot.version,
        &time::french_datetime(study.stamps.created_at),
        &format!("{frontend}/cohort/new/{}", request.uuid),
        &html,
    );
    let json = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
    let files = ReportFiles {
        html_key: format!("feasibility/{}/{file_name}.zip", study.uuid),
        json_key: format!("feasibility/{}/{file_name}.json.zip", study.uuid),
        file_name: file_name.clone(),
    };
    for (key, entry, content) in [
        (&files.html_key, format!("{file_name}.html"), page.into_bytes()),
        (&files.json_key, format!("{file_name}.json"), json),
    ] {
        let zipped = feasibility::zip_one(&entry, &content);
        state
            .s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .content_type("application/zip")
            .body(zipped.into())
            .send()
            .await
            .map_err(|e| format!("{:?}", e.as_service_error().map(|s| s.to_string())))?;
    }
    Ok(files)
}

/// The zipped HTML report once the counts came back; before that 404 "Report not found" (spec §5.8).
async fn download(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Response> {
    let study: FeasibilityStudy = visible(&state, &principal, path_uuid(&uuid, Kind::Study)?).await?;
    let not_found = || AppError::NotFoundString("Report not found".into());
    let (Some(files), Some(bucket)) = (study.report, state.settings.exports_bucket.as_deref()) else {
        return Err(not_found());
    };
    let object = state.s3.get_object().bucket(bucket).key(&files.html_key).send().await.map_err(|e| {
        if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
            not_found()
        } else {
            AppError::internal(format!("report download: {:?}", e.as_service_error().map(|s| s.to_string())))
        }
    })?;
    let bytes = object.body.collect().await.map_err(AppError::internal)?.into_bytes();
    let disposition = feasibility::attachment(&format!("{}.zip", files.file_name));
    Ok(([(header::CONTENT_TYPE, "application/zip".to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use c360::http::contract::Form;

    use super::*;

    #[test]
    fn the_form_lists_every_display_flag() {
        let schema = StudyForm::schema(Mode::Create);
        let flags: BTreeSet<&str> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("display_"))
            .collect();
        assert_eq!(flags, BTreeSet::from(STUDY_DISPLAY_FLAGS));
        let body: serde_json::Map<String, Value> =
            STUDY_DISPLAY_FLAGS.iter().map(|f| ((*f).to_owned(), Value::Bool(true))).collect();
        let form: StudyForm = Fields::new(&body).form(Mode::Update);
        assert_eq!(form.display(), STUDY_DISPLAY_FLAGS.map(str::to_owned));
    }
}
