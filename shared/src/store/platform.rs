//! Maintenance phases, release notes, web contents and the request audit log.
use time::Duration;

use super::{decode, keys, Condition, DynamoStore, Entry, StoreError, StoreResult};
use crate::domain::{
    content::Content,
    maintenance::MaintenancePhase,
    release_note::ReleaseNote,
    request_log::RequestLog,
    time::{self as t, DateTime},
};

/// The days (UTC, newest first) a log listing has to read.
pub struct LogQuery {
    pub after: Option<DateTime>,
    pub before: Option<DateTime>,
}

fn day_of(dt: DateTime) -> String {
    t::iso(dt)[..10].to_owned()
}

fn day_of_log_id(id: i64) -> Option<String> {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(id) * 1_000).ok()?;
    Some(day_of(dt))
}

impl DynamoStore {
    pub async fn put_maintenance(&self, phase: &MaintenancePhase, condition: Condition) -> StoreResult<()> {
        let mut entry = Entry::new("maintenance", &keys::maintenance(phase.id), phase)?;
        if phase.delete_datetime.is_none() {
            entry = entry.gsi1(&keys::maintenance_by_end(&t::iso(phase.end_datetime), phase.id));
        }
        self.put(entry, condition).await
    }

    pub async fn maintenance(&self, id: i64) -> StoreResult<Option<MaintenancePhase>> {
        Ok(self.get::<MaintenancePhase>(&keys::maintenance(id)).await?.filter(|p| p.delete_datetime.is_none()))
    }

    pub async fn maintenances(&self) -> StoreResult<Vec<MaintenancePhase>> {
        let all: Vec<MaintenancePhase> = self
            .query_partition(keys::MAINTENANCES_PK, None, true)
            .await?
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|p| p.delete_datetime.is_none()).collect())
    }

    /// Alive phases whose end is not past: one Query on the end-sorted index.
    pub async fn maintenances_not_ended(&self, now: DateTime) -> StoreResult<Vec<MaintenancePhase>> {
        self.query_index(keys::GSI1, keys::MAINTENANCE_ENDS_PK, Some(&t::iso(now)), true)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    pub async fn release_notes(&self) -> StoreResult<Vec<ReleaseNote>> {
        self.query_partition(keys::RELEASE_NOTES_PK, None, false).await?.into_iter().map(decode).collect()
    }

    pub async fn release_note(&self, id: i64) -> StoreResult<Option<ReleaseNote>> {
        self.get(&keys::release_note(id)).await
    }

    pub async fn put_release_note(&self, note: &ReleaseNote, condition: Condition) -> StoreResult<()> {
        self.put(Entry::new("release_note", &keys::release_note(note.id), note)?, condition).await
    }

    pub async fn contents(&self) -> StoreResult<Vec<Content>> {
        let all: Vec<Content> = self
            .query_partition(keys::CONTENTS_PK, None, false)
            .await?
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|c| c.deleted_at.is_none()).collect())
    }

    pub async fn content(&self, id: i64) -> StoreResult<Option<Content>> {
        Ok(self.get::<Content>(&keys::content(id)).await?.filter(|c| c.deleted_at.is_none()))
    }

    pub async fn put_content(&self, content: &Content, condition: Condition) -> StoreResult<()> {
        self.put(Entry::new("content", &keys::content(content.id), content)?, condition).await
    }

    /// Stores a log entry; its id is the request time in microseconds, bumped on collision.
    pub async fn put_request_log(&self, mut log: RequestLog, retention: Duration) -> StoreResult<i64> {
        let expires = (log.requested_at + retention).unix_timestamp();
        for _ in 0..16 {
            let day = day_of_log_id(log.id).unwrap_or_else(|| day_of(log.requested_at));
            let entry = Entry::new("request_log", &keys::request_log(&day, log.id), &log)?.expires_at(expires);
            match self.put(entry, Condition::MustNotExist).await {
                Err(StoreError::ConditionFailed) => log.id += 1,
                other => return other.map(|_| log.id),
            }
        }
        Err(StoreError::ConditionFailed)
    }

    pub async fn request_log(&self, id: i64) -> StoreResult<Option<RequestLog>> {
        let Some(day) = day_of_log_id(id) else { return Ok(None) };
        self.get(&keys::request_log(&day, id)).await
    }

    /// Logs of the retention window (narrowed by the query's dates), newest first. One Query per
    /// day, eight at a time.
    pub async fn request_logs(
        &self,
        query: &LogQuery,
        retention_days: i64,
        now: DateTime,
    ) -> StoreResult<Vec<RequestLog>> {
        let oldest = now - Duration::days(retention_days);
        let from = query.after.map_or(oldest, |a| a.max(oldest));
        let to = query.before.map_or(now, |b| b.min(now));
        let mut days = Vec::new();
        let mut day = to;
        while day_of(day) >= day_of(from) {
            days.push(day_of(day));
            day -= Duration::days(1);
        }
        let mut logs = Vec::new();
        for batch in days.chunks(8) {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, day) in batch.iter().enumerate() {
                let (store, pk) = (self.clone(), keys::request_log_partition(day));
                tasks.spawn(async move { (i, store.query_partition(&pk, None, false).await) });
            }
            let mut results: Vec<(usize, StoreResult<Vec<super::Item>>)> = tasks.join_all().await;
            results.sort_by_key(|(i, _)| *i);
            for (_, items) in results {
                for item in items? {
                    logs.push(decode::<RequestLog>(item)?);
                }
            }
        }
        Ok(logs)
    }
}
