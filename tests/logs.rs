//! `/logs/` at scale (spec §9.4): counts from the day counters, pages read by day, `path_contains` and
//! `search` through the route index, residual filters within a budget (then an estimated count), rows
//! written before the counters or the route index existed, closed days' counters kept in memory.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use c360::{
    domain::{log_paths::PathFilter, request_log::RequestLog, time as t},
    store::logs::{LogCondition, LogScan},
};
use http::{Method, StatusCode};
use integration_tests::{dynamodb, TestApp, ADMIN};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

/// One seeded row, as the test expects to find it.
#[derive(Clone, Debug)]
struct Row {
    id: i64,
    at: OffsetDateTime,
    user: Option<&'static str>,
    method: &'static str,
    path: String,
    /// `None` for some rows (as a handler outside the router would write them).
    route: Option<&'static str>,
    view: &'static str,
    status: u16,
    query: &'static str,
    data: &'static str,
}

/// Which seeded rows a listing should return.
type Keep = Box<dyn Fn(&Row) -> bool>;

fn micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}

fn midnight(days_ago: i64) -> OffsetDateTime {
    (t::now() - Duration::days(days_ago)).date().midnight().assume_utc()
}

/// Rows per day (`(days ago, rows)`), oldest first, with users, methods, statuses, paths varied.
fn rows(days: &[(i64, usize)]) -> Vec<Row> {
    let mut all = Vec::new();
    for &(ago, n) in days {
        for i in 0..n {
            let at = midnight(ago) + Duration::hours(1) + Duration::minutes(i as i64);
            all.push(Row {
                id: micros(at),
                at,
                user: [Some("alice"), Some("bob"), None][i % 3],
                method: ["POST", "PATCH"][i % 2],
                path: match i % 4 {
                    0 => "/cohort/requests/".to_owned(),
                    1 => "/accesses/accesses/".to_owned(),
                    2 => "/users/".to_owned(),
                    _ => format!("/cohort/cohorts/{i}/"),
                },
                route: (i % 9 != 8).then_some(
                    ["/cohort/requests/", "/accesses/accesses/", "/users/", "/cohort/cohorts/{uuid}/"][i % 4],
                ),
                view: ["requests", "accesses", "users", "cohorts"][i % 4],
                status: match i % 5 {
                    0 => 500,
                    1 => 400,
                    _ => 201,
                },
                query: if i % 7 == 0 { "search=Needle" } else { "" },
                data: if i % 6 == 0 { r#"{"name":"haystack"}"# } else { r#"{"name":"x"}"# },
            });
        }
    }
    all
}

async fn seed(app: &TestApp, rows: &[Row]) {
    for row in rows {
        let log: RequestLog = serde_json::from_value(json!({
            "id": row.id, "user": row.user, "username_persistent": row.user, "requested_at": t::iso(row.at),
            "response_ms": 0, "path": row.path, "route": row.route, "view": row.view, "view_method": "create",
            "method": row.method,
            "query_params": row.query, "data": row.data, "host": "testserver",
        }))
        .expect("a request log");
        let id = app.state.store.put_request_log(log, Duration::days(90)).await.expect("put the log");
        assert_eq!(id, row.id);
        app.state.store.finish_request_log(id, row.status, row.id % 300).await.expect("finish the log");
    }
}

struct Listing {
    count: u64,
    ids: Vec<i64>,
    estimated: bool,
}

/// Every page of a listing, following `next`.
async fn all_pages(app: &TestApp, token: &str, query: &str) -> Listing {
    let mut listing = Listing { count: 0, ids: Vec::new(), estimated: false };
    let mut page = 1;
    loop {
        let path = format!("/logs/?{query}&page={page}");
        let (status, headers, body) = app.call(Method::GET, &path).token(token).send_full().await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        listing.count = body["count"].as_u64().expect("a count");
        listing.estimated |= headers.get("x-count-estimated").is_some_and(|v| v == "true");
        let results = body["results"].as_array().expect("results");
        assert!(results.len() <= 20);
        listing.ids.extend(results.iter().map(|r| r["id"].as_i64().expect("an id")));
        if body["next"].is_null() {
            return listing;
        }
        page += 1;
    }
}

/// `search`'s test of one term: in the route's literal text (the path without a route), the view or the user.
fn searched(row: &Row, term: &str) -> bool {
    let literal = row.route.map_or(row.path.clone(), |r| r.replace("{uuid}", "/"));
    literal.to_lowercase().contains(term)
        || row.view.contains(term)
        || row.user.is_some_and(|u| u.to_lowercase().contains(term))
}

fn ids_of(rows: &[Row], keep: impl Fn(&Row) -> bool) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.iter().filter(|r| keep(r)).map(|r| r.id).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// Every page of `/logs/?{query}` (with `bounds`), in both orders, lists exactly the rows `keep`
/// keeps, under an exact count.
async fn assert_listed(
    app: &TestApp,
    token: &str,
    bounds: &str,
    query: &str,
    rows: &[Row],
    keep: impl Fn(&Row) -> bool,
) {
    for ordering in ["-requested_at", "requested_at"] {
        let listing = all_pages(app, token, &format!("ordering={ordering}&{bounds}&{query}")).await;
        let mut expected = ids_of(rows, &keep);
        if ordering == "requested_at" {
            expected.reverse();
        }
        assert_eq!((listing.count as usize, listing.estimated), (expected.len(), false), "{query} count");
        assert_eq!(listing.ids, expected, "{query} {ordering}");
    }
}

/// A newest-first listing through the store, as `/logs/` builds it, for counting the items it reads.
fn store_scan(
    after: Option<OffsetDateTime>,
    before: Option<OffsetDateTime>,
    conditions: Vec<LogCondition>,
    paths: PathFilter,
) -> LogScan {
    LogScan {
        user: None,
        after,
        before,
        conditions,
        residual: None,
        paths,
        ascending: false,
        retention_days: 90,
        now: t::now(),
        count_budget: 5_000,
    }
}

/// Makes a day look written before an index existed: `attributes` removed from its rows, and
/// `marker` from its counter item `counter` (`#ALL`, `#ROUTES`).
async fn before_index(app: &TestApp, rows: &[Row], days_ago: i64, attributes: &str, counter: &str, marker: &str) {
    let (table, client) = (app.state.settings.table_name.clone(), dynamodb().await);
    let day = t::iso(midnight(days_ago))[..10].to_owned();
    let key = |pk: String, sk: String| {
        HashMap::from([("pk".to_owned(), AttributeValue::S(pk)), ("sk".to_owned(), AttributeValue::S(sk))])
    };
    for row in rows.iter().filter(|r| t::iso(r.at).starts_with(&day)) {
        let update = client
            .update_item()
            .table_name(&table)
            .set_key(Some(key(format!("LOGS#{day}"), format!("LOG#{:016}", row.id))));
        update.update_expression(format!("REMOVE {attributes}")).send().await.expect("a row without the index entry");
    }
    let update =
        client.update_item().table_name(&table).set_key(Some(key(format!("LOGCOUNT#{day}"), counter.to_owned())));
    update.update_expression(format!("REMOVE {marker}")).send().await.expect("a counter without the index marker");
}

/// The full admin's token; its login writes a row of today, which the tests' `requested_at_before` leaves out.
async fn admin_token(app: &TestApp) -> String {
    app.login(ADMIN).await.0
}

#[tokio::test]
async fn counts_pages_and_filters_are_exact_across_days() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    let rows = rows(&[(3, 30), (2, 7), (1, 25)]);
    seed(&app, &rows).await;
    let past = "requested_at_before=".to_owned() + &t::iso(midnight(0) - Duration::microseconds(1));

    // Unfiltered, newest first: exact count, pages crossing day boundaries (25 | 7 | 30 rows).
    let all = all_pages(&app, &token, &format!("ordering=-requested_at&{past}")).await;
    assert_eq!((all.count, all.estimated), (62, false));
    assert_eq!(all.ids, ids_of(&rows, |_| true));
    // The whole window, with the login row of today on top.
    let (_, first) = app.call(Method::GET, "/logs/?ordering=-requested_at&page=1").token(&token).send().await;
    assert_eq!(first["count"], 63);
    assert_eq!(first["results"][0]["path"], "/auth/login/");
    assert_eq!(first["next"], "http://localhost/logs/?ordering=-requested_at&page=2");
    assert_eq!(first["previous"], Value::Null);

    // page=last, the page after it, and ascending order.
    let (status, last) = app.call(Method::GET, &format!("/logs/?{past}&page=last")).token(&token).send().await;
    assert_eq!(status, StatusCode::OK);
    let last_ids: Vec<i64> = last["results"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(last_ids, all.ids[60..].to_vec());
    let (status, third) = app.call(Method::GET, &format!("/logs/?{past}&page=3")).token(&token).send().await;
    assert_eq!(status, StatusCode::OK);
    let third_ids: Vec<i64> = third["results"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(third_ids, all.ids[40..60].to_vec());
    for bad in ["5", "0", "x", "-1"] {
        let (status, body) = app.call(Method::GET, &format!("/logs/?{past}&page={bad}")).token(&token).send().await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"detail": "Invalid page."})), "page={bad}");
    }
    let ascending = all_pages(&app, &token, &format!("ordering=requested_at&{past}")).await;
    let mut reversed = all.ids.clone();
    reversed.reverse();
    assert_eq!((ascending.count, ascending.ids), (62, reversed));

    // Filters the counters answer, and filters read within the budget: all exact.
    let cases: Vec<(&str, Keep)> = vec![
        ("user=alice", Box::new(|r| r.user == Some("alice"))),
        ("method=post", Box::new(|r| r.method == "POST")),
        ("method=POST,patch", Box::new(|_| true)),
        ("status_code=500", Box::new(|r| r.status == 500)),
        ("status_code=400,500", Box::new(|r| r.status != 201)),
        ("user=bob&method=PATCH", Box::new(|r| r.user == Some("bob") && r.method == "PATCH")),
        ("user=bob&status_code=201", Box::new(|r| r.user == Some("bob") && r.status == 201)),
        ("method=POST&status_code=500", Box::new(|r| r.method == "POST" && r.status == 500)),
        // Certain routes (counted), a possible one (its rows checked), rows without a route.
        ("path_contains=/COHORT/", Box::new(|r| r.path.contains("/cohort/"))),
        ("path_contains=accesses&method=POST", Box::new(|r| r.path.contains("accesses") && r.method == "POST")),
        ("path_contains=/cohorts/3/", Box::new(|r| r.path.contains("/cohorts/3/"))),
        ("path_contains=3", Box::new(|r| r.path.contains('3'))),
        ("path_contains=users&status_code=201", Box::new(|r| r.path.contains("users") && r.status == 201)),
        ("path_contains=roles", Box::new(|_| false)),
        // Every route a candidate: the day partition is read once rather than merged route by route.
        ("path_contains=/", Box::new(|_| true)),
        ("path_contains=s/&method=PATCH", Box::new(|r| r.path.contains("s/") && r.method == "PATCH")),
        ("path=/users/", Box::new(|r| r.path == "/users/")),
        ("data=HAYSTACK", Box::new(|r| r.data.contains("haystack"))),
        // Search: route text and views (counted), users (their other rows read), several terms.
        ("search=users", Box::new(|r| searched(r, "users"))),
        ("search=li", Box::new(|r| searched(r, "li"))),
        ("search=o", Box::new(|r| searched(r, "o"))),
        ("search=needle", Box::new(|_| false)),
        ("search=alice+cohorts", Box::new(|r| r.user == Some("alice") && r.path.contains("cohorts"))),
        ("search=bob&path_contains=cohort", Box::new(|r| searched(r, "bob") && r.path.contains("cohort"))),
        ("search=cohort&user=alice", Box::new(|r| searched(r, "cohort") && r.user == Some("alice"))),
        ("response_ms_min=100&response_ms_max=200", Box::new(|r| (100..=200).contains(&(r.id % 300)))),
        ("host=testserver&view_method=create", Box::new(|_| true)),
        ("user=nobody", Box::new(|_| false)),
        ("response=%22id%22:1", Box::new(|_| false)),
    ];
    for (query, keep) in cases {
        assert_listed(&app, &token, &past, query, &rows, keep).await;
    }

    // Date bounds: whole days, and a bound inside a day.
    let day = |ago: i64| t::iso(midnight(ago))[..10].to_owned();
    let yesterday =
        all_pages(&app, &token, &format!("requested_at_after={}&requested_at_before={}", day(2), day(2))).await;
    assert_eq!(yesterday.ids, ids_of(&rows, |r| r.at >= midnight(2) && r.at < midnight(1)));
    let cut = midnight(3) + Duration::hours(1) + Duration::minutes(10);
    let after = all_pages(&app, &token, &format!("requested_at_after={}&{past}", t::iso(cut))).await;
    assert_eq!((after.count as usize, after.ids), (52, ids_of(&rows, |r| r.at >= cut)));
    let both = all_pages(
        &app,
        &token,
        &format!("requested_at_after={}&requested_at_before={}&user=alice", t::iso(cut), day(2)),
    )
    .await;
    assert_eq!(both.ids, ids_of(&rows, |r| r.at >= cut && r.at < midnight(1) && r.user == Some("alice")));

    // Malformed values are 400s on the parameter, never 500s.
    for (query, field) in [
        ("status_code=abc", "status_code"),
        ("requested_at_after=yesterday", "requested_at_after"),
        ("response_ms_min=fast", "response_ms_min"),
        ("ordering=path", "ordering"),
    ] {
        let (status, body) = app.call(Method::GET, &format!("/logs/?{query}")).token(&token).send().await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.get(field).is_some(), "{query}: {body}");
    }
    // An upper bound before the lower one, and odd lists, are empty pages.
    for query in [format!("requested_at_after={}&requested_at_before={}", day(1), day(3)), "method=,".to_owned()] {
        let (status, body) = app.call(Method::GET, &format!("/logs/?{query}")).token(&token).send().await;
        assert_eq!((status, body["count"].clone()), (StatusCode::OK, json!(0)), "{query}");
    }

    // One row by id: one GetItem.
    let (status, one) = app.call(Method::GET, &format!("/logs/{}/", rows[0].id)).token(&token).send().await;
    assert_eq!(
        (status, one["path"].clone(), one["status_code"].clone()),
        (StatusCode::OK, json!(rows[0].path), json!(500))
    );
}

