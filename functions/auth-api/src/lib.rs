//! `/auth/`: login (credentials or OIDC code), token refresh with rotation, logout (spec §2).
mod views;

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header::SET_COOKIE, HeaderMap, Method},
    Json, Router,
};
use c360::{
    auth::{
        jwt::TokenType,
        oidc::OidcError,
        password::{self, Verdict},
        AuthMethod,
    },
    domain::{
        time,
        user::{Credentials, User},
    },
    error::{AppError, AppResult},
    http::{api::combine, contract::Doc, Api, AppState, Body, Caller, Exposure, MethodPolicy, Principal, RouteSpec},
    store::StoreError,
};
use serde_json::{Map, Value};
use users_api::views::UserView;
use views::{LoggedOutView, LoginBody, LoginView, LogoutBody, RefreshBody, TokensView};

const INVALID_CREDENTIALS: &str = "Invalid username or password!";
const INVALID_TOKEN: &str = "Token is invalid or expired";
/// The front ends post login forms url-encoded.
const URL_ENCODED: &str = "application/x-www-form-urlencoded";

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    let login = Api::new(state, "auth")
        .method_policy(MethodPolicy::Open)
        .audited(
            Method::POST,
            "/auth/login/",
            Exposure::Public,
            "Log in with credentials or an OIDC code",
            "auth.login",
            login,
        )
        .doc(
            Doc::new()
                .body::<LoginBody>()
                .accepts(URL_ENCODED)
                .reply::<LoginView>(200, "Logged in: the user and a token pair.")
                .error(400, "A credential missing (field errors), or an unknown `authorizationMethod` (`error`).")
                .error(401, "Wrong credentials, or the OIDC login failed (`error`)."),
        )
        .build();
    let session = Api::new(state, "auth")
        .route(Method::POST, "/auth/refresh/", Exposure::Authenticated, "Rotate the refresh token", refresh)
        .doc(
            Doc::new()
                .body::<RefreshBody>()
                .accepts(URL_ENCODED)
                .reply::<TokensView>(200, "A new pair; the token sent no longer works.")
                .error(400, "No `refresh_token` (field error), or it is invalid, expired or revoked (`error`)."),
        )
        .route(Method::POST, "/auth/logout/", Exposure::Authenticated, "Revoke the refresh token", logout)
        .doc(
            Doc::new()
                .body::<LogoutBody>()
                .accepts(URL_ENCODED)
                .reply::<LoggedOutView>(200, "Logged out: the refresh token sent, if valid, is revoked.")
                .error(400, "An OIDC session without OIDC configured (`error`), or without `refresh_token`."),
        )
        .build();
    combine([login, session])
}

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

fn method_of(headers: &HeaderMap) -> AppResult<AuthMethod> {
    match headers.get("authorizationmethod").and_then(|v| v.to_str().ok()) {
        // The clients always send it; curl and scripts may not: credentials login is the default.
        None => Ok(AuthMethod::Jwt),
        Some(raw) => {
            AuthMethod::parse(raw).ok_or_else(|| AppError::BadRequest(format!("Unknown authorization method: {raw}")))
        }
    }
}

async fn login(State(state): State<AppState>, headers: HeaderMap, Body(body): Body) -> AppResult<Json<LoginView>> {
    match method_of(&headers)? {
        AuthMethod::Jwt => login_with_credentials(&state, &body).await,
        AuthMethod::Oidc => login_with_oidc(&state, &body).await,
    }
}

async fn login_with_credentials(state: &AppState, body: &Map<String, Value>) -> AppResult<Json<LoginView>> {
    let (username, password) = match (string_field(body, "username"), string_field(body, "password")) {
        (Some(u), Some(p)) => (u.to_owned(), p.to_owned()),
        (u, p) => {
            let mut errors = c360::error::FieldErrors::new();
            for (field, value) in [("username", u), ("password", p)] {
                if value.is_none() {
                    errors.insert(field.into(), vec!["This field is required.".into()]);
                }
            }
            return Err(AppError::Invalid(errors));
        }
    };
    let user = state.store.user(&username).await?;

    let mut upgraded_hash = None;
    let valid = match user.as_ref().map(User::credentials) {
        // The identity server holds these users' passwords (the original's authentication hook); a
        // local hash on such a user is never accepted.
        Some(Credentials::External) => match &state.identity {
            Some(identity) => identity.authenticate(&username, &password).await.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "identity server check failed");
                false
            }),
            None => {
                // Same work as a wrong local password: the timing does not tell who is external.
                password::verify_off_runtime(None, password).await.map_err(AppError::Internal)?;
                false
            }
        },
        // Local users, and unknown usernames (checked against a dummy hash, same timing).
        _ => {
            let stored = user.as_ref().and_then(|u| u.password.clone());
            match password::verify_off_runtime(stored, password.clone()).await.map_err(AppError::Internal)? {
                Verdict::Valid { needs_upgrade } => {
                    if needs_upgrade {
                        upgraded_hash = Some(password::hash_off_runtime(password).await.map_err(AppError::Internal)?);
                    }
                    true
                }
                Verdict::Invalid => false,
            }
        }
    };
    // Same answer for an unknown user and a wrong password: no account enumeration.
    if !valid {
        return Err(AppError::LoginFailed(INVALID_CREDENTIALS.into()));
    }
    let Some(mut user) = user else { return Err(AppError::LoginFailed(INVALID_CREDENTIALS.into())) };

    let now = time::now();
    user.last_login = Some(now);
    let pair = state.tokens.issue_pair(&user.username, now.unix_timestamp()).map_err(AppError::Internal)?;
    let record = c360::store::tokens::RefreshRecord {
        jti: pair.refresh_claims.jti.clone(),
        username: user.username.clone(),
        exp: pair.refresh_claims.exp,
    };
    // Independent writes, sent together: one round trip of latency.
    let (login, token) = tokio::join!(
        state.store.record_last_login(&user.username, now, upgraded_hash.as_deref()),
        state.store.put_refresh_token(&record)
    );
    login?;
    token?;
    let (created_by, updated_by) = state.creator_names(&user).await?;
    Ok(Json(LoginView {
        user: UserView::of(&user, created_by, updated_by),
        last_login: time::iso(now),
        access_token: pair.access,
        refresh_token: pair.refresh,
    }))
}

