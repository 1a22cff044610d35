//! Applying a perimeter tree (a document in the original's CSV or JSON, or the FHIR server's
//! Organizations): new and changed perimeters are written, removed ones leave the tree and their
//! accesses are closed, and the accesses under moved perimeters are re-indexed. Idempotent: the
//! same source twice changes nothing.
use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::{
    clients::fhir::FhirClient,
    clients::jobs::{CohortJob, JobQueue},
    config::FhirSettings,
    domain::{
        access_rules::count_allowed_users,
        fhir_tree::{build_tree, virtual_cohorts_needed},
        perimeter::{parse_document, Perimeter, RecordDates},
        rights::RightSet,
        time::DateTime,
        tree::PerimeterTree,
        tree_sync::plan,
    },
    error::{AppError, AppResult},
    store::{Condition, DynamoStore, StoreError},
};

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub moved: usize,
    pub closed_accesses: usize,
    pub reindexed_accesses: usize,
    /// `(perimeter, old cohort id, new cohort id)`, for the stored queries that reference them.
    pub cohort_id_changes: Vec<(i64, Option<String>, Option<String>)>,
    /// Stored queries whose population named a perimeter cohort id that changed.
    pub rewritten_queries: usize,
}

/// What the FHIR perimeter sync did, and which virtual cohorts it leaves to create.
#[derive(Debug, PartialEq, Serialize)]
pub struct FhirSyncReport {
    #[serde(flatten)]
    pub tree: SyncReport,
    /// Active Organizations the FHIR server listed.
    pub organizations: usize,
    /// Perimeters that need a virtual cohort (§6.4): those without `cohort_id` (new ones included;
    /// listed by every sync until a callback sets one) and those whose descendants this sync changed.
    pub virtual_cohorts_needed: Vec<i64>,
    /// Creation jobs queued for them ([`queue_virtual_cohorts`]); their QueryExecutor callback
    /// (`PATCH /fhir-perimeters/{id}/`, [`set_virtual_cohort`]) fills `cohort_id`.
    pub virtual_cohorts_queued: usize,
}

/// Queues the creation of the virtual cohorts a FHIR sync found missing or outdated.
pub async fn queue_virtual_cohorts(jobs: &JobQueue, report: &mut FhirSyncReport) -> AppResult<()> {
    for &perimeter_id in &report.virtual_cohorts_needed {
        jobs.send(CohortJob::VirtualCohort { perimeter_id })
            .await
            .map_err(|e| AppError::internal(format!("virtual cohort job not queued: {e}")))?;
        report.virtual_cohorts_queued += 1;
    }
    Ok(())
}

pub async fn apply_document(store: &DynamoStore, document: &str, now: DateTime) -> AppResult<SyncReport> {
    let incoming = parse_document(document).map_err(|e| AppError::BadRequest(format!("tree document: {e}")))?;
    let current = store.perimeters().await?;
    apply(store, current, incoming, now).await
}

/// The FHIR perimeter sync (spec §10.1; `PUT /fhir-perimeters/_sync/` and the scheduled task): the
/// tree of the active Organizations replaces the stored one, keeping the existing cohort ids.
/// Nothing is written when FHIR fails or lists nothing usable.
pub async fn sync_fhir(
    store: &DynamoStore,
    settings: &FhirSettings,
    http: &reqwest::Client,
    now: DateTime,
) -> AppResult<FhirSyncReport> {
    const FHIR: &str = "FHIR server";
    let url = settings.url.as_deref().ok_or(AppError::Unconfigured { service: FHIR, setting: "FHIR_URL" })?;
    let client = FhirClient::new(url, settings.access_token.clone(), http.clone())
        .map_err(|e| AppError::upstream(FHIR, format!("FHIR_URL: {e}")))?;
    let organizations = client.active_organizations().await.map_err(|e| AppError::upstream(FHIR, e))?;
    let current = store.perimeters().await?;
    let incoming = build_tree(&organizations, &current, &settings.perimeter_types)
        .map_err(|e| AppError::upstream(FHIR, format!("its Organizations do not make a tree: {e}")))?;
    let needed = virtual_cohorts_needed(&stored_tree(current.clone())?, &new_tree(incoming.clone())?);
    Ok(FhirSyncReport {
        tree: apply(store, current, incoming, now).await?,
        organizations: organizations.len(),
        virtual_cohorts_needed: needed,
        virtual_cohorts_queued: 0,
    })
}