#[tokio::test]
async fn past_the_budget_the_count_is_an_estimate_and_pages_stay_right() {
    let app = TestApp::with_settings(&[("REQUEST_LOG_COUNT_BUDGET", "10")]).await;
    let token = admin_token(&app).await;
    // Every row with its route, so that what the route counters answer needs no row read.
    let rows: Vec<Row> = rows(&[(5, 40), (4, 40), (3, 40), (2, 40), (1, 40)])
        .into_iter()
        .map(|r| Row {
            route: Some(match r.view {
                "requests" => "/cohort/requests/",
                "accesses" => "/accesses/accesses/",
                "users" => "/users/",
                _ => "/cohort/cohorts/{uuid}/",
            }),
            ..r
        })
        .collect();
    seed(&app, &rows).await;
    let past = "requested_at_before=".to_owned() + &t::iso(midnight(0) - Duration::microseconds(1));

    // A filter only rows answer (a parameter may hold it): a day's rows read (more than the budget
    // of 10), the rest extrapolated.
    let query = format!("/logs/?{past}&path_contains=3&page=1");
    let (status, headers, body) = app.call(Method::GET, &query).token(&token).send_full().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("x-count-estimated").map(|v| v.to_str().unwrap()), Some("true"));
    let expected = ids_of(&rows, |r| r.path.contains('3'));
    let count = body["count"].as_u64().unwrap() as usize;
    assert!(count.abs_diff(expected.len()) <= 5, "estimated {count}, actual {}", expected.len());
    let page: Vec<i64> = body["results"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(page, expected[..20].to_vec());
    // The second page reads on past the counted part and is still exact.
    let (_, second) = app.call(Method::GET, &query.replace("page=1", "page=2")).token(&token).send().await;
    let second: Vec<i64> = second["results"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(second, expected[20..40.min(expected.len())].to_vec());
    // The last page is read from the oldest end.
    let (_, last) = app.call(Method::GET, &query.replace("page=1", "page=last")).token(&token).send().await;
    let last: Vec<i64> = last["results"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let tail = count - (count.div_ceil(20) - 1) * 20;
    assert_eq!(last, expected[expected.len() - tail.min(expected.len())..].to_vec());

    // What the counters answer stays exact whatever the budget.
    for (query, keep) in [
        ("user=alice", Box::new(|r: &Row| r.user == Some("alice")) as Keep),
        ("path_contains=/cohort/", Box::new(|r: &Row| r.path.contains("/cohort/"))),
        ("search=accesses", Box::new(|r: &Row| searched(r, "accesses"))),
        ("status_code=500", Box::new(|r: &Row| r.status == 500)),
        ("method=PATCH", Box::new(|r: &Row| r.method == "PATCH")),
    ] {
        let listing = all_pages(&app, &token, &format!("{past}&{query}")).await;
        assert_eq!((listing.ids, listing.estimated), (ids_of(&rows, keep), false), "{query}");
    }
}

#[tokio::test]
async fn rows_written_before_the_counters_or_the_route_index_are_listed_and_counted() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    let table = app.state.settings.table_name.clone();
    let client = dynamodb().await;
    let rows = rows(&[(3, 4), (2, 6)]);
    // Older rows as the previous code wrote them: the row alone, no counter, no user index.
    let (legacy, counted): (Vec<Row>, Vec<Row>) =
        rows.iter().cloned().partition(|r| r.at < midnight(2) + Duration::hours(1) + Duration::minutes(3));
    for row in &legacy {
        let day = t::iso(row.at)[..10].to_owned();
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut item = HashMap::from([
            ("pk".to_owned(), s(&format!("LOGS#{day}"))),
            ("sk".to_owned(), s(&format!("LOG#{:016}", row.id))),
            ("entity".to_owned(), s("request_log")),
            ("id".to_owned(), AttributeValue::N(row.id.to_string())),
            ("requested_at".to_owned(), s(&t::iso(row.at))),
            ("response_ms".to_owned(), AttributeValue::N("3".into())),
            ("path".to_owned(), s(&row.path)),
            ("view".to_owned(), s(row.view)),
            ("view_method".to_owned(), s("create")),
            ("method".to_owned(), s(row.method)),
            ("query_params".to_owned(), s(row.query)),
            ("status_code".to_owned(), AttributeValue::N(row.status.to_string())),
        ]);
        if let Some(user) = row.user {
            item.insert("user".into(), s(user));
            item.insert("username_persistent".into(), s(user));
        }
        client.put_item().table_name(&table).set_item(Some(item)).send().await.expect("a legacy row");
    }
    seed(&app, &counted).await;
    // Rows counted before the route index existed: their day has no route counter.
    let day = t::iso(midnight(2))[..10].to_owned();
    let key = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("LOGCOUNT#{day}"))),
        ("sk".to_owned(), AttributeValue::S("#ROUTES".into())),
    ]);
    client.delete_item().table_name(&table).set_key(Some(key)).send().await.expect("no route counter");
    let past = "requested_at_before=".to_owned() + &t::iso(midnight(0) - Duration::microseconds(1));
    for (query, keep) in [
        ("", Box::new(|_: &Row| true) as Keep),
        ("user=alice", Box::new(|r: &Row| r.user == Some("alice"))),
        ("method=POST", Box::new(|r: &Row| r.method == "POST")),
        ("path_contains=/cohort/", Box::new(|r: &Row| r.path.contains("/cohort/"))),
        ("search=cohorts", Box::new(|r: &Row| r.path.contains("cohorts"))),
    ] {
        let listing = all_pages(&app, &token, &format!("{past}&{query}")).await;
        let expected = ids_of(&rows, keep);
        assert_eq!((listing.count as usize, &listing.ids), (expected.len(), &expected), "{query}");
    }
}

