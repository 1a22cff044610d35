//! What the workspace lists show of an object's children, kept on the listed items themselves so
//! that a page of requests or cohorts reads only its rows (docs/data-model.md, "Workspace lists").
//!
//! A request carries one line per snapshot (name, date, version), the cohorts built on each
//! snapshot and the newest count shown with it; a cohort carries the sizes of its counts and its
//! samples. Writers keep them current in the transaction of the child they summarise; these pure
//! functions say what they must equal, computed from a workspace (backfill, rare edits, tests).
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    cohort::{CohortResult, DatedMeasure, Folder, MeasureMode, Request, Snapshot, Workspace},
    time::{iso_format, DateTime},
};

/// A snapshot as its request's row lists it (spec §5.4 `query_snapshots`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotLine {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(with = "iso_format")]
    pub created_at: DateTime,
    pub version: i64,
}

impl SnapshotLine {
    pub fn of(snapshot: &Snapshot) -> Self {
        Self { name: snapshot.name.clone(), created_at: snapshot.stamps.created_at, version: snapshot.version }
    }
}

/// The newest count shown with a snapshot: its `measure` is the row's `patients_count`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountLine {
    pub dm: Uuid,
    #[serde(with = "iso_format")]
    pub at: DateTime,
    #[serde(default)]
    pub measure: Option<i64>,
}

impl CountLine {
    pub fn of(measure: &DatedMeasure) -> Self {
        Self { dm: measure.uuid, at: measure.stamps.created_at, measure: measure.measure }
    }
}

/// Everything a request's row shows of one snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotSummary {
    pub line: SnapshotLine,
    /// Every alive cohort built on the snapshot (samples and export subsets included).
    pub cohorts: BTreeSet<Uuid>,
    /// Every alive count of the snapshot (those of samples included): what its page lists.
    pub counts: BTreeSet<Uuid>,
    /// Subset cohorts make a snapshot an export internal, hidden everywhere (spec §3.3).
    pub hidden: bool,
    pub newest_count: Option<CountLine>,
}

/// A request's snapshots, by uuid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestSummary {
    pub snapshots: BTreeMap<Uuid, SnapshotSummary>,
    /// Its folder's name and description (the folder's uuid is on the request).
    pub folder: Option<FolderLine>,
}

/// What a request's row shows of its folder (`parent_folder`: uuid, name, description).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FolderLine {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

impl FolderLine {
    pub fn of(folder: &Folder) -> Self {
        Self { name: folder.name.clone(), description: folder.description.clone() }
    }
}

impl RequestSummary {
    /// What the summary of `request` must hold, from a workspace with its snapshots, counts and cohorts.
    pub fn from_workspace(ws: &Workspace, request: Uuid) -> Self {
        let snapshots = ws
            .snapshots
            .iter()
            .filter(|s| s.request == request)
            .map(|s| {
                let cohorts = ws.cohorts.iter().filter(|c| c.request_query_snapshot == Some(s.uuid)).map(|c| c.uuid);
                let summary = SnapshotSummary {
                    line: SnapshotLine::of(s),
                    cohorts: cohorts.collect(),
                    counts: ws.measures.iter().filter(|m| m.request_query_snapshot == s.uuid).map(|m| m.uuid).collect(),
                    hidden: ws.hidden_snapshot(s.uuid),
                    newest_count: ws.snapshot_measures(s.uuid).first().map(|m| CountLine::of(m)),
                };
                (s.uuid, summary)
            })
            .collect();
        let folder = ws.request(request).and_then(|r| ws.folder(r.parent_folder)).map(FolderLine::of);
        Self { snapshots, folder }
    }

    /// `updated_at` of a request: the creation of its newest snapshot (hidden ones included).
    pub fn updated_at(&self) -> Option<DateTime> {
        self.snapshots.values().map(|s| s.line.created_at).max()
    }

    /// The snapshots a row lists: visible ones, newest first.
    pub fn listed(&self) -> Vec<(Uuid, &SnapshotSummary)> {
        let mut listed: Vec<(Uuid, &SnapshotSummary)> =
            self.snapshots.iter().filter(|(_, s)| !s.hidden).map(|(u, s)| (*u, s)).collect();
        listed.sort_by_key(|(_, s)| std::cmp::Reverse(s.line.created_at));
        listed
    }
}

