//! A random-input run over every route of the inventory (`dev_server::all_routes`), through the
//! in-process app and the emulator: hostile path parameters, query strings and bodies, sent by an
//! admin, a user with export rights, a user without accesses, the QueryExecutor's key and nobody.
//! No answer may be a 500 (a client's input is never the server's error) nor a panic, and every
//! answer of an operation described by its types must match the document (`support/contract.rs`).
//!
//! Real objects (a folder, request, snapshot, count, cohort and export) are created first and their
//! ids harvested from the lists, so that path parameters also name things that exist. Deterministic
//! for a seed: `FUZZ_SEED` (fixed by default; printed at start), `FUZZ_CASES` (default 1,500; `make fuzz`
//! runs 10,000 with a new seed).
use http::{Method, StatusCode};
use integration_tests::{
    contract::Answers,
    exports::{app_with, csv_request, finished_cohort, user, QE},
    TestApp, ADMIN, ROOT_PERIMETER,
};
use serde_json::{json, Map, Value};

const EXPORT_CSV: i64 = 6;

/// Field names the two apps send somewhere (client contract), plus a few they never send.
const FIELDS: &[&str] = &[
    "name",
    "description",
    "favorite",
    "parent_folder",
    "parent_folder_id",
    "request",
    "request_id",
    "previous_snapshot",
    "previous_snapshot_id",
    "serialized_query",
    "request_query_snapshot",
    "request_query_snapshot_id",
    "dated_measure",
    "dated_measure_id",
    "dated_measure_global",
    "global_estimate",
    "parent_cohort",
    "sampling_ratio",
    "group_id",
    "request_job_status",
    "count",
    "minimum",
    "maximum",
    "extra",
    "message",
    "group.id",
    "group.count",
    "owner",
    "owner_id",
    "shared_user_ids",
    "notify_by_email",
    "uuid",
    "id",
    "perimeter_id",
    "profile_id",
    "role_id",
    "provider_id",
    "start_datetime",
    "end_datetime",
    "username",
    "firstname",
    "lastname",
    "email",
    "password",
    "old_password",
    "new_password",
    "refresh_token",
    "output_format",
    "nominative",
    "shift_dates",
    "motivation",
    "export_tables",
    "table_name",
    "fhir_filter",
    "cohort_result_source",
    "columns",
    "datalab",
    "infrastructure_provider",
    "fhir_resource",
    "filter",
    "fhir_version",
    "identifying",
    "recurrence",
    "scheduled_date",
    "scheduled_time",
    "dated_measure_uuid",
    "subject",
    "title",
    "content",
    "content_type",
    "metadata",
    "maintenance_start",
    "maintenance_end",
    "active",
    "right_full_admin",
    "right_read_patient_nominative",
    "uuids",
    "ids",
    "type",
    "value",
    "export",
    "stageDetails",
    "token",
    "auth_method",
    "zzz_unknown",
];

const WORDS: &[&str] = &[
    "",
    " ",
    "a",
    "null",
    "true",
    "false",
    "-1",
    "0",
    "1",
    "99999999999999999999",
    "1e309",
    "NaN",
    "../..",
    "%",
    "'; DROP TABLE x; --",
    "<script>alert(1)</script>",
    "\u{0000}",
    "é🙂",
    "2026-13-45",
    "2026-01-01T00:00:00Z",
    "2026-01-01",
    "25:61",
    ",",
    "1,2,3",
    "-name",
    "name",
    "-created_at",
    "csv",
    "xlsx",
    "hive",
    "FINISHED",
    "finished",
    "pending",
    "Patient",
    "=SUM(A1)",
    "admin",
    "JWT",
    "OIDC",
];

const PARAMS: &[&str] = &[
    "limit",
    "offset",
    "page",
    "page_size",
    "ordering",
    "search",
    "group_id",
    "perimeters_ids",
    "perimeter_id",
    "type_source_value",
    "local_id",
    "expiring",
    "manual_only",
    "with_access",
    "status",
    "output_format",
    "request_job_status",
    "owner",
    "owner_id",
    "fhir_resource",
    "name",
    "uuid",
    "created_at_gte",
    "created_at_lte",
    "insert_datetime_gte",
    "insert_datetime_lte",
    "request_id",
    "request_query_snapshot",
    "cohort_id",
    "user",
    "method",
    "status_code",
    "path_contains",
    "from",
    "to",
    "mode",
    "cohort",
    "return_full_objects",
    "identifying",
    "is_valid",
    "target_perimeter_id",
    "source_perimeter_id",
    "include_parents",
    "nominative",
    "profile_id",
];

/// A small deterministic generator (xorshift64*): the run is repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Inputs {
    /// Ids of real objects (uuids, numeric ids, usernames) found in the lists.
    ids: Vec<String>,
}

impl Inputs {
    fn word(&self, rng: &mut Rng) -> String {
        match rng.below(6) {
            0 if !self.ids.is_empty() => rng.pick(&self.ids).clone(),
            1 => uuid::Uuid::from_u64_pair(rng.next(), rng.next()).to_string(),
            2 => (rng.next() as i64 % 100_000).to_string(),
            3 => "x".repeat(rng.below(400)),
            _ => rng.pick(WORDS).to_string(),
        }
    }

