//! The local stand-in for API Gateway: one axum app mounting every HTTP function's routes, as
//! API Gateway maps route groups to functions, at `/` and under the front ends' `/api/back` prefix,
//! and the WebSocket API with its Management API ([`ws`]).
pub mod triggers;
pub mod ws;

use axum::Router;
use c360::http::{api::combine, serve::finish, AppState, FunctionApi, RouteSpec};

/// Every HTTP function, as template.yaml maps them.
pub const HTTP_FUNCTIONS: [FunctionApi; 6] =
    [auth_api::api, users_api::api, accesses_api::api, cohort_api::api, exports_api::api, platform_api::api];

/// All routes of all functions, and their inventory.
pub fn all_routes(state: &AppState) -> (Router, Vec<RouteSpec>) {
    combine(HTTP_FUNCTIONS.iter().map(|api| api(state)))
}

pub fn app(state: &AppState) -> Router {
    let api = finish(all_routes(state).0, state);
    // The WebSocket routes stay outside `finish`: the maintenance gate must not stop the broadcasts.
    ws::routes(state).nest("/api/back", api.clone()).merge(api)
}