/// The virtual-cohort callback (`PATCH /fhir-perimeters/{id}/`, §6.6): sets the perimeter's
/// `cohort_id` and `cohort_size`, and makes containers reload the tree.
pub async fn set_virtual_cohort(
    store: &DynamoStore,
    perimeter: i64,
    cohort_id: Option<&str>,
    cohort_size: Option<&str>,
) -> AppResult<()> {
    store.set_perimeter_cohort(perimeter, cohort_id, cohort_size).await.map_err(|e| match e {
        StoreError::ConditionFailed => AppError::NotFound("Perimeter"),
        e => e.into(),
    })?;
    let version = store.bump_perimeters_version().await?;
    // The previous version's snapshot plus this change is the new one: patched, not rebuilt from
    // every record (a FHIR sync is followed by one callback per virtual cohort). Otherwise the next
    // container to load the tree rebuilds it.
    if let (_, Some(previous)) = store.perimeter_tree_snapshot().await? {
        if previous.version == version - 1 {
            let patched = PerimeterTree::decode(&previous.bytes)
                .and_then(|mut tree| tree.set_cohort(perimeter, cohort_id, cohort_size).map(|()| tree));
            if let Ok(tree) = patched {
                store_snapshot(store, version, &tree).await;
            }
        }
    }
    Ok(())
}

/// The current tree and its version: the stored snapshot when it is as recent as the version, else
/// rebuilt from the records and stored back (tables written before snapshots existed, a snapshot
/// lost to a race), so the next container reads the snapshot.
pub async fn current_tree(store: &DynamoStore) -> AppResult<(i64, PerimeterTree)> {
    let (version, snapshot) = store.perimeter_tree_snapshot().await?;
    if let Some(snapshot) = snapshot.filter(|s| s.version >= version) {
        match PerimeterTree::decode(&snapshot.bytes) {
            Ok(tree) => return Ok((snapshot.version, tree)),
            Err(e) => tracing::warn!(error = %e, "tree snapshot unreadable: rebuilt from the records"),
        }
    }
    // Records read after the version: the tree is at least that version.
    let tree = stored_tree(store.perimeters().await?)?;
    store_snapshot(store, version, &tree).await;
    Ok((version, tree))
}

/// After a tree write: bumps the version, so containers reload, and stores the snapshot they load.
pub async fn publish_tree(store: &DynamoStore) -> AppResult<()> {
    let version = store.bump_perimeters_version().await?;
    let tree = stored_tree(store.perimeters().await?)?;
    store_snapshot(store, version, &tree).await;
    Ok(())
}

/// Best effort: without a current snapshot, containers rebuild the tree from the records.
async fn store_snapshot(store: &DynamoStore, version: i64, tree: &PerimeterTree) {
    match store.put_perimeter_tree_snapshot(version, &tree.encode()).await {
        Ok(true) => tracing::info!(version, perimeters = tree.len(), "tree snapshot stored"),
        Ok(false) => {} // a more recent one is there already
        Err(e) => tracing::warn!(version, error = %e, "tree snapshot not stored"),
    }
}

fn stored_tree(perimeters: Vec<Perimeter>) -> AppResult<PerimeterTree> {
    PerimeterTree::new(perimeters).map_err(|e| AppError::Internal(format!("stored tree: {e}")))
}

fn new_tree(perimeters: Vec<Perimeter>) -> AppResult<PerimeterTree> {
    PerimeterTree::new(perimeters).map_err(|e| AppError::BadRequest(format!("tree document: {e}")))
}

