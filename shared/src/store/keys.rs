//! The ONLY place where DynamoDB keys are built. One table (`TABLE_NAME`) holds every entity:
//!
//! | entity | pk | sk | gsi1 (pk / sk) | gsi2 (pk / sk) |
//! |---|---|---|---|---|
//! | user | `USER#<username>` | `#USER` | `USERS` / `<username>` | |
//! | e-mail uniqueness guard | `EMAIL#<lower email>` | `#EMAIL` | | |
//! | profile | `USER#<username>` | `PROFILE#<id>` | `PROFILE#<id>` / `PROFILE` | |
//! | profile (listing) | | | | `PROFILES` / `<username>#<id>` |
//! | access | `USER#<username>` | `ACCESS#<id>` | `ACCESS#<id>` / `ACCESS` | `ACCESSES` / `<perimeter path>#<id>` |
//! | perimeter tree version | `META#PERIMETERS` | `#VERSION` | | |
//! | perimeter tree snapshot (chunks) | `META#PERIMETERS` | `#TREE#<nnn>` | | |
//! | accesses version | `META#ACCESSES` | `#VERSION` | | |
//! | role | `ROLES` | `ROLE#<id>` | | |
//! | role name uniqueness guard | `ROLENAME#<lower name>` | `#ROLENAME` | | |
//! | perimeter | `PERIMETERS` | `PERIMETER#<id>` | | |
//! | removed perimeter (history) | `PERIMETERS#REMOVED` | `PERIMETER#<id>` | | |
//! | id counter | `COUNTER#<entity>` | `#COUNTER` | | |
//! | refresh token | `REFRESH#<jti>` | `#REFRESH` | | |
//! | maintenance phase | `MAINTENANCES` | `MAINT#<id>` | `MAINTENANCE_ENDS` / `<end iso>#<id>` (alive only) | |
//! | release note | `RELEASE_NOTES` | `NOTE#<id>` | | |
//! | web content | `CONTENTS` | `CONTENT#<id>` | | |
//! | request log | `LOGS#<yyyy-mm-dd>` | `LOG#<id>` | `LOGUSER#<username>` / `<id>` (rows with a user) | `LOGROUTE#<route>` / `<id>` (rows with a route) |
//! | request log day counters | `LOGCOUNT#<yyyy-mm-dd>` | `#ALL`, `#ROUTES`, `#SEARCH`, `USER#<username>` | | |
//! | request log counting start | `META#LOGCOUNT` | `#SINCE` | | |
//! | workspace object (alive) | `WS#<owner>` | `<KIND>#<uuid>` | counts, cohorts, studies: `BYID#<KIND>#<uuid[0]>` / `<uuid>` | jobs not ended: `OPEN_JOBS#<KIND>` / `<uuid>`; schedules: `REFRESH_DUE` / `<next run>#<uuid>` |
//! | workspace object (deleted) | `WS#<owner>` | `BIN#<KIND>#<uuid>` | | |
//! | workspace list entry (gsi3) | requests, cohorts: `LIST#<KIND>#<owner>` / `<newest first key>` on the object | | | |
//! | request log path entry (gsi3) | rows of a route with parameters: `LOGPATH#<lower path>` / `<id>` on the row | | | |
//! | request log status entry (gsi4) | finished rows: `LOGSTATUS#<status>` / `<id>` on the row | | | |
//! | workspace counts | `WS#<owner>` | `#COUNTS` | | |
//! | workspace layout marker | `META#WORKSPACES` | `#LAYOUT` | | |
//! | snapshot query text | `WS#<owner>` | `QUERY#<uuid>` | | |
//! | query / filter history | `WS#<owner>` | `QUERYPATCH#<uuid>#<n>`, `FILTERPATCH#<uuid>#<n>` | | |
//! | saved filter name guard | `FILTERNAME#<owner>#<resource>#<name>` | `#FILTERNAME` | | |
//! | snapshots by perimeter cohort id | `RQS_PERIMETER#<cohort id>` | `<owner>#<snapshot uuid>` | | |
//! | one schedule per snapshot guard | `SCHEDULE_OF#<snapshot uuid>` | `#SCHEDULE_OF` | | |
//! | export | `EXPORT#<uuid>` | `#EXPORT` | `EXPORTS` / `<created_at iso>#<uuid>` | `EXPORTS_OF#<owner>` / `<created_at iso>#<uuid>` |
//! | export counters | `EXPORTS#COUNT` | `#ALL`, `OWNER#<owner>` | | |
//! | datalab | `DATALABS` | `DATALAB#<uuid>` | | |
//! | datalab name guard | `DATALABNAME#<name>` | `#DATALABNAME` | | |
//! | infrastructure provider | `INFRA_PROVIDERS` | `PROVIDER#<uuid>` | | |
//! | export result stat | `EXPORT_STATS` | `STAT#<uuid>` | | |
//! | WebSocket connection (TTL) | `WSCONN#<connection id>` | `#WSCONN` | `WSUSER#<username>` / `<connection id>` | `WSCONNS` / `<connection id>` |
//!
//! Numeric ids are zero-padded so that sort keys order like numbers.

