//! Answers that several functions render alike: one type, so one schema in `/schema`.
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{cohort::FhirFilter, time};

/// A saved FHIR filter (spec §5.8), as `/cohort/fhir-filters/` and `/exports/fhir-filters/` render it.
#[derive(Serialize, ToSchema)]
pub struct FilterView {
    pub uuid: Uuid,
    #[schema(format = DateTime)]
    pub deleted: Option<String>,
    pub deleted_by_cascade: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    pub fhir_resource: String,
    pub fhir_version: String,
    pub query_version: String,
    pub name: String,
    pub filter: String,
    /// The owner as the endpoint shows it (a username, or the caller's display name in the cohort app).
    pub owner: String,
    pub identifying: bool,
    pub auto_generated: bool,
}

impl FilterView {
    pub fn of(f: &FhirFilter, owner: String) -> Self {
        Self {
            uuid: f.uuid,
            deleted: f.stamps.deleted.map(time::iso),
            deleted_by_cascade: f.stamps.deleted_by_cascade,
            created_at: time::iso(f.stamps.created_at),
            modified_at: time::iso(f.stamps.modified_at),
            fhir_resource: f.fhir_resource.clone(),
            fhir_version: f.fhir_version.clone(),
            query_version: f.query_version.clone(),
            name: f.name.clone(),
            filter: f.filter.clone(),
            owner,
            identifying: f.identifying,
            auto_generated: f.auto_generated,
        }
    }
}
