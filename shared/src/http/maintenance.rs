//! The maintenance gate (spec §9.1): while a phase is active, writes get a 503, except on `/auth/`
//! and `/maintenances/` and for the QueryExecutor and Solr ETL callbacks.
use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{auth::bearer_token, state::AppState};
use crate::{
    domain::{maintenance::next_phase, time},
    error::AppError,
};

fn exempt(state: &AppState, req: &Request) -> bool {
    let path = req.uri().path();
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || path.starts_with("/auth/")
        || path.starts_with("/maintenances/")
    {
        return true;
    }
    matches!(bearer_token(req.headers()), Ok(Some(token)) if state.api_keys.actor_for(token).is_some_and(|(actor, _)| actor.bypasses_maintenance()))
}

pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if exempt(&state, &req) {
        return next.run(req).await;
    }
    let now = time::now();
    match state.maintenances_not_ended().await {
        Ok(phases) => match next_phase(&phases, now) {
            Some(phase) if phase.is_active_at(now) => AppError::Maintenance(phase.unavailable_notice()).into_response(),
            _ => next.run(req).await,
        },
        Err(err) => AppError::from(err).into_response(),
    }
}
