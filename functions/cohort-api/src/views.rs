//! The JSON shapes of the cohort app (spec §5.3–§5.10), rendered from the owner's workspace.
use std::collections::HashMap;

use c360::{
    config::Settings,
    domain::{
        cohort::{
            CohortResult, DatedMeasure, FeasibilityStudy, FhirFilter, Folder, MeasureMode, RefreshSchedule, Snapshot,
            Workspace,
        },
        summary::CohortSummary,
        time::{self, DateTime},
    },
    store::summaries::{CohortRow, RequestRow},
};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Display names of the users a page mentions (sharers, filter owners).
pub type Names = HashMap<String, String>;

/// A folder (spec §5.3).
#[derive(Serialize, ToSchema)]
pub struct FolderView {
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The requests it holds.
    pub requests_count: i64,
}

impl FolderView {
    pub fn of(f: &Folder, requests_count: i64) -> Self {
        Self {
            uuid: f.uuid,
            name: f.name.clone(),
            description: f.description.clone(),
            created_at: time::iso(f.stamps.created_at),
            requests_count,
        }
    }
}

/// A version line of a request row.
#[derive(Serialize, ToSchema)]
pub struct SnapshotLineView {
    pub uuid: Uuid,
    pub name: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub cohorts_count: usize,
    /// The newest count's measure, if any.
    pub patients_count: Option<i64>,
    pub version: i64,
}

/// A request's folder as its row shows it.
#[derive(Serialize, ToSchema)]
pub struct FolderLineView {
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
}

/// A request row (spec §5.4): its versions, their counts and cohorts come from its summary.
#[derive(Serialize, ToSchema)]
pub struct RequestView {
    pub uuid: Uuid,
    pub name: String,
    pub description: String,
    pub favorite: bool,
    /// Newest first; deleted versions are not listed.
    pub query_snapshots: Vec<SnapshotLineView>,
    /// The display name of the user who shared it with the caller.
    pub shared_by: Option<String>,
    pub parent_folder: Option<FolderLineView>,
    /// The newest version's creation; absent from the POST answer (spec §5.4 quirk).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Option<String>>,
}

impl RequestView {
    /// `with_updated_at` is false in the POST answer only.
    pub fn of(row: &RequestRow, names: &Names, with_updated_at: bool) -> Self {
        let r = &row.request;
        let query_snapshots = row
            .summary
            .listed()
            .into_iter()
            .map(|(uuid, s)| SnapshotLineView {
                uuid,
                name: s.line.name.clone(),
                created_at: time::iso(s.line.created_at),
                cohorts_count: s.cohorts.len(),
                patients_count: s.newest_count.as_ref().and_then(|c| c.measure),
                version: s.line.version,
            })
            .collect();
        Self {
            uuid: r.uuid,
            name: r.name.clone(),
            description: r.description.clone(),
            favorite: r.favorite,
            query_snapshots,
            shared_by: r.shared_by.as_ref().map(|u| names.get(u).cloned().unwrap_or_else(|| u.clone())),
            parent_folder: row.summary.folder.as_ref().map(|f| FolderLineView {
                uuid: r.parent_folder,
                name: f.name.clone(),
                description: f.description.clone(),
            }),
            updated_at: with_updated_at.then(|| row.summary.updated_at().map(time::python_str)),
        }
    }
}

pub fn dated_measure(settings: &Settings, m: &DatedMeasure, now: DateTime) -> Value {
    let outdated = now - m.stamps.created_at > ::time::Duration::hours(settings.last_count_validity_hours);
    json!({
        "uuid": m.uuid,
        "deleted": m.stamps.deleted.map(time::iso),
        "deleted_by_cascade": m.stamps.deleted_by_cascade,
        "created_at": time::iso(m.stamps.created_at),
        "modified_at": time::iso(m.stamps.modified_at),
        "request_job_id": m.job.request_job_id,
        "request_job_status": m.job.request_job_status.as_str(),
        "request_job_fail_msg": m.job.request_job_fail_msg,
        "request_job_duration": m.job.request_job_duration,
        "owner": m.owner,
        "request_query_snapshot": m.request_query_snapshot,
        "fhir_datetime": null,
        "measure": m.measure,
        "measure_min": m.measure_min,
        "measure_max": m.measure_max,
        "extra": m.extra,
        "count_task_id": m.count_task_id,
        "mode": match m.mode { MeasureMode::Snapshot => "Snapshot", MeasureMode::Global => "Global" },
        "count_outdated": outdated,
        "cohort_limit": settings.cohort_size_limit,
    })
}

/// A cohort from a workspace holding its request and parent.
pub fn cohort(settings: &Settings, ws: &Workspace, c: &CohortResult, annotated: bool) -> Value {
    let mut cohort = c.clone();
    cohort.request = c.request_query_snapshot.and_then(|s| ws.snapshot(s)).map(|s| s.request);
    let row = CohortRow { cohort, summary: CohortSummary::from_workspace(ws, c) };
    cohort_row(settings, &row, c.parent_cohort.and_then(|p| ws.cohort(p)), annotated)
}

