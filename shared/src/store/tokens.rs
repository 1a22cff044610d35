//! Refresh tokens: each issued refresh token has a record until it is rotated, revoked or expired,
//! so that a rotated or logged-out token can never be used again.
use serde::{Deserialize, Serialize};

use super::{keys, users::user_entry, Condition, DynamoStore, Entry, StoreError, StoreResult, Write};
use crate::domain::user::User;

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
    /// Saves the login: the user (last login, upgraded hash) and the new refresh token, atomically.
    pub async fn record_login(&self, user: &User, refresh: &RefreshRecord) -> StoreResult<()> {
        self.transact(vec![
            Write::Put(user_entry(user)?, Condition::MustExist),
            Write::Put(refresh_entry(refresh)?, Condition::MustNotExist),
        ])
        .await
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