use uuid::Uuid;

use crate::domain::cohort::Kind;

pub const USER_SK: &str = "#USER";
pub const PROFILE_PREFIX: &str = "PROFILE#";
pub const ACCESS_PREFIX: &str = "ACCESS#";
pub const USERS_INDEX_PK: &str = "USERS";
pub const ROLES_PK: &str = "ROLES";
pub const PERIMETERS_PK: &str = "PERIMETERS";
pub const MAINTENANCES_PK: &str = "MAINTENANCES";
pub const MAINTENANCE_ENDS_PK: &str = "MAINTENANCE_ENDS";
pub const RELEASE_NOTES_PK: &str = "RELEASE_NOTES";
pub const CONTENTS_PK: &str = "CONTENTS";

/// Names of the global secondary indexes (template.yaml declares them).
pub const GSI1: &str = "gsi1";
pub const GSI2: &str = "gsi2";
/// Workspace lists in their default order (requests by newest snapshot, cohorts by creation).
pub const GSI3: &str = "gsi3";
pub const GSI4: &str = "gsi4";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Key {
    Key { pk: pk.into(), sk: sk.into() }
}

fn padded(id: i64) -> String {
    format!("{id:016}")
}

pub fn user_partition(username: &str) -> String {
    format!("USER#{username}")
}

pub fn user(username: &str) -> Key {
    key(user_partition(username), USER_SK)
}

pub fn users_index(username: &str) -> Key {
    key(USERS_INDEX_PK, username)
}

pub fn email_guard(email: &str) -> Key {
    key(format!("EMAIL#{}", email.to_lowercase()), "#EMAIL")
}

pub fn profile(username: &str, id: i64) -> Key {
    key(user_partition(username), format!("{PROFILE_PREFIX}{}", padded(id)))
}

pub fn profile_lookup(id: i64) -> Key {
    key(format!("PROFILE#{id}"), "PROFILE")
}

pub fn access(username: &str, id: i64) -> Key {
    key(user_partition(username), format!("{ACCESS_PREFIX}{}", padded(id)))
}

pub fn access_lookup(id: i64) -> Key {
    key(format!("ACCESS#{id}"), "ACCESS")
}

pub const ACCESSES_INDEX_PK: &str = "ACCESSES";
pub const PROFILES_INDEX_PK: &str = "PROFILES";

/// Accesses sorted by the path of their perimeter (`/root/…/id/`, see `PerimeterTree::path`): the
/// accesses of a subtree are one `begins_with` on the path, those of one perimeter on `path#`.
pub fn access_by_perimeter_path(path: &str, access_id: i64) -> Key {
    key(ACCESSES_INDEX_PK, format!("{path}#{}", padded(access_id)))
}

pub fn profiles_index(username: &str, id: i64) -> Key {
    key(PROFILES_INDEX_PK, format!("{username}#{}", padded(id)))
}

/// The tree's version and its snapshot share a partition: one Query reads both.
pub const PERIMETERS_META_PK: &str = "META#PERIMETERS";
pub const PERIMETERS_VERSION_SK: &str = "#VERSION";
pub const PERIMETER_TREE_CHUNK_PREFIX: &str = "#TREE#";

pub fn perimeters_version() -> Key {
    key(PERIMETERS_META_PK, PERIMETERS_VERSION_SK)
}

/// One chunk of the tree snapshot (`PerimeterTree::encode`), cut to fit DynamoDB items.
pub fn perimeter_tree_chunk(index: usize) -> Key {
    key(PERIMETERS_META_PK, format!("{PERIMETER_TREE_CHUNK_PREFIX}{index:03}"))
}

/// The chunk index of a snapshot chunk's sort key.
pub fn perimeter_tree_chunk_index(sort: &str) -> Option<usize> {
    sort.strip_prefix(PERIMETER_TREE_CHUNK_PREFIX)?.parse().ok()
}

/// Bumped after every access write: containers keep the accesses index in memory while it holds.
pub fn accesses_version() -> Key {
    key("META#ACCESSES", "#VERSION")
}

