//! `seed-logs ROWS DAYS USERS`: the request log of the `/logs/` load run (infra/scripts/bench-logs.sh),
//! written through the store as the audit layer writes it (row, day counters, then the status), spread
//! evenly over the last DAYS days, oldest first. Then prints, per listing of the run, the items
//! DynamoDB reads for its first page (`--measure` alone skips the writing).
use c360::{
    domain::{log_paths::PathFilter, request_log::RequestLog, time},
    http::AppState,
    store::{
        keys,
        logs::{LogCondition, LogScan},
        DynamoStore, Item,
    },
};
use serde_json::json;

/// xorshift64*: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The audited routes (`Api::audited`) as a Cohort360 deployment calls them: weight in 1,000, method,
/// template, view (`name.method`), statuses.
const ROUTES: [(u64, &str, &str, &str, &[u16]); 28] = [
    (250, "POST", "/cohort/request-query-snapshots/", "rqs.create", &[201, 201, 201, 400]),
    (30, "POST", "/cohort/requests/{request_id}/query-snapshots/", "rqs.create", &[201, 400]),
    (20, "PATCH", "/cohort/request-query-snapshots/{uuid}/", "rqs.partial_update", &[200, 404]),
    (10, "POST", "/cohort/request-query-snapshots/{uuid}/share/", "rqs.share", &[201, 400]),
    (150, "POST", "/cohort/dated-measures/", "dated_measures.create", &[201, 201, 500]),
    (60, "PATCH", "/cohort/dated-measures/{uuid}/", "dated_measures.partial_update", &[200, 200, 400]),
    (50, "POST", "/cohort/cohorts/", "cohorts.create", &[201, 201, 500]),
    (60, "PATCH", "/cohort/cohorts/{uuid}/", "cohorts.partial_update", &[200, 200, 403]),
    (10, "DELETE", "/cohort/cohorts/{uuid}/", "cohorts.destroy", &[204, 404]),
    (50, "POST", "/cohort/requests/", "requests.create", &[201, 400]),
    (40, "PATCH", "/cohort/requests/{uuid}/", "requests.partial_update", &[200, 400]),
    (10, "DELETE", "/cohort/requests/{uuid}/", "requests.destroy", &[204]),
    (15, "POST", "/cohort/folders/", "folders.create", &[201]),
    (10, "PATCH", "/cohort/folders/{uuid}/", "folders.partial_update", &[200]),
    (5, "DELETE", "/cohort/folders/{uuid}/", "folders.destroy", &[204]),
    (20, "POST", "/cohort/fhir-filters/", "fhir_filters.create", &[201, 400]),
    (5, "PATCH", "/cohort/fhir-filters/{uuid}/", "fhir_filters.partial_update", &[200]),
    (5, "DELETE", "/cohort/fhir-filters/{uuid}/", "fhir_filters.destroy", &[204]),
    (10, "POST", "/cohort/feasibility-studies/", "feasibility_studies.create", &[201, 400]),
    (130, "POST", "/auth/login/", "auth.login", &[200, 200, 200, 401]),
    (15, "POST", "/accesses/accesses/", "accesses.create", &[201, 400, 403]),
    (10, "PATCH", "/accesses/accesses/{id}/", "accesses.partial_update", &[200, 400]),
    (3, "DELETE", "/accesses/accesses/{id}/", "accesses.destroy", &[204, 403]),
    (5, "PATCH", "/accesses/accesses/{id}/close/", "accesses.close", &[200, 403]),
    (2, "POST", "/accesses/roles/", "roles.create", &[201]),
    (3, "PATCH", "/accesses/roles/{id}/", "roles.partial_update", &[200]),
    (10, "POST", "/users/", "users.create", &[201, 400]),
    (12, "PATCH", "/users/{username}/", "users.partial_update", &[200, 404]),
];

/// The access whose history the load run asks for (`path_contains=/accesses/<id>/`).
const ACCESS_ID: u64 = 1_000;

fn log_row(i: u64, at: time::DateTime, users: u64) -> (RequestLog, u16) {
    let mut rng = Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let user = (rng.below(20) != 0).then(|| format!("{}", 4_000_000 + rng.below(users)));
    let mut pick = rng.below(1_000);
    let &(_, method, route, view, statuses) = ROUTES
        .iter()
        .find(|(weight, ..)| {
            let found = pick < *weight;
            pick = pick.saturating_sub(*weight);
            found
        })
        .expect("the weights add up to 1,000");
    let status = statuses[rng.below(statuses.len() as u64) as usize];
    let path = route
        .split('/')
        .map(|segment| match segment {
            "{id}" => format!("{}", ACCESS_ID - 500 + rng.below(1_000)),
            "{username}" => format!("{}", 4_000_000 + rng.below(users)),
            s if s.starts_with('{') => format!("{:08x}-0000-4000-8000-{:012x}", rng.next() as u32, rng.next() >> 16),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/");
    let (view, view_method) = view.split_once('.').expect("name.method");
    let query = if rng.below(10) == 0 { format!("search=term{}", rng.below(50)) } else { String::new() };
    let data = json!({"name": format!("Request {i}"), "description": "x".repeat(rng.below(200) as usize)});
    let log = serde_json::from_value(json!({
        "id": (at.unix_timestamp_nanos() / 1_000) as i64, "user": user, "username_persistent": user,
        "requested_at": time::iso(at), "response_ms": 0, "path": path, "route": route, "view": view,
        "view_method": view_method, "remote_addr": "10.0.0.1", "host": "127.0.0.1", "method": method,
        "user_agent": "bench", "query_params": query, "data": data.to_string(),
    }))
    .expect("a request log");
    (log, status)
}

async fn write(store: &DynamoStore, rows: u64, days: i64, users: u64, retention: ::time::Duration) {
    let now = time::now();
    let span = (days * 86_400_000_000) as u64;
    let first = now - ::time::Duration::microseconds(span as i64);
    // One writer per stripe of consecutive rows, each in time order: a day's first counted row is
    // its oldest, as with live traffic.
    let writers = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            let (from, to) = (rows * w / writers, rows * (w + 1) / writers);
            for i in from..to {
                let at = first + ::time::Duration::microseconds((span / rows * i) as i64);
                let (log, status) = log_row(i, at, users);
                let id = store.put_request_log(log, retention).await.expect("put a log");
                store.finish_request_log(id, status, (i % 400) as i64).await.expect("finish a log");
            }
        });
    }
    tasks.join_all().await;
}

