//! Users, profiles, accesses and roles.
use std::collections::HashMap;

use super::accesses::profile_entry;
use super::{decode, keys, sk_of, Condition, DynamoStore, Entry, StoreError, StoreResult, Write};
use crate::domain::{
    rights::{Access, Profile},
    user::User,
};

/// Everything a request needs to know about its caller, read in one Query of the user partition.
#[derive(Clone, Debug)]
pub struct UserBundle {
    pub user: User,
    pub profiles: Vec<Profile>,
    pub accesses: Vec<Access>,
}

/// Why a user could not be written.
#[derive(Debug, thiserror::Error)]
pub enum UserWriteError {
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error("user not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn user_entry(user: &User) -> StoreResult<Entry> {
    Ok(Entry::new("user", &keys::user(&user.username), user)?.gsi1(&keys::users_index(&user.username)))
}

fn email_guard_entry(email: &str, username: &str) -> StoreResult<Entry> {
    Entry::new("email_guard", &keys::email_guard(email), &serde_json::json!({ "username": username }))
}

impl DynamoStore {
    pub async fn user(&self, username: &str) -> StoreResult<Option<User>> {
        Ok(self.get::<User>(&keys::user(username)).await?.filter(|u| u.delete_datetime.is_none()))
    }

    /// The user, their profiles and accesses: one Query.
    pub async fn user_bundle(&self, username: &str) -> StoreResult<Option<UserBundle>> {
        let items = self.query_partition(&keys::user_partition(username), None, true).await?;
        let mut user = None;
        let (mut profiles, mut accesses) = (Vec::new(), Vec::new());
        for item in items {
            let sk = sk_of(&item).to_owned();
            if sk == keys::USER_SK {
                user = Some(decode::<User>(item)?);
            } else if sk.starts_with(keys::PROFILE_PREFIX) {
                profiles.push(decode::<Profile>(item)?);
            } else if sk.starts_with(keys::ACCESS_PREFIX) {
                accesses.push(decode::<Access>(item)?);
            }
        }
        Ok(user.filter(|u| u.delete_datetime.is_none()).map(|user| UserBundle { user, profiles, accesses }))
    }

    /// Every user, deleted ones included (their display names still label what they created).
    /// A bounded exception to "no full listing": one index partition of small items, read for the
    /// admin user list; see docs/data-model.md.
    pub async fn user_directory(&self) -> StoreResult<Vec<User>> {
        self.query_index(keys::GSI1, keys::USERS_INDEX_PK, None, true).await?.into_iter().map(decode).collect()
    }

    /// Users by username, deleted ones included (BatchGetItem, 100 keys per call).
    pub async fn users_by_name(&self, usernames: &[&str]) -> StoreResult<HashMap<String, User>> {
        let mut wanted: Vec<&str> = usernames.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let keys = wanted.iter().map(|u| keys::user(u)).collect();
        let mut users = HashMap::new();
        for item in self.batch_get(keys).await? {
            let user = decode::<User>(item)?;
            users.insert(user.username.clone(), user);
        }
        Ok(users)
    }

    /// Creates a user and their first profile; username and e-mail stay unique.
    pub async fn create_user(&self, user: &User, profile: &Profile) -> Result<(), UserWriteError> {
        let mut writes = vec![Write::Put(user_entry(user)?, Condition::MustNotExist)];
        if let Some(email) = &user.email {
            writes.push(Write::Put(email_guard_entry(email, &user.username)?, Condition::MustNotExist));
        }
        writes.push(Write::Put(profile_entry(profile)?, Condition::MustNotExist));
        match self.transact(writes).await {
            Err(StoreError::TransactionConflict(failed)) if failed.first() == Some(&true) => {
                Err(UserWriteError::UsernameTaken)
            }
            Err(StoreError::TransactionConflict(failed)) if failed.get(1) == Some(&true) && user.email.is_some() => {
                Err(UserWriteError::EmailTaken)
            }
            other => Ok(other?),
        }
    }

    /// Saves an existing user; moves the e-mail uniqueness guard when the e-mail changed.
    pub async fn update_user(&self, user: &User, previous_email: Option<&str>) -> Result<(), UserWriteError> {
        let mut writes = vec![Write::Put(user_entry(user)?, Condition::MustExist)];
        let changed = user.email.as_deref().map(str::to_lowercase) != previous_email.map(str::to_lowercase);
        if changed {
            if let Some(email) = &user.email {
                writes.push(Write::Put(email_guard_entry(email, &user.username)?, Condition::MustNotExist));
            }
            if let Some(old) = previous_email {
                writes.push(Write::Delete(keys::email_guard(old), Condition::None));
            }
        }
        match self.transact(writes).await {
            Err(StoreError::TransactionConflict(failed)) if failed.first() == Some(&true) => {
                Err(UserWriteError::NotFound)
            }
            Err(StoreError::TransactionConflict(failed)) if failed.get(1) == Some(&true) => {
                Err(UserWriteError::EmailTaken)
            }
            other => Ok(other?),
        }
    }

    pub async fn put_user(&self, user: &User, condition: Condition) -> StoreResult<()> {
        self.put(user_entry(user)?, condition).await
    }
}
