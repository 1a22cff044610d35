//! Exports waiting for their cohort subsets (spec §7.4). When a subset's creation job ends, whoever
//! wrote that end (the QueryExecutor's or the Solr ETL's callback, the cohort worker at launch, the
//! stuck-job sweeper) re-checks its export: a failed subset fails the export, the last finished one
//! launches it. Both are a write of the export conditioned on its revision, so of two callbacks that
//! end the last subsets at once, or a callback delivered twice, exactly one moves the export.
use uuid::Uuid;

use crate::{
    clients::jobs::{ExportJob, ExportQueue},
    clients::mail::Mailer,
    config::Settings,
    domain::{
        cohort::{CohortResult, JobStatus},
        exports::{subsets_state, Export, Subsets, SUBSETS_FAILED},
    },
    services::notify,
    store::{DynamoStore, StoreError, StoreResult},
};

/// What a re-check did to the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// The export is gone, or no longer waits (launched, failed or retried meanwhile).
    NotWaiting,
    /// Some subsets are still being built.
    Waiting,
    /// A subset ended without finishing: the export failed.
    Failed,
    /// Every subset finished: the export's launch is queued.
    Launched,
}

/// How often a re-check that lost the race on the export's revision reads it again.
const ATTEMPTS: usize = 5;

/// Re-checks the export `uuid` after one of its subsets ended.
pub async fn recheck_export(
    store: &DynamoStore,
    exports: &ExportQueue,
    mailer: &(impl Mailer + Sync),
    settings: &Settings,
    uuid: Uuid,
) -> StoreResult<Recheck> {
    for _ in 0..ATTEMPTS {
        let Some(export) = store.export(uuid).await? else { return Ok(Recheck::NotWaiting) };
        if !export.awaiting_subsets {
            return Ok(Recheck::NotWaiting);
        }
        let wanted: Vec<Uuid> = export.tables.iter().filter_map(|t| t.cohort_result_subset).collect();
        // Consistent reads: of two callbacks ending the last two subsets, the later one sees both ends.
        let subsets: Vec<CohortResult> = store.workspace_objects(&export.owner, &wanted).await?;
        let status = |u: &Uuid| subsets.iter().find(|c| c.uuid == *u).map(|c| c.job.request_job_status);
        let mut next = export.clone();
        next.awaiting_subsets = false;
        let outcome = match subsets_state(wanted.iter().map(status)) {
            Subsets::Building => return Ok(Recheck::Waiting),
            Subsets::Failed => {
                next.job.request_job_status = JobStatus::Failed;
                next.job.request_job_fail_msg = SUBSETS_FAILED.to_owned();
                next.is_user_notified = true;
                Recheck::Failed
            }
            // `new` is what the export worker launches.
            Subsets::Finished => {
                next.job.request_job_status = JobStatus::New;
                Recheck::Launched
            }
        };
        let saved = match store.save_export(&next).await {
            Ok(saved) => saved,
            Err(StoreError::ConditionFailed) => continue,
            Err(other) => return Err(other),
        };
        if outcome == Recheck::Failed {
            tracing::warn!(export = %uuid, "a cohort subset failed: export failed");
            notify::tell_export_failure(store, mailer, settings, &saved).await?;
        } else {
            launch(store, exports, saved).await?;
        }
        return Ok(outcome);
    }
    Err(StoreError::Sdk(format!("the export {uuid} kept changing during its subsets' re-check")))
}

/// Queues the launch of an export whose subsets all finished. One that cannot be queued would wait
/// forever: it fails with the reason (a full admin's retry launches it again).
async fn launch(store: &DynamoStore, exports: &ExportQueue, export: Export) -> StoreResult<()> {
    let Err(err) = exports.send(ExportJob::Launch { export: export.uuid }, 0).await else {
        tracing::info!(export = %export.uuid, "cohort subsets finished: export launch queued");
        return Ok(());
    };
    tracing::warn!(export = %export.uuid, error = %err, "export launch not queued");
    let mut failed = export;
    failed.job.request_job_status = JobStatus::Failed;
    failed.job.request_job_fail_msg = format!("Export terminated with an error: {err}");
    match store.save_export(&failed).await {
        Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
        Err(other) => Err(other),
    }
}
