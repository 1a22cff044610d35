//! The request audit log (`/logs/`): rows, their day and route counters, and listings.
//! Route-template matching is pure logic, in [`crate::domain::log_paths`].
use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, LazyLock, Mutex,
    },
};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use time::Duration;

use super::{
    conditional, decode, key_item, keys, sdk_error, Condition, DynamoStore, Entry, Item, StoreError, StoreResult,
};
use crate::domain::{
    log_paths::{param_chars, pinned_paths, term_fit, Fit, PathFilter, Template},
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

/// Rows of a route with parameters are also indexed by their concrete path, when the path splits
/// like the route (see [`pinned_paths`]).
fn path_indexed(route: &str, path: &str) -> bool {
    route.contains('{') && param_chars(route, path).is_some()
}

/// A day is closed from the day before yesterday back: only late writes (a bulk load, a request
/// running across two midnights) still count rows there, so listings keep its counters in memory.
fn is_closed(day: &str, now: DateTime) -> bool {
    day < day_of(now - Duration::days(1)).as_str()
}

/// The counter items of closed days, kept per process and table: a listing then reads only the
/// open days' counters (2 days instead of the window's 90). A write to a closed day's counters
/// bumps `late` on the counting-start item once it is done; a listing reads that item before any
/// closed day and drops the table's entries when it moved, so no entry is older than its `late`.
#[derive(Default)]
struct ClosedDays {
    late: i64,
    /// `None`: the day has no such counter.
    items: HashMap<keys::Key, Option<Arc<Item>>>,
    /// Route counters parsed (by partition, and whether with the search counter).
    routes: HashMap<(String, bool), Arc<DayRoutes>>,
}

static CLOSED_DAYS: LazyLock<Mutex<HashMap<String, ClosedDays>>> = LazyLock::new(Default::default);
/// Entries kept per table at most (a window's days × counter kinds, plus the users listed).
const CLOSED_DAYS_MAX_ITEMS: usize = 4_096;
const LATE_WRITES: &str = "late";

/// The views and users this process has added to a day's search counter (`table|day|attribute|member`):
/// a member already there is not sent again, so most audited requests skip that write.
static SEARCH_NOTED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);
const SEARCH_NOTED_MAX: usize = 50_000;

fn closed_days<T>(table: &str, late: i64, f: impl FnOnce(&mut ClosedDays) -> T) -> T {
    let mut tables = CLOSED_DAYS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let days = tables.entry(table.to_owned()).or_default();
    if days.late != late || days.items.len() > CLOSED_DAYS_MAX_ITEMS {
        *days = ClosedDays { late, ..ClosedDays::default() };
    }
    f(days)
}

impl DynamoStore {
    /// Stores a log row (its id is the request time in microseconds, bumped on collision) and counts
    /// it in its day's counters at the same time, so the audited request waits one round trip.
    pub async fn put_request_log(&self, mut log: RequestLog, retention: Duration) -> StoreResult<i64> {
        let expires = (log.requested_at + retention).unix_timestamp();
        let day = day_of_log_id(log.id).unwrap_or_else(|| day_of(log.requested_at));
        let counted = self.count_request_log(
            day.clone(),
            log.user.clone(),
            log.route.clone(),
            log.method.clone(),
            log.id,
            expires,
        );
        let routed = self.count_request_log_route(day.clone(), &log, expires);
        let stored = async {
            for _ in 0..16 {
                let day = day_of_log_id(log.id).unwrap_or_else(|| day_of(log.requested_at));
                let mut entry = Entry::new("request_log", &keys::request_log(&day, log.id), &log)?.expires_at(expires);
                if let Some(user) = &log.user {
                    entry = entry.gsi1(&keys::request_log_by_user(user, log.id));
                }
                if let Some(route) = &log.route {
                    entry = entry.gsi2(&keys::request_log_by_route(route, log.id));
                    if path_indexed(route, &log.path) {
                        entry = entry.gsi3(&keys::request_log_by_path(&log.path, log.id));
                    }
                }
                match self.put(entry, Condition::MustNotExist).await {
                    Err(StoreError::ConditionFailed) => log.id += 1,
                    other => return other.map(|_| log.id),
                }
            }
            Err(StoreError::ConditionFailed)
        };
        let (stored, counted, routed) = tokio::join!(stored, counted, routed);
        let mut counted = counted.and(routed);
        if counted.is_ok() && is_closed(&day, t::now()) {
            counted = self.note_late_write().await;
        }
        if let Err(err) = counted {
            // The row matters, not its count: `/logs/` counts drift by one.
            tracing::warn!(error = %err, "could not count the request log");
        }
        stored
    }