#[tokio::test]
async fn a_route_or_a_user_is_read_once_over_the_window_and_split_by_day() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    // One access route over four days; on day 2 its parameters hold no `1`: `path_contains=/1`
    // is impossible there, and the window read skips those rows.
    let mut rows = Vec::new();
    for (ago, ids) in [(4, ["12", "31", "7"]), (3, ["10", "41", "21"]), (2, ["99", "98", "97"]), (1, ["15", "61", "1"])]
    {
        for (i, id) in ids.into_iter().enumerate() {
            let at = midnight(ago) + Duration::hours(2) + Duration::minutes(i as i64);
            rows.push(Row {
                id: micros(at),
                at,
                user: [Some("carol"), Some("dave")][i % 2],
                method: "PATCH",
                path: format!("/accesses/accesses/{id}/"),
                route: Some("/accesses/accesses/{id}/"),
                view: "accesses",
                status: 200,
                query: "",
                data: "{}",
            });
        }
    }
    // Day 1 also holds two routes of 25 rows each, one before and one after the access rows: a
    // page merging them reads each in proportion, then further where the merge is not settled.
    for (route, hour) in [("/accesses/perimeters/", 1), ("/accesses/roles/", 5)] {
        for i in 0..25 {
            let at = midnight(1) + Duration::hours(hour) + Duration::minutes(i);
            let (path, view) = (route.to_owned(), route.split('/').nth(2).expect("a view"));
            rows.push(Row {
                id: micros(at),
                at,
                user: Some("erin"),
                path,
                route: Some(route),
                view,
                ..rows[0].clone()
            });
        }
    }
    seed(&app, &rows).await;
    // Day 3 as written before the views and users had their own item: all in the route counter.
    let (table, client) = (app.state.settings.table_name.clone(), dynamodb().await);
    let counter = |sk: &str| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("LOGCOUNT#{}", &t::iso(midnight(3))[..10]))),
            ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
        ])
    };
    let get = |sk: &'static str| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            let out = client.get_item().table_name(table).set_key(Some(counter(sk))).send().await.expect("get");
            out.item.expect("a counter item")
        }
    };
    let (mut routes, search) = (get("#ROUTES").await, get("#SEARCH").await);
    assert!(search.keys().any(|n| n.starts_with("v:")) && search.contains_key("u"), "{search:?}");
    assert!(!routes.contains_key("u"), "path_contains reads no users");
    routes.extend(search.into_iter().filter(|(n, _)| n.starts_with("v:") || n == "u"));
    client.put_item().table_name(&table).set_item(Some(routes)).send().await.expect("an old route counter");
    client.delete_item().table_name(&table).set_key(Some(counter("#SEARCH"))).send().await.expect("no search item");
    let past = "requested_at_before=".to_owned() + &t::iso(midnight(0) - Duration::microseconds(1));
    let cases: Vec<(&str, Keep)> = vec![
        ("path_contains=/1", Box::new(|r| r.path.contains("/1"))),
        ("path_contains=1/", Box::new(|r| r.path.contains("1/"))),
        ("path_contains=1/&status_code=200", Box::new(|r| r.path.contains("1/"))),
        ("search=carol", Box::new(|r| r.user == Some("carol"))),
        ("search=carol&method=PATCH", Box::new(|r| r.user == Some("carol"))),
        ("search=accesses", Box::new(|_| true)),
        ("path_contains=accesses", Box::new(|_| true)),
        ("path_contains=/accesses/&method=PATCH", Box::new(|_| true)),
        ("path_contains=s/r", Box::new(|r| r.path.contains("s/r"))),
    ];
    for (query, keep) in cases {
        assert_listed(&app, &token, &past, query, &rows, keep).await;
    }
}