async fn login_with_oidc(state: &AppState, body: &Map<String, Value>) -> AppResult<Json<LoginView>> {
    let Some(oidc) = &state.oidc else {
        return Err(AppError::LoginFailed("OIDC authentication is not enabled".into()));
    };
    let code = string_field(body, "auth_code").ok_or_else(|| AppError::LoginFailed("Missing `'auth_code'`".into()))?;
    let redirect_uri =
        string_field(body, "redirect_uri").ok_or_else(|| AppError::LoginFailed("Missing `'redirect_uri'`".into()))?;
    let tokens = oidc.login(code, redirect_uri).await.map_err(|e| AppError::LoginFailed(e.to_string()))?;
    let Some(mut user) = state.store.user(&tokens.username).await? else {
        return Err(AppError::LoginFailed("User matching query does not exist.".into()));
    };
    let now = time::now();
    user.last_login = Some(now);
    state.store.record_last_login(&user.username, now, None).await?;
    let (created_by, updated_by) = state.creator_names(&user).await?;
    Ok(Json(LoginView {
        user: UserView::of(&user, created_by, updated_by),
        last_login: time::iso(now),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    }))
}

fn refresh_token_of(body: &Map<String, Value>) -> AppResult<&str> {
    string_field(body, "refresh_token").filter(|t| !t.is_empty()).ok_or_else(|| AppError::required("refresh_token"))
}

async fn refresh(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<Json<TokensView>> {
    let refresh_token = refresh_token_of(&body)?;
    if principal.auth_method == Some(AuthMethod::Oidc) {
        let oidc = state.oidc.as_ref().ok_or_else(|| AppError::BadRequest(INVALID_TOKEN.into()))?;
        let (access, refresh) = oidc.refresh(refresh_token).await.map_err(|e| match e {
            OidcError::Rejected(msg) => AppError::BadRequest(msg),
            OidcError::InvalidToken => AppError::BadRequest(INVALID_TOKEN.into()),
        })?;
        return Ok(Json(TokensView { access_token: access, refresh_token: refresh }));
    }
    let claims =
        state.tokens.verify(refresh_token, TokenType::Refresh).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let owner = principal.impersonator.as_deref().unwrap_or(&principal.username);
    let now = time::now().unix_timestamp();
    let (stored, owner_user) = match &principal.impersonator {
        None => (state.store.refresh_token(&claims.jti).await?, principal.user.clone()),
        Some(_) => tokio::try_join!(state.store.refresh_token(&claims.jti), state.store.user(owner))?,
    };
    let revoked = owner_user.is_none_or(|u| u.token_predates_credentials(claims.iat));
    if revoked || claims.username != owner || !stored.is_some_and(|r| r.username == owner && r.exp > now) {
        return Err(AppError::BadRequest(INVALID_TOKEN.into()));
    }
    let pair = state.tokens.issue_pair(owner, now).map_err(AppError::Internal)?;
    let record = c360::store::tokens::RefreshRecord {
        jti: pair.refresh_claims.jti.clone(),
        username: owner.to_owned(),
        exp: pair.refresh_claims.exp,
    };
    match state.store.rotate_refresh_token(&claims.jti, &record).await {
        Ok(()) => Ok(Json(TokensView { access_token: pair.access, refresh_token: pair.refresh })),
        // Used concurrently or revoked in between: only one rotation wins.
        Err(StoreError::ConditionFailed) => Err(AppError::BadRequest(INVALID_TOKEN.into())),
        Err(e) => Err(e.into()),
    }
}

/// Logout revokes the refresh token. Unlike the original, a caller whose access token already
/// expired may still revoke a refresh token it holds (proof of possession is the token itself).
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> AppResult<(HeaderMap, Json<LoggedOutView>)> {
    let refresh_token = string_field(&body, "refresh_token").filter(|t| !t.is_empty());
    let oidc_caller = caller.principal().is_some_and(|p| p.auth_method == Some(AuthMethod::Oidc));
    if oidc_caller {
        let oidc = state.oidc.as_ref().ok_or_else(|| AppError::BadRequest(INVALID_TOKEN.into()))?;
        let refresh_token = refresh_token.ok_or_else(|| AppError::required("refresh_token"))?;
        let access = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_whitespace().nth(1))
            .unwrap_or_default();
        oidc.logout(access, refresh_token).await.map_err(AppError::internal)?;
    } else {
        let claims = refresh_token.and_then(|t| state.tokens.verify(t, TokenType::Refresh).ok());
        match (&caller, claims) {
            (_, Some(claims)) => state.store.revoke_refresh_token(&claims.jti).await?,
            (Caller::User(_), None) => {}
            (Caller::Anonymous, None) => return Err(AppError::NotAuthenticated),
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        SET_COOKIE,
        http::HeaderValue::from_static("csrftoken=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"),
    );
    Ok((headers, Json(LoggedOutView {})))
}
