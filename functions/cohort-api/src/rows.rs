//! The rows of the workspace lists. Once the table's summaries are complete (new tables, or after
//! the backfill), a row is its request or cohort item alone and the default order is the list index;
//! before that, rows are computed from the owner's whole workspace, as the lists always were.
use std::collections::HashMap;

use c360::{
    domain::{
        cohort::{CohortResult, Folder, Kind, Request, Snapshot, Workspace},
        summary::{CohortSummary, RequestSummary},
    },
    error::AppResult,
    http::AppState,
    store::summaries::{CohortRow, RequestKey, RequestRow},
};
use uuid::Uuid;

use crate::common::load;

/// What rendering requests from a workspace reads.
const REQUEST_KINDS: [Kind; 5] = [Kind::Folder, Kind::Request, Kind::Snapshot, Kind::DatedMeasure, Kind::Cohort];
/// What rendering cohorts from a workspace reads.
const COHORT_KINDS: [Kind; 4] = [Kind::Request, Kind::Snapshot, Kind::DatedMeasure, Kind::Cohort];

pub fn request_rows_of(ws: &Workspace) -> Vec<RequestRow> {
    ws.requests
        .iter()
        .map(|r| RequestRow { request: r.clone(), summary: RequestSummary::from_workspace(ws, r.uuid) })
        .collect()
}

/// Cohort rows computed from a workspace (cohorts written before `request` was kept get it here).
pub fn cohort_rows_of(ws: &Workspace) -> Vec<CohortRow> {
    ws.cohorts
        .iter()
        .map(|c| {
            let mut cohort = c.clone();
            if cohort.request.is_none() {
                cohort.request = c.request_query_snapshot.and_then(|s| ws.snapshot(s)).map(|s| s.request);
            }
            CohortRow { cohort, summary: CohortSummary::from_workspace(ws, c) }
        })
        .collect()
}

/// What filtering and ordering every request of the owner needs, their folders, and (tables not yet
/// backfilled) the rows themselves, computed from the workspace.
pub async fn all_requests(
    state: &AppState,
    owner: &str,
) -> AppResult<(Vec<RequestKey>, Vec<Folder>, Option<Vec<RequestRow>>)> {
    if state.store.workspace_layout_ready().await? {
        let (keys, folders) =
            tokio::join!(state.store.request_keys(owner), state.store.workspace(owner, &[Kind::Folder]));
        return Ok((keys?, folders?.folders, None));
    }
    let ws = load(state, owner, &REQUEST_KINDS).await?;
    let rows = request_rows_of(&ws);
    Ok((rows.iter().map(RequestKey::of).collect(), ws.folders.clone(), Some(rows)))
}

/// The rows of `uuids`, in that order: from `known` rows, else read by key.
pub async fn requests_by_id(
    state: &AppState,
    owner: &str,
    uuids: &[Uuid],
    known: Option<Vec<RequestRow>>,
) -> AppResult<Vec<RequestRow>> {
    let mut found: HashMap<Uuid, RequestRow> = match known {
        Some(rows) => rows.into_iter().map(|r| (r.request.uuid, r)).collect(),
        None => state.store.rows_by_id(owner, uuids, &[]).await?.0.into_iter().map(|r| (r.request.uuid, r)).collect(),
    };
    Ok(uuids.iter().filter_map(|u| found.remove(u)).collect())
}

/// One of the owner's requests.
pub async fn one_request(state: &AppState, owner: &str, uuid: Uuid) -> AppResult<Option<RequestRow>> {
    if state.store.workspace_layout_ready().await? {
        return Ok(state.store.request_row(owner, uuid).await?);
    }
    let ws = load(state, owner, &REQUEST_KINDS).await?;
    Ok(request_rows_of(&ws).into_iter().find(|r| r.request.uuid == uuid))
}

