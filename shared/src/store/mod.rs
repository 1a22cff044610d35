//! DynamoDB adapter: one table, records separate from domain types (keys live in [`keys`]).
pub mod accesses;
pub mod cohort;
pub mod exports;
pub mod keys;
pub mod logs;
mod platform;
pub mod summaries;
pub mod tokens;
pub mod users;
pub mod ws;

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::{ProvideErrorMetadata, SdkError},
    types::{AttributeValue, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update},
    Client,
};
use serde::{de::DeserializeOwned, Serialize};

pub use keys::Key;
pub use users::UserBundle;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("condition failed")]
    ConditionFailed,
    /// A transaction was cancelled; `true` at the index of each operation whose condition failed.
    #[error("transaction cancelled")]
    TransactionConflict(Vec<bool>),
    #[error("DynamoDB error: {0}")]
    Sdk(String),
    #[error("record (de)serialisation error: {0}")]
    Record(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What must hold for a write to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    None,
    MustNotExist,
    MustExist,
}

impl Condition {
    fn expression(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::MustNotExist => Some("attribute_not_exists(pk)"),
            Self::MustExist => Some("attribute_exists(pk)"),
        }
    }
}

/// An item ready to be written: a domain value plus its keys.
pub struct Entry {
    item: Item,
}

impl Entry {
    pub fn new<T: Serialize>(entity: &str, key: &Key, value: &T) -> StoreResult<Self> {
        let mut item: Item = serde_dynamo::to_item(value).map_err(|e| StoreError::Record(e.to_string()))?;
        item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
        item.insert("pk".into(), AttributeValue::S(key.pk.clone()));
        item.insert("sk".into(), AttributeValue::S(key.sk.clone()));
        item.insert("entity".into(), AttributeValue::S(entity.into()));
        Ok(Self { item })
    }

    pub fn gsi1(mut self, key: &Key) -> Self {
        self.item.insert("gsi1pk".into(), AttributeValue::S(key.pk.clone()));
        self.item.insert("gsi1sk".into(), AttributeValue::S(key.sk.clone()));
        self
    }

    pub fn gsi2(mut self, key: &Key) -> Self {
        self.item.insert("gsi2pk".into(), AttributeValue::S(key.pk.clone()));
        self.item.insert("gsi2sk".into(), AttributeValue::S(key.sk.clone()));
        self
    }

    pub fn gsi3(mut self, key: &Key) -> Self {
        self.item.insert("gsi3pk".into(), AttributeValue::S(key.pk.clone()));
        self.item.insert("gsi3sk".into(), AttributeValue::S(key.sk.clone()));
        self
    }

    /// A raw attribute beside the record's own (list summaries).
    pub fn attribute(mut self, name: &str, value: AttributeValue) -> Self {
        self.item.insert(name.into(), value);
        self
    }

    /// Epoch seconds after which DynamoDB TTL may delete the item.
    pub fn expires_at(mut self, epoch_seconds: i64) -> Self {
        self.item.insert("expires_at".into(), AttributeValue::N(epoch_seconds.to_string()));
        self
    }

    pub fn is_entity(&self, entity: &str) -> bool {
        self.item.get("entity").and_then(|v| v.as_s().ok()).is_some_and(|e| e == entity)
    }

    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.item.insert(name.into(), AttributeValue::S(value.into()));
        self
    }
}

pub enum Write {
    Put(Entry, Condition),
    Delete(Key, Condition),
    /// An update built by the caller (attribute-level changes, e.g. one entry of a map).
    Update(Update),
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// A single conditional write's outcome, as [`DynamoStore::transact`] reports it.
fn single_write<O, E: ProvideErrorMetadata + std::fmt::Debug>(out: Result<O, SdkError<E>>) -> StoreResult<()> {
    match out {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => {
            Err(StoreError::TransactionConflict(vec![true]))
        }
        Err(e) => Err(sdk_error(e)),
    }
}

fn sdk_error<E: std::fmt::Debug>(err: SdkError<E>) -> StoreError {
    // The Debug form names the service error code; it never contains item values we wrote.
    StoreError::Sdk(match &err {
        SdkError::ServiceError(service) => format!("{:?}", service.err()),
        other => format!("{other:?}").chars().take(300).collect(),
    })
}

/// `ConditionFailed` when the service error is a failed condition, else the SDK error.
fn conditional<E: std::fmt::Debug>(err: SdkError<E>, is_condition_failure: impl Fn(&E) -> bool) -> StoreError {
    if err.as_service_error().is_some_and(is_condition_failure) {
        StoreError::ConditionFailed
    } else {
        sdk_error(err)
    }
}

/// The key attributes of an index.
pub(super) fn index_keys(index: &str) -> (&'static str, &'static str) {
    match index {
        keys::GSI1 => ("gsi1pk", "gsi1sk"),
        keys::GSI2 => ("gsi2pk", "gsi2sk"),
        keys::GSI3 => ("gsi3pk", "gsi3sk"),
        _ => ("gsi4pk", "gsi4sk"),
    }
}

fn key_item(key: &Key) -> Item {
    HashMap::from([("pk".into(), AttributeValue::S(key.pk.clone())), ("sk".into(), AttributeValue::S(key.sk.clone()))])
}

pub fn decode<T: DeserializeOwned>(item: Item) -> StoreResult<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Record(e.to_string()))
}

