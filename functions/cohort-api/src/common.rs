//! What every owner-scoped cohort endpoint shares (spec §5.1, §0.13, §0.14): the owner of the
//! caller's workspace, the `_id` aliases, the owner rule, uuids in paths and soft deletes.
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use c360::{
    auth::AppActor,
    clients::jobs::{CohortJob, ForwardedAuth, JobMessage},
    domain::{
        cohort::{JobStatus, Kind, Workspace},
        time,
    },
    error::{AppError, AppResult},
    http::{
        contract::{FormField, Schema},
        fields::{unknown_pk, Fields},
        listing::ListQuery,
        AppState, Principal,
    },
    services::subsets::recheck_export,
    store::{
        cohort::{Changes, WorkspaceObject},
        Condition, Key, StoreError, Write,
    },
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Every kind a cascade can reach from a folder, request or cohort.
pub const CASCADE_KINDS: [Kind; 7] =
    [Kind::Folder, Kind::Request, Kind::Snapshot, Kind::DatedMeasure, Kind::Cohort, Kind::Study, Kind::Schedule];

/// Applicative actors (QueryExecutor, Solr ETL) see every count, cohort and study and may only read
/// and patch them (spec §5.1).
pub fn is_applicative(principal: &Principal) -> bool {
    matches!(principal.app, Some(AppActor::QueryExecutor | AppActor::SolrEtl))
}

/// 403 for applicative actors on the methods they may not use.
pub fn refuse_applicative(principal: &Principal) -> AppResult<()> {
    if is_applicative(principal) {
        Err(AppError::permission_denied())
    } else {
        Ok(())
    }
}

/// Copies `<field>_id` into `<field>` for the relations of the endpoint (spec §0.13).
pub fn apply_id_aliases(body: &mut Map<String, Value>, relations: &[&str]) {
    for field in relations {
        if let Some(value) = body.get(&format!("{field}_id")).cloned() {
            body.insert((*field).to_owned(), value);
        }
    }
}

/// `owner` in a body (spec §0.14): a username that, when sent, must be the caller's.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnerRef(pub String);

impl FormField for OwnerRef {
    fn read(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Ok(Self(s.clone())),
            Value::Null => Err("This field may not be null.".into()),
            other => Err(unknown_pk(&other.to_string())),
        }
    }

    fn schema() -> Schema {
        json!({"type": "string"})
    }
}

impl OwnerRef {
    /// Records the owner rule's error when this is not the caller.
    pub fn check(&self, fields: &mut Fields, caller: &str) {
        if self.0 != caller {
            fields.error("owner", unknown_pk(&self.0));
        }
    }
}

/// The owner rule for bodies not read as a form yet.
pub fn check_owner(fields: &mut Fields, caller: &str) {
    if let Some(owner) = fields.field::<OwnerRef>("owner", false) {
        owner.check(fields, caller);
    }
}

/// A uuid in a path: anything else names no object (404, as Django's lookup does).
pub fn path_uuid(raw: &str, kind: Kind) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound(kind.model()))
}

/// The objects a DELETE names: one uuid, or comma-separated uuids (spec §5.1).
pub fn delete_targets(raw: &str, kind: Kind) -> AppResult<Vec<Uuid>> {
    if !raw.contains(',') {
        return Ok(vec![path_uuid(raw, kind)?]);
    }
    let parts: Vec<&str> = raw.split(',').collect();
    parts.iter().map(|p| Uuid::parse_str(p.trim())).collect::<Result<Vec<_>, _>>().map_err(|_| {
        let listed: Vec<String> = parts.iter().map(|p| format!("'{p}'")).collect();
        AppError::BadRequest(format!("Invalid value for uuid param, uuids=[{}]", listed.join(", ")))
    })
}

