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
    http::views::FilterView,
    store::summaries::{CohortRow, RequestRow},
};
use serde::Serialize;
use serde_json::Value;
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

/// A count (spec §5.6).
#[derive(Serialize, ToSchema)]
pub struct DatedMeasureView {
    pub uuid: Uuid,
    #[schema(format = DateTime)]
    pub deleted: Option<String>,
    pub deleted_by_cascade: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    pub request_job_id: String,
    /// `new`, `pending`, `long_pending`, `started`, `finished`, `failed`, `cancelled`…
    pub request_job_status: &'static str,
    pub request_job_fail_msg: String,
    pub request_job_duration: String,
    pub owner: String,
    pub request_query_snapshot: Uuid,
    /// Always null (the original's field, never set).
    #[schema(value_type = Option<String>)]
    pub fhir_datetime: Option<()>,
    pub measure: Option<i64>,
    pub measure_min: Option<i64>,
    pub measure_max: Option<i64>,
    /// The QueryExecutor's details per perimeter, when it sent some.
    #[schema(value_type = Option<Object>)]
    pub extra: Option<Value>,
    pub count_task_id: String,
    /// `Snapshot` or `Global`.
    pub mode: &'static str,
    /// Older than `LAST_COUNT_VALIDITY` hours.
    pub count_outdated: bool,
    /// The largest cohort that may be built or exported (`COHORT_SIZE_LIMIT`).
    pub cohort_limit: i64,
}

impl DatedMeasureView {
    pub fn of(settings: &Settings, m: &DatedMeasure, now: DateTime) -> Self {
        Self {
            uuid: m.uuid,
            deleted: m.stamps.deleted.map(time::iso),
            deleted_by_cascade: m.stamps.deleted_by_cascade,
            created_at: time::iso(m.stamps.created_at),
            modified_at: time::iso(m.stamps.modified_at),
            request_job_id: m.job.request_job_id.clone(),
            request_job_status: m.job.request_job_status.as_str(),
            request_job_fail_msg: m.job.request_job_fail_msg.clone(),
            request_job_duration: m.job.request_job_duration.clone(),
            owner: m.owner.clone(),
            request_query_snapshot: m.request_query_snapshot,
            fhir_datetime: None,
            measure: m.measure,
            measure_min: m.measure_min,
            measure_max: m.measure_max,
            extra: m.extra.clone(),
            count_task_id: m.count_task_id.clone(),
            mode: match m.mode {
                MeasureMode::Snapshot => "Snapshot",
                MeasureMode::Global => "Global",
            },
            count_outdated: now - m.stamps.created_at > ::time::Duration::hours(settings.last_count_validity_hours),
            cohort_limit: settings.cohort_size_limit,
        }
    }
}

/// A cohort named by another (its parent).
#[derive(Serialize, ToSchema)]
pub struct CohortRef {
    pub uuid: Uuid,
    pub name: Option<String>,
}

/// A sample drawn from a cohort.
#[derive(Serialize, ToSchema)]
pub struct SampleView {
    pub uuid: Uuid,
    pub name: Option<String>,
    pub sampling_ratio: Option<f64>,
}

/// The request a cohort was built from.
#[derive(Serialize, ToSchema)]
pub struct RequestRef {
    pub uuid: Uuid,
    pub name: String,
    pub description: String,
}

/// A cohort (spec §5.7). Lists and retrieves add `result_size`, `measure_min`, `measure_max` and
/// `exportable`; the other answers leave them out.
#[derive(Serialize, ToSchema)]
pub struct CohortView {
    pub uuid: Uuid,
    pub name: Option<String>,
    pub owner: String,
    pub request_query_snapshot: Option<Uuid>,
    /// Its parent, for a sample whose parent is alive.
    pub parent_cohort: Option<CohortRef>,
    pub sampling_ratio: Option<f64>,
    pub sample_cohorts: Vec<SampleView>,
    pub group_id: String,
    pub request_job_status: &'static str,
    pub request_job_fail_msg: String,
    pub request_job_duration: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    pub description: Option<String>,
    pub favorite: bool,
    pub request: Option<RequestRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub result_size: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub measure_min: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub measure_max: Option<Option<i64>>,
    /// Its size is known and within `COHORT_SIZE_LIMIT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exportable: Option<bool>,
}

impl CohortView {
    /// A cohort from a workspace holding its request and parent.
    pub fn of(settings: &Settings, ws: &Workspace, c: &CohortResult, annotated: bool) -> Self {
        let mut cohort = c.clone();
        cohort.request = c.request_query_snapshot.and_then(|s| ws.snapshot(s)).map(|s| s.request);
        let row = CohortRow { cohort, summary: CohortSummary::from_workspace(ws, c) };
        Self::of_row(settings, &row, c.parent_cohort.and_then(|p| ws.cohort(p)), annotated)
    }

