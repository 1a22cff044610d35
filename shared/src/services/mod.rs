//! Use cases that span the store and the outside world, called by the functions' handlers, workers
//! and scheduled tasks.
pub mod access_alerts;
pub mod backfill;
pub mod job_news;
pub mod notify;
pub mod perimeter_sync;
pub mod refresh;
pub mod seed;
pub mod subsets;
pub mod sweeper;
