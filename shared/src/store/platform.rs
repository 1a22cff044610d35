//! Maintenance phases, release notes, web contents and the request audit log.
use std::{collections::HashMap, sync::Arc};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use time::Duration;

use super::{
    conditional, decode, key_item, keys, sdk_error, Condition, DynamoStore, Entry, Item, StoreError, StoreResult,
};
use crate::domain::{
    content::Content,
    maintenance::MaintenancePhase,
    release_note::ReleaseNote,
    request_log::RequestLog,
    time::{self as t, DateTime},
};

fn day_of(dt: DateTime) -> String {
    t::iso(dt)[..10].to_owned()
}

fn day_of_log_id(id: i64) -> Option<String> {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(id) * 1_000).ok()?;
    Some(day_of(dt))
}

impl DynamoStore {
    pub async fn put_maintenance(&self, phase: &MaintenancePhase, condition: Condition) -> StoreResult<()> {
        let mut entry = Entry::new("maintenance", &keys::maintenance(phase.id), phase)?;
        if phase.delete_datetime.is_none() {
            entry = entry.gsi1(&keys::maintenance_by_end(&t::iso(phase.end_datetime), phase.id));
        }
        self.put(entry, condition).await
    }

    pub async fn maintenance(&self, id: i64) -> StoreResult<Option<MaintenancePhase>> {
        Ok(self.get::<MaintenancePhase>(&keys::maintenance(id)).await?.filter(|p| p.delete_datetime.is_none()))
    }

