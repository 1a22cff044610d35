//! `/cohort/refresh-schedules/` (spec §5.9): periodic re-counts of a snapshot. Each alive schedule
//! sits in the `REFRESH_DUE` index under its next run; the scheduled-tasks function runs the due ones
//! (docs/architecture.md says why one index rather than one EventBridge schedule per entry).
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    domain::{
        cohort::{next_refresh, parse_refresh_time, Kind, RefreshFrequency, RefreshSchedule, Stamps},
        time,
    },
    error::{AppError, AppResult},
    http::{
        fields::Fields,
        listing::{sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, Principal, RouteSpec,
    },
    store::{
        cohort::{put_object, Changes},
        keys, Condition, Entry, StoreError, Write,
    },
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{common::*, views::ScheduleView};

const DUPLICATE: &str = "request refresh schedule with this request snapshot already exists.";

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/cohort/refresh-schedules/";
    const ONE: &str = "/cohort/refresh-schedules/{uuid}/";
    Api::new(state, "cohort")
        .route(Method::GET, ROOT, Exposure::Authenticated, "List the caller's refresh schedules (LIMIT)", list)
        .audited(
            Method::POST,
            ROOT,
            Exposure::Authenticated,
            "Schedule re-counts of a snapshot",
            "refresh_schedules.create",
            create,
        )
        .route(Method::GET, ONE, Exposure::Authenticated, "Get a refresh schedule", retrieve)
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "Change when a snapshot is re-counted",
            "refresh_schedules.partial_update",
            patch,
        )
        .audited(
            Method::DELETE,
            ONE,
            Exposure::Authenticated,
            "Stop re-counting a snapshot (comma-separated uuids)",
            "refresh_schedules.destroy",
            destroy,
        )
        .build()
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<ScheduleView>>> {
    let orders = query.ordering("ordering", &["created_at", "modified_at"])?;
    let orders = if orders.is_empty() { query.ordering_from("-created_at") } else { orders };
    let snapshot = query.uuid("request_snapshot_id")?;
    let mut schedules = load(&state, owner(&principal), &[Kind::Schedule]).await?.schedules;
    schedules.retain(|s| {
        snapshot.is_none_or(|u| s.request_snapshot == u)
            && query.get("refresh_time").is_none_or(|t| parse_refresh_time(t).as_deref() == Some(&s.refresh_time))
            && query.get("refresh_frequency").is_none_or(|f| f == s.refresh_frequency.as_str())
    });
    sort_by(&mut schedules, &orders, |s, field| match field {
        "modified_at" => SortValue::Text(time::iso(s.stamps.modified_at)),
        _ => SortValue::Text(time::iso(s.stamps.created_at)),
    });
    Ok(Json(query.limited_of(schedules).map(|s| ScheduleView::of(&s))))
}

