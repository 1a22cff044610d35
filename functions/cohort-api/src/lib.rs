//! `/cohort/`: the user's workspace (spec §5) — folders, requests, versioned query snapshots, counts,
//! cohorts, feasibility studies, saved FHIR filters and refresh schedules — each read from the
//! owner's partition; counts, cohorts and studies are queued as jobs for the cohort worker.
mod cohorts;
mod common;
mod fhir_perimeters;
mod filters;
mod folders;
mod measures;
mod requests;
mod rows;
mod schedules;
mod snapshots;
mod studies;
mod views;

use axum::Router;
use c360::http::{api::combine, AppState, RouteSpec};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    combine([
        folders::api(state),
        requests::api(state),
        snapshots::api(state),
        measures::api(state),
        cohorts::api(state),
        studies::api(state),
        filters::api(state),
        schedules::api(state),
        fhir_perimeters::api(state),
    ])
}
