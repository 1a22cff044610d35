//! The cohort workspace: one partition per owner (`WS#<owner>`), one sort-key prefix per kind of
//! object. A listing reads the kinds it renders, in parallel, each a `begins_with` Query of small
//! items (query texts live in their own items). Deleted objects move under `BIN#`, out of every
//! listing and index.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select, Update};
use serde::{de::DeserializeOwned, Serialize};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{
    decode, keys, sdk_error, summaries, Condition, DynamoStore, Entry, Item, Key, StoreError, StoreResult, Write,
};
use crate::domain::{
    cohort::{
        rewrite_caresite_cohort_ids, CohortResult, DatedMeasure, FeasibilityStudy, FhirFilter, Folder, JobStatus, Kind,
        RefreshSchedule, Request, Snapshot, SnapshotQuery, Workspace,
    },
    time::{self, DateTime},
};

/// A workspace object: where it is stored and which indexes list it while it is alive.
pub trait WorkspaceObject: Serialize + DeserializeOwned + Clone + Send + 'static {
    const KIND: Kind;
    const ENTITY: &'static str;
    fn owner(&self) -> &str;
    fn uuid(&self) -> Uuid;
    fn mark_deleted(&mut self, at: DateTime, by_cascade: bool);
    fn indexed(&self, entry: Entry) -> Entry {
        entry
    }
}

macro_rules! workspace_object {
    ($type:ty, $kind:expr, $entity:literal $(, $index:expr)?) => {
        impl WorkspaceObject for $type {
            const KIND: Kind = $kind;
            const ENTITY: &'static str = $entity;
            fn owner(&self) -> &str {
                &self.owner
            }
            fn uuid(&self) -> Uuid {
                self.uuid
            }
            fn mark_deleted(&mut self, at: DateTime, by_cascade: bool) {
                self.stamps.deleted = Some(at);
                self.stamps.deleted_by_cascade = by_cascade;
            }
            $(fn indexed(&self, entry: Entry) -> Entry {
                ($index)(self, entry)
            })?
        }
    };
}

fn by_id<T: WorkspaceObject>(object: &T, entry: Entry) -> Entry {
    entry.gsi1(&keys::object_by_id(T::KIND, object.uuid()))
}

workspace_object!(Folder, Kind::Folder, "folder");
workspace_object!(Request, Kind::Request, "request", |r: &Request, entry: Entry| {
    // A new request has no snapshot yet; its first snapshot moves it (`ItemUpdate::snapshot_added`).
    summaries::list_entry(entry, Kind::Request, &r.owner, None, r.uuid)
});
workspace_object!(Snapshot, Kind::Snapshot, "snapshot");
/// Jobs are found by uuid, and listed while they have not ended.
fn job_indexes<T: WorkspaceObject>(object: &T, status: JobStatus, entry: Entry) -> Entry {
    let entry = by_id(object, entry);
    if status.is_final() {
        entry
    } else {
        entry.gsi2(&keys::open_job(T::KIND, object.uuid()))
    }
}

workspace_object!(DatedMeasure, Kind::DatedMeasure, "dated_measure", |m: &DatedMeasure, entry: Entry| {
    job_indexes(m, m.job.request_job_status, entry)
});
workspace_object!(CohortResult, Kind::Cohort, "cohort", |c: &CohortResult, entry: Entry| {
    let entry = job_indexes(c, c.job.request_job_status, entry);
    if c.is_subset {
        entry
    } else {
        summaries::list_entry(entry, Kind::Cohort, &c.owner, Some(c.stamps.created_at), c.uuid)
    }
});
workspace_object!(FeasibilityStudy, Kind::Study, "feasibility_study", |s: &FeasibilityStudy, entry: Entry| {
    job_indexes(s, s.job.request_job_status, entry)
});
workspace_object!(RefreshSchedule, Kind::Schedule, "refresh_schedule", |s: &RefreshSchedule, entry: Entry| {
    entry.gsi2(&keys::refresh_due(&time::iso(s.next_run), s.uuid))
});
workspace_object!(FhirFilter, Kind::Filter, "fhir_filter");