/// `refresh_time` (required on creation) and `refresh_frequency`, validated.
fn timing(fields: &mut Fields, required: bool) -> (Option<String>, Option<RefreshFrequency>) {
    let time = match fields.raw("refresh_time") {
        None if required => {
            fields.error("refresh_time", "This field is required.");
            None
        }
        None => None,
        Some(Value::String(raw)) => parse_refresh_time(raw).or_else(|| {
            fields
                .error("refresh_time", "Time has wrong format. Use one of these formats instead: hh:mm[:ss[.uuuuuu]].");
            None
        }),
        Some(_) => {
            fields
                .error("refresh_time", "Time has wrong format. Use one of these formats instead: hh:mm[:ss[.uuuuuu]].");
            None
        }
    };
    let frequency =
        fields.choice("refresh_frequency", &RefreshFrequency::CHOICES).and_then(|f| RefreshFrequency::parse(&f));
    (time, frequency)
}

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<ScheduleView>)> {
    let owner = owner(&principal);
    apply_id_aliases(&mut body, &["request_snapshot", "owner"]);
    let ws = load(&state, owner, &[Kind::Snapshot, Kind::Cohort, Kind::Schedule]).await?;
    let mut fields = Fields::new(&body);
    // The original accepts anyone's snapshot and any owner; only the caller's are accepted here.
    check_owner(&mut fields, owner);
    let snapshot = fields.required_relation("request_snapshot", |u| ws.snapshot(u).is_some() && !ws.hidden_snapshot(u));
    if snapshot.is_some_and(|s| ws.schedules.iter().any(|existing| existing.request_snapshot == s)) {
        fields.error("request_snapshot", DUPLICATE);
    }
    let (refresh_time, frequency) = timing(&mut fields, true);
    let notify_owner = fields.boolean("notify_owner").unwrap_or(false);
    fields.finish()?;
    let now = time::now();
    let refresh_time = refresh_time.unwrap_or_default();
    let frequency = frequency.unwrap_or(RefreshFrequency::Weekly);
    let schedule = RefreshSchedule {
        uuid: Uuid::new_v4(),
        owner: owner.to_owned(),
        request_snapshot: snapshot.ok_or(AppError::NotFound(Kind::Snapshot.model()))?,
        next_run: next_refresh(&refresh_time, frequency, now),
        refresh_time,
        refresh_frequency: frequency,
        last_refresh: None,
        last_refresh_succeeded: None,
        last_refresh_count: None,
        last_refresh_error_msg: None,
        notify_owner,
        stamps: Stamps::new(now),
    };
    // One alive schedule per snapshot, even under concurrent creations.
    let guard = Entry::new(
        "schedule_guard",
        &keys::schedule_guard(schedule.request_snapshot),
        &json!({"schedule": schedule.uuid}),
    )?;
    let writes = vec![put_object(&schedule, Condition::MustNotExist)?, Write::Put(guard, Condition::MustNotExist)];
    match state.store.transact(writes).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(ScheduleView::of(&schedule)))),
        Err(StoreError::TransactionConflict(failed)) if failed.get(1) == Some(&true) => {
            Err(AppError::field("request_snapshot", DUPLICATE))
        }
        Err(other) => Err(other.into()),
    }
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
) -> AppResult<Json<ScheduleView>> {
    let uuid = path_uuid(&uuid, Kind::Schedule)?;
    let schedule: RefreshSchedule = owned(&state, owner(&principal), uuid).await?;
    Ok(Json(ScheduleView::of(&schedule)))
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuid): Path<String>,
    Body(mut body): Body,
) -> AppResult<Json<ScheduleView>> {
    let uuid = path_uuid(&uuid, Kind::Schedule)?;
    let owner = owner(&principal);
    let current: RefreshSchedule = owned(&state, owner, uuid).await?;
    apply_id_aliases(&mut body, &["owner"]);
    let mut fields = Fields::new(&body);
    check_owner(&mut fields, owner);
    let (refresh_time, frequency) = timing(&mut fields, false);
    let notify_owner = fields.boolean("notify_owner");
    fields.finish()?;
    let now = time::now();
    let mut changes = Changes::modified(now);
    if let Some(notify) = notify_owner {
        changes.set("notify_owner", &notify)?;
    }
    if refresh_time.is_some() || frequency.is_some() {
        let refresh_time = refresh_time.unwrap_or(current.refresh_time);
        let frequency = frequency.unwrap_or(current.refresh_frequency);
        changes.set("refresh_time", &refresh_time)?.set("refresh_frequency", &frequency)?;
        changes.schedule_next_run(uuid, next_refresh(&refresh_time, frequency, now))?;
    }
    let updated: RefreshSchedule = update_owned(&state, owner, uuid, changes).await?;
    Ok(Json(ScheduleView::of(&updated)))
}

async fn destroy(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(uuids): Path<String>,
) -> AppResult<StatusCode> {
    let uuids = delete_targets(&uuids, Kind::Schedule)?;
    delete_owned(&state, owner(&principal), Kind::Schedule, &uuids).await
}