/// The items read by the first page of each listing of the load run.
async fn measure(state: &AppState, users: u64) {
    let scan = |conditions: Vec<LogCondition>, paths: PathFilter| LogScan {
        user: None,
        after: None,
        before: None,
        conditions,
        residual: None,
        paths,
        ascending: false,
        retention_days: state.settings.request_log_retention_days,
        now: time::now(),
        count_budget: state.settings.request_log_count_budget,
    };
    let none = PathFilter::default;
    let contains = |wanted: &str| PathFilter::new(Some(wanted), &[]);
    let search = |terms: &str| PathFilter::new(None, &terms.split(' ').map(str::to_owned).collect::<Vec<_>>());
    let week = time::now() - ::time::Duration::days(7);
    let user = format!("{}", 4_000_000 + users / 2);
    let access = format!("/accesses/{ACCESS_ID}/");
    let cases: Vec<(&str, LogScan, usize)> = vec![
        ("page 1", scan(vec![], none()), 0),
        ("page 50", scan(vec![], none()), 980),
        ("user", LogScan { user: Some(user.clone()), ..scan(vec![], none()) }, 0),
        ("path_contains=/cohort/", scan(vec![], contains("/cohort/")), 0),
        ("path_contains=accesses", scan(vec![], contains("accesses")), 0),
        ("path_contains=accesses page 50", scan(vec![], contains("accesses")), 980),
        ("path_contains=/accesses/<id>/", scan(vec![], contains(&access)), 0),
        ("path_contains=roles", scan(vec![], contains("roles")), 0),
        ("status_code=500", scan(vec![LogCondition::Statuses(vec![500])], none()), 0),
        ("method=POST", scan(vec![LogCondition::Methods(vec!["POST".into()])], none()), 0),
        ("last 7 days", LogScan { after: Some(week), ..scan(vec![], none()) }, 0),
        ("search=cohorts", scan(vec![], search("cohorts")), 0),
        ("search=<user>", scan(vec![], search(&user)), 0),
    ];
    for (label, scan, offset) in cases {
        let mut listing = state.store.plan_request_logs(&scan).await.expect("plan");
        let need = 20.min(listing.count.saturating_sub(offset));
        let rows = state.store.request_logs_page(&scan, &mut listing, offset, need).await.expect("page");
        println!(
            "{label}\tcount {}{}\trows {}\titems read {}",
            listing.count,
            if listing.estimated { " (estimated)" } else { "" },
            rows.len(),
            listing.items_read
        );
    }
}

/// The size DynamoDB bills for an item, roughly (names plus values): the day counters are read 90 at
/// a time, so they must stay small.
fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            let size = if let Ok(s) = value.as_s() {
                s.len()
            } else if let Ok(n) = value.as_n() {
                n.len().div_ceil(2) + 1
            } else {
                value.as_ss().map_or(8, |set| set.iter().map(String::len).sum())
            };
            name.len() + size
        })
        .sum()
}

/// The sizes of yesterday's counter items (a whole day).
async fn counter_sizes(store: &DynamoStore) {
    let day = time::iso(time::now() - ::time::Duration::days(1))[..10].to_owned();
    let wanted = vec![
        keys::request_log_counter(&day),
        keys::request_log_route_counter(&day),
        keys::request_log_search_counter(&day),
    ];
    let found = store.batch_get(wanted).await.expect("the day's counters");
    let sizes: Vec<String> = found
        .iter()
        .map(|item| format!("{} {} B", item.get("sk").and_then(|v| v.as_s().ok()).map_or("?", |s| s), item_bytes(item)))
        .collect();
    eprintln!("[seed-logs] counter items of {day}: {}", sizes.join(", "));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or("usage: seed-logs ROWS DAYS USERS");
    let (rows, days, users) = (number(0)?, number(1)?, number(2)?);
    let state = AppState::from_env().await?;
    if !args.iter().any(|a| a == "--measure") {
        let retention = ::time::Duration::days(state.settings.request_log_retention_days);
        let started = std::time::Instant::now();
        write(&state.store, rows, days as i64, users, retention).await;
        eprintln!("[seed-logs] {rows} rows in {:.0} s", started.elapsed().as_secs_f64());
    }
    counter_sizes(&state.store).await;
    measure(&state, users).await;
    Ok(())
}