    /// Tells listings that a closed day's counters changed (see [`ClosedDays`]).
    async fn note_late_write(&self) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::request_log_counting_since())))
            .update_expression("ADD #late :one SET entity = :entity")
            .expression_attribute_names("#late", LATE_WRITES)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":entity", AttributeValue::S("request_log_counter".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// `ADD` on the day's counters (all rows, and the user's rows): rows, rows by method; the user's
    /// also by route (what a search on the user counts with).
    async fn count_request_log(
        &self,
        day: String,
        user: Option<String>,
        route: Option<String>,
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
                .expression_attribute_names("#sfirst", STATUS_INDEXED_FIRST)
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":id", AttributeValue::N(id.to_string()))
                .expression_attribute_values(":expires", AttributeValue::N(expires.to_string()))
                .expression_attribute_values(":entity", AttributeValue::S("request_log_counter".into()))
        };
        let set = "SET #first = if_not_exists(#first, :id), #sfirst = if_not_exists(#sfirst, :id), \
                   expires_at = :expires, entity = :entity";
        let all = counter(&keys::request_log_counter(&day)).update_expression(format!("ADD #n :one, #m :one {set}"));
        let all = all.return_values(ReturnValue::UpdatedOld).send();
        let of_user = async {
            let Some(user) = &user else { return Ok(()) };
            let route = route.as_ref().map_or_else(|| UNROUTED.to_owned(), |r| format!("{ROUTE_ROWS}{r}"));
            counter(&keys::request_log_user_counter(&day, user))
                .expression_attribute_names("#r", route)
                .expression_attribute_names("#rfirst", ROUTES_COUNTED_FIRST)
                .update_expression(format!(
                    "ADD #n :one, #m :one, #r :one {set}, #rfirst = if_not_exists(#rfirst, :id)"
                ))
                .send()
                .await
                .map(|_| ())
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

    /// `ADD` on the day's route counters: rows and rows by method of the route and the characters of
    /// its parameter values (what `path_contains` plans with), and, in an item of their own that only
    /// `search` reads, the route's views and the day's users. Both writes go out together.
    fn count_request_log_route(
        &self,
        day: String,
        log: &RequestLog,
        expires: i64,
    ) -> impl std::future::Future<Output = StoreResult<()>> {
        let update = |key: keys::Key| {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(&key)))
                .expression_attribute_values(":expires", AttributeValue::N(expires.to_string()))
                .expression_attribute_values(":entity", AttributeValue::S("request_log_counter".into()))
        };
        let mut routes = update(keys::request_log_route_counter(&day))
            .expression_attribute_names("#first", FIRST_COUNTED)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":id", AttributeValue::N(log.id.to_string()));
        // Set members are added once: the search counter lives as long as the day's last row can.
        let into_day = i64::from(log.requested_at.time().hour()) * 3_600
            + i64::from(log.requested_at.time().minute()) * 60
            + i64::from(log.requested_at.time().second());
        let mut search = update(keys::request_log_search_counter(&day))
            .expression_attribute_values(":expires", AttributeValue::N((expires - into_day + 86_400).to_string()));
        let (mut adds, mut search_adds, mut members) = (Vec::new(), Vec::new(), Vec::new());
        match &log.route {
            Some(route) => {
                routes = routes
                    .expression_attribute_names("#r", format!("{ROUTE_ROWS}{route}"))
                    .expression_attribute_names("#m", format!("{ROUTE_METHOD}{}:{route}", log.method));
                adds.extend(["#r :one", "#m :one"]);
                let chars = param_chars(route, &log.path)
                    .map_or_else(|| vec![ANY_CHAR.to_owned()], |c| c.into_iter().map(String::from).collect());
                if !chars.is_empty() {
                    routes = routes
                        .expression_attribute_names("#c", format!("{ROUTE_CHARS}{route}"))
                        .expression_attribute_values(":chars", AttributeValue::Ss(chars));
                    adds.push("#c :chars");
                }
                search = search
                    .expression_attribute_names("#v", format!("{ROUTE_VIEWS}{route}"))
                    .expression_attribute_values(":view", AttributeValue::Ss(vec![log.view.clone()]));
                search_adds.push("#v :view");
                members.push(format!("{}|{day}|{ROUTE_VIEWS}{route}|{}", self.table, log.view));
            }
            None => {
                routes = routes.expression_attribute_names("#unrouted", UNROUTED);
                adds.push("#unrouted :one");
            }
        }
        if let Some(user) = &log.user {
            search = search
                .expression_attribute_names("#u", DAY_USERS)
                .expression_attribute_values(":user", AttributeValue::Ss(vec![user.clone()]));
            search_adds.push("#u :user");
            members.push(format!("{}|{day}|{DAY_USERS}|{user}", self.table));
        }
        let routes = routes.expression_attribute_names("#pfirst", PATH_INDEXED_FIRST).update_expression(format!(
            "ADD {} SET #first = if_not_exists(#first, :id), #pfirst = if_not_exists(#pfirst, :id), \
             expires_at = :expires, entity = :entity",
            adds.join(", ")
        ));
        let noted = |members: &[String]| {
            let noted = SEARCH_NOTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            members.iter().all(|m| noted.contains(m))
        };
        let search = (!search_adds.is_empty() && !noted(&members)).then(|| {
            search.update_expression(format!(
                "ADD {} SET expires_at = :expires, entity = :entity",
                search_adds.join(", ")
            ))
        });
        async move {
            let search = async {
                match search {
                    Some(search) => {
                        search.send().await.map_err(sdk_error)?;
                        let mut noted = SEARCH_NOTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        if noted.len() > SEARCH_NOTED_MAX {
                            noted.clear();
                        }
                        noted.extend(members);
                        Ok(())
                    }
                    None => Ok(()),
                }
            };
            let (routes, search) = tokio::join!(routes.send(), search);
            routes.map_err(sdk_error)?;
            search
        }
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
            .update_expression("SET status_code = :status, response_ms = :ms, gsi4pk = :spk, gsi4sk = :ssk")
            .expression_attribute_values(":status", AttributeValue::N(status_code.to_string()))
            .expression_attribute_values(":spk", AttributeValue::S(keys::request_log_status_partition(status_code)))
            .expression_attribute_values(":ssk", AttributeValue::S(keys::request_log_index_sort(id)))
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
        let mut counted = counter.map(|_| ()).map_err(sdk_error);
        if counted.is_ok() && is_closed(&day, t::now()) {
            counted = self.note_late_write().await;
        }
        if let Err(err) = counted {
            tracing::warn!(error = %err, "could not count the request log's status");
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
//
// Rows also live in their route template's `gsi2` partition, and each day has a route counter (rows
// by route and method, the routes' views and parameter characters, the day's users). `path_contains`
// and `search` turn into route segments: a route whose every row matches is counted by its counter,
// one whose rows may match is read (those rows only), the others are left out. The route segments of
// a day form a group, merged newest first for a page.

/// Counter attributes: rows, rows by method (`m_POST`), rows by status (`s_201`).
const COUNT_ROWS: &str = "n";
const COUNT_METHOD: &str = "m_";
const COUNT_STATUS: &str = "s_";
/// The first id a day counter counted (rows before it on the first counted day are not counted).
const FIRST_COUNTED: &str = "first";
const COUNTING_SINCE: &str = "since";
/// In a route counter: the first id whose row was also indexed by path (days before have none).
const PATH_INDEXED_FIRST: &str = "pfirst";
/// In a day counter: the first id whose row is indexed by status once finished.
const STATUS_INDEXED_FIRST: &str = "sfirst";
/// In a user's day counter: the first id also counted by route (`r:<route>`, `unrouted`).
const ROUTES_COUNTED_FIRST: &str = "rfirst";
/// Route counter attributes: rows of a route (`r:/users/`), by method (`m:POST:/users/`), the
/// lower-case characters of its parameter values (`c:…`, a string set; [`ANY_CHAR`] when a path does
/// not split like its template), rows without a route. Search counter attributes (an item of their
/// own, so that `path_contains` reads small items): a route's views (`v:…`, a string set), the day's
/// users. Days written before the split hold the latter in the route counter: both are parsed alike.
const ROUTE_ROWS: &str = "r:";
const ROUTE_METHOD: &str = "m:";
const ROUTE_VIEWS: &str = "v:";
const ROUTE_CHARS: &str = "c:";
const ANY_CHAR: &str = "any";
const UNROUTED: &str = "unrouted";
const DAY_USERS: &str = "u";
/// Past this many users matching a search term in a day, that day's rows are read rather than theirs.
const MAX_SEARCH_USERS: usize = 20;
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

/// A filter no index, counter or FilterExpression serves (`data` icontains), checked in memory.
pub type LogPredicate = Arc<dyn Fn(&RequestLog) -> bool + Send + Sync>;

/// One route of a day, as the day's route counter holds it.
struct DayRoute {
    rows: usize,
    methods: HashMap<String, usize>,
    views: Vec<String>,
    /// The characters of its parameter values, sorted (none without parameters); `None`: any character.
    chars: Option<Vec<char>>,
}

impl Default for DayRoute {
    fn default() -> Self {
        Self { rows: 0, methods: HashMap::new(), views: Vec::new(), chars: Some(Vec::new()) }
    }
}

/// A day's route counter.
struct DayRoutes {
    /// The first row indexed by route that day (earlier rows predate the route index).
    first: i64,
    /// The first row indexed by path that day, if any.
    path_first: Option<i64>,
    routes: BTreeMap<String, DayRoute>,
    unrouted: usize,
    users: Vec<String>,
}

impl DayRoutes {
    /// The day's route counter, with its search counter when it was read.
    fn parse(item: &Item, search: Option<&Item>) -> Option<Self> {
        let number = |v: &AttributeValue| v.as_n().ok().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        let first = item.get(FIRST_COUNTED)?.as_n().ok()?.parse().ok()?;
        let path_first = item.get(PATH_INDEXED_FIRST).and_then(|v| v.as_n().ok()?.parse().ok());
        let mut day = Self { first, path_first, routes: BTreeMap::new(), unrouted: 0, users: Vec::new() };
        for (name, value) in item.iter().chain(search.into_iter().flatten()) {
            let set = || value.as_ss().cloned().unwrap_or_default();
            if let Some(route) = name.strip_prefix(ROUTE_ROWS) {
                day.routes.entry(route.to_owned()).or_default().rows = number(value);
            } else if let Some((method, route)) = name.strip_prefix(ROUTE_METHOD).and_then(|r| r.split_once(':')) {
                day.routes.entry(route.to_owned()).or_default().methods.insert(method.to_owned(), number(value));
            } else if let Some(route) = name.strip_prefix(ROUTE_VIEWS) {
                day.routes.entry(route.to_owned()).or_default().views = set();
            } else if let Some(route) = name.strip_prefix(ROUTE_CHARS) {
                let chars = set();
                day.routes.entry(route.to_owned()).or_default().chars =
                    (!chars.iter().any(|c| c == ANY_CHAR)).then(|| {
                        let mut chars: Vec<char> = chars.iter().filter_map(|c| c.chars().next()).collect();
                        chars.sort_unstable();
                        chars.dedup();
                        chars
                    });
            } else if name == UNROUTED {
                day.unrouted = number(value);
            } else if name == DAY_USERS {
                day.users = set();
            }
        }
        Some(day)
    }

    fn rows(&self) -> usize {
        self.routes.values().map(|r| r.rows).sum::<usize>() + self.unrouted
    }

    fn users_matching(&self, term: &str) -> Vec<String> {
        self.users.iter().filter(|u| u.to_lowercase().contains(term)).cloned().collect()
    }
}

/// A route and the sorted characters its parameters took (`None`: any).
type FitKey<'a> = (&'a str, Option<&'a [char]>);

/// How the route index answers a path filter.
struct RoutePlan<'a> {
    filter: &'a PathFilter,
    /// Without `path_contains`: the search term whose candidates (its routes, then its users' other
    /// rows) are read; every matching row is among them.
    pivot: Option<String>,
    /// The window's route templates, parsed once (each day names the same few dozen).
    templates: HashMap<&'a str, Template>,
    /// For `path_contains`, the paths of each route it pins (see [`pinned_paths`]).
    pinned: HashMap<String, Option<Vec<String>>>,
    /// `path_contains` against a route and its parameters' characters: most days repeat both.
    fits: RefCell<HashMap<FitKey<'a>, Fit>>,
}

