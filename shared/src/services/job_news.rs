//! What follows a cohort job's status change, whoever wrote it (a callback, the cohort worker, the
//! stuck-job sweeper): the owner's WebSocket `job_status` event (spec §10.3), the refresh schedule's
//! record and e-mail (§5.9), the feasibility e-mails (§5.8), the re-check of the export an ended
//! subset was made for (§7.4). One place, so every path tells the owner the same things. Telling
//! never fails the status change it follows: delivery problems are logged.
use uuid::Uuid;

use crate::{
    clients::jobs::ExportQueue,
    clients::mail::Mailer,
    clients::push::Notifier,
    config::Settings,
    domain::{
        cohort::{CohortResult, DatedMeasure, FeasibilityStudy, Request, Snapshot},
        time::DateTime,
    },
    error::AppResult,
    services::notify::{self, ReportNews},
    store::{DynamoStore, StoreResult},
};

/// A job of any kind, as [`JobNews::failed`] tells it.
#[derive(Clone, Copy)]
pub enum Moved<'j> {
    Count(&'j DatedMeasure),
    Cohort(&'j CohortResult),
    Study(&'j FeasibilityStudy),
}

pub trait AsMoved {
    fn moved(&self) -> Moved<'_>;
}

impl AsMoved for DatedMeasure {
    fn moved(&self) -> Moved<'_> {
        Moved::Count(self)
    }
}

impl AsMoved for CohortResult {
    fn moved(&self) -> Moved<'_> {
        Moved::Cohort(self)
    }
}

impl AsMoved for FeasibilityStudy {
    fn moved(&self) -> Moved<'_> {
        Moved::Study(self)
    }
}

pub struct JobNews<'a, M: Mailer> {
    pub store: &'a DynamoStore,
    pub notifier: &'a Notifier,
    pub mailer: &'a M,
    pub settings: &'a Settings,
    /// Where an export whose subsets all finished is launched.
    pub exports: &'a ExportQueue,
}

impl<M: Mailer + Sync> JobNews<'_, M> {
    /// A count moved: its owner's event, then (when it ended) its refresh schedule's record.
    pub async fn count(&self, measure: &DatedMeasure, now: DateTime) -> AppResult<()> {
        self.notifier.count_status(measure).await;
        crate::services::refresh::record_refresh(self.store, self.mailer, self.settings, measure, now).await
    }

    /// A cohort moved: its owner's event, with the size of its count and its Global bounds as stored
    /// now (the count may have been written after the cohort was read).
    pub async fn cohort(&self, cohort: &CohortResult) -> StoreResult<()> {
        let measure = |uuid: Option<Uuid>| async move {
            match uuid {
                Some(uuid) => self.store.workspace_object::<DatedMeasure>(&cohort.owner, uuid).await,
                None => Ok(None),
            }
        };
        let (size, global) = tokio::join!(measure(cohort.dated_measure), measure(cohort.dated_measure_global));
        let size = size?.and_then(|m| m.measure);
        self.notifier.cohort_status(cohort, size, global?.as_ref()).await;
        if let Some(export) = cohort.export.filter(|_| cohort.is_subset && cohort.job.request_job_status.is_final()) {
            let outcome =
                crate::services::subsets::recheck_export(self.store, self.exports, self.mailer, self.settings, export)
                    .await?;
            tracing::info!(cohort = %cohort.uuid, %export, ?outcome, "export re-checked after its subset ended");
        }
        Ok(())
    }

    /// A job the worker or the sweeper ended as `failed`.
    pub async fn failed(&self, job: Moved<'_>, now: DateTime) -> AppResult<()> {
        match job {
            Moved::Count(measure) => self.count(measure, now).await,
            Moved::Cohort(cohort) => Ok(self.cohort(cohort).await?),
            Moved::Study(study) => Ok(self.study(study, ReportNews::Failed).await?),
        }
    }

    /// A feasibility study was launched, is ready or failed: its owner's e-mail.
    pub async fn study(&self, study: &FeasibilityStudy, news: ReportNews) -> StoreResult<()> {
        let (owner, studied) = tokio::join!(self.store.user(&study.owner), studied_request(self.store, study));
        let Some(owner) = owner? else { return Ok(()) };
        let name = studied?.map(|(request, _)| request.name).unwrap_or_default();
        let email = notify::feasibility_report(self.settings, &owner, &name, news);
        notify::deliver(self.mailer, email, "feasibility_report").await;
        Ok(())
    }
}

/// The request a study counts and the snapshot it counts (None once either is gone).
pub async fn studied_request(
    store: &DynamoStore,
    study: &FeasibilityStudy,
) -> StoreResult<Option<(Request, Snapshot)>> {
    let Some(snapshot) = store.workspace_object::<Snapshot>(&study.owner, study.request_query_snapshot).await? else {
        return Ok(None);
    };
    let request = store.workspace_object::<Request>(&study.owner, snapshot.request).await?;
    Ok(request.map(|request| (request, snapshot)))
}