pub fn object_entry<T: WorkspaceObject>(object: &T) -> StoreResult<Entry> {
    let key = keys::workspace_object(T::KIND, object.owner(), object.uuid());
    Ok(object.indexed(Entry::new(T::ENTITY, &key, object)?))
}

/// A write of an alive object (creation: `MustNotExist`; replacement: `MustExist`).
pub fn put_object<T: WorkspaceObject>(object: &T, condition: Condition) -> StoreResult<Write> {
    Ok(Write::Put(object_entry(object)?, condition))
}

pub fn snapshot_query_write(owner: &str, snapshot: Uuid, query: &SnapshotQuery) -> StoreResult<Write> {
    Ok(Write::Put(Entry::new("snapshot_query", &keys::snapshot_query(owner, snapshot), query)?, Condition::None))
}

/// The guard keeping (name, resource) unique among an owner's alive saved filters, written with the
/// filter (`MustNotExist`: a taken name cancels the filter's write).
pub fn filter_name_guard(filter: &FhirFilter) -> StoreResult<Write> {
    let key = keys::filter_name_guard(&filter.owner, &filter.fhir_resource, &filter.name);
    let record = serde_json::json!({"filter": filter.uuid});
    Ok(Write::Put(Entry::new("filter_name_guard", &key, &record)?, Condition::MustNotExist))
}

/// The references from the perimeter cohort ids of a snapshot's population to the snapshot.
pub fn snapshot_perimeter_writes(snapshot: &Snapshot) -> StoreResult<Vec<Write>> {
    let mut ids: Vec<&String> = snapshot.perimeters_ids.iter().flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let key = keys::snapshot_perimeter(id, &snapshot.owner, snapshot.uuid);
            let record = serde_json::json!({"owner": snapshot.owner, "snapshot": snapshot.uuid});
            Ok(Write::Put(Entry::new("snapshot_perimeter", &key, &record)?, Condition::None))
        })
        .collect()
}

/// The history entry kept when a snapshot's query or a filter's text changes (spec §3.3).
pub fn patch_history_write(key: &Key, uuid: Uuid, version: i64, text: &str, now: DateTime) -> StoreResult<Write> {
    let record =
        serde_json::json!({"uuid": uuid, "patch_version": version, "text": text, "created_at": time::iso(now)});
    Ok(Write::Put(Entry::new("patch", key, &record)?, Condition::MustNotExist))
}

/// The writes moving objects to the bin, leaves first so that an interrupted delete leaves its
/// root visible and a retry finishes it.
pub struct Binning {
    pub writes: Vec<Vec<Write>>,
}

impl DynamoStore {
    /// The alive objects of `kinds` in `owner`'s workspace: one Query per kind, in parallel.
    pub async fn workspace(&self, owner: &str, kinds: &[Kind]) -> StoreResult<Workspace> {
        let mut tasks = JoinSet::new();
        for &kind in kinds {
            let (store, pk) = (self.clone(), keys::workspace_partition(owner));
            tasks.spawn(async move { (kind, store.query_partition(&pk, Some(keys::kind_prefix(kind)), true).await) });
        }
        let mut ws = Workspace::default();
        while let Some(joined) = tasks.join_next().await {
            let (kind, items) = joined.map_err(|e| StoreError::Sdk(format!("workspace query task: {e}")))?;
            let items = items?;
            match kind {
                Kind::Folder => ws.folders = decode_all(items)?,
                Kind::Request => ws.requests = decode_all(items)?,
                Kind::Snapshot => ws.snapshots = decode_all(items)?,
                Kind::DatedMeasure => ws.measures = decode_all(items)?,
                Kind::Cohort => ws.cohorts = decode_all(items)?,
                Kind::Study => ws.studies = decode_all(items)?,
                Kind::Schedule => ws.schedules = decode_all(items)?,
                Kind::Filter => ws.filters = decode_all(items)?,
            }
        }
        Ok(ws)
    }

