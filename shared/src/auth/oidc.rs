//! OIDC (Keycloak-style) login, token validation, refresh and logout (spec §2.2, §2.4–§2.6).
//! Access tokens are verified against the issuer's JWKS, cached per issuer and refreshed when an
//! unknown `kid` shows up (key rotation), at most once a minute.
use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{OidcClient, Settings};

const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    /// Rendered as the `error` of a 401 on login / 400 on refresh; never carries a token.
    #[error("{0}")]
    Rejected(String),
    #[error("invalid token")]
    InvalidToken,
}

pub struct OidcTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub username: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: String,
}

pub struct OidcService {
    clients: Vec<OidcClient>,
    issuers: Vec<String>,
    audience: Vec<String>,
    http: reqwest::Client,
    jwks: RwLock<HashMap<String, (Instant, JwkSet)>>,
}

/// The claims of a JWT read without verification: only to pick the issuer or client to verify with.
pub fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?).ok()
}

impl OidcService {
    pub fn new(settings: &Settings, http: reqwest::Client) -> Self {
        let mut issuers: Vec<String> = settings.oidc_clients.iter().map(|c| c.issuer.clone()).collect();
        issuers.extend(settings.oidc_extra_issuers.iter().cloned());
        Self {
            clients: settings.oidc_clients.clone(),
            issuers,
            audience: settings.oidc_audience.clone(),
            http,
            jwks: RwLock::new(HashMap::new()),
        }
    }

    /// Exchanges an authorization code; the client is the one whose redirect URI matches.
    pub async fn login(&self, auth_code: &str, redirect_uri: &str) -> Result<OidcTokens, OidcError> {
        let client = self
            .clients
            .iter()
            .find(|c| c.redirect_uri == redirect_uri)
            .ok_or_else(|| OidcError::Rejected("Invalid redirect_uri".into()))?;
        let response = self
            .http
            .post(format!("{}/protocol/openid-connect/token", client.issuer))
            .form(&[
                ("client_id", client.client_id.as_str()),
                ("client_secret", client.client_secret.expose()),
                ("redirect_uri", client.redirect_uri.as_str()),
                ("grant_type", "authorization_code"),
                ("code", auth_code),
            ])
            .send()
            .await
            .map_err(|e| OidcError::Rejected(format!("Error issuing tokens: {}", without_url(&e))))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(OidcError::Rejected("Invalid username or password".into()));
        }
        let tokens: TokenResponse =
            response.json().await.map_err(|_| OidcError::Rejected("Error issuing tokens: unreadable answer".into()))?;
        let username = self
            .verify_access_token(&tokens.access_token)
            .await
            .map_err(|_| OidcError::Rejected("Invalid username or password".into()))?;
        Ok(OidcTokens { access_token: tokens.access_token, refresh_token: tokens.refresh_token, username })
    }

    /// Verifies signature, expiry, issuer and audience; returns `preferred_username`.
    pub async fn verify_access_token(&self, token: &str) -> Result<String, OidcError> {
        let claims = unverified_claims(token).ok_or(OidcError::InvalidToken)?;
        let issuer = claims["iss"].as_str().map(|i| i.trim_end_matches('/')).ok_or(OidcError::InvalidToken)?;
        if !self.issuers.iter().any(|i| i == issuer) {
            return Err(OidcError::InvalidToken);
        }
        let header = decode_header(token).map_err(|_| OidcError::InvalidToken)?;
        if !matches!(
            header.alg,
            jsonwebtoken::Algorithm::RS256
                | jsonwebtoken::Algorithm::RS384
                | jsonwebtoken::Algorithm::RS512
                | jsonwebtoken::Algorithm::ES256
                | jsonwebtoken::Algorithm::PS256
        ) {
            return Err(OidcError::InvalidToken);
        }
        let kid = header.kid.ok_or(OidcError::InvalidToken)?;
        let key = self.decoding_key(issuer, &kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.set_issuer(&[issuer, &format!("{issuer}/")]);
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
        }
        let data = decode::<Value>(token, &key, &validation).map_err(|_| OidcError::InvalidToken)?;
        data.claims["preferred_username"].as_str().map(str::to_owned).ok_or(OidcError::InvalidToken)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<(String, String), OidcError> {
        let client = self.client_for_refresh_token(refresh_token)?;
        let response = self
            .http
            .post(format!("{}/protocol/openid-connect/token", client.issuer))
            .form(&[
                ("client_id", client.client_id.as_str()),
                ("client_secret", client.client_secret.expose()),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .map_err(|_| OidcError::Rejected("Token is invalid or expired".into()))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(OidcError::Rejected("Token is invalid or expired".into()));
        }
        let tokens: TokenResponse =
            response.json().await.map_err(|_| OidcError::Rejected("Token is invalid or expired".into()))?;
        Ok((tokens.access_token, tokens.refresh_token))
    }

    pub async fn logout(&self, access_token: &str, refresh_token: &str) -> Result<(), OidcError> {
        let client = self.client_for_refresh_token(refresh_token)?;
        let response = self
            .http
            .post(format!("{}/protocol/openid-connect/logout", client.issuer))
            .bearer_auth(access_token)
            .form(&[
                ("client_id", client.client_id.as_str()),
                ("client_secret", client.client_secret.expose()),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .map_err(|e| OidcError::Rejected(format!("Error logging out: {}", without_url(&e))))?;
        match response.status().as_u16() {
            200 | 204 => Ok(()),
            status => Err(OidcError::Rejected(format!("Error logging out: identity provider answered {status}"))),
        }
    }

    fn client_for_refresh_token(&self, refresh_token: &str) -> Result<&OidcClient, OidcError> {
        let azp = unverified_claims(refresh_token)
            .and_then(|c| c["azp"].as_str().map(str::to_owned))
            .ok_or_else(|| OidcError::Rejected("Token missing azp (client_id)".into()))?;
        self.clients
            .iter()
            .find(|c| c.client_id == azp)
            .ok_or_else(|| OidcError::Rejected("Token is invalid or expired".into()))
    }

    async fn decoding_key(&self, issuer: &str, kid: &str) -> Result<DecodingKey, OidcError> {
        let cached = self.jwks.read().ok().and_then(|m| m.get(issuer).cloned());
        if let Some((fetched, set)) = &cached {
            if let Some(jwk) = set.find(kid) {
                if fetched.elapsed() < JWKS_MAX_AGE {
                    return DecodingKey::from_jwk(jwk).map_err(|_| OidcError::InvalidToken);
                }
            } else if fetched.elapsed() < JWKS_MIN_REFETCH {
                return Err(OidcError::InvalidToken);
            }
        }
        let set: JwkSet = self
            .http
            .get(format!("{issuer}/protocol/openid-connect/certs"))
            .send()
            .await
            .map_err(|_| OidcError::InvalidToken)?
            .json()
            .await
            .map_err(|_| OidcError::InvalidToken)?;
        let key = set.find(kid).map(DecodingKey::from_jwk);
        if let Ok(mut map) = self.jwks.write() {
            map.insert(issuer.to_owned(), (Instant::now(), set));
        }
        key.ok_or(OidcError::InvalidToken)?.map_err(|_| OidcError::InvalidToken)
    }
}

/// A reqwest error message without the URL (it may carry query parameters).
fn without_url(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}