    pub async fn maintenances(&self) -> StoreResult<Vec<MaintenancePhase>> {
        let all: Vec<MaintenancePhase> = self
            .query_partition(keys::MAINTENANCES_PK, None, true)
            .await?
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|p| p.delete_datetime.is_none()).collect())
    }

    /// Alive phases whose end is not past: one Query on the end-sorted index.
    pub async fn maintenances_not_ended(&self, now: DateTime) -> StoreResult<Vec<MaintenancePhase>> {
        self.query_index(keys::GSI1, keys::MAINTENANCE_ENDS_PK, Some(&t::iso(now)), true)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    pub async fn release_notes(&self) -> StoreResult<Vec<ReleaseNote>> {
        self.query_partition(keys::RELEASE_NOTES_PK, None, false).await?.into_iter().map(decode).collect()
    }

    pub async fn release_note(&self, id: i64) -> StoreResult<Option<ReleaseNote>> {
        self.get(&keys::release_note(id)).await
    }

    pub async fn put_release_note(&self, note: &ReleaseNote, condition: Condition) -> StoreResult<()> {
        self.put(Entry::new("release_note", &keys::release_note(note.id), note)?, condition).await
    }

    pub async fn contents(&self) -> StoreResult<Vec<Content>> {
        let all: Vec<Content> = self
            .query_partition(keys::CONTENTS_PK, None, false)
            .await?
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|c| c.deleted_at.is_none()).collect())
    }

    pub async fn content(&self, id: i64) -> StoreResult<Option<Content>> {
        Ok(self.get::<Content>(&keys::content(id)).await?.filter(|c| c.deleted_at.is_none()))
    }

    pub async fn put_content(&self, content: &Content, condition: Condition) -> StoreResult<()> {
        self.put(Entry::new("content", &keys::content(content.id), content)?, condition).await
    }

    /// Stores a log row (its id is the request time in microseconds, bumped on collision) and counts
    /// it in its day's counters at the same time, so the audited request waits one round trip.
    pub async fn put_request_log(&self, mut log: RequestLog, retention: Duration) -> StoreResult<i64> {
        let expires = (log.requested_at + retention).unix_timestamp();
        let day = day_of_log_id(log.id).unwrap_or_else(|| day_of(log.requested_at));
        let counted = self.count_request_log(day, log.user.clone(), log.method.clone(), log.id, expires);
        let stored = async {
            for _ in 0..16 {
                let day = day_of_log_id(log.id).unwrap_or_else(|| day_of(log.requested_at));
                let mut entry = Entry::new("request_log", &keys::request_log(&day, log.id), &log)?.expires_at(expires);
                if let Some(user) = &log.user {
                    entry = entry.gsi1(&keys::request_log_by_user(user, log.id));
                }
                match self.put(entry, Condition::MustNotExist).await {
                    Err(StoreError::ConditionFailed) => log.id += 1,
                    other => return other.map(|_| log.id),
                }
            }
            Err(StoreError::ConditionFailed)
        };
        let (stored, counted) = tokio::join!(stored, counted);
        if let Err(err) = counted {
            // The row matters, not its count: `/logs/` counts drift by one.
            tracing::warn!(error = %err, "could not count the request log");
        }
        stored
    }

    /// `ADD` on the day's counters (all rows, and the user's rows): rows, rows by method.
    async fn count_request_log(
        &self,
        day: String,
        user: Option<String>,
        method: String,
        id: i64,
        expires: i64,
    ) -> StoreResult<()> {
        let counter = |key: &keys::Key| {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(key)))
                .expression_attribute_names("#n", COUNT_ROWS)
                .expression_attribute_names("#m", format!("{COUNT_METHOD}{method}"))
                .expression_attribute_names("#first", FIRST_COUNTED)
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":id", AttributeValue::N(id.to_string()))
                .expression_attribute_values(":expires", AttributeValue::N(expires.to_string()))
                .expression_attribute_values(":entity", AttributeValue::S("request_log_counter".into()))
                .update_expression(
                    "ADD #n :one, #m :one SET #first = if_not_exists(#first, :id), expires_at = :expires, entity = :entity",
                )
        };
        let all = counter(&keys::request_log_counter(&day)).return_values(ReturnValue::UpdatedOld).send();
        let of_user = async {
            match &user {
                Some(user) => counter(&keys::request_log_user_counter(&day, user)).send().await.map(|_| ()),
                None => Ok(()),
            }
        };
        let (all, of_user) = tokio::join!(all, of_user);
        let first_of_day = all.map_err(sdk_error)?.attributes.is_none_or(|old| !old.contains_key(COUNT_ROWS));
        of_user.map_err(sdk_error)?;
        if first_of_day {
            // Once a day: the first day ever counted is where reads stop trusting missing counters.
            // Kept at the earliest day (rows of past days may be written late, e.g. a bulk load).
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(&keys::request_log_counting_since())))
                .update_expression("SET #since = :day, entity = :entity")
                .condition_expression("attribute_not_exists(#since) OR #since > :day")
                .expression_attribute_names("#since", COUNTING_SINCE)
                .expression_attribute_values(":day", AttributeValue::S(day))
                .expression_attribute_values(":entity", AttributeValue::S("request_log_counter".into()))
                .send()
                .await;
            match out.map_err(|e| conditional(e, |s| s.is_conditional_check_failed_exception())) {
                Ok(_) | Err(StoreError::ConditionFailed) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Adds the outcome to a row written before its request ran (see `http::audit`), and counts the
    /// status in the day's counter at the same time.
    pub async fn finish_request_log(&self, id: i64, status_code: u16, response_ms: i64) -> StoreResult<()> {
        let day = day_of_log_id(id).ok_or_else(|| StoreError::Record(format!("log id {id} has no day")))?;
        let row = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::request_log(&day, id))))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET status_code = :status, response_ms = :ms")
            .expression_attribute_values(":status", AttributeValue::N(status_code.to_string()))
            .expression_attribute_values(":ms", AttributeValue::N(response_ms.to_string()))
            .send();
        let counter = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::request_log_counter(&day))))
            .update_expression("ADD #s :one")
            .expression_attribute_names("#s", format!("{COUNT_STATUS}{status_code}"))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send();
        let (row, counter) = tokio::join!(row, counter);
        row.map_err(|e| conditional(e, |s| s.is_conditional_check_failed_exception()))?;
        if let Err(err) = counter {
            tracing::warn!(error = %sdk_error(err), "could not count the request log's status");
        }
        Ok(())
    }

    pub async fn request_log(&self, id: i64) -> StoreResult<Option<RequestLog>> {
        let Some(day) = day_of_log_id(id) else { return Ok(None) };
        self.get(&keys::request_log(&day, id)).await
    }
}

