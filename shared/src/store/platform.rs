//! Maintenance phases, release notes and web contents.
use super::{decode, keys, Condition, DynamoStore, Entry, StoreResult};
use crate::domain::{
    content::Content,
    maintenance::MaintenancePhase,
    release_note::ReleaseNote,
    time::{self as t, DateTime},
};

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
}
