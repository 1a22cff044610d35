//! The list summaries of workspace items (`domain::summary`) as DynamoDB attributes, the updates
//! that keep them in the writers' transactions, and the reads of the workspace lists.
//!
//! Every summary part is a top-level attribute named after the child it describes, so a writer
//! sets, adds to or removes exactly its part whatever else the item holds (a nested map path would
//! fail on items written before the summaries existed):
//! - request: `sn_<snapshot>` (its line), `co_<snapshot>` and `dm_<snapshot>` (string sets of its
//!   cohorts and counts), `pm_<snapshot>` (newest count shown), `hd_<snapshot>` (hidden), `gsi3` entry by newest snapshot;
//! - cohort: `v_request` (its request's name and description), `v_size`, `v_min`, `v_max`,
//!   `smp_<sample>` (its samples), `gsi3` entry by creation;
//! - count: `cb_<cohort>` (the cohorts built on it, and the role it plays for each);
//! - `#COUNTS` of the owner: `requests`, `cohorts`.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, Update};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use super::{
    cohort::{put_object, Changes},
    decode, keys, sdk_error, DynamoStore, Entry, Item, Key, StoreError, StoreResult, Write,
};
use crate::domain::{
    cohort::{CohortResult, DatedMeasure, Kind, Request},
    summary::{
        newest_first_key, CohortSummary, CountLine, CountRole, FolderLine, RequestLine, RequestSummary, SampleLine,
        SnapshotLine,
    },
    time,
};

pub const REV: &str = "summary_rev";
const LINE: &str = "sn_";
const COHORTS: &str = "co_";
const COUNT: &str = "pm_";
const COUNTS: &str = "dm_";
const HIDDEN: &str = "hd_";
const BUILT: &str = "cb_";
const SAMPLE: &str = "smp_";
const SIZE: &str = "v_size";
const MIN: &str = "v_min";
const MAX: &str = "v_max";
const REQUEST_LINE: &str = "v_request";
/// A request's folder line (also set by the request's own update when it moves).
pub const FOLDER_LINE: &str = "v_folder";
const REQUESTS_COUNT: &str = "requests";
const FOLDER_REQUESTS: &str = "requests_count";
const COHORTS_COUNT: &str = "cohorts";

fn attr(prefix: &str, uuid: Uuid) -> String {
    format!("{prefix}{}", uuid.simple())
}

fn uuid_after(name: &str, prefix: &str) -> Option<Uuid> {
    name.strip_prefix(prefix).and_then(|rest| Uuid::try_parse(rest).ok())
}

fn value<T: Serialize>(v: &T) -> StoreResult<AttributeValue> {
    serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Record(e.to_string()))
}

fn from_value<T: DeserializeOwned>(v: &AttributeValue) -> Option<T> {
    serde_dynamo::from_attribute_value(v.clone()).ok()
}

fn number(v: Option<i64>) -> AttributeValue {
    v.map_or(AttributeValue::Null(true), |n| AttributeValue::N(n.to_string()))
}

