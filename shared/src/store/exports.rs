//! Exports, datalabs and infrastructure providers (spec §3.4). An export is one item with its
//! tables; two index entries order it by creation (everyone's exports, one owner's exports) so that
//! a page of the list is one Query with `Limit`, and counters give the envelope's `count`.
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use uuid::Uuid;

use super::{
    cohort::{filter_name_guard, object_entry, put_object, snapshot_query_write},
    decode, key_item, keys, sdk_error,
    summaries::{cohort_entry_with, count_entry_with, ItemUpdate},
    Condition, DynamoStore, Entry, StoreError, StoreResult, Write,
};
use crate::domain::{
    cohort::{CohortResult, DatedMeasure, FhirFilter, Snapshot, SnapshotQuery},
    exports::{Datalab, Export, ExportResultStat, InfrastructureProvider},
    summary::{CohortSummary, CountLine, CountRole, RequestLine, SnapshotLine},
    time,
};

const EXPORT_ENTITY: &str = "export";

/// The item of an export with its two list entries.
fn export_entry(export: &Export) -> StoreResult<Entry> {
    let created = time::iso(export.stamps.created_at);
    Ok(Entry::new(EXPORT_ENTITY, &keys::export(export.uuid), export)?
        .gsi1(&keys::exports_listing(&created, export.uuid))
        .gsi2(&keys::exports_of(&export.owner, &created, export.uuid)))
}

/// The guard item of a datalab name: which datalab holds it.
#[derive(serde::Serialize)]
struct NameGuard {
    datalab: Uuid,
}

fn name_guard(datalab: &Datalab) -> StoreResult<Entry> {
    Entry::new("datalab_name", &keys::datalab_name_guard(&datalab.name), &NameGuard { datalab: datalab.uuid })
}

fn count_update(table: &str, key: &keys::Key) -> StoreResult<Write> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key_item(key)))
        .update_expression("ADD #v :one")
        .expression_attribute_names("#v", "value")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .build()
        .map_err(|e| StoreError::Sdk(e.to_string()))?;
    Ok(Write::Update(update))
}

/// A cohort subset of an export table (spec §7.4), in the export owner's workspace: the copy of the
/// source cohort's snapshot with the filtered query, the copy of its count, and the subset cohort.
pub struct NewSubset {
    pub snapshot: Snapshot,
    pub query: SnapshotQuery,
    pub measure: Option<DatedMeasure>,
    pub cohort: CohortResult,
    /// The request's name and description when the request is in that workspace (the source cohort
    /// is the export owner's): its row lists the hidden copy as it lists every snapshot.
    pub request: Option<RequestLine>,
}

impl NewSubset {
    /// The subset's items, and its request's summary changes (merged per request by the caller).
    fn writes(&self) -> StoreResult<(Vec<Write>, Option<ItemUpdate>)> {
        let (snapshot, cohort, owner) = (&self.snapshot, &self.cohort, &self.cohort.owner);
        let mut writes = vec![
            put_object(snapshot, Condition::MustNotExist)?,
            snapshot_query_write(owner, snapshot.uuid, &self.query)?,
        ];
        // No `RQS_PERIMETER` references: the query names the source cohort's group, not perimeters.
        if let Some(measure) = &self.measure {
            let built_on = [(cohort.uuid, CountRole::Size)].into();
            writes.push(Write::Put(count_entry_with(object_entry(measure)?, &built_on)?, Condition::MustNotExist));
        }
        let summary = CohortSummary {
            request: self.request.clone(),
            result_size: self.measure.as_ref().and_then(|m| m.measure),
            ..CohortSummary::default()
        };
        writes.push(Write::Put(cohort_entry_with(object_entry(cohort)?, &summary)?, Condition::MustNotExist));
        let Some(line) = &self.request else { return Ok((writes, None)) };
        let mut row = ItemUpdate::request(owner, snapshot.request);
        // A rename of the request meanwhile would miss this cohort's line: the creation reads again.
        row.still_named(line)
            .snapshot_added(owner, snapshot.request, snapshot.uuid, &SnapshotLine::of(snapshot))?
            .snapshot_hidden(snapshot.uuid)
            .cohort_added(snapshot.uuid, cohort.uuid);
        if let Some(measure) = &self.measure {
            row.count_created(snapshot.uuid, &CountLine::of(measure))?;
        }
        Ok((writes, Some(row)))
    }
}

impl DynamoStore {
    /// Writes a new export and counts it (one transaction).
    pub async fn create_export(&self, export: &Export) -> StoreResult<()> {
        self.create_export_with(export, &[], &[]).await
    }