pub fn role(id: i64) -> Key {
    key(ROLES_PK, format!("ROLE#{}", padded(id)))
}

/// Keeps role names unique among alive roles (conditional put with the role).
pub fn role_name_guard(name: &str) -> Key {
    key(format!("ROLENAME#{}", name.to_lowercase()), "#ROLENAME")
}

pub fn perimeter(id: i64) -> Key {
    key(PERIMETERS_PK, format!("PERIMETER#{id}"))
}

pub fn removed_perimeter(id: i64) -> Key {
    key("PERIMETERS#REMOVED", format!("PERIMETER#{id}"))
}

pub fn counter(entity: &str) -> Key {
    key(format!("COUNTER#{entity}"), "#COUNTER")
}

pub fn refresh_token(jti: &str) -> Key {
    key(format!("REFRESH#{jti}"), "#REFRESH")
}

pub fn maintenance(id: i64) -> Key {
    key(MAINTENANCES_PK, format!("MAINT#{}", padded(id)))
}

/// Sorted by end so that "phases not yet ended" is one key condition (`sk >= now`).
pub fn maintenance_by_end(end_iso: &str, id: i64) -> Key {
    key(MAINTENANCE_ENDS_PK, format!("{end_iso}#{}", padded(id)))
}

pub fn release_note(id: i64) -> Key {
    key(RELEASE_NOTES_PK, format!("NOTE#{}", padded(id)))
}

pub fn content(id: i64) -> Key {
    key(CONTENTS_PK, format!("CONTENT#{}", padded(id)))
}

/// The sort key of a log row in each of its indexes (`gsi1`..`gsi4`): its padded id, so every index
/// sorts rows by time.
pub fn request_log_index_sort(id: i64) -> String {
    padded(id)
}

pub fn request_log_partition(day: &str) -> String {
    format!("LOGS#{day}")
}

const REQUEST_LOG_PREFIX: &str = "LOG#";

/// The sort key of a log row in its day: sorts by id, hence by time.
pub fn request_log_sort(id: i64) -> String {
    format!("{REQUEST_LOG_PREFIX}{}", padded(id))
}

/// The id of a log row from its sort key.
pub fn request_log_id(sort: &str) -> Option<i64> {
    sort.strip_prefix(REQUEST_LOG_PREFIX)?.parse().ok()
}

pub fn request_log(day: &str, id: i64) -> Key {
    key(request_log_partition(day), request_log_sort(id))
}

pub fn request_log_user_partition(username: &str) -> String {
    format!("LOGUSER#{username}")
}

/// A user's log rows in id order (`gsi1`): the `user` filter reads only them.
pub fn request_log_by_user(username: &str, id: i64) -> Key {
    key(request_log_user_partition(username), padded(id))
}

const REQUEST_LOG_COUNTER_PREFIX: &str = "LOGCOUNT#";

fn request_log_counter_partition(day: &str) -> String {
    format!("{REQUEST_LOG_COUNTER_PREFIX}{day}")
}

/// The day of a request log counter item (any of the day's counters).
pub fn request_log_counter_day(key: &Key) -> Option<&str> {
    key.pk.strip_prefix(REQUEST_LOG_COUNTER_PREFIX)
}

/// How many rows a day holds, by method and by status (`ADD` on every write).
pub fn request_log_counter(day: &str) -> Key {
    key(request_log_counter_partition(day), "#ALL")
}

/// The same counts for one user's rows of the day.
pub fn request_log_user_counter(day: &str, username: &str) -> Key {
    key(request_log_counter_partition(day), format!("USER#{username}"))
}

pub fn request_log_route_partition(route: &str) -> String {
    format!("LOGROUTE#{route}")
}

/// The rows a route template served, in id order (`gsi2`): `path_contains` and `search` read them.
pub fn request_log_by_route(route: &str, id: i64) -> Key {
    key(request_log_route_partition(route), padded(id))
}

pub fn request_log_path_partition(path: &str) -> String {
    format!("LOGPATH#{}", path.to_lowercase())
}

/// The rows of one concrete path of a route with parameters, in id order (`gsi3`): a `path_contains`
/// that fixes every parameter (one access's history) reads only them.
pub fn request_log_by_path(path: &str, id: i64) -> Key {
    key(request_log_path_partition(path), padded(id))
}

pub fn request_log_status_partition(status: u16) -> String {
    format!("LOGSTATUS#{status}")
}

/// The finished rows of one status, in id order (`gsi4`): a `status_code` filter reads only them.
pub fn request_log_by_status(status: u16, id: i64) -> Key {
    key(request_log_status_partition(status), padded(id))
}