/// A cohort row, with its parent when alive. `annotated` adds `result_size`, `measure_min`,
/// `measure_max` and `exportable`, which only lists and retrieves carry (spec §5.7).
pub fn cohort_row(settings: &Settings, row: &CohortRow, parent: Option<&CohortResult>, annotated: bool) -> Value {
    let c = &row.cohort;
    let samples: Vec<Value> = row
        .summary
        .listed_samples()
        .into_iter()
        .map(|(uuid, s)| json!({"uuid": uuid, "name": s.name, "sampling_ratio": s.sampling_ratio}))
        .collect();
    let mut value = json!({
        "uuid": c.uuid,
        "name": c.name,
        "owner": c.owner,
        "request_query_snapshot": c.request_query_snapshot,
        "parent_cohort": parent.filter(|p| Some(p.uuid) == c.parent_cohort).map(|p| json!({"uuid": p.uuid, "name": p.name})),
        "sampling_ratio": c.sampling_ratio,
        "sample_cohorts": samples,
        "group_id": c.group_id,
        "request_job_status": c.job.request_job_status.as_str(),
        "request_job_fail_msg": c.job.request_job_fail_msg,
        "request_job_duration": c.job.request_job_duration,
        "created_at": time::iso(c.stamps.created_at),
        "modified_at": time::iso(c.stamps.modified_at),
        "description": c.description,
        "favorite": c.favorite,
        "request": c.request.zip(row.summary.request.as_ref()).map(|(uuid, r)| json!({"uuid": uuid, "name": r.name, "description": r.description})),
    });
    if annotated {
        let result_size = row.summary.result_size;
        value["result_size"] = json!(result_size);
        value["measure_min"] = json!(row.summary.measure_min);
        value["measure_max"] = json!(row.summary.measure_max);
        value["exportable"] = json!(result_size.is_some_and(|s| s <= settings.cohort_size_limit));
    }
    value
}

pub fn snapshot(settings: &Settings, ws: &Workspace, s: &Snapshot, serialized_query: &str, now: DateTime) -> Value {
    let measures: Vec<Value> =
        ws.snapshot_measures(s.uuid).into_iter().map(|m| dated_measure(settings, m, now)).collect();
    let mut cohorts: Vec<&CohortResult> =
        ws.cohorts.iter().filter(|c| c.request_query_snapshot == Some(s.uuid)).collect();
    cohorts.sort_by_key(|c| c.stamps.created_at);
    json!({
        "uuid": s.uuid,
        "owner": s.owner,
        "name": s.name,
        "version": s.version,
        "created_at": time::iso(s.stamps.created_at),
        "modified_at": time::iso(s.stamps.modified_at),
        "request": s.request,
        "previous_snapshot": s.previous_snapshot,
        "serialized_query": serialized_query,
        "perimeters_ids": s.perimeters_ids,
        "dated_measures": measures,
        "cohort_results": cohorts.into_iter().map(|c| cohort(settings, ws, c, false)).collect::<Vec<_>>(),
    })
}

pub fn study(s: &FeasibilityStudy) -> Value {
    json!({
        "uuid": s.uuid,
        "owner": s.owner,
        "created_at": time::iso(s.stamps.created_at),
        "request_job_status": s.job.request_job_status.as_str(),
        "total_count": s.total_count,
        "request_query_snapshot": s.request_query_snapshot,
    })
}

pub fn filter(f: &FhirFilter, names: &Names) -> Value {
    json!({
        "uuid": f.uuid,
        "deleted": f.stamps.deleted.map(time::iso),
        "deleted_by_cascade": f.stamps.deleted_by_cascade,
        "created_at": time::iso(f.stamps.created_at),
        "modified_at": time::iso(f.stamps.modified_at),
        "fhir_resource": f.fhir_resource,
        "fhir_version": f.fhir_version,
        "query_version": f.query_version,
        "name": f.name,
        "filter": f.filter,
        "owner": names.get(&f.owner).cloned().unwrap_or_else(|| f.owner.clone()),
        "identifying": f.identifying,
        "auto_generated": f.auto_generated,
    })
}

pub fn schedule(s: &RefreshSchedule) -> Value {
    json!({
        "uuid": s.uuid,
        "deleted": s.stamps.deleted.map(time::iso),
        "deleted_by_cascade": s.stamps.deleted_by_cascade,
        "created_at": time::iso(s.stamps.created_at),
        "modified_at": time::iso(s.stamps.modified_at),
        "request_snapshot": s.request_snapshot,
        "owner": s.owner,
        "refresh_time": s.refresh_time,
        "refresh_frequency": s.refresh_frequency.as_str(),
        "last_refresh": s.last_refresh.map(time::iso),
        "last_refresh_succeeded": s.last_refresh_succeeded,
        "last_refresh_count": s.last_refresh_count,
        "last_refresh_error_msg": s.last_refresh_error_msg,
        "notify_owner": s.notify_owner,
    })
}