impl<'a> RoutePlan<'a> {
    /// The pivot is the term with the fewest candidate rows in the window.
    fn new(filter: &'a PathFilter, days: &'a HashMap<String, Arc<DayRoutes>>) -> Self {
        let mut templates = HashMap::new();
        for route in days.values().flat_map(|d| d.routes.keys()) {
            templates.entry(route.as_str()).or_insert_with(|| Template::parse(route));
        }
        let pivot = filter
            .path_contains
            .is_none()
            .then(|| {
                filter.terms.iter().min_by_key(|term| {
                    days.values()
                        .map(|day| {
                            let routes: usize = day
                                .routes
                                .iter()
                                .filter(|(r, info)| {
                                    term_fit(&templates[r.as_str()], &info.views, term) != Fit::Impossible
                                })
                                .map(|(_, info)| info.rows)
                                .sum();
                            routes + day.users_matching(term).len() * day.rows() / day.users.len().max(1)
                        })
                        .sum::<usize>()
                })
            })
            .flatten()
            .cloned();
        let pinned = match &filter.path_contains {
            Some(wanted) => templates.keys().map(|route| (route.to_string(), pinned_paths(route, wanted))).collect(),
            None => HashMap::new(),
        };
        Self { filter, pivot, templates, pinned, fits: RefCell::default() }
    }

    fn classify(&self, route: &'a str, info: &'a DayRoute) -> Fit {
        let template = &self.templates[route];
        let terms_certain = self.filter.terms.iter().all(|t| term_fit(template, &info.views, t) == Fit::Certain);
        let candidate = match (&self.filter.path_contains, &self.pivot) {
            (Some(wanted), _) => *self
                .fits
                .borrow_mut()
                .entry((route, info.chars.as_deref()))
                .or_insert_with(|| template.fit(wanted, info.chars.as_deref())),
            (None, Some(pivot)) => term_fit(template, &info.views, pivot),
            (None, None) => Fit::Certain,
        };
        match candidate {
            Fit::Impossible => Fit::Impossible,
            Fit::Certain if terms_certain => Fit::Certain,
            _ => Fit::Possible,
        }
    }

    /// The users whose other rows may match (a search without `path_contains`).
    fn users(&self, day: &DayRoutes) -> Vec<String> {
        self.pivot.as_deref().map(|p| day.users_matching(p)).unwrap_or_default()
    }
}

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
    /// `path_contains` and `search`: through the route index when `user` is not given.
    pub paths: PathFilter,
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
    /// Queries of rows sent so far (counter reads are BatchGetItems, not counted).
    pub queries: usize,
}

/// Where a segment's rows are read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Source {
    /// The day partition.
    Day,
    /// A user's `gsi1` partition.
    User(String),
    /// A route's `gsi2` partition.
    Route(String),
    /// A concrete path's `gsi3` partition (rows of a route with parameters).
    Path(String),
    /// A status's `gsi4` partition (finished rows).
    Status(u16),
}

