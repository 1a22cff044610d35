//! Query snapshots, counts and cohorts end to end (spec §0.9–§0.14, §4.11, §5.1, §5.2, §5.5–§5.7, §5.11;
//! client contract §4, §5.3, §5.4, §8.1, §10): versioned queries, sharing, the jobs queued for the
//! worker, QueryExecutor / Solr ETL callbacks, samples, cohort lists, the public active-jobs counter,
//! rights on cohorts and the soft-delete cascade from a request.
use http::{Method, StatusCode};
use integration_tests::cohort::{app_with_alice, delete, get, keys, names, patch, post, query, uuid_of};
use integration_tests::TestApp;
use serde_json::{json, Value};
use uuid::Uuid;

const QE: &str = "Bearer test-qe-token";
const ETL: &str = "Bearer test-etl-token";
const NO_SNAPSHOT: &str = "No RequestQuerySnapshot matches the given query.";
const NO_MEASURE: &str = "No DatedMeasure matches the given query.";
const NO_COHORT: &str = "No CohortResult matches the given query.";
const FORBIDDEN: &str = "You do not have permission to perform this action.";

fn not_found(detail: &str) -> (StatusCode, Value) {
    (StatusCode::NOT_FOUND, json!({ "detail": detail }))
}

fn forbidden() -> (StatusCode, Value) {
    (StatusCode::FORBIDDEN, json!({ "detail": FORBIDDEN }))
}

fn bare(message: &str) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!(message))
}

fn invalid_pk(field: &str, pk: &str) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!({ field: [format!("Invalid pk \"{pk}\" - object does not exist.")] }))
}

fn not_allowed(method: &str) -> (StatusCode, Value) {
    (StatusCode::METHOD_NOT_ALLOWED, json!({ "detail": format!("Method \"{method}\" not allowed.") }))
}

/// A call as an applicative actor (API key, no `authorizationMethod`).
async fn as_app(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let call = app.call(method, path).header("authorization", key);
    match body {
        Some(body) => call.json(body).send().await,
        None => call.send().await,
    }
}

/// The public active-jobs counter, read without any credentials.
async fn active_jobs(app: &TestApp) -> i64 {
    let (status, body) = app.call(Method::GET, "/cohort/cohorts/jobs/active/").send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["jobs_count"], "{body}");
    body["jobs_count"].as_i64().unwrap_or_else(|| panic!("jobs_count is an integer: {body}"))
}

fn uuids(list: &Value) -> Vec<String> {
    list["results"].as_array().unwrap_or_else(|| panic!("an envelope: {list}")).iter().map(uuid_of).collect()
}

/// `str(timedelta)`: `H:MM:SS` or `H:MM:SS.ffffff`.
fn is_python_duration(value: &Value) -> bool {
    let Some(s) = value.as_str() else { return false };
    let (clock, fraction) = s.split_once('.').unwrap_or((s, ""));
    let parts: Vec<&str> = clock.split(':').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
        && parts[1].len() == 2
        && parts[2].len() == 2
        && (fraction.is_empty() && !s.contains('.')
            || fraction.len() == 6 && fraction.chars().all(|c| c.is_ascii_digit()))
}

/// Python's `str(datetime)` of an ISO `…Z` datetime: space separator, microseconds unless zero, `+00:00`.
fn python_str(iso: &str) -> String {
    let base = iso.strip_suffix('Z').unwrap_or_else(|| panic!("an ISO UTC datetime: {iso}")).replacen('T', " ", 1);
    let base = base.strip_suffix(".000000").map(str::to_owned).unwrap_or(base);
    format!("{base}+00:00")
}

/// Jobs queued so far, sorted by kind (the queue does not promise an order).
async fn jobs(app: &TestApp) -> Vec<Value> {
    let mut jobs = app.queued_jobs().await;
    jobs.sort_by_key(|j| j["kind"].as_str().unwrap_or_default().to_owned());
    jobs
}