/// A page of the owner's requests in the default order (newest snapshot first) and their total,
/// or `None` while the summaries are incomplete.
pub async fn requests_page(
    state: &AppState,
    owner: &str,
    offset: usize,
    limit: usize,
) -> AppResult<Option<(usize, Vec<RequestRow>)>> {
    if !state.store.workspace_layout_ready().await? {
        return Ok(None);
    }
    let (counts, rows) =
        tokio::join!(state.store.workspace_counts(owner), state.store.request_rows_page(owner, offset, limit));
    let total = counts?.map_or(0, |(requests, _)| usize::try_from(requests).unwrap_or(0));
    Ok(Some((total, rows?)))
}

/// Every cohort of the owner (export subsets included: callers filter them).
pub async fn all_cohorts(state: &AppState, owner: &str) -> AppResult<Vec<CohortRow>> {
    if state.store.workspace_layout_ready().await? {
        return Ok(state.store.cohort_rows(owner).await?);
    }
    Ok(cohort_rows_of(&load(state, owner, &COHORT_KINDS).await?))
}

/// One of the owner's cohorts.
pub async fn one_cohort(state: &AppState, owner: &str, uuid: Uuid) -> AppResult<Option<CohortRow>> {
    if state.store.workspace_layout_ready().await? {
        return Ok(state.store.cohort_row(owner, uuid).await?);
    }
    Ok(cohort_rows_of(&load(state, owner, &COHORT_KINDS).await?).into_iter().find(|c| c.cohort.uuid == uuid))
}

/// A page of the owner's cohorts in the default order (newest first) and their total, or `None`
/// while the summaries are incomplete.
pub async fn cohorts_page(
    state: &AppState,
    owner: &str,
    offset: usize,
    limit: usize,
) -> AppResult<Option<(usize, Vec<CohortRow>)>> {
    if !state.store.workspace_layout_ready().await? {
        return Ok(None);
    }
    let (counts, rows) =
        tokio::join!(state.store.workspace_counts(owner), state.store.cohort_rows_page(owner, offset, limit));
    let total = counts?.map_or(0, |(_, cohorts)| usize::try_from(cohorts).unwrap_or(0));
    Ok(Some((total, rows?)))
}

/// The parent cohorts that cohort rows name (one BatchGetItem per owner, none without samples):
/// the only relation a row does not carry.
#[derive(Default)]
pub struct Parents(HashMap<Uuid, CohortResult>);

impl Parents {
    pub async fn of(state: &AppState, rows: &[&CohortRow]) -> AppResult<Self> {
        let mut by_owner: HashMap<&str, Vec<Uuid>> = HashMap::new();
        for row in rows {
            if let Some(parent) = row.cohort.parent_cohort {
                by_owner.entry(row.cohort.owner.as_str()).or_default().push(parent);
            }
        }
        let mut parents = HashMap::new();
        for (owner, uuids) in by_owner {
            let found = state.store.workspace_objects::<CohortResult>(owner, &uuids).await?;
            parents.extend(found.into_iter().map(|c| (c.uuid, c)));
        }
        Ok(Self(parents))
    }

    pub fn of_row(&self, row: &CohortRow) -> Option<&CohortResult> {
        row.cohort.parent_cohort.and_then(|p| self.0.get(&p))
    }
}

/// The owner's snapshot `uuid` with its request, if the request lists it (not a hidden copy of an
/// export subset): two GetItems, whatever the counts and cohorts the snapshot already has.
pub async fn visible_snapshot(
    state: &AppState,
    owner: &str,
    uuid: Option<Uuid>,
) -> AppResult<Option<(Snapshot, Request)>> {
    let Some(uuid) = uuid else { return Ok(None) };
    if !state.store.workspace_layout_ready().await? {
        let ws = load(state, owner, &COHORT_KINDS).await?;
        let snapshot = ws.snapshot(uuid).filter(|_| !ws.hidden_snapshot(uuid));
        return Ok(snapshot.and_then(|s| Some((s.clone(), ws.request(s.request)?.clone()))));
    }
    let Some(snapshot) = state.store.workspace_object::<Snapshot>(owner, uuid).await? else { return Ok(None) };
    let row = state.store.request_row(owner, snapshot.request).await?;
    let row = row.filter(|r| r.summary.snapshots.get(&uuid).is_some_and(|line| !line.hidden));
    Ok(row.map(|r| (snapshot, r.request)))
}
