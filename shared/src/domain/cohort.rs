//! The cohort workspace (spec §3.3, §5): folders, requests, versioned query snapshots, counts (dated
//! measures), cohorts, feasibility studies, saved FHIR filters and refresh schedules. Every object
//! belongs to one owner; relations are uuids resolved inside the owner's workspace.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::time::{iso_format, DateTime};

/// Job status values shared by counts, cohorts, studies and exports (spec §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    New,
    Denied,
    Validated,
    Pending,
    LongPending,
    Started,
    Failed,
    Cancelled,
    Finished,
    Cleaned,
    Unknown,
}

impl JobStatus {
    pub const ALL: [JobStatus; 11] = [
        Self::New,
        Self::Denied,
        Self::Validated,
        Self::Pending,
        Self::LongPending,
        Self::Started,
        Self::Failed,
        Self::Cancelled,
        Self::Finished,
        Self::Cleaned,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Denied => "denied",
            Self::Validated => "validated",
            Self::Pending => "pending",
            Self::LongPending => "long_pending",
            Self::Started => "started",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Finished => "finished",
            Self::Cleaned => "cleaned",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// QueryExecutor and Solr ETL status values, case-insensitive (spec §5.6).
    pub fn from_callback(value: &str) -> Option<Self> {
        match value.to_ascii_uppercase().as_str() {
            "KILLED" => Some(Self::Cancelled),
            "FINISHED" => Some(Self::Finished),
            "RUNNING" | "STARTED" => Some(Self::Started),
            "ERROR" => Some(Self::Failed),
            "UNKNOWN" => Some(Self::Unknown),
            "PENDING" => Some(Self::Pending),
            "LONG_PENDING" => Some(Self::LongPending),
            _ => None,
        }
    }

    /// End states are final: nothing moves a job out of them (spec §3.1).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled | Self::Finished | Self::Unknown)
    }

    /// The statuses a job may still leave.
    pub fn not_final() -> Vec<Self> {
        Self::ALL.into_iter().filter(|s| !s.is_final()).collect()
    }
}

/// The JobModel columns (spec §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    #[serde(default)]
    pub request_job_id: String,
    pub request_job_status: JobStatus,
    #[serde(default)]
    pub request_job_fail_msg: String,
    #[serde(default)]
    pub request_job_duration: String,
}

impl Job {
    pub fn new() -> Self {
        Self {
            request_job_id: String::new(),
            request_job_status: JobStatus::New,
            request_job_fail_msg: String::new(),
            request_job_duration: String::new(),
        }
    }
}

impl Default for Job {
    fn default() -> Self {
        Self::new()
    }
}

/// Creation, modification and soft-deletion stamps every workspace object carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamps {
    #[serde(with = "iso_format")]
    pub created_at: DateTime,
    #[serde(with = "iso_format")]
    pub modified_at: DateTime,
    #[serde(default, with = "iso_format::option")]
    pub deleted: Option<DateTime>,
    #[serde(default)]
    pub deleted_by_cascade: bool,
}

