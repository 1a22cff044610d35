//! The one-shot backfill of the workspace list summaries (docs/data-model.md, "Workspace lists"):
//! for tables written before the summaries existed. Owner by owner, it computes every request's,
//! cohort's and count's summary from the owner's workspace and writes it, each item on condition
//! that no live write changed its summary since it was read (an owner that raced is read again),
//! then the owner's counters. A cursor records the last owner done, so a stopped run resumes after
//! it; running it again rewrites the same values. The last step marks the table's layout ready:
//! from then on the lists read only their rows.
use std::collections::BTreeSet;

use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{
    domain::{
        cohort::{CohortResult, DatedMeasure, Folder, Kind, Request, Snapshot, Workspace},
        summary::{cohorts_by_count, CohortSummary, RequestSummary},
        time,
    },
    store::{
        decode, keys,
        summaries::{built_on_of, cohort_summary_of, request_summary_of, ItemUpdate, REV},
        DynamoStore, Entry, Item, StoreError, StoreResult,
    },
};

/// How many item updates run at once.
const PARALLEL_WRITES: usize = 16;
/// How many times an owner whose summaries changed while it was computed is read again.
const OWNER_ATTEMPTS: usize = 5;

/// Where a run stands, reported after each owner.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub owners_done: usize,
    pub owners_total: usize,
    pub items_written: usize,
    pub elapsed_s: f64,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = if self.elapsed_s > 0.0 { self.owners_done as f64 / self.elapsed_s } else { 0.0 };
        write!(
            f,
            "{} / {} owners, {} items written, {:.1} owners/s",
            self.owners_done, self.owners_total, self.items_written, rate
        )
    }
}

