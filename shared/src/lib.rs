//! Core crate of the Cohort360 backend.
//!
//! Layers, dependency arrows pointing down:
//! - [`http`]: the shared HTTP edge (authentication, DRF-compatible envelopes, the one error mapping).
//! - [`services`]: use cases that span the store and the outside world (job news, exports' subsets,
//!   the scheduled tasks' work, seeding, backfills).
//! - [`auth`]: tokens, passwords, OIDC and the external identity service.
//! - [`clients`]: the outside world: QueryExecutor, FHIR, Export and Hadoop APIs, SQS job queues,
//!   SES e-mails, WebSocket pushes, S3 documents.
//! - [`store`]: DynamoDB records and repositories (every key is built in [`store::keys`]).
//! - [`domain`]: pure types and rules, no I/O.
//!
//! Beside them, the runtime: [`config`], [`error`], [`telemetry`], [`allocator`], [`aws`], [`worker`]
//! (SQS batches).
pub mod allocator;
pub mod auth;
pub mod aws;
pub mod clients;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod worker;

pub use config::Settings;
pub use error::{AppError, AppResult};
