//! Per-request authentication (spec §2.6, §2.7), run lazily by the extractors: a handler that needs
//! the caller pays one Query of the caller's partition; public handlers pay nothing.
use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};

use super::state::AppState;
use crate::{
    auth::{jwt::TokenType, AppActor, AuthMethod},
    domain::{
        access_rules::Grant,
        rights::{global_rights, valid_grants, Access, Profile, Right, RightSet},
        time,
        user::User,
    },
    error::AppError,
    store::UserBundle,
};

pub const IMPERSONATION_DENIED: &str = "Vous n'avez pas le droit d'impersonnifier un autre utilisateur";
const MALFORMED_HEADER: &str = "Authorization header must contain two space-delimited values";

/// An authenticated caller: a user (possibly impersonated) or an applicative actor.
#[derive(Clone, Debug)]
pub struct Principal {
    pub username: String,
    /// `None` for applicative actors, which are not read from the store.
    pub user: Option<User>,
    pub profiles: Vec<Profile>,
    pub accesses: Vec<Access>,
    /// Rights held through valid accesses, whatever the perimeter.
    pub rights: RightSet,
    /// The valid accesses of active profiles with their roles' rights: the input of every
    /// perimeter-scoped rights computation.
    pub grants: Vec<Grant>,
    pub app: Option<AppActor>,
    pub auth_method: Option<AuthMethod>,
    /// The full admin acting as `username` through `X-Impersonate`.
    pub impersonator: Option<String>,
}

impl Principal {
    pub fn has(&self, right: Right) -> bool {
        self.rights.has(right)
    }

    pub fn is_full_admin(&self) -> bool {
        self.has(Right::FULL_ADMIN)
    }

    /// 403 "You do not have permission…" unless `permission` admits this caller.
    pub fn ensure(&self, permission: fn(&Principal) -> bool) -> Result<(), AppError> {
        if permission(self) {
            Ok(())
        } else {
            Err(AppError::permission_denied())
        }
    }

    /// Holds `right_manage_users` (full admins hold every right).
    pub fn can_manage_users(&self) -> bool {
        self.has(Right::MANAGE_USERS) || self.is_full_admin()
    }
}

#[derive(Clone, Debug)]
pub enum Caller {
    Anonymous,
    User(Arc<Principal>),
}

impl Caller {
    pub fn principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Self::User(p) => Some(p),
            Self::Anonymous => None,
        }
    }

    pub fn require(self) -> Result<Arc<Principal>, AppError> {
        match self {
            Self::User(p) => Ok(p),
            Self::Anonymous => Err(AppError::NotAuthenticated),
        }
    }
}

/// The bearer token of a well-formed `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(header) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
    let value = header.to_str().map_err(|_| AppError::PermissionDenied(MALFORMED_HEADER.into()))?;
    let fields: Vec<&str> = value.split_whitespace().collect();
    if fields.len() != 2 {
        return Err(AppError::PermissionDenied(MALFORMED_HEADER.into()));
    }
    // Another scheme is not ours: the caller stays anonymous.
    Ok(fields[0].eq_ignore_ascii_case("bearer").then_some(fields[1]))
}

fn auth_method(parts: &Parts) -> Option<AuthMethod> {
    let from_docs = parts
        .headers
        .get(http::header::REFERER)
        .and_then(|r| r.to_str().ok())
        .is_some_and(|r| r.trim_end_matches('/').ends_with("/docs"));
    if from_docs {
        return Some(AuthMethod::Jwt);
    }
    parts.headers.get("authorizationmethod").and_then(|v| v.to_str().ok()).and_then(AuthMethod::parse)
}

async fn principal_of(state: &AppState, bundle: UserBundle, method: Option<AuthMethod>) -> Result<Principal, AppError> {
    let roles = state.roles().await?;
    let now = time::now();
    let role_rights = |id: i64| roles.get(&id).filter(|r| r.delete_datetime.is_none()).map(|r| r.rights);
    let rights = global_rights(&bundle.profiles, &bundle.accesses, role_rights, now);
    let grants = valid_grants(&bundle.profiles, &bundle.accesses, role_rights, now);
    Ok(Principal {
        username: bundle.user.username.clone(),
        user: Some(bundle.user),
        profiles: bundle.profiles,
        accesses: bundle.accesses,
        rights,
        grants,
        app: None,
        auth_method: method,
        impersonator: None,
    })
}

