//! The steps of an export's run (spec §7.5). csv/xlsx: send to the Export API, poll its task. hive:
//! a Hadoop task first creates the database, which is handed to `HIVE_USER`; then the Export API fills
//! it; then the database is handed to the datalab. Each hive stage is recorded on the export before
//! the next call, so a redelivered or late message resumes at the stage the stored export is in and
//! never repeats one it has passed.
use serde::{Deserialize, Serialize};

use super::exports::{Export, OutputFormat};

/// How far a hive export's run went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum HiveStage {
    /// The Hadoop task `task` creates the database.
    CreatingDatabase { task: String },
    /// The database exists and belongs to `HIVE_USER`: the export may be sent to the Export API.
    /// `task` created it: a redelivered poll of that task sends the export if nothing was sent.
    DatabaseReady { task: String },
    /// The Export API task (`request_job_id`) finished: the database goes to the datalab.
    HandingOver,
}

impl HiveStage {
    /// The stage as the list rows and the `job_status` pushes show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreatingDatabase { .. } => "creating_database",
            Self::DatabaseReady { .. } => "database_ready",
            Self::HandingOver => "handing_over",
        }
    }
}

/// `<target_location>/<target_name>.db`: where a hive export's database lives.
pub fn database_location(export: &Export) -> String {
    format!("{}/{}.db", export.target_location, export.target_name)
}

/// What a launch does next with an export it (or a previous delivery) claimed.
#[derive(Debug, PartialEq, Eq)]
pub enum LaunchStep {
    /// A task is recorded: follow it.
    Poll(String),
    /// A hive export whose database was never asked for.
    CreateDatabase,
    /// Send the export to the Export API.
    Send,
}

pub fn launch_step(export: &Export) -> LaunchStep {
    if !export.job.request_job_id.is_empty() {
        return LaunchStep::Poll(export.job.request_job_id.clone());
    }
    match (&export.hive_stage, export.output_format) {
        (Some(HiveStage::CreatingDatabase { task }), _) => LaunchStep::Poll(task.clone()),
        (None, OutputFormat::Hive) => LaunchStep::CreateDatabase,
        _ => LaunchStep::Send,
    }
}

/// What a poll of `task` does with the export as stored.
#[derive(Debug, PartialEq, Eq)]
pub enum PollStep {
    /// The export ended, or moved past this task (a later stage, a retry): nothing.
    Stale,
    /// Ask the Hadoop API whether the database is created.
    Database,
    /// The database is ready and nothing was sent yet (a previous delivery stopped there).
    Send,
    /// Ask the Export API where the export stands.
    Export,
    /// The Export API task finished: hand the database to the datalab.
    HandOver,
}

pub fn poll_step(export: &Export, task: &str) -> PollStep {
    if export.job.request_job_status.is_final() {
        return PollStep::Stale;
    }
    let sent = export.job.request_job_id.as_str();
    match &export.hive_stage {
        Some(HiveStage::CreatingDatabase { task: t }) if t == task => PollStep::Database,
        Some(HiveStage::DatabaseReady { task: t }) if t == task && sent.is_empty() => PollStep::Send,
        Some(HiveStage::HandingOver) if sent == task => PollStep::HandOver,
        _ if !sent.is_empty() && sent == task => PollStep::Export,
        _ => PollStep::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        cohort::{Job, JobStatus, Stamps},
        exports::ExportSummary,
        time,
    };

    fn export(format: OutputFormat, sent: &str, stage: Option<HiveStage>) -> Export {
        Export {
            uuid: uuid::Uuid::nil(),
            owner: "alice".into(),
            output_format: format,
            datalab: None,
            nominative: true,
            shift_dates: false,
            group_tables: false,
            motivation: None,
            target_name: "lab1_20250304_050607089000".into(),
            target_location: "/user/hive/exports".into(),
            is_user_notified: false,
            clean_datetime: None,
            retried: false,
            launched_at: None,
            awaiting_subsets: false,
            hive_stage: stage,
            tables: vec![],
            summary: ExportSummary::default(),
            rev: 0,
            job: Job { request_job_id: sent.into(), request_job_status: JobStatus::Pending, ..Job::new() },
            stamps: Stamps::new(time::now()),
        }
    }

    fn creating(task: &str) -> Option<HiveStage> {
        Some(HiveStage::CreatingDatabase { task: task.into() })
    }

    fn ready(task: &str) -> Option<HiveStage> {
        Some(HiveStage::DatabaseReady { task: task.into() })
    }

    #[test]
    fn the_database_lives_under_the_target_location() {
        let e = export(OutputFormat::Hive, "", None);
        assert_eq!(database_location(&e), "/user/hive/exports/lab1_20250304_050607089000.db");
    }

    #[test]
    fn a_launch_resumes_at_the_first_step_not_recorded() {
        assert_eq!(launch_step(&export(OutputFormat::Csv, "", None)), LaunchStep::Send);
        assert_eq!(launch_step(&export(OutputFormat::Csv, "x", None)), LaunchStep::Poll("x".into()));
        assert_eq!(launch_step(&export(OutputFormat::Hive, "", None)), LaunchStep::CreateDatabase);
        assert_eq!(launch_step(&export(OutputFormat::Hive, "", creating("h"))), LaunchStep::Poll("h".into()));
        assert_eq!(launch_step(&export(OutputFormat::Hive, "", ready("h"))), LaunchStep::Send);
        let handing_over = export(OutputFormat::Hive, "x", Some(HiveStage::HandingOver));
        assert_eq!(launch_step(&handing_over), LaunchStep::Poll("x".into()));
    }

    #[test]
    fn a_poll_acts_only_on_the_task_of_the_current_stage() {
        let cases = [
            (export(OutputFormat::Csv, "x", None), "x", PollStep::Export),
            (export(OutputFormat::Csv, "x", None), "old", PollStep::Stale),
            (export(OutputFormat::Csv, "", None), "", PollStep::Stale),
            (export(OutputFormat::Hive, "", creating("h")), "h", PollStep::Database),
            (export(OutputFormat::Hive, "", creating("h")), "old", PollStep::Stale),
            (export(OutputFormat::Hive, "", ready("h")), "h", PollStep::Send),
            (export(OutputFormat::Hive, "x", ready("h")), "h", PollStep::Stale),
            (export(OutputFormat::Hive, "x", ready("h")), "x", PollStep::Export),
            (export(OutputFormat::Hive, "x", Some(HiveStage::HandingOver)), "x", PollStep::HandOver),
            (export(OutputFormat::Hive, "x", Some(HiveStage::HandingOver)), "h", PollStep::Stale),
        ];
        for (e, task, step) in cases {
            assert_eq!(poll_step(&e, task), step, "{:?} {task}", e.hive_stage);
        }
        let mut ended = export(OutputFormat::Hive, "x", Some(HiveStage::HandingOver));
        ended.job.request_job_status = JobStatus::Finished;
        assert_eq!(poll_step(&ended, "x"), PollStep::Stale);
    }

    #[test]
    fn stages_are_stored_with_their_name() {
        let json = serde_json::to_value(creating("h")).unwrap();
        assert_eq!(json, serde_json::json!({"stage": "creating_database", "task": "h"}));
        let over = serde_json::to_value(Some(HiveStage::HandingOver)).unwrap();
        assert_eq!(serde_json::from_value::<Option<HiveStage>>(over).unwrap(), Some(HiveStage::HandingOver));
    }
}