fn read_number(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// What must hold for a summary update besides the item existing.
#[derive(Clone, Debug)]
enum Guard {
    /// Nothing changed the summary since it was read (a whole recomputation).
    Rev(i64),
    /// The count shown with a snapshot is still `dm` (`None`: none yet).
    ShownCount { snapshot: Uuid, dm: Option<Uuid> },
    /// The request's newest version is still `previous` (or was never recorded).
    VersionClaim { previous: i64 },
    /// A counter still holds what was read (`None`: the item does not exist yet).
    Counts(Option<(i64, i64)>),
    /// A number attribute still holds what was read (`None`: absent).
    Number(&'static str, Option<i64>),
    /// An optional text attribute still holds what was read (`None`: absent).
    OptionalText(&'static str, Option<String>),
    /// A text attribute still holds what was read.
    Text(&'static str, String),
}

/// One item's summary changes. A transaction may touch an item only once, so the changes of every
/// child a transaction writes are merged into one update per item.
#[derive(Clone, Debug)]
pub struct ItemUpdate {
    key: Key,
    /// Updates create missing items: a summary is only written on an item that exists.
    must_exist: bool,
    set: BTreeMap<String, AttributeValue>,
    add: BTreeMap<String, i64>,
    add_members: BTreeMap<String, BTreeSet<String>>,
    delete_members: BTreeMap<String, BTreeSet<String>>,
    remove: BTreeSet<String>,
    guards: Vec<Guard>,
}

impl ItemUpdate {
    fn on(key: Key) -> Self {
        Self {
            key,
            must_exist: true,
            set: BTreeMap::new(),
            add: BTreeMap::new(),
            add_members: BTreeMap::new(),
            delete_members: BTreeMap::new(),
            remove: BTreeSet::new(),
            guards: Vec::new(),
        }
    }

    pub fn request(owner: &str, request: Uuid) -> Self {
        Self::on(keys::workspace_object(Kind::Request, owner, request))
    }

    pub fn cohort(owner: &str, cohort: Uuid) -> Self {
        Self::on(keys::workspace_object(Kind::Cohort, owner, cohort))
    }

    pub fn folder(owner: &str, folder: Uuid) -> Self {
        Self::on(keys::workspace_object(Kind::Folder, owner, folder))
    }

    pub fn count(owner: &str, measure: Uuid) -> Self {
        Self::on(keys::workspace_object(Kind::DatedMeasure, owner, measure))
    }

    /// The owner's request and cohort counters (created by their first change).
    pub fn counts(owner: &str) -> Self {
        Self { must_exist: false, ..Self::on(keys::workspace_counts(owner)) }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    fn set(&mut self, name: String, v: AttributeValue) -> &mut Self {
        self.remove.remove(&name);
        if matches!(v, AttributeValue::Null(_)) {
            self.set.remove(&name);
            self.remove.insert(name);
        } else {
            self.set.insert(name, v);
        }
        self
    }

    fn unset(&mut self, name: String) -> &mut Self {
        self.set.remove(&name);
        self.remove.insert(name);
        self
    }

    fn bump(&mut self) -> &mut Self {
        self.add.insert(REV.into(), 1);
        self
    }

    // ---- requests ---------------------------------------------------------------------------------

    /// A new snapshot of the request: its line, and the request moves to the top of the list.
    pub fn snapshot_added(
        &mut self,
        owner: &str,
        request: Uuid,
        snapshot: Uuid,
        line: &SnapshotLine,
    ) -> StoreResult<&mut Self> {
        self.set(attr(LINE, snapshot), value(line)?);
        let list = keys::workspace_list(Kind::Request, owner, newest_first_key(Some(line.created_at), request));
        self.set("gsi3sk".into(), AttributeValue::S(list.sk));
        Ok(self.bump())
    }

    /// Claims version `version` of the request's snapshots, in the snapshot's transaction: it holds
    /// only while the request's newest version is still `version - 1` (or was never recorded, on
    /// requests older than the record), so two snapshots saved at once never take the same version
    /// and a request gets exactly one first snapshot.
    pub fn claim_version(&mut self, version: i64) -> &mut Self {
        self.guards.push(Guard::VersionClaim { previous: version - 1 });
        self.set("snapshot_versions".into(), AttributeValue::N(version.to_string()))
    }

    /// The snapshot is an export subset's copy: listed nowhere (spec §3.3).
    pub fn snapshot_hidden(&mut self, snapshot: Uuid) -> &mut Self {
        self.set(attr(HIDDEN, snapshot), AttributeValue::Bool(true));
        self.bump()
    }

    /// A snapshot's name or version changed.
    pub fn snapshot_line(&mut self, snapshot: Uuid, line: &SnapshotLine) -> StoreResult<&mut Self> {
        self.set(attr(LINE, snapshot), value(line)?);
        Ok(self.bump())
    }

    /// A new count of the snapshot, shown with it from now on (counts of samples are never shown).
    pub fn count_created(&mut self, snapshot: Uuid, count: &CountLine) -> StoreResult<&mut Self> {
        self.set(attr(COUNT, snapshot), value(count)?);
        Ok(self.count_added(snapshot, count.dm))
    }

    /// A new count of the snapshot, shown or not (a sample's).
    pub fn count_added(&mut self, snapshot: Uuid, count: Uuid) -> &mut Self {
        self.add_members.entry(attr(COUNTS, snapshot)).or_default().insert(count.to_string());
        self.bump()
    }

    /// A count got its value: shown only if it is still the snapshot's newest.
    pub fn count_measured(&mut self, snapshot: Uuid, count: &CountLine) -> StoreResult<&mut Self> {
        self.guards.push(Guard::ShownCount { snapshot, dm: Some(count.dm) });
        self.set(attr(COUNT, snapshot), value(count)?);
        Ok(self.bump())
    }

    /// The request still has the name and description a new cohort's row copies (a rename meanwhile
    /// makes the creation read it again).
    pub fn still_named(&mut self, line: &RequestLine) -> &mut Self {
        self.guards.push(Guard::Text("name", line.name.clone()));
        self.guards.push(Guard::Text("description", line.description.clone()));
        self
    }

    pub fn cohort_added(&mut self, snapshot: Uuid, cohort: Uuid) -> &mut Self {
        let name = attr(COHORTS, snapshot);
        self.add_members.entry(name).or_default().insert(cohort.to_string());
        self.bump()
    }

    pub fn cohort_removed(&mut self, snapshot: Uuid, cohort: Uuid) -> &mut Self {
        let name = attr(COHORTS, snapshot);
        self.delete_members.entry(name).or_default().insert(cohort.to_string());
        self.bump()
    }

    /// Recomputes the count shown with a snapshot, on condition that it still shows `shown`.
    pub fn shown_count(
        &mut self,
        snapshot: Uuid,
        shown: Option<Uuid>,
        count: Option<&CountLine>,
    ) -> StoreResult<&mut Self> {
        self.guards.push(Guard::ShownCount { snapshot, dm: shown });
        match count {
            Some(count) => self.set(attr(COUNT, snapshot), value(count)?),
            None => self.unset(attr(COUNT, snapshot)),
        };
        Ok(self.bump())
    }

    /// The whole summary of a request, on condition that no other write changed it since `rev`;
    /// `gone` are snapshots it no longer has.
    pub fn whole_request(
        &mut self,
        owner: &str,
        request: Uuid,
        rev: i64,
        summary: &RequestSummary,
        gone: &[Uuid],
    ) -> StoreResult<&mut Self> {
        self.guards.push(Guard::Rev(rev));
        for snapshot in gone {
            for prefix in [LINE, COHORTS, COUNTS, COUNT, HIDDEN] {
                self.unset(attr(prefix, *snapshot));
            }
        }
        for (uuid, s) in &summary.snapshots {
            self.set(attr(LINE, *uuid), value(&s.line)?);
            match &s.newest_count {
                Some(count) => self.set(attr(COUNT, *uuid), value(count)?),
                None => self.unset(attr(COUNT, *uuid)),
            };
            for (prefix, members) in [(COHORTS, &s.cohorts), (COUNTS, &s.counts)] {
                if members.is_empty() {
                    self.unset(attr(prefix, *uuid));
                } else {
                    self.set(attr(prefix, *uuid), AttributeValue::Ss(members.iter().map(Uuid::to_string).collect()));
                }
            }
            if s.hidden {
                self.set(attr(HIDDEN, *uuid), AttributeValue::Bool(true));
            } else {
                self.unset(attr(HIDDEN, *uuid));
            }
        }
        let list = keys::workspace_list(Kind::Request, owner, newest_first_key(summary.updated_at(), request));
        self.set("gsi3pk".into(), AttributeValue::S(list.pk));
        self.set("gsi3sk".into(), AttributeValue::S(list.sk));
        Ok(self.bump())
    }

    // ---- cohorts ----------------------------------------------------------------------------------

    /// A count's value, as the cohorts built on it show it.
    pub fn count_value(
        &mut self,
        role: CountRole,
        measure: Option<i64>,
        min: Option<i64>,
        max: Option<i64>,
    ) -> &mut Self {
        match role {
            CountRole::Size => self.set(SIZE.into(), number(measure)),
            CountRole::Range => self.set(MIN.into(), number(min)).set(MAX.into(), number(max)),
        };
        self.bump()
    }

    /// Its request was renamed or described anew.
    pub fn request_line(&mut self, line: &RequestLine) -> StoreResult<&mut Self> {
        self.set(REQUEST_LINE.into(), value(line)?);
        Ok(self.bump())
    }

    pub fn sample_line(&mut self, sample: Uuid, line: &SampleLine) -> StoreResult<&mut Self> {
        self.set(attr(SAMPLE, sample), value(line)?);
        Ok(self.bump())
    }

    pub fn sample_removed(&mut self, sample: Uuid) -> &mut Self {
        self.unset(attr(SAMPLE, sample));
        self.bump()
    }

    /// The whole summary of a cohort (backfill), with its request and list entry; `stale` are
    /// samples it no longer has.
    pub fn whole_cohort(
        &mut self,
        cohort: &CohortResult,
        rev: i64,
        summary: &CohortSummary,
        stale: &[Uuid],
    ) -> StoreResult<&mut Self> {
        self.guards.push(Guard::Rev(rev));
        if let Some(request) = cohort.request {
            self.set("request".into(), AttributeValue::S(request.to_string()));
        }
        if !cohort.is_subset {
            let list = keys::workspace_list(
                Kind::Cohort,
                &cohort.owner,
                newest_first_key(Some(cohort.stamps.created_at), cohort.uuid),
            );
            self.set("gsi3pk".into(), AttributeValue::S(list.pk));
            self.set("gsi3sk".into(), AttributeValue::S(list.sk));
        }
        for sample in stale {
            self.unset(attr(SAMPLE, *sample));
        }
        match &summary.request {
            Some(line) => self.set(REQUEST_LINE.into(), value(line)?),
            None => self.unset(REQUEST_LINE.into()),
        };
        self.set(SIZE.into(), number(summary.result_size));
        self.set(MIN.into(), number(summary.measure_min));
        self.set(MAX.into(), number(summary.measure_max));
        for (uuid, line) in &summary.samples {
            self.set(attr(SAMPLE, *uuid), value(line)?);
        }
        Ok(self.bump())
    }

    // ---- counts (dated measures) ------------------------------------------------------------------

    pub fn built_on(&mut self, cohort: Uuid, role: CountRole) -> StoreResult<&mut Self> {
        Ok(self.set(attr(BUILT, cohort), value(&role)?))
    }

    pub fn not_built_on(&mut self, cohort: Uuid) -> &mut Self {
        self.unset(attr(BUILT, cohort))
    }

    // ---- folders ----------------------------------------------------------------------------------

    /// The folder still has the name and description a request's row copies (a rename meanwhile
    /// makes the writer read it again).
    pub fn folder_still_named(&mut self, line: &FolderLine) -> &mut Self {
        self.guards.push(Guard::Text("name", line.name.clone()));
        self.guards.push(Guard::OptionalText("description", line.description.clone()));
        self
    }

    /// A request's folder line (its folder was renamed, or it moved).
    pub fn folder_line(&mut self, line: &FolderLine) -> StoreResult<&mut Self> {
        self.set(FOLDER_LINE.into(), value(line)?);
        Ok(self.bump())
    }

    /// `n` more (or fewer) requests in the folder.
    pub fn folder_requests(&mut self, n: i64) -> &mut Self {
        *self.add.entry(FOLDER_REQUESTS.into()).or_default() += n;
        self
    }

    /// The folder's whole request count, on condition that it still holds what was read.
    pub fn whole_folder_requests(&mut self, seen: Option<i64>, n: i64) -> &mut Self {
        self.guards.push(Guard::Number(FOLDER_REQUESTS, seen));
        self.set(FOLDER_REQUESTS.into(), AttributeValue::N(n.to_string()))
    }

    // ---- owner counters ---------------------------------------------------------------------------

    pub fn add_requests(&mut self, n: i64) -> &mut Self {
        *self.add.entry(REQUESTS_COUNT.into()).or_default() += n;
        self
    }

    pub fn add_cohorts(&mut self, n: i64) -> &mut Self {
        *self.add.entry(COHORTS_COUNT.into()).or_default() += n;
        self
    }

    /// Both counters, on condition that they still hold what was read.
    pub fn whole_counts(&mut self, seen: Option<(i64, i64)>, requests: i64, cohorts: i64) -> &mut Self {
        self.guards.push(Guard::Counts(seen));
        self.set(REQUESTS_COUNT.into(), AttributeValue::N(requests.to_string()));
        self.set(COHORTS_COUNT.into(), AttributeValue::N(cohorts.to_string()))
    }

    /// Folds `other` (same item) into this update.
    pub fn merge(&mut self, other: ItemUpdate) {
        for (name, v) in other.set {
            self.set(name, v);
        }
        for name in other.remove {
            self.unset(name);
        }
        for (name, n) in other.add {
            if name == REV {
                self.add.insert(name, 1);
            } else {
                *self.add.entry(name).or_default() += n;
            }
        }
        for (name, members) in other.add_members {
            self.add_members.entry(name).or_default().extend(members);
        }
        for (name, members) in other.delete_members {
            self.delete_members.entry(name).or_default().extend(members);
        }
        self.guards.extend(other.guards);
        self.must_exist |= other.must_exist;
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.values().all(|n| *n == 0)
            && self.add_members.is_empty()
            && self.delete_members.is_empty()
            && self.remove.is_empty()
    }

    /// The update expression, its condition, names and values.
    fn expression(&self) -> (String, Option<String>, HashMap<String, String>, HashMap<String, AttributeValue>) {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let name_of = |names: &mut HashMap<String, String>, attribute: &str| {
            let placeholder = format!("#n{}", names.len());
            names.insert(placeholder.clone(), attribute.to_owned());
            placeholder
        };
        let value_of = |values: &mut HashMap<String, AttributeValue>, v: AttributeValue| {
            let placeholder = format!(":v{}", values.len());
            values.insert(placeholder.clone(), v);
            placeholder
        };
        let mut sets = Vec::new();
        for (name, v) in &self.set {
            let (n, v) = (name_of(&mut names, name), value_of(&mut values, v.clone()));
            sets.push(format!("{n} = {v}"));
        }
        let mut adds = Vec::new();
        for (name, by) in self.add.iter().filter(|(_, n)| **n != 0) {
            let (n, v) = (name_of(&mut names, name), value_of(&mut values, AttributeValue::N(by.to_string())));
            adds.push(format!("{n} {v}"));
        }
        for (name, members) in &self.add_members {
            let (n, v) = (
                name_of(&mut names, name),
                value_of(&mut values, AttributeValue::Ss(members.iter().cloned().collect())),
            );
            adds.push(format!("{n} {v}"));
        }
        let mut deletes = Vec::new();
        for (name, members) in &self.delete_members {
            let (n, v) = (
                name_of(&mut names, name),
                value_of(&mut values, AttributeValue::Ss(members.iter().cloned().collect())),
            );
            deletes.push(format!("{n} {v}"));
        }
        let removes: Vec<String> = self.remove.iter().map(|name| name_of(&mut names, name)).collect();
        let mut expression = String::new();
        for (clause, parts) in [("SET", sets), ("ADD", adds), ("DELETE", deletes), ("REMOVE", removes)] {
            if !parts.is_empty() {
                expression.push_str(&format!("{clause} {} ", parts.join(", ")));
            }
        }
        let mut conditions: Vec<String> = Vec::new();
        if self.must_exist {
            conditions.push("attribute_exists(pk)".into());
        }
        for guard in &self.guards {
            conditions.push(match guard {
                Guard::Rev(rev) => {
                    let n = name_of(&mut names, REV);
                    if *rev == 0 {
                        format!(
                            "(attribute_not_exists({n}) OR {n} = {})",
                            value_of(&mut values, AttributeValue::N("0".into()))
                        )
                    } else {
                        format!("{n} = {}", value_of(&mut values, AttributeValue::N(rev.to_string())))
                    }
                }
                Guard::ShownCount { snapshot, dm } => {
                    let n = name_of(&mut names, &attr(COUNT, *snapshot));
                    match dm {
                        Some(dm) => {
                            let dm_name = name_of(&mut names, "dm");
                            format!("{n}.{dm_name} = {}", value_of(&mut values, AttributeValue::S(dm.to_string())))
                        }
                        None => format!("attribute_not_exists({n})"),
                    }
                }
                Guard::VersionClaim { previous } => {
                    let n = name_of(&mut names, "snapshot_versions");
                    let v = value_of(&mut values, AttributeValue::N(previous.to_string()));
                    format!("(attribute_not_exists({n}) OR {n} = {v})")
                }
                Guard::Text(attribute, seen) => {
                    let n = name_of(&mut names, attribute);
                    let v = value_of(&mut values, AttributeValue::S(seen.clone()));
                    // An empty text may be stored as no attribute at all.
                    if seen.is_empty() {
                        format!("(attribute_not_exists({n}) OR {n} = {v})")
                    } else {
                        format!("{n} = {v}")
                    }
                }
                Guard::OptionalText(attribute, seen) => {
                    let n = name_of(&mut names, attribute);
                    match seen {
                        None => format!("attribute_not_exists({n})"),
                        Some(v) => format!("{n} = {}", value_of(&mut values, AttributeValue::S(v.clone()))),
                    }
                }
                Guard::Number(attribute, seen) => {
                    let n = name_of(&mut names, attribute);
                    match seen {
                        None => format!("attribute_not_exists({n})"),
                        Some(v) => format!("{n} = {}", value_of(&mut values, AttributeValue::N(v.to_string()))),
                    }
                }
                Guard::Counts(seen) => match seen {
                    None => "attribute_not_exists(pk)".to_owned(),
                    Some((requests, cohorts)) => {
                        let (r, c) = (name_of(&mut names, REQUESTS_COUNT), name_of(&mut names, COHORTS_COUNT));
                        let rv = value_of(&mut values, AttributeValue::N(requests.to_string()));
                        let cv = value_of(&mut values, AttributeValue::N(cohorts.to_string()));
                        format!("{r} = {rv} AND {c} = {cv}")
                    }
                },
            });
        }
        let condition = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        (expression.trim().to_owned(), condition, names, values)
    }
}

/// The summary of a request item.
pub fn request_summary_of(item: &Item) -> RequestSummary {
    let mut summary = RequestSummary {
        folder: item.get(FOLDER_LINE).and_then(from_value::<FolderLine>),
        ..RequestSummary::default()
    };
    for (name, v) in item {
        if let Some(snapshot) = uuid_after(name, LINE) {
            let Some(line) = from_value::<SnapshotLine>(v) else { continue };
            let count = item.get(&attr(COUNT, snapshot)).and_then(from_value::<CountLine>);
            let members = |prefix: &str| -> BTreeSet<Uuid> {
                item.get(&attr(prefix, snapshot))
                    .and_then(|v| v.as_ss().ok())
                    .map(|members| members.iter().filter_map(|m| Uuid::try_parse(m).ok()).collect())
                    .unwrap_or_default()
            };
            let (cohorts, counts) = (members(COHORTS), members(COUNTS));
            let hidden = item.get(&attr(HIDDEN, snapshot)).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
            summary.snapshots.insert(
                snapshot,
                crate::domain::summary::SnapshotSummary { line, cohorts, counts, hidden, newest_count: count },
            );
        }
    }
    summary
}

/// The summary of a cohort item.
pub fn cohort_summary_of(item: &Item) -> CohortSummary {
    CohortSummary {
        request: item.get(REQUEST_LINE).and_then(from_value::<RequestLine>),
        result_size: read_number(item, SIZE),
        measure_min: read_number(item, MIN),
        measure_max: read_number(item, MAX),
        samples: item
            .iter()
            .filter_map(|(name, v)| Some((uuid_after(name, SAMPLE)?, from_value::<SampleLine>(v)?)))
            .collect(),
    }
}

/// The cohorts a count's item says are built on it.
pub fn built_on_of(item: &Item) -> BTreeMap<Uuid, CountRole> {
    item.iter().filter_map(|(name, v)| Some((uuid_after(name, BUILT)?, from_value::<CountRole>(v)?))).collect()
}

/// The list index entry of a request or a cohort (`None` for export subsets, never listed).
pub fn list_entry(entry: Entry, kind: Kind, owner: &str, at: Option<time::DateTime>, uuid: Uuid) -> Entry {
    entry.gsi3(&keys::workspace_list(kind, owner, newest_first_key(at, uuid)))
}

/// A new request item with its whole summary (shared copies, seeded data).
pub fn request_entry_with(entry: Entry, request: &Request, summary: &RequestSummary) -> StoreResult<Entry> {
    let mut entry = list_entry(entry, Kind::Request, &request.owner, summary.updated_at(), request.uuid);
    if let Some(folder) = &summary.folder {
        entry = entry.attribute(FOLDER_LINE, value(folder)?);
    }
    for (uuid, s) in &summary.snapshots {
        entry = entry.attribute(&attr(LINE, *uuid), value(&s.line)?);
        if let Some(count) = &s.newest_count {
            entry = entry.attribute(&attr(COUNT, *uuid), value(count)?);
        }
        if !s.cohorts.is_empty() {
            entry = entry
                .attribute(&attr(COHORTS, *uuid), AttributeValue::Ss(s.cohorts.iter().map(Uuid::to_string).collect()));
        }
        if s.hidden {
            entry = entry.attribute(&attr(HIDDEN, *uuid), AttributeValue::Bool(true));
        }
    }
    Ok(entry)
}

/// A new cohort item with its whole summary.
pub fn cohort_entry_with(mut entry: Entry, summary: &CohortSummary) -> StoreResult<Entry> {
    if let Some(line) = &summary.request {
        entry = entry.attribute(REQUEST_LINE, value(line)?);
    }
    for (name, v) in [(SIZE, summary.result_size), (MIN, summary.measure_min), (MAX, summary.measure_max)] {
        if let Some(v) = v {
            entry = entry.attribute(name, AttributeValue::N(v.to_string()));
        }
    }
    for (uuid, line) in &summary.samples {
        entry = entry.attribute(&attr(SAMPLE, *uuid), value(line)?);
    }
    Ok(entry)
}

/// A new count item with the cohorts built on it.
pub fn count_entry_with(mut entry: Entry, built_on: &BTreeMap<Uuid, CountRole>) -> StoreResult<Entry> {
    for (cohort, role) in built_on {
        entry = entry.attribute(&attr(BUILT, *cohort), value(role)?);
    }
    Ok(entry)
}

/// The owner counters item, whole (seeded data).
pub fn counts_entry(owner: &str, requests: i64, cohorts: i64) -> StoreResult<Entry> {
    Ok(Entry::new("workspace_counts", &keys::workspace_counts(owner), &serde_json::json!({}))?
        .attribute(REQUESTS_COUNT, AttributeValue::N(requests.to_string()))
        .attribute(COHORTS_COUNT, AttributeValue::N(cohorts.to_string())))
}

/// A request with what its row shows.
#[derive(Clone, Debug)]
pub struct RequestRow {
    pub request: Request,
    pub summary: RequestSummary,
}

/// What filtering and ordering a request needs: the list's other orderings read only this.
#[derive(Clone, Debug)]
pub struct RequestKey {
    pub uuid: Uuid,
    pub name: String,
    pub description: String,
    pub favorite: bool,
    pub shared_by: Option<String>,
    pub parent_folder: Uuid,
    /// The creation of its newest snapshot.
    pub updated_at: Option<time::DateTime>,
}

impl RequestKey {
    pub fn of(row: &RequestRow) -> Self {
        let r = &row.request;
        Self {
            uuid: r.uuid,
            name: r.name.clone(),
            description: r.description.clone(),
            favorite: r.favorite,
            shared_by: r.shared_by.clone(),
            parent_folder: r.parent_folder,
            updated_at: row.summary.updated_at(),
        }
    }
}

/// A cohort with what its row shows.
#[derive(Clone, Debug)]
pub struct CohortRow {
    pub cohort: CohortResult,
    pub summary: CohortSummary,
}

fn request_row(item: Item) -> StoreResult<RequestRow> {
    let summary = request_summary_of(&item);
    Ok(RequestRow { request: decode(item)?, summary })
}

fn cohort_row(item: Item) -> StoreResult<CohortRow> {
    let summary = cohort_summary_of(&item);
    Ok(CohortRow { cohort: decode(item)?, summary })
}

/// Per table, whether its workspace items carry their summaries: once seen, for the container's
/// life; until then checked at most every 30 s (epoch second of the last check).
static LAYOUT: std::sync::Mutex<BTreeMap<String, (bool, i64)>> = std::sync::Mutex::new(BTreeMap::new());

impl DynamoStore {
    /// The writes of a new count: the count, and its request listing it and showing it with its
    /// snapshot (a sample's count is never shown: the cohort creation lists it itself).
    pub fn new_count_writes(&self, measure: &DatedMeasure) -> StoreResult<Vec<Write>> {
        let mut shown = ItemUpdate::request(&measure.owner, measure.request);
        shown.count_created(measure.request_query_snapshot, &CountLine::of(measure))?;
        Ok(vec![put_object(measure, super::Condition::MustNotExist)?, self.update(shown)?])
    }

    /// Applies a count's `changes` (conditional on its job not having ended: `ConditionFailed`
    /// otherwise) with its new value shown on its request (while it is the snapshot's newest count)
    /// and on the cohorts built on it, in one transaction. Returns the stored count.
    pub async fn record_count(&self, measure: &DatedMeasure, changes: Changes) -> StoreResult<DatedMeasure> {
        let key = keys::workspace_object(Kind::DatedMeasure, &measure.owner, measure.uuid);
        let mut show_on_request = true;
        for _ in 0..4 {
            let Some(item) = self.raw(&key).await? else { return Err(StoreError::ConditionFailed) };
            let built_on = built_on_of(&item);
            let mut next: DatedMeasure = decode(item)?;
            changes.apply_to(&mut next)?;
            let mut writes = vec![self.update_write::<DatedMeasure>(&measure.owner, measure.uuid, changes.clone())?];
            if show_on_request {
                let mut shown = ItemUpdate::request(&measure.owner, measure.request);
                shown.count_measured(measure.request_query_snapshot, &CountLine::of(&next))?;
                writes.push(self.update(shown)?);
            }
            for (cohort, role) in &built_on {
                let mut row = ItemUpdate::cohort(&measure.owner, *cohort);
                row.count_value(*role, next.measure, next.measure_min, next.measure_max);
                writes.push(self.update(row)?);
            }
            match self.transact(writes).await {
                Ok(()) => return Ok(next),
                Err(StoreError::TransactionConflict(failed)) => {
                    if failed.first() == Some(&true) {
                        return Err(StoreError::ConditionFailed);
                    }
                    // Another count is shown with the snapshot: only the cohorts show this one.
                    if show_on_request && failed.get(1) == Some(&true) {
                        show_on_request = false;
                    }
                    // Otherwise a cohort went to the bin meanwhile: read the count's cohorts again.
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Sdk("count update kept conflicting with concurrent writes".into()))
    }

    pub fn update(&self, update: ItemUpdate) -> StoreResult<Write> {
        let (expression, condition, names, values) = update.expression();
        let built = Update::builder()
            .table_name(&self.table)
            .set_key(Some(super::key_item(&update.key)))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| StoreError::Sdk(e.to_string()))?;
        Ok(Write::Update(built))
    }

    /// Updates merged per item, in the order of their first appearance.
    pub fn updates(&self, updates: Vec<ItemUpdate>) -> StoreResult<Vec<Write>> {
        let mut merged: Vec<ItemUpdate> = Vec::new();
        for update in updates {
            match merged.iter_mut().find(|m| m.key == update.key) {
                Some(existing) => existing.merge(update),
                None => merged.push(update),
            }
        }
        merged.into_iter().filter(|u| !u.is_empty()).map(|u| self.update(u)).collect()
    }

    pub async fn workspace_layout_ready(&self) -> StoreResult<bool> {
        let now = time::now().unix_timestamp();
        let known = LAYOUT.lock().ok().and_then(|l| l.get(&self.table).copied());
        match known {
            Some((true, _)) => return Ok(true),
            Some((false, checked)) if now - checked < 30 => return Ok(false),
            _ => {}
        }
        let ready = self.get::<serde_json::Value>(&keys::workspace_layout()).await?.is_some();
        if let Ok(mut layout) = LAYOUT.lock() {
            layout.insert(self.table.clone(), (ready, now));
        }
        Ok(ready)
    }

    /// Marks every workspace item as summarised (the backfill's last step; a new table's first).
    pub async fn mark_workspace_layout_ready(&self) -> StoreResult<()> {
        let record = serde_json::json!({"summaries": true, "at": time::iso(time::now())});
        self.put(Entry::new("workspace_layout", &keys::workspace_layout(), &record)?, super::Condition::None).await?;
        if let Ok(mut layout) = LAYOUT.lock() {
            layout.insert(self.table.clone(), (true, time::now().unix_timestamp()));
        }
        Ok(())
    }

    /// The owner's counters: (requests, cohorts), `None` before their first change.
    pub async fn workspace_counts(&self, owner: &str) -> StoreResult<Option<(i64, i64)>> {
        let item = self.raw(&keys::workspace_counts(owner)).await?;
        Ok(item.map(|i| (read_number(&i, REQUESTS_COUNT).unwrap_or(0), read_number(&i, COHORTS_COUNT).unwrap_or(0))))
    }

    /// What filtering and ordering every request of the owner needs (one Query of the request items,
    /// projected: the summaries stay in DynamoDB; the page's rows are read by key afterwards).
    pub async fn request_keys(&self, owner: &str) -> StoreResult<Vec<RequestKey>> {
        let mut keys_read = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .projection_expression("#u, #n, #d, #f, #s, #p, gsi3sk")
                .expression_attribute_names("#u", "uuid")
                .expression_attribute_names("#n", "name")
                .expression_attribute_names("#d", "description")
                .expression_attribute_names("#f", "favorite")
                .expression_attribute_names("#s", "shared_by")
                .expression_attribute_names("#p", "parent_folder")
                .expression_attribute_values(":pk", AttributeValue::S(keys::workspace_partition(owner)))
                .expression_attribute_values(":prefix", AttributeValue::S(keys::kind_prefix(Kind::Request).into()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out.items.unwrap_or_default() {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                let uuid = |name: &str| text(name).and_then(|t| Uuid::try_parse(&t).ok());
                let (Some(uuid), Some(parent_folder)) = (uuid("uuid"), uuid("parent_folder")) else { continue };
                keys_read.push(RequestKey {
                    uuid,
                    name: text("name").unwrap_or_default(),
                    description: text("description").unwrap_or_default(),
                    favorite: item.get("favorite").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
                    shared_by: text("shared_by"),
                    parent_folder,
                    updated_at: text("gsi3sk").as_deref().and_then(crate::domain::summary::date_of_key),
                });
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(keys_read),
            }
        }
    }

    /// Every alive cohort of the owner with its summary.
    pub async fn cohort_rows(&self, owner: &str) -> StoreResult<Vec<CohortRow>> {
        let items = self
            .query_partition(&keys::workspace_partition(owner), Some(keys::kind_prefix(Kind::Cohort)), true)
            .await?;
        items.into_iter().map(cohort_row).collect()
    }

    /// Rows `skip..skip + take` of the owner's requests, newest snapshot first (the list index).
    pub async fn request_rows_page(&self, owner: &str, skip: usize, take: usize) -> StoreResult<Vec<RequestRow>> {
        let items = self.list_page(Kind::Request, owner, skip, take).await?;
        items.into_iter().map(request_row).collect()
    }

    /// Rows `skip..skip + take` of the owner's cohorts, newest first (export subsets are not listed).
    pub async fn cohort_rows_page(&self, owner: &str, skip: usize, take: usize) -> StoreResult<Vec<CohortRow>> {
        let items = self.list_page(Kind::Cohort, owner, skip, take).await?;
        items.into_iter().map(cohort_row).collect()
    }

    async fn list_page(&self, kind: Kind, owner: &str, skip: usize, take: usize) -> StoreResult<Vec<Item>> {
        let pk = keys::workspace_list(kind, owner, String::new()).pk;
        self.index_page_newest_first(keys::GSI3, &pk, skip, take).await
    }

    /// One alive request with its summary.
    pub async fn request_row(&self, owner: &str, uuid: Uuid) -> StoreResult<Option<RequestRow>> {
        self.raw(&keys::workspace_object(Kind::Request, owner, uuid)).await?.map(request_row).transpose()
    }

    /// One alive cohort with its summary.
    pub async fn cohort_row(&self, owner: &str, uuid: Uuid) -> StoreResult<Option<CohortRow>> {
        self.raw(&keys::workspace_object(Kind::Cohort, owner, uuid)).await?.map(cohort_row).transpose()
    }

    /// Requests and cohorts by uuid (one BatchGetItem): the rows' relations.
    pub async fn rows_by_id(
        &self,
        owner: &str,
        requests: &[Uuid],
        cohorts: &[Uuid],
    ) -> StoreResult<(Vec<RequestRow>, Vec<CohortRow>)> {
        let mut wanted: Vec<Key> = requests.iter().map(|u| keys::workspace_object(Kind::Request, owner, *u)).collect();
        wanted.extend(cohorts.iter().map(|u| keys::workspace_object(Kind::Cohort, owner, *u)));
        wanted.sort_by(|a, b| a.sk.cmp(&b.sk));
        wanted.dedup();
        if wanted.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (mut found_requests, mut found_cohorts) = (Vec::new(), Vec::new());
        for item in self.batch_get(wanted).await? {
            if super::sk_of(&item).starts_with(keys::kind_prefix(Kind::Request)) {
                found_requests.push(request_row(item)?);
            } else {
                found_cohorts.push(cohort_row(item)?);
            }
        }
        Ok((found_requests, found_cohorts))
    }

    /// The owner's cohorts with one of `group_ids` (a filtered Query of the cohort items: no other
    /// kind is read) and the snapshots they were built from (one BatchGetItem).
    pub async fn cohorts_by_group(
        &self,
        owner: &str,
        group_ids: &[&str],
    ) -> StoreResult<(Vec<CohortResult>, Vec<crate::domain::cohort::Snapshot>)> {
        let mut cohorts: Vec<CohortResult> = Vec::new();
        // `IN` takes at most 100 operands.
        for chunk in group_ids.chunks(99) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!(":g{i}")).collect();
            let mut start: Option<Item> = None;
            loop {
                let mut query = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .filter_expression(format!("group_id IN ({})", placeholders.join(", ")))
                    .expression_attribute_values(":pk", AttributeValue::S(keys::workspace_partition(owner)))
                    .expression_attribute_values(":prefix", AttributeValue::S(keys::kind_prefix(Kind::Cohort).into()))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take());
                for (placeholder, group) in placeholders.iter().zip(chunk) {
                    query = query.expression_attribute_values(placeholder, AttributeValue::S((*group).to_owned()));
                }
                let out = query.send().await.map_err(sdk_error)?;
                for item in out.items.unwrap_or_default() {
                    cohorts.push(decode(item)?);
                }
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
        }
        let snapshots: Vec<Uuid> = cohorts.iter().filter_map(|c| c.request_query_snapshot).collect();
        let snapshots = self.workspace_objects(owner, &snapshots).await?;
        Ok((cohorts, snapshots))
    }

    /// The owner's counts of `request` whose job is still running, each with whether a cohort is
    /// built on it (the open-jobs index: running counts of every owner, a small set).
    pub async fn running_counts_of(&self, owner: &str, request: Uuid) -> StoreResult<Vec<(DatedMeasure, bool)>> {
        let items = self.query_index(keys::GSI2, &keys::open_jobs_partition(Kind::DatedMeasure), None, true).await?;
        let mut out = Vec::new();
        for item in items {
            let used = !built_on_of(&item).is_empty();
            let measure: DatedMeasure = decode(item)?;
            if measure.owner == owner && measure.request == request {
                out.push((measure, used));
            }
        }
        Ok(out)
    }

    /// Counts by uuid with the cohorts built on each (one BatchGetItem).
    pub async fn counts_with_cohorts(
        &self,
        owner: &str,
        uuids: &[Uuid],
    ) -> StoreResult<Vec<(DatedMeasure, BTreeMap<Uuid, CountRole>)>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Key> = uuids.iter().map(|u| keys::workspace_object(Kind::DatedMeasure, owner, *u)).collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(|item| {
                let built = built_on_of(&item);
                Ok((decode(item)?, built))
            })
            .collect()
    }

    /// The raw item of a key (summaries are read beside the record).
    pub async fn raw(&self, key: &Key) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(super::key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_of_one_item_merge_into_one_expression() {
        let (snapshot, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut first = ItemUpdate::request("u", Uuid::from_u128(9));
        first.cohort_removed(snapshot, a);
        let mut second = ItemUpdate::request("u", Uuid::from_u128(9));
        second.cohort_removed(snapshot, b);
        first.merge(second);
        let (expression, condition, names, values) = first.expression();
        assert_eq!(expression, "ADD #n0 :v0 DELETE #n1 :v1");
        assert_eq!(names["#n0"], REV);
        assert_eq!(names["#n1"], attr(COHORTS, snapshot));
        assert_eq!(values[":v1"], AttributeValue::Ss(vec![a.to_string(), b.to_string()]));
        assert_eq!(condition.as_deref(), Some("attribute_exists(pk)"));
        let mut counts = ItemUpdate::counts("u");
        counts.add_requests(1).add_requests(-1);
        assert!(counts.is_empty());
    }
}
