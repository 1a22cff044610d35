//! `/logs/` (spec §9.4): the request audit log, for full admins.
//!
//! A listing never reads the whole log: the store counts with its day counters where they answer
//! the filter (`path_contains` and `search` through the route index), reads a bounded number of rows
//! where they do not (then the count is an estimate, flagged by `X-Count-Estimated: true`), and reads
//! only the day(s) the requested page falls in (`docs/data-model.md`, "Request logs").
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method},
    Json, Router,
};
use c360::{
    domain::{log_paths::PathFilter, request_log::RequestLog, time, user::User},
    error::{AppError, AppResult},
    http::{
        contract::{Doc, Paging},
        listing::{ListQuery, Page, PAGE_SIZE},
        Api, AppState, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::logs::{LogCondition, LogPredicate, LogScan},
};
use serde_json::json;
use users_api::views::UserView;

use crate::views::LogView;

/// Set (to `true`) when the `count` of a page is extrapolated from part of the rows.
pub const COUNT_ESTIMATED_HEADER: &str = "x-count-estimated";

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "logs")
        .method_policy(MethodPolicy::NotAllowedIf(Principal::is_full_admin))
        .route(Method::GET, "/logs/", Exposure::Authenticated, "Request audit log (full admin, PAGE)", list)
        .doc(list_doc())
        .route(Method::GET, "/logs/{id}/", Exposure::Authenticated, "One audit log entry (full admin)", retrieve)
        .doc(Doc::new().reply::<LogView>(200, "The entry."))
        .build()
}

const ORDERING: [&str; 1] = ["requested_at"];
/// Filters on an attribute's exact value.
const EXACT_FILTERS: [&str; 5] = ["path", "view", "view_method", "host", "username_persistent"];
/// Filters on what is never stored: they match nothing.
const UNSTORED_FILTERS: [&str; 2] = ["response", "errors"];

fn list_doc() -> Doc {
    let text = json!({"type": "string"});
    let integer = json!({"type": "integer"});
    let datetime = json!({"type": "string", "format": "date-time"});
    let mut doc = Doc::new()
        .paged::<LogView>(Paging::Page)
        .ordering(&ORDERING)
        .search(&["path"])
        .param("requested_at_after", "Requested on or after.", datetime.clone())
        .param("requested_at_before", "Requested on or before (a bare date: that whole day).", datetime)
        .param("response_ms_min", "Answered in at least this many milliseconds.", integer.clone())
        .param("response_ms_max", "Answered in at most this many milliseconds.", integer)
        .param("status_code", "Comma-separated statuses.", text.clone())
        .param("method", "Comma-separated HTTP methods.", text.clone())
        .param("user", "The caller's user.", text.clone())
        .param("path_contains", "Part of the path.", text.clone())
        .param("data", "Part of the (masked) body, any case.", text.clone());
    for name in EXACT_FILTERS {
        doc = doc.param(name, &format!("Exact {name}."), text.clone());
    }
    for name in UNSTORED_FILTERS {
        doc = doc.param(name, "Never stored: any value matches nothing.", text.clone());
    }
    doc
}