/// Soft-deletes the caller's objects of `kind` with their cascade (spec §0.10). Every uuid must
/// name one of the caller's alive objects, else nothing is deleted and the answer is 404.
pub async fn delete_owned(state: &AppState, owner: &str, kind: Kind, uuids: &[Uuid]) -> AppResult<StatusCode> {
    // A row's summary changed by a concurrent write makes the transaction fail: read again, retry.
    for _ in 0..4 {
        if delete_once(state, owner, kind, uuids).await? {
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    Err(AppError::internal("delete kept conflicting with concurrent writes"))
}

/// `false` when a concurrent write changed a summary the delete updates (nothing of that
/// transaction was written).
async fn delete_once(state: &AppState, owner: &str, kind: Kind, uuids: &[Uuid]) -> AppResult<bool> {
    let kinds: &[Kind] = if kind == Kind::Filter { &[Kind::Filter] } else { &CASCADE_KINDS };
    let ws = state.store.workspace(owner, kinds).await?;
    let exists = |uuid: Uuid| match kind {
        Kind::Folder => ws.folder(uuid).is_some(),
        Kind::Request => ws.request(uuid).is_some(),
        Kind::Cohort => ws.cohort(uuid).is_some_and(|c| !c.is_subset),
        Kind::Schedule => ws.schedules.iter().any(|s| s.uuid == uuid),
        Kind::Filter => ws.filters.iter().any(|f| f.uuid == uuid),
        Kind::Snapshot | Kind::DatedMeasure | Kind::Study => false,
    };
    if !uuids.iter().all(|u| exists(*u)) {
        return Err(AppError::NotFound(kind.model()));
    }
    let roots: Vec<(Kind, Uuid)> = uuids.iter().map(|u| (kind, *u)).collect();
    let cascade = ws.cascade(&roots);
    match state.store.bin_objects(&ws, &cascade, roots.len(), time::now()).await {
        Ok(()) => {}
        Err(StoreError::TransactionConflict(_)) => return Ok(false),
        Err(other) => return Err(other.into()),
    }
    recheck_orphaned_exports(state, &ws, &cascade).await;
    Ok(true)
}

/// Exports waiting for a cohort subset the delete took away (its request went to the bin) would wait
/// forever: each is re-checked, and a subset gone fails it as a failed subset does (spec §7.4).
async fn recheck_orphaned_exports(state: &AppState, ws: &Workspace, cascade: &[(Kind, Uuid)]) {
    let mut exports: Vec<Uuid> = cascade
        .iter()
        .filter(|(kind, _)| *kind == Kind::Cohort)
        .filter_map(|(_, uuid)| ws.cohort(*uuid))
        .filter(|c| c.is_subset && !c.job.request_job_status.is_final())
        .filter_map(|c| c.export)
        .collect();
    exports.sort_unstable();
    exports.dedup();
    for export in exports {
        let news = state.job_news();
        match recheck_export(news.store, news.exports, news.mailer, news.settings, export).await {
            Ok(outcome) => tracing::info!(%export, ?outcome, "export re-checked after its subsets were deleted"),
            Err(err) => tracing::error!(%export, error = %err, "export not re-checked after its subsets were deleted"),
        }
    }
}

/// Writes new job objects and queues their jobs. A job that cannot be queued would never run: what
/// was written is removed again and the request fails (spec §5.6). `false` when a concurrent write
/// changed a row these writes summarise into (nothing written, nothing queued: read again, retry).
pub async fn create_and_queue(
    state: &AppState,
    headers: &HeaderMap,
    writes: Vec<Write>,
    created: Vec<Key>,
    jobs: Vec<CohortJob>,
) -> AppResult<bool> {
    match state.store.transact(writes).await {
        Err(StoreError::TransactionConflict(_)) => return Ok(false),
        other => other?,
    }
    let fhir_auth = ForwardedAuth::of_request(state.settings.use_solr, headers);
    for job in jobs {
        let message = JobMessage { fhir_auth: fhir_auth.clone(), ..JobMessage::new(job) };
        if let Err(err) = state.jobs.send_message(&message).await {
            for key in &created {
                state.store.delete(key, Condition::None).await.ok();
            }
            return Err(AppError::internal(format!("cohort job not queued: {err}")));
        }
    }
    Ok(true)
}

/// One of the caller's alive objects, or 404 naming its model.
pub async fn owned<T: WorkspaceObject>(state: &AppState, owner: &str, uuid: Uuid) -> AppResult<T> {
    state.store.workspace_object::<T>(owner, uuid).await?.ok_or(AppError::NotFound(T::KIND.model()))
}

/// The caller's username: the owner of everything they create and see.
pub fn owner(principal: &Arc<Principal>) -> &str {
    &principal.username
}

/// Values of `<field>` in the workspace a multi-value filter admits (`a,b`).
pub fn matches_any(query: &ListQuery, param: &str, value: &str) -> bool {
    query.list(param).is_none_or(|wanted| wanted.iter().any(|w| w == value))
}

/// `true`/`false` filters (`None` when absent or not a boolean).
pub fn flag_matches(query: &ListQuery, param: &str, value: bool) -> bool {
    query.flag(param).is_none_or(|wanted| wanted == value)
}

/// Applies attribute changes to one of the caller's objects (404 when it is not theirs or gone).
pub async fn update_owned<T: WorkspaceObject>(
    state: &AppState,
    owner: &str,
    uuid: Uuid,
    changes: Changes,
) -> AppResult<T> {
    state.store.update_object(owner, uuid, changes).await.map_err(|e| match e {
        StoreError::ConditionFailed => AppError::NotFound(T::KIND.model()),
        other => other.into(),
    })
}

/// The validation outcome of a PATCH, after the 404 of a missing object (DRF looks the object up first).
pub async fn checked<T: WorkspaceObject>(
    state: &AppState,
    owner: &str,
    uuid: Uuid,
    fields: Fields<'_>,
) -> AppResult<()> {
    if fields.has_errors() && state.store.workspace_object::<T>(owner, uuid).await?.is_none() {
        return Err(AppError::NotFound(T::KIND.model()));
    }
    fields.finish()
}

/// A workspace loaded for one endpoint, with the kinds it renders.
pub async fn load(state: &AppState, owner: &str, kinds: &[Kind]) -> AppResult<Workspace> {
    Ok(state.store.workspace(owner, kinds).await?)
}

/// A count, cohort or study the caller may see: their own, or any for applicative actors.
pub async fn visible<T: WorkspaceObject>(state: &AppState, principal: &Principal, uuid: Uuid) -> AppResult<T> {
    let found = if is_applicative(principal) {
        state.store.object_by_id::<T>(uuid).await?
    } else {
        state.store.workspace_object::<T>(&principal.username, uuid).await?
    };
    found.ok_or(AppError::NotFound(T::KIND.model()))
}

/// Users may not use the methods an endpoint lacks (405); applicative actors get 403 (spec §5.1).
pub fn method_allowed_for(principal: &Principal) -> bool {
    !is_applicative(principal)
}

/// A callback's number: QueryExecutor sends strings (`"123"`), owners send numbers.
pub fn callback_number(fields: &mut Fields, body: &Map<String, Value>, key: &str) -> Option<i64> {
    match body.get(key)? {
        Value::Null => None,
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                fields.error(key, "A valid integer is required.");
                None
            }
        },
        _ => {
            fields.error(key, "A valid integer is required.");
            None
        }
    }
}

/// The callback status of a body (spec §5.6): `Err` carries the failure message of an unmapped value.
pub fn callback_status(body: &Map<String, Value>) -> Result<JobStatus, String> {
    let raw = body.get("request_job_status");
    raw.and_then(Value::as_str).and_then(JobStatus::from_callback).ok_or_else(|| {
        let shown = match raw {
            None | Some(Value::Null) => "None".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        format!("Bad Request: Invalid job status: {shown}")
    })
}