fn sk_of(item: &Item) -> &str {
    item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("")
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &Key) -> StoreResult<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        out.item.map(decode).transpose()
    }

    /// The items that exist among `keys` (BatchGetItem, 100 keys a call, unprocessed keys retried).
    pub async fn batch_get(&self, keys: Vec<Key>) -> StoreResult<Vec<Item>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Item> = chunk.iter().map(key_item).collect();
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Sdk(e.to_string()))?;
                let out =
                    self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(sdk_error)?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                if let Some(rest) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = rest.keys;
                }
            }
        }
        Ok(found)
    }

    /// Every item of a partition whose sort key starts with `sk_prefix` (all pages).
    pub async fn query_partition(&self, pk: &str, sk_prefix: Option<&str>, forward: bool) -> StoreResult<Vec<Item>> {
        let (condition, prefix) = match sk_prefix {
            Some(p) => ("pk = :pk AND begins_with(sk, :prefix)", Some(p)),
            None => ("pk = :pk", None),
        };
        self.query_all(None, condition, pk, prefix.map(|p| (":prefix", p)), forward).await
    }

    /// Every item of an index partition, optionally with `sk >= from`.
    pub async fn query_index(
        &self,
        index: &str,
        pk: &str,
        sk_from: Option<&str>,
        forward: bool,
    ) -> StoreResult<Vec<Item>> {
        let (pk_name, sk_name) = index_keys(index);
        let condition = match sk_from {
            Some(_) => format!("{pk_name} = :pk AND {sk_name} >= :from"),
            None => format!("{pk_name} = :pk"),
        };
        self.query_all(Some(index), &condition, pk, sk_from.map(|f| (":from", f)), forward).await
    }

    /// Items `skip..skip + take` of an index partition, newest (highest sort key) first: reads
    /// `skip + take` items at most (the first page of a list is one Query with `Limit`).
    pub async fn index_page_newest_first(
        &self,
        index: &str,
        pk: &str,
        skip: usize,
        take: usize,
    ) -> StoreResult<Vec<Item>> {
        let (pk_name, _) = index_keys(index);
        let wanted = skip.saturating_add(take);
        let mut items: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        while items.len() < wanted {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(format!("{pk_name} = :pk"))
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .scan_index_forward(false)
                .limit(i32::try_from(wanted - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(items.into_iter().skip(skip).take(take).collect())
    }

    /// Every item of an index partition whose sort key starts with `prefix`.
    pub async fn query_index_prefix(&self, index: &str, pk: &str, prefix: &str) -> StoreResult<Vec<Item>> {
        let (pk_name, sk_name) = index_keys(index);
        let condition = format!("{pk_name} = :pk AND begins_with({sk_name}, :prefix)");
        self.query_all(Some(index), &condition, pk, Some((":prefix", prefix)), true).await
    }

    async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        pk: &str,
        extra: Option<(&str, &str)>,
        forward: bool,
    ) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        self.query_each_page(index, condition, pk, extra, forward, |page| {
            items.extend(page);
            Ok(())
        })
        .await?;
        Ok(items)
    }

    /// Every page of an index partition, handed to `each` as it comes (see [`Self::query_each_page`]).
    pub(super) async fn index_each_page(
        &self,
        index: &str,
        pk: &str,
        forward: bool,
        each: impl FnMut(Vec<Item>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let condition = format!("{} = :pk", index_keys(index).0);
        self.query_each_page(Some(index), &condition, pk, None, forward, each).await
    }

    /// Every page of a Query handed to `each` as it comes: a caller that keeps part of each page
    /// never holds the whole partition.
    async fn query_each_page(
        &self,
        index: Option<&str>,
        condition: &str,
        pk: &str,
        extra: Option<(&str, &str)>,
        forward: bool,
        mut each: impl FnMut(Vec<Item>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
                .scan_index_forward(forward)
                .set_exclusive_start_key(start.take());
            if let Some((name, value)) = extra {
                request = request.expression_attribute_values(name, AttributeValue::S(value.into()));
            }
            if index.is_none() {
                request = request.consistent_read(true);
            }
            let out = request.send().await.map_err(sdk_error)?;
            each(out.items.unwrap_or_default())?;
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
    }

    pub async fn put(&self, entry: Entry, condition: Condition) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry.item))
            .set_condition_expression(condition.expression().map(str::to_owned))
            .send()
            .await
            .map_err(|e| conditional(e, |s| s.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    pub async fn delete(&self, key: &Key, condition: Condition) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .set_condition_expression(condition.expression().map(str::to_owned))
            .send()
            .await
            .map_err(|e| conditional(e, |s| s.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    /// All-or-nothing writes (at most 100 items).
    /// Applies `writes` all or none. A single write goes as a plain conditional write, which costs
    /// DynamoDB half a transaction; its failed condition is reported as a transaction's would be.
    pub async fn transact(&self, mut writes: Vec<Write>) -> StoreResult<()> {
        if writes.len() == 1 {
            return self.write_one(writes.pop().expect("one write")).await;
        }
        let mut items = Vec::with_capacity(writes.len());
        for write in writes {
            let item = match write {
                Write::Put(entry, condition) => {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(entry.item))
                        .set_condition_expression(condition.expression().map(str::to_owned))
                        .build()
                        .map_err(|e| StoreError::Sdk(e.to_string()))?;
                    TransactWriteItem::builder().put(put).build()
                }
                Write::Delete(key, condition) => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_item(&key)))
                        .set_condition_expression(condition.expression().map(str::to_owned))
                        .build()
                        .map_err(|e| StoreError::Sdk(e.to_string()))?;
                    TransactWriteItem::builder().delete(delete).build()
                }
                Write::Update(update) => TransactWriteItem::builder().update(update).build(),
            };
            items.push(item);
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let failed = e
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code() == Some("ConditionalCheckFailed"))
                        .collect();
                    Err(StoreError::TransactionConflict(failed))
                }
                _ => Err(sdk_error(err)),
            },
        }
    }

    /// Writes more than a transaction holds: 100 operations each, in order, the first holding the
    /// edited object and its condition (a fan-out past it is applied after, not with it). Stops at the
    /// first transaction that fails.
    pub async fn transact_in_chunks(&self, writes: Vec<Write>) -> StoreResult<()> {
        let mut chunks: Vec<Vec<Write>> = Vec::new();
        for write in writes {
            match chunks.last_mut() {
                Some(chunk) if chunk.len() < 100 => chunk.push(write),
                _ => chunks.push(vec![write]),
            }
        }
        for chunk in chunks {
            self.transact(chunk).await?;
        }
        Ok(())
    }

    async fn write_one(&self, write: Write) -> StoreResult<()> {
        match write {
            Write::Put(entry, condition) => {
                let out = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(entry.item))
                    .set_condition_expression(condition.expression().map(str::to_owned))
                    .send()
                    .await;
                single_write(out)
            }
            Write::Delete(key, condition) => {
                let out = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key_item(&key)))
                    .set_condition_expression(condition.expression().map(str::to_owned))
                    .send()
                    .await;
                single_write(out)
            }
            Write::Update(update) => {
                let out = self
                    .client
                    .update_item()
                    .table_name(update.table_name())
                    .set_key(Some(update.key().clone()))
                    .update_expression(update.update_expression())
                    .set_condition_expression(update.condition_expression().map(str::to_owned))
                    .set_expression_attribute_names(update.expression_attribute_names().cloned())
                    .set_expression_attribute_values(update.expression_attribute_values().cloned())
                    .send()
                    .await;
                single_write(out)
            }
        }
    }

    /// The next integer id of an entity (atomic counter; ids start at 1).
    pub async fn next_id(&self, entity: &str) -> StoreResult<i64> {
        self.reserve_ids(entity, 1).await
    }

    /// Reserves `count` consecutive ids and returns the last one.
    pub async fn reserve_ids(&self, entity: &str, count: i64) -> StoreResult<i64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::counter(entity))))
            .update_expression("ADD #v :n")
            .expression_attribute_names("#v", "value")
            .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(sdk_error)?;
        out.attributes
            .as_ref()
            .and_then(|a| a.get("value"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Sdk("counter update returned no value".into()))
    }
}

impl DynamoStore {
    /// Raises a counter to at least `value` (seeded records use fixed ids below it).
    pub async fn ensure_counter_at_least(&self, entity: &str, value: i64) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::counter(entity))))
            .update_expression("SET #v = :v")
            .condition_expression("attribute_not_exists(#v) OR #v < :v")
            .expression_attribute_names("#v", "value")
            .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(sdk_error(err)),
        }
    }
}