    /// Writes a new export with the filters and cohort subsets its tables were given (spec §7.4), and
    /// counts it, in one transaction; past what one holds (23 subsets), in chunks with the export in
    /// the last, so that a failure leaves subsets no export names, never an export without its
    /// subsets. `TransactionConflict` when a filter's name is taken or a source request changed
    /// meanwhile.
    pub async fn create_export_with(
        &self,
        export: &Export,
        filters: &[FhirFilter],
        subsets: &[NewSubset],
    ) -> StoreResult<()> {
        let mut writes = Vec::new();
        for filter in filters {
            writes.push(put_object(filter, Condition::MustNotExist)?);
            writes.push(filter_name_guard(filter)?);
        }
        let mut rows = Vec::new();
        for subset in subsets {
            let (items, row) = subset.writes()?;
            writes.extend(items);
            rows.extend(row);
        }
        writes.extend(self.updates(rows)?);
        writes.push(Write::Put(export_entry(export)?, Condition::MustNotExist));
        writes.push(count_update(&self.table, &keys::exports_count())?);
        writes.push(count_update(&self.table, &keys::exports_count_of(&export.owner))?);
        self.transact_in_chunks(writes).await
    }

    pub async fn export(&self, uuid: Uuid) -> StoreResult<Option<Export>> {
        self.get(&keys::export(uuid)).await
    }