/// The day's rows by route template (with their parameter characters).
pub fn request_log_route_counter(day: &str) -> Key {
    key(request_log_counter_partition(day), "#ROUTES")
}

/// The views of the day's route templates and the day's users: read by `search` only.
pub fn request_log_search_counter(day: &str) -> Key {
    key(request_log_counter_partition(day), "#SEARCH")
}

/// The first day whose rows are counted (older rows, written before the counters existed, are read),
/// and `late`, bumped by every write to a closed day's counters (see `store::logs`, "closed days").
pub fn request_log_counting_since() -> Key {
    key("META#LOGCOUNT", "#SINCE")
}

/// The workspace of one owner: every cohort object they own, alive or binned, one partition.
pub fn workspace_partition(owner: &str) -> String {
    format!("WS#{owner}")
}

/// The sort-key prefix of alive objects of a kind (`begins_with` lists them).
pub fn kind_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Folder => "FOLDER#",
        Kind::Request => "REQUEST#",
        Kind::Snapshot => "RQS#",
        Kind::DatedMeasure => "DM#",
        Kind::Cohort => "COHORT#",
        Kind::Study => "STUDY#",
        Kind::Schedule => "SCHEDULE#",
        Kind::Filter => "FILTER#",
    }
}

pub fn workspace_object(kind: Kind, owner: &str, uuid: Uuid) -> Key {
    key(workspace_partition(owner), format!("{}{uuid}", kind_prefix(kind)))
}

/// Where a soft-deleted object goes: out of the alive prefixes, so no listing ever reads it.
pub fn binned_object(kind: Kind, owner: &str, uuid: Uuid) -> Key {
    key(workspace_partition(owner), format!("BIN#{}{uuid}", kind_prefix(kind)))
}

/// A workspace's list index entry: the owner's requests (or cohorts), newest first read backwards
/// (`domain::summary::newest_first_key` makes the sort key).
pub fn workspace_list(kind: Kind, owner: &str, sort_key: String) -> Key {
    key(format!("LIST#{}{owner}", kind_prefix(kind)), sort_key)
}

/// How many requests and cohorts an owner has (the `count` of the list envelopes).
pub fn workspace_counts(owner: &str) -> Key {
    key(workspace_partition(owner), "#COUNTS")
}

/// Whether every workspace item carries its list summary (written by the backfill, or when the
/// table is created by this version).
pub fn workspace_layout() -> Key {
    key("META#WORKSPACES", "#LAYOUT")
}

/// Where the summaries backfill stands (the last owner done), while it runs.
pub fn workspace_backfill_cursor() -> Key {
    key("META#WORKSPACES", "#BACKFILL")
}

pub fn snapshot_query(owner: &str, snapshot: Uuid) -> Key {
    key(workspace_partition(owner), format!("QUERY#{snapshot}"))
}

pub fn snapshot_query_patch(owner: &str, snapshot: Uuid, version: i64) -> Key {
    key(workspace_partition(owner), format!("QUERYPATCH#{snapshot}#{}", padded(version)))
}

pub fn filter_patch(owner: &str, filter: Uuid, version: i64) -> Key {
    key(workspace_partition(owner), format!("FILTERPATCH#{filter}#{}", padded(version)))
}

/// Lookup by uuid alone (callbacks, applicative users), sharded on the first hex digit so the
/// listing of every object of a kind is 16 Queries and no partition gets every lookup.
pub fn object_by_id(kind: Kind, uuid: Uuid) -> Key {
    let shard = uuid.simple().to_string().chars().next().unwrap_or('0');
    key(format!("BYID#{}{shard}", kind_prefix(kind)), uuid.to_string())
}

pub fn object_by_id_shards(kind: Kind) -> impl Iterator<Item = String> {
    "0123456789abcdef".chars().map(move |c| format!("BYID#{}{c}", kind_prefix(kind)))
}

/// Counts, cohorts and studies whose job has not ended (a small set: jobs end within hours), so the
/// active-jobs counter and the stuck-job sweeper read one index partition per kind.
pub fn open_jobs_partition(kind: Kind) -> String {
    format!("OPEN_JOBS#{}", kind_prefix(kind).trim_end_matches('#'))
}

pub fn open_job(kind: Kind, uuid: Uuid) -> Key {
    key(open_jobs_partition(kind), uuid.to_string())
}

pub const REFRESH_DUE_PK: &str = "REFRESH_DUE";

/// Alive schedules by next run: the due ones are `sk <= now`.
pub fn refresh_due(next_run_iso: &str, uuid: Uuid) -> Key {
    key(REFRESH_DUE_PK, format!("{next_run_iso}#{uuid}"))
}