/// The rows of one source and day within the listing's bounds.
#[derive(Clone, Debug)]
struct Segment {
    day: String,
    /// Inclusive id bounds.
    lo: i64,
    hi: i64,
    source: Source,
    /// Rows are checked against the path filter (their route does not settle it).
    check_paths: bool,
    /// Rows other segments of the group hold: those with one of these routes, or without a route.
    exclude: Option<Arc<HashSet<String>>>,
    /// Only the rows without a route.
    unrouted: bool,
    /// Segments of a group share an id range: a page merges them.
    group: usize,
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

    /// The count from a route's counter: it has no statuses.
    fn count_route(&self, route: &DayRoute) -> Option<usize> {
        match self {
            Self::Rows => Some(route.rows),
            Self::Methods(m) => Some(m.iter().filter_map(|m| route.methods.get(m)).sum()),
            Self::Statuses(_) => None,
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

/// One day of a listing, as [`plan_routed_day`] plans it.
struct DayPlan<'p> {
    day: &'p String,
    /// The first row indexed by route, the listing's bounds that day, the day's last id.
    first: i64,
    lo: i64,
    hi: i64,
    end: i64,
    group: usize,
    /// The day counters of the users a one-term search matches, when read.
    user_counters: &'p HashMap<keys::Key, Arc<Item>>,
}

/// Past this share of a day's rows, candidate routes are read from the day partition in one Query
/// rather than merged from one Query per route (`path_contains=/cohort/` matches 4 rows in 5).
const DENSE_SHARE: f64 = 0.5;
const DENSE_MIN_ROUTES: usize = 3;

/// The segments of a day's rows indexed by route, one group: its candidate routes (counted when
/// every row matches, else read), for a search its users' other rows, and its rows without a route.
fn plan_routed_day<'a>(
    plan: &RoutePlan<'a>,
    tally: Option<&Tally>,
    index: &'a DayRoutes,
    at: DayPlan,
    listing: &mut LogListing,
) {
    let DayPlan { day, first, lo, hi, end, group, .. } = at;
    let whole = lo == first && hi == end;
    let share = |rows: usize| {
        if whole {
            rows
        } else {
            (rows as f64 * (hi - lo + 1) as f64 / (end - first + 1) as f64) as usize
        }
    };
    let segment = |source: Source, base: usize| Segment {
        day: day.clone(),
        lo,
        hi,
        source,
        check_paths: true,
        exclude: None,
        unrouted: false,
        group,
        base: Some(share(base)),
        exact: None,
        rows: None,
    };
    let users = plan.users(index);
    if users.len() > MAX_SEARCH_USERS {
        // A term matching that many users hardly filters: the day is read.
        listing.segments.push(segment(Source::Day, index.rows()));
        return;
    }
    // Both indexes began with the same row: the path index holds every row the route index does.
    let path_indexed = index.path_first.is_some_and(|first| first == index.first || first <= lo);
    let mut candidates = HashSet::new();
    let (mut routes, mut pinned_routes) = (Vec::new(), HashSet::new());
    for (route, info) in &index.routes {
        let fit = plan.classify(route, info);
        if fit == Fit::Impossible {
            continue;
        }
        candidates.insert(route.clone());
        let certain = fit == Fit::Certain;
        let pinned = plan.pinned.get(route).and_then(Option::as_ref).filter(|_| !certain);
        if let Some(paths) = pinned.filter(|_| path_indexed) {
            // One object's history: its paths' rows only, not every row of the route.
            pinned_routes.insert(route.clone());
            for path in paths {
                listing.segments.push(segment(Source::Path(path.clone()), 1));
            }
            continue;
        }
        routes.push(Segment {
            check_paths: !certain,
            exact: tally.filter(|_| certain && whole).and_then(|t| t.count_route(info)),
            ..segment(Source::Route(route.clone()), info.rows)
        });
    }
    let routed_rows = index.rows() - index.unrouted;
    let candidate_rows: usize = routes.iter().map(|s| s.base.unwrap_or(0)).sum();
    let dense = users.is_empty()
        && routes.len() >= DENSE_MIN_ROUTES
        && candidate_rows as f64 >= share(routed_rows) as f64 * DENSE_SHARE;
    if dense {
        // Most routed rows are candidates: one read of the day's routed rows, checked.
        // (Rows of a pinned route come from its paths' segments.)
        listing.segments.push(Segment {
            exclude: Some(Arc::new(pinned_routes)),
            exact: routes.iter().map(|s| s.exact).sum(),
            ..segment(Source::Day, routed_rows)
        });
    } else {
        listing.segments.extend(routes);
    }
    let candidates = Arc::new(candidates);
    let per_user = index.rows() / index.users.len().max(1);
    // A one-term search: every row of a matching user matches, so the rows outside the candidate
    // routes are counted from the user's day counter.
    let counted_outside = |user: &str| -> Option<usize> {
        let counter = at.user_counters.get(&keys::request_log_user_counter(day, user)).filter(|_| whole)?;
        let number = |name: &str| counter.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<usize>().ok());
        (number(FIRST_COUNTED)? == number(ROUTES_COUNTED_FIRST)?).then(|| {
            counter
                .iter()
                .filter(|(name, _)| name.strip_prefix(ROUTE_ROWS).is_some_and(|route| !candidates.contains(route)))
                .filter_map(|(_, v)| v.as_n().ok()?.parse::<usize>().ok())
                .sum()
        })
    };
    for user in users {
        let exact = counted_outside(&user);
        listing.segments.push(Segment {
            exclude: Some(candidates.clone()),
            exact,
            ..segment(Source::User(user), per_user)
        });
    }
    if index.unrouted > 0 {
        listing.segments.push(Segment { unrouted: true, ..segment(Source::Day, index.unrouted) });
    }
}

/// Appends a segment as a group of its own.
fn push_segment(listing: &mut LogListing, group: &mut usize, segment: Segment) {
    *group += 1;
    listing.segments.push(Segment { group: *group, ..segment });
}

/// A FilterExpression with its names and values.
#[derive(Default)]
struct LogFilter {
    expression: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl LogFilter {
    fn new(conditions: &[LogCondition], user: Option<&str>, unrouted: bool) -> Self {
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
        if unrouted {
            terms.push("attribute_not_exists(#route)".to_owned());
            filter.names.insert("#route".into(), "route".into());
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
    source: &'a Source,
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
    paths: Option<Arc<PathFilter>>,
    forward: bool,
    /// Queries sent (the tests and the benchmarks report them).
    queries: Arc<AtomicUsize>,
}

/// A segment counted: its index in the listing, its matching rows' number, the rows when read.
type Counted = (usize, usize, Option<Vec<RequestLog>>);

/// The id of a row from its base table sort key (every index projects it).
fn sort_id(item: &Item) -> StoreResult<i64> {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .and_then(|sk| keys::request_log_id(sk))
        .ok_or_else(|| StoreError::Record("log row without an id".into()))
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
            paths: (!scan.paths.is_empty()).then(|| Arc::new(scan.paths.clone())),
            forward: scan.ascending,
            queries: Arc::default(),
        }
    }

    async fn query(
        &self,
        range: &Range<'_>,
        filter: &LogFilter,
        read: Read,
        limit: Option<usize>,
        start: Option<Item>,
    ) -> StoreResult<Found> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.store.query_logs(range, filter, read, limit, start).await
    }

