//! `seed-logs ROWS DAYS USERS`: the request log of the `/logs/` load run (infra/scripts/bench-logs.sh),
//! written through the store as the audit layer writes it (row, day counters, then the status), spread
//! evenly over the last DAYS days, oldest first. Then prints, per listing of the run, the items
//! DynamoDB reads for its first page (`--measure` alone skips the writing).
use std::sync::Arc;

use c360::{
    domain::{request_log::RequestLog, time},
    http::AppState,
    store::{DynamoStore, LogCondition, LogPredicate, LogScan},
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

fn log_row(i: u64, at: time::DateTime, users: u64) -> (RequestLog, u16) {
    let mut rng = Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let user = (rng.below(20) != 0).then(|| format!("{}", 4_000_000 + rng.below(users)));
    let (method, status) = match rng.below(100) {
        0..=49 => ("POST", [201, 201, 201, 400, 500][rng.below(5) as usize]),
        50..=79 => ("PATCH", [200, 200, 200, 400, 403][rng.below(5) as usize]),
        80..=89 => ("DELETE", [204, 204, 404][rng.below(3) as usize]),
        _ => ("GET", 200),
    };
    let uuid = format!("{:08x}-0000-4000-8000-{:012x}", rng.next() as u32, rng.next() >> 16);
    let (path, view) = match rng.below(10) {
        0..=4 => (format!("/cohort/request-query-snapshots/{uuid}/"), "request-query-snapshots"),
        5 => ("/cohort/requests/".to_owned(), "requests"),
        6 => (format!("/accesses/accesses/{}/", rng.below(10_000)), "accesses"),
        7 => (format!("/users/{}/", 4_000_000 + rng.below(users)), "users"),
        8 => ("/auth/login/".to_owned(), "auth"),
        _ => ("/exports/".to_owned(), "exports"),
    };
    let query = if rng.below(10) == 0 { format!("search=term{}", rng.below(50)) } else { String::new() };
    let data = json!({"name": format!("Request {i}"), "description": "x".repeat(rng.below(200) as usize)});
    let log = serde_json::from_value(json!({
        "id": (at.unix_timestamp_nanos() / 1_000) as i64, "user": user, "username_persistent": user,
        "requested_at": time::iso(at), "response_ms": 0, "path": path, "view": view, "view_method": "create",
        "remote_addr": "10.0.0.1", "host": "127.0.0.1", "method": method, "user_agent": "bench",
        "query_params": query, "data": data.to_string(),
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
    let scan = |conditions: Vec<LogCondition>, residual: Option<LogPredicate>| LogScan {
        user: None,
        after: None,
        before: None,
        conditions,
        residual,
        ascending: false,
        retention_days: state.settings.request_log_retention_days,
        now: time::now(),
        count_budget: state.settings.request_log_count_budget,
    };
    let contains = |wanted: &'static str| -> Option<LogPredicate> {
        Some(Arc::new(move |l: &RequestLog| l.path.to_lowercase().contains(wanted)))
    };
    let week = time::now() - ::time::Duration::days(7);
    let cases: Vec<(&str, LogScan, usize)> = vec![
        ("page 1", scan(vec![], None), 0),
        ("page 50", scan(vec![], None), 980),
        ("user", LogScan { user: Some(format!("{}", 4_000_000 + users / 2)), ..scan(vec![], None) }, 0),
        ("path_contains=/cohort/", scan(vec![], contains("/cohort/")), 0),
        ("status_code=500", scan(vec![LogCondition::Statuses(vec![500])], None), 0),
        ("method=POST", scan(vec![LogCondition::Methods(vec!["POST".into()])], None), 0),
        ("last 7 days", LogScan { after: Some(week), ..scan(vec![], None) }, 0),
        ("search=term7", scan(vec![], Some(Arc::new(|l: &RequestLog| l.query_params.contains("term7")))), 0),
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
    measure(&state, users).await;
    Ok(())
}
