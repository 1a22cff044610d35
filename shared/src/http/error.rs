//! The single mapping from [`AppError`] to the original's status codes and bodies (spec §0.5, §0.6).
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::error::AppError;

impl AppError {
    pub fn status_and_body(&self) -> (StatusCode, Value) {
        match self {
            Self::NotAuthenticated => {
                (StatusCode::FORBIDDEN, json!({"detail": "Authentication credentials were not provided."}))
            }
            Self::PermissionDenied(detail) => (StatusCode::FORBIDDEN, json!({ "detail": detail })),
            Self::ForbiddenError(msg) => (StatusCode::FORBIDDEN, json!({ "error": msg })),
            Self::MethodNotAllowed(method) => {
                (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": format!("Method \"{method}\" not allowed.")}))
            }
            Self::NotFound(model) => {
                (StatusCode::NOT_FOUND, json!({"detail": format!("No {model} matches the given query.")}))
            }
            Self::NotFoundDetail(detail) => (StatusCode::NOT_FOUND, json!({ "detail": detail })),
            Self::NotFoundError(msg) => (StatusCode::NOT_FOUND, json!({ "error": msg })),
            Self::Invalid(errors) => (StatusCode::BAD_REQUEST, json!(errors)),
            Self::InvalidString(message) => (StatusCode::BAD_REQUEST, json!(message)),
            Self::InvalidList(messages) => (StatusCode::BAD_REQUEST, json!(messages)),
            Self::NotFoundString(message) => (StatusCode::NOT_FOUND, json!(message)),
            Self::ParseError(detail) => (StatusCode::BAD_REQUEST, json!({ "detail": detail })),
            Self::BadRequest(msg) => (StatusCode::BAD_REQUEST, json!({ "error": msg })),
            Self::LoginFailed(msg) => (StatusCode::UNAUTHORIZED, json!({ "error": msg })),
            Self::Message { status, message } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                json!({ "message": message }),
            ),
            Self::Maintenance(body) => (StatusCode::SERVICE_UNAVAILABLE, body.clone()),
            Self::Unconfigured { service, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"detail": format!("The {service} is not configured on this deployment.")}),
            ),
            Self::Upstream { service, .. } => (
                StatusCode::BAD_GATEWAY,
                json!({"detail": format!("The {service} failed or could not be reached; please retry later.")}),
            ),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, json!({"detail": "A server error occurred."})),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            // The cause goes to the log only; clients get a generic body.
            Self::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            Self::Upstream { service, cause } => tracing::error!(service, error = %cause, "third-party service failed"),
            Self::Unconfigured { service, setting } => {
                tracing::error!(service, setting, "third-party service not configured")
            }
            _ => {}
        }
        let (status, body) = self.status_and_body();
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let (status, body) = AppError::internal("dynamodb: table c360 secret details").status_and_body();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("secret"));
        let (status, body) = AppError::upstream("FHIR server", "http://fhir.internal/?token=secret").status_and_body();
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body, json!({"detail": "The FHIR server failed or could not be reached; please retry later."}));
    }

    #[test]
    fn drf_bodies() {
        assert_eq!(
            AppError::NotFound("User").status_and_body().1,
            json!({"detail": "No User matches the given query."})
        );
        assert_eq!(
            AppError::MethodNotAllowed("DELETE".into()).status_and_body().1,
            json!({"detail": "Method \"DELETE\" not allowed."})
        );
        assert_eq!(
            AppError::required("password").status_and_body(),
            (StatusCode::BAD_REQUEST, json!({"password": ["This field is required."]}))
        );
    }
}