#[tokio::test]
async fn closed_days_are_read_once_and_a_late_row_there_is_seen_by_the_next_listing() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    let rows = rows(&[(5, 6), (3, 4)]);
    // Day 5 gets four rows now and two later; day 3 has no row until the late ones.
    let (now, late): (Vec<Row>, Vec<Row>) =
        rows.iter().cloned().partition(|r| r.at < midnight(5) + Duration::hours(1) + Duration::minutes(4));
    seed(&app, &now).await;

    // A second planning reads only the open days' counters and the counting start.
    let scan = store_scan(None, None, Vec::new(), PathFilter::new(Some("/cohort/"), &[]));
    let first = app.state.store.plan_request_logs(&scan).await.expect("a plan");
    let second = app.state.store.plan_request_logs(&scan).await.expect("a plan");
    assert_eq!(first.count, second.count);
    assert!(first.items_read >= 4, "day 5's counters were read: {}", first.items_read);
    assert!(second.items_read <= 3, "closed days came from memory: {}", second.items_read);

    let past = "requested_at_before=".to_owned() + &t::iso(midnight(0) - Duration::microseconds(1));
    let cases: Vec<(&str, Keep)> = vec![
        ("", Box::new(|_| true)),
        ("path_contains=/cohort/", Box::new(|r| r.path.contains("/cohort/"))),
        ("user=alice", Box::new(|r| r.user == Some("alice"))),
        ("status_code=500", Box::new(|r| r.status == 500)),
    ];
    for (query, keep) in &cases {
        let listing = all_pages(&app, &token, &format!("{past}&{query}")).await;
        assert_eq!((listing.count as usize, listing.ids), (ids_of(&now, keep).len(), ids_of(&now, keep)), "{query}");
    }
    // Rows written late to closed days (a bulk load): the next listings count and show them.
    seed(&app, &late).await;
    for (query, keep) in &cases {
        let listing = all_pages(&app, &token, &format!("{past}&{query}")).await;
        let expected = ids_of(&rows, keep);
        assert_eq!((listing.count as usize, listing.ids), (expected.len(), expected), "{query} after late rows");
    }
}