    fn value(&self, rng: &mut Rng, depth: usize) -> Value {
        match rng.below(if depth > 3 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(rng.chance(50)),
            2 => json!(*rng.pick(&[0i64, -1, 1, 42, i64::MAX, i64::MIN])),
            3 => json!(*rng.pick(&[0.5f64, -0.0, 1e308, 3.0])),
            4 | 5 => json!(self.word(rng)),
            6 => json!((0..rng.below(4)).map(|_| self.value(rng, depth + 1)).collect::<Vec<_>>()),
            _ => Value::Object(self.object(rng, depth + 1)),
        }
    }

    fn object(&self, rng: &mut Rng, depth: usize) -> Map<String, Value> {
        (0..rng.below(7)).map(|_| (rng.pick(FIELDS).to_string(), self.value(rng, depth))).collect()
    }

    fn path(&self, rng: &mut Rng, template: &str) -> String {
        template
            .split('/')
            .map(|segment| match segment.starts_with('{') {
                true if rng.chance(10) => {
                    let ids: Vec<String> = (0..1 + rng.below(3)).map(|_| self.word(rng)).collect();
                    encoded(&ids.join(","))
                }
                true => encoded(&self.word(rng)),
                false => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn query(&self, rng: &mut Rng) -> String {
        let pairs: Vec<String> =
            (0..rng.below(5)).map(|_| format!("{}={}", rng.pick(PARAMS), encoded(&self.word(rng)))).collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

/// Every uuid, numeric id and username in an answer.
fn harvest(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if uuid::Uuid::parse_str(s).is_ok() || key == "username" || key == "id" => {
                        into.push(s.clone())
                    }
                    Value::Number(n) if key.ends_with("id") => into.push(n.to_string()),
                    _ => harvest(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| harvest(v, into)),
        _ => {}
    }
}

#[tokio::test]
async fn no_input_makes_a_route_answer_500() {
    let cases: usize = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_500);
    // A fixed seed by default, so that `make test` is repeatable; `make fuzz` draws a new one each run.
    let seed: u64 =
        std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).filter(|s| *s != 0).unwrap_or(20261205);
    eprintln!("[fuzz] seed {seed}, {cases} cases (FUZZ_SEED={seed} replays this run)");
    let mut rng = Rng(seed);

    let app: TestApp = app_with(&[]).await;
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let nobody = user(&app, "fuzzy", None, ROOT_PERIMETER).await;
    let (admin, _) = app.login(ADMIN).await;
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g-fuzz").await;
    let (status, _) =
        app.call(Method::POST, "/exports/").token(&alice).json(csv_request(&cohort, &["person"])).send().await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, specs) = dev_server::all_routes(&app.state);
    let mut ids = Vec::new();
    for spec in specs.iter().filter(|s| s.method == Method::GET && !s.path.contains('{')) {
        for token in [&admin, &alice] {
            let (_, body) = app.call(Method::GET, spec.path).token(token).send().await;
            harvest(&body, &mut ids);
        }
    }
    ids.sort();
    ids.dedup();
    let inputs = Inputs { ids };
    let callers: [Option<&str>; 4] = [Some(&admin), Some(&alice), Some(&nobody), None];
    let methods = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let static_paths: Vec<&str> = specs.iter().map(|s| s.path).filter(|p| !p.contains('{')).collect();
    let mut answers = Answers::default();
    for case in 0..cases {
        let spec = rng.pick(&specs);
        let method = if rng.chance(85) { spec.method.clone() } else { rng.pick(&methods).clone() };
        let path = format!("{}{}", inputs.path(&mut rng, spec.path), inputs.query(&mut rng));
        let mut call = app.call(method.clone(), &path);
        let caller = match rng.below(10) {
            0 => {
                call = call.header("authorization", QE);
                "the QueryExecutor"
            }
            n => match callers[n % callers.len()] {
                Some(token) => {
                    call = call.token(token);
                    "a user"
                }
                None => "nobody",
            },
        };
        let body = match rng.below(10) {
            0..=5 => Value::Object(inputs.object(&mut rng, 0)).to_string(),
            6 => inputs.value(&mut rng, 0).to_string(),
            7 => format!("{}{}", "[".repeat(300), "]".repeat(300)),
            8 => "{\"name\": ".to_owned(),
            _ => String::new(),
        };
        let content_type = if rng.chance(90) { "application/json" } else { "text/plain" };
        let (status, headers, answer) = call.raw(content_type, body.clone()).send_full().await;
        *statuses.entry(status.as_u16()).or_default() += 1;
        // A typed operation's answer must be what the document says (when the path reached it).
        let reached = !static_paths.contains(&path.split('?').next().unwrap_or_default());
        if spec.doc.is_some() && method == spec.method && reached {
            answers.note(&method, spec.path, status, &headers, &answer);
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let shown: String = body.chars().take(300).collect();
            failures.push(format!("case {case}: {method} {path} by {caller}, body {shown} -> {status} {answer}"));
        }
    }
    eprintln!("[fuzz] statuses: {statuses:?}");
    assert!(failures.is_empty(), "{} answers were 500 (seed {seed}):\n{}", failures.len(), failures.join("\n"));
    let (_, document) = app.call(Method::GET, "/schema").send().await;
    match answers.check(&document) {
        Ok(report) => eprintln!("[fuzz] {report}"),
        Err(report) => panic!("typed operations answered what /schema does not say (seed {seed}):\n{report}"),
    }
}
