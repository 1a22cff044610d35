//! `/accesses/`: its routes arrive with the accesses issue; the crate, its Lambda and template wiring exist now.
use axum::Router;
use c360::http::{Api, AppState, RouteSpec};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "accesses").build()
}
