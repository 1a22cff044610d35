//! `/logs/` (spec §9.4): the request audit log, for full admins.
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::Method,
    Json, Router,
};
use c360::{
    domain::{request_log::RequestLog, time, user::User},
    error::{AppError, AppResult},
    http::{
        listing::{sort_by, ListQuery, SortValue},
        Api, AppState, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::LogQuery,
};
use serde_json::Value;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "logs")
        .method_policy(MethodPolicy::NotAllowedIf(Principal::is_full_admin))
        .route(Method::GET, "/logs/", Exposure::Authenticated, "Request audit log (full admin, PAGE)", list)
        .route(Method::GET, "/logs/{id}/", Exposure::Authenticated, "One audit log entry (full admin)", retrieve)
        .build()
}

/// `user_details` of each log: the user serializer of `username_persistent` (one BatchGetItem).
async fn with_user_details(state: &AppState, logs: &[RequestLog]) -> AppResult<Vec<Value>> {
    let names: Vec<&str> = logs.iter().filter_map(|l| l.username_persistent.as_deref()).collect();
    let users: HashMap<String, User> = state.store.users_by_name(&names).await?;
    Ok(logs
        .iter()
        .map(|l| l.to_json(l.username_persistent.as_ref().and_then(|n| users.get(n)).map(|u| u.to_json(None, None))))
        .collect())
}

fn int_param(query: &ListQuery, name: &str) -> AppResult<Option<i64>> {
    query.get(name).map(|raw| raw.parse().map_err(|_| AppError::field(name, "Enter a number."))).transpose()
}

fn date_param(query: &ListQuery, name: &str) -> AppResult<Option<time::DateTime>> {
    query
        .get(name)
        .map(|raw| time::parse(raw).ok_or_else(|| AppError::field(name, "Enter a valid date/time.")))
        .transpose()
}

async fn list(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    principal.ensure(Principal::is_full_admin)?;
    let orders = query.ordering("ordering", &["requested_at"])?;
    let after = date_param(&query, "requested_at_after")?;
    // A bare date as upper bound includes that whole day.
    let before = date_param(&query, "requested_at_before")?.map(|b| {
        if query.get("requested_at_before").is_some_and(|r| r.len() == 10) {
            b + ::time::Duration::days(1) - ::time::Duration::microseconds(1)
        } else {
            b
        }
    });
    let (min_ms, max_ms) = (int_param(&query, "response_ms_min")?, int_param(&query, "response_ms_max")?);
    let statuses = query
        .list("status_code")
        .map(|codes| codes.iter().map(|c| c.parse::<u16>()).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(|_| AppError::field("status_code", "Enter a whole number."))?;
    let methods: Option<Vec<String>> = query.list("method").map(|m| m.iter().map(|x| x.to_uppercase()).collect());
    let exact = |value: Option<&str>, param: &str| query.get(param).is_none_or(|wanted| value == Some(wanted));
    let icontains = |value: Option<&str>, param: &str| {
        query.get(param).is_none_or(|wanted| value.is_some_and(|v| v.to_lowercase().contains(&wanted.to_lowercase())))
    };
    let now = time::now();
    let mut logs: Vec<RequestLog> = state
        .store
        .request_logs(&LogQuery { after, before }, state.settings.request_log_retention_days, now)
        .await?
        .into_iter()
        .filter(|l| after.is_none_or(|a| l.requested_at >= a) && before.is_none_or(|b| l.requested_at <= b))
        .filter(|l| exact(l.user.as_deref(), "user") && exact(Some(&l.path), "path") && exact(Some(&l.view), "view"))
        .filter(|l| exact(Some(&l.view_method), "view_method") && exact(l.host.as_deref(), "host"))
        .filter(|l| exact(l.username_persistent.as_deref(), "username_persistent"))
        .filter(|l| methods.as_ref().is_none_or(|m| m.contains(&l.method)))
        .filter(|l| statuses.as_ref().is_none_or(|s| s.contains(&l.status_code)))
        .filter(|l| min_ms.is_none_or(|m| l.response_ms >= m) && max_ms.is_none_or(|m| l.response_ms <= m))
        .filter(|l| icontains(Some(&l.path), "path_contains") && icontains(l.data.as_deref(), "data"))
        // Responses and errors are never stored (as in the original): those filters match nothing.
        .filter(|_| query.get("response").is_none() && query.get("errors").is_none())
        .collect();
    if orders.is_empty() {
        logs.sort_by_key(|l| std::cmp::Reverse(l.id));
    }
    sort_by(&mut logs, &orders, |l, _| SortValue::Int(l.id));
    Ok(Json(query.page(with_user_details(&state, &logs).await?)?))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.ensure(Principal::is_full_admin)?;
    let id: i64 = id.parse().map_err(|_| AppError::NotFound("APIRequestLog"))?;
    let log = state.store.request_log(id).await?.ok_or(AppError::NotFound("APIRequestLog"))?;
    let mut values = with_user_details(&state, std::slice::from_ref(&log)).await?;
    Ok(Json(values.pop().unwrap_or(Value::Null)))
}
