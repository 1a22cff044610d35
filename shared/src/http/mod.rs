//! The shared HTTP edge: every HTTP function builds its router from these pieces, so that
//! authentication, envelopes, errors and the method/permission order are the same everywhere.
pub mod api;
pub mod audit;
pub mod auth;
pub mod body;
pub mod contract;
pub mod cors;
pub mod error;
pub mod fields;
pub mod listing;
pub mod maintenance;
pub mod openapi;
pub mod serve;
pub mod state;
pub mod views;

pub use api::{Api, Exposure, FunctionApi, MethodPolicy, RouteSpec};
pub use auth::{Caller, Principal, PublicCaller};
pub use body::Body;
pub use state::AppState;