fn raw_rev(item: &Item) -> i64 {
    item.get(REV).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Runs (or resumes) the backfill, calling `report` after each owner; marks the layout ready at the end.
pub async fn backfill_summaries(store: &DynamoStore, mut report: impl FnMut(&Progress)) -> StoreResult<Progress> {
    let started = std::time::Instant::now();
    let mut owners: Vec<String> = store.user_directory().await?.into_iter().map(|u| u.username).collect();
    owners.sort_unstable();
    let after = store.get::<serde_json::Value>(&keys::workspace_backfill_cursor()).await?;
    let after = after.and_then(|v| v["after"].as_str().map(str::to_owned));
    let mut progress = Progress { owners_total: owners.len(), ..Progress::default() };
    for owner in &owners {
        if after.as_deref().is_some_and(|a| owner.as_str() <= a) {
            progress.owners_done += 1;
            continue;
        }
        progress.items_written += backfill_owner(store, owner).await?;
        let cursor = serde_json::json!({"after": owner, "at": time::iso(time::now())});
        store
            .put(
                Entry::new("workspace_backfill", &keys::workspace_backfill_cursor(), &cursor)?,
                crate::store::Condition::None,
            )
            .await?;
        progress.owners_done += 1;
        progress.elapsed_s = started.elapsed().as_secs_f64();
        report(&progress);
    }
    store.mark_workspace_layout_ready().await?;
    store.delete(&keys::workspace_backfill_cursor(), crate::store::Condition::None).await?;
    progress.elapsed_s = started.elapsed().as_secs_f64();
    Ok(progress)
}

/// Writes one owner's summaries; returns the number of items written.
pub async fn backfill_owner(store: &DynamoStore, owner: &str) -> StoreResult<usize> {
    for _ in 0..OWNER_ATTEMPTS {
        match owner_once(store, owner).await {
            Err(StoreError::TransactionConflict(_)) => continue,
            other => return other,
        }
    }
    Err(StoreError::Sdk(format!("the summaries of {owner} kept changing during the backfill")))
}

async fn owner_once(store: &DynamoStore, owner: &str) -> StoreResult<usize> {
    let seen_counts = store.workspace_counts(owner).await?;
    let partition = keys::workspace_partition(owner);
    let read = |kind: Kind| {
        let (store, partition) = (store.clone(), partition.clone());
        async move { store.query_partition(&partition, Some(keys::kind_prefix(kind)), true).await }
    };
    let (folders, requests, snapshots, measures, cohorts) = tokio::try_join!(
        read(Kind::Folder),
        read(Kind::Request),
        read(Kind::Snapshot),
        read(Kind::DatedMeasure),
        read(Kind::Cohort)
    )?;
    let mut ws = Workspace {
        folders: folders.into_iter().map(decode::<Folder>).collect::<StoreResult<_>>()?,
        requests: requests.iter().cloned().map(decode::<Request>).collect::<StoreResult<_>>()?,
        snapshots: snapshots.into_iter().map(decode::<Snapshot>).collect::<StoreResult<_>>()?,
        measures: measures.iter().cloned().map(decode::<DatedMeasure>).collect::<StoreResult<_>>()?,
        cohorts: cohorts.iter().cloned().map(decode::<CohortResult>).collect::<StoreResult<_>>()?,
        ..Workspace::default()
    };
    // Cohorts written before `request` was kept get it from their snapshot.
    let request_of: std::collections::HashMap<Uuid, Uuid> = ws.snapshots.iter().map(|s| (s.uuid, s.request)).collect();
    for cohort in &mut ws.cohorts {
        if cohort.request.is_none() {
            cohort.request = cohort.request_query_snapshot.and_then(|s| request_of.get(&s).copied());
        }
    }
    let mut updates: Vec<ItemUpdate> = Vec::new();
    for (item, request) in requests.iter().zip(&ws.requests) {
        let summary = RequestSummary::from_workspace(&ws, request.uuid);
        let gone: Vec<Uuid> =
            request_summary_of(item).snapshots.into_keys().filter(|s| !summary.snapshots.contains_key(s)).collect();
        let mut update = ItemUpdate::request(owner, request.uuid);
        update.whole_request(owner, request.uuid, raw_rev(item), &summary, &gone)?;
        if let Some(folder) = &summary.folder {
            update.folder_line(folder)?;
        }
        updates.push(update);
    }
    for (item, cohort) in cohorts.iter().zip(&ws.cohorts) {
        let summary = CohortSummary::from_workspace(&ws, cohort);
        let stale: Vec<Uuid> =
            cohort_summary_of(item).samples.into_keys().filter(|s| !summary.samples.contains_key(s)).collect();
        let mut update = ItemUpdate::cohort(owner, cohort.uuid);
        update.whole_cohort(cohort, raw_rev(item), &summary, &stale)?;
        updates.push(update);
    }
    for folder in &ws.folders {
        let holds = ws.requests.iter().filter(|r| r.parent_folder == folder.uuid).count() as i64;
        if folder.requests_count != Some(holds) {
            let mut update = ItemUpdate::folder(owner, folder.uuid);
            update.whole_folder_requests(folder.requests_count, holds);
            updates.push(update);
        }
    }
    let built = cohorts_by_count(&ws);
    for (item, measure) in measures.iter().zip(&ws.measures) {
        let now: BTreeSet<Uuid> = built.get(&measure.uuid).map(|b| b.keys().copied().collect()).unwrap_or_default();
        let before = built_on_of(item);
        if before.keys().copied().collect::<BTreeSet<_>>() == now
            && now.iter().all(|c| before.get(c) == built[&measure.uuid].get(c))
        {
            continue;
        }
        let mut update = ItemUpdate::count(owner, measure.uuid);
        for cohort in before.keys().filter(|c| !now.contains(c)) {
            update.not_built_on(*cohort);
        }
        for (cohort, role) in built.get(&measure.uuid).into_iter().flatten() {
            update.built_on(*cohort, *role)?;
        }
        updates.push(update);
    }
    let written = updates.len();
    let mut pending = updates.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < PARALLEL_WRITES {
            let Some(update) = pending.next() else { break };
            let write = store.update(update)?;
            let store = store.clone();
            running.spawn(async move { store.transact(vec![write]).await });
        }
        let Some(done) = running.join_next().await else { break };
        done.map_err(|e| StoreError::Sdk(format!("backfill write task: {e}")))??;
    }
    let listed_cohorts = ws.cohorts.iter().filter(|c| !c.is_subset).count();
    if seen_counts.is_none() && ws.requests.is_empty() && listed_cohorts == 0 {
        // No workspace (most users): no counters, the lists count zero without them.
        return Ok(written);
    }
    let mut counts = ItemUpdate::counts(owner);
    counts.whole_counts(seen_counts, ws.requests.len() as i64, listed_cohorts as i64);
    store.transact(vec![store.update(counts)?]).await?;
    Ok(written + 1)
}
