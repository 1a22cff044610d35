//! CORS as the original answers it (django-cors-headers): the `FRONTEND_URLS` origins exactly, in
//! one place for every function and the dev server. API Gateway forwards `OPTIONS` to the functions
//! (`ANY` routes), so the template needs no CORS configuration of its own.
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::state::AppState;

const ALLOWED_METHODS: &str = "DELETE, GET, OPTIONS, PATCH, POST, PUT";
/// What the two front ends send: the bearer token, its method, impersonation, tracing, JSON bodies
/// (and the Portail's meaningless `Access-Control-Allow-Origin` request header).
const ALLOWED_HEADERS: &str = "accept, access-control-allow-origin, authorization, authorizationmethod, \
     content-type, x-csrftoken, x-impersonate, x-requested-with, x-trace-id";
/// Read by the apps from cross-origin responses (download file names, trace ids).
const EXPOSED_HEADERS: &str = "content-disposition, x-trace-id";
const PREFLIGHT_MAX_AGE_SECONDS: &str = "86400";

/// The request's `Origin` when it is one of the configured front ends.
fn allowed_origin(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    allowed.iter().any(|a| a == text).then(|| origin.clone())
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = allowed_origin(req.headers(), &state.settings.frontend_origins);
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    // A preflight is answered here, whatever the path: 200, with the grants only for our front ends.
    let mut response = if preflight { StatusCode::OK.into_response() } else { next.run(req).await };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    let Some(origin) = origin else { return response };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECONDS));
    } else {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    }
    response
}
