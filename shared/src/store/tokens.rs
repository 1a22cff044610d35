//! Refresh tokens: each issued refresh token has a record until it is rotated, revoked or expired,
//! so that a rotated or logged-out token can never be used again.
use serde::{Deserialize, Serialize};

use aws_sdk_dynamodb::types::AttributeValue;

use super::{conditional, key_item, keys, Condition, DynamoStore, Entry, StoreError, StoreResult, Write};
use crate::domain::time::{self, DateTime};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub jti: String,
    pub username: String,
    /// Epoch seconds; also the TTL attribute, but TTL deletion is lazy so reads check it too.
    pub exp: i64,
}

fn refresh_entry(record: &RefreshRecord) -> StoreResult<Entry> {
    Ok(Entry::new("refresh_token", &keys::refresh_token(&record.jti), record)?.expires_at(record.exp))
}

impl DynamoStore {
    /// Records a login on the user: `last_login`, and the upgraded password hash if any. An update
    /// of two attributes, not a rewrite of the item: concurrent logins of one user never conflict.
    pub async fn record_last_login(
        &self,
        username: &str,
        at: DateTime,
        upgraded_hash: Option<&str>,
    ) -> StoreResult<()> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::user(username))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", AttributeValue::S(time::iso(at)));
        update = match upgraded_hash {
            Some(hash) => update
                .update_expression("SET last_login = :at, password = :hash")
                .expression_attribute_values(":hash", AttributeValue::S(hash.to_owned())),
            None => update.update_expression("SET last_login = :at"),
        };
        update.send().await.map_err(|e| conditional(e, |s| s.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    pub async fn put_refresh_token(&self, record: &RefreshRecord) -> StoreResult<()> {
        self.put(refresh_entry(record)?, Condition::MustNotExist).await
    }

    pub async fn refresh_token(&self, jti: &str) -> StoreResult<Option<RefreshRecord>> {
        self.get(&keys::refresh_token(jti)).await
    }

    /// Replaces `old` by `new`; fails with `ConditionFailed` when `old` was already used or revoked,
    /// so two concurrent refreshes with one token cannot both succeed.
    pub async fn rotate_refresh_token(&self, old_jti: &str, new: &RefreshRecord) -> StoreResult<()> {
        match self
            .transact(vec![
                Write::Delete(keys::refresh_token(old_jti), Condition::MustExist),
                Write::Put(refresh_entry(new)?, Condition::MustNotExist),
            ])
            .await
        {
            Err(StoreError::TransactionConflict(_)) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }

    pub async fn revoke_refresh_token(&self, jti: &str) -> StoreResult<()> {
        self.delete(&keys::refresh_token(jti), Condition::None).await
    }
}
