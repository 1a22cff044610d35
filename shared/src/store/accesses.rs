//! Roles, profiles, accesses and perimeters: the data of the rights computations.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, Update, WriteRequest};

use super::{
    conditional, decode, key_item, keys, sdk_error, Condition, DynamoStore, Entry, Item, StoreError, StoreResult, Write,
};
use crate::domain::{
    perimeter::Perimeter,
    rights::{Access, Profile, Role},
    time,
    user::Window,
};

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

    pub async fn bump_perimeters_version(&self) -> StoreResult<()> {
        self.bump_version(&keys::perimeters_version()).await
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
        Ok(item.and_then(|i| i.get("version").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())).unwrap_or(0))
    }

    pub async fn perimeters(&self) -> StoreResult<Vec<Perimeter>> {
        self.query_partition(keys::PERIMETERS_PK, None, true).await?.into_iter().map(decode).collect()
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
