//! Pure types and rules: no I/O, no AWS, no HTTP.
pub mod access_rules;
pub mod cohort;
pub mod content;
pub mod feasibility;
pub mod fhir_tree;
pub mod log_paths;
pub mod maintenance;
pub mod perimeter;
pub mod query_executor;
pub mod release_note;
pub mod request_log;
pub mod rights;
pub mod solr;
pub mod time;
pub mod tree;
pub mod tree_sync;
pub mod user;