#[tokio::test]
async fn one_access_history_reads_its_paths_only() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    // Four days of writes on two access routes, over access ids whose text contains 42 or not.
    let mut rows = Vec::new();
    for ago in 1..=4 {
        for i in 0..40 {
            let at = midnight(ago) + Duration::hours(3) + Duration::minutes(i);
            let id = ["7", "42", "420", "1042", "142"][i as usize % 5];
            let (path, route) = if i % 2 == 0 {
                (format!("/accesses/accesses/{id}/"), "/accesses/accesses/{id}/")
            } else {
                (format!("/accesses/accesses/{id}/close/"), "/accesses/accesses/{id}/close/")
            };
            rows.push(Row {
                id: micros(at),
                at,
                user: Some("carol"),
                method: "PATCH",
                path,
                route: Some(route),
                view: "accesses",
                status: 200,
                query: "",
                data: "{}",
            });
        }
    }
    seed(&app, &rows).await;
    // Day 3 as written before the path index: no path entry on its rows, no `pfirst` on its counter.
    before_index(&app, &rows, 3, "gsi3pk, gsi3sk", "#ROUTES", "pfirst").await;

    let before = midnight(0) - Duration::microseconds(1);
    let past = "requested_at_before=".to_owned() + &t::iso(before);
    for wanted in ["/accesses/42/", "/accesses/1042/", "/accesses/9/", "/42/close/"] {
        let query = format!("path_contains={wanted}");
        assert_listed(&app, &token, &past, &query, &rows, |r| r.path.contains(wanted)).await;
    }
    // Over days 2 and 1 (indexed by path), the rows read are the access's own (counted, then the
    // page), not the 80 rows of its two routes.
    let scan = store_scan(Some(midnight(2)), Some(before), Vec::new(), PathFilter::new(Some("/accesses/42/"), &[]));
    let mut listing = app.state.store.plan_request_logs(&scan).await.expect("a plan");
    let page = app.state.store.request_logs_page(&scan, &mut listing, 0, 20).await.expect("a page");
    assert_eq!((listing.count, page.len()), (16, 16));
    assert!(listing.items_read <= 2 * 16 + 8, "read {} items for 16 rows", listing.items_read);
}