    fn queries_sent(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    /// Whether the rows read must be checked in memory.
    fn checks(&self, segment: &Segment) -> bool {
        self.check.is_some() || (segment.check_paths && self.paths.is_some()) || segment.exclude.is_some()
    }

    fn filter(&self, segment: &Segment) -> LogFilter {
        // Day and route partitions hold every user's rows: the user is then a condition.
        let user = if matches!(segment.source, Source::User(_)) { None } else { self.user.as_deref() };
        LogFilter::new(&self.conditions, user, segment.unrouted)
    }

    fn range<'a>(&'a self, segment: &'a Segment) -> Range<'a> {
        Range { source: &segment.source, day: &segment.day, lo: segment.lo, hi: segment.hi, forward: self.forward }
    }

    fn decode_matching(&self, segment: &Segment, items: Vec<Item>) -> StoreResult<Vec<RequestLog>> {
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let log: RequestLog = decode(item)?;
            let kept = self.check.as_ref().is_none_or(|c| c(&log))
                && (!segment.check_paths || self.paths.as_ref().is_none_or(|p| p.matches(&log)))
                && segment.exclude.as_ref().is_none_or(|ex| log.route.as_ref().is_some_and(|r| !ex.contains(r)));
            if kept {
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
        let read = if self.checks(&segment) { Read::Items } else { Read::Count };
        let (mut matching, mut scanned, mut rows, mut start) = (0, 0, Vec::new(), None);
        loop {
            let found = self.query(&range, &filter, read, None, start).await?;
            scanned += found.scanned;
            if read == Read::Items {
                rows.extend(self.decode_matching(&segment, found.items)?);
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

    /// Counts segments of one route or user (in listing order, on different days) with one Query
    /// sequence over their whole id span, as `gsi1` and `gsi2` sort by id across days, and splits
    /// the rows by segment: `(segment, matching, matching rows)` for each segment read through,
    /// and the rows read. Stops at a page past `cap` rows read once a segment is complete (the
    /// others are left for the next round).
    async fn count_span(self, segments: Vec<(usize, Segment)>, cap: usize) -> StoreResult<(Vec<Counted>, usize)> {
        let first = &segments[0].1;
        let filter = self.filter(first);
        let range = Range {
            source: &first.source,
            day: &first.day,
            lo: segments.iter().map(|(_, s)| s.lo).min().unwrap_or(first.lo),
            hi: segments.iter().map(|(_, s)| s.hi).max().unwrap_or(first.hi),
            forward: self.forward,
        };
        // Keys suffice to split a count by day; rows to check must be read.
        let read = if segments.iter().any(|(_, s)| self.checks(s)) { Read::Items } else { Read::Keys };
        // In listing order: `id` lies after the segment / at or after its last row.
        let past = |segment: &Segment, id: i64| if self.forward { id > segment.hi } else { id < segment.lo };
        let through = |segment: &Segment, id: i64| if self.forward { id >= segment.hi } else { id <= segment.lo };
        let (mut counted, mut current, mut scanned, mut start) = (Vec::new(), 0, 0, None);
        let (mut matching, mut rows) = (0, Vec::new());
        loop {
            let limit = cap.saturating_sub(scanned).max(100);
            let found = self.query(&range, &filter, read, Some(limit), start.take()).await?;
            scanned += found.scanned;
            for item in found.items {
                let id = sort_id(&item)?;
                while current < segments.len() && past(&segments[current].1, id) {
                    counted.push((
                        segments[current].0,
                        matching,
                        (read == Read::Items).then(|| std::mem::take(&mut rows)),
                    ));
                    (current, matching) = (current + 1, 0);
                }
                // Rows between the segments (a day where the source is no candidate) are skipped.
                let Some((_, segment)) = segments.get(current).filter(|(_, s)| s.lo <= id && id <= s.hi) else {
                    continue;
                };
                if read == Read::Items {
                    let kept = self.decode_matching(segment, vec![item])?;
                    matching += kept.len();
                    rows.extend(kept);
                } else {
                    matching += 1;
                }
            }
            let position = match found.last {
                Some(last) => {
                    let id = sort_id(&last)?;
                    start = Some(last);
                    Some(id)
                }
                None => None,
            };
            // Segments the read has gone through are complete.
            while current < segments.len() && position.is_none_or(|id| through(&segments[current].1, id)) {
                counted.push((segments[current].0, matching, (read == Read::Items).then(|| std::mem::take(&mut rows))));
                (current, matching) = (current + 1, 0);
            }
            if current == segments.len() || (scanned >= cap && !counted.is_empty()) {
                return Ok((counted, scanned));
            }
        }
    }

    /// The first `want` matching rows of a group's segments (one id range) in listing order, and the
    /// rows read. Each segment is first read in proportion to its share of the group's rows (not
    /// `want` rows each: a day has some 20 candidate routes), then those that may still hold rows
    /// before the `want`-th are read further, twice as much each round, until the merge is settled.
    async fn merge(&self, segments: Vec<Segment>, want: usize) -> StoreResult<(Vec<RequestLog>, usize)> {
        struct Part {
            segment: Segment,
            rows: Vec<RequestLog>,
            done: bool,
            asked: usize,
        }
        let rank = |log: &RequestLog| if self.forward { log.id } else { -log.id };
        let weight = |s: &Segment| s.exact.or(s.base).unwrap_or(1);
        let total = segments.iter().map(weight).sum::<usize>().max(1);
        let mut parts: Vec<Part> = segments
            .into_iter()
            .filter(|s| s.exact != Some(0))
            .map(|mut s| {
                let (rows, done) = s.rows.take().map_or((Vec::new(), false), |mut r| {
                    r.truncate(want);
                    (r, true)
                });
                let asked = (want * weight(&s)).div_ceil(total) + 2;
                Part { segment: s, rows, done, asked }
            })
            .collect();
        let mut asks: Vec<usize> = (0..parts.len()).filter(|&i| !parts[i].done).collect();
        let mut read = 0;
        loop {
            let mut tasks = tokio::task::JoinSet::new();
            for &i in &asks {
                let (reader, segment, need) = (self.clone(), parts[i].segment.clone(), parts[i].asked);
                tasks.spawn(async move { (i, reader.page(&segment, 0, need).await) });
            }
            for (i, result) in tasks.join_all().await {
                let (found, _, scanned) = result?;
                read += scanned;
                let part = &mut parts[i];
                part.done = found.len() < part.asked;
                if let Some(last) = found.last() {
                    // The next read starts after the last row.
                    if self.forward {
                        part.segment.lo = last.id + 1;
                    } else {
                        part.segment.hi = last.id - 1;
                    }
                }
                part.rows.extend(found);
            }
            let mut merged: Vec<&RequestLog> = parts.iter().flat_map(|p| &p.rows).collect();
            merged.sort_unstable_by_key(|l| rank(l));
            // Rows up to the earliest last row of an unfinished segment are settled: later ones
            // may have unread rows before them.
            let boundary = parts.iter().filter(|p| !p.done).filter_map(|p| p.rows.last().map(rank)).min();
            let settled = merged.iter().take_while(|l| boundary.is_none_or(|b| rank(l) <= b)).count();
            if settled >= want || boundary.is_none() {
                let page = merged.into_iter().take(want).cloned().collect();
                return Ok((page, read));
            }
            // Only segments whose last row is before the `want`-th row so far can change the page.
            let cutoff = merged.get(want - 1).map(|l| rank(l));
            asks = (0..parts.len())
                .filter(|&i| !parts[i].done && parts[i].rows.last().is_some_and(|l| cutoff.is_none_or(|c| rank(l) < c)))
                .collect();
            for &i in &asks {
                parts[i].asked *= 2;
            }
        }
    }

    /// Up to `need` matching rows of a segment after skipping `skip` matching rows: the rows, how
    /// many were skipped (fewer than `skip` when the segment holds fewer) and the rows read.
    async fn page(&self, segment: &Segment, skip: usize, need: usize) -> StoreResult<(Vec<RequestLog>, usize, usize)> {
        let filter = self.filter(segment);
        let mut segment = segment.clone();
        let (mut skip_left, mut scanned) = (skip, 0);
        let counted = segment.exact.filter(|_| filter.expression.is_none() && !self.checks(&segment));
        if let Some(total) = counted.filter(|&total| skip_left > total / 2 && skip_left < total) {
            // Past the middle of a counted segment, the page's first row is found from the far end:
            // 980 rows into a day of 1,000, that reads 20 keys, not 980.
            let from_end = total - skip_left;
            let reverse = Range { forward: !self.forward, ..self.range(&segment) };
            let found = self.query(&reverse, &filter, Read::Keys, Some(from_end), None).await?;
            scanned += found.scanned;
            // Fewer rows than counted: the forward skip below finds the place.
            if let Some(first) = found.items.get(from_end - 1) {
                let id = sort_id(first)?;
                if self.forward {
                    segment.lo = id;
                } else {
                    segment.hi = id;
                }
                skip_left = 0;
            }
        }
        if skip_left > 0 && !self.checks(&segment) {
            // Skip by keys only: the position of the skip-th matching row narrows the range.
            let mut start = None;
            loop {
                let limit = if filter.expression.is_none() { skip_left } else { skip_left.max(100) };
                let found = self.query(&self.range(&segment), &filter, Read::Keys, Some(limit), start).await?;
                scanned += found.scanned;
                if found.items.len() >= skip_left {
                    let id = sort_id(&found.items[skip_left - 1])?;
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
        let unfiltered = filter.expression.is_none() && !self.checks(&segment);
        let mut limit = if unfiltered { skip_left + need } else { (skip_left + need).max(50) * 2 };
        let (mut rows, mut start) = (Vec::new(), None);
        loop {
            let found = self.query(&range, &filter, Read::Items, Some(limit), start).await?;
            scanned += found.scanned;
            for log in self.decode_matching(&segment, found.items)? {
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
        // Every index sorts a log row by its padded id; the day partition by its `LOG#` sort key.
        let (index, pk) = match range.source {
            Source::User(user) => (Some(keys::GSI1), keys::request_log_user_partition(user)),
            Source::Route(route) => (Some(keys::GSI2), keys::request_log_route_partition(route)),
            Source::Path(path) => (Some(keys::GSI3), keys::request_log_path_partition(path)),
            Source::Status(status) => (Some(keys::GSI4), keys::request_log_status_partition(*status)),
            Source::Day => (None, keys::request_log_partition(range.day)),
        };
        let (pk_name, sk_name) = index.map_or(("pk", "sk"), super::index_keys);
        let condition = format!("{pk_name} = :pk AND {sk_name} BETWEEN :lo AND :hi");
        let bound =
            |id: i64| if index.is_some() { keys::request_log_index_sort(id) } else { keys::request_log_sort(id) };
        let (lo, hi) = (bound(range.lo), bound(range.hi));
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
        let mut listing = LogListing { segments: Vec::new(), count: 0, estimated: false, items_read: 0, queries: 0 };
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
        // Without a user, path filters go through the route index (a user's rows are few: read).
        let by_route = scan.user.is_none() && !scan.paths.is_empty();
        let mut wanted: Vec<keys::Key> = days.iter().map(|d| counter_key(d)).collect();
        if by_route {
            wanted.extend(days.iter().map(|d| keys::request_log_route_counter(d)));
        }
        // Views and users only matter to `search`.
        if by_route && !scan.paths.terms.is_empty() {
            wanted.extend(days.iter().map(|d| keys::request_log_search_counter(d)));
        }
        let (found, read, late) = self.log_counters(wanted, scan.now, None).await?;
        listing.items_read += read;
        let text = |item: &Item, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let number =
            |item: &Item, name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
        let (routes_sort, search_sort) =
            (keys::request_log_route_counter("").sk, keys::request_log_search_counter("").sk);
        let mut counters: HashMap<String, Arc<Item>> = HashMap::new();
        let (mut routes, mut searched): (HashMap<String, Arc<Item>>, HashMap<String, Arc<Item>>) = Default::default();
        let mut since: Option<String> = None;
        for item in found {
            let (pk, sk) = (text(&item, "pk").unwrap_or_default(), text(&item, "sk").unwrap_or_default());
            if sk == routes_sort {
                routes.insert(pk, item);
            } else if sk == search_sort {
                searched.insert(pk, item);
            } else if keys::request_log_counting_since() == (keys::Key { pk: pk.clone(), sk }) {
                since = text(&item, COUNTING_SINCE);
            } else {
                counters.insert(pk, item);
            }
        }
        let mut routed: HashMap<String, Arc<DayRoutes>> = HashMap::new();
        for (pk, item) in &routes {
            let search = searched.get(pk);
            let parse = || DayRoutes::parse(item, search.map(|s| &**s)).map(Arc::new);
            let closed = keys::request_log_counter_day(&keys::Key { pk: pk.clone(), sk: routes_sort.clone() })
                .is_some_and(|day| is_closed(day, scan.now));
            // A closed day's routes are parsed once per process, like its counters are read once.
            let cache_key = (pk.clone(), search.is_some());
            let parsed = match closed.then(|| closed_days(&self.table, late, |d| d.routes.get(&cache_key).cloned())) {
                Some(Some(kept)) => Some(kept),
                Some(None) => parse().inspect(|parsed| {
                    closed_days(&self.table, late, |d| d.routes.insert(cache_key, parsed.clone()));
                }),
                None => parse(),
            };
            routed.extend(parsed.map(|p| (pk.clone(), p)));
        }
        let plan = RoutePlan::new(&scan.paths, &routed);
        let tally = Tally::of(scan);
        // A search on one term counts its users' rows with their day counters (`r:<route>`).
        let mut user_counters: HashMap<keys::Key, Arc<Item>> = HashMap::new();
        if let (Some(pivot), Some(Tally::Rows), [_]) = (&plan.pivot, &tally, scan.paths.terms.as_slice()) {
            let wanted: Vec<keys::Key> = days
                .iter()
                .filter_map(|day| Some((day, routed.get(&keys::request_log_route_counter(day).pk)?)))
                .flat_map(|(day, index)| {
                    let users = index.users_matching(pivot);
                    let users = if users.len() > MAX_SEARCH_USERS { Vec::new() } else { users };
                    users.into_iter().map(|user| keys::request_log_user_counter(day, &user))
                })
                .collect();
            if !wanted.is_empty() {
                let (found, read, _) = self.log_counters(wanted, scan.now, Some(late)).await?;
                listing.items_read += read;
                user_counters.extend(found.into_iter().map(|item| {
                    let text = |name: &str| text(&item, name).unwrap_or_default();
                    (keys::Key { pk: text("pk"), sk: text("sk") }, item)
                }));
            }
        }
        let mut group = 0;
        for (date, day) in dates.iter().zip(&days) {
            let (start, end) = day_bounds(*date);
            let (lo, hi) = (from_id.max(start), to_id.min(end));
            let counter = counters.get(&counter_key(day).pk);
            let uncounted = |lo: i64, hi: i64, base: Option<usize>| Segment {
                day: day.clone(),
                lo,
                hi,
                source: Source::Day,
                check_paths: true,
                exclude: None,
                unrouted: false,
                group: 0,
                base,
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
                push_segment(&mut listing, &mut group, uncounted(lo, hi, None));
                continue;
            };
            if lo < counted_from {
                push_segment(&mut listing, &mut group, uncounted(lo, hi.min(counted_from - 1), None));
            }
            let (lo, counter) = (lo.max(counted_from), counter.expect("counted days have a counter"));
            if lo > hi {
                continue;
            }
            let rows = Tally::Rows.count(counter);
            let share = |rows: usize, first: i64| {
                if lo == first && hi == end {
                    rows
                } else {
                    (rows as f64 * (hi - lo + 1) as f64 / (end - first + 1) as f64) as usize
                }
            };
            if by_route {
                // Rows counted before the route index existed are read from the day partition.
                let Some(index) = routed.get(&keys::request_log_route_counter(day).pk) else {
                    push_segment(&mut listing, &mut group, uncounted(lo, hi, Some(share(rows, counted_from))));
                    continue;
                };
                // Both counters began with the same row: the index holds every counted row.
                let indexed_from =
                    if number(counter, FIRST_COUNTED) == Some(index.first) { counted_from } else { index.first };
                if lo < indexed_from {
                    push_segment(&mut listing, &mut group, uncounted(lo, hi.min(indexed_from - 1), None));
                }
                let lo = lo.max(indexed_from);
                if lo > hi {
                    continue;
                }
                group += 1;
                let day_plan = DayPlan { day, first: indexed_from, lo, hi, end, group, user_counters: &user_counters };
                plan_routed_day(&plan, tally.as_ref(), index, day_plan, &mut listing);
                continue;
            }
            // A status filter over rows indexed by status: one segment per status, counted.
            let status_indexed = number(counter, STATUS_INDEXED_FIRST)
                .is_some_and(|first| Some(first) == number(counter, FIRST_COUNTED) || first <= lo);
            if let (Some(Tally::Statuses(codes)), true, true) =
                (&tally, status_indexed, scan.user.is_none() && scan.paths.is_empty())
            {
                group += 1;
                for &code in codes {
                    let rows = number(counter, &format!("{COUNT_STATUS}{code}")).unwrap_or(0) as usize;
                    listing.segments.push(Segment {
                        source: Source::Status(code),
                        group,
                        base: Some(share(rows, counted_from)),
                        exact: (lo == counted_from && hi == end).then_some(rows),
                        ..uncounted(lo, hi, None)
                    });
                }
                continue;
            }
            push_segment(
                &mut listing,
                &mut group,
                Segment {
                    source: scan.user.clone().map_or(Source::Day, Source::User),
                    check_paths: true,
                    // A partial day: its share of the day's rows, for an estimate.
                    base: Some(share(rows, counted_from)),
                    exact: tally
                        .as_ref()
                        .filter(|_| lo == counted_from && hi == end && scan.paths.is_empty())
                        .map(|t| t.count(counter)),
                    ..uncounted(lo, hi, None)
                },
            );
        }
        if !scan.ascending {
            listing.segments.reverse();
        }
        self.count_unknown_segments(scan, &mut listing).await?;
        Ok(listing)
    }

    /// The counter items `wanted` (with the counting-start item when `late` is not known yet), how
    /// many items DynamoDB read and the `late` they are valid for: the open days' counters are read
    /// with the counting-start item, closed days' come from memory or, when missing there, are read
    /// after it (see [`ClosedDays`]).
    async fn log_counters(
        &self,
        wanted: Vec<keys::Key>,
        now: DateTime,
        late: Option<i64>,
    ) -> StoreResult<(Vec<Arc<Item>>, usize, i64)> {
        let since = keys::request_log_counting_since();
        let (closed, mut open): (Vec<keys::Key>, Vec<keys::Key>) =
            wanted.into_iter().partition(|k| keys::request_log_counter_day(k).is_some_and(|day| is_closed(day, now)));
        if late.is_none() {
            open.push(since.clone());
        }
        let opened = if open.is_empty() { Vec::new() } else { self.batch_get(open).await? };
        let mut read = opened.len();
        let key_of = |item: &Item| {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            keys::Key { pk: text("pk"), sk: text("sk") }
        };
        let late = late.unwrap_or_else(|| {
            opened
                .iter()
                .find(|item| key_of(item) == since)
                .and_then(|item| item.get(LATE_WRITES)?.as_n().ok()?.parse().ok())
                .unwrap_or(0)
        });
        let mut found: Vec<Arc<Item>> = opened.into_iter().map(Arc::new).collect();
        let missing: Vec<keys::Key> = closed_days(&self.table, late, |days| {
            closed
                .into_iter()
                .filter(|key| match days.items.get(key) {
                    Some(kept) => {
                        found.extend(kept.clone());
                        false
                    }
                    None => true,
                })
                .collect()
        });
        if !missing.is_empty() {
            let mut fetched: HashMap<keys::Key, Arc<Item>> = self
                .batch_get(missing.clone())
                .await?
                .into_iter()
                .map(|item| (key_of(&item), Arc::new(item)))
                .collect();
            read += fetched.len();
            closed_days(&self.table, late, |days| {
                for key in missing {
                    let item = fetched.remove(&key);
                    found.extend(item.clone());
                    days.items.insert(key, item);
                }
            });
        }
        Ok((found, read, late))
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
            // A route's or a user's segments (one a day) are read together; a day partition alone.
            let mut spans: Vec<Vec<usize>> = Vec::new();
            let mut by_source: HashMap<&Source, usize> = HashMap::new();
            for &i in &batch {
                let source = &listing.segments[i].source;
                match by_source.get(source) {
                    Some(&span) => spans[span].push(i),
                    None => {
                        if *source != Source::Day {
                            by_source.insert(source, spans.len());
                        }
                        spans.push(vec![i]);
                    }
                }
            }
            let mut tasks = tokio::task::JoinSet::new();
            for span in spans {
                let reader = reader.clone();
                let segments: Vec<(usize, Segment)> = span.iter().map(|&i| (i, listing.segments[i].clone())).collect();
                if let [(i, segment)] = segments.as_slice() {
                    let (i, segment) = (*i, segment.clone());
                    tasks.spawn(async move {
                        let (matching, read, rows) = reader.count(segment).await?;
                        Ok::<_, StoreError>((vec![(i, matching, rows)], read))
                    });
                } else {
                    let cap = segments.iter().map(|(_, s)| s.base.unwrap_or(typical).max(1)).sum();
                    tasks.spawn(reader.count_span(segments, cap));
                }
            }
            for result in tasks.join_all().await {
                let (counted, read) = result?;
                for (i, matching, rows) in counted {
                    let segment = &mut listing.segments[i];
                    (segment.exact, segment.rows) = (Some(matching), rows);
                    matched += matching;
                }
                (scanned, budget) = (scanned + read, budget - read as i64);
                listing.items_read += read;
            }
            // Segments a span read stopped short of go back, in listing order.
            pending.extend(batch.into_iter().filter(|&i| listing.segments[i].exact.is_none()));
            pending.sort_unstable_by(|a, b| b.cmp(a));
        }
        // Unread days from before the counters are left out of the estimate: on a table created with
        // them they are empty, and on an upgraded one they leave the window after the retention.
        let unread: usize = pending.iter().filter_map(|&i| listing.segments[i].base).sum();
        listing.estimated = !pending.is_empty();
        let extrapolated =
            if scanned == 0 { 0 } else { (unread as f64 * matched as f64 / scanned as f64).round() as usize };
        listing.count = listing.segments.iter().filter_map(|s| s.exact).sum::<usize>() + extrapolated;
        listing.queries += reader.queries_sent();
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
        let groups: Vec<&[usize]> =
            order.chunk_by(|&a, &b| listing.segments[a].group == listing.segments[b].group).collect();
        // Counted route segments with nothing else in their group: a route's rows of several days
        // are one `gsi2` range. (A search's route may be certain one day and not the next: its views vary.)
        let coalescible = |group: &[usize]| {
            scan.paths.terms.is_empty()
                && group.iter().map(|&i| &listing.segments[i]).all(|s| {
                    matches!(s.source, Source::Route(_))
                        && !s.check_paths
                        && s.exact.is_some()
                        && s.exclude.is_none()
                        && s.rows.is_none()
                })
        };
        let mut next = 0;
        while let Some(&group) = groups.get(next) {
            next += 1;
            if rows.len() == need {
                break;
            }
            let known: Option<usize> = group.iter().map(|&i| listing.segments[i].exact).sum();
            if known.is_some_and(|c| skip >= c) {
                skip -= known.unwrap_or(0);
                continue;
            }
            let want = skip + need - rows.len();
            if let [i] = group {
                if listing.segments[*i].rows.is_none() {
                    // One source: it skips by keys, then reads the page.
                    let (found, skipped, read) = reader.page(&listing.segments[*i], skip, need - rows.len()).await?;
                    listing.items_read += read;
                    skip -= skipped;
                    rows.extend(found);
                    continue;
                }
            }
            if group.len() > 1 && coalescible(group) {
                // The page spans several days of the same routes: one read per route, not per route and day.
                let mut run = vec![group];
                let mut counted = known.unwrap_or(0);
                while let Some(&later) = groups.get(next).filter(|g| counted < want && coalescible(g)) {
                    counted += later.iter().filter_map(|&i| listing.segments[i].exact).sum::<usize>();
                    run.push(later);
                    next += 1;
                }
                if run.len() > 1 {
                    let mut by_route: HashMap<&Source, Segment> = HashMap::new();
                    for segment in run.iter().flat_map(|g| g.iter()).map(|&i| &listing.segments[i]) {
                        by_route
                            .entry(&segment.source)
                            .and_modify(|s| {
                                (s.lo, s.hi) = (s.lo.min(segment.lo), s.hi.max(segment.hi));
                                s.exact = s.exact.zip(segment.exact).map(|(a, b)| a + b);
                                s.base = s.base.zip(segment.base).map(|(a, b)| a + b);
                            })
                            .or_insert_with(|| segment.clone());
                    }
                    let (merged, read) = reader.merge(by_route.into_values().collect(), want).await?;
                    listing.items_read += read;
                    let total = merged.len();
                    rows.extend(merged.into_iter().skip(skip).take(need - rows.len()));
                    skip = skip.saturating_sub(total);
                    continue;
                }
            }
            let segments = group
                .iter()
                .map(|&i| {
                    let segment = &listing.segments[i];
                    // Rows the count read are in listing order; a flipped page walks them backwards.
                    let rows =
                        segment.rows.as_ref().map(|r| if flip { r.iter().rev().cloned().collect() } else { r.clone() });
                    Segment { rows, ..segment.clone() }
                })
                .collect();
            let (merged, read) = reader.merge(segments, want).await?;
            listing.items_read += read;
            let total = merged.len();
            rows.extend(merged.into_iter().skip(skip).take(need - rows.len()));
            skip = skip.saturating_sub(total);
        }
        if flip {
            rows.reverse();
        }
        listing.queries += reader.queries_sent();
        Ok(rows)
    }
}
