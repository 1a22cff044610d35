//! Roles, profiles, accesses and perimeters: the data of the rights computations.
use std::collections::HashMap;

use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    primitives::Blob,
    types::{AttributeValue, Delete, Put, PutRequest, ReturnValue, TransactWriteItem, Update, WriteRequest},
};

use super::{
    conditional, decode, key_item, keys, sdk_error, sk_of, Condition, DynamoStore, Entry, Item, StoreError,
    StoreResult, Write,
};
use crate::domain::{
    perimeter::Perimeter,
    rights::{Access, Profile, Role},
    time,
    user::Window,
};

/// Tree snapshot chunks stay well below DynamoDB's 400 KB per item.
const TREE_CHUNK_BYTES: usize = 350_000;
/// One transaction writes a snapshot (at most 4 MB): 10 chunks, 3.5 MB deflated, several times the
/// largest tree in sight (AP-HP's, ~30k perimeters, deflates to a few hundred KB).
const TREE_MAX_CHUNKS: usize = 10;

/// A stored tree snapshot (`PerimeterTree::encode`) and the tree version it was built at.
pub struct TreeSnapshot {
    pub version: i64,
    pub bytes: Vec<u8>,
}

fn version_of(item: &Item) -> Option<i64> {
    item.get("version").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

pub fn profile_entry(profile: &Profile) -> StoreResult<Entry> {
    Ok(Entry::new("profile", &keys::profile(&profile.username, profile.id), profile)?
        .gsi1(&keys::profile_lookup(profile.id))
        .gsi2(&keys::profiles_index(&profile.username, profile.id)))
}

/// `perimeter_path` is the path of the access's perimeter in the tree (`PerimeterTree::path`).
pub fn access_entry(access: &Access, perimeter_path: &str) -> StoreResult<Entry> {
    Ok(Entry::new("access", &keys::access(&access.username, access.id), access)?
        .gsi1(&keys::access_lookup(access.id))
        .gsi2(&keys::access_by_perimeter_path(perimeter_path, access.id)))
}

/// The update of the user's directory summary that goes with an access write.
fn window_update(table: &str, access: &Access) -> StoreResult<Update> {
    let key = keys::user(&access.username);
    let builder = Update::builder()
        .table_name(table)
        .set_key(Some(key_item(&key)))
        .expression_attribute_names("#id", access.id.to_string())
        .condition_expression("attribute_exists(pk)");
    let builder = if access.delete_datetime.is_some() {
        builder.update_expression("REMOVE directory.access_windows.#id")
    } else {
        let window = Window { start: access.start_datetime, end: access.end_datetime };
        let value = serde_dynamo::to_attribute_value(&window).map_err(|e| StoreError::Record(e.to_string()))?;
        builder.update_expression("SET directory.access_windows.#id = :w").expression_attribute_values(":w", value)
    };
    builder.build().map_err(|e| StoreError::Sdk(e.to_string()))
}

impl DynamoStore {
    pub async fn roles(&self) -> StoreResult<Vec<Role>> {
        self.query_partition(keys::ROLES_PK, None, true).await?.into_iter().map(decode).collect()
    }

    /// Saves a role and keeps its name unique among alive roles: `ConditionFailed` when another
    /// alive role holds the name. `previous_name` is the stored name when the role exists already.
    pub async fn save_role(&self, role: &Role, previous_name: Option<&str>) -> StoreResult<()> {
        let role_entry = Entry::new("role", &keys::role(role.id), role)?;
        let mut writes = vec![Write::Put(
            role_entry,
            if previous_name.is_some() { Condition::MustExist } else { Condition::MustNotExist },
        )];
        let renamed = previous_name.map(str::to_lowercase) != Some(role.name.to_lowercase());
        let alive = role.delete_datetime.is_none();
        if let Some(old) = previous_name.filter(|_| renamed || !alive) {
            writes.push(Write::Delete(keys::role_name_guard(old), Condition::None));
        }
        if alive && renamed {
            let guard = Entry::new(
                "role_name_guard",
                &keys::role_name_guard(&role.name),
                &serde_json::json!({"role_id": role.id}),
            )?;
            writes.push(Write::Put(guard, Condition::MustNotExist));
        }
        match self.transact(writes).await {
            Err(StoreError::TransactionConflict(_)) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }

    pub async fn profile(&self, id: i64) -> StoreResult<Option<Profile>> {
        let key = keys::profile_lookup(id);
        let items = self.query_index(keys::GSI1, &key.pk, None, true).await?;
        items.into_iter().next().map(decode).transpose()
    }

    /// Every profile, sorted by username (the `PROFILES` index partition).
    pub async fn profiles(&self) -> StoreResult<Vec<Profile>> {
        self.query_index(keys::GSI2, keys::PROFILES_INDEX_PK, None, true).await?.into_iter().map(decode).collect()
    }

    pub async fn access(&self, id: i64) -> StoreResult<Option<Access>> {
        let key = keys::access_lookup(id);
        let items = self.query_index(keys::GSI1, &key.pk, None, true).await?;
        Ok(items.into_iter().next().map(decode::<Access>).transpose()?.filter(|a| a.delete_datetime.is_none()))
    }

    /// Accesses whose perimeter path starts with `path_prefix` (`/` = all), deleted ones excluded.
    pub async fn accesses_under(&self, path_prefix: &str) -> StoreResult<Vec<Access>> {
        Ok(self.indexed_accesses(path_prefix).await?.into_iter().map(|(_, a)| a).collect())
    }

    /// Like [`Self::accesses_under`], each access with its index sort key (`<perimeter path>#<id>`),
    /// so a copy in memory answers the same prefixes.
    pub async fn indexed_accesses(&self, path_prefix: &str) -> StoreResult<Vec<(String, Access)>> {
        let items = self.query_index_prefix(keys::GSI2, keys::ACCESSES_INDEX_PK, path_prefix).await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let sort_key = item.get("gsi2sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let access: Access = decode(item)?;
            if access.delete_datetime.is_none() {
                out.push((sort_key, access));
            }
        }
        Ok(out)
    }

    /// Writes an access and the matching entry of its user's directory summary, atomically, then
    /// bumps the accesses version so every container's copy of the index reloads.
    pub async fn save_access(&self, access: &Access, perimeter_path: &str, condition: Condition) -> StoreResult<()> {
        let entry = access_entry(access, perimeter_path)?;
        self.transact(vec![Write::Put(entry, condition), Write::Update(window_update(&self.table, access)?)]).await?;
        self.bump_version(&keys::accesses_version()).await
    }

    /// Writes entries with BatchWriteItem (25 a request), without conditions: bulk loads only.
    pub async fn put_batched(&self, entries: Vec<Entry>) -> StoreResult<()> {
        let writes_accesses = entries.iter().any(|e| e.is_entity("access"));
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let mut requests = Vec::with_capacity(25);
            for entry in entries.by_ref().take(25) {
                let put = PutRequest::builder()
                    .set_item(Some(entry.item))
                    .build()
                    .map_err(|e| StoreError::Sdk(e.to_string()))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            let mut pending = Some(HashMap::from([(self.table.clone(), requests)]));
            while let Some(items) = pending.take().filter(|m| m.values().any(|v| !v.is_empty())) {
                let out =
                    self.client.batch_write_item().set_request_items(Some(items)).send().await.map_err(sdk_error)?;
                pending = out.unprocessed_items;
            }
        }
        if writes_accesses {
            self.bump_version(&keys::accesses_version()).await?;
        }
        Ok(())
    }

    /// Writes perimeters in batches of 25. Call [`Self::bump_perimeters_version`] once the tree is
    /// complete, so containers reload it.
    pub async fn put_perimeters(&self, perimeters: &[Perimeter]) -> StoreResult<()> {
        let entries = perimeters
            .iter()
            .map(|p| Entry::new("perimeter", &keys::perimeter(p.id), p))
            .collect::<StoreResult<Vec<_>>>()?;
        self.put_batched(entries).await
    }

    /// Ids of the active, alive profiles (the `PROFILES` index): whose accesses count.
    pub async fn active_profile_ids(&self) -> StoreResult<std::collections::HashSet<i64>> {
        Ok(self
            .profiles()
            .await?
            .into_iter()
            .filter(|p| p.is_active == Some(true) && p.delete_datetime.is_none())
            .map(|p| p.id)
            .collect())
    }

    /// Moves removed perimeters out of the tree partition, keeping their record (history).
    pub async fn remove_perimeters(&self, perimeters: &[Perimeter]) -> StoreResult<()> {
        let removed_at = time::iso(time::now());
        for p in perimeters {
            let tombstone =
                Entry::new("removed_perimeter", &keys::removed_perimeter(p.id), p)?.text("removed_at", &removed_at);
            self.transact(vec![
                Write::Put(tombstone, Condition::None),
                Write::Delete(keys::perimeter(p.id), Condition::None),
            ])
            .await?;
        }
        Ok(())
    }

    /// Returns the new version.
    pub async fn bump_perimeters_version(&self) -> StoreResult<i64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::perimeters_version())))
            .update_expression("ADD #v :one SET updated_at = :at")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":at", AttributeValue::S(time::iso(time::now())))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(sdk_error)?;
        out.attributes
            .as_ref()
            .and_then(version_of)
            .ok_or_else(|| StoreError::Sdk("the tree version update returned no version".into()))
    }

    /// The tree version: a GetItem, so containers check freshness without reading the tree.
    pub async fn perimeters_version(&self) -> StoreResult<i64> {
        self.version(&keys::perimeters_version()).await
    }

    /// The accesses version (see [`Self::save_access`]).
    pub async fn accesses_version(&self) -> StoreResult<i64> {
        self.version(&keys::accesses_version()).await
    }

    async fn bump_version(&self, key: &keys::Key) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .update_expression("ADD #v :one SET updated_at = :at")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":at", AttributeValue::S(time::iso(time::now())))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn version(&self, key: &keys::Key) -> StoreResult<i64> {
        let item: Option<Item> = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?
            .item;
        Ok(item.as_ref().and_then(version_of).unwrap_or(0))
    }

    pub async fn perimeters(&self) -> StoreResult<Vec<Perimeter>> {
        self.query_partition(keys::PERIMETERS_PK, None, true).await?.into_iter().map(decode).collect()
    }

    /// A perimeter's record, if it is in the tree.
    pub async fn perimeter(&self, id: i64) -> StoreResult<Option<Perimeter>> {
        self.get(&keys::perimeter(id)).await
    }

    /// The records of the perimeters among `ids` that are in the tree (BatchGetItem).
    pub async fn perimeters_by_id(&self, ids: &[i64]) -> StoreResult<HashMap<i64, Perimeter>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let items = self.batch_get(ids.into_iter().map(keys::perimeter).collect()).await?;
        items.into_iter().map(|item| decode::<Perimeter>(item).map(|p| (p.id, p))).collect()
    }

    /// The tree version and the stored tree snapshot, whole, if there is one: one Query (their
    /// partition holds nothing else).
    pub async fn perimeter_tree_snapshot(&self) -> StoreResult<(i64, Option<TreeSnapshot>)> {
        let items = self.query_partition(keys::PERIMETERS_META_PK, None, true).await?;
        let mut version = 0;
        let mut chunks: Vec<(usize, i64, usize, Vec<u8>)> = Vec::new();
        for mut item in items {
            let sort = sk_of(&item).to_owned();
            if sort == keys::PERIMETERS_VERSION_SK {
                version = version_of(&item).unwrap_or(0);
            } else if let Some(index) = keys::perimeter_tree_chunk_index(&sort) {
                let count = item.get("chunks").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
                let data = item.remove("data").and_then(|v| v.as_b().ok().map(|b| b.clone().into_inner()));
                if let (Some(chunk_version), Some(count), Some(data)) = (version_of(&item), count, data) {
                    chunks.push((index, chunk_version, count, data));
                }
            }
        }
        // Whole: chunks 0..count of one version (leftovers of a longer, older snapshot are ignored).
        let Some(&(0, snapshot_version, count, _)) = chunks.first() else { return Ok((version, None)) };
        let parts: Vec<_> = chunks.into_iter().take(count).collect();
        let whole = parts.len() == count
            && parts
                .iter()
                .enumerate()
                .all(|(i, (index, v, c, _))| *index == i && *v == snapshot_version && *c == count);
        let snapshot = whole.then(|| TreeSnapshot {
            version: snapshot_version,
            bytes: parts.into_iter().flat_map(|(_, _, _, data)| data).collect(),
        });
        Ok((version, snapshot))
    }

    /// Stores `bytes` as the snapshot of tree version `version`, in chunks written by one
    /// transaction (readers never see two snapshots mixed), unless a more recent one is stored.
    /// One of the same version is replaced (it may be unreadable; both hold the tree as of at least
    /// that version). Returns whether it was written.
    pub async fn put_perimeter_tree_snapshot(&self, version: i64, bytes: &[u8]) -> StoreResult<bool> {
        let chunks: Vec<&[u8]> = bytes.chunks(TREE_CHUNK_BYTES).collect();
        if chunks.len() > TREE_MAX_CHUNKS {
            return Err(StoreError::Record(format!("a tree snapshot of {} bytes is too large to store", bytes.len())));
        }
        let condition = "attribute_not_exists(#v) OR #v <= :v";
        let n = |v: usize| AttributeValue::N(v.to_string());
        let mut items = Vec::with_capacity(TREE_MAX_CHUNKS);
        for (index, data) in chunks.iter().enumerate() {
            let mut item = key_item(&keys::perimeter_tree_chunk(index));
            item.insert("version".into(), AttributeValue::N(version.to_string()));
            item.insert("chunks".into(), n(chunks.len()));
            item.insert("data".into(), AttributeValue::B(Blob::new(*data)));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
                .build()
                .map_err(|e| StoreError::Sdk(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        // The chunks of a longer, older snapshot go with it.
        for index in chunks.len()..TREE_MAX_CHUNKS {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(&keys::perimeter_tree_chunk(index))))
                .condition_expression(condition)
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
                .build()
                .map_err(|e| StoreError::Sdk(e.to_string()))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e))
                    if e.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Ok(false)
                }
                _ => Err(sdk_error(err)),
            },
        }
    }

    /// Sets a perimeter's virtual cohort (one UpdateItem, so a concurrent counter write is not
    /// lost); [`StoreError::ConditionFailed`] when the perimeter is not in the tree.
    pub async fn set_perimeter_cohort(
        &self,
        id: i64,
        cohort_id: Option<&str>,
        cohort_size: Option<&str>,
    ) -> StoreResult<()> {
        let value = |v: Option<&str>| v.map_or(AttributeValue::Null(true), |v| AttributeValue::S(v.to_owned()));
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::perimeter(id))))
            .update_expression("SET cohort_id = :id, cohort_size = :size")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":id", value(cohort_id))
            .expression_attribute_values(":size", value(cohort_size))
            .send()
            .await
            .map_err(|e| conditional(e, |s| s.is_conditional_check_failed_exception()))?;
        Ok(())
    }
}
