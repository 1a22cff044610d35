//! Core crate of the Cohort360 backend.
//!
//! Layers, dependency arrows pointing down:
//! - [`http`]: the shared HTTP edge (authentication, DRF-compatible envelopes, the one error mapping).
//! - [`auth`]: tokens, passwords, OIDC and the external identity service.
//! - [`store`]: DynamoDB records and repositories (every key is built in [`store::keys`]).
//! - [`domain`]: pure types and rules, no I/O.
pub mod access_alerts;
pub mod allocator;
pub mod auth;
pub mod aws;
pub mod backfill;
pub mod config;
pub mod documents;
pub mod domain;
pub mod error;
pub mod executor;
pub mod export_api;
pub mod fhir;
pub mod hadoop_api;
pub mod http;
pub mod job_news;
pub mod jobs;
pub mod mail;
pub mod notify;
pub mod perimeter_sync;
pub mod push;
pub mod refresh;
pub mod seed;
pub mod store;
pub mod subsets;
pub mod sweeper;
pub mod telemetry;
pub mod worker;

pub use config::Settings;
pub use error::{AppError, AppResult};