// ---- Request log listing --------------------------------------------------------------------------
//
// Rows live in one partition per day (`LOGS#<day>`, sorted by id = time) and, when they have a user,
// in that user's `gsi1` partition. Each day has counter items (all rows; each user's rows) holding
// the number of rows, by method and by status. A listing is a sequence of day segments: a segment's
// number of matching rows comes from its counter when the filter is one the counters hold, else from
// reading it (a bounded budget of rows, then an estimate); a page skips whole segments by their
// counts and reads only the segment(s) it falls in.

/// Counter attributes: rows, rows by method (`m_POST`), rows by status (`s_201`).
const COUNT_ROWS: &str = "n";
const COUNT_METHOD: &str = "m_";
const COUNT_STATUS: &str = "s_";
/// The first id a day counter counted (rows before it on the first counted day are not counted).
const FIRST_COUNTED: &str = "first";
const COUNTING_SINCE: &str = "since";
/// DynamoDB's limit on the operands of `IN`.
const MAX_IN_OPERANDS: usize = 100;

/// A condition on log rows. Those DynamoDB can evaluate go as a FilterExpression (less comes back;
/// as much is read); all are also checked in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogCondition {
    /// The method is one of these (upper case).
    Methods(Vec<String>),
    /// The status code is one of these.
    Statuses(Vec<u16>),
    /// A text attribute equals the value: `path`, `view`, `view_method`, `host`, `username_persistent`.
    Equals(&'static str, String),
    ResponseMsAtLeast(i64),
    ResponseMsAtMost(i64),
}

impl LogCondition {
    fn matches(&self, log: &RequestLog) -> bool {
        match self {
            Self::Methods(methods) => methods.contains(&log.method),
            Self::Statuses(codes) => log.status_code.is_some_and(|s| codes.contains(&s)),
            Self::Equals(attribute, value) => {
                let actual = match *attribute {
                    "path" => Some(log.path.as_str()),
                    "view" => Some(log.view.as_str()),
                    "view_method" => Some(log.view_method.as_str()),
                    "host" => log.host.as_deref(),
                    "username_persistent" => log.username_persistent.as_deref(),
                    "user" => log.user.as_deref(),
                    _ => None,
                };
                actual == Some(value.as_str())
            }
            Self::ResponseMsAtLeast(min) => log.response_ms >= *min,
            Self::ResponseMsAtMost(max) => log.response_ms <= *max,
        }
    }

    fn pushable(&self) -> bool {
        match self {
            Self::Methods(v) => v.len() <= MAX_IN_OPERANDS,
            Self::Statuses(v) => v.len() <= MAX_IN_OPERANDS,
            _ => true,
        }
    }
}

/// A filter no index, counter or FilterExpression serves (icontains, search), checked in memory.
pub type LogPredicate = Arc<dyn Fn(&RequestLog) -> bool + Send + Sync>;

/// What a `/logs/` listing asks for.
#[derive(Clone)]
pub struct LogScan {
    /// Only this user's rows, read through `gsi1`.
    pub user: Option<String>,
    /// Inclusive bounds on `requested_at` (applied to the id, the request time in microseconds).
    pub after: Option<DateTime>,
    pub before: Option<DateTime>,
    pub conditions: Vec<LogCondition>,
    pub residual: Option<LogPredicate>,
    /// Oldest first (`ordering=requested_at`); newest first otherwise.
    pub ascending: bool,
    pub retention_days: i64,
    pub now: DateTime,
    /// Rows read at most to count what the counters do not answer.
    pub count_budget: usize,
}

/// The segments of a listing in listing order, and its count.
pub struct LogListing {
    segments: Vec<Segment>,
    pub count: usize,
    /// Part of the count was extrapolated from the rows read within the budget.
    pub estimated: bool,
    /// Rows and counter items DynamoDB read so far (the benchmarks report it).
    pub items_read: usize,
}