    /// Replaces an export read at revision `export.rev`, bumping it. `ConditionFailed` when another
    /// write came first: the caller reads again and decides anew.
    pub async fn save_export(&self, export: &Export) -> StoreResult<Export> {
        let mut next = export.clone();
        next.rev = export.rev + 1;
        next.stamps.modified_at = time::now();
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(export_entry(&next)?.item))
            .condition_expression("#rev = :rev")
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_values(":rev", AttributeValue::N(export.rev.to_string()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(next),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::ConditionFailed)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// How many exports exist, everyone's (`None`) or one owner's.
    pub async fn exports_count(&self, owner: Option<&str>) -> StoreResult<i64> {
        let key = match owner {
            Some(owner) => keys::exports_count_of(owner),
            None => keys::exports_count(),
        };
        #[derive(serde::Deserialize)]
        struct Counter {
            value: i64,
        }
        Ok(self.get::<Counter>(&key).await?.map_or(0, |c| c.value))
    }

    /// Exports `skip..skip + take`, newest first: reads `skip + take` index items, no more.
    pub async fn exports_page(&self, owner: Option<&str>, skip: usize, take: usize) -> StoreResult<Vec<Export>> {
        let (index, pk) = listing_partition(owner);
        self.index_page_newest_first(index, &pk, skip, take).await?.into_iter().map(decode).collect()
    }

    /// The exports of the listing that `keep` keeps, newest first and without their tables (a list row
    /// shows none): filtered and sorted lists. Read a Query page at a time, each export dropped or
    /// kept as it is decoded, so that 5,000 exports never sit in memory at once (50 such listings at
    /// once held 2 GB when every page was kept whole).
    pub async fn exports_matching(
        &self,
        owner: Option<&str>,
        keep: impl Fn(&Export) -> bool,
    ) -> StoreResult<Vec<Export>> {
        let (index, pk) = listing_partition(owner);
        let mut kept = Vec::new();
        self.index_each_page(index, &pk, false, |page| {
            for mut item in page {
                item.remove("tables");
                let export: Export = decode(item)?;
                if keep(&export) {
                    kept.push(export);
                }
            }
            Ok(())
        })
        .await?;
        Ok(kept)
    }

    /// The exports with these uuids, whole, in that order (the page of a filtered list, when its rows
    /// show the tables).
    pub async fn exports_by_uuid(&self, uuids: &[Uuid]) -> StoreResult<Vec<Export>> {
        let mut found: std::collections::HashMap<Uuid, Export> = self
            .batch_get(uuids.iter().map(|u| keys::export(*u)).collect())
            .await?
            .into_iter()
            .map(|item| decode::<Export>(item).map(|e| (e.uuid, e)))
            .collect::<StoreResult<_>>()?;
        Ok(uuids.iter().filter_map(|u| found.remove(u)).collect())
    }

    /// Every export created at or before `cutoff`, oldest first (the cleanup's candidates).
    pub async fn exports_created_until(&self, cutoff: time::DateTime) -> StoreResult<Vec<Export>> {
        // Sort keys are `<created_at ISO>#<uuid>`: `~` sorts after every uuid character.
        let bound = format!("{}#~", time::iso(cutoff));
        let condition = "gsi1pk = :pk AND gsi1sk <= :bound";
        let items = self.query_all(Some(keys::GSI1), condition, keys::EXPORTS_INDEX_PK, Some((":bound", &bound)), true);
        items.await?.into_iter().map(decode).collect()
    }

    /// Creates a datalab if its name is free (`ConditionFailed` otherwise).
    pub async fn create_datalab(&self, datalab: &Datalab) -> StoreResult<()> {
        let guard = name_guard(datalab)?;
        match self
            .transact(vec![
                Write::Put(Entry::new("datalab", &keys::datalab(datalab.uuid), datalab)?, Condition::MustNotExist),
                Write::Put(guard, Condition::MustNotExist),
            ])
            .await
        {
            Err(StoreError::TransactionConflict(_)) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }

    /// Replaces a datalab; a new name moves its guard (`ConditionFailed` when the name is taken).
    pub async fn update_datalab(&self, previous: &Datalab, datalab: &Datalab) -> StoreResult<()> {
        let mut writes =
            vec![Write::Put(Entry::new("datalab", &keys::datalab(datalab.uuid), datalab)?, Condition::MustExist)];
        if previous.name != datalab.name {
            let guard = name_guard(datalab)?;
            writes.push(Write::Put(guard, Condition::MustNotExist));
            writes.push(Write::Delete(keys::datalab_name_guard(&previous.name), Condition::None));
        }
        match self.transact(writes).await {
            Err(StoreError::TransactionConflict(_)) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }

    pub async fn datalab(&self, uuid: Uuid) -> StoreResult<Option<Datalab>> {
        self.get(&keys::datalab(uuid)).await
    }

    /// Every datalab (a few dozen: one partition).
    pub async fn datalabs(&self) -> StoreResult<Vec<Datalab>> {
        self.query_partition(keys::DATALABS_PK, Some("DATALAB#"), true).await?.into_iter().map(decode).collect()
    }

    pub async fn put_export_stat(&self, stat: &ExportResultStat, condition: Condition) -> StoreResult<()> {
        self.put(Entry::new("export_stat", &keys::export_stat(stat.uuid), stat)?, condition).await
    }

    /// Every export result stat (a few per export: one partition).
    pub async fn export_stats(&self) -> StoreResult<Vec<ExportResultStat>> {
        self.query_partition(keys::EXPORT_STATS_PK, Some("STAT#"), true).await?.into_iter().map(decode).collect()
    }

    pub async fn put_infrastructure_provider(
        &self,
        provider: &InfrastructureProvider,
        condition: Condition,
    ) -> StoreResult<()> {
        let entry = Entry::new("infrastructure_provider", &keys::infrastructure_provider(provider.uuid), provider)?;
        self.put(entry, condition).await
    }

    /// An infrastructure provider, soft-deleted ones included.
    pub async fn infrastructure_provider(&self, uuid: Uuid) -> StoreResult<Option<InfrastructureProvider>> {
        self.get(&keys::infrastructure_provider(uuid)).await
    }

    /// Every infrastructure provider, soft-deleted ones included (a handful: one partition).
    pub async fn infrastructure_providers(&self) -> StoreResult<Vec<InfrastructureProvider>> {
        let items = self.query_partition(keys::INFRA_PROVIDERS_PK, Some("PROVIDER#"), true).await?;
        items.into_iter().map(decode).collect()
    }
}

/// The index, partition and partition key attribute of a list: everyone's exports or one owner's.
fn listing_partition(owner: Option<&str>) -> (&'static str, String) {
    match owner {
        Some(owner) => (keys::GSI2, keys::exports_of_partition(owner)),
        None => (keys::GSI1, keys::EXPORTS_INDEX_PK.to_owned()),
    }
}

impl DynamoStore {
    /// Writes exports as [`Self::create_export`] does, with BatchWriteItem (25 a request) and one
    /// counter update per owner: load-test data only (no conditions).
    pub async fn seed_exports(&self, exports: &[Export]) -> StoreResult<()> {
        self.put_batched(exports.iter().map(export_entry).collect::<StoreResult<Vec<_>>>()?).await?;
        let mut per_owner: std::collections::BTreeMap<&str, i64> = Default::default();
        for export in exports {
            *per_owner.entry(&export.owner).or_default() += 1;
        }
        let total = (keys::exports_count(), exports.len() as i64);
        for (key, added) in per_owner.into_iter().map(|(owner, n)| (keys::exports_count_of(owner), n)).chain([total]) {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(&key)))
                .update_expression("ADD #v :n")
                .expression_attribute_names("#v", "value")
                .expression_attribute_values(":n", AttributeValue::N(added.to_string()))
                .send()
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
    }
}
