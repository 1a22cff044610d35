//! Refresh schedules at run time (spec §5.9, the intended behaviour): each due schedule is claimed
//! by moving its next run forward (a conditional update: two runners never both run it), then a
//! count of its snapshot is created and queued like a user's. The count's callback reports back on
//! the schedule (`record_refresh`).

use crate::{
    clients::jobs::{CohortJob, JobQueue},
    clients::mail::Mailer,
    config::Settings,
    domain::{
        cohort::{next_refresh, DatedMeasure, JobStatus, MeasureMode, RefreshSchedule, Request, Snapshot},
        time::{self, DateTime},
    },
    error::{AppError, AppResult},
    services::notify,
    store::{cohort::Changes, DynamoStore, StoreError},
};

/// What a run of the refresh task did.
#[derive(Debug, Default, PartialEq, serde::Serialize)]
pub struct RefreshRun {
    pub due: usize,
    pub launched: usize,
    /// Claimed by another runner, or whose snapshot is gone.
    pub skipped: usize,
}

pub async fn run_due_schedules(store: &DynamoStore, jobs: &JobQueue, now: DateTime) -> AppResult<RefreshRun> {
    let due = store.due_schedules(now).await?;
    let mut run = RefreshRun { due: due.len(), ..RefreshRun::default() };
    for schedule in due {
        if launch(store, jobs, &schedule, now).await? {
            run.launched += 1;
        } else {
            run.skipped += 1;
        }
    }
    Ok(run)
}

async fn launch(store: &DynamoStore, jobs: &JobQueue, schedule: &RefreshSchedule, now: DateTime) -> AppResult<bool> {
    let mut claim = Changes::modified(now);
    claim.while_equal("next_run", &time::iso(schedule.next_run));
    claim.schedule_next_run(schedule.uuid, next_refresh(&schedule.refresh_time, schedule.refresh_frequency, now))?;
    match store.update_object::<RefreshSchedule>(&schedule.owner, schedule.uuid, claim).await {
        Ok(_) => {}
        Err(StoreError::ConditionFailed) => return Ok(false),
        Err(other) => return Err(other.into()),
    }
    let Some(snapshot) = store.workspace_object::<Snapshot>(&schedule.owner, schedule.request_snapshot).await? else {
        return Ok(false);
    };
    let measure = DatedMeasure::new(&schedule.owner, snapshot.uuid, snapshot.request, MeasureMode::Snapshot, now);
    store.transact(store.new_count_writes(&measure)?).await?;
    let job = CohortJob::Count { owner: schedule.owner.clone(), dated_measure: measure.uuid, stage_details: None };
    jobs.send(job).await.map_err(|e| AppError::internal(format!("refresh count not queued: {e}")))?;
    tracing::info!(schedule = %schedule.uuid, dated_measure = %measure.uuid, "scheduled re-count queued");
    Ok(true)
}

/// After a count of a scheduled snapshot ends: the schedule records the outcome (spec §5.6), and its
/// owner gets the "count refreshed" e-mail when they asked for it.
pub async fn record_refresh(
    store: &DynamoStore,
    mailer: &impl Mailer,
    settings: &Settings,
    measure: &DatedMeasure,
    now: DateTime,
) -> AppResult<()> {
    if !measure.job.request_job_status.is_final() {
        return Ok(());
    }
    let Some(schedule) = store.schedule_of_snapshot(&measure.owner, measure.request_query_snapshot).await? else {
        return Ok(());
    };
    if schedule.notify_owner {
        let (owner, request, snapshot) = tokio::join!(
            store.user(&measure.owner),
            store.workspace_object::<Request>(&measure.owner, measure.request),
            store.workspace_object::<Snapshot>(&measure.owner, measure.request_query_snapshot)
        );
        if let (Some(owner), Some(request), Some(snapshot)) = (owner?, request?, snapshot?) {
            let count = (measure.job.request_job_status == JobStatus::Finished).then_some(measure.measure).flatten();
            let email =
                notify::count_refreshed(settings, &owner, (request.uuid, &request.name), snapshot.version, count);
            notify::deliver(mailer, email, "count_request_refreshed").await;
        }
    }
    let mut changes = Changes::modified(now);
    let succeeded = measure.job.request_job_status == JobStatus::Finished;
    let error = (!measure.job.request_job_fail_msg.is_empty()).then_some(&measure.job.request_job_fail_msg);
    changes
        .set("last_refresh", &time::iso(now))?
        .set("last_refresh_succeeded", &succeeded)?
        .set("last_refresh_count", &measure.measure)?
        .set("last_refresh_error_msg", &error)?;
    match store.update_object::<RefreshSchedule>(&schedule.owner, schedule.uuid, changes).await {
        Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
        Err(other) => Err(other.into()),
    }
}