/// The rows of one day within the listing's bounds.
#[derive(Clone, Debug)]
struct Segment {
    day: String,
    /// Inclusive id bounds.
    lo: i64,
    hi: i64,
    /// Read through the user's `gsi1` partition (counted days); else the day partition.
    by_user: bool,
    /// Rows of the source that day (its counter), to extrapolate an estimate; `None` when uncounted.
    base: Option<usize>,
    /// Matching rows, when known.
    exact: Option<usize>,
    /// The matching rows, when the count read them (in listing order).
    rows: Option<Vec<RequestLog>>,
}

/// The counters a filter can be counted with, if any.
enum Tally {
    Rows,
    Methods(Vec<String>),
    Statuses(Vec<u16>),
}

impl Tally {
    fn of(scan: &LogScan) -> Option<Self> {
        if scan.residual.is_some() {
            return None;
        }
        let distinct = |mut v: Vec<String>| {
            v.sort();
            v.dedup();
            v
        };
        match scan.conditions.as_slice() {
            [] => Some(Self::Rows),
            [LogCondition::Methods(m)] => Some(Self::Methods(distinct(m.clone()))),
            // Statuses are counted for all rows only (the status is known after the user's counter).
            [LogCondition::Statuses(s)] if scan.user.is_none() => {
                let mut s = s.clone();
                s.sort_unstable();
                s.dedup();
                Some(Self::Statuses(s))
            }
            _ => None,
        }
    }

    fn count(&self, counter: &Item) -> usize {
        let number = |name: &str| {
            counter.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0)
        };
        match self {
            Self::Rows => number(COUNT_ROWS),
            Self::Methods(m) => m.iter().map(|m| number(&format!("{COUNT_METHOD}{m}"))).sum(),
            Self::Statuses(s) => s.iter().map(|s| number(&format!("{COUNT_STATUS}{s}"))).sum(),
        }
    }
}

fn micros(dt: DateTime) -> i64 {
    (dt.unix_timestamp_nanos() / 1_000) as i64
}

fn day_bounds(date: time::Date) -> (i64, i64) {
    let start = micros(date.midnight().assume_utc());
    (start, start + 86_400_000_000 - 1)
}

/// A FilterExpression with its names and values.
#[derive(Default)]
struct LogFilter {
    expression: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl LogFilter {
    fn new(conditions: &[LogCondition], user: Option<&str>) -> Self {
        let user_condition = user.map(|u| LogCondition::Equals("user", u.to_owned()));
        let mut filter = Self::default();
        let mut terms = Vec::new();
        for (i, condition) in conditions.iter().chain(user_condition.as_ref()).enumerate() {
            if !condition.pushable() {
                continue;
            }
            let name = format!("#f{i}");
            let value = |j: usize| format!(":f{i}_{j}");
            let (attribute, term, operands): (&str, String, Vec<AttributeValue>) = match condition {
                LogCondition::Methods(m) => (
                    "method",
                    format!("{name} IN ({})", (0..m.len()).map(value).collect::<Vec<_>>().join(", ")),
                    m.iter().map(|m| AttributeValue::S(m.clone())).collect(),
                ),
                LogCondition::Statuses(s) => (
                    "status_code",
                    format!("{name} IN ({})", (0..s.len()).map(value).collect::<Vec<_>>().join(", ")),
                    s.iter().map(|s| AttributeValue::N(s.to_string())).collect(),
                ),
                LogCondition::Equals(attribute, v) => {
                    (attribute, format!("{name} = {}", value(0)), vec![AttributeValue::S(v.clone())])
                }
                LogCondition::ResponseMsAtLeast(v) => {
                    ("response_ms", format!("{name} >= {}", value(0)), vec![AttributeValue::N(v.to_string())])
                }
                LogCondition::ResponseMsAtMost(v) => {
                    ("response_ms", format!("{name} <= {}", value(0)), vec![AttributeValue::N(v.to_string())])
                }
            };
            if operands.is_empty() {
                // `IN ()` is not an expression: an empty list matches nothing.
                terms.push("attribute_exists(#never)".to_owned());
                filter.names.insert("#never".into(), "never".into());
                continue;
            }
            filter.names.insert(name, attribute.to_owned());
            for (j, operand) in operands.into_iter().enumerate() {
                filter.values.insert(value(j), operand);
            }
            terms.push(term);
        }
        filter.expression = (!terms.is_empty()).then(|| terms.join(" AND "));
        filter
    }
}

/// What the Query of a segment returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The number of matching rows only.
    Count,
    /// The sort keys of the matching rows.
    Keys,
    Items,
}

