//! Authentication: who is calling (spec §2.6). Rights are resolved later, from the store.
pub mod identity;
pub mod jwt;
pub mod oidc;
pub mod password;

use subtle::ConstantTimeEq;

use crate::config::{Secret, Settings};

/// The `AuthorizationMethod` header values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Jwt,
    Oidc,
}

impl AuthMethod {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "JWT" => Some(Self::Jwt),
            "OIDC" => Some(Self::Oidc),
            _ => None,
        }
    }
}

/// Static bearer keys of the applicative actors (spec §2.6 step 2, §2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppActor {
    QueryExecutor,
    SolrEtl,
    Rollout,
}

impl AppActor {
    /// QueryExecutor and Solr ETL callbacks pass maintenance mode; the rollout pipeline does not.
    pub fn bypasses_maintenance(self) -> bool {
        matches!(self, Self::QueryExecutor | Self::SolrEtl)
    }
}

#[derive(Clone, Debug)]
pub struct ApiKeys {
    keys: Vec<(AppActor, Secret, String)>,
}

impl ApiKeys {
    pub fn from_settings(s: &Settings) -> Self {
        let keys = [
            (AppActor::QueryExecutor, &s.query_executor_token, &s.query_executor_username),
            (AppActor::SolrEtl, &s.solr_etl_token, &s.solr_etl_username),
            (AppActor::Rollout, &s.rollout_token, &s.rollout_username),
        ]
        .into_iter()
        .filter(|(_, key, _)| !key.is_empty())
        .map(|(actor, key, user)| (actor, key.clone(), user.clone()))
        .collect();
        Self { keys }
    }

    /// The actor and its username whose key equals `token`, compared in constant time.
    pub fn actor_for(&self, token: &str) -> Option<(AppActor, &str)> {
        let mut found = None;
        for (actor, key, username) in &self.keys {
            // Evaluate every key so the timing does not tell which one matched.
            if bool::from(key.expose().as_bytes().ct_eq(token.as_bytes())) {
                found = Some((*actor, username.as_str()));
            }
        }
        found
    }

    pub fn usernames(&self) -> impl Iterator<Item = (AppActor, &str)> {
        self.keys.iter().map(|(a, _, u)| (*a, u.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_map_to_their_actor_and_empty_keys_never_match() {
        let settings = crate::config::test_settings("t", &[("ROLLOUT_TOKEN", "")]);
        let keys = ApiKeys::from_settings(&settings);
        assert_eq!(keys.actor_for("test-qe-token"), Some((AppActor::QueryExecutor, "SPARK_JOB_SERVER")));
        assert_eq!(keys.actor_for("test-etl-token"), Some((AppActor::SolrEtl, "SOLR_ETL")));
        assert_eq!(keys.actor_for(""), None);
        assert_eq!(keys.actor_for("test-qe-token "), None);
    }
}