/// A folder and a request in it; returns the request's uuid.
async fn request(app: &TestApp, token: &str, name: &str) -> String {
    let (status, folder) = post(app, token, "/cohort/folders/", json!({"name": format!("Projet {name}")})).await;
    assert_eq!(status, StatusCode::CREATED, "{folder}");
    let body = json!({"name": name, "description": format!("À propos de {name}"), "parent_folder": uuid_of(&folder)});
    let (status, created) = post(app, token, "/cohort/requests/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    uuid_of(&created)
}

/// The first version of a request's query.
async fn first_snapshot(app: &TestApp, token: &str, request: &str, serialized_query: &str) -> Value {
    let body = json!({"request_id": request, "serialized_query": serialized_query});
    let (status, created) = post(app, token, "/cohort/request-query-snapshots/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// A count of a snapshot (its job is left on the queue).
async fn count(app: &TestApp, token: &str, snapshot: &str) -> String {
    let body = json!({"request_query_snapshot_id": snapshot, "stageDetails": null});
    let (status, created) = post(app, token, "/cohort/dated-measures/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    uuid_of(&created)
}

/// The QueryExecutor reports a finished count.
async fn finish_count(app: &TestApp, measure: &str, n: i64) -> Value {
    let path = format!("/cohort/dated-measures/{measure}/");
    let body = json!({"request_job_status": "FINISHED", "count": n.to_string(), "extra": {}});
    let (status, updated) = as_app(app, QE, Method::PATCH, &path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    updated
}

/// A request with one snapshot on `cohort_ids` and a finished count of `n`: `(request, snapshot, count)`.
async fn counted(
    app: &TestApp,
    token: &str,
    name: &str,
    cohort_ids: Value,
    n: Option<i64>,
) -> (String, String, String) {
    let r = request(app, token, name).await;
    let s = uuid_of(&first_snapshot(app, token, &r, &query(cohort_ids)).await);
    let m = count(app, token, &s).await;
    if let Some(n) = n {
        finish_count(app, &m, n).await;
    }
    (r, s, m)
}

/// A regular cohort; returns its creation body.
async fn cohort(app: &TestApp, token: &str, name: &str, snapshot: &str, measure: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": name,
        "description": format!("Cohorte {name}"),
        "request_query_snapshot_id": snapshot,
        "dated_measure_id": measure,
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, created) = post(app, token, "/cohort/cohorts/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// A QueryExecutor / ETL callback on a cohort that must be accepted.
async fn callback(app: &TestApp, key: &str, cohort: &str, body: Value) -> Value {
    let (status, updated) = as_app(app, key, Method::PATCH, &format!("/cohort/cohorts/{cohort}/"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    updated
}

const DATED_MEASURE_KEYS: [&str; 20] = [
    "cohort_limit",
    "count_outdated",
    "count_task_id",
    "created_at",
    "deleted",
    "deleted_by_cascade",
    "extra",
    "fhir_datetime",
    "measure",
    "measure_max",
    "measure_min",
    "mode",
    "modified_at",
    "owner",
    "request_job_duration",
    "request_job_fail_msg",
    "request_job_id",
    "request_job_status",
    "request_query_snapshot",
    "uuid",
];

const COHORT_KEYS: [&str; 16] = [
    "created_at",
    "description",
    "favorite",
    "group_id",
    "modified_at",
    "name",
    "owner",
    "parent_cohort",
    "request",
    "request_job_duration",
    "request_job_fail_msg",
    "request_job_status",
    "request_query_snapshot",
    "sample_cohorts",
    "sampling_ratio",
    "uuid",
];

const ANNOTATED_COHORT_KEYS: [&str; 20] = [
    "created_at",
    "description",
    "exportable",
    "favorite",
    "group_id",
    "measure_max",
    "measure_min",
    "modified_at",
    "name",
    "owner",
    "parent_cohort",
    "request",
    "request_job_duration",
    "request_job_fail_msg",
    "request_job_status",
    "request_query_snapshot",
    "result_size",
    "sample_cohorts",
    "sampling_ratio",
    "uuid",
];

async fn app_with_alice_and_bob() -> (TestApp, String, String) {
    let (app, alice) = app_with_alice().await;
    app.account("bob", None).await;
    let (bob, _) = app.login("bob").await;
    (app, alice, bob)
}

// ---------------------------------------------------------------------------------------------------
// Snapshots (spec §5.5)
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn snapshot_versions_extract_perimeters_and_keep_the_query_verbatim() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Diabète").await;
    // Odd spacing, key order, escapes and accents: the text is stored and returned byte for byte.
    let text = "{\"version\":\"v1.6.1\",  \"_type\": \"request\",\n \"sourcePopulation\": {\"caresiteCohortList\": [\"4\", 12, \"007\"]},\
                \"request\": {\"_type\": \"andGroup\", \"_id\": 0, \"isInclusive\": true, \"name\": \"S\\u00e9jour été\", \"criteria\": []}}\n";
    let (status, v1) =
        post(&app, &alice, "/cohort/request-query-snapshots/", json!({"request_id": r, "serialized_query": text}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(
        keys(&v1),
        [
            "cohort_results",
            "created_at",
            "dated_measures",
            "modified_at",
            "name",
            "owner",
            "perimeters_ids",
            "previous_snapshot",
            "request",
            "serialized_query",
            "uuid",
            "version"
        ]
    );
    assert_eq!(v1["serialized_query"], json!(text), "returned verbatim, as a string");
    assert_eq!(v1["perimeters_ids"], json!(["4", "12", "007"]));
    assert_eq!(
        (&v1["version"], &v1["request"], &v1["previous_snapshot"], &v1["owner"], &v1["name"]),
        (&json!(1), &json!(r), &Value::Null, &json!("alice"), &Value::Null)
    );
    assert_eq!((&v1["dated_measures"], &v1["cohort_results"]), (&json!([]), &json!([])));
    assert!(v1["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{v1}");
    let v1_uuid = uuid_of(&v1);
    assert_eq!(
        get(&app, &alice, &format!("/cohort/request-query-snapshots/{v1_uuid}/")).await,
        (StatusCode::OK, v1.clone())
    );

    // A request that already has a version needs `previous_snapshot`.
    let again = json!({"request_id": r, "serialized_query": query(json!([1]))});
    assert_eq!(
        post(&app, &alice, "/cohort/request-query-snapshots/", again).await,
        bare("Must provide a `previous_snapshot` if the request already has snapshots")
    );

    let next = json!({"previous_snapshot_id": v1_uuid, "serialized_query": query(json!([1, "2"])), "name": "v2"});
    let (status, v2) = post(&app, &alice, "/cohort/request-query-snapshots/", next).await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(
        (&v2["version"], &v2["request"], &v2["previous_snapshot"], &v2["perimeters_ids"], &v2["name"]),
        (&json!(2), &json!(r), &json!(v1_uuid), &json!(["1", "2"]), &json!("v2"))
    );
    let v2_uuid = uuid_of(&v2);
    let next = json!({"previous_snapshot_id": v2_uuid, "serialized_query": query(json!([]))});
    let (status, v3) = post(&app, &alice, "/cohort/request-query-snapshots/", next).await;
    assert_eq!((status, &v3["version"], &v3["perimeters_ids"]), (StatusCode::CREATED, &json!(3), &json!([])), "{v3}");
    // Branching from an older version still numbers after every version of the request.
    let branch = json!({"previous_snapshot": v1_uuid, "serialized_query": query(json!(["3"]))});
    let (status, v4) = post(&app, &alice, "/cohort/request-query-snapshots/", branch).await;
    assert_eq!((status, &v4["version"], &v4["previous_snapshot"]), (StatusCode::CREATED, &json!(4), &json!(v1_uuid)));

    // Filters of the list.
    let (status, list) =
        get(&app, &alice, &format!("/cohort/request-query-snapshots/?previous_snapshot={v1_uuid}")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut found = uuids(&list);
    found.sort();
    let mut expected = vec![v2_uuid.clone(), uuid_of(&v4)];
    expected.sort();
    assert_eq!(found, expected);
    let (_, list) = get(&app, &alice, &format!("/cohort/request-query-snapshots/?request={r}")).await;
    assert_eq!(list["count"], 4, "{list}");
    let (_, list) = get(&app, &alice, "/cohort/request-query-snapshots/?name=v2").await;
    assert_eq!(uuids(&list), vec![v2_uuid.clone()]);
}

#[tokio::test]
async fn the_request_summarises_its_versions_newest_first_with_counts_and_python_updated_at() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Résumé").await;
    let v1 = uuid_of(&first_snapshot(&app, &alice, &r, &query(json!(["4"]))).await);
    let m = count(&app, &alice, &v1).await;
    finish_count(&app, &m, 123).await;
    cohort(&app, &alice, "Sur v1", &v1, &m, json!({})).await;
    let (status, v2) = post(
        &app,
        &alice,
        "/cohort/request-query-snapshots/",
        json!({"previous_snapshot_id": v1, "serialized_query": query(json!(["4", "5"]))}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");

    let (status, body) = get(&app, &alice, &format!("/cohort/requests/{r}/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let summaries = body["query_snapshots"].as_array().unwrap();
    assert_eq!(summaries.len(), 2, "{body}");
    assert_eq!(keys(&summaries[0]), ["cohorts_count", "created_at", "name", "patients_count", "uuid", "version"]);
    assert_eq!(
        (
            &summaries[0]["uuid"],
            &summaries[0]["version"],
            &summaries[0]["cohorts_count"],
            &summaries[0]["patients_count"]
        ),
        (&v2["uuid"], &json!(2), &json!(0), &Value::Null)
    );
    assert_eq!(
        (
            &summaries[1]["uuid"],
            &summaries[1]["version"],
            &summaries[1]["cohorts_count"],
            &summaries[1]["patients_count"]
        ),
        (&json!(v1), &json!(1), &json!(1), &json!(123))
    );
    let updated_at = body["updated_at"].as_str().unwrap_or_else(|| panic!("updated_at is a string: {body}"));
    assert_eq!(updated_at, python_str(v2["created_at"].as_str().unwrap()), "str() of the newest snapshot's creation");
    assert!(updated_at.ends_with("+00:00") && updated_at.as_bytes()[10] == b' ', "{updated_at}");
    // The lists carry the same summary.
    let (_, list) = get(&app, &alice, "/cohort/requests/?limit=5&ordering=-updated_at").await;
    assert_eq!(list["results"][0]["query_snapshots"], body["query_snapshots"]);
    assert_eq!(list["results"][0]["updated_at"], json!(updated_at));
}

#[tokio::test]
async fn snapshot_creation_errors_are_bare_strings_checked_in_order() {
    let (app, alice) = app_with_alice().await;
    let fresh = request(&app, &alice, "Vierge").await;
    let used = request(&app, &alice, "Utilisée").await;
    let v1 = uuid_of(&first_snapshot(&app, &alice, &used, &query(json!(["1"]))).await);
    let good = query(json!(["1"]));
    let cases = [
        (json!({"serialized_query": good}), "Neither `previous_snapshot` nor `request` were provided"),
        (
            json!({"request": null, "previous_snapshot": null, "serialized_query": good}),
            "Neither `previous_snapshot` nor `request` were provided",
        ),
        // [quirk] kept: sending both always fails, even when they agree.
        (
            json!({"request_id": used, "previous_snapshot_id": v1, "serialized_query": good}),
            "The provided request is different from the previous_snapshot's request",
        ),
        (
            json!({"request": used, "previous_snapshot": v1}),
            "The provided request is different from the previous_snapshot's request",
        ),
        // The request check comes before the query checks.
        (json!({"request_id": used}), "Must provide a `previous_snapshot` if the request already has snapshots"),
        (json!({"request_id": fresh}), "serialized_query is required"),
        (json!({"request_id": fresh, "serialized_query": null}), "serialized_query is required"),
        (
            json!({"previous_snapshot_id": v1, "serialized_query": {"sourcePopulation": {}}}),
            "serialized_query is required",
        ),
        (json!({"previous_snapshot_id": v1, "serialized_query": 12}), "serialized_query is required"),
        (
            json!({"request_id": fresh, "serialized_query": "{}"}),
            "Error extracting perimeters ids from JSON query - 'sourcePopulation'",
        ),
        (
            json!({"request_id": fresh, "serialized_query": "{\"sourcePopulation\": {}}"}),
            "Error extracting perimeters ids from JSON query - 'caresiteCohortList'",
        ),
    ];
    for (body, message) in cases {
        assert_eq!(post(&app, &alice, "/cohort/request-query-snapshots/", body.clone()).await, bare(message), "{body}");
    }
    for text in ["not json", "{\"sourcePopulation\": ", ""] {
        let (status, body) = post(
            &app,
            &alice,
            "/cohort/request-query-snapshots/",
            json!({"request_id": fresh, "serialized_query": text}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert!(
            body.as_str().is_some_and(|s| s.starts_with("Error extracting perimeters ids from JSON query - ")),
            "{text:?}: {body}"
        );
    }
    // Unknown relations are field errors (the original answers 500).
    let ghost = Uuid::new_v4().to_string();
    let body = json!({"previous_snapshot_id": ghost, "serialized_query": good});
    assert_eq!(
        post(&app, &alice, "/cohort/request-query-snapshots/", body).await,
        invalid_pk("previous_snapshot", &ghost)
    );
    let body = json!({"request_id": ghost, "serialized_query": good});
    assert_eq!(post(&app, &alice, "/cohort/request-query-snapshots/", body).await, invalid_pk("request", &ghost));
    // The owner rule.
    let body = json!({"request_id": fresh, "serialized_query": good, "owner": "bob"});
    assert_eq!(post(&app, &alice, "/cohort/request-query-snapshots/", body).await, invalid_pk("owner", "bob"));

    // Nothing was created by the refused calls.
    let (_, list) = get(&app, &alice, "/cohort/request-query-snapshots/").await;
    assert_eq!(uuids(&list), vec![v1.clone()]);
    let (_, fresh_body) = get(&app, &alice, &format!("/cohort/requests/{fresh}/")).await;
    assert_eq!((&fresh_body["query_snapshots"], &fresh_body["updated_at"]), (&json!([]), &Value::Null));
}

#[tokio::test]
async fn nested_snapshot_routes_take_the_request_or_the_previous_version_from_the_url() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Imbriquée").await;
    let other = request(&app, &alice, "Autre").await;
    let of_r = format!("/cohort/requests/{r}/query-snapshots/");

    let (status, v1) = post(&app, &alice, &of_r, json!({"serialized_query": query(json!([4]))})).await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!((&v1["request"], &v1["version"], &v1["perimeters_ids"]), (&json!(r), &json!(1), &json!(["4"])));
    let v1_uuid = uuid_of(&v1);
    // The URL's request wins over the body's.
    let body = json!({"request_id": other, "serialized_query": query(json!([4]))});
    assert_eq!(
        post(&app, &alice, &of_r, body).await,
        bare("Must provide a `previous_snapshot` if the request already has snapshots")
    );

    let after_v1 = format!("/cohort/request-query-snapshots/{v1_uuid}/next-snapshots/");
    let (status, v2) = post(&app, &alice, &after_v1, json!({"serialized_query": query(json!([5]))})).await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!((&v2["request"], &v2["version"], &v2["previous_snapshot"]), (&json!(r), &json!(2), &json!(v1_uuid)));
    let v2_uuid = uuid_of(&v2);
    let other_v1 = uuid_of(&first_snapshot(&app, &alice, &other, &query(json!([6]))).await);

    let (status, list) = get(&app, &alice, &of_r).await;
    assert_eq!((status, list["count"].clone()), (StatusCode::OK, json!(2)), "{list}");
    let mut found = uuids(&list);
    found.sort();
    let mut expected = vec![v1_uuid.clone(), v2_uuid.clone()];
    expected.sort();
    assert_eq!(found, expected);
    let (_, list) = get(&app, &alice, &after_v1).await;
    assert_eq!(uuids(&list), vec![v2_uuid.clone()]);
    let (_, list) = get(&app, &alice, &format!("/cohort/request-query-snapshots/{v2_uuid}/next-snapshots/")).await;
    assert_eq!((list["count"].clone(), list["results"].clone()), (json!(0), json!([])));
    let (_, list) = get(&app, &alice, "/cohort/request-query-snapshots/").await;
    assert_eq!(list["count"], 3);

    // Object routes under a request only see that request's versions.
    let (status, read) = get(&app, &alice, &format!("{of_r}{v2_uuid}/")).await;
    assert_eq!((status, read["uuid"].clone()), (StatusCode::OK, json!(v2_uuid)));
    assert_eq!(get(&app, &alice, &format!("{of_r}{other_v1}/")).await, not_found(NO_SNAPSHOT));
    assert_eq!(patch(&app, &alice, &format!("{of_r}{other_v1}/"), json!({"name": "x"})).await, not_found(NO_SNAPSHOT));
    let (status, renamed) = patch(&app, &alice, &format!("{of_r}{v1_uuid}/"), json!({"name": "Première"})).await;
    assert_eq!((status, renamed["name"].clone()), (StatusCode::OK, json!("Première")), "{renamed}");
}

#[tokio::test]
async fn snapshot_patch_renames_and_replaces_the_query_and_there_is_no_delete() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Éditée").await;
    let original = query(json!(["4"]));
    let v1 = first_snapshot(&app, &alice, &r, &original).await;
    let path = format!("/cohort/request-query-snapshots/{}/", uuid_of(&v1));

    let (status, renamed) = patch(&app, &alice, &path, json!({"name": "Version propre"})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(
        (&renamed["name"], &renamed["serialized_query"], &renamed["version"], &renamed["created_at"]),
        (&json!("Version propre"), &json!(original), &json!(1), &v1["created_at"])
    );
    let new_text = "{\"sourcePopulation\": {\"caresiteCohortList\": [\"5\"]},   \"request\": {}}";
    let (status, edited) = patch(&app, &alice, &path, json!({"serialized_query": new_text})).await;
    assert_eq!(
        (status, &edited["serialized_query"], &edited["name"]),
        (StatusCode::OK, &json!(new_text), &json!("Version propre"))
    );
    let (status, read) = get(&app, &alice, &path).await;
    assert_eq!((status, &read["serialized_query"]), (StatusCode::OK, &json!(new_text)));
    // A second edit keeps the newest text too (each edit archives the previous one).
    let newest = query(json!(["6"]));
    let (status, _) = patch(&app, &alice, &path, json!({"serialized_query": newest})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(&app, &alice, &path).await.1["serialized_query"], json!(newest));
    // The owner rule applies to PATCH as well.
    assert_eq!(patch(&app, &alice, &path, json!({"owner": "bob"})).await, invalid_pk("owner", "bob"));

    assert_eq!(delete(&app, &alice, &path).await, not_allowed("DELETE"));
    assert_eq!(get(&app, &alice, &path).await.0, StatusCode::OK, "a refused DELETE deletes nothing");
}

#[tokio::test]
async fn another_users_snapshots_counts_and_cohorts_are_404_and_refused_as_relations() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let (r, s, m) = counted(&app, &alice, "Privée", json!(["4"]), Some(10)).await;
    let c = uuid_of(&cohort(&app, &alice, "Privée", &s, &m, json!({})).await);
    let bobs_request = request(&app, &bob, "À Bob").await;
    app.queued_jobs().await;

    let snapshot_path = format!("/cohort/request-query-snapshots/{s}/");
    assert_eq!(get(&app, &bob, &snapshot_path).await, not_found(NO_SNAPSHOT));
    assert_eq!(patch(&app, &bob, &snapshot_path, json!({"name": "Volée"})).await, not_found(NO_SNAPSHOT));
    assert_eq!(get(&app, &bob, &format!("/cohort/requests/{r}/query-snapshots/{s}/")).await, not_found(NO_SNAPSHOT));
    assert_eq!(
        post(&app, &bob, &format!("{snapshot_path}share/"), json!({"recipients": "bob"})).await,
        not_found(NO_SNAPSHOT)
    );
    let (status, list) = get(&app, &bob, &format!("{snapshot_path}next-snapshots/")).await;
    assert_eq!((status, list["count"].clone()), (StatusCode::OK, json!(0)));
    let (_, list) = get(&app, &bob, "/cohort/request-query-snapshots/").await;
    assert_eq!(list["count"], 0);
    // Relations only accept the caller's objects (spec §0.14; the original answers 500 here).
    let body = json!({"previous_snapshot_id": s, "serialized_query": query(json!([1]))});
    assert_eq!(post(&app, &bob, "/cohort/request-query-snapshots/", body).await, invalid_pk("previous_snapshot", &s));
    let body = json!({"serialized_query": query(json!([1]))});
    assert_eq!(
        post(&app, &bob, &format!("{snapshot_path}next-snapshots/"), body).await,
        invalid_pk("previous_snapshot", &s)
    );
    let body = json!({"request_id": r, "serialized_query": query(json!([1]))});
    assert_eq!(post(&app, &bob, "/cohort/request-query-snapshots/", body).await, invalid_pk("request", &r));
    let bobs_v1 = uuid_of(&first_snapshot(&app, &bob, &bobs_request, &query(json!([1]))).await);
    let body = json!({"request": r});
    assert_eq!(
        patch(&app, &bob, &format!("/cohort/request-query-snapshots/{bobs_v1}/"), body).await,
        invalid_pk("request", &r)
    );

    // Counts.
    let measure_path = format!("/cohort/dated-measures/{m}/");
    assert_eq!(get(&app, &bob, &measure_path).await, not_found(NO_MEASURE));
    assert_eq!(patch(&app, &bob, &measure_path, json!({"request_job_status": "ERROR"})).await, not_found(NO_MEASURE));
    let (_, list) = get(&app, &bob, "/cohort/dated-measures/").await;
    assert_eq!(list["count"], 0);
    let body = json!({"request_query_snapshot_id": s, "request_id": r, "stageDetails": null});
    assert_eq!(post(&app, &bob, "/cohort/dated-measures/", body).await, invalid_pk("request_query_snapshot", &s));

    // Cohorts.
    let cohort_path = format!("/cohort/cohorts/{c}/");
    assert_eq!(get(&app, &bob, &cohort_path).await, not_found(NO_COHORT));
    assert_eq!(patch(&app, &bob, &cohort_path, json!({"name": "Volée"})).await, not_found(NO_COHORT));
    assert_eq!(delete(&app, &bob, &cohort_path).await, not_found(NO_COHORT));
    let (_, list) = get(&app, &bob, "/cohort/cohorts/").await;
    assert_eq!(list["count"], 0);
    let body = json!({"name": "x", "request_query_snapshot_id": s, "dated_measure_id": m});
    let (status, errors) = post(&app, &bob, "/cohort/cohorts/", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{errors}");
    assert_eq!(errors["request_query_snapshot"], invalid_pk("request_query_snapshot", &s).1["request_query_snapshot"]);
    assert_eq!(errors["dated_measure"], invalid_pk("dated_measure", &m).1["dated_measure"]);
    let body = json!({"name": "x", "parent_cohort": c, "sampling_ratio": 0.5});
    assert_eq!(post(&app, &bob, "/cohort/cohorts/", body).await, invalid_pk("parent_cohort", &c));

    // The refused calls queued nothing and left Alice's objects as they were.
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new());
    let (_, read) = get(&app, &alice, &cohort_path).await;
    assert_eq!((&read["name"], &read["request_job_status"]), (&json!("Privée"), &json!("new")));
    assert_eq!(get(&app, &alice, &measure_path).await.1["measure"], 10);
}

// ---------------------------------------------------------------------------------------------------
// Sharing (spec §5.5 share)
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn sharing_copies_the_request_into_each_recipients_received_folder() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    app.account("carol", None).await;
    let (carol, _) = app.login("carol").await;
    let r = request(&app, &alice, "Originale").await;
    let text = query(json!(["4", 11]));
    let v1 = uuid_of(&first_snapshot(&app, &alice, &r, &text).await);
    let (status, v2) = post(
        &app,
        &alice,
        "/cohort/request-query-snapshots/",
        json!({"previous_snapshot_id": v1, "serialized_query": text, "name": "Version 2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    let share = format!("/cohort/request-query-snapshots/{}/share/", uuid_of(&v2));

    let body = json!({"recipients": "bob,carol", "name": "Copie", "notify_by_email": true});
    assert_eq!(post(&app, &alice, &share, body).await, (StatusCode::CREATED, Value::Null));

    for (token, recipient) in [(&bob, "bob"), (&carol, "carol")] {
        let (_, folders) = get(&app, token, "/cohort/folders/").await;
        assert_eq!(names(&folders), ["Mes requêtes reçues"], "{folders}");
        let (_, requests) = get(&app, token, "/cohort/requests/").await;
        assert_eq!(requests["count"], 1, "{requests}");
        let copy = &requests["results"][0];
        assert_eq!(
            (&copy["name"], &copy["description"], &copy["favorite"], &copy["shared_by"]),
            (&json!("Copie"), &json!("À propos de Originale"), &json!(false), &json!("Test Useralice (alice)"))
        );
        assert_eq!(copy["parent_folder"]["uuid"], folders["results"][0]["uuid"]);
        let snapshots = copy["query_snapshots"].as_array().unwrap();
        assert_eq!(snapshots.len(), 1, "{copy}");
        assert_eq!((&snapshots[0]["version"], &snapshots[0]["name"]), (&json!(1), &json!("Version 2")));
        let (status, snapshot) =
            get(&app, token, &format!("/cohort/request-query-snapshots/{}/", uuid_of(&snapshots[0]))).await;
        assert_eq!(status, StatusCode::OK, "{snapshot}");
        assert_eq!(
            (
                &snapshot["serialized_query"],
                &snapshot["perimeters_ids"],
                &snapshot["previous_snapshot"],
                &snapshot["version"]
            ),
            (&json!(text), &json!(["4", "11"]), &Value::Null, &json!(1))
        );
        assert_eq!((&snapshot["owner"], &snapshot["request"]), (&json!(recipient), &copy["uuid"]));
        // The copy is the recipient's: they can save the next version of it.
        let body = json!({"previous_snapshot_id": snapshot["uuid"], "serialized_query": query(json!([1]))});
        let (status, next) = post(&app, token, "/cohort/request-query-snapshots/", body).await;
        assert_eq!((status, &next["version"]), (StatusCode::CREATED, &json!(2)), "{next}");
    }
    // The filter on the sharer.
    let (_, shared) = get(&app, &bob, "/cohort/requests/?shared_by=alice").await;
    assert_eq!(shared["count"], 1);

    // A second share reuses the folder; without a name, the source request's name is used.
    assert_eq!(post(&app, &alice, &share, json!({"recipients": "bob"})).await, (StatusCode::CREATED, Value::Null));
    let (_, folders) = get(&app, &bob, "/cohort/folders/").await;
    assert_eq!(
        (names(&folders), &folders["results"][0]["requests_count"]),
        (vec!["Mes requêtes reçues".to_owned()], &json!(2))
    );
    let (_, requests) = get(&app, &bob, "/cohort/requests/?ordering=name").await;
    assert_eq!(names(&requests), ["Copie", "Originale"]);
    // The sharer may include themself.
    assert_eq!(post(&app, &alice, &share, json!({"recipients": "alice"})).await, (StatusCode::CREATED, Value::Null));
    let (_, folders) = get(&app, &alice, "/cohort/folders/?ordering=name").await;
    assert_eq!(names(&folders), ["Mes requêtes reçues", "Projet Originale"]);
    // Alice's own request is untouched.
    let (_, original) = get(&app, &alice, &format!("/cohort/requests/{r}/")).await;
    assert_eq!(
        (&original["name"], &original["shared_by"], original["query_snapshots"].as_array().unwrap().len()),
        (&json!("Originale"), &Value::Null, 2)
    );
}

#[tokio::test]
async fn sharing_needs_known_recipients() {
    let (app, alice) = app_with_alice().await;
    app.account("bob", None).await;
    let r = request(&app, &alice, "À partager").await;
    let v1 = uuid_of(&first_snapshot(&app, &alice, &r, &query(json!([1]))).await);
    let share = format!("/cohort/request-query-snapshots/{v1}/share/");
    for body in [json!({}), json!({"recipients": ""}), json!({"recipients": null, "name": "x"})] {
        assert_eq!(post(&app, &alice, &share, body.clone()).await, bare("No 'recipients' provided"), "{body}");
    }
    assert_eq!(
        post(&app, &alice, &share, json!({"recipients": "x,bob,y"})).await,
        bare("No users found with the following IDs: x,y")
    );
    assert_eq!(
        post(&app, &alice, &share, json!({"recipients": "nobody"})).await,
        bare("No users found with the following IDs: nobody")
    );
    // A refused share copies nothing, not even for the known recipient.
    let (bob, _) = app.login("bob").await;
    let (_, folders) = get(&app, &bob, "/cohort/folders/").await;
    assert_eq!(folders["count"], 0, "{folders}");
    let (_, requests) = get(&app, &bob, "/cohort/requests/").await;
    assert_eq!(requests["count"], 0, "{requests}");
}

// ---------------------------------------------------------------------------------------------------
// Dated measures (spec §5.6)
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_count_is_created_new_and_queues_exactly_one_job() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Comptée").await;
    let s = uuid_of(&first_snapshot(&app, &alice, &r, &query(json!(["4"]))).await);
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new(), "snapshots queue nothing");

    // The front's exact body (client contract §5.3).
    let body = json!({"request_query_snapshot_id": s, "request_id": r, "stageDetails": null});
    let (status, created) = post(&app, &alice, "/cohort/dated-measures/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), DATED_MEASURE_KEYS);
    assert_eq!(
        (
            &created["request_job_status"],
            &created["count_outdated"],
            &created["cohort_limit"],
            &created["mode"],
            &created["fhir_datetime"],
        ),
        (&json!("new"), &json!(false), &json!(20000), &json!("Snapshot"), &Value::Null)
    );
    assert_eq!(
        (&created["owner"], &created["request_query_snapshot"], &created["measure"], &created["deleted"]),
        (&json!("alice"), &json!(s), &Value::Null, &Value::Null)
    );
    // JobModel text fields default to "" (spec §3.1).
    assert_eq!(
        (
            &created["request_job_id"],
            &created["request_job_fail_msg"],
            &created["request_job_duration"],
            &created["count_task_id"]
        ),
        (&json!(""), &json!(""), &json!(""), &json!(""))
    );
    let m = uuid_of(&created);
    assert_eq!(
        app.queued_jobs().await,
        vec![json!({"version": 1, "kind": "count", "owner": "alice", "dated_measure": m, "stage_details": null})]
    );
    let (status, read) = get(&app, &alice, &format!("/cohort/dated-measures/{m}/")).await;
    assert_eq!((status, &read["uuid"], &read["request_job_status"]), (StatusCode::OK, &json!(m), &json!("new")));
    let (_, snapshot) = get(&app, &alice, &format!("/cohort/request-query-snapshots/{s}/")).await;
    assert_eq!(snapshot["dated_measures"], json!([read]));

    // `stageDetails` travels to the worker; `request_query_snapshot` works without the alias.
    let body = json!({"request_query_snapshot": s, "stageDetails": "all"});
    let (status, second) = post(&app, &alice, "/cohort/dated-measures/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(
        app.queued_jobs().await,
        vec![
            json!({"version": 1, "kind": "count", "owner": "alice", "dated_measure": second["uuid"], "stage_details": "all"})
        ]
    );
    // Newest first on the snapshot.
    let (_, snapshot) = get(&app, &alice, &format!("/cohort/request-query-snapshots/{s}/")).await;
    let listed: Vec<&Value> = snapshot["dated_measures"].as_array().unwrap().iter().map(|d| &d["uuid"]).collect();
    assert_eq!(listed, [&second["uuid"], &json!(m)]);

    // Refused creations queue nothing.
    let ghost = Uuid::new_v4().to_string();
    let cases = [
        (
            json!({"stageDetails": null}),
            (StatusCode::BAD_REQUEST, json!({"request_query_snapshot": ["This field is required."]})),
        ),
        (json!({"request_query_snapshot_id": ghost}), invalid_pk("request_query_snapshot", &ghost)),
        (json!({"request_query_snapshot_id": s, "owner": "bob"}), invalid_pk("owner", "bob")),
    ];
    for (body, expected) in cases {
        assert_eq!(post(&app, &alice, "/cohort/dated-measures/", body.clone()).await, expected, "{body}");
    }
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new());
    let (_, list) = get(&app, &alice, "/cohort/dated-measures/").await;
    assert_eq!(list["count"], 2);
}

#[tokio::test]
async fn the_query_executor_callback_finishes_a_count_once() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Rappel").await;
    let s = uuid_of(&first_snapshot(&app, &alice, &r, &query(json!(["4"]))).await);
    let m = count(&app, &alice, &s).await;
    let path = format!("/cohort/dated-measures/{m}/");

    let body = json!({"request_job_status": "FINISHED", "count": "123", "extra": {}});
    let (status, finished) = as_app(&app, QE, Method::PATCH, &path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    assert_eq!(keys(&finished), DATED_MEASURE_KEYS);
    assert_eq!(
        (&finished["measure"], &finished["request_job_status"], &finished["extra"], &finished["owner"]),
        (&json!(123), &json!("finished"), &json!({}), &json!("alice"))
    );
    assert!(is_python_duration(&finished["request_job_duration"]), "{finished}");
    assert!(finished["request_job_duration"].as_str().unwrap().starts_with("0:00:"), "{finished}");

    let (_, read) = get(&app, &alice, &path).await;
    assert_eq!((&read["measure"], &read["request_job_status"]), (&json!(123), &json!("finished")));
    let (_, snapshot) = get(&app, &alice, &format!("/cohort/request-query-snapshots/{s}/")).await;
    assert_eq!(
        (&snapshot["dated_measures"][0]["uuid"], &snapshot["dated_measures"][0]["measure"]),
        (&json!(m), &json!(123))
    );
    let (_, req) = get(&app, &alice, &format!("/cohort/requests/{r}/")).await;
    assert_eq!(req["query_snapshots"][0]["patients_count"], 123, "{req}");

    // The job has ended: a late callback changes nothing and answers the stored count.
    let late = json!({"request_job_status": "ERROR", "message": "x"});
    let (status, unchanged) = as_app(&app, QE, Method::PATCH, &path, Some(late)).await;
    assert_eq!(status, StatusCode::OK, "{unchanged}");
    assert_eq!(
        (&unchanged["measure"], &unchanged["request_job_status"], &unchanged["request_job_fail_msg"]),
        (&json!(123), &json!("finished"), &read["request_job_fail_msg"])
    );
    let again = json!({"request_job_status": "FINISHED", "count": "7"});
    let (status, unchanged) = as_app(&app, QE, Method::PATCH, &path, Some(again)).await;
    assert_eq!((status, &unchanged["measure"]), (StatusCode::OK, &json!(123)));
    assert_eq!(get(&app, &alice, &path).await.1, read);
}

#[tokio::test]
async fn callback_statuses_map_case_insensitively_and_failures_keep_their_message() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Statuts").await;
    let s = uuid_of(&first_snapshot(&app, &alice, &r, &query(json!(["4"]))).await);
    let cases = [
        (json!({"request_job_status": "RUNNING"}), "started"),
        (json!({"request_job_status": "started"}), "started"),
        (json!({"request_job_status": "Pending"}), "pending"),
        (json!({"request_job_status": "LONG_PENDING"}), "long_pending"),
        (json!({"request_job_status": "KILLED"}), "cancelled"),
        (json!({"request_job_status": "UNKNOWN"}), "unknown"),
        (json!({"request_job_status": "ERROR", "message": "Spark a planté"}), "failed"),
    ];
    for (body, expected) in cases {
        let m = count(&app, &alice, &s).await;
        let (status, updated) =
            as_app(&app, QE, Method::PATCH, &format!("/cohort/dated-measures/{m}/"), Some(body.clone())).await;
        assert_eq!((status, &updated["request_job_status"]), (StatusCode::OK, &json!(expected)), "{body}: {updated}");
        assert_eq!(updated["measure"], Value::Null, "{body}");
        if expected == "failed" {
            assert_eq!(updated["request_job_fail_msg"], "Spark a planté");
        }
    }
    // A count still running may move on.
    let m = count(&app, &alice, &s).await;
    let path = format!("/cohort/dated-measures/{m}/");
    as_app(&app, QE, Method::PATCH, &path, Some(json!({"request_job_status": "RUNNING"}))).await;
    let (status, done) =
        as_app(&app, QE, Method::PATCH, &path, Some(json!({"request_job_status": "finished", "count": 5}))).await;
    assert_eq!(
        (status, &done["request_job_status"], &done["measure"]),
        (StatusCode::OK, &json!("finished"), &json!(5))
    );
    // The owner may report too (spec §5.6).
    let m = count(&app, &alice, &s).await;
    let (status, own) =
        patch(&app, &alice, &format!("/cohort/dated-measures/{m}/"), json!({"request_job_status": "KILLED"})).await;
    assert_eq!((status, &own["request_job_status"]), (StatusCode::OK, &json!("cancelled")), "{own}");
}

#[tokio::test]
async fn an_unmapped_callback_status_fails_the_count_with_a_bare_400() {
    let (app, alice) = app_with_alice().await;
    let r = request(&app, &alice, "Mauvais statut").await;
    let s = uuid_of(&first_snapshot(&app, &alice, &r, &query(json!(["4"]))).await);
    let cases = [
        (json!({"request_job_status": "bogus"}), "Bad Request: Invalid job status: bogus"),
        (json!({"request_job_status": "failed"}), "Bad Request: Invalid job status: failed"),
        (json!({"count": "12"}), "Bad Request: Invalid job status: None"),
    ];
    for (body, message) in cases {
        let m = count(&app, &alice, &s).await;
        let path = format!("/cohort/dated-measures/{m}/");
        assert_eq!(as_app(&app, QE, Method::PATCH, &path, Some(body.clone())).await, bare(message), "{body}");
        let (_, read) = get(&app, &alice, &path).await;
        assert_eq!(
            (&read["request_job_status"], &read["request_job_fail_msg"], &read["measure"]),
            (&json!("failed"), &json!(message), &Value::Null),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_unmapped_callback_on_an_ended_count_is_refused_and_changes_nothing() {
    // An invalid status is a 400 whatever the count's state (spec §5.6); an ended count stays as it was.
    let (app, alice) = app_with_alice().await;
    let (_, _, m) = counted(&app, &alice, "Finie", json!(["4"]), Some(42)).await;
    let path = format!("/cohort/dated-measures/{m}/");
    let (_, before) = get(&app, &alice, &path).await;
    let (status, body) = as_app(&app, QE, Method::PATCH, &path, Some(json!({"request_job_status": "bogus"}))).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!("Bad Request: Invalid job status: bogus")));
    assert_eq!(get(&app, &alice, &path).await.1, before);
}

#[tokio::test]
async fn applicative_actors_see_every_count_but_may_not_create_or_delete() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let (_, alice_s, alice_m) = counted(&app, &alice, "A", json!(["4"]), None).await;
    let (_, _, bob_m) = counted(&app, &bob, "B", json!(["5"]), Some(3)).await;
    app.queued_jobs().await;

    for key in [QE, ETL] {
        let (status, list) = as_app(&app, key, Method::GET, "/cohort/dated-measures/?limit=-1", None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let mut found = uuids(&list);
        found.sort();
        let mut expected = vec![alice_m.clone(), bob_m.clone()];
        expected.sort();
        assert_eq!(found, expected, "{key}");
        let (status, read) = as_app(&app, key, Method::GET, &format!("/cohort/dated-measures/{alice_m}/"), None).await;
        assert_eq!((status, &read["owner"]), (StatusCode::OK, &json!("alice")));
        let body = json!({"request_query_snapshot_id": alice_s});
        assert_eq!(as_app(&app, key, Method::POST, "/cohort/dated-measures/", Some(body)).await, forbidden(), "{key}");
        assert_eq!(
            as_app(&app, key, Method::DELETE, &format!("/cohort/dated-measures/{alice_m}/"), None).await,
            forbidden(),
            "{key}"
        );
    }
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new());
    // Users own their counts but there is no DELETE.
    assert_eq!(delete(&app, &alice, &format!("/cohort/dated-measures/{alice_m}/")).await, not_allowed("DELETE"));
    assert_eq!(get(&app, &alice, &format!("/cohort/dated-measures/{alice_m}/")).await.0, StatusCode::OK);
    let (_, own) = get(&app, &alice, "/cohort/dated-measures/").await;
    assert_eq!(uuids(&own), vec![alice_m.clone()]);
}

// ---------------------------------------------------------------------------------------------------
// Cohorts (spec §5.7)
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_regular_cohort_queues_its_global_estimate_and_its_build() {
    let (app, alice) = app_with_alice().await;
    let (r, s, m) = counted(&app, &alice, "Source", json!(["4"]), Some(123)).await;
    app.queued_jobs().await;

    // The front's exact body (client contract §5.4).
    let body = json!({
        "name": "Ma cohorte",
        "description": "Patients diabétiques",
        "request_query_snapshot_id": s,
        "dated_measure_id": m,
        "request_id": r,
        "global_estimate": true,
    });
    let (status, created) = post(&app, &alice, "/cohort/cohorts/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), COHORT_KEYS, "no result_size / exportable / measure_min / measure_max on create");
    let c = uuid_of(&created);
    assert_eq!(
        (&created["name"], &created["description"], &created["owner"], &created["request_job_status"]),
        (&json!("Ma cohorte"), &json!("Patients diabétiques"), &json!("alice"), &json!("new"))
    );
    assert_eq!(
        (
            &created["request_query_snapshot"],
            &created["parent_cohort"],
            &created["sample_cohorts"],
            &created["group_id"]
        ),
        (&json!(s), &Value::Null, &json!([]), &json!(""))
    );
    assert_eq!(
        (&created["favorite"], &created["sampling_ratio"], &created["request"]),
        (&json!(false), &Value::Null, &json!({"uuid": r, "name": "Source", "description": "À propos de Source"}))
    );

    let queued = jobs(&app).await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert_eq!(queued[1], json!({"version": 1, "kind": "create", "owner": "alice", "cohort": c}));
    assert_eq!(keys(&queued[0]), ["dated_measure", "kind", "owner", "version"]);
    assert_eq!(
        (&queued[0]["kind"], &queued[0]["owner"], &queued[0]["version"]),
        (&json!("count_all"), &json!("alice"), &json!(1))
    );
    let global = queued[0]["dated_measure"].as_str().unwrap().to_owned();
    assert_ne!(global, m, "the global estimate is a new count");
    let (status, g) = get(&app, &alice, &format!("/cohort/dated-measures/{global}/")).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(
        (&g["mode"], &g["request_job_status"], &g["request_query_snapshot"], &g["owner"]),
        (&json!("Global"), &json!("new"), &json!(s), &json!("alice"))
    );

    // The home page's list (client contract §8.1).
    let (status, list) = get(&app, &alice, "/cohort/cohorts/?is_sample=false&limit=5&ordering=-created_at").await;
    assert_eq!((status, list["count"].clone()), (StatusCode::OK, json!(1)), "{list}");
    let listed = &list["results"][0];
    assert_eq!(keys(listed), ANNOTATED_COHORT_KEYS);
    assert_eq!(
        (
            &listed["uuid"],
            &listed["result_size"],
            &listed["exportable"],
            &listed["measure_min"],
            &listed["measure_max"]
        ),
        (&json!(c), &json!(123), &json!(true), &Value::Null, &Value::Null)
    );
    assert_eq!(listed["request"], created["request"]);
    assert_eq!(get(&app, &alice, &format!("/cohort/cohorts/{c}/")).await, (StatusCode::OK, listed.clone()));

    // The global estimate's callback fills the bounds.
    let body = json!({"request_job_status": "FINISHED", "minimum": "100", "maximum": "200", "extra": {}});
    let (status, g) = as_app(&app, QE, Method::PATCH, &format!("/cohort/dated-measures/{global}/"), Some(body)).await;
    assert_eq!((status, &g["measure_min"], &g["measure_max"]), (StatusCode::OK, &json!(100), &json!(200)), "{g}");
    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{c}/")).await;
    assert_eq!(
        (&read["measure_min"], &read["measure_max"], &read["result_size"]),
        (&json!(100), &json!(200), &json!(123))
    );

    // The snapshot lists the cohort without the annotated keys.
    let (_, snapshot) = get(&app, &alice, &format!("/cohort/request-query-snapshots/{s}/")).await;
    let results = snapshot["cohort_results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{snapshot}");
    assert_eq!((keys(&results[0]), &results[0]["uuid"]), (COHORT_KEYS.to_vec(), &json!(c)));
    let (_, req) = get(&app, &alice, &format!("/cohort/requests/{r}/")).await;
    assert_eq!(req["query_snapshots"][0]["cohorts_count"], 1, "{req}");

    // Without a global estimate only the build is queued.
    let plain =
        cohort(&app, &alice, "Sans estimation", &s, &m, json!({"global_estimate": false, "favorite": true})).await;
    assert_eq!(plain["favorite"], true);
    assert_eq!(
        jobs(&app).await,
        vec![json!({"version": 1, "kind": "create", "owner": "alice", "cohort": plain["uuid"]})]
    );
}

#[tokio::test]
async fn cohort_creation_validates_its_relations_and_queues_nothing_when_refused() {
    let (app, alice) = app_with_alice().await;
    let (_, s, m) = counted(&app, &alice, "Source", json!(["4"]), Some(5)).await;
    app.queued_jobs().await;
    let ghost = Uuid::new_v4().to_string();
    let cases = [
        (json!({"name": "x", "request_query_snapshot_id": s, "dated_measure_id": ghost}), "dated_measure"),
        (json!({"name": "x", "request_query_snapshot_id": ghost, "dated_measure_id": m}), "request_query_snapshot"),
        (json!({"name": "x", "request_query_snapshot_id": s, "dated_measure_id": null}), "dated_measure"),
        (json!({"name": "x", "request_query_snapshot": null, "dated_measure": m}), "request_query_snapshot"),
        (json!({"name": "x", "request_query_snapshot_id": s, "dated_measure_id": m, "owner": "bob"}), "owner"),
    ];
    for (body, field) in cases {
        let (status, errors) = post(&app, &alice, "/cohort/cohorts/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {errors}");
        assert_eq!(keys(&errors), [field], "{body}: {errors}");
    }
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new());
    let (_, list) = get(&app, &alice, "/cohort/cohorts/").await;
    assert_eq!(list["count"], 0);
    assert_eq!(active_jobs(&app).await, 0);
}

#[tokio::test]
async fn samples_hang_under_their_parent_with_their_own_count() {
    let (app, alice) = app_with_alice().await;
    let (r, s, m) = counted(&app, &alice, "Parent", json!(["4"]), Some(1000)).await;
    let parent = uuid_of(&cohort(&app, &alice, "Parente", &s, &m, json!({})).await);
    app.queued_jobs().await;

    let body = json!({"name": "Échantillon", "description": "moitié", "parent_cohort": parent, "sampling_ratio": 0.5});
    let (status, sample) = post(&app, &alice, "/cohort/cohorts/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{sample}");
    assert_eq!(keys(&sample), COHORT_KEYS);
    let sample_uuid = uuid_of(&sample);
    assert_eq!(
        (
            &sample["parent_cohort"],
            &sample["sampling_ratio"],
            &sample["request_job_status"],
            &sample["request_query_snapshot"]
        ),
        (&json!({"uuid": parent, "name": "Parente"}), &json!(0.5), &json!("new"), &json!(s))
    );
    assert_eq!(sample["request"]["uuid"], json!(r));
    // Only the build is queued: the sample's count is not run on its own.
    assert_eq!(
        jobs(&app).await,
        vec![json!({"version": 1, "kind": "create", "owner": "alice", "cohort": sample_uuid})]
    );
    // The sample has its own new count, which the snapshot and the request summary leave out.
    let (_, measures) = get(&app, &alice, "/cohort/dated-measures/?limit=-1").await;
    assert_eq!(measures["count"], 2, "{measures}");
    let (_, snapshot) = get(&app, &alice, &format!("/cohort/request-query-snapshots/{s}/")).await;
    let shown: Vec<&Value> = snapshot["dated_measures"].as_array().unwrap().iter().map(|d| &d["uuid"]).collect();
    assert_eq!(shown, [&json!(m)]);
    let (_, req) = get(&app, &alice, &format!("/cohort/requests/{r}/")).await;
    assert_eq!(req["query_snapshots"][0]["patients_count"], 1000, "{req}");

    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{parent}/")).await;
    assert_eq!(read["sample_cohorts"], json!([{"uuid": sample_uuid, "name": "Échantillon", "sampling_ratio": 0.5}]));
    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{sample_uuid}/")).await;
    assert_eq!((&read["result_size"], &read["exportable"]), (&Value::Null, &json!(false)));

    let (_, samples) = get(&app, &alice, "/cohort/cohorts/?is_sample=true").await;
    assert_eq!(uuids(&samples), vec![sample_uuid.clone()]);
    let (_, samples) = get(&app, &alice, &format!("/cohort/cohorts/?parent_cohort={parent}")).await;
    assert_eq!(uuids(&samples), vec![sample_uuid.clone()]);
    let (_, regular) = get(&app, &alice, "/cohort/cohorts/?is_sample=false").await;
    assert_eq!(uuids(&regular), vec![parent.clone()]);

    // The build's callback sizes the sample.
    callback(&app, QE, &sample_uuid, json!({"request_job_status": "FINISHED", "group.id": "s1", "group.count": "498"}))
        .await;
    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{sample_uuid}/")).await;
    assert_eq!(
        (&read["result_size"], &read["group_id"], &read["request_job_status"], &read["exportable"]),
        (&json!(498), &json!("s1"), &json!("finished"), &json!(true))
    );
    // A sample cannot be sampled.
    let body = json!({"name": "Sous-échantillon", "parent_cohort": sample_uuid, "sampling_ratio": 0.5});
    let (status, errors) = post(&app, &alice, "/cohort/cohorts/", body).await;
    assert_eq!((status, keys(&errors)), (StatusCode::BAD_REQUEST, vec!["parent_cohort"]), "{errors}");
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new());
}

#[tokio::test]
async fn the_sampling_ratio_must_be_strictly_between_0_and_1() {
    let (app, alice) = app_with_alice().await;
    let (_, s, m) = counted(&app, &alice, "Parent", json!(["4"]), Some(10)).await;
    let parent = uuid_of(&cohort(&app, &alice, "Parente", &s, &m, json!({})).await);
    app.queued_jobs().await;
    for ratio in [json!(0), json!(1), json!(1.5), json!(-0.2), json!(0.0), json!(1.0)] {
        let body = json!({"name": "É", "parent_cohort": parent, "sampling_ratio": ratio});
        assert_eq!(
            post(&app, &alice, "/cohort/cohorts/", body).await,
            (StatusCode::BAD_REQUEST, json!({"sampling_ratio": ["Sampling ratio must be between 0 and 1"]})),
            "{ratio}"
        );
    }
    let (status, errors) = post(&app, &alice, "/cohort/cohorts/", json!({"name": "É", "parent_cohort": parent})).await;
    assert_eq!((status, keys(&errors)), (StatusCode::BAD_REQUEST, vec!["sampling_ratio"]), "{errors}");
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new());
    let (_, samples) = get(&app, &alice, "/cohort/cohorts/?is_sample=true").await;
    assert_eq!(samples["count"], 0);
    for ratio in [0.01, 0.99] {
        let body = json!({"name": format!("{ratio}"), "parent_cohort": parent, "sampling_ratio": ratio});
        let (status, created) = post(&app, &alice, "/cohort/cohorts/", body).await;
        assert_eq!((status, &created["sampling_ratio"]), (StatusCode::CREATED, &json!(ratio)), "{created}");
    }
}

#[tokio::test]
async fn cohort_lists_filter_and_order_as_the_front_asks() {
    let (app, alice) = app_with_alice().await;
    // Two requests named so that `ordering=request` differs from `ordering=name`.
    let (_, zs, zm) = counted(&app, &alice, "zeta", json!(["4"]), Some(123)).await;
    let (_, es, em1) = counted(&app, &alice, "eta", json!(["5"]), Some(30000)).await;
    let em2 = count(&app, &alice, &es).await;
    let alpha = uuid_of(&cohort(&app, &alice, "alpha", &zs, &zm, json!({"favorite": true})).await);
    let bravo = uuid_of(&cohort(&app, &alice, "bravo", &es, &em1, json!({})).await);
    let charlie = uuid_of(&cohort(&app, &alice, "charlie", &es, &em2, json!({"description": "Rare SECRET"})).await);
    let (status, sample) = post(
        &app,
        &alice,
        "/cohort/cohorts/",
        json!({"name": "sample", "parent_cohort": alpha, "sampling_ratio": 0.5}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sample}");
    callback(&app, QE, &alpha, json!({"request_job_status": "FINISHED", "group.id": "g-alpha", "group.count": "123"}))
        .await;
    callback(&app, QE, &charlie, json!({"request_job_status": "PENDING"})).await;

    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("is_sample=false&ordering=name", vec!["alpha", "bravo", "charlie"]),
        ("is_sample=false&ordering=-name", vec!["charlie", "bravo", "alpha"]),
        ("is_sample=true", vec!["sample"]),
        ("ordering=name", vec!["alpha", "bravo", "charlie", "sample"]),
        ("status=new,pending&ordering=name", vec!["bravo", "charlie", "sample"]),
        ("status=new,pending&is_sample=false&ordering=name", vec!["bravo", "charlie"]),
        ("status=long_pending,pending,started", vec!["charlie"]),
        ("status=finished", vec!["alpha"]),
        ("favorite=true", vec!["alpha"]),
        ("favorite=false&is_sample=false&ordering=name", vec!["bravo", "charlie"]),
        ("min_result_size=100&ordering=name", vec!["alpha", "bravo"]),
        ("min_result_size=124", vec!["bravo"]),
        ("max_result_size=123", vec!["alpha"]),
        ("min_result_size=1&max_result_size=20000", vec!["alpha"]),
        ("exportable=true&status=finished&limit=-1", vec!["alpha"]),
        ("exportable=true", vec!["alpha"]),
        ("exportable=false&ordering=name", vec!["bravo", "charlie", "sample"]),
        ("group_id=g-alpha", vec!["alpha"]),
        ("group_id=nope,g-alpha", vec!["alpha"]),
        ("group_id=nope", vec![]),
        // PostgreSQL: NULLs last ascending, first descending.
        ("is_sample=false&ordering=result_size", vec!["alpha", "bravo", "charlie"]),
        ("is_sample=false&ordering=-result_size", vec!["charlie", "bravo", "alpha"]),
        ("is_sample=false&ordering=-result_size&min_result_size=0", vec!["bravo", "alpha"]),
        // `request` orders by the request's name: eta (bravo, charlie) before zeta (alpha).
        ("is_sample=false&ordering=request,name", vec!["bravo", "charlie", "alpha"]),
        ("is_sample=false&ordering=-request,name", vec!["alpha", "bravo", "charlie"]),
        ("is_sample=false&ordering=-favorite,name", vec!["alpha", "bravo", "charlie"]),
        ("is_sample=false&ordering=created_at", vec!["alpha", "bravo", "charlie"]),
        ("is_sample=false&ordering=-created_at", vec!["charlie", "bravo", "alpha"]),
        ("search=secret", vec!["charlie"]),
        ("name=LPH", vec!["alpha"]),
    ];
    for (params, expected) in cases {
        let (status, list) = get(&app, &alice, &format!("/cohort/cohorts/?{params}")).await;
        assert_eq!(status, StatusCode::OK, "{params}: {list}");
        assert_eq!(names(&list), expected, "{params}");
        assert_eq!(list["count"], expected.len(), "{params}");
    }
    let (_, list) =
        get(&app, &alice, &format!("/cohort/cohorts/?request_id={}", cohort_request(&app, &alice, &bravo).await)).await;
    let mut found = names(&list);
    found.sort();
    assert_eq!(found, ["bravo", "charlie"]);
    // LIMIT pagination.
    let (_, page) = get(&app, &alice, "/cohort/cohorts/?ordering=name&limit=2&offset=1").await;
    assert_eq!((names(&page), page["count"].clone()), (vec!["bravo".to_owned(), "charlie".to_owned()], json!(4)));
    let (status, body) = get(&app, &alice, "/cohort/cohorts/?ordering=owner").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"ordering": ["Select a valid choice. owner is not one of the available choices."]})
        )
    );
}

async fn cohort_request(app: &TestApp, token: &str, cohort: &str) -> String {
    let (_, read) = get(app, token, &format!("/cohort/cohorts/{cohort}/")).await;
    read["request"]["uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn cohort_patch_edits_names_and_refuses_relations() {
    let (app, alice) = app_with_alice().await;
    let (_, s, m) = counted(&app, &alice, "Édition", json!(["4"]), Some(12)).await;
    let c = uuid_of(&cohort(&app, &alice, "Avant", &s, &m, json!({})).await);
    let path = format!("/cohort/cohorts/{c}/");

    let (status, edited) =
        patch(&app, &alice, &path, json!({"name": "Après", "favorite": true, "description": "d"})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(keys(&edited), COHORT_KEYS, "no annotated keys in the PATCH response");
    assert_eq!(
        (&edited["name"], &edited["favorite"], &edited["description"], &edited["request_job_status"]),
        (&json!("Après"), &json!(true), &json!("d"), &json!("new"))
    );
    let (_, read) = get(&app, &alice, &path).await;
    assert_eq!((&read["name"], &read["favorite"], &read["result_size"]), (&json!("Après"), &json!(true), &json!(12)));

    let (status, body) = patch(&app, &alice, &path, json!({"owner": "bob"})).await;
    assert_eq!((status, body), bare("The payload contains non-updatable fields `{'owner': 'bob'}`"));
    for body in [
        json!({"name": "Jamais", "dated_measure_id": m}),
        json!({"dated_measure": m}),
        json!({"request_query_snapshot_id": s}),
        json!({"request_query_snapshot": s, "favorite": false}),
        json!({"owner_id": "alice"}),
    ] {
        let (status, message) = patch(&app, &alice, &path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {message}");
        assert!(
            message.as_str().is_some_and(|m| m.starts_with("The payload contains non-updatable fields `")),
            "{body}: {message}"
        );
    }
    let (_, after) = get(&app, &alice, &path).await;
    assert_eq!(after, read, "refused edits change nothing");
    let (status, errors) = patch(&app, &alice, &path, json!({"name": "x".repeat(256)})).await;
    assert_eq!((status, keys(&errors)), (StatusCode::BAD_REQUEST, vec!["name"]), "{errors}");
}

#[tokio::test]
async fn a_small_cohorts_callback_finishes_it_and_sizes_its_count() {
    let (app, alice) = app_with_alice().await;
    let (_, s, m) = counted(&app, &alice, "Petite", json!(["4"]), Some(400)).await;
    let c = uuid_of(&cohort(&app, &alice, "Petite", &s, &m, json!({})).await);
    assert_eq!(active_jobs(&app).await, 1);

    let body = json!({"request_job_status": "FINISHED", "group.id": "123", "group.count": "456", "extra": {}});
    let updated = callback(&app, QE, &c, body).await;
    assert_eq!(
        (&updated["request_job_status"], &updated["group_id"], &updated["request_job_fail_msg"]),
        (&json!("finished"), &json!("123"), &json!(""))
    );
    assert!(is_python_duration(&updated["request_job_duration"]), "{updated}");
    assert_eq!(active_jobs(&app).await, 0, "a finished cohort is no longer active");
    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{c}/")).await;
    assert_eq!((&read["request_job_status"], &read["group_id"]), (&json!("finished"), &json!("123")));
    // `group.count` is the linked count's new measure (spec §5.7), though that count had finished already.
    let (_, measure) = get(&app, &alice, &format!("/cohort/dated-measures/{m}/")).await;
    assert_eq!(measure["measure"], 456, "{measure}");
    assert_eq!(read["result_size"], 456, "{read}");
}

#[tokio::test]
async fn cohort_callbacks_move_the_job_once_and_ignore_late_ones() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    // A count still running when the cohort is built: the callback sizes it.
    let (_, s, m) = counted(&app, &alice, "Source", json!(["4"]), None).await;
    let small = uuid_of(&cohort(&app, &alice, "Petite", &s, &m, json!({})).await);
    let (_, bs, bm) = counted(&app, &bob, "De Bob", json!(["4"]), Some(10)).await;
    let bobs = uuid_of(&cohort(&app, &bob, "De Bob", &bs, &bm, json!({})).await);
    let (_, ls, lm) = counted(&app, &alice, "Grande", json!(["4"]), Some(25000)).await;
    let large = uuid_of(&cohort(&app, &alice, "Grande", &ls, &lm, json!({})).await);
    let failing = uuid_of(&cohort(&app, &alice, "Ratée", &ls, &lm, json!({})).await);
    assert_eq!(active_jobs(&app).await, 4, "new cohorts of every owner");

    let body = json!({"request_job_status": "FINISHED", "group.id": "123", "group.count": "456", "extra": {}});
    let updated = callback(&app, QE, &small, body).await;
    assert_eq!((&updated["request_job_status"], &updated["group_id"]), (&json!("finished"), &json!("123")));
    assert!(is_python_duration(&updated["request_job_duration"]), "{updated}");
    let (_, measure) = get(&app, &alice, &format!("/cohort/dated-measures/{m}/")).await;
    assert_eq!((&measure["measure"], &measure["request_job_status"]), (&json!(456), &json!("finished")), "{measure}");
    assert_eq!(active_jobs(&app).await, 3);

    // A late or duplicated callback changes nothing.
    let (_, before) = get(&app, &alice, &format!("/cohort/cohorts/{small}/")).await;
    for late in [
        json!({"request_job_status": "ERROR", "message": "trop tard"}),
        json!({"request_job_status": "FINISHED", "group.id": "999", "group.count": "1"}),
        json!({"request_job_status": "LONG_PENDING"}),
    ] {
        let (status, body) =
            as_app(&app, QE, Method::PATCH, &format!("/cohort/cohorts/{small}/"), Some(late.clone())).await;
        assert_eq!(
            (status, &body["request_job_status"], &body["group_id"]),
            (StatusCode::OK, &json!("finished"), &json!("123")),
            "{late}"
        );
    }
    let (_, after) = get(&app, &alice, &format!("/cohort/cohorts/{small}/")).await;
    assert_eq!(after, before);
    assert_eq!(get(&app, &alice, &format!("/cohort/dated-measures/{m}/")).await.1["measure"], 456);

    // A large cohort: QueryExecutor reports LONG_PENDING, the Solr ETL finishes it later.
    let body = json!({"request_job_status": "LONG_PENDING", "group.id": "777", "group.count": "25000", "extra": {}});
    let updated = callback(&app, QE, &large, body).await;
    assert_eq!(
        (&updated["request_job_status"], &updated["group_id"], &updated["request_job_duration"]),
        (&json!("long_pending"), &json!("777"), &json!(""))
    );
    assert_eq!(active_jobs(&app).await, 2, "long_pending is not counted");
    let (status, read) = as_app(&app, ETL, Method::GET, &format!("/cohort/cohorts/{large}/"), None).await;
    assert_eq!((status, &read["request_job_status"]), (StatusCode::OK, &json!("long_pending")));
    let updated = callback(&app, ETL, &large, json!({"request_job_status": "FINISHED"})).await;
    assert_eq!((&updated["request_job_status"], &updated["group_id"]), (&json!("finished"), &json!("777")));
    assert!(is_python_duration(&updated["request_job_duration"]), "{updated}");
    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{large}/")).await;
    assert_eq!(
        (&read["request_job_status"], &read["result_size"], &read["exportable"]),
        (&json!("finished"), &json!(25000), &json!(false))
    );

    // A failure keeps its message.
    callback(&app, QE, &failing, json!({"request_job_status": "LONG_PENDING", "group.id": "778"})).await;
    let updated =
        callback(&app, ETL, &failing, json!({"request_job_status": "ERROR", "message": "Solr indisponible"})).await;
    assert_eq!(
        (&updated["request_job_status"], &updated["request_job_fail_msg"]),
        (&json!("failed"), &json!("Solr indisponible"))
    );
    assert!(is_python_duration(&updated["request_job_duration"]), "{updated}");

    // An unmapped status fails the cohort with a bare 400.
    let path = format!("/cohort/cohorts/{bobs}/");
    assert_eq!(
        as_app(&app, QE, Method::PATCH, &path, Some(json!({"request_job_status": "new"}))).await,
        bare("Bad Request: Invalid job status: new")
    );
    let (_, read) = get(&app, &bob, &path).await;
    assert_eq!(
        (&read["request_job_status"], &read["request_job_fail_msg"]),
        (&json!("failed"), &json!("Bad Request: Invalid job status: new"))
    );
    assert_eq!(active_jobs(&app).await, 0);
}

#[tokio::test]
async fn applicative_actors_see_every_cohort_but_may_not_create_or_delete_them() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let (_, s, m) = counted(&app, &alice, "A", json!(["4"]), Some(1)).await;
    let a = uuid_of(&cohort(&app, &alice, "d'Alice", &s, &m, json!({})).await);
    let (_, bs, bm) = counted(&app, &bob, "B", json!(["4"]), Some(2)).await;
    let b = uuid_of(&cohort(&app, &bob, "de Bob", &bs, &bm, json!({})).await);
    app.queued_jobs().await;
    for key in [QE, ETL] {
        let (status, list) = as_app(&app, key, Method::GET, "/cohort/cohorts/?ordering=name&limit=-1", None).await;
        assert_eq!((status, names(&list)), (StatusCode::OK, vec!["d'Alice".to_owned(), "de Bob".to_owned()]), "{key}");
        assert_eq!(list["results"][1]["result_size"], 2, "{key}: {list}");
        let (status, read) = as_app(&app, key, Method::GET, &format!("/cohort/cohorts/{b}/"), None).await;
        assert_eq!((status, &read["owner"]), (StatusCode::OK, &json!("bob")));
        let body = json!({"name": "x", "request_query_snapshot_id": s, "dated_measure_id": m});
        assert_eq!(as_app(&app, key, Method::POST, "/cohort/cohorts/", Some(body)).await, forbidden(), "{key}");
        assert_eq!(
            as_app(&app, key, Method::DELETE, &format!("/cohort/cohorts/{a}/"), None).await,
            forbidden(),
            "{key}"
        );
    }
    assert_eq!(app.queued_jobs().await, Vec::<Value>::new());
    assert_eq!(get(&app, &alice, &format!("/cohort/cohorts/{a}/")).await.0, StatusCode::OK);
    // The QueryExecutor may also rename (any PATCH).
    let (status, renamed) =
        as_app(&app, QE, Method::PATCH, &format!("/cohort/cohorts/{a}/"), Some(json!({"name": "Renommée"}))).await;
    assert_eq!((status, &renamed["name"]), (StatusCode::OK, &json!("Renommée")), "{renamed}");
}

#[tokio::test]
async fn cohort_multi_delete_is_owner_checked() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let (_, s, m) = counted(&app, &alice, "Suppr", json!(["4"]), Some(1)).await;
    let c1 = uuid_of(&cohort(&app, &alice, "c1", &s, &m, json!({})).await);
    let c2 = uuid_of(&cohort(&app, &alice, "c2", &s, &m, json!({})).await);
    let c3 = uuid_of(&cohort(&app, &alice, "c3", &s, &m, json!({})).await);
    let (_, bs, bm) = counted(&app, &bob, "B", json!(["4"]), Some(2)).await;
    let b = uuid_of(&cohort(&app, &bob, "b", &bs, &bm, json!({})).await);
    assert_eq!(active_jobs(&app).await, 4);

    assert_eq!(
        delete(&app, &alice, &format!("/cohort/cohorts/{c1},{c2}/")).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    for c in [&c1, &c2] {
        assert_eq!(get(&app, &alice, &format!("/cohort/cohorts/{c}/")).await, not_found(NO_COHORT));
        assert_eq!(as_app(&app, QE, Method::GET, &format!("/cohort/cohorts/{c}/"), None).await, not_found(NO_COHORT));
    }
    assert_eq!(active_jobs(&app).await, 2, "deleted cohorts are no longer active jobs");
    // Their count stays (a cohort does not cascade to its count).
    assert_eq!(get(&app, &alice, &format!("/cohort/dated-measures/{m}/")).await.0, StatusCode::OK);

    assert_eq!(delete(&app, &alice, &format!("/cohort/cohorts/{c3},{b}/")).await, not_found(NO_COHORT));
    assert_eq!(get(&app, &alice, &format!("/cohort/cohorts/{c3}/")).await.0, StatusCode::OK, "nothing deleted");
    assert_eq!(get(&app, &bob, &format!("/cohort/cohorts/{b}/")).await.0, StatusCode::OK, "nothing deleted");
    let (status, body) = delete(&app, &alice, &format!("/cohort/cohorts/{c3},nope/")).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"error": format!("Invalid value for uuid param, uuids=['{c3}', 'nope']")}))
    );
    let (_, list) = get(&app, &alice, "/cohort/cohorts/").await;
    assert_eq!(names(&list), ["c3"]);
    assert_eq!(delete(&app, &alice, &format!("/cohort/cohorts/{c3}/")).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(active_jobs(&app).await, 1);
}

#[tokio::test]
async fn cohort_rights_follow_the_callers_accesses_on_the_query_perimeters() {
    let app = TestApp::new().await;
    // A nominative reader on P4 (cohort id "4"), whose children are P11 and P12.
    app.account_on("dora", Some(4), 4).await;
    app.account("bob", None).await;
    let (dora, _) = app.login("dora").await;
    let (bob, _) = app.login("bob").await;
    let (_, s_in, m_in) = counted(&app, &dora, "Dedans", json!(["11", 12]), Some(10)).await;
    let inside = uuid_of(&cohort(&app, &dora, "Dedans", &s_in, &m_in, json!({})).await);
    callback(&app, QE, &inside, json!({"request_job_status": "FINISHED", "group.id": "123", "group.count": "10"}))
        .await;
    let (_, s_out, m_out) = counted(&app, &dora, "Débordante", json!(["4", "1"]), Some(10)).await;
    let outside = uuid_of(&cohort(&app, &dora, "Débordante", &s_out, &m_out, json!({})).await);
    callback(&app, QE, &outside, json!({"request_job_status": "FINISHED", "group.id": "456"})).await;
    let (_, s_none, m_none) = counted(&app, &dora, "Sans périmètre", json!([]), Some(10)).await;
    cohort(&app, &dora, "En attente", &s_none, &m_none, json!({})).await;
    let (_, bs, bm) = counted(&app, &bob, "De Bob", json!(["11"]), Some(1)).await;
    let bobs = uuid_of(&cohort(&app, &bob, "De Bob", &bs, &bm, json!({})).await);
    callback(&app, QE, &bobs, json!({"request_job_status": "FINISHED", "group.id": "999"})).await;

    let nominative_reader = json!({
        "read_patient_nomi": true,
        "read_patient_pseudo": true,
        "export_csv_xlsx_nomi": false,
        "export_jupyter_nomi": false,
        "export_jupyter_pseudo": false,
    });
    let nothing = json!({
        "read_patient_nomi": false,
        "read_patient_pseudo": false,
        "export_csv_xlsx_nomi": false,
        "export_jupyter_nomi": false,
        "export_jupyter_pseudo": false,
    });
    assert_eq!(
        get(&app, &dora, "/cohort/cohorts/cohort-rights/?group_id=123").await,
        (StatusCode::OK, json!([{"cohort_id": "123", "rights": nominative_reader}]))
    );
    let (status, rows) = get(&app, &dora, "/cohort/cohorts/cohort-rights/?group_id=123,456,nope").await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    let mut rows = rows.as_array().unwrap().clone();
    rows.sort_by_key(|r| r["cohort_id"].as_str().unwrap().to_owned());
    assert_eq!(
        rows,
        [json!({"cohort_id": "123", "rights": nominative_reader}), json!({"cohort_id": "456", "rights": nothing})]
    );
    let unknown =
        (StatusCode::NOT_FOUND, json!({"detail": "No cohorts found. The provided `group_id`s are not valid"}));
    // An empty list names no cohort, not the cohorts whose group id is not set yet.
    assert_eq!(get(&app, &dora, "/cohort/cohorts/cohort-rights/?group_id=").await, unknown);
    assert_eq!(get(&app, &dora, "/cohort/cohorts/cohort-rights/").await, unknown);
    assert_eq!(get(&app, &dora, "/cohort/cohorts/cohort-rights/?group_id=nope").await, unknown);
    assert_eq!(
        get(&app, &dora, "/cohort/cohorts/cohort-rights/?group_id=999").await,
        unknown,
        "only the caller's cohorts"
    );
    assert_eq!(
        get(&app, &bob, "/cohort/cohorts/cohort-rights/?group_id=999").await,
        (StatusCode::NOT_FOUND, json!({"detail": "The user `Test Userbob (bob)` has no valid accesses"}))
    );
    assert_eq!(get(&app, &bob, "/cohort/cohorts/cohort-rights/?group_id=123").await, unknown);
    // The cohort page's lookup by group id.
    let (_, list) = get(&app, &dora, "/cohort/cohorts/?group_id=123").await;
    assert_eq!(uuids(&list), vec![inside]);
}

// ---------------------------------------------------------------------------------------------------
// Cascade (spec §0.10)
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_request_hides_its_snapshots_counts_and_cohorts_everywhere() {
    let (app, alice) = app_with_alice().await;
    let (r, s, m) = counted(&app, &alice, "Condamnée", json!(["4"]), Some(50)).await;
    let (status, v2) = post(
        &app,
        &alice,
        "/cohort/request-query-snapshots/",
        json!({"previous_snapshot_id": s, "serialized_query": query(json!(["5"]))}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    let v2 = uuid_of(&v2);
    let m2 = count(&app, &alice, &v2).await;
    let c = uuid_of(&cohort(&app, &alice, "Condamnée", &s, &m, json!({"global_estimate": true})).await);
    let parent_sample = post(
        &app,
        &alice,
        "/cohort/cohorts/",
        json!({"name": "Échantillon", "parent_cohort": c, "sampling_ratio": 0.5}),
    )
    .await;
    assert_eq!(parent_sample.0, StatusCode::CREATED, "{}", parent_sample.1);
    let sample = uuid_of(&parent_sample.1);
    let (_, ks, km) = counted(&app, &alice, "Gardée", json!(["4"]), Some(7)).await;
    let kept = uuid_of(&cohort(&app, &alice, "Gardée", &ks, &km, json!({})).await);
    app.queued_jobs().await;
    assert_eq!(active_jobs(&app).await, 3);

    assert_eq!(delete(&app, &alice, &format!("/cohort/requests/{r}/")).await, (StatusCode::NO_CONTENT, Value::Null));

    for snapshot in [&s, &v2] {
        let path = format!("/cohort/request-query-snapshots/{snapshot}/");
        assert_eq!(get(&app, &alice, &path).await, not_found(NO_SNAPSHOT));
        assert_eq!(patch(&app, &alice, &path, json!({"name": "x"})).await, not_found(NO_SNAPSHOT));
        assert_eq!(
            post(&app, &alice, &format!("{path}share/"), json!({"recipients": "alice"})).await,
            not_found(NO_SNAPSHOT)
        );
        let body = json!({"previous_snapshot_id": snapshot, "serialized_query": query(json!([1]))});
        assert_eq!(
            post(&app, &alice, "/cohort/request-query-snapshots/", body).await,
            invalid_pk("previous_snapshot", snapshot)
        );
        let body = json!({"request_query_snapshot_id": snapshot});
        assert_eq!(
            post(&app, &alice, "/cohort/dated-measures/", body).await,
            invalid_pk("request_query_snapshot", snapshot)
        );
    }
    for measure in [&m, &m2] {
        let path = format!("/cohort/dated-measures/{measure}/");
        assert_eq!(get(&app, &alice, &path).await, not_found(NO_MEASURE));
        assert_eq!(as_app(&app, QE, Method::GET, &path, None).await, not_found(NO_MEASURE));
        let body = json!({"request_job_status": "FINISHED", "count": "1"});
        assert_eq!(as_app(&app, QE, Method::PATCH, &path, Some(body)).await, not_found(NO_MEASURE));
    }
    for cohort in [&c, &sample] {
        let path = format!("/cohort/cohorts/{cohort}/");
        assert_eq!(get(&app, &alice, &path).await, not_found(NO_COHORT));
        assert_eq!(patch(&app, &alice, &path, json!({"name": "x"})).await, not_found(NO_COHORT));
        assert_eq!(as_app(&app, QE, Method::GET, &path, None).await, not_found(NO_COHORT));
        let body = json!({"request_job_status": "FINISHED", "group.id": "1"});
        assert_eq!(as_app(&app, QE, Method::PATCH, &path, Some(body)).await, not_found(NO_COHORT));
    }
    let (_, list) = get(&app, &alice, "/cohort/request-query-snapshots/").await;
    assert_eq!(uuids(&list), vec![ks.clone()]);
    let (_, list) = get(&app, &alice, &format!("/cohort/requests/{r}/query-snapshots/")).await;
    assert_eq!(list["count"], 0);
    let (_, list) = get(&app, &alice, "/cohort/dated-measures/").await;
    assert_eq!(uuids(&list), vec![km.clone()]);
    let (_, list) = as_app(&app, QE, Method::GET, "/cohort/dated-measures/?limit=-1", None).await;
    assert_eq!(uuids(&list), vec![km.clone()]);
    let (_, list) = get(&app, &alice, "/cohort/cohorts/").await;
    assert_eq!(uuids(&list), vec![kept.clone()]);
    let (_, list) = as_app(&app, QE, Method::GET, "/cohort/cohorts/?limit=-1", None).await;
    assert_eq!(uuids(&list), vec![kept.clone()]);
    assert_eq!(active_jobs(&app).await, 1, "the deleted cohorts are no longer active jobs");
}

#[tokio::test]
async fn applicative_cohort_listings_render_the_same_cohort_as_its_owner_sees_it() {
    // Spec §5.7: one serializer; `request` is the snapshot's request, whoever lists it.
    let (app, alice) = app_with_alice().await;
    let (r, s, m) = counted(&app, &alice, "Vue", json!(["4"]), Some(5)).await;
    let c = uuid_of(&cohort(&app, &alice, "Vue", &s, &m, json!({})).await);
    let (_, own) = get(&app, &alice, &format!("/cohort/cohorts/{c}/")).await;
    assert_eq!(own["request"]["uuid"], json!(r));
    let (_, read) = as_app(&app, QE, Method::GET, &format!("/cohort/cohorts/{c}/"), None).await;
    assert_eq!(read, own, "QueryExecutor retrieve");
    let (_, list) = as_app(&app, QE, Method::GET, "/cohort/cohorts/", None).await;
    assert_eq!(list["results"][0], own, "QueryExecutor list");
    let (_, list) = as_app(&app, QE, Method::GET, &format!("/cohort/cohorts/?request_id={r}"), None).await;
    assert_eq!(uuids(&list), vec![c.clone()], "QueryExecutor request_id filter");
}

#[tokio::test]
async fn count_validity_and_cohort_size_limit_come_from_the_settings() {
    let app = TestApp::with_settings(&[("LAST_COUNT_VALIDITY", "0"), ("COHORT_SIZE_LIMIT", "100")]).await;
    app.account("alice", None).await;
    let (alice, _) = app.login("alice").await;
    let (_, s, m) = counted(&app, &alice, "Limites", json!(["4"]), Some(100)).await;
    let (_, read) = get(&app, &alice, &format!("/cohort/dated-measures/{m}/")).await;
    assert_eq!((&read["cohort_limit"], &read["count_outdated"]), (&json!(100), &json!(true)), "{read}");
    let (_, s2, m2) = counted(&app, &alice, "Trop grande", json!(["4"]), Some(101)).await;
    let at_limit = uuid_of(&cohort(&app, &alice, "à la limite", &s, &m, json!({})).await);
    let above = uuid_of(&cohort(&app, &alice, "au-dessus", &s2, &m2, json!({})).await);
    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{at_limit}/")).await;
    assert_eq!((&read["result_size"], &read["exportable"]), (&json!(100), &json!(true)));
    let (_, read) = get(&app, &alice, &format!("/cohort/cohorts/{above}/")).await;
    assert_eq!((&read["result_size"], &read["exportable"]), (&json!(101), &json!(false)));
    let (_, list) = get(&app, &alice, "/cohort/cohorts/?exportable=true&limit=-1").await;
    assert_eq!(uuids(&list), vec![at_limit]);
}

#[tokio::test]
async fn deleting_a_parent_cohort_leaves_its_samples_as_regular_cohorts() {
    // Spec §3.3: `parent_cohort` is SET_NULL; deleting a cohort does not delete its samples.
    let (app, alice) = app_with_alice().await;
    let (_, s, m) = counted(&app, &alice, "Parent", json!(["4"]), Some(100)).await;
    let parent = uuid_of(&cohort(&app, &alice, "Parente", &s, &m, json!({})).await);
    let (status, sample) = post(
        &app,
        &alice,
        "/cohort/cohorts/",
        json!({"name": "Orphelin", "parent_cohort": parent, "sampling_ratio": 0.3}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sample}");
    let sample = uuid_of(&sample);
    assert_eq!(
        delete(&app, &alice, &format!("/cohort/cohorts/{parent}/")).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    let (status, read) = get(&app, &alice, &format!("/cohort/cohorts/{sample}/")).await;
    assert_eq!((status, &read["parent_cohort"], &read["sampling_ratio"]), (StatusCode::OK, &Value::Null, &json!(0.3)));
    let (_, list) = get(&app, &alice, "/cohort/cohorts/?is_sample=false").await;
    assert_eq!(uuids(&list), vec![sample.clone()]);
    let (_, list) = get(&app, &alice, "/cohort/cohorts/?is_sample=true").await;
    assert_eq!(list["count"], 0, "{list}");
    let (_, list) = get(&app, &alice, &format!("/cohort/cohorts/?parent_cohort={parent}")).await;
    assert_eq!(list["count"], 0, "{list}");
}