struct Found {
    items: Vec<Item>,
    count: usize,
    scanned: usize,
    last: Option<Item>,
}

/// Where one Query reads: a segment's source and id range, in listing order.
struct Range<'a> {
    user: Option<&'a str>,
    day: &'a str,
    lo: i64,
    hi: i64,
    forward: bool,
}

/// Everything a segment read needs, owned (segments are read concurrently).
#[derive(Clone)]
struct Reader {
    store: DynamoStore,
    user: Option<String>,
    conditions: Arc<Vec<LogCondition>>,
    /// Conditions DynamoDB cannot evaluate plus the residual filter, when there are any.
    check: Option<LogPredicate>,
    forward: bool,
}

impl Reader {
    fn new(store: &DynamoStore, scan: &LogScan) -> Self {
        let in_memory: Vec<LogCondition> = scan.conditions.iter().filter(|c| !c.pushable()).cloned().collect();
        let check: Option<LogPredicate> = match (&scan.residual, in_memory.is_empty()) {
            (None, true) => None,
            (residual, _) => {
                let residual = residual.clone();
                Some(Arc::new(move |log: &RequestLog| {
                    in_memory.iter().all(|c| c.matches(log)) && residual.as_ref().is_none_or(|r| r(log))
                }))
            }
        };
        Self {
            store: store.clone(),
            user: scan.user.clone(),
            conditions: Arc::new(scan.conditions.clone()),
            check,
            forward: scan.ascending,
        }
    }

    fn filter(&self, segment: &Segment) -> LogFilter {
        // A day partition holds every user's rows: the user is then a condition.
        let user = if segment.by_user { None } else { self.user.as_deref() };
        LogFilter::new(&self.conditions, user)
    }

    fn range<'a>(&'a self, segment: &'a Segment) -> Range<'a> {
        Range {
            user: if segment.by_user { self.user.as_deref() } else { None },
            day: &segment.day,
            lo: segment.lo,
            hi: segment.hi,
            forward: self.forward,
        }
    }

