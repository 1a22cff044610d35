//! The outside world, each behind a small client: the QueryExecutor, FHIR, the Export and Hadoop APIs,
//! the SQS job queues, SES e-mails, WebSocket pushes (API Gateway's Management API), S3 documents.
pub mod documents;
pub mod executor;
pub mod export_api;
pub mod fhir;
pub mod hadoop_api;
pub mod jobs;
pub mod mail;
pub mod push;
