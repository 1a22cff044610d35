//! `/accesses/`: rights, roles, profiles, accesses and perimeters (spec §4), every rights question
//! answered in memory over the cached perimeter tree and the caller's valid accesses.
mod accesses;
mod perimeters;
mod roles;
mod views;

use axum::Router;
use c360::http::{api::combine, AppState, RouteSpec};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    combine([roles::api(state), accesses::api(state), perimeters::api(state)])
}