async fn apply(
    store: &DynamoStore,
    current: Vec<Perimeter>,
    incoming: Vec<Perimeter>,
    now: DateTime,
) -> AppResult<SyncReport> {
    let new_tree = new_tree(incoming.clone())?;
    let old_tree = stored_tree(current.clone())?;
    let plan = plan(&current, &incoming);
    let mut report = SyncReport {
        added: plan.upserts.iter().filter(|p| !old_tree.contains(p.id)).count(),
        updated: plan.upserts.iter().filter(|p| old_tree.contains(p.id)).count(),
        removed: plan.removed.len(),
        moved: plan.moved.len(),
        cohort_id_changes: plan.cohort_id_changes.clone(),
        ..Default::default()
    };
    if plan.is_empty() {
        return Ok(report);
    }
    // Accesses on removed perimeters end now (future ones too: they could never become usable).
    for &id in &plan.removed {
        let path = old_tree.path(id);
        for mut access in store.accesses_under(&format!("{path}#")).await? {
            if access.end_datetime.is_none_or(|end| end > now) {
                access.end_datetime = Some(now);
                access.update_datetime = now;
                store.save_access(&access, &path, Condition::MustExist).await?;
                report.closed_accesses += 1;
            }
        }
    }
    // A moved perimeter changes the path of every access in its subtree.
    for &id in &plan.moved {
        for access in store.accesses_under(&old_tree.path(id)).await? {
            let Some(perimeter) = access.perimeter_id.filter(|p| new_tree.contains(*p)) else { continue };
            store.save_access(&access, &new_tree.path(perimeter), Condition::MustExist).await?;
            report.reindexed_accesses += 1;
        }
    }
    let inserted_at: HashMap<i64, Option<DateTime>> = current.iter().map(|p| (p.id, p.dates.insert_datetime)).collect();
    let stamped: Vec<Perimeter> = plan
        .upserts
        .iter()
        .map(|p| {
            let inserted = inserted_at.get(&p.id).copied().flatten().unwrap_or(now);
            Perimeter {
                dates: RecordDates { insert_datetime: Some(inserted), update_datetime: Some(now) },
                ..p.clone()
            }
        })
        .collect();
    store.put_perimeters(&stamped).await?;
    // Queries name perimeters by cohort id (spec §10.1): follow the new ids.
    let renamed: HashMap<String, String> = plan
        .cohort_id_changes
        .iter()
        .filter_map(|(_, old, new)| Some((old.clone()?, new.clone()?)))
        .filter(|(old, new)| old != new)
        .collect();
    if !renamed.is_empty() {
        report.rewritten_queries = store.rewrite_perimeter_cohort_ids(&renamed, now).await?;
    }
    let removed: Vec<Perimeter> = current.into_iter().filter(|p| plan.removed.contains(&p.id)).collect();
    store.remove_perimeters(&removed).await?;
    publish_tree(store).await?;
    Ok(report)
}

/// Recomputes the allowed-users counters of every perimeter (the `count_users_on_perimeters`
/// task) and writes those that changed. Returns how many perimeters changed. The tree's version
/// stays: containers hold no counter (pages read them from the records).
pub async fn refresh_allowed_users(store: &DynamoStore, now: DateTime) -> AppResult<usize> {
    let perimeters = store.perimeters().await?;
    let tree = PerimeterTree::new(perimeters.clone()).map_err(|e| AppError::Internal(format!("stored tree: {e}")))?;
    let roles: HashMap<i64, RightSet> =
        store.roles().await?.into_iter().filter(|r| r.delete_datetime.is_none()).map(|r| (r.id, r.rights)).collect();
    let active_profiles: HashSet<i64> = store.active_profile_ids().await?;
    let accesses = store.accesses_under("/").await?;
    let holders = accesses
        .iter()
        .filter(|a| a.is_valid_at(now) && active_profiles.contains(&a.profile_id))
        .filter_map(|a| Some((a.username.as_str(), a.perimeter_id?, *roles.get(&a.role_id)?)));
    let counts = count_allowed_users(&tree, holders);
    let changed: Vec<Perimeter> = perimeters
        .into_iter()
        .filter_map(|mut p| {
            let fresh = counts.get(&p.id).copied().unwrap_or_default();
            (p.allowed_users != fresh).then(|| {
                p.allowed_users = fresh;
                p
            })
        })
        .collect();
    if !changed.is_empty() {
        store.put_perimeters(&changed).await?;
    }
    Ok(changed.len())
}
