//! One function for every schedule of template.yaml, dispatching on the rule's input
//! `{"task": "<name>"}` (the names below are the single list both sides use).
use serde::Deserialize;
use serde_json::{json, Value};

/// Every scheduled task, in the order of template.yaml.
pub const TASKS: [&str; 7] = [
    "maintenance_broadcast",
    "expiring_accesses_alerts",
    "count_users_on_perimeters",
    "perimeters_sync",
    "export_cleanup",
    "refresh_schedules",
    "stuck_jobs_sweeper",
];

#[derive(Debug, Deserialize)]
struct TaskInput {
    task: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("the scheduled event has no task name: {0}")]
    BadInput(String),
    #[error("unknown task {0:?}")]
    Unknown(String),
}

pub async fn function_handler(input: Value) -> Result<Value, TaskError> {
    let TaskInput { task } = serde_json::from_value(input).map_err(|e| TaskError::BadInput(e.to_string()))?;
    if !TASKS.contains(&task.as_str()) {
        return Err(TaskError::Unknown(task));
    }
    // Declared in the template; each task's body arrives with its issue (accesses, cohort jobs,
    // exports). Until then the run is logged as skipped rather than failed, so no alarm fires.
    tracing::warn!(task = %task, "scheduled task not available in this release; skipped");
    Ok(json!({"task": task, "status": "skipped"}))
}
