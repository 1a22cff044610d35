//! The JSON shapes of spec §7.2, as views: each renders an answer and describes it in `/schema`.
use c360::domain::{
    cohort::CohortResult,
    export_run::HiveStage,
    exports::{Datalab, Export, ExportResultStat, ExportTable, InfrastructureProvider},
    time,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// An answer that is a bare JSON string (the original's messages).
#[derive(Serialize, ToSchema)]
pub struct Message(pub String);

/// A table of an export (spec §7.2).
#[derive(Serialize, ToSchema)]
pub struct ExportTableView {
    pub name: String,
    pub respect_table_relationships: bool,
    pub fhir_filter: Option<Uuid>,
    pub cohort_result_source: Option<Uuid>,
    pub pivot_merge: bool,
    pub pivot_merge_columns: Option<Vec<String>>,
    pub pivot_merge_ids: Option<Vec<String>>,
}

impl ExportTableView {
    fn of(t: &ExportTable) -> Self {
        Self {
            name: t.name.clone(),
            respect_table_relationships: t.respect_table_relationships,
            fhir_filter: t.fhir_filter,
            cohort_result_source: t.cohort_result_source,
            pivot_merge: t.pivot_merge,
            pivot_merge_columns: t.pivot_merge_columns.clone(),
            pivot_merge_ids: t.pivot_merge_ids.clone(),
        }
    }
}

/// An export (full serializer, spec §7.2).
#[derive(Serialize, ToSchema)]
pub struct ExportView {
    pub uuid: Uuid,
    pub request_job_id: String,
    /// new, pending, started, finished, failed, cancelled…
    pub request_job_status: String,
    pub request_job_fail_msg: String,
    pub owner: String,
    /// csv, xlsx or hive.
    pub output_format: String,
    pub datalab: Option<Uuid>,
    pub nominative: bool,
    pub target_name: String,
    pub target_location: String,
    pub shift_dates: bool,
    pub group_tables: bool,
    /// Empty in the answers of a creation (the original creates the tables after answering).
    pub export_tables: Vec<ExportTableView>,
    pub motivation: Option<String>,
}

impl ExportView {
    /// `with_tables: false` renders `export_tables: []`, as the creation answers do (the original
    /// creates the tables after the response; the app only checks the 201).
    pub fn of(export: &Export, with_tables: bool) -> Self {
        let tables = if with_tables { export.tables.iter().map(ExportTableView::of).collect() } else { Vec::new() };
        Self {
            uuid: export.uuid,
            request_job_id: export.job.request_job_id.clone(),
            request_job_status: export.job.request_job_status.as_str().to_owned(),
            request_job_fail_msg: export.job.request_job_fail_msg.clone(),
            owner: export.owner.clone(),
            output_format: export.output_format.as_str().to_owned(),
            datalab: export.datalab,
            nominative: export.nominative,
            target_name: export.target_name.clone(),
            target_location: export.target_location.clone(),
            shift_dates: export.shift_dates,
            group_tables: export.group_tables,
            export_tables: tables,
            motivation: export.motivation.clone(),
        }
    }
}

/// An export (list serializer): what the export lists of both apps read, plus (beyond the
/// original) `stage`, how far a hive export's database preparation went (`null` otherwise).
#[derive(Serialize, ToSchema)]
pub struct ExportRowView {
    pub uuid: Uuid,
    /// The owner's display name.
    pub owner: String,
    pub output_format: String,
    pub motivation: Option<String>,
    /// The group id of the first table's source cohort.
    pub cohort_id: Option<String>,
    pub cohort_name: Option<String>,
    /// The source cohort's count.
    pub patients_count: Option<i64>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    pub request_job_status: String,
    /// The datalab's name.
    pub target_datalab: Option<String>,
    pub target_name: String,
    /// creating_database, database_ready or handing_over (hive exports being prepared).
    pub stage: Option<String>,
}

impl ExportRowView {
    pub fn of(export: &Export) -> Self {
        let s = &export.summary;
        Self {
            uuid: export.uuid,
            owner: s.owner_display.clone(),
            output_format: export.output_format.as_str().to_owned(),
            motivation: export.motivation.clone(),
            cohort_id: s.cohort_id.clone(),
            cohort_name: s.cohort_name.clone(),
            patients_count: s.patients_count,
            created_at: time::iso(export.stamps.created_at),
            modified_at: time::iso(export.stamps.modified_at),
            request_job_status: export.job.request_job_status.as_str().to_owned(),
            target_datalab: s.datalab_name.clone(),
            target_name: export.target_name.clone(),
            stage: export.hive_stage.as_ref().map(|s| HiveStage::name(s).to_owned()),
        }
    }
}

/// A row of `GET /exports/`: the list serializer, or the full one with `return_full_objects=true`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ExportListed {
    Row(ExportRowView),
    Full(ExportView),
}

/// A cohort the export forms offer.
#[derive(Serialize, ToSchema)]
pub struct ExportCohortView {
    pub uuid: Uuid,
    pub owner: String,
    pub name: Option<String>,
}

impl ExportCohortView {
    pub fn of(c: &CohortResult) -> Self {
        Self { uuid: c.uuid, owner: c.owner.clone(), name: c.name.clone() }
    }
}

/// An infrastructure provider.
#[derive(Serialize, ToSchema)]
pub struct ProviderView {
    pub uuid: Uuid,
    pub name: String,
}

impl ProviderView {
    pub fn of(p: &InfrastructureProvider) -> Self {
        Self { uuid: p.uuid, name: p.name.clone() }
    }
}

/// A datalab's provider: its name is `null` when the provider is gone.
#[derive(Serialize, ToSchema)]
pub struct DatalabProvider {
    pub uuid: Uuid,
    pub name: Option<String>,
}

/// A datalab with its provider.
#[derive(Serialize, ToSchema)]
pub struct DatalabView {
    pub uuid: Uuid,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub name: String,
    pub infrastructure_provider: DatalabProvider,
}

impl DatalabView {
    pub fn of(d: &Datalab, provider: Option<&InfrastructureProvider>) -> Self {
        let infrastructure_provider = match provider {
            Some(p) => DatalabProvider { uuid: p.uuid, name: Some(p.name.clone()) },
            None => DatalabProvider { uuid: d.infrastructure_provider, name: None },
        };
        Self { uuid: d.uuid, created_at: time::iso(d.stamps.created_at), name: d.name.clone(), infrastructure_provider }
    }
}

/// A figure about an export's result.
#[derive(Serialize, ToSchema)]
pub struct StatView {
    pub uuid: Uuid,
    #[schema(format = DateTime)]
    pub deleted: Option<String>,
    pub deleted_by_cascade: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    pub export: Uuid,
    pub name: String,
    /// Integer, Text or SizeBytes.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    /// The export's target name.
    pub export_target: String,
}

impl StatView {
    pub fn of(s: &ExportResultStat) -> Self {
        Self {
            uuid: s.uuid,
            deleted: s.stamps.deleted.map(time::iso),
            deleted_by_cascade: s.stamps.deleted_by_cascade,
            created_at: time::iso(s.stamps.created_at),
            modified_at: time::iso(s.stamps.modified_at),
            export: s.export,
            name: s.name.clone(),
            kind: s.kind.clone(),
            value: s.value.clone(),
            export_target: s.export_target.clone(),
        }
    }
}

/// The Export API's task status, with its logs.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct TaskLogs(pub Value);

/// The answer of `logs/`: a message, or the Export API's task status with its logs (pretty-printed,
/// as a `logs_export_<target_name>.json` attachment).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LogsView {
    Message(String),
    Logs(TaskLogs),
}