/// A sample as its parent cohort's row lists it (`sample_cohorts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleLine {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub sampling_ratio: Option<f64>,
    #[serde(with = "iso_format")]
    pub created_at: DateTime,
}

impl SampleLine {
    pub fn of(sample: &CohortResult) -> Self {
        Self { name: sample.name.clone(), sampling_ratio: sample.sampling_ratio, created_at: sample.stamps.created_at }
    }
}

/// What a cohort's row shows of its request (`request`: uuid, name, description).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

impl RequestLine {
    pub fn of(request: &Request) -> Self {
        Self { name: request.name.clone(), description: request.description.clone() }
    }
}

/// What a cohort's row shows of its request, counts and samples (spec §5.7 annotations).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CohortSummary {
    /// Its request's name and description (the request's uuid is on the cohort).
    pub request: Option<RequestLine>,
    /// `measure` of the cohort's count: `result_size`.
    pub result_size: Option<i64>,
    /// `measure_min` / `measure_max` of its global count.
    pub measure_min: Option<i64>,
    pub measure_max: Option<i64>,
    pub samples: BTreeMap<Uuid, SampleLine>,
}

impl CohortSummary {
    pub fn from_workspace(ws: &Workspace, cohort: &CohortResult) -> Self {
        let global = cohort.dated_measure_global.and_then(|m| ws.measure(m));
        let request = cohort.request_query_snapshot.and_then(|s| ws.snapshot(s)).and_then(|s| ws.request(s.request));
        Self {
            request: request.map(RequestLine::of),
            result_size: cohort.dated_measure.and_then(|m| ws.measure(m)).and_then(|m| m.measure),
            measure_min: global.and_then(|g| g.measure_min),
            measure_max: global.and_then(|g| g.measure_max),
            samples: ws
                .cohorts
                .iter()
                .filter(|s| s.parent_cohort == Some(cohort.uuid))
                .map(|s| (s.uuid, SampleLine::of(s)))
                .collect(),
        }
    }

    /// The samples a row lists, oldest first.
    pub fn listed_samples(&self) -> Vec<(Uuid, &SampleLine)> {
        let mut listed: Vec<(Uuid, &SampleLine)> = self.samples.iter().map(|(u, s)| (*u, s)).collect();
        listed.sort_by_key(|(_, s)| s.created_at);
        listed
    }
}

/// What a count's value means to the cohorts built on it: a cohort's own count gives its
/// `result_size`, a global count its `measure_min` / `measure_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountRole {
    Size,
    Range,
}

impl CountRole {
    pub fn of(measure: &DatedMeasure) -> Self {
        match measure.mode {
            MeasureMode::Global => Self::Range,
            MeasureMode::Snapshot => Self::Size,
        }
    }
}

/// The cohorts built on each count of a workspace, with the role the count plays for them.
pub fn cohorts_by_count(ws: &Workspace) -> BTreeMap<Uuid, BTreeMap<Uuid, CountRole>> {
    let mut out: BTreeMap<Uuid, BTreeMap<Uuid, CountRole>> = BTreeMap::new();
    for c in &ws.cohorts {
        if let Some(m) = c.dated_measure {
            out.entry(m).or_default().insert(c.uuid, CountRole::Size);
        }
        if let Some(m) = c.dated_measure_global {
            out.entry(m).or_default().insert(c.uuid, CountRole::Range);
        }
    }
    out
}

/// Sort key of a list index entry: newest first when read backwards, and among equal dates the
/// smaller uuid first (the order of the in-memory sort over the partition). `None` sorts before
/// every date when read backwards, as PostgreSQL's NULLs in a descending order.
pub fn newest_first_key(at: Option<DateTime>, uuid: Uuid) -> String {
    let inverted: String = uuid
        .simple()
        .to_string()
        .chars()
        .map(|c| char::from_digit(15 - c.to_digit(16).unwrap_or(0), 16).unwrap_or('0'))
        .collect();
    match at {
        Some(at) => format!("{:020}#{inverted}", at.unix_timestamp_nanos() / 1_000),
        None => format!("~#{inverted}"),
    }
}