/// `user_details` of each log: the user serializer of `username_persistent` (one BatchGetItem).
async fn with_user_details(state: &AppState, logs: &[RequestLog]) -> AppResult<Vec<LogView>> {
    let names: Vec<&str> = logs.iter().filter_map(|l| l.username_persistent.as_deref()).collect();
    let users: HashMap<String, User> = state.store.users_by_name(&names).await?;
    let details =
        |l: &RequestLog| l.username_persistent.as_ref().and_then(|n| users.get(n)).map(|u| UserView::of(u, None, None));
    Ok(logs.iter().map(|l| LogView::of(l, details(l))).collect())
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

/// The filters of §9.4 as the store takes them; `None` when the filter matches nothing.
fn scan_of(state: &AppState, query: &ListQuery) -> AppResult<Option<LogScan>> {
    let orders = query.ordering("ordering", &ORDERING)?;
    let after = date_param(query, "requested_at_after")?;
    // A bare date as upper bound includes that whole day.
    let before = date_param(query, "requested_at_before")?.map(|b| {
        if query.get("requested_at_before").is_some_and(|r| r.len() == 10) {
            b + ::time::Duration::days(1) - ::time::Duration::microseconds(1)
        } else {
            b
        }
    });
    let (min_ms, max_ms) = (int_param(query, "response_ms_min")?, int_param(query, "response_ms_max")?);
    let statuses = query
        .list("status_code")
        .map(|codes| codes.iter().map(|c| c.parse::<u16>()).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(|_| AppError::field("status_code", "Enter a whole number."))?;
    // Responses and errors are never stored (as in the original): those filters match nothing.
    if UNSTORED_FILTERS.iter().any(|name| query.get(name).is_some()) {
        return Ok(None);
    }
    let mut conditions = Vec::new();
    if let Some(methods) = query.list("method") {
        conditions.push(LogCondition::Methods(methods.iter().map(|m| m.to_uppercase()).collect()));
    }
    if let Some(statuses) = statuses {
        conditions.push(LogCondition::Statuses(statuses));
    }
    for attribute in EXACT_FILTERS {
        if let Some(value) = query.get(attribute) {
            conditions.push(LogCondition::Equals(attribute, value.to_owned()));
        }
    }
    conditions.extend(min_ms.map(LogCondition::ResponseMsAtLeast));
    conditions.extend(max_ms.map(LogCondition::ResponseMsAtMost));
    Ok(Some(LogScan {
        user: query.get("user").map(str::to_owned),
        after,
        before,
        conditions,
        residual: residual_filter(query),
        paths: PathFilter::new(query.get("path_contains"), &query.search_terms()),
        ascending: orders.first().is_some_and(|o| !o.descending),
        retention_days: state.settings.request_log_retention_days,
        now: time::now(),
        count_budget: state.settings.request_log_count_budget,
    }))
}

/// `data` (icontains): no index serves it, the rows read are checked.
fn residual_filter(query: &ListQuery) -> Option<LogPredicate> {
    let data = query.get("data")?.to_lowercase();
    Some(Arc::new(move |l: &RequestLog| l.data.as_deref().is_some_and(|v| v.to_lowercase().contains(&data))))
}

/// The offset of the requested page (`page_of` has validated the parameter against `count`).
fn page_offset(query: &ListQuery, count: usize) -> usize {
    let page = match query.get("page") {
        Some("last") => count.div_ceil(PAGE_SIZE).max(1),
        Some(raw) => raw.parse::<usize>().unwrap_or(1),
        None => 1,
    };
    (page - 1) * PAGE_SIZE
}

/// The `X-Count-Estimated` header is set when the count is an estimate.
async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<(HeaderMap, Json<Page<LogView>>)> {
    principal.ensure(Principal::is_full_admin)?;
    let Some(scan) = scan_of(&state, &query)? else {
        return Ok((HeaderMap::new(), Json(query.page_of(Vec::new())?)));
    };
    let mut listing = state.store.plan_request_logs(&scan).await?;
    // The envelope's validation and links, over placeholders: only the page's rows are read.
    let page = query.page_of(vec![(); listing.count])?;
    let offset = page_offset(&query, listing.count);
    let logs = state.store.request_logs_page(&scan, &mut listing, offset, page.results.len()).await?;
    // An estimated count may promise more rows than exist: the page shows those that do.
    let results = with_user_details(&state, &logs).await?;
    let body = Page { count: page.count, next: page.next, previous: page.previous, results };
    let mut headers = HeaderMap::new();
    if listing.estimated {
        headers.insert(HeaderName::from_static(COUNT_ESTIMATED_HEADER), HeaderValue::from_static("true"));
    }
    Ok((headers, Json(body)))
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Json<LogView>> {
    principal.ensure(Principal::is_full_admin)?;
    let id: i64 = id.parse().map_err(|_| AppError::NotFound("APIRequestLog"))?;
    let log = state.store.request_log(id).await?.ok_or(AppError::NotFound("APIRequestLog"))?;
    let mut views = with_user_details(&state, std::slice::from_ref(&log)).await?;
    views.pop().map(Json).ok_or_else(|| AppError::internal("a log without its view"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_offset_agrees_with_the_envelope() {
        for count in [0, 1, 19, 20, 21, 45, 1000] {
            for page in ["1", "2", "3", "last", "+2", "0003", "50"] {
                let query = ListQuery::from_pairs(&[("page", page)], "http://h/logs/");
                if let Ok(envelope) = query.page_of((0..count).collect::<Vec<usize>>()) {
                    let expected = envelope.results.first().copied().unwrap_or(0);
                    assert_eq!(page_offset(&query, count), expected, "count {count}, page {page}");
                }
            }
        }
    }
}