    /// A cohort row, with its parent when alive; `annotated` for lists and retrieves.
    pub fn of_row(settings: &Settings, row: &CohortRow, parent: Option<&CohortResult>, annotated: bool) -> Self {
        let c = &row.cohort;
        let sample_cohorts = row
            .summary
            .listed_samples()
            .into_iter()
            .map(|(uuid, s)| SampleView { uuid, name: s.name.clone(), sampling_ratio: s.sampling_ratio })
            .collect();
        let result_size = row.summary.result_size;
        Self {
            uuid: c.uuid,
            name: c.name.clone(),
            owner: c.owner.clone(),
            request_query_snapshot: c.request_query_snapshot,
            parent_cohort: parent
                .filter(|p| Some(p.uuid) == c.parent_cohort)
                .map(|p| CohortRef { uuid: p.uuid, name: p.name.clone() }),
            sampling_ratio: c.sampling_ratio,
            sample_cohorts,
            group_id: c.group_id.clone(),
            request_job_status: c.job.request_job_status.as_str(),
            request_job_fail_msg: c.job.request_job_fail_msg.clone(),
            request_job_duration: c.job.request_job_duration.clone(),
            created_at: time::iso(c.stamps.created_at),
            modified_at: time::iso(c.stamps.modified_at),
            description: c.description.clone(),
            favorite: c.favorite,
            request: c.request.zip(row.summary.request.as_ref()).map(|(uuid, r)| RequestRef {
                uuid,
                name: r.name.clone(),
                description: r.description.clone(),
            }),
            result_size: annotated.then_some(result_size),
            measure_min: annotated.then_some(row.summary.measure_min),
            measure_max: annotated.then_some(row.summary.measure_max),
            exportable: annotated.then(|| result_size.is_some_and(|s| s <= settings.cohort_size_limit)),
        }
    }
}

/// A version of a request's query (spec §5.5), with its counts and cohorts.
#[derive(Serialize, ToSchema)]
pub struct SnapshotView {
    pub uuid: Uuid,
    pub owner: String,
    pub name: Option<String>,
    pub version: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    pub request: Uuid,
    pub previous_snapshot: Option<Uuid>,
    /// The query as the Cohort360 app wrote it (a JSON document in a string).
    pub serialized_query: String,
    pub perimeters_ids: Option<Vec<String>>,
    pub dated_measures: Vec<DatedMeasureView>,
    pub cohort_results: Vec<CohortView>,
}

impl SnapshotView {
    pub fn of(settings: &Settings, ws: &Workspace, s: &Snapshot, serialized_query: &str, now: DateTime) -> Self {
        let dated_measures =
            ws.snapshot_measures(s.uuid).into_iter().map(|m| DatedMeasureView::of(settings, m, now)).collect();
        let mut cohorts: Vec<&CohortResult> =
            ws.cohorts.iter().filter(|c| c.request_query_snapshot == Some(s.uuid)).collect();
        cohorts.sort_by_key(|c| c.stamps.created_at);
        Self {
            uuid: s.uuid,
            owner: s.owner.clone(),
            name: s.name.clone(),
            version: s.version,
            created_at: time::iso(s.stamps.created_at),
            modified_at: time::iso(s.stamps.modified_at),
            request: s.request,
            previous_snapshot: s.previous_snapshot,
            serialized_query: serialized_query.to_owned(),
            perimeters_ids: s.perimeters_ids.clone(),
            dated_measures,
            cohort_results: cohorts.into_iter().map(|c| CohortView::of(settings, ws, c, false)).collect(),
        }
    }
}

/// A feasibility study (spec §5.9).
#[derive(Serialize, ToSchema)]
pub struct StudyView {
    pub uuid: Uuid,
    pub owner: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub request_job_status: &'static str,
    pub total_count: Option<i64>,
    pub request_query_snapshot: Uuid,
}

impl StudyView {
    pub fn of(s: &FeasibilityStudy) -> Self {
        Self {
            uuid: s.uuid,
            owner: s.owner.clone(),
            created_at: time::iso(s.stamps.created_at),
            request_job_status: s.job.request_job_status.as_str(),
            total_count: s.total_count,
            request_query_snapshot: s.request_query_snapshot,
        }
    }
}

/// A saved filter, its owner shown by display name (the cohort app's lists are the caller's own).
pub fn filter(f: &FhirFilter, names: &Names) -> FilterView {
    FilterView::of(f, names.get(&f.owner).cloned().unwrap_or_else(|| f.owner.clone()))
}

/// A count refresh schedule (spec §5.10).
#[derive(Serialize, ToSchema)]
pub struct ScheduleView {
    pub uuid: Uuid,
    #[schema(format = DateTime)]
    pub deleted: Option<String>,
    pub deleted_by_cascade: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    pub request_snapshot: Uuid,
    pub owner: String,
    /// `HH:MM:SS`.
    pub refresh_time: String,
    pub refresh_frequency: &'static str,
    #[schema(format = DateTime)]
    pub last_refresh: Option<String>,
    pub last_refresh_succeeded: Option<bool>,
    pub last_refresh_count: Option<i64>,
    pub last_refresh_error_msg: Option<String>,
    pub notify_owner: bool,
}

impl ScheduleView {
    pub fn of(s: &RefreshSchedule) -> Self {
        Self {
            uuid: s.uuid,
            deleted: s.stamps.deleted.map(time::iso),
            deleted_by_cascade: s.stamps.deleted_by_cascade,
            created_at: time::iso(s.stamps.created_at),
            modified_at: time::iso(s.stamps.modified_at),
            request_snapshot: s.request_snapshot,
            owner: s.owner.clone(),
            refresh_time: s.refresh_time.clone(),
            refresh_frequency: s.refresh_frequency.as_str(),
            last_refresh: s.last_refresh.map(time::iso),
            last_refresh_succeeded: s.last_refresh_succeeded,
            last_refresh_count: s.last_refresh_count,
            last_refresh_error_msg: s.last_refresh_error_msg.clone(),
            notify_owner: s.notify_owner,
        }
    }
}