#[tokio::test]
async fn a_status_listing_reads_the_rows_of_its_statuses() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    // 60 rows a day over three days, a fifth of them 500s; day 3 as written before the status index.
    let rows = rows(&[(3, 60), (2, 60), (1, 60)]);
    seed(&app, &rows).await;
    before_index(&app, &rows, 3, "gsi4pk, gsi4sk", "#ALL", "sfirst").await;

    let before = midnight(0) - Duration::microseconds(1);
    let past = "requested_at_before=".to_owned() + &t::iso(before);
    let cases: Vec<(&str, Keep)> = vec![
        ("status_code=500", Box::new(|r| r.status == 500)),
        ("status_code=500,400", Box::new(|r| r.status == 500 || r.status == 400)),
        ("status_code=500&method=POST", Box::new(|r| r.status == 500 && r.method == "POST")),
        ("status_code=418", Box::new(|_| false)),
    ];
    for (query, keep) in cases {
        assert_listed(&app, &token, &past, query, &rows, keep).await;
    }
    // Over days 2 and 1 the page reads 500s only: 12 a day, not the 120 rows.
    let scan =
        store_scan(Some(midnight(2)), Some(before), vec![LogCondition::Statuses(vec![500])], PathFilter::default());
    let mut listing = app.state.store.plan_request_logs(&scan).await.expect("a plan");
    let page = app.state.store.request_logs_page(&scan, &mut listing, 0, 20).await.expect("a page");
    assert_eq!((listing.count, page.len()), (24, 20));
    assert!(listing.items_read <= 20 + 2 + 8, "read {} items for a page of 20", listing.items_read);
}