/// The date a list key was made from (`None` for a request without snapshot, or another text).
pub fn date_of_key(key: &str) -> Option<DateTime> {
    let micros: i128 = key.split('#').next()?.parse().ok()?;
    DateTime::from_unix_timestamp_nanos(micros * 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cohort::{Job, Stamps};
    use time::macros::datetime;

    fn snapshot(request: Uuid, version: i64, at: DateTime) -> Snapshot {
        Snapshot {
            uuid: Uuid::new_v4(),
            owner: "u".into(),
            request,
            name: Some(format!("v{version}")),
            previous_snapshot: None,
            shared_by: None,
            perimeters_ids: None,
            version,
            query_patches: 0,
            stamps: Stamps::new(at),
        }
    }

    fn measure(s: &Snapshot, at: DateTime, value: Option<i64>) -> DatedMeasure {
        DatedMeasure { measure: value, ..DatedMeasure::new("u", s.uuid, s.request, MeasureMode::Snapshot, at) }
    }

    fn cohort(s: &Snapshot, m: &DatedMeasure, parent: Option<Uuid>) -> CohortResult {
        CohortResult {
            uuid: Uuid::new_v4(),
            owner: "u".into(),
            name: Some("c".into()),
            description: None,
            favorite: false,
            request_query_snapshot: Some(s.uuid),
            request: Some(s.request),
            group_id: String::new(),
            dated_measure: Some(m.uuid),
            dated_measure_global: None,
            create_task_id: String::new(),
            is_subset: false,
            export: None,
            parent_cohort: parent,
            sampling_ratio: parent.map(|_| 0.5),
            job: Job::new(),
            stamps: Stamps::new(m.stamps.created_at),
        }
    }

    #[test]
    fn a_request_row_shows_the_newest_count_not_used_only_by_samples() {
        let request = Uuid::new_v4();
        let s1 = snapshot(request, 1, datetime!(2026-01-01 10:00 UTC));
        let s2 = snapshot(request, 2, datetime!(2026-01-02 10:00 UTC));
        let old = measure(&s1, datetime!(2026-01-01 11:00 UTC), Some(10));
        let newest = measure(&s1, datetime!(2026-01-01 12:00 UTC), Some(12));
        let for_sample = measure(&s1, datetime!(2026-01-01 13:00 UTC), Some(6));
        let parent = cohort(&s1, &newest, None);
        let sample = cohort(&s1, &for_sample, Some(parent.uuid));
        let ws = Workspace {
            snapshots: vec![s1.clone(), s2.clone()],
            measures: vec![old, newest.clone(), for_sample],
            cohorts: vec![parent.clone(), sample.clone()],
            ..Workspace::default()
        };
        let summary = RequestSummary::from_workspace(&ws, request);
        assert_eq!(summary.updated_at(), Some(s2.stamps.created_at));
        let listed = summary.listed();
        assert_eq!(listed.iter().map(|(u, _)| *u).collect::<Vec<_>>(), vec![s2.uuid, s1.uuid]);
        let first = &summary.snapshots[&s1.uuid];
        assert_eq!(first.newest_count.as_ref().map(|c| (c.dm, c.measure)), Some((newest.uuid, Some(12))));
        assert_eq!(first.cohorts, BTreeSet::from([parent.uuid, sample.uuid]));
        let parent_summary = CohortSummary::from_workspace(&ws, &parent);
        assert_eq!(parent_summary.result_size, Some(12));
        assert_eq!(parent_summary.listed_samples().iter().map(|(u, _)| *u).collect::<Vec<_>>(), vec![sample.uuid]);
        assert_eq!(RequestSummary::from_workspace(&ws, Uuid::new_v4()), RequestSummary::default());
    }

    #[test]
    fn list_keys_read_backwards_give_newest_first_then_smaller_uuids_and_nulls_first() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (early, late) = (Some(datetime!(2026-01-01 10:00 UTC)), Some(datetime!(2026-01-02 10:00 UTC)));
        let mut keys = vec![
            newest_first_key(early, a),
            newest_first_key(late, b),
            newest_first_key(late, a),
            newest_first_key(None, b),
            newest_first_key(None, a),
        ];
        assert_eq!(date_of_key(&newest_first_key(late, b)), late);
        assert_eq!(date_of_key(&newest_first_key(None, b)), None);
        keys.sort();
        keys.reverse();
        let expected = vec![
            newest_first_key(None, a),
            newest_first_key(None, b),
            newest_first_key(late, a),
            newest_first_key(late, b),
            newest_first_key(early, a),
        ];
        assert_eq!(keys, expected);
    }
}
