//! A Keycloak-style OIDC provider for one realm: `…/protocol/openid-connect/{auth,token,certs,logout}`.
//! Authorization codes are `ok:<username>` (the `auth` page issues them); tokens are RS256 JWTs
//! signed with a throwaway key (keys/), with `iss`, `aud`, `azp`, `preferred_username`, `kid`.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Json, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Value};

pub const SIGNING_KEY_PEM: &str = include_str!("../keys/oidc-signing-key.pem");
pub const JWKS: &str = include_str!("../keys/jwks.json");
pub const KEY_ID: &str = "fake-idp-key-1";

pub struct Realm {
    /// The issuer URL (`http://host:port/realms/<name>`), known once the listener is bound.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub access_lifetime_seconds: i64,
    live_refresh_tokens: Mutex<HashSet<String>>,
}

impl Realm {
    pub fn new(issuer: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            access_lifetime_seconds: 300,
            live_refresh_tokens: Mutex::new(HashSet::new()),
        }
    }

    /// A signed token as the realm would issue it (`typ` is `Bearer` or `Refresh`).
    pub fn token(&self, username: &str, typ: &str, lifetime: i64) -> String {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KEY_ID.into());
        let claims = json!({
            "iss": self.issuer, "aud": self.client_id, "azp": self.client_id, "typ": typ,
            "preferred_username": username, "sub": username, "iat": now, "exp": now + lifetime,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let key =
            EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes()).expect("the bundled fake key is a valid RSA PEM");
        encode(&header, &claims, &key).expect("signing with the bundled key works")
    }

    fn pair(&self, username: &str) -> Value {
        let refresh = self.token(username, "Refresh", 1800);
        if let Ok(mut live) = self.live_refresh_tokens.lock() {
            live.insert(refresh.clone());
        }
        json!({
            "access_token": self.token(username, "Bearer", self.access_lifetime_seconds),
            "refresh_token": refresh, "token_type": "Bearer", "expires_in": self.access_lifetime_seconds,
        })
    }
}

/// Routes under `path_prefix` (the issuer's path, e.g. `/realms/cohort360`).
pub fn router(path_prefix: &str, realm: Arc<Realm>) -> Router {
    let base = format!("{}/protocol/openid-connect", path_prefix.trim_end_matches('/'));
    Router::new()
        .route(&format!("{base}/certs"), get(|| async { ([("content-type", "application/json")], JWKS) }))
        .route(&format!("{base}/auth"), get(authorize_page).post(authorize))
        .route(&format!("{base}/token"), post(token))
        .route(&format!("{base}/logout"), post(logout))
        .with_state(realm)
}

async fn authorize_page(Query(q): Query<HashMap<String, String>>) -> Html<String> {
    let hidden: String = q
        .iter()
        .filter(|(k, _)| *k == "redirect_uri" || *k == "state")
        .map(|(k, v)| format!(r#"<input type="hidden" name="{}" value="{}">"#, html_escape(k), html_escape(v)))
        .collect();
    Html(format!(
        r#"<!doctype html><title>Fake identity provider</title><h1>Fake identity provider (dev only)</h1>
<form method="post">{hidden}<label>Username <input name="username" autofocus></label> <button>Sign in</button></form>"#
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

async fn authorize(Form(form): Form<HashMap<String, String>>) -> Response {
    let (Some(redirect), Some(username)) = (form.get("redirect_uri"), form.get("username")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and username are required").into_response();
    };
    let separator = if redirect.contains('?') { '&' } else { '?' };
    let state = form.get("state").map(|s| format!("&state={s}")).unwrap_or_default();
    Redirect::to(&format!("{redirect}{separator}code=ok:{username}{state}")).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
    code: Option<String>,
    refresh_token: Option<String>,
}

fn username_of(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: Value = serde_json::from_slice(&payload).ok()?;
    claims["preferred_username"].as_str().map(str::to_owned)
}

async fn token(State(realm): State<Arc<Realm>>, Form(req): Form<TokenRequest>) -> Response {
    if req.client_id != realm.client_id || req.client_secret != realm.client_secret {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let username = match req.grant_type.as_str() {
        "authorization_code" => req.code.as_deref().and_then(|c| c.strip_prefix("ok:")).map(str::to_owned),
        "refresh_token" => req.refresh_token.as_deref().and_then(|t| {
            let live = realm.live_refresh_tokens.lock().ok()?.remove(t);
            live.then(|| username_of(t)).flatten()
        }),
        _ => None,
    };
    match username.filter(|u| !u.is_empty()) {
        Some(username) => Json(realm.pair(&username)).into_response(),
        None => (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response(),
    }
}

async fn logout(
    State(realm): State<Arc<Realm>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> StatusCode {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("Bearer "));
    let known = form
        .get("refresh_token")
        .is_some_and(|t| realm.live_refresh_tokens.lock().map(|mut l| l.remove(t)).unwrap_or(false));
    if bearer && known && form.get("client_secret") == Some(&realm.client_secret) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::BAD_REQUEST
    }
}