#[tokio::test]
async fn a_search_on_a_user_counts_their_rows_from_their_day_counters() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    // 60 rows a day over three days less those without a route, a third of them alice's; day 3 as
    // counted before user counters held routes (its alice rows are then read).
    let rows: Vec<Row> = rows(&[(3, 60), (2, 60), (1, 60)]).into_iter().filter(|r| r.route.is_some()).collect();
    seed(&app, &rows).await;
    before_index(&app, &rows, 3, "never_set", "USER#alice", "rfirst").await;

    let before = midnight(0) - Duration::microseconds(1);
    let past = "requested_at_before=".to_owned() + &t::iso(before);
    for (query, keep) in [
        ("search=alice", Box::new(|r: &Row| r.user == Some("alice")) as Keep),
        ("search=ALI", Box::new(|r: &Row| r.user == Some("alice"))),
        ("search=alice&method=POST", Box::new(|r: &Row| r.user == Some("alice") && r.method == "POST")),
    ] {
        assert_listed(&app, &token, &past, query, &rows, keep).await;
    }
    // Over days 2 and 1: alice's rows are counted from her two day counters and the page reads 20
    // of them (day, route and search counters of two days, the counting-start item, hers).
    let scan = store_scan(Some(midnight(2)), Some(before), Vec::new(), PathFilter::new(None, &["alice".to_owned()]));
    let mut listing = app.state.store.plan_request_logs(&scan).await.expect("a plan");
    let page = app.state.store.request_logs_page(&scan, &mut listing, 0, 20).await.expect("a page");
    let alice = ids_of(&rows, |r| r.user == Some("alice") && r.at >= midnight(2));
    assert_eq!((listing.count, page.len()), (alice.len(), 20));
    let (page_rows, counters) = (20, 3 * 2 + 1 + 2);
    assert!(
        listing.items_read <= page_rows + counters,
        "read {} items for a page of 20 (alice's 40 rows were read)",
        listing.items_read
    );
}

