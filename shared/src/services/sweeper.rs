//! The stuck-job sweeper (scheduled task `stuck_jobs_sweeper`): a count, cohort or study that has
//! sat in the same non-final status past that status's deadline (an executor that never called
//! back, a lost message) ends as `failed` with a message saying why. The update is conditional on
//! the status and the modification time it was judged on, so a job that moved meanwhile is never
//! touched. The owner hears of it as of any failure (WebSocket event, refresh record, e-mail).
use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    clients::mail::Mailer,
    domain::{
        cohort::{CohortResult, DatedMeasure, FeasibilityStudy, Job, JobStatus, Stamps},
        time::{self, DateTime},
    },
    error::{AppError, AppResult},
    services::job_news::{AsMoved, JobNews},
    store::{
        cohort::{Changes, WorkspaceObject},
        StoreError,
    },
};

/// How long a job may stay in a status before it is declared stuck (`STUCK_JOB_DEADLINES`,
/// e.g. `new=30m,pending=1h,started=24h,long_pending=48h`; statuses not listed are never swept).
#[derive(Clone, Debug, PartialEq)]
pub struct Deadlines(BTreeMap<&'static str, ::time::Duration>);

pub const DEFAULT_DEADLINES: &str = "new=30m,pending=1h,started=24h,long_pending=48h";

impl Deadlines {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut deadlines = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (status, duration) =
                entry.split_once('=').ok_or_else(|| format!("{entry:?}: expected status=duration"))?;
            let status = JobStatus::parse(status.trim()).ok_or_else(|| format!("{status:?} is not a job status"))?;
            if status.is_final() {
                return Err(format!("{} is an end state: nothing to sweep", status.as_str()));
            }
            deadlines.insert(status.as_str(), parse_duration(duration.trim())?);
        }
        Ok(Self(deadlines))
    }

    fn of(&self, status: JobStatus) -> Option<::time::Duration> {
        self.0.get(status.as_str()).copied()
    }
}

fn parse_duration(text: &str) -> Result<::time::Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().map_err(|_| format!("{text:?}: expected a number and a unit (m, h, d)"))?;
    match unit {
        "m" => Ok(::time::Duration::minutes(n)),
        "h" => Ok(::time::Duration::hours(n)),
        "d" => Ok(::time::Duration::days(n)),
        _ => Err(format!("{text:?}: the unit must be m, h or d")),
    }
}

/// The job columns and stamps of the three job kinds.
trait JobObject: WorkspaceObject + AsMoved {
    fn job(&self) -> &Job;
    fn stamps(&self) -> &Stamps;
}

macro_rules! job_object {
    ($($type:ty),*) => {$(
        impl JobObject for $type {
            fn job(&self) -> &Job {
                &self.job
            }
            fn stamps(&self) -> &Stamps {
                &self.stamps
            }
        }
    )*};
}
job_object!(DatedMeasure, CohortResult, FeasibilityStudy);

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct SweepReport {
    pub open: usize,
    pub failed: usize,
}

pub async fn sweep<M: Mailer + Sync>(
    news: &JobNews<'_, M>,
    deadlines: &Deadlines,
    now: DateTime,
) -> AppResult<SweepReport> {
    let store = news.store;
    let mut report = SweepReport::default();
    sweep_kind(news, store.open_jobs::<DatedMeasure>().await?, deadlines, now, &mut report).await?;
    sweep_kind(news, store.open_jobs::<CohortResult>().await?, deadlines, now, &mut report).await?;
    sweep_kind(news, store.open_jobs::<FeasibilityStudy>().await?, deadlines, now, &mut report).await?;
    Ok(report)
}

async fn sweep_kind<T: JobObject, M: Mailer + Sync>(
    news: &JobNews<'_, M>,
    open: Vec<T>,
    deadlines: &Deadlines,
    now: DateTime,
    report: &mut SweepReport,
) -> AppResult<()> {
    report.open += open.len();
    for object in open {
        let status = object.job().request_job_status;
        let since = object.stamps().modified_at;
        let Some(deadline) = deadlines.of(status).filter(|d| since + *d < now) else { continue };
        let message = format!(
            "The job stayed `{}` from {} without news for more than {} minutes: marked failed by the stuck-job sweeper",
            status.as_str(),
            time::iso(since),
            deadline.whole_minutes()
        );
        let mut changes = Changes::modified(now);
        changes.job_status(T::KIND, object.uuid(), JobStatus::Failed)?.set("request_job_fail_msg", &message)?;
        changes.while_status(&[status]).while_equal("modified_at", &time::iso(since));
        match news.store.update_object::<T>(object.owner(), object.uuid(), changes).await {
            Ok(failed) => {
                report.failed += 1;
                tracing::warn!(job = %object.uuid(), kind = ?T::KIND, status = status.as_str(), "stuck job failed");
                news.failed(failed.moved(), now).await?;
            }
            Err(StoreError::ConditionFailed) => {} // it moved on: not stuck
            Err(other) => return Err(AppError::from(other)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_read_per_status() {
        let d = Deadlines::parse(DEFAULT_DEADLINES).unwrap();
        assert_eq!(d.of(JobStatus::Pending), Some(::time::Duration::hours(1)));
        assert_eq!(d.of(JobStatus::LongPending), Some(::time::Duration::hours(48)));
        assert_eq!(d.of(JobStatus::Validated), None);
        assert!(Deadlines::parse("finished=1h").unwrap_err().contains("end state"));
        assert!(Deadlines::parse("pending=1w").is_err());
        assert!(Deadlines::parse("bogus=1h").is_err());
        assert_eq!(Deadlines::parse("").unwrap(), Deadlines(BTreeMap::new()));
    }
}