    fn decode_matching(&self, items: Vec<Item>) -> StoreResult<Vec<RequestLog>> {
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let log: RequestLog = decode(item)?;
            if self.check.as_ref().is_none_or(|c| c(&log)) {
                rows.push(log);
            }
        }
        Ok(rows)
    }

    /// Counts a segment's matching rows by reading all of it: `(matching, rows read, matching rows
    /// when they had to be read)`.
    async fn count(self, segment: Segment) -> StoreResult<(usize, usize, Option<Vec<RequestLog>>)> {
        let filter = self.filter(&segment);
        let range = self.range(&segment);
        let read = if self.check.is_some() { Read::Items } else { Read::Count };
        let (mut matching, mut scanned, mut rows, mut start) = (0, 0, Vec::new(), None);
        loop {
            let found = self.store.query_logs(&range, &filter, read, None, start).await?;
            scanned += found.scanned;
            if read == Read::Items {
                rows.extend(self.decode_matching(found.items)?);
            } else {
                matching += found.count;
            }
            match found.last {
                Some(last) => start = Some(last),
                None if read == Read::Items => return Ok((rows.len(), scanned, Some(rows))),
                None => return Ok((matching, scanned, None)),
            }
        }
    }

    /// Up to `need` matching rows of a segment after skipping `skip` matching rows: the rows, how
    /// many were skipped (fewer than `skip` when the segment holds fewer) and the rows read.
    async fn page(&self, segment: &Segment, skip: usize, need: usize) -> StoreResult<(Vec<RequestLog>, usize, usize)> {
        let filter = self.filter(segment);
        let mut segment = segment.clone();
        let (mut skip_left, mut scanned) = (skip, 0);
        if skip_left > 0 && self.check.is_none() {
            // Skip by keys only: the position of the skip-th matching row narrows the range.
            let mut start = None;
            loop {
                let limit = if filter.expression.is_none() { skip_left } else { skip_left.max(100) };
                let found =
                    self.store.query_logs(&self.range(&segment), &filter, Read::Keys, Some(limit), start).await?;
                scanned += found.scanned;
                if found.items.len() >= skip_left {
                    let id = found.items[skip_left - 1]
                        .get("sk")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|sk| keys::request_log_id(sk))
                        .ok_or_else(|| StoreError::Record("log row without an id".into()))?;
                    if self.forward {
                        segment.lo = id + 1;
                    } else {
                        segment.hi = id - 1;
                    }
                    skip_left = 0;
                    break;
                }
                skip_left -= found.items.len();
                match found.last {
                    Some(last) => start = Some(last),
                    None => return Ok((Vec::new(), skip - skip_left, scanned)),
                }
            }
        }
        let range = self.range(&segment);
        let unfiltered = filter.expression.is_none() && self.check.is_none();
        let mut limit = if unfiltered { skip_left + need } else { (skip_left + need).max(50) * 2 };
        let (mut rows, mut start) = (Vec::new(), None);
        loop {
            let found = self.store.query_logs(&range, &filter, Read::Items, Some(limit), start).await?;
            scanned += found.scanned;
            for log in self.decode_matching(found.items)? {
                if skip_left > 0 {
                    skip_left -= 1;
                } else if rows.len() < need {
                    rows.push(log);
                }
            }
            match found.last {
                Some(last) if rows.len() < need => start = Some(last),
                _ => return Ok((rows, skip - skip_left, scanned)),
            }
            // Sparse matches: read more at a time.
            limit = (limit * 2).min(2_000);
        }
    }
}

