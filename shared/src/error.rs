//! The one error type of the service layer. Each variant names a failure the original backend reports;
//! `http::error` renders every variant to its exact status and body (spec §0.5, §0.6) in one place.
use std::collections::BTreeMap;

use crate::store::StoreError;

pub type AppResult<T> = Result<T, AppError>;

/// DRF-style field errors: `{"field": ["message", ...]}`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 403 `{"detail": "Authentication credentials were not provided."}` (DRF never answers 401 here).
    #[error("authentication credentials were not provided")]
    NotAuthenticated,
    /// 403 with a `detail`: the default DRF permission message or a custom one.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// 403 `{"error": ...}` (role deletion guards).
    #[error("forbidden: {0}")]
    ForbiddenError(String),
    /// 405 `{"detail": "Method \"X\" not allowed."}`, only once permissions let the request through.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// 404 `{"detail": "No <Model> matches the given query."}`.
    #[error("no {0} matches the given query")]
    NotFound(&'static str),
    /// 404 `{"detail": "<message>"}`, e.g. "Invalid page." or "Not found.".
    #[error("not found: {0}")]
    NotFoundDetail(String),
    /// 404 `{"error": ...}` (patient-data read checks).
    #[error("not found: {0}")]
    NotFoundError(String),
    /// 400 DRF field errors.
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    /// 400 with a bare JSON string.
    #[error("invalid input: {0}")]
    InvalidString(String),
    /// 400 with a JSON list of strings (a DRF `ValidationError` raised with a message: export requests).
    #[error("invalid input: {0:?}")]
    InvalidList(Vec<String>),
    /// 404 with a bare JSON string (a feasibility report not generated yet).
    #[error("not found: {0}")]
    NotFoundString(String),
    /// 400 `{"detail": ...}`: the body could not be parsed.
    #[error("parse error: {0}")]
    ParseError(String),
    /// 400 `{"error": ...}`.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401 `{"error": ...}`: only the login endpoint answers 401.
    #[error("login failed: {0}")]
    LoginFailed(String),
    /// `{"message": ...}` with the given status (users check endpoint).
    #[error("{status}: {message}")]
    Message { status: u16, message: String },
    /// 503 during an active maintenance phase, with the body of §9.1.
    #[error("maintenance in progress")]
    Maintenance(serde_json::Value),
    /// 503 `{"detail": ...}`: a third-party service this request needs is not configured here.
    #[error("{service} is not configured ({setting} is unset)")]
    Unconfigured { service: &'static str, setting: &'static str },
    /// 502 `{"detail": ...}`: a third-party service failed or answered nonsense; the cause is logged.
    #[error("{service} failed: {cause}")]
    Upstream { service: &'static str, cause: String },
    /// 500; the cause is logged, never sent to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn permission_denied() -> Self {
        Self::PermissionDenied("You do not have permission to perform this action.".into())
    }

    /// A single field error, the most common validation failure.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }

    pub fn required(field: &str) -> Self {
        Self::field(field, "This field is required.")
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn upstream(service: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Upstream { service, cause: cause.to_string() }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        Self::Internal(err.to_string())
    }
}