#[tokio::test]
async fn a_sparse_route_filter_reads_each_route_once_across_the_days_of_a_page() {
    let app = TestApp::new().await;
    let token = admin_token(&app).await;
    // Six days of 20 snapshot saves, 3 role listings and 2 role edits: `path_contains=roles` holds
    // two certain routes, one row in five, so each day is a group of two route segments.
    let mut rows = Vec::new();
    for ago in 1..=6 {
        for (i, (route, path)) in std::iter::repeat_n(("/cohort/requests/", "/cohort/requests/".to_owned()), 20)
            .chain(std::iter::repeat_n(("/accesses/roles/", "/accesses/roles/".to_owned()), 3))
            .chain((0..2).map(|k| ("/accesses/roles/{id}/", format!("/accesses/roles/{}/", ago * 10 + k))))
            .enumerate()
        {
            let at =
                midnight(ago) + Duration::hours(1) + Duration::minutes(i as i64 * 7 % 60) + Duration::seconds(i as i64);
            rows.push(Row {
                id: micros(at),
                at,
                user: Some("frank"),
                method: "POST",
                path,
                route: Some(route),
                view: route.split('/').nth(2).expect("a view"),
                status: 201,
                query: "",
                data: "{}",
            });
        }
    }
    seed(&app, &rows).await;
    let before = midnight(0) - Duration::microseconds(1);
    let past = "requested_at_before=".to_owned() + &t::iso(before);
    assert_listed(&app, &token, &past, "path_contains=roles", &rows, |r| r.path.contains("roles")).await;
    // A page of 20 spans four days (5 matching rows a day): one Query per route over those days,
    // not one per route and day (8), and rows read in proportion to each route's share.
    let scan = store_scan(Some(midnight(6)), Some(before), Vec::new(), PathFilter::new(Some("roles"), &[]));
    let mut listing = app.state.store.plan_request_logs(&scan).await.expect("a plan");
    // Counted from the route counters (the first counted day's start, before its counter, is probed).
    assert_eq!((listing.count, listing.queries), (30, 1));
    let page = app.state.store.request_logs_page(&scan, &mut listing, 0, 20).await.expect("a page");
    assert_eq!(page.iter().map(|l| l.id).collect::<Vec<_>>(), ids_of(&rows, |r| r.path.contains("roles"))[..20]);
    assert!(listing.queries <= 4, "{} Queries for a page over four days of two routes", listing.queries);
}
