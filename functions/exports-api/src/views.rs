//! The JSON shapes of spec §7.2.
use c360::domain::{
    cohort::{CohortResult, FhirFilter},
    export_run::HiveStage,
    exports::{Datalab, Export, InfrastructureProvider},
    time,
};
use serde_json::{json, Value};

/// Export (full). `with_tables: false` renders `export_tables: []`, as the creation answers do (the
/// original creates the tables after the response; the app only checks the 201).
pub fn full(export: &Export, with_tables: bool) -> Value {
    let tables: Vec<Value> = if with_tables {
        export
            .tables
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "respect_table_relationships": t.respect_table_relationships,
                    "fhir_filter": t.fhir_filter,
                    "cohort_result_source": t.cohort_result_source,
                    "pivot_merge": t.pivot_merge,
                    "pivot_merge_columns": t.pivot_merge_columns,
                    "pivot_merge_ids": t.pivot_merge_ids,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "uuid": export.uuid,
        "request_job_id": export.job.request_job_id,
        "request_job_status": export.job.request_job_status.as_str(),
        "request_job_fail_msg": export.job.request_job_fail_msg,
        "owner": export.owner,
        "output_format": export.output_format.as_str(),
        "datalab": export.datalab,
        "nominative": export.nominative,
        "target_name": export.target_name,
        "target_location": export.target_location,
        "shift_dates": export.shift_dates,
        "group_tables": export.group_tables,
        "export_tables": tables,
        "motivation": export.motivation,
    })
}

/// Export (list): what the export lists of both apps read, plus (beyond the original) `stage`, how
/// far a hive export's database preparation went (`null` otherwise).
pub fn list_row(export: &Export) -> Value {
    let s = &export.summary;
    json!({
        "uuid": export.uuid,
        "owner": s.owner_display,
        "output_format": export.output_format.as_str(),
        "motivation": export.motivation,
        "cohort_id": s.cohort_id,
        "cohort_name": s.cohort_name,
        "patients_count": s.patients_count,
        "created_at": time::iso(export.stamps.created_at),
        "modified_at": time::iso(export.stamps.modified_at),
        "request_job_status": export.job.request_job_status.as_str(),
        "target_datalab": s.datalab_name,
        "target_name": export.target_name,
        "stage": export.hive_stage.as_ref().map(HiveStage::name),
    })
}

pub fn cohort(c: &CohortResult) -> Value {
    json!({"uuid": c.uuid, "owner": c.owner, "name": c.name})
}

/// A saved filter as `/cohort/fhir-filters/` renders it (spec §5.10).
pub fn filter(f: &FhirFilter) -> Value {
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
        "owner": f.owner,
        "identifying": f.identifying,
        "auto_generated": f.auto_generated,
    })
}

pub fn provider(p: &InfrastructureProvider) -> Value {
    json!({"uuid": p.uuid, "name": p.name})
}

/// A datalab with its provider as `{uuid, name}` (the provider may be gone: its uuid alone).
pub fn datalab(d: &Datalab, provider: Option<&InfrastructureProvider>) -> Value {
    json!({
        "uuid": d.uuid,
        "created_at": time::iso(d.stamps.created_at),
        "name": d.name,
        "infrastructure_provider": provider.map_or_else(
            || json!({"uuid": d.infrastructure_provider, "name": null}),
            self::provider,
        ),
    })
}