    /// One alive object of the owner's workspace.
    pub async fn workspace_object<T: WorkspaceObject>(&self, owner: &str, uuid: Uuid) -> StoreResult<Option<T>> {
        self.get(&keys::workspace_object(T::KIND, owner, uuid)).await
    }

    /// Alive objects of the owner by uuid (one BatchGetItem; missing ones are left out).
    pub async fn workspace_objects<T: WorkspaceObject>(&self, owner: &str, uuids: &[Uuid]) -> StoreResult<Vec<T>> {
        let mut keys: Vec<Key> = uuids.iter().map(|u| keys::workspace_object(T::KIND, owner, *u)).collect();
        keys.sort_by(|a, b| a.sk.cmp(&b.sk));
        keys.dedup();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        decode_all(self.batch_get(keys).await?)
    }

    /// One alive object by uuid alone (index lookup: callbacks and applicative users).
    pub async fn object_by_id<T: WorkspaceObject>(&self, uuid: Uuid) -> StoreResult<Option<T>> {
        let key = keys::object_by_id(T::KIND, uuid);
        let items = self.query_index_prefix(keys::GSI1, &key.pk, &key.sk).await?;
        items.into_iter().next().map(decode).transpose()
    }

    /// Every alive object of a kind, all owners (applicative users' listings): 16 index Queries.
    pub async fn objects_of_everyone<T: WorkspaceObject>(&self) -> StoreResult<Vec<T>> {
        let mut tasks = JoinSet::new();
        for shard in keys::object_by_id_shards(T::KIND) {
            let store = self.clone();
            tasks.spawn(async move { store.query_index(keys::GSI1, &shard, None, true).await });
        }
        let mut all = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let items = joined.map_err(|e| StoreError::Sdk(format!("index query task: {e}")))??;
            all.extend(decode_all::<T>(items)?);
        }
        Ok(all)
    }

    /// Query texts of snapshots by uuid (BatchGetItem).
    pub async fn snapshot_queries(&self, owner: &str, snapshots: &[Uuid]) -> StoreResult<HashMap<Uuid, SnapshotQuery>> {
        let keys: Vec<Key> = snapshots.iter().map(|s| keys::snapshot_query(owner, *s)).collect();
        let mut out = HashMap::new();
        for item in self.batch_get(keys).await? {
            let sk = super::sk_of(&item).trim_start_matches("QUERY#").to_owned();
            if let Ok(uuid) = Uuid::parse_str(&sk) {
                out.insert(uuid, decode::<SnapshotQuery>(item)?);
            }
        }
        Ok(out)
    }

    pub async fn snapshot_query(&self, owner: &str, snapshot: Uuid) -> StoreResult<Option<SnapshotQuery>> {
        self.get(&keys::snapshot_query(owner, snapshot)).await
    }

    /// Sets or removes attributes of an alive object, leaving the others as they are (a rename never
    /// overwrites a status a callback wrote meanwhile). Returns the updated object.
    pub async fn update_object<T: WorkspaceObject>(&self, owner: &str, uuid: Uuid, changes: Changes) -> StoreResult<T> {
        let key = keys::workspace_object(T::KIND, owner, uuid);
        let (expression, condition, names, values) = changes.expression();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(super::key_item(&key)))
            .condition_expression(condition)
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| super::conditional(e, |s| s.is_conditional_check_failed_exception()))?;
        decode(out.attributes.unwrap_or_default())
    }

    /// The same changes as one operation of a transaction, on an alive object.
    pub fn update_write<T: WorkspaceObject>(&self, owner: &str, uuid: Uuid, changes: Changes) -> StoreResult<Write> {
        let key = keys::workspace_object(T::KIND, owner, uuid);
        let (expression, condition, names, values) = changes.expression();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(super::key_item(&key)))
            .condition_expression(condition)
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| StoreError::Sdk(e.to_string()))?;
        Ok(Write::Update(update))
    }

    /// Rewrites the perimeter cohort ids of every stored query that names one of `changes` (old id →
    /// new id), keeping the previous text in the query history. Returns the number of snapshots
    /// rewritten. Binned snapshots are left as they are.
    pub async fn rewrite_perimeter_cohort_ids(
        &self,
        changes: &HashMap<String, String>,
        now: DateTime,
    ) -> StoreResult<usize> {
        let mut targets: Vec<(String, Uuid)> = Vec::new();
        for old in changes.keys() {
            for item in self.query_partition(&keys::snapshot_perimeter_partition(old), None, true).await? {
                let reference: serde_json::Value = decode(item)?;
                let owner = reference["owner"].as_str().unwrap_or_default().to_owned();
                if let Some(uuid) = reference["snapshot"].as_str().and_then(|u| Uuid::parse_str(u).ok()) {
                    targets.push((owner, uuid));
                }
            }
        }
        targets.sort();
        targets.dedup();
        let mut rewritten = 0;
        for (owner, uuid) in targets {
            let (snapshot, text) =
                tokio::join!(self.workspace_object::<Snapshot>(&owner, uuid), self.snapshot_query(&owner, uuid));
            let (Some(snapshot), Some(mut text)) = (snapshot?, text?) else { continue };
            let Some(new_text) = rewrite_caresite_cohort_ids(&text.serialized_query, changes) else { continue };
            let new_ids: Option<Vec<String>> = snapshot
                .perimeters_ids
                .as_ref()
                .map(|ids| ids.iter().map(|id| changes.get(id).cloned().unwrap_or_else(|| id.clone())).collect());
            let version = snapshot.query_patches + 1;
            let mut writes = vec![patch_history_write(
                &keys::snapshot_query_patch(&owner, uuid, version),
                uuid,
                version,
                &text.serialized_query,
                now,
            )?];
            for old in snapshot.perimeters_ids.iter().flatten().filter(|id| changes.contains_key(*id)) {
                writes.push(Write::Delete(keys::snapshot_perimeter(old, &owner, uuid), Condition::None));
            }
            let updated = Snapshot { perimeters_ids: new_ids.clone(), ..snapshot.clone() };
            writes.extend(snapshot_perimeter_writes(&updated)?);
            text.serialized_query = new_text;
            writes.push(snapshot_query_write(&owner, uuid, &text)?);
            let mut update = Changes::modified(now);
            update.set("perimeters_ids", &new_ids)?.set("query_patches", &version)?;
            writes.push(self.update_write::<Snapshot>(&owner, uuid, update)?);
            match self.transact(writes).await {
                Ok(()) => rewritten += 1,
                // Deleted or edited meanwhile: the next sync sees it again if it still applies.
                Err(StoreError::TransactionConflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Ok(rewritten)
    }

    /// Alive refresh schedules whose next run is not after `now` (the due index).
    pub async fn due_schedules(&self, now: DateTime) -> StoreResult<Vec<RefreshSchedule>> {
        let upper = format!("{}#~", time::iso(now));
        let mut schedules = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI2)
                .key_condition_expression("gsi2pk = :pk AND gsi2sk <= :upper")
                .expression_attribute_values(":pk", AttributeValue::S(keys::REFRESH_DUE_PK.into()))
                .expression_attribute_values(":upper", AttributeValue::S(upper.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            schedules.extend(decode_all::<RefreshSchedule>(out.items.unwrap_or_default())?);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(schedules),
            }
        }
    }

    /// The alive schedule of a snapshot, through its guard item.
    pub async fn schedule_of_snapshot(&self, owner: &str, snapshot: Uuid) -> StoreResult<Option<RefreshSchedule>> {
        let Some(guard) = self.get::<serde_json::Value>(&keys::schedule_guard(snapshot)).await? else {
            return Ok(None);
        };
        let Some(uuid) = guard["schedule"].as_str().and_then(|u| Uuid::parse_str(u).ok()) else { return Ok(None) };
        self.workspace_object(owner, uuid).await
    }

    /// Every owner's objects of a kind whose job has not ended (the open-jobs index).
    pub async fn open_jobs<T: WorkspaceObject>(&self) -> StoreResult<Vec<T>> {
        decode_all(self.query_index(keys::GSI2, &keys::open_jobs_partition(T::KIND), None, true).await?)
    }

    /// `GET /cohort/cohorts/jobs/active/`: cohorts of every owner in new, validated, started or pending.
    pub async fn count_active_cohort_jobs(&self) -> StoreResult<i64> {
        let mut total = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI2)
                .key_condition_expression("gsi2pk = :pk")
                .filter_expression("request_job_status IN (:new, :validated, :started, :pending)")
                .expression_attribute_values(":pk", AttributeValue::S(keys::open_jobs_partition(Kind::Cohort)))
                .expression_attribute_values(":new", AttributeValue::S(JobStatus::New.as_str().into()))
                .expression_attribute_values(":validated", AttributeValue::S(JobStatus::Validated.as_str().into()))
                .expression_attribute_values(":started", AttributeValue::S(JobStatus::Started.as_str().into()))
                .expression_attribute_values(":pending", AttributeValue::S(JobStatus::Pending.as_str().into()))
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            total += i64::from(out.count);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }

    /// Soft-deletes the cascade of objects (spec §0.10; the first `roots` were asked for, the others
    /// are `deleted_by_cascade`): each moves to the bin in the same transaction as its removal from
    /// the alive prefix and from the summaries of the rows that show it; guards of binned filters and
    /// schedules go with them. `TransactionConflict` when a summary changed meanwhile (read the
    /// workspace again and retry: what was binned stays binned).
    pub async fn bin_objects(
        &self,
        ws: &Workspace,
        cascade: &[(Kind, Uuid)],
        roots: usize,
        now: DateTime,
    ) -> StoreResult<()> {
        let mut groups: Vec<(Vec<Write>, Vec<summaries::ItemUpdate>)> = Vec::new();
        let mut summary_changes = bin_summaries(ws, cascade)?;
        for (i, &(kind, uuid)) in cascade.iter().enumerate().rev() {
            let by_cascade = i >= roots;
            let mut writes = match kind {
                Kind::Folder => bin(ws.folders.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
                Kind::Request => bin(ws.requests.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
                Kind::Snapshot => bin(ws.snapshots.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
                Kind::DatedMeasure => bin(ws.measures.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
                Kind::Cohort => bin(ws.cohorts.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
                Kind::Study => bin(ws.studies.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
                Kind::Schedule => bin(ws.schedules.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
                Kind::Filter => bin(ws.filters.iter().find(|o| o.uuid == uuid), now, by_cascade)?,
            };
            match kind {
                Kind::Schedule => {
                    if let Some(s) = ws.schedules.iter().find(|o| o.uuid == uuid) {
                        writes.push(Write::Delete(keys::schedule_guard(s.request_snapshot), Condition::None));
                    }
                }
                Kind::Filter => {
                    if let Some(f) = ws.filters.iter().find(|o| o.uuid == uuid) {
                        writes.push(Write::Delete(
                            keys::filter_name_guard(&f.owner, &f.fhir_resource, &f.name),
                            Condition::None,
                        ));
                    }
                }
                _ => {}
            }
            groups.push((writes, summary_changes.remove(&(kind, uuid)).unwrap_or_default()));
        }
        // A transaction holds at most 100 operations, and touches an item once: an object's
        // operations and its summary changes stay together, summary changes merged per item.
        let mut batch: (Vec<Write>, Vec<summaries::ItemUpdate>) = (Vec::new(), Vec::new());
        let distinct = |updates: &[summaries::ItemUpdate]| {
            let mut keys: Vec<&Key> = updates.iter().map(|u| u.key()).collect();
            keys.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
            keys.dedup();
            keys.len()
        };
        for (writes, updates) in groups {
            let merged: Vec<summaries::ItemUpdate> = batch.1.iter().cloned().chain(updates.iter().cloned()).collect();
            if !batch.0.is_empty() && batch.0.len() + writes.len() + distinct(&merged) > 100 {
                let (done, changes) = std::mem::take(&mut batch);
                self.transact(done.into_iter().chain(self.updates(changes)?).collect()).await?;
            }
            batch.0.extend(writes);
            batch.1.extend(updates);
        }
        if !batch.0.is_empty() {
            let (done, changes) = batch;
            self.transact(done.into_iter().chain(self.updates(changes)?).collect()).await?;
        }
        Ok(())
    }
}

/// The summary changes of binning `cascade`, by the binned object they go with: the rows that
/// survive it forget its cohorts and requests (cohort sets of snapshots, cohorts built on counts,
/// samples of parents, the owner's counters), and a snapshot whose count used only by samples
/// becomes shown again shows it.
fn bin_summaries(
    ws: &Workspace,
    cascade: &[(Kind, Uuid)],
) -> StoreResult<HashMap<(Kind, Uuid), Vec<summaries::ItemUpdate>>> {
    use summaries::ItemUpdate;
    let binned: std::collections::HashSet<(Kind, Uuid)> = cascade.iter().copied().collect();
    let gone = |kind: Kind, uuid: Uuid| binned.contains(&(kind, uuid));
    let mut out: HashMap<(Kind, Uuid), Vec<ItemUpdate>> = HashMap::new();
    let mut after = ws.clone();
    after.cohorts.retain(|c| !gone(Kind::Cohort, c.uuid));
    let mut reshown: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    for &(kind, uuid) in cascade {
        let owner = match kind {
            Kind::Request => ws.request(uuid).map(|r| r.owner.as_str()),
            Kind::Cohort => ws.cohort(uuid).map(|c| c.owner.as_str()),
            _ => None,
        };
        let Some(owner) = owner else { continue };
        let updates = out.entry((kind, uuid)).or_default();
        let mut counts = ItemUpdate::counts(owner);
        if let Some(request) = ws.request(uuid).filter(|_| kind == Kind::Request) {
            counts.add_requests(-1);
            updates.push(counts);
            if !gone(Kind::Folder, request.parent_folder) && ws.folder(request.parent_folder).is_some() {
                let mut folder = ItemUpdate::folder(owner, request.parent_folder);
                folder.folder_requests(-1);
                updates.push(folder);
            }
            continue;
        }
        let Some(cohort) = ws.cohort(uuid) else { continue };
        if !cohort.is_subset {
            counts.add_cohorts(-1);
            updates.push(counts);
        }
        let snapshot = cohort.request_query_snapshot.and_then(|s| ws.snapshot(s));
        if let Some(snapshot) = snapshot.filter(|s| !gone(Kind::Request, s.request)) {
            let mut row = ItemUpdate::request(owner, snapshot.request);
            row.cohort_removed(snapshot.uuid, cohort.uuid);
            let shown = |ws: &Workspace| {
                crate::domain::summary::RequestSummary::from_workspace(ws, snapshot.request)
                    .snapshots
                    .remove(&snapshot.uuid)
                    .and_then(|s| s.newest_count)
            };
            if reshown.insert(snapshot.uuid) {
                let (was, will) = (shown(ws), shown(&after));
                if was != will {
                    // Guarded by the count shown now: a count created meanwhile makes the delete retry.
                    row.shown_count(snapshot.uuid, was.map(|c| c.dm), will.as_ref())?;
                }
            }
            updates.push(row);
        }
        for measure in [cohort.dated_measure, cohort.dated_measure_global].into_iter().flatten() {
            if !gone(Kind::DatedMeasure, measure) && ws.measure(measure).is_some() {
                let mut row = ItemUpdate::count(owner, measure);
                row.not_built_on(cohort.uuid);
                updates.push(row);
            }
        }
        if let Some(parent) = cohort.parent_cohort.filter(|p| !gone(Kind::Cohort, *p) && ws.cohort(*p).is_some()) {
            let mut row = ItemUpdate::cohort(owner, parent);
            row.sample_removed(cohort.uuid);
            updates.push(row);
        }
    }
    Ok(out)
}

fn bin<T: WorkspaceObject>(object: Option<&T>, now: DateTime, by_cascade: bool) -> StoreResult<Vec<Write>> {
    let Some(object) = object else { return Ok(Vec::new()) };
    let mut binned = object.clone();
    binned.mark_deleted(now, by_cascade);
    let bin_key = keys::binned_object(T::KIND, object.owner(), object.uuid());
    Ok(vec![
        Write::Put(Entry::new(T::ENTITY, &bin_key, &binned)?, Condition::None),
        Write::Delete(keys::workspace_object(T::KIND, object.owner(), object.uuid()), Condition::MustExist),
    ])
}

fn decode_all<T: DeserializeOwned>(items: Vec<Item>) -> StoreResult<Vec<T>> {
    items.into_iter().map(decode).collect()
}

/// Attribute changes of an update: values to set, `None` (or null) to remove; optionally only
/// while the job is in one of some statuses (a finished job never moves back).
#[derive(Clone)]
pub struct Changes {
    entries: Vec<(String, Option<AttributeValue>)>,
    while_status: Vec<JobStatus>,
    while_equal: Option<(String, AttributeValue)>,
    while_rev: Option<i64>,
    while_number: Option<(String, Option<i64>)>,
}

impl Changes {
    /// Changes stamped with a new `modified_at`.
    pub fn modified(now: DateTime) -> Self {
        Self {
            entries: vec![("modified_at".into(), Some(AttributeValue::S(time::iso(now))))],
            while_status: Vec::new(),
            while_equal: None,
            while_rev: None,
            while_number: None,
        }
    }

    /// Applies only while the text attribute `name` still holds `value` (a claim: one writer wins).
    pub fn while_equal(&mut self, name: &str, value: &str) -> &mut Self {
        self.while_equal = Some((name.to_owned(), AttributeValue::S(value.to_owned())));
        self
    }

    /// Applies only while no summary write touched the object since it was read at `rev`
    /// (`summaries::REV`), and bumps it.
    pub fn while_rev(&mut self, rev: i64) -> &mut Self {
        self.while_rev = Some(rev);
        self
    }

    /// Applies only while the number attribute `name` still holds `value` (`None`: absent).
    pub fn while_number(&mut self, name: &str, value: Option<i64>) -> &mut Self {
        self.while_number = Some((name.to_owned(), value));
        self
    }

    /// Applies only while `request_job_status` is one of `statuses` (else `ConditionFailed`).
    pub fn while_status(&mut self, statuses: &[JobStatus]) -> &mut Self {
        self.while_status = statuses.to_vec();
        self
    }

    /// A job's status (count, cohort or study), and its entry in the open-jobs index.
    pub fn job_status(&mut self, kind: Kind, uuid: Uuid, status: JobStatus) -> StoreResult<&mut Self> {
        self.set("request_job_status", &status)?;
        if status.is_final() {
            Ok(self.remove("gsi2pk").remove("gsi2sk"))
        } else {
            let key = keys::open_job(kind, uuid);
            self.set("gsi2pk", &key.pk)?.set("gsi2sk", &key.sk)
        }
    }

    /// A schedule's next run, and its place in the due index.
    pub fn schedule_next_run(&mut self, uuid: Uuid, next_run: DateTime) -> StoreResult<&mut Self> {
        let key = keys::refresh_due(&time::iso(next_run), uuid);
        self.set("next_run", &time::iso(next_run))?.set("gsi2pk", &key.pk)?.set("gsi2sk", &key.sk)
    }

    fn condition(&self, names: &mut HashMap<String, String>, values: &mut HashMap<String, AttributeValue>) -> String {
        let mut condition = "attribute_exists(pk)".to_owned();
        if !self.while_status.is_empty() {
            let mut placeholders = Vec::new();
            for (i, status) in self.while_status.iter().enumerate() {
                values.insert(format!(":s{i}"), AttributeValue::S(status.as_str().into()));
                placeholders.push(format!(":s{i}"));
            }
            condition.push_str(&format!(" AND request_job_status IN ({})", placeholders.join(", ")));
        }
        if let Some((name, value)) = &self.while_equal {
            names.insert("#expected".into(), name.clone());
            values.insert(":expected".into(), value.clone());
            condition.push_str(" AND #expected = :expected");
        }
        if let Some((name, value)) = &self.while_number {
            names.insert("#number".into(), name.clone());
            match value {
                Some(v) => {
                    values.insert(":number".into(), AttributeValue::N(v.to_string()));
                    condition.push_str(" AND #number = :number");
                }
                None => condition.push_str(" AND attribute_not_exists(#number)"),
            }
        }
        if let Some(rev) = self.while_rev {
            names.insert("#rev".into(), summaries::REV.into());
            values.insert(":rev".into(), AttributeValue::N(rev.to_string()));
            let unset = if rev == 0 { "attribute_not_exists(#rev) OR " } else { "" };
            condition.push_str(&format!(" AND ({unset}#rev = :rev)"));
        }
        condition
    }

    pub fn set<T: Serialize>(&mut self, name: &str, value: &T) -> StoreResult<&mut Self> {
        let v: AttributeValue =
            serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::Record(e.to_string()))?;
        self.entries.push((name.to_owned(), (!matches!(v, AttributeValue::Null(_))).then_some(v)));
        Ok(self)
    }

    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.entries.push((name.to_owned(), None));
        self
    }

    /// The object these changes make of `object` (what an update returns, without reading it back).
    pub fn apply_to<T: Serialize + DeserializeOwned>(&self, object: &mut T) -> StoreResult<()> {
        let mut item: Item = serde_dynamo::to_item(&*object).map_err(|e| StoreError::Record(e.to_string()))?;
        for (name, value) in &self.entries {
            match value {
                Some(v) => item.insert(name.clone(), v.clone()),
                None => item.remove(name),
            };
        }
        *object = decode(item)?;
        Ok(())
    }

    /// `SET … REMOVE …` with placeholder names and values, and the condition.
    fn expression(self) -> (String, String, HashMap<String, String>, HashMap<String, AttributeValue>) {
        let (mut sets, mut removes) = (Vec::new(), Vec::new());
        let (mut names, mut values) = (HashMap::new(), HashMap::new());
        let condition = self.condition(&mut names, &mut values);
        let bump_rev = self.while_rev.is_some();
        for (i, (name, value)) in self.entries.into_iter().enumerate() {
            names.insert(format!("#a{i}"), name);
            match value {
                Some(v) => {
                    values.insert(format!(":v{i}"), v);
                    sets.push(format!("#a{i} = :v{i}"));
                }
                None => removes.push(format!("#a{i}")),
            }
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str(&format!("SET {} ", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push_str(&format!("REMOVE {} ", removes.join(", ")));
        }
        if bump_rev {
            values.insert(":one".into(), AttributeValue::N("1".into()));
            expression.push_str("ADD #rev :one");
        }
        (expression.trim().to_owned(), condition, names, values)
    }
}
