//! The external identity service (the original's shipped hooks, spec §2.2 and §8): checks
//! credentials and looks up unknown users. Reached over HTTP with a `Key-auth` header.
use serde_json::Value;

use crate::config::Secret;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityInfo {
    pub username: String,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity server unreachable")]
    Unreachable(#[source] reqwest::Error),
    #[error("identity server answered {0}")]
    Status(u16),
    #[error("identity server answered an unreadable body")]
    Body,
}

#[derive(Clone)]
pub struct IdentityClient {
    base_url: String,
    key: Secret,
    http: reqwest::Client,
}

impl IdentityClient {
    pub fn new(base_url: String, key: Secret, http: reqwest::Client) -> Self {
        Self { base_url, key, http }
    }

    /// True when the service vouches for these credentials (HTTP 200).
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<bool, IdentityError> {
        let response = self
            .http
            .post(format!("{}/user/authenticate", self.base_url))
            .header("Key-auth", self.key.expose())
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .map_err(IdentityError::Unreachable)?;
        Ok(response.status() == reqwest::StatusCode::OK)
    }

    /// `None` when the service does not know the user (HTTP 404).
    pub async fn user_info(&self, username: &str) -> Result<Option<IdentityInfo>, IdentityError> {
        let response = self
            .http
            .post(format!("{}/user/info", self.base_url))
            .header("Key-auth", self.key.expose())
            .form(&[("username", username)])
            .send()
            .await
            .map_err(IdentityError::Unreachable)?;
        match response.status().as_u16() {
            200 => {
                let body: Value = response.json().await.map_err(|_| IdentityError::Body)?;
                let attrs = &body["data"]["attributes"];
                let text = |key: &str| attrs[key].as_str().map(str::to_owned);
                Ok(Some(IdentityInfo {
                    username: text("cn").unwrap_or_else(|| username.to_owned()),
                    firstname: text("givenName"),
                    lastname: text("sn"),
                    email: text("mail"),
                }))
            }
            404 => Ok(None),
            status => Err(IdentityError::Status(status)),
        }
    }
}
