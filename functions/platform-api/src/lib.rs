//! Platform endpoints (spec §9): maintenance phases, release notes, web contents, request logs,
//! the cache endpoint, the root, and the API documentation (`/docs`, `/schema`).
mod cache;
mod contents;
mod docs;
mod logs;
mod maintenances;
mod release_notes;
mod views;

use axum::{http::Method, Router};
use c360::http::{
    api::combine, contract::Doc, serve::page_not_found, Api, AppState, Exposure, FunctionApi, MethodPolicy, RouteSpec,
};

/// The route groups documented at `/schema`, besides this crate's own.
const OTHER_FUNCTIONS: [FunctionApi; 5] =
    [auth_api::api, users_api::api, accesses_api::api, cohort_api::api, exports_api::api];

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    let mut root = Api::new(state, "root").method_policy(MethodPolicy::Open);
    for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        root = root
            .route(method, "/", Exposure::Public, "Not a page: 404", page_not_found)
            .doc(Doc::new().error(404, "Not a page: `{\"error\": \"Page Not Found\"}`."));
    }
    combine([
        root.build(),
        maintenances::api(state),
        release_notes::api(state),
        contents::api(state),
        logs::api(state),
        cache::api(state),
        docs::api(state),
    ])
}

/// Every function's routes, as `/schema` documents them.
fn every_route(state: &AppState) -> Vec<RouteSpec> {
    let mut everything = api(state).1;
    for other in OTHER_FUNCTIONS {
        everything.extend(other(state).1);
    }
    everything
}