/// Keeps (name, resource) unique among an owner's alive saved filters (spec §3.3).
pub fn filter_name_guard(owner: &str, resource: &str, name: &str) -> Key {
    key(format!("FILTERNAME#{owner}#{resource}#{name}"), "#FILTERNAME")
}

pub fn snapshot_perimeter_partition(cohort_id: &str) -> String {
    format!("RQS_PERIMETER#{cohort_id}")
}

/// Which snapshots' queries name a perimeter cohort id: a sync that changes the id rewrites them.
pub fn snapshot_perimeter(cohort_id: &str, owner: &str, snapshot: Uuid) -> Key {
    key(snapshot_perimeter_partition(cohort_id), format!("{owner}#{snapshot}"))
}

/// At most one alive refresh schedule per snapshot (spec §5.9).
pub fn schedule_guard(snapshot: Uuid) -> Key {
    key(format!("SCHEDULE_OF#{snapshot}"), "#SCHEDULE_OF")
}

/// A live WebSocket connection, found by id on `$disconnect` and after a 410 Gone.
pub fn ws_connection(connection_id: &str) -> Key {
    key(format!("WSCONN#{connection_id}"), "#WSCONN")
}

pub fn ws_user_partition(username: &str) -> String {
    format!("WSUSER#{username}")
}

/// The connections of one user: a `job_status` push is one Query of `gsi1`.
pub fn ws_connection_of_user(username: &str, connection_id: &str) -> Key {
    key(ws_user_partition(username), connection_id)
}

pub const WS_CONNECTIONS_PK: &str = "WSCONNS";

/// Every live connection, for the maintenance broadcasts (one `gsi2` partition: bounded by the number
/// of open browser tabs, a few hundred to a few thousand).
pub fn ws_connection_listing(connection_id: &str) -> Key {
    key(WS_CONNECTIONS_PK, connection_id)
}

pub const EXPORTS_INDEX_PK: &str = "EXPORTS";

pub fn export(uuid: Uuid) -> Key {
    key(format!("EXPORT#{uuid}"), "#EXPORT")
}

/// The `gsi1` / `gsi2` sort key of an export: creation order, the lists' default ordering.
pub fn export_sort(created_at_iso: &str, uuid: Uuid) -> String {
    format!("{created_at_iso}#{uuid}")
}

/// Every user's exports, newest first read backwards (`gsi1`): the list of export managers.
pub fn exports_listing(created_at_iso: &str, uuid: Uuid) -> Key {
    key(EXPORTS_INDEX_PK, export_sort(created_at_iso, uuid))
}

pub fn exports_of_partition(owner: &str) -> String {
    format!("EXPORTS_OF#{owner}")
}

/// One owner's exports in creation order (`gsi2`): the list of a plain user.
pub fn exports_of(owner: &str, created_at_iso: &str, uuid: Uuid) -> Key {
    key(exports_of_partition(owner), export_sort(created_at_iso, uuid))
}

const EXPORT_COUNTS_PK: &str = "EXPORTS#COUNT";

/// How many exports exist (exports are never deleted: created with an `ADD 1`).
pub fn exports_count() -> Key {
    key(EXPORT_COUNTS_PK, "#ALL")
}

pub fn exports_count_of(owner: &str) -> Key {
    key(EXPORT_COUNTS_PK, format!("OWNER#{owner}"))
}

pub const DATALABS_PK: &str = "DATALABS";

pub fn datalab(uuid: Uuid) -> Key {
    key(DATALABS_PK, format!("DATALAB#{uuid}"))
}

/// Keeps datalab names unique (spec §3.4; conditional put with the datalab).
pub fn datalab_name_guard(name: &str) -> Key {
    key(format!("DATALABNAME#{name}"), "#DATALABNAME")
}

pub const INFRA_PROVIDERS_PK: &str = "INFRA_PROVIDERS";

pub fn infrastructure_provider(uuid: Uuid) -> Key {
    key(INFRA_PROVIDERS_PK, format!("PROVIDER#{uuid}"))
}

pub const EXPORT_STATS_PK: &str = "EXPORT_STATS";

pub fn export_stat(uuid: Uuid) -> Key {
    key(EXPORT_STATS_PK, format!("STAT#{uuid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_ids_sort_like_numbers() {
        assert!(role(9).sk < role(10).sk);
        assert!(
            maintenance_by_end("2030-01-01T00:00:00.000000Z", 2).sk
                < maintenance_by_end("2030-01-02T00:00:00.000000Z", 1).sk
        );
    }
}