impl DynamoStore {
    /// One Query page of a segment (at most `limit` rows read).
    async fn query_logs(
        &self,
        range: &Range<'_>,
        filter: &LogFilter,
        read: Read,
        limit: Option<usize>,
        start: Option<Item>,
    ) -> StoreResult<Found> {
        let (index, condition, pk, lo, hi) = match range.user {
            Some(user) => (
                Some(keys::GSI1),
                "gsi1pk = :pk AND gsi1sk BETWEEN :lo AND :hi",
                keys::request_log_user_partition(user),
                keys::request_log_user_sort(range.lo),
                keys::request_log_user_sort(range.hi),
            ),
            None => (
                None,
                "pk = :pk AND sk BETWEEN :lo AND :hi",
                keys::request_log_partition(range.day),
                keys::request_log_sort(range.lo),
                keys::request_log_sort(range.hi),
            ),
        };
        if range.lo > range.hi {
            return Ok(Found { items: Vec::new(), count: 0, scanned: 0, last: None });
        }
        let mut names = filter.names.clone();
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .consistent_read(index.is_none())
            .key_condition_expression(condition)
            .set_filter_expression(filter.expression.clone())
            .set_expression_attribute_values(Some(filter.values.clone()))
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":lo", AttributeValue::S(lo))
            .expression_attribute_values(":hi", AttributeValue::S(hi))
            .scan_index_forward(range.forward)
            .set_limit(limit.map(|l| l.clamp(1, i32::MAX as usize) as i32))
            .set_exclusive_start_key(start);
        match read {
            Read::Count => request = request.select(Select::Count),
            Read::Keys => {
                names.insert("#sk".into(), "sk".into());
                request = request.projection_expression("#sk");
            }
            Read::Items => {}
        }
        let out = request.set_expression_attribute_names((!names.is_empty()).then_some(names)).send().await;
        let out = out.map_err(sdk_error)?;
        Ok(Found {
            count: out.count as usize,
            scanned: out.scanned_count as usize,
            last: out.last_evaluated_key.filter(|k| !k.is_empty()),
            items: out.items.unwrap_or_default(),
        })
    }

    /// The segments of a listing and its count: one BatchGetItem of the days' counters, then, for
    /// what they do not answer, the segments read in listing order (concurrently, within the budget).
    pub async fn plan_request_logs(&self, scan: &LogScan) -> StoreResult<LogListing> {
        let mut listing = LogListing { segments: Vec::new(), count: 0, estimated: false, items_read: 0 };
        let oldest = scan.now - Duration::days(scan.retention_days);
        let from = scan.after.map_or(oldest, |a| a.max(oldest));
        let to = scan.before.map_or(scan.now, |b| b.min(scan.now));
        if from > to {
            return Ok(listing);
        }
        let (from_id, to_id) = (
            scan.after.filter(|a| *a > oldest).map_or(i64::MIN, micros),
            scan.before.filter(|b| *b < scan.now).map_or(i64::MAX, micros),
        );
        let mut dates = vec![from.date()];
        while let Some(next) = dates.last().and_then(|d| d.next_day()).filter(|d| *d <= to.date()) {
            dates.push(next);
        }
        let days: Vec<String> = dates.iter().map(|d| day_of(d.midnight().assume_utc())).collect();
        let counter_key = |day: &str| match &scan.user {
            Some(user) => keys::request_log_user_counter(day, user),
            None => keys::request_log_counter(day),
        };
        let mut wanted: Vec<keys::Key> = days.iter().map(|d| counter_key(d)).collect();
        wanted.push(keys::request_log_counting_since());
        let found = self.batch_get(wanted).await?;
        listing.items_read += found.len();
        let text = |item: &Item, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let number =
            |item: &Item, name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
        let mut counters: HashMap<String, Item> = HashMap::new();
        let mut since: Option<String> = None;
        for item in found {
            let (pk, sk) = (text(&item, "pk").unwrap_or_default(), text(&item, "sk").unwrap_or_default());
            if keys::request_log_counting_since() == (keys::Key { pk: pk.clone(), sk }) {
                since = text(&item, COUNTING_SINCE);
            } else {
                counters.insert(pk, item);
            }
        }
        let tally = Tally::of(scan);
        for (date, day) in dates.iter().zip(&days) {
            let (start, end) = day_bounds(*date);
            let (lo, hi) = (from_id.max(start), to_id.min(end));
            let counter = counters.get(&counter_key(day).pk);
            let uncounted = |lo: i64, hi: i64| Segment {
                day: day.clone(),
                lo,
                hi,
                by_user: false,
                base: None,
                exact: None,
                rows: None,
            };
            // Days before counting started are read; a later day without a counter has no rows.
            let counted_from = match (since.as_deref(), counter) {
                (Some(s), _) if day.as_str() < s => None,
                (Some(s), Some(c)) if day.as_str() == s => number(c, FIRST_COUNTED),
                (Some(s), None) if day.as_str() == s => None,
                (Some(_), Some(_)) => Some(start),
                (Some(_), None) => continue,
                (None, _) => None,
            };
            let Some(counted_from) = counted_from else {
                listing.segments.push(uncounted(lo, hi));
                continue;
            };
            if lo < counted_from {
                listing.segments.push(uncounted(lo, hi.min(counted_from - 1)));
            }
            let (lo, counter) = (lo.max(counted_from), counter.expect("counted days have a counter"));
            if lo > hi {
                continue;
            }
            let rows = Tally::Rows.count(counter);
            let whole = lo == counted_from && hi == end;
            listing.segments.push(Segment {
                day: day.clone(),
                lo,
                hi,
                by_user: scan.user.is_some(),
                // A partial day: its share of the day's rows, for an estimate.
                base: Some(if whole {
                    rows
                } else {
                    (rows as f64 * (hi - lo + 1) as f64 / (end - counted_from + 1) as f64) as usize
                }),
                exact: tally.as_ref().filter(|_| whole).map(|t| t.count(counter)),
                rows: None,
            });
        }
        if !scan.ascending {
            listing.segments.reverse();
        }
        self.count_unknown_segments(scan, &mut listing).await?;
        Ok(listing)
    }

    /// Reads the segments the counters do not answer, in listing order and concurrently, until the
    /// budget of rows is spent; the count of the rest is extrapolated from what was read.
    async fn count_unknown_segments(&self, scan: &LogScan, listing: &mut LogListing) -> StoreResult<()> {
        let reader = Reader::new(self, scan);
        let known: Vec<usize> = listing.segments.iter().filter_map(|s| s.base).collect();
        // An uncounted day is planned as large as an average counted one (the budget holds).
        let typical = if known.is_empty() { scan.count_budget / 8 } else { known.iter().sum::<usize>() / known.len() };
        let (mut budget, mut matched, mut scanned) = (scan.count_budget as i64, 0usize, 0usize);
        let mut pending: Vec<usize> =
            (0..listing.segments.len()).filter(|&i| listing.segments[i].exact.is_none()).collect();
        pending.reverse();
        while budget > 0 && !pending.is_empty() {
            let mut batch = Vec::new();
            let mut planned = 0i64;
            while let Some(&i) = pending.last() {
                if planned >= budget && !batch.is_empty() {
                    break;
                }
                planned += listing.segments[i].base.unwrap_or(typical).max(1) as i64;
                batch.push(pending.pop().expect("a pending segment"));
            }
            let mut tasks = tokio::task::JoinSet::new();
            for &i in &batch {
                let (reader, segment) = (reader.clone(), listing.segments[i].clone());
                tasks.spawn(async move { (i, reader.count(segment).await) });
            }
            for (i, result) in tasks.join_all().await {
                let (matching, read, rows) = result?;
                let segment = &mut listing.segments[i];
                (segment.exact, segment.rows) = (Some(matching), rows);
                (matched, scanned, budget) = (matched + matching, scanned + read, budget - read as i64);
                listing.items_read += read;
            }
        }
        // Unread days from before the counters are left out of the estimate: on a table created with
        // them they are empty, and on an upgraded one they leave the window after the retention.
        let unread: usize = pending.iter().filter_map(|&i| listing.segments[i].base).sum();
        listing.estimated = !pending.is_empty();
        let extrapolated =
            if scanned == 0 { 0 } else { (unread as f64 * matched as f64 / scanned as f64).round() as usize };
        listing.count = listing.segments.iter().filter_map(|s| s.exact).sum::<usize>() + extrapolated;
        Ok(())
    }

    /// The rows at `offset` (at most `need`) of a planned listing. A page past the middle is read
    /// from the other end, so the last pages cost what the first ones do.
    pub async fn request_logs_page(
        &self,
        scan: &LogScan,
        listing: &mut LogListing,
        offset: usize,
        need: usize,
    ) -> StoreResult<Vec<RequestLog>> {
        let flip = offset * 2 > listing.count;
        let mut reader = Reader::new(self, scan);
        let mut order: Vec<usize> = (0..listing.segments.len()).collect();
        let mut skip = offset;
        if flip {
            order.reverse();
            reader.forward = !reader.forward;
            skip = listing.count.saturating_sub(offset + need);
        }
        let mut rows = Vec::new();
        for i in order {
            if rows.len() == need {
                break;
            }
            let segment = &listing.segments[i];
            if let Some(read) = &segment.rows {
                let mut read: Vec<&RequestLog> = read.iter().collect();
                if flip {
                    read.reverse();
                }
                rows.extend(read.iter().skip(skip).take(need - rows.len()).map(|&l| l.clone()));
                skip = skip.saturating_sub(read.len());
            } else if segment.exact.is_some_and(|c| skip >= c) {
                skip -= segment.exact.unwrap_or(0);
            } else {
                let (found, skipped, read) = reader.page(segment, skip, need - rows.len()).await?;
                listing.items_read += read;
                skip -= skipped;
                rows.extend(found);
            }
        }
        if flip {
            rows.reverse();
        }
        Ok(rows)
    }
}
