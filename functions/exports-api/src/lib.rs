//! `/exports/` (spec §7): export requests and their list, downloads from the exports bucket, the
//! admins' retry / relaunch / logs, the cohorts and filters the export forms offer, datalabs and
//! infrastructure providers, export result stats. Exports run in the export worker (functions/export-worker).
mod catalog;
mod datalabs;
mod exports;
mod stats;
mod views;

use axum::Router;
use c360::http::{api::combine, AppState, RouteSpec};

pub use exports::STREAM_LIMIT_BYTES;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    combine([exports::api(state), catalog::api(state), datalabs::api(state), stats::api(state)])
}
