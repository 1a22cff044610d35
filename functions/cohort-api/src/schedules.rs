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
        contract::{Choice, Choices, Doc, FormField, Mode, Paging, Pk, Schema},
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

const ORDERING: [&str; 2] = ["created_at", "modified_at"];
const TIME_FORMAT: &str = "Time has wrong format. Use one of these formats instead: hh:mm[:ss[.uuuuuu]].";

/// A time of day as DRF's `TimeField` reads it, stored as `HH:MM:SS`.
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshTime(pub String);

impl FormField for RefreshTime {
    fn read(value: &Value) -> Result<Self, String> {
        value.as_str().and_then(parse_refresh_time).map(Self).ok_or_else(|| TIME_FORMAT.to_owned())
    }

    fn schema() -> Schema {
        json!({"type": "string", "pattern": "^\\s*\\d{1,2}:\\d{1,2}(:\\d{1,2}(\\.\\d{1,6})?)?\\s*$", "examples": ["08:30:00"]})
    }
}

pub struct Frequencies;

impl Choices for Frequencies {
    const VALUES: &'static [&'static str] = &RefreshFrequency::CHOICES;
}

c360::form! {
    /// A refresh schedule as POST creates it and PATCH edits it (`*_id` aliases are read as the relation).
    pub struct ScheduleForm {
        /// The caller's username, if sent.
        optional owner: OwnerRef,
        /// One of the caller's versions, without a schedule yet (creation only).
        required request_snapshot: Pk,
        /// When the count runs (server time zone).
        required refresh_time: RefreshTime,
        /// `weekly` when not given.
        optional refresh_frequency: Choice<Frequencies>,
        /// E-mail the owner each new count.
        optional notify_owner: bool,
    }
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    const ROOT: &str = "/cohort/refresh-schedules/";
    const ONE: &str = "/cohort/refresh-schedules/{uuid}/";
    Api::new(state, "cohort")
        .route(Method::GET, ROOT, Exposure::Authenticated, "List the caller's refresh schedules (LIMIT)", list)
        .doc(
            Doc::new()
                .paged::<ScheduleView>(Paging::Limit)
                .ordering(&ORDERING)
                .param("request_snapshot_id", "Of this version.", json!({"type": "string", "format": "uuid"}))
                .param("refresh_time", "At this time.", RefreshTime::schema())
                .param("refresh_frequency", "At this frequency.", Choice::<Frequencies>::schema()),
        )
        .audited(
            Method::POST,
            ROOT,
            Exposure::Authenticated,
            "Schedule re-counts of a snapshot",
            "refresh_schedules.create",
            create,
        )
        .doc(Doc::new().form::<ScheduleForm>(Mode::Create).reply::<ScheduleView>(201, "The new schedule."))
        .route(Method::GET, ONE, Exposure::Authenticated, "Get a refresh schedule", retrieve)
        .doc(Doc::new().reply::<ScheduleView>(200, "The schedule."))
        .audited(
            Method::PATCH,
            ONE,
            Exposure::Authenticated,
            "Change when a snapshot is re-counted",
            "refresh_schedules.partial_update",
            patch,
        )
        .doc(Doc::new().form::<ScheduleForm>(Mode::Update).reply::<ScheduleView>(200, "The schedule as changed."))
        .audited(
            Method::DELETE,
            ONE,
            Exposure::Authenticated,
            "Stop re-counting a snapshot (comma-separated uuids)",
            "refresh_schedules.destroy",
            destroy,
        )
        .doc(Doc::new().empty(204, "Deleted.").error(400, "A comma-separated list holding something else than uuids."))
        .build()
}

async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<ScheduleView>>> {
    let orders = query.ordering("ordering", &ORDERING)?;
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

async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(mut body): Body,
) -> AppResult<(StatusCode, Json<ScheduleView>)> {
    let owner = owner(&principal);
    apply_id_aliases(&mut body, &["request_snapshot", "owner"]);
    let ws = load(&state, owner, &[Kind::Snapshot, Kind::Cohort, Kind::Schedule]).await?;
    let mut fields = Fields::new(&body);
    let form: ScheduleForm = fields.form(Mode::Create);
    // The original accepts anyone's snapshot and any owner; only the caller's are accepted here.
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    let snapshot = form.request_snapshot.as_ref().and_then(|pk| {
        pk.check(&mut fields, "request_snapshot", |u| ws.snapshot(u).is_some() && !ws.hidden_snapshot(u))
    });
    if snapshot.is_some_and(|s| ws.schedules.iter().any(|existing| existing.request_snapshot == s)) {
        fields.error("request_snapshot", DUPLICATE);
    }
    fields.finish()?;
    let refresh_time = form.refresh_time.map(|t| t.0);
    let frequency = form.refresh_frequency.and_then(|f| RefreshFrequency::parse(&f.0));
    let notify_owner = form.notify_owner.unwrap_or(false);
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
    let form: ScheduleForm = fields.form(Mode::Update);
    if let Some(sent) = &form.owner {
        sent.check(&mut fields, owner);
    }
    fields.finish()?;
    let refresh_time = form.refresh_time.map(|t| t.0);
    let frequency = form.refresh_frequency.and_then(|f| RefreshFrequency::parse(&f.0));
    let notify_owner = form.notify_owner;
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