impl Stamps {
    pub fn new(now: DateTime) -> Self {
        Self { created_at: now, modified_at: now, deleted: None, deleted_by_cascade: false }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Folder {
    pub uuid: Uuid,
    pub owner: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// How many alive requests it holds, kept by the request writes (`None` on folders written before
    /// it was kept, until the summaries backfill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_count: Option<i64>,
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub uuid: Uuid,
    pub owner: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub favorite: bool,
    pub parent_folder: Uuid,
    #[serde(default)]
    pub shared_by: Option<String>,
    /// The newest version number given to one of its snapshots, claimed with a conditional write in the
    /// snapshot's transaction (`None` on requests written before it was kept: their snapshots count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_versions: Option<i64>,
    /// Bumped by every write of the request's list summary, so a write that recomputes the whole
    /// summary can require that nothing changed it meanwhile (`domain::summary`).
    #[serde(default)]
    pub summary_rev: i64,
    #[serde(flatten)]
    pub stamps: Stamps,
}

/// A version of a request's query. The query text itself is stored apart ([`SnapshotQuery`]) so that
/// listing a workspace reads small items only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub uuid: Uuid,
    pub owner: String,
    pub request: Uuid,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub previous_snapshot: Option<Uuid>,
    #[serde(default)]
    pub shared_by: Option<String>,
    #[serde(default)]
    pub perimeters_ids: Option<Vec<String>>,
    pub version: i64,
    /// Number of history entries of `serialized_query` (spec §3.3 RequestQuerySnapshotPatch).
    #[serde(default)]
    pub query_patches: i64,
    #[serde(flatten)]
    pub stamps: Stamps,
}

/// A query text is one DynamoDB item (at most 400 KB); the app's queries are a few KB.
pub const MAX_QUERY_BYTES: usize = 350_000;

pub fn query_too_large() -> String {
    format!("serialized_query is too large (at most {MAX_QUERY_BYTES} bytes)")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotQuery {
    pub serialized_query: String,
    /// The QueryExecutor payload cached for refresh schedules.
    #[serde(default)]
    pub translated_query: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeasureMode {
    Snapshot,
    Global,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatedMeasure {
    pub uuid: Uuid,
    pub owner: String,
    pub request_query_snapshot: Uuid,
    /// The snapshot's request: a newer count of the same request cancels the older ones (spec §5.6).
    pub request: Uuid,
    #[serde(default)]
    pub measure: Option<i64>,
    #[serde(default)]
    pub measure_min: Option<i64>,
    #[serde(default)]
    pub measure_max: Option<i64>,
    #[serde(default)]
    pub extra: Option<Value>,
    #[serde(default)]
    pub count_task_id: String,
    pub mode: MeasureMode,
    #[serde(flatten)]
    pub job: Job,
    #[serde(flatten)]
    pub stamps: Stamps,
}

impl DatedMeasure {
    /// A new count of `snapshot` (of `request`), its job not started.
    pub fn new(owner: &str, snapshot: Uuid, request: Uuid, mode: MeasureMode, now: DateTime) -> Self {
        Self {
            uuid: Uuid::new_v4(),
            owner: owner.to_owned(),
            request_query_snapshot: snapshot,
            request,
            measure: None,
            measure_min: None,
            measure_max: None,
            extra: None,
            count_task_id: String::new(),
            mode,
            job: Job::new(),
            stamps: Stamps::new(now),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CohortResult {
    pub uuid: Uuid,
    pub owner: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub favorite: bool,
    #[serde(default)]
    pub request_query_snapshot: Option<Uuid>,
    /// The request of that snapshot (never changes; `None` on cohorts written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Uuid>,
    #[serde(default)]
    pub group_id: String,
    #[serde(default)]
    pub dated_measure: Option<Uuid>,
    #[serde(default)]
    pub dated_measure_global: Option<Uuid>,
    #[serde(default)]
    pub create_task_id: String,
    /// Internal cohorts created for exports: never shown to their owner.
    #[serde(default)]
    pub is_subset: bool,
    /// The export a subset was made for: the end of its creation job re-checks that export (spec §7.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<Uuid>,
    #[serde(default)]
    pub parent_cohort: Option<Uuid>,
    #[serde(default)]
    pub sampling_ratio: Option<f64>,
    #[serde(flatten)]
    pub job: Job,
    #[serde(flatten)]
    pub stamps: Stamps,
}

/// The report display flags of a feasibility study (stored, unused by any logic).
pub const STUDY_DISPLAY_FLAGS: [&str; 10] = [
    "display_eligibility_criteria",
    "display_total_count",
    "display_count_by_ghu",
    "display_count_by_hospital",
    "display_count_by_uf",
    "display_visit_dates",
    "display_demographic_info",
    "display_repartition_graphs",
    "display_visit_graph",
    "display_demographic_graph",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeasibilityStudy {
    pub uuid: Uuid,
    pub owner: String,
    pub request_query_snapshot: Uuid,
    #[serde(default)]
    pub total_count: Option<i64>,
    /// The names of the display flags set to true.
    #[serde(default)]
    pub display: Vec<String>,
    /// Object keys of the zipped HTML report and of its JSON twin, once the counts came back.
    #[serde(default)]
    pub report: Option<ReportFiles>,
    #[serde(flatten)]
    pub job: Job,
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportFiles {
    pub file_name: String,
    pub html_key: String,
    pub json_key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirFilter {
    pub uuid: Uuid,
    pub owner: String,
    pub fhir_resource: String,
    pub fhir_version: String,
    pub query_version: String,
    pub name: String,
    pub filter: String,
    #[serde(default)]
    pub identifying: bool,
    #[serde(default)]
    pub auto_generated: bool,
    /// Number of history entries of `filter` (spec §3.3 FilterFhirPatch).
    #[serde(default)]
    pub filter_patches: i64,
    #[serde(flatten)]
    pub stamps: Stamps,
}

pub const DEFAULT_QUERY_VERSION: &str = "v1.4.4";

/// Leading and trailing `&` and `=` are stripped from a saved filter on every save (spec §3.3).
pub fn clean_filter(filter: &str) -> String {
    filter.trim_matches(|c| c == '&' || c == '=').to_owned()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshFrequency {
    Daily,
    EveryOtherDay,
    Weekly,
}

impl RefreshFrequency {
    pub const CHOICES: [&'static str; 3] = ["daily", "every_other_day", "weekly"];

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "daily" => Some(Self::Daily),
            "every_other_day" => Some(Self::EveryOtherDay),
            "weekly" => Some(Self::Weekly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::CHOICES[self as usize]
    }

    /// The day-of-month step of the original's cron (`*`, `*/2`, `*/7`).
    fn day_step(self) -> u8 {
        match self {
            Self::Daily => 1,
            Self::EveryOtherDay => 2,
            Self::Weekly => 7,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshSchedule {
    pub uuid: Uuid,
    pub owner: String,
    pub request_snapshot: Uuid,
    /// `HH:MM:SS` (UTC).
    pub refresh_time: String,
    pub refresh_frequency: RefreshFrequency,
    #[serde(default, with = "iso_format::option")]
    pub last_refresh: Option<DateTime>,
    #[serde(default)]
    pub last_refresh_succeeded: Option<bool>,
    #[serde(default)]
    pub last_refresh_count: Option<i64>,
    #[serde(default)]
    pub last_refresh_error_msg: Option<String>,
    #[serde(default)]
    pub notify_owner: bool,
    /// When the scheduled-tasks function runs it next (indexed while the schedule is alive).
    #[serde(with = "iso_format")]
    pub next_run: DateTime,
    #[serde(flatten)]
    pub stamps: Stamps,
}

/// Parses `HH:MM[:SS[.ffffff]]` into a normalised `HH:MM:SS`.
pub fn parse_refresh_time(value: &str) -> Option<String> {
    let mut parts = value.trim().split(':');
    let hour: u8 = parts.next()?.parse().ok()?;
    let minute: u8 = parts.next()?.parse().ok()?;
    let second: u8 = match parts.next() {
        Some(s) => s.split('.').next()?.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(format!("{hour:02}:{minute:02}:{second:02}"))
}

/// The first run strictly after `after` of the original's cron: minute and hour of `refresh_time`,
/// day of month `*`, `*/2` (1, 3, 5…) or `*/7` (1, 8, 15, 22, 29), every month (UTC).
pub fn next_refresh(refresh_time: &str, frequency: RefreshFrequency, after: DateTime) -> DateTime {
    let (hour, minute) =
        refresh_time.split(':').map(|p| p.parse::<u8>().unwrap_or(0)).fold((None, None), |acc, v| match acc {
            (None, _) => (Some(v), None),
            (h, None) => (h, Some(v)),
            done => done,
        });
    let at = time::Time::from_hms(hour.unwrap_or(0), minute.unwrap_or(0), 0).unwrap_or(time::Time::MIDNIGHT);
    let after = after.to_offset(time::UtcOffset::UTC);
    let mut day = after.date();
    // Every month has a day 1, so a matching day is at most 31 days away.
    for _ in 0..=62 {
        if (day.day() - 1).is_multiple_of(frequency.day_step()) {
            let candidate = day.with_time(at).assume_utc();
            if candidate > after {
                return candidate;
            }
        }
        day = day.next_day().unwrap_or(day);
    }
    after + time::Duration::days(1)
}

/// `perimeters_ids` of a snapshot: `sourcePopulation.caresiteCohortList` of the query, as strings
/// (spec §5.5 step 5). Integers and numeric strings are accepted.
pub fn perimeters_ids(serialized_query: &str) -> Result<Vec<String>, String> {
    let fail = |detail: String| format!("Error extracting perimeters ids from JSON query - {detail}");
    let query: Value = serde_json::from_str(serialized_query).map_err(|e| fail(e.to_string()))?;
    let population = query.get("sourcePopulation").ok_or_else(|| fail("'sourcePopulation'".into()))?;
    let list = population.get("caresiteCohortList").ok_or_else(|| fail("'caresiteCohortList'".into()))?;
    let items = list.as_array().ok_or_else(|| fail("caresiteCohortList must be a list".into()))?;
    items
        .iter()
        .map(|item| match item {
            Value::Number(n) if n.is_u64() => Ok(n.to_string()),
            Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => Ok(s.clone()),
            other => Err(fail(format!("Invalid perimeter id: {other}"))),
        })
        .collect()
}

/// Replaces perimeter cohort ids in the `caresiteCohortList` of a query text, touching nothing else
/// of the text (stored queries are returned verbatim). `None` when nothing changed.
pub fn rewrite_caresite_cohort_ids(serialized_query: &str, changes: &HashMap<String, String>) -> Option<String> {
    let key = serialized_query.find("\"caresiteCohortList\"")?;
    let open = key + serialized_query[key..].find('[')?;
    let close = open + serialized_query[open..].find(']')?;
    let mut changed = false;
    let items: Vec<String> = serialized_query[open + 1..close]
        .split(',')
        .map(|token| {
            let trimmed = token.trim();
            let bare = trimmed.trim_matches('"');
            match changes.get(bare) {
                Some(new) if !bare.is_empty() => {
                    changed = true;
                    let quoted = trimmed.starts_with('"') || !new.chars().all(|c| c.is_ascii_digit());
                    let replacement = if quoted { format!("\"{new}\"") } else { new.clone() };
                    token.replacen(trimmed, &replacement, 1)
                }
                _ => token.to_owned(),
            }
        })
        .collect();
    changed.then(|| format!("{}{}{}", &serialized_query[..=open], items.join(","), &serialized_query[close..]))
}

/// Python's `str(timedelta)`: `0:01:02.345678`, `1 day, 2:00:00`.
pub fn python_duration(duration: time::Duration) -> String {
    let total_us = duration.whole_microseconds().max(0);
    let days = total_us / 86_400_000_000;
    let rest = total_us % 86_400_000_000;
    let (h, m, s, us) = (rest / 3_600_000_000, rest / 60_000_000 % 60, rest / 1_000_000 % 60, rest % 1_000_000);
    let clock = if us == 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{h}:{m:02}:{s:02}.{us:06}") };
    match days {
        0 => clock,
        1 => format!("1 day, {clock}"),
        d => format!("{d} days, {clock}"),
    }
}

/// The kinds of workspace objects, in cascade order (a kind only cascades to later kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Folder,
    Request,
    Snapshot,
    DatedMeasure,
    Cohort,
    Study,
    Schedule,
    Filter,
}

impl Kind {
    /// The model name of "No <Model> matches the given query." bodies.
    pub fn model(self) -> &'static str {
        match self {
            Self::Folder => "Folder",
            Self::Request => "Request",
            Self::Snapshot => "RequestQuerySnapshot",
            Self::DatedMeasure => "DatedMeasure",
            Self::Cohort => "CohortResult",
            Self::Study => "FeasibilityStudy",
            Self::Schedule => "RequestRefreshSchedule",
            Self::Filter => "FhirFilter",
        }
    }
}

/// An owner's workspace, or the part of it an endpoint loaded. Deleted objects are never in it.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    pub folders: Vec<Folder>,
    pub requests: Vec<Request>,
    pub snapshots: Vec<Snapshot>,
    pub measures: Vec<DatedMeasure>,
    pub cohorts: Vec<CohortResult>,
    pub studies: Vec<FeasibilityStudy>,
    pub schedules: Vec<RefreshSchedule>,
    pub filters: Vec<FhirFilter>,
}

impl Workspace {
    pub fn folder(&self, uuid: Uuid) -> Option<&Folder> {
        self.folders.iter().find(|f| f.uuid == uuid)
    }
    pub fn request(&self, uuid: Uuid) -> Option<&Request> {
        self.requests.iter().find(|r| r.uuid == uuid)
    }
    pub fn snapshot(&self, uuid: Uuid) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.uuid == uuid)
    }
    pub fn measure(&self, uuid: Uuid) -> Option<&DatedMeasure> {
        self.measures.iter().find(|m| m.uuid == uuid)
    }
    pub fn cohort(&self, uuid: Uuid) -> Option<&CohortResult> {
        self.cohorts.iter().find(|c| c.uuid == uuid)
    }

    /// Snapshots with a subset cohort are export internals, invisible everywhere (spec §3.3).
    pub fn hidden_snapshot(&self, uuid: Uuid) -> bool {
        self.cohorts.iter().any(|c| c.is_subset && c.request_query_snapshot == Some(uuid))
    }

    /// A count is "exclusively attached to samples" when cohorts use it and all of them are samples.
    pub fn measure_only_for_samples(&self, measure: Uuid) -> bool {
        let mut users = self.cohorts.iter().filter(|c| c.dated_measure == Some(measure)).peekable();
        users.peek().is_some() && users.all(|c| c.parent_cohort.is_some())
    }

    /// The counts of a snapshot shown with it: newest first, without those only samples use.
    pub fn snapshot_measures(&self, snapshot: Uuid) -> Vec<&DatedMeasure> {
        let mut measures: Vec<&DatedMeasure> = self
            .measures
            .iter()
            .filter(|m| m.request_query_snapshot == snapshot && !self.measure_only_for_samples(m.uuid))
            .collect();
        measures.sort_by_key(|m| std::cmp::Reverse(m.stamps.created_at));
        measures
    }

    /// Every object the deletion of `roots` removes, soft-delete cascade of spec §0.10: folder →
    /// requests → snapshots → counts, cohorts, studies, schedules; count → cohorts built on it.
    /// The roots come first, each object once.
    pub fn cascade(&self, roots: &[(Kind, Uuid)]) -> Vec<(Kind, Uuid)> {
        let mut out: Vec<(Kind, Uuid)> = Vec::new();
        let mut queue: std::collections::VecDeque<(Kind, Uuid)> = roots.iter().copied().collect();
        while let Some((kind, uuid)) = queue.pop_front() {
            if out.contains(&(kind, uuid)) {
                continue;
            }
            out.push((kind, uuid));
            match kind {
                Kind::Folder => queue
                    .extend(self.requests.iter().filter(|r| r.parent_folder == uuid).map(|r| (Kind::Request, r.uuid))),
                Kind::Request => {
                    queue.extend(self.snapshots.iter().filter(|s| s.request == uuid).map(|s| (Kind::Snapshot, s.uuid)))
                }
                Kind::Snapshot => {
                    queue.extend(
                        self.measures
                            .iter()
                            .filter(|m| m.request_query_snapshot == uuid)
                            .map(|m| (Kind::DatedMeasure, m.uuid)),
                    );
                    queue.extend(
                        self.cohorts
                            .iter()
                            .filter(|c| c.request_query_snapshot == Some(uuid))
                            .map(|c| (Kind::Cohort, c.uuid)),
                    );
                    queue.extend(
                        self.studies.iter().filter(|s| s.request_query_snapshot == uuid).map(|s| (Kind::Study, s.uuid)),
                    );
                    queue.extend(
                        self.schedules.iter().filter(|s| s.request_snapshot == uuid).map(|s| (Kind::Schedule, s.uuid)),
                    );
                }
                Kind::DatedMeasure => queue.extend(
                    self.cohorts.iter().filter(|c| c.dated_measure == Some(uuid)).map(|c| (Kind::Cohort, c.uuid)),
                ),
                Kind::Cohort | Kind::Study | Kind::Schedule | Kind::Filter => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn perimeters_ids_follow_the_original_rules() {
        let q = r#"{"sourcePopulation": {"caresiteCohortList": ["12", 34]}}"#;
        assert_eq!(perimeters_ids(q).unwrap(), vec!["12", "34"]);
        assert_eq!(
            perimeters_ids("{}").unwrap_err(),
            "Error extracting perimeters ids from JSON query - 'sourcePopulation'"
        );
        assert!(perimeters_ids("not json")
            .unwrap_err()
            .starts_with("Error extracting perimeters ids from JSON query - "));
        assert_eq!(
            perimeters_ids(r#"{"sourcePopulation": {"caresiteCohortList": ["a1"]}}"#).unwrap_err(),
            "Error extracting perimeters ids from JSON query - Invalid perimeter id: \"a1\""
        );
    }

    #[test]
    fn callback_statuses_map_case_insensitively_and_end_states_are_final() {
        assert_eq!(JobStatus::from_callback("finished"), Some(JobStatus::Finished));
        assert_eq!(JobStatus::from_callback("RUNNING"), Some(JobStatus::Started));
        assert_eq!(JobStatus::from_callback("Long_Pending"), Some(JobStatus::LongPending));
        assert_eq!(JobStatus::from_callback("KILLED"), Some(JobStatus::Cancelled));
        assert_eq!(JobStatus::from_callback("new"), None);
        assert_eq!(JobStatus::from_callback("failed"), None);
        assert!(JobStatus::not_final().iter().all(|s| !s.is_final()));
        assert_eq!(JobStatus::not_final().len(), 7);
    }

    #[test]
    fn cohort_id_rewrites_touch_only_the_population_list() {
        let changes = HashMap::from([("12".to_owned(), "99".to_owned())]);
        let query =
            r#"{"sourcePopulation": {"caresiteCohortList": ["12", 34, "120"]}, "request": {"filterFhir": "x=\"12\""}}"#;
        let rewritten = rewrite_caresite_cohort_ids(query, &changes).unwrap();
        assert_eq!(
            rewritten,
            r#"{"sourcePopulation": {"caresiteCohortList": ["99", 34, "120"]}, "request": {"filterFhir": "x=\"12\""}}"#
        );
        assert_eq!(perimeters_ids(&rewritten).unwrap(), vec!["99", "34", "120"]);
        assert_eq!(rewrite_caresite_cohort_ids(query, &HashMap::new()), None);
        assert_eq!(rewrite_caresite_cohort_ids("{}", &changes), None);
    }

    #[test]
    fn durations_render_like_python_timedelta() {
        assert_eq!(python_duration(time::Duration::milliseconds(62_345)), "0:01:02.345000");
        assert_eq!(python_duration(time::Duration::hours(26)), "1 day, 2:00:00");
        assert_eq!(python_duration(time::Duration::seconds(5)), "0:00:05");
    }

    #[test]
    fn filters_lose_leading_and_trailing_separators() {
        assert_eq!(clean_filter("&gender=f&"), "gender=f");
        assert_eq!(clean_filter("=a=b&="), "a=b");
    }

    #[test]
    fn refresh_times_are_normalised() {
        assert_eq!(parse_refresh_time("7:05").as_deref(), Some("07:05:00"));
        assert_eq!(parse_refresh_time("23:59:59.5").as_deref(), Some("23:59:59"));
        assert_eq!(parse_refresh_time("24:00"), None);
        assert_eq!(parse_refresh_time("noon"), None);
    }

    #[test]
    fn next_refresh_follows_the_cron_of_each_frequency() {
        let after = datetime!(2026-01-30 12:00 UTC);
        assert_eq!(next_refresh("08:30:00", RefreshFrequency::Daily, after), datetime!(2026-01-31 08:30 UTC));
        assert_eq!(next_refresh("13:00:00", RefreshFrequency::Daily, after), datetime!(2026-01-30 13:00 UTC));
        // */2 on the day of month: 31 matches, then 1 of the next month.
        assert_eq!(next_refresh("08:30:00", RefreshFrequency::EveryOtherDay, after), datetime!(2026-01-31 08:30 UTC));
        // */7: 1, 8, 15, 22, 29.
        assert_eq!(next_refresh("08:30:00", RefreshFrequency::Weekly, after), datetime!(2026-02-01 08:30 UTC));
        assert_eq!(
            next_refresh("08:30:00", RefreshFrequency::Weekly, datetime!(2026-02-01 08:30 UTC)),
            datetime!(2026-02-08 08:30 UTC)
        );
    }

    fn stamps() -> Stamps {
        Stamps::new(datetime!(2026-01-01 0:00 UTC))
    }

    #[test]
    fn deleting_a_folder_cascades_to_everything_below_it() {
        let (folder, request, snap, dm, cohort, study, schedule) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let other_folder = Uuid::new_v4();
        let ws = Workspace {
            folders: vec![
                Folder {
                    uuid: folder,
                    owner: "u".into(),
                    name: "f".into(),
                    description: None,
                    requests_count: None,
                    stamps: stamps(),
                },
                Folder {
                    uuid: other_folder,
                    owner: "u".into(),
                    name: "g".into(),
                    description: None,
                    requests_count: None,
                    stamps: stamps(),
                },
            ],
            requests: vec![Request {
                uuid: request,
                owner: "u".into(),
                name: "r".into(),
                description: String::new(),
                favorite: false,
                parent_folder: folder,
                shared_by: None,
                snapshot_versions: None,
                summary_rev: 0,
                stamps: stamps(),
            }],
            snapshots: vec![Snapshot {
                uuid: snap,
                owner: "u".into(),
                request,
                name: None,
                previous_snapshot: None,
                shared_by: None,
                perimeters_ids: None,
                version: 1,
                query_patches: 0,
                stamps: stamps(),
            }],
            measures: vec![DatedMeasure {
                uuid: dm,
                owner: "u".into(),
                request_query_snapshot: snap,
                request,
                measure: None,
                measure_min: None,
                measure_max: None,
                extra: None,
                count_task_id: String::new(),
                mode: MeasureMode::Snapshot,
                job: Job::new(),
                stamps: stamps(),
            }],
            cohorts: vec![CohortResult {
                uuid: cohort,
                owner: "u".into(),
                name: None,
                description: None,
                favorite: false,
                request_query_snapshot: Some(snap),
                request: Some(request),
                group_id: String::new(),
                dated_measure: Some(dm),
                dated_measure_global: None,
                create_task_id: String::new(),
                is_subset: false,
                export: None,
                parent_cohort: None,
                sampling_ratio: None,
                job: Job::new(),
                stamps: stamps(),
            }],
            studies: vec![FeasibilityStudy {
                uuid: study,
                owner: "u".into(),
                request_query_snapshot: snap,
                total_count: None,
                display: vec![],
                report: None,
                job: Job::new(),
                stamps: stamps(),
            }],
            schedules: vec![RefreshSchedule {
                uuid: schedule,
                owner: "u".into(),
                request_snapshot: snap,
                refresh_time: "08:00:00".into(),
                refresh_frequency: RefreshFrequency::Weekly,
                last_refresh: None,
                last_refresh_succeeded: None,
                last_refresh_count: None,
                last_refresh_error_msg: None,
                notify_owner: false,
                next_run: datetime!(2026-01-08 8:00 UTC),
                stamps: stamps(),
            }],
            filters: vec![],
        };
        let removed = ws.cascade(&[(Kind::Folder, folder)]);
        assert_eq!(removed[0], (Kind::Folder, folder));
        for expected in [
            (Kind::Request, request),
            (Kind::Snapshot, snap),
            (Kind::DatedMeasure, dm),
            (Kind::Cohort, cohort),
            (Kind::Study, study),
            (Kind::Schedule, schedule),
        ] {
            assert!(removed.contains(&expected), "{expected:?} not removed");
        }
        assert_eq!(removed.len(), 7, "each object once, the other folder untouched: {removed:?}");
        assert_eq!(ws.cascade(&[(Kind::DatedMeasure, dm)]), vec![(Kind::DatedMeasure, dm), (Kind::Cohort, cohort)]);
    }
}