/// Resolves the caller of a request (spec §2.6): applicative key, then JWT or OIDC per the
/// `AuthorizationMethod` header, then impersonation. Invalid tokens mean anonymous.
pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<Caller, AppError> {
    let Some(token) = bearer_token(&parts.headers)? else { return Ok(Caller::Anonymous) };
    if let Some((actor, username)) = state.api_keys.actor_for(token) {
        return Ok(Caller::User(Arc::new(Principal {
            username: username.to_owned(),
            user: None,
            profiles: Vec::new(),
            accesses: Vec::new(),
            rights: RightSet::default(),
            grants: Vec::new(),
            app: Some(actor),
            auth_method: None,
            impersonator: None,
        })));
    }
    let Some(method) = auth_method(parts) else { return Ok(Caller::Anonymous) };
    let impersonated = parts.headers.get("x-impersonate").and_then(|v| v.to_str().ok());
    authenticate_user_token(state, token, method, impersonated).await
}

/// A user's bearer token checked with `method` (JWT or OIDC), then `X-Impersonate` (spec §2.6 steps
/// 3–4, §2.7): the HTTP edge and the WebSocket handshake share it. Applicative keys are not users.
pub async fn authenticate_user_token(
    state: &AppState,
    token: &str,
    method: AuthMethod,
    impersonated: Option<&str>,
) -> Result<Caller, AppError> {
    // Our own tokens carry their issue time: those issued before a password change are refused.
    let verified = match method {
        AuthMethod::Jwt => state.tokens.verify(token, TokenType::Access).ok().map(|c| (c.username, Some(c.iat))),
        AuthMethod::Oidc => match &state.oidc {
            Some(oidc) => oidc.verify_access_token(token).await.ok().map(|username| (username, None)),
            None => None,
        },
    };
    let Some((username, issued_at)) = verified else { return Ok(Caller::Anonymous) };
    let Some(bundle) = state.store.user_bundle(&username).await? else { return Ok(Caller::Anonymous) };
    if issued_at.is_some_and(|iat| bundle.user.token_predates_credentials(iat)) {
        return Ok(Caller::Anonymous);
    }
    let principal = principal_of(state, bundle, Some(method)).await?;

    match impersonated.map(str::trim) {
        None | Some("") => Ok(Caller::User(Arc::new(principal))),
        Some(_) if !principal.is_full_admin() => Err(AppError::PermissionDenied(IMPERSONATION_DENIED.into())),
        Some(target) if target == principal.username => Ok(Caller::User(Arc::new(principal))),
        Some(target) => match state.store.user_bundle(target).await? {
            Some(bundle) => {
                let mut acting = principal_of(state, bundle, Some(method)).await?;
                acting.impersonator = Some(principal.username.clone());
                Ok(Caller::User(Arc::new(acting)))
            }
            None => {
                tracing::warn!(target_user = target, "impersonation target does not exist; acting as the caller");
                Ok(Caller::User(Arc::new(principal)))
            }
        },
    }
}

/// Resolved once per request and cached in the request extensions.
async fn cached_caller(parts: &mut Parts, state: &AppState) -> Result<Caller, AppError> {
    if let Some(caller) = parts.extensions.get::<Caller>() {
        return Ok(caller.clone());
    }
    let caller = authenticate(state, parts).await?;
    parts.extensions.insert(caller.clone());
    Ok(caller)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        cached_caller(parts, state).await
    }
}

/// An authenticated caller, or 403 "Authentication credentials were not provided.".
impl FromRequestParts<AppState> for Arc<Principal> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        cached_caller(parts, state).await?.require()
    }
}

/// For endpoints open to anyone: only checks that the `Authorization` header is well formed
/// (as DRF does) without reading the store.
pub struct PublicCaller;

impl FromRequestParts<AppState> for PublicCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        bearer_token(&parts.headers)?;
        Ok(Self)
    }
}
