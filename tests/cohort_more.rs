//! Saved FHIR filters, refresh schedules (and their scheduled runs), feasibility studies and the
//! `/fhir-perimeters/` callback end to end (spec §0.10, §0.13, §0.14, §5.1, §5.8, §5.9, §5.10, §6.6;
//! client contract §5.5; docs/architecture.md "Cohort workspace decisions" and the differences
//! table: relations must be the caller's, multi-deletes only delete the caller's objects).
use std::collections::BTreeMap;

use c360::{
    domain::{
        cohort::RefreshSchedule,
        time::{self as c360_time, DateTime},
    },
    store::cohort::Changes,
};
use http::{Method, StatusCode};
use integration_tests::cohort::{app_with_alice, delete, get, keys, names, patch, post, query, uuid_of};
use integration_tests::{TestApp, ADMIN};
use serde_json::{json, Value};
use uuid::Uuid;

const QE: &str = "Bearer test-qe-token";
const BASE: &str = "http://localhost";
const FORBIDDEN: &str = "You do not have permission to perform this action.";
const NO_FILTER: &str = "No FhirFilter matches the given query.";
const NO_SCHEDULE: &str = "No RequestRefreshSchedule matches the given query.";
const NO_STUDY: &str = "No FeasibilityStudy matches the given query.";
const DUPLICATE_SCHEDULE: &str = "request refresh schedule with this request snapshot already exists.";
const BAD_TIME: &str = "Time has wrong format. Use one of these formats instead: hh:mm[:ss[.uuuuuu]].";

const FILTER_KEYS: [&str; 13] = [
    "auto_generated",
    "created_at",
    "deleted",
    "deleted_by_cascade",
    "fhir_resource",
    "fhir_version",
    "filter",
    "identifying",
    "modified_at",
    "name",
    "owner",
    "query_version",
    "uuid",
];

const SCHEDULE_KEYS: [&str; 14] = [
    "created_at",
    "deleted",
    "deleted_by_cascade",
    "last_refresh",
    "last_refresh_count",
    "last_refresh_error_msg",
    "last_refresh_succeeded",
    "modified_at",
    "notify_owner",
    "owner",
    "refresh_frequency",
    "refresh_time",
    "request_snapshot",
    "uuid",
];

const STUDY_KEYS: [&str; 6] =
    ["created_at", "owner", "request_job_status", "request_query_snapshot", "total_count", "uuid"];

fn not_found(detail: &str) -> (StatusCode, Value) {
    (StatusCode::NOT_FOUND, json!({ "detail": detail }))
}

fn forbidden() -> (StatusCode, Value) {
    (StatusCode::FORBIDDEN, json!({ "detail": FORBIDDEN }))
}

fn bad(field: &str, message: &str) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!({ field: [message] }))
}

fn invalid_pk(field: &str, pk: &str) -> (StatusCode, Value) {
    bad(field, &format!("Invalid pk \"{pk}\" - object does not exist."))
}

fn not_allowed(method: &str) -> (StatusCode, Value) {
    (StatusCode::METHOD_NOT_ALLOWED, json!({ "detail": format!("Method \"{method}\" not allowed.") }))
}

/// A DELETE with a JSON body, as C360 sends `delete_multiple/`.
async fn delete_with(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::DELETE, path).token(token).json(body).send().await
}

/// A call as an applicative actor (API key, no `authorizationMethod`).
async fn as_app(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let call = app.call(method, path).header("authorization", key);
    match body {
        Some(body) => call.json(body).send().await,
        None => call.send().await,
    }
}

/// As [`app_with_alice`], with a second cohort user `bob`.
async fn app_with_alice_and_bob() -> (TestApp, String, String) {
    let (app, alice) = app_with_alice().await;
    app.account("bob", None).await;
    let (bob, _) = app.login("bob").await;
    (app, alice, bob)
}

fn uuids(list: &Value) -> Vec<String> {
    let mut all: Vec<String> =
        list["results"].as_array().unwrap_or_else(|| panic!("an envelope: {list}")).iter().map(uuid_of).collect();
    all.sort();
    all
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    all.sort();
    all
}

/// `2025-01-02T10:11:12.123456Z` (spec §0.9).
fn iso(value: &Value) -> DateTime {
    let s = value.as_str().unwrap_or_else(|| panic!("an ISO datetime, got {value}"));
    assert!(s.ends_with('Z') && s.contains('T'), "ISO UTC with Z: {s}");
    let fraction = s.trim_end_matches('Z').rsplit_once('.').map(|(_, f)| f).unwrap_or("");
    assert_eq!(fraction.len(), 6, "microseconds kept: {s}");
    c360_time::parse(s).unwrap_or_else(|| panic!("parsable datetime: {s}"))
}

/// A pagination link split into its path and its parameters (clients parse them).
fn link(value: &Value) -> (String, BTreeMap<String, String>) {
    let url = value.as_str().unwrap_or_else(|| panic!("a link, got {value}"));
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (path.to_owned(), params)
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A folder, a request in it and its first snapshot: `(folder, request, snapshot)`.
async fn workspace(app: &TestApp, token: &str, name: &str) -> (String, String, String) {
    let (status, folder) = post(app, token, "/cohort/folders/", json!({"name": format!("Projet {name}")})).await;
    assert_eq!(status, StatusCode::CREATED, "{folder}");
    let body = json!({"name": name, "parent_folder": uuid_of(&folder)});
    let (status, request) = post(app, token, "/cohort/requests/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let body = json!({"request_id": uuid_of(&request), "serialized_query": query(json!(["4"]))});
    let (status, snapshot) = post(app, token, "/cohort/request-query-snapshots/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{snapshot}");
    (uuid_of(&folder), uuid_of(&request), uuid_of(&snapshot))
}

/// A snapshot in a fresh folder and request.
async fn snapshot(app: &TestApp, token: &str, name: &str) -> String {
    workspace(app, token, name).await.2
}

/// Saves a filter; returns its body.
async fn filter(app: &TestApp, token: &str, resource: &str, name: &str, text: &str) -> Value {
    let body = json!({"fhir_resource": resource, "fhir_version": "4.0", "name": name, "filter": text});
    let (status, created) = post(app, token, "/cohort/fhir-filters/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{name}: {created}");
    created
}

fn filter_path(uuid: &str) -> String {
    format!("/cohort/fhir-filters/{uuid}/")
}

fn is_duplicate_error(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::BAD_REQUEST
        && keys(body) == ["error"]
        && body["error"].as_str().is_some_and(|e| e.starts_with("duplicate key value violates unique constraint"))
}

/// Schedules re-counts of a snapshot; returns the schedule's body.
async fn schedule(app: &TestApp, token: &str, snapshot: &str, refresh_time: &str, frequency: &str) -> Value {
    let body = json!({"request_snapshot_id": snapshot, "refresh_time": refresh_time, "refresh_frequency": frequency});
    let (status, created) = post(app, token, "/cohort/refresh-schedules/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

fn schedule_path(uuid: &str) -> String {
    format!("/cohort/refresh-schedules/{uuid}/")
}

/// Puts a schedule's next run in the past, straight through the store (as if its time had come).
async fn make_due(app: &TestApp, owner: &str, schedule: &str) {
    let uuid = Uuid::parse_str(schedule).unwrap();
    let now = c360_time::now();
    let mut changes = Changes::modified(now);
    changes.schedule_next_run(uuid, now - time::Duration::minutes(5)).unwrap();
    app.state.store.update_object::<RefreshSchedule>(owner, uuid, changes).await.expect("the schedule is alive");
}

async fn stored_schedule(app: &TestApp, owner: &str, schedule: &str) -> Option<RefreshSchedule> {
    app.state.store.workspace_object::<RefreshSchedule>(owner, Uuid::parse_str(schedule).unwrap()).await.unwrap()
}

/// Runs the `refresh_schedules` scheduled task; returns its `run` report.
async fn run_refresh(app: &TestApp) -> Value {
    let tasks = integration_tests::tasks(app, None).await;
    let out = scheduled_tasks::function_handler(&tasks, json!({"task": "refresh_schedules"})).await.unwrap();
    assert_eq!(out["status"], "done", "{out}");
    out["run"].clone()
}

/// The counts of a snapshot, as its GET renders them.
async fn snapshot_counts(app: &TestApp, token: &str, snapshot: &str) -> Vec<Value> {
    let (status, body) = get(app, token, &format!("/cohort/request-query-snapshots/{snapshot}/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["dated_measures"].as_array().unwrap_or_else(|| panic!("dated_measures: {body}")).clone()
}

fn study_path(uuid: &str) -> String {
    format!("/cohort/feasibility-studies/{uuid}/")
}

// ------------------------------------------------------------------------------------------------
// FHIR filters (§5.10, client contract §5.5)
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_saved_filter_is_created_cleaned_and_rendered_as_c360_reads_it() {
    let (app, alice) = app_with_alice().await;
    let body = json!({
        "fhir_resource": "Patient",
        "fhir_version": "4.0",
        "name": "Mes patients",
        "filter": "&gender=female&",
        "identifying": true,
    });
    let (status, created) = post(&app, &alice, "/cohort/fhir-filters/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), FILTER_KEYS, "{created}");
    assert_eq!(created["filter"], "gender=female", "leading/trailing & stripped");
    assert_eq!(created["query_version"], "v1.4.4");
    assert_eq!(created["owner"], "Test Useralice (alice)", "owner display name");
    assert_eq!(
        (&created["auto_generated"], &created["deleted"], &created["deleted_by_cascade"], &created["identifying"]),
        (&json!(false), &Value::Null, &json!(false), &json!(true))
    );
    assert_eq!(
        (&created["fhir_resource"], &created["fhir_version"], &created["name"]),
        (&json!("Patient"), &json!("4.0"), &json!("Mes patients"))
    );
    Uuid::parse_str(&uuid_of(&created)).expect("a uuid4");
    iso(&created["created_at"]);
    iso(&created["modified_at"]);
    assert_eq!(get(&app, &alice, &filter_path(&uuid_of(&created))).await, (StatusCode::OK, created.clone()));

    // `=` and `&` are stripped on both ends, not inside; identifying defaults to false.
    let text = filter(&app, &alice, "Encounter", "Séjours", "==&&type=x&y=&=&").await;
    assert_eq!((&text["filter"], &text["identifying"]), (&json!("type=x&y"), &json!(false)));
    let versioned = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "v2", "filter": "a=b", "query_version": "v1.5.0"});
    let (status, created) = post(&app, &alice, "/cohort/fhir-filters/", versioned).await;
    assert_eq!((status, &created["query_version"]), (StatusCode::CREATED, &json!("v1.5.0")), "{created}");

    // Name length: 2 to 50 characters.
    let named =
        |name: String| json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": name, "filter": "a=b"});
    assert_eq!(
        post(&app, &alice, "/cohort/fhir-filters/", named("x".into())).await,
        bad("name", "Ensure this field has at least 2 characters.")
    );
    assert_eq!(
        post(&app, &alice, "/cohort/fhir-filters/", named("x".repeat(51))).await,
        bad("name", "Ensure this field has no more than 50 characters.")
    );
    let (status, body) = post(&app, &alice, "/cohort/fhir-filters/", named("y".repeat(50))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(&app, &alice, "/cohort/fhir-filters/", named("yy".into())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Required fields.
    let (status, errors) = post(&app, &alice, "/cohort/fhir-filters/", json!({})).await;
    assert_eq!(
        (status, errors),
        (
            StatusCode::BAD_REQUEST,
            json!({
                "fhir_resource": ["This field is required."],
                "fhir_version": ["This field is required."],
                "name": ["This field is required."],
                "filter": ["This field is required."],
            })
        )
    );
    // Owner rule (§0.14).
    let mut foreign = named("Pour Bob".into());
    foreign["owner"] = json!("bob");
    assert_eq!(post(&app, &alice, "/cohort/fhir-filters/", foreign).await, invalid_pk("owner", "bob"));
    let mut own = named("À moi".into());
    own["owner_id"] = json!("alice");
    assert_eq!(post(&app, &alice, "/cohort/fhir-filters/", own).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn filter_names_are_unique_per_owner_and_resource_on_creation_and_rename() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let mine = filter(&app, &alice, "Patient", "Mes patients", "gender=female").await;
    let body = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "Mes patients", "filter": "x=y"});
    let (status, error) = post(&app, &alice, "/cohort/fhir-filters/", body.clone()).await;
    assert!(is_duplicate_error(status, &error), "{status} {error}");
    // Another resource, another owner: the name is free.
    let encounter = filter(&app, &alice, "Encounter", "Mes patients", "x=y").await;
    let bobs = filter(&app, &bob, "Patient", "Mes patients", "x=y").await;
    assert_eq!(bobs["owner"], "Test Userbob (bob)");
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/").await;
    assert_eq!(uuids(&list), sorted(&[&uuid_of(&mine), &uuid_of(&encounter)]));

    // A rename onto an existing (name, resource) is refused and changes nothing.
    let other = filter(&app, &alice, "Patient", "Autre", "age=12").await;
    let other_path = filter_path(&uuid_of(&other));
    let (status, error) = patch(&app, &alice, &other_path, json!({"name": "Mes patients", "filter": "z=1"})).await;
    assert!(is_duplicate_error(status, &error), "{status} {error}");
    assert_eq!(get(&app, &alice, &other_path).await, (StatusCode::OK, other.clone()), "nothing changed");
    let encounter_path = filter_path(&uuid_of(&encounter));
    let (status, error) = patch(&app, &alice, &encounter_path, json!({"fhir_resource": "Patient"})).await;
    assert!(is_duplicate_error(status, &error), "a resource change collides too: {status} {error}");
    assert_eq!(get(&app, &alice, &encounter_path).await, (StatusCode::OK, encounter.clone()));
    // Both names are still taken after the refused renames.
    let (status, error) = post(&app, &alice, "/cohort/fhir-filters/", body.clone()).await;
    assert!(is_duplicate_error(status, &error), "{status} {error}");
    let autre = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "Autre", "filter": "x=y"});
    let (status, error) = post(&app, &alice, "/cohort/fhir-filters/", autre.clone()).await;
    assert!(is_duplicate_error(status, &error), "{status} {error}");

    // A real rename (with a filter change, cleaned) moves the name.
    let (status, renamed) =
        patch(&app, &alice, &other_path, json!({"name": "Nouveau nom", "filter": "&age=13&", "identifying": true}))
            .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(
        (&renamed["name"], &renamed["filter"], &renamed["identifying"], &renamed["uuid"]),
        (&json!("Nouveau nom"), &json!("age=13"), &json!(true), &other["uuid"])
    );
    assert!(iso(&renamed["modified_at"]) >= iso(&other["modified_at"]));
    assert_eq!(renamed["created_at"], other["created_at"]);
    assert_eq!(get(&app, &alice, &other_path).await, (StatusCode::OK, renamed.clone()));
    let (status, created) = post(&app, &alice, "/cohort/fhir-filters/", autre).await;
    assert_eq!(status, StatusCode::CREATED, "the old name is free again: {created}");
    let taken = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "Nouveau nom", "filter": "x=y"});
    let (status, error) = post(&app, &alice, "/cohort/fhir-filters/", taken).await;
    assert!(is_duplicate_error(status, &error), "the new name is taken: {status} {error}");
    // Keeping its own name is no collision; the filter alone can change.
    let (status, same) = patch(&app, &alice, &other_path, json!({"name": "Nouveau nom", "filter": "age=14="})).await;
    assert_eq!((status, &same["name"], &same["filter"]), (StatusCode::OK, &json!("Nouveau nom"), &json!("age=14")));
    let (status, moved) = patch(&app, &alice, &encounter_path, json!({"fhir_resource": "Observation"})).await;
    assert_eq!((status, &moved["fhir_resource"]), (StatusCode::OK, &json!("Observation")), "{moved}");

    // Validation and scoping of PATCH.
    assert_eq!(
        patch(&app, &alice, &other_path, json!({"name": "x"})).await,
        bad("name", "Ensure this field has at least 2 characters.")
    );
    assert_eq!(patch(&app, &alice, &filter_path(&uuid_of(&bobs)), json!({"name": "Volé"})).await, not_found(NO_FILTER));
    assert_eq!(get(&app, &alice, &filter_path(&uuid_of(&bobs))).await, not_found(NO_FILTER));
    assert_eq!(get(&app, &bob, &filter_path(&uuid_of(&bobs))).await.1["name"], "Mes patients");

    // Deleting a renamed filter frees its current name.
    assert_eq!(delete(&app, &alice, &other_path).await.0, StatusCode::NO_CONTENT);
    filter(&app, &alice, "Patient", "Nouveau nom", "x=y").await;
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/?name=nouveau").await;
    assert_eq!(list["count"], 1, "{list}");
}

#[tokio::test]
async fn filter_lists_filter_order_and_paginate_as_c360_asks() {
    let (app, alice) = app_with_alice().await;
    let femmes = filter(&app, &alice, "Patient", "Femmes", "gender=female").await;
    let body = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "Hommes", "filter": "gender=male", "identifying": false});
    assert_eq!(post(&app, &alice, "/cohort/fhir-filters/", body).await.0, StatusCode::CREATED);
    let (status, _) = patch(&app, &alice, &filter_path(&uuid_of(&femmes)), json!({"identifying": true})).await;
    assert_eq!(status, StatusCode::OK);
    filter(&app, &alice, "Encounter", "Séjours longs", "length=gt10").await;
    let auto = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "Auto", "filter": "gender=female", "auto_generated": true});
    let (status, auto) = post(&app, &alice, "/cohort/fhir-filters/", auto).await;
    assert_eq!(status, StatusCode::CREATED, "{auto}");
    let mut created = Vec::new();
    for i in 1..=9 {
        created.push(filter(&app, &alice, "Patient", &format!("Filtre {i:02}"), &format!("age={i}")).await);
    }

    // C360's call: fhir_resource + ordering=-created_at + limit=10&offset=0, reading `next`.
    let (status, page) =
        get(&app, &alice, "/cohort/fhir-filters/?fhir_resource=Patient&ordering=-created_at&limit=10&offset=0").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(keys(&page), ["count", "next", "previous", "results"]);
    assert_eq!((&page["count"], &page["previous"]), (&json!(11), &Value::Null), "auto_generated excluded");
    assert_eq!(
        link(&page["next"]),
        (
            format!("{BASE}/cohort/fhir-filters/"),
            params(&[("fhir_resource", "Patient"), ("limit", "10"), ("offset", "10"), ("ordering", "-created_at")])
        )
    );
    let expected: Vec<String> = (1..=9).rev().map(|i| format!("Filtre {i:02}")).chain(["Hommes".to_owned()]).collect();
    assert_eq!(names(&page), expected, "newest first");
    for item in page["results"].as_array().unwrap() {
        assert_eq!(keys(item), FILTER_KEYS, "{item}");
        assert_eq!(item["owner"], "Test Useralice (alice)");
    }
    let (_, rest) =
        get(&app, &alice, "/cohort/fhir-filters/?fhir_resource=Patient&ordering=-created_at&limit=10&offset=10").await;
    assert_eq!((names(&rest), &rest["next"]), (vec!["Femmes".to_owned()], &Value::Null));
    assert_eq!(
        link(&rest["previous"]).1,
        params(&[("fhir_resource", "Patient"), ("limit", "10"), ("ordering", "-created_at")])
    );

    let (_, all) = get(&app, &alice, "/cohort/fhir-filters/?ordering=created_at&limit=-1").await;
    assert_eq!(all["count"], 12);
    assert_eq!(names(&all)[..3], ["Femmes", "Hommes", "Séjours longs"]);
    assert!(!names(&all).contains(&"Auto".to_owned()), "{all}");
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/").await;
    assert_eq!(names(&list)[0], "Filtre 09", "default ordering is -created_at");

    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/?fhir_resource=pATI&limit=-1").await;
    assert_eq!(list["count"], 11, "icontains on the resource");
    let cases: [(&str, &[&str]); 9] = [
        ("fhir_resource=encounter", &["Séjours longs"]),
        ("name=MMES", &["Femmes", "Hommes"]),
        ("fhir_filter=FEMALE", &["Femmes"]),
        ("fhir_filter=gender", &["Femmes", "Hommes"]),
        ("identifying=true", &["Femmes"]),
        ("name=filtre&fhir_filter=age%3D3", &["Filtre 03"]),
        ("owner=bob", &[]),
        ("name=s%C3%A9JOUR", &["Séjours longs"]),
        ("name=Filtre%2003", &["Filtre 03"]),
    ];
    for (query, expected) in cases {
        let (status, list) = get(&app, &alice, &format!("/cohort/fhir-filters/?{query}&limit=-1")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {list}");
        let mut got = names(&list);
        got.sort();
        assert_eq!(got, expected.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), "{query}");
    }
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/?identifying=false&limit=-1").await;
    assert_eq!(list["count"], 11);
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/?owner=alice&query_version=v1.4.4").await;
    assert_eq!(list["count"], 12);
    let (status, body) = get(&app, &alice, "/cohort/fhir-filters/?ordering=name").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown ordering: {body}");
    assert_eq!(keys(&body), ["ordering"]);
}

#[tokio::test]
async fn filters_are_deleted_one_by_one_by_path_lists_or_delete_multiple_but_only_the_callers() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let mut mine = Vec::new();
    for i in 1..=5 {
        mine.push(uuid_of(&filter(&app, &alice, "Patient", &format!("Filtre {i}"), "a=b").await));
    }
    let bobs = uuid_of(&filter(&app, &bob, "Patient", "Filtre 1", "a=b").await);
    let [f1, f2, f3, f4, f5] = [&mine[0], &mine[1], &mine[2], &mine[3], &mine[4]];

    assert_eq!(delete(&app, &alice, &filter_path(f1)).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&app, &alice, &filter_path(f1)).await, not_found(NO_FILTER));
    assert_eq!(delete(&app, &alice, &filter_path(f1)).await, not_found(NO_FILTER), "already deleted");
    assert_eq!(delete(&app, &alice, &format!("/cohort/fhir-filters/{f2},{f3}/")).await.0, StatusCode::NO_CONTENT);
    for f in [f2, f3] {
        assert_eq!(get(&app, &alice, &filter_path(f)).await, not_found(NO_FILTER));
    }
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/").await;
    assert_eq!(uuids(&list), sorted(&[f4, f5]));

    // One foreign uuid: 404 and nothing is deleted (docs/architecture.md, differences table).
    assert_eq!(delete(&app, &alice, &filter_path(&bobs)).await, not_found(NO_FILTER));
    assert_eq!(delete(&app, &alice, &format!("/cohort/fhir-filters/{f4},{bobs}/")).await, not_found(NO_FILTER));
    let (status, body) =
        delete_with(&app, &alice, "/cohort/fhir-filters/delete_multiple/", json!({"uuids": [f4, bobs]})).await;
    assert_eq!((status, body), not_found(NO_FILTER));
    let (status, body) =
        delete_with(&app, &alice, "/cohort/fhir-filters/delete_multiple/", json!({"uuids": [f4, Uuid::new_v4()]}))
            .await;
    assert_eq!((status, body), not_found(NO_FILTER), "an unknown uuid too");
    assert_eq!(get(&app, &alice, &filter_path(f4)).await.0, StatusCode::OK);
    assert_eq!(get(&app, &bob, &filter_path(&bobs)).await.0, StatusCode::OK);
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/").await;
    assert_eq!(uuids(&list), sorted(&[f4, f5]));

    // Invalid uuids in a list.
    let (status, body) = delete(&app, &alice, &format!("/cohort/fhir-filters/nope,{f4}/")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("Invalid value for uuid param, uuids=[")), "{body}");
    let (status, body) =
        delete_with(&app, &alice, "/cohort/fhir-filters/delete_multiple/", json!({"uuids": ["nope"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) =
        delete_with(&app, &alice, "/cohort/fhir-filters/delete_multiple/", json!({"uuids": [f4, f5]})).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    for f in [f4, f5] {
        assert_eq!(get(&app, &alice, &filter_path(f)).await, not_found(NO_FILTER));
    }
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/").await;
    assert_eq!(list["count"], 0);
    assert_eq!(get(&app, &bob, &filter_path(&bobs)).await.0, StatusCode::OK, "bob's filter is untouched");

    let (status, body) = delete_with(&app, &alice, "/cohort/fhir-filters/delete_multiple/", json!({"uuids": []})).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null), "an empty list deletes nothing");

    // A deleted filter releases its name.
    for i in [1, 2, 4] {
        let created = filter(&app, &alice, "Patient", &format!("Filtre {i}"), "c=d").await;
        assert_eq!(created["filter"], "c=d");
    }
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/").await;
    assert_eq!(list["count"], 3);
}

// ------------------------------------------------------------------------------------------------
// Refresh schedules (§5.9)
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_refresh_schedule_is_created_once_per_snapshot_with_validated_fields() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let s1 = snapshot(&app, &alice, "Un").await;
    let s2 = snapshot(&app, &alice, "Deux").await;
    let bobs = snapshot(&app, &bob, "Bob").await;
    let before = c360_time::now();
    let body =
        json!({"request_snapshot_id": s1, "refresh_time": "08:30", "refresh_frequency": "daily", "notify_owner": true});
    let (status, created) = post(&app, &alice, "/cohort/refresh-schedules/", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), SCHEDULE_KEYS, "{created}");
    assert_eq!(
        (
            &created["request_snapshot"],
            &created["owner"],
            &created["refresh_time"],
            &created["refresh_frequency"],
            &created["notify_owner"]
        ),
        (&json!(s1), &json!("alice"), &json!("08:30:00"), &json!("daily"), &json!(true))
    );
    for key in ["last_refresh", "last_refresh_succeeded", "last_refresh_count", "last_refresh_error_msg", "deleted"] {
        assert_eq!(created[key], Value::Null, "{key}");
    }
    assert_eq!(created["deleted_by_cascade"], false);
    assert!(iso(&created["created_at"]) >= before);
    iso(&created["modified_at"]);
    let path = schedule_path(&uuid_of(&created));
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::OK, created.clone()));
    let stored = stored_schedule(&app, "alice", &uuid_of(&created)).await.unwrap();
    assert!(stored.next_run > before, "the first run is ahead: {}", stored.next_run);
    assert_eq!((stored.next_run.hour(), stored.next_run.minute()), (8, 30));

    // One live schedule per snapshot.
    assert_eq!(
        post(&app, &alice, "/cohort/refresh-schedules/", body).await,
        bad("request_snapshot", DUPLICATE_SCHEDULE)
    );
    // Relations and owner must be the caller's (docs/architecture.md, differences table).
    let body = json!({"request_snapshot_id": bobs, "refresh_time": "08:30"});
    assert_eq!(post(&app, &alice, "/cohort/refresh-schedules/", body).await, invalid_pk("request_snapshot", &bobs));
    let body = json!({"request_snapshot": s2, "refresh_time": "08:30", "owner": "bob"});
    assert_eq!(post(&app, &alice, "/cohort/refresh-schedules/", body).await, invalid_pk("owner", "bob"));
    let unknown = Uuid::new_v4().to_string();
    let body = json!({"request_snapshot": unknown, "refresh_time": "08:30"});
    assert_eq!(post(&app, &alice, "/cohort/refresh-schedules/", body).await, invalid_pk("request_snapshot", &unknown));

    // Times and frequencies.
    for bad_time in ["8h30", "25:00", "12:60", ""] {
        let body = json!({"request_snapshot": s2, "refresh_time": bad_time});
        assert_eq!(
            post(&app, &alice, "/cohort/refresh-schedules/", body).await,
            bad("refresh_time", BAD_TIME),
            "{bad_time}"
        );
    }
    let body = json!({"request_snapshot": s2});
    assert_eq!(
        post(&app, &alice, "/cohort/refresh-schedules/", body).await,
        bad("refresh_time", "This field is required.")
    );
    let body = json!({"refresh_time": "08:30"});
    assert_eq!(
        post(&app, &alice, "/cohort/refresh-schedules/", body).await,
        bad("request_snapshot", "This field is required.")
    );
    let body = json!({"request_snapshot": s2, "refresh_time": "08:30", "refresh_frequency": "x"});
    assert_eq!(
        post(&app, &alice, "/cohort/refresh-schedules/", body).await,
        bad("refresh_frequency", "\"x\" is not a valid choice.")
    );

    // Defaults: weekly, no notification; seconds kept; read-only fields ignored.
    let body = json!({"request_snapshot": s2, "refresh_time": "23:05:10", "last_refresh_count": 5, "last_refresh_succeeded": true});
    let (status, created) = post(&app, &alice, "/cohort/refresh-schedules/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (&created["refresh_time"], &created["refresh_frequency"], &created["notify_owner"]),
        (&json!("23:05:10"), &json!("weekly"), &json!(false))
    );
    assert_eq!((&created["last_refresh_count"], &created["last_refresh_succeeded"]), (&Value::Null, &Value::Null));
    let stored = stored_schedule(&app, "alice", &uuid_of(&created)).await.unwrap();
    assert_eq!(
        (stored.next_run.day() - 1) % 7,
        0,
        "weekly runs on days 1, 8, 15, 22, 29 (cron */7): {}",
        stored.next_run
    );

    // Bob's own snapshot is fine for bob; alice does not see his schedule.
    let bobs_schedule = schedule(&app, &bob, &bobs, "07:00", "every_other_day").await;
    assert_eq!(get(&app, &alice, &schedule_path(&uuid_of(&bobs_schedule))).await, not_found(NO_SCHEDULE));
    let (_, list) = get(&app, &alice, "/cohort/refresh-schedules/").await;
    assert_eq!(list["count"], 2);
}

#[tokio::test]
async fn refresh_schedules_are_patched_listed_and_deleted_freeing_their_snapshot() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let s1 = snapshot(&app, &alice, "Un").await;
    let s2 = snapshot(&app, &alice, "Deux").await;
    let first = schedule(&app, &alice, &s1, "08:30", "daily").await;
    let second = schedule(&app, &alice, &s2, "23:05:10", "weekly").await;
    let bobs = schedule(&app, &bob, &snapshot(&app, &bob, "Bob").await, "07:00", "daily").await;
    let path = schedule_path(&uuid_of(&first));

    let body = json!({"refresh_time": "09:15", "refresh_frequency": "every_other_day", "notify_owner": true});
    let (status, patched) = patch(&app, &alice, &path, body).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(keys(&patched), SCHEDULE_KEYS);
    assert_eq!(
        (&patched["refresh_time"], &patched["refresh_frequency"], &patched["notify_owner"], &patched["created_at"]),
        (&json!("09:15:00"), &json!("every_other_day"), &json!(true), &first["created_at"])
    );
    assert!(iso(&patched["modified_at"]) >= iso(&first["modified_at"]));
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::OK, patched.clone()));
    let stored = stored_schedule(&app, "alice", &uuid_of(&first)).await.unwrap();
    assert_eq!((stored.next_run.hour(), stored.next_run.minute()), (9, 15), "the next run follows the new time");
    assert!(stored.next_run > c360_time::now() - time::Duration::seconds(5));
    let (status, patched) = patch(&app, &alice, &path, json!({"notify_owner": false})).await;
    assert_eq!(
        (status, &patched["notify_owner"], &patched["refresh_time"]),
        (StatusCode::OK, &json!(false), &json!("09:15:00"))
    );
    let (status, patched) = patch(&app, &alice, &path, json!({"refresh_time": "10:00:00"})).await;
    assert_eq!(
        (status, &patched["refresh_time"], &patched["refresh_frequency"]),
        (StatusCode::OK, &json!("10:00:00"), &json!("every_other_day"))
    );
    // Read-only fields are ignored; invalid values are refused.
    let (status, patched) =
        patch(&app, &alice, &path, json!({"last_refresh_count": 3, "last_refresh": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(
        (status, &patched["last_refresh_count"], &patched["last_refresh"]),
        (StatusCode::OK, &Value::Null, &Value::Null)
    );
    assert_eq!(
        patch(&app, &alice, &path, json!({"refresh_frequency": "monthly"})).await,
        bad("refresh_frequency", "\"monthly\" is not a valid choice.")
    );
    assert_eq!(patch(&app, &alice, &path, json!({"refresh_time": "noon"})).await, bad("refresh_time", BAD_TIME));
    assert_eq!(get(&app, &alice, &path).await.1["refresh_time"], "10:00:00");
    assert_eq!(
        patch(&app, &alice, &schedule_path(&uuid_of(&bobs)), json!({"notify_owner": true})).await,
        not_found(NO_SCHEDULE)
    );

    // Lists: owner-scoped, filters request_snapshot_id, refresh_frequency, refresh_time.
    let (status, list) = get(&app, &alice, "/cohort/refresh-schedules/").await;
    assert_eq!((status, keys(&list)), (StatusCode::OK, vec!["count", "next", "previous", "results"]));
    assert_eq!(uuids(&list), sorted(&[&uuid_of(&first), &uuid_of(&second)]));
    let cases = [
        (format!("request_snapshot_id={s1}"), vec![uuid_of(&first)]),
        (format!("request_snapshot_id={s2}"), vec![uuid_of(&second)]),
        (format!("request_snapshot_id={}", Uuid::new_v4()), vec![]),
        ("refresh_frequency=every_other_day".to_owned(), vec![uuid_of(&first)]),
        ("refresh_frequency=weekly".to_owned(), vec![uuid_of(&second)]),
        ("refresh_frequency=daily".to_owned(), vec![]),
        ("refresh_time=23:05:10".to_owned(), vec![uuid_of(&second)]),
    ];
    for (query, expected) in cases {
        let (status, list) = get(&app, &alice, &format!("/cohort/refresh-schedules/?{query}")).await;
        assert_eq!((status, uuids(&list)), (StatusCode::OK, expected), "{query}");
    }
    let (status, body) = get(&app, &alice, "/cohort/refresh-schedules/?request_snapshot_id=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a bad uuid filter (§0.8): {body}");

    // DELETE frees the snapshot for a new schedule.
    assert_eq!(delete(&app, &alice, &schedule_path(&uuid_of(&bobs))).await, not_found(NO_SCHEDULE));
    assert_eq!(delete(&app, &alice, &path).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&app, &alice, &path).await, not_found(NO_SCHEDULE));
    assert_eq!(patch(&app, &alice, &path, json!({"notify_owner": true})).await, not_found(NO_SCHEDULE));
    let again = schedule(&app, &alice, &s1, "06:00", "daily").await;
    assert_ne!(again["uuid"], first["uuid"]);
    let (_, list) = get(&app, &alice, &format!("/cohort/refresh-schedules/?request_snapshot_id={s1}")).await;
    assert_eq!(uuids(&list), vec![uuid_of(&again)]);

    // Multi delete, only the caller's.
    let both = format!("/cohort/refresh-schedules/{},{}/", uuid_of(&again), uuid_of(&bobs));
    assert_eq!(delete(&app, &alice, &both).await, not_found(NO_SCHEDULE));
    let both = format!("/cohort/refresh-schedules/{},{}/", uuid_of(&again), uuid_of(&second));
    assert_eq!(delete(&app, &alice, &both).await.0, StatusCode::NO_CONTENT);
    let (_, list) = get(&app, &alice, "/cohort/refresh-schedules/").await;
    assert_eq!(list["count"], 0);
    assert_eq!(get(&app, &bob, &schedule_path(&uuid_of(&bobs))).await.0, StatusCode::OK);
    let body = json!({"request_snapshot_id": s2, "refresh_time": "08:30"});
    assert_eq!(post(&app, &alice, "/cohort/refresh-schedules/", body).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn a_due_schedule_is_recounted_by_the_scheduled_task_and_records_each_outcome() {
    let (app, alice) = app_with_alice().await;
    let s = snapshot(&app, &alice, "Rafraîchie").await;
    let created = schedule(&app, &alice, &s, "08:30", "daily").await;
    let id = uuid_of(&created);
    let path = schedule_path(&id);
    app.queued_jobs().await;

    // Not due yet: nothing runs.
    assert_eq!(run_refresh(&app).await, json!({"due": 0, "launched": 0, "skipped": 0}));
    assert!(app.queued_jobs().await.is_empty());

    make_due(&app, "alice", &id).await;
    let before = c360_time::now();
    assert_eq!(run_refresh(&app).await, json!({"due": 1, "launched": 1, "skipped": 0}));
    let counts = snapshot_counts(&app, &alice, &s).await;
    assert_eq!(counts.len(), 1, "{counts:?}");
    let first = &counts[0];
    assert_eq!(
        (&first["request_job_status"], &first["owner"], &first["request_query_snapshot"], &first["mode"]),
        (&json!("new"), &json!("alice"), &json!(s), &json!("Snapshot"))
    );
    let m1 = uuid_of(first);
    assert_eq!(
        app.queued_jobs().await,
        vec![json!({"version": 1, "kind": "count", "owner": "alice", "dated_measure": m1, "stage_details": null})]
    );
    let next = stored_schedule(&app, "alice", &id).await.unwrap().next_run;
    assert!(next > before, "the next run moved to the future: {next}");
    assert_eq!((next.hour(), next.minute()), (8, 30));

    // Claimed: a second run right away launches nothing.
    assert_eq!(run_refresh(&app).await, json!({"due": 0, "launched": 0, "skipped": 0}));
    assert!(app.queued_jobs().await.is_empty());
    assert_eq!(snapshot_counts(&app, &alice, &s).await.len(), 1);
    let (_, untouched) = get(&app, &alice, &path).await;
    assert_eq!(untouched["last_refresh"], Value::Null, "nothing recorded before the callback");

    // The QueryExecutor's answer is recorded on the schedule.
    let body = json!({"request_job_status": "FINISHED", "count": "77", "extra": {}});
    let (status, measure) = as_app(&app, QE, Method::PATCH, &format!("/cohort/dated-measures/{m1}/"), Some(body)).await;
    assert_eq!((status, &measure["measure"]), (StatusCode::OK, &json!(77)), "{measure}");
    let (_, refreshed) = get(&app, &alice, &path).await;
    assert!(iso(&refreshed["last_refresh"]) >= before, "{refreshed}");
    assert_eq!(
        (&refreshed["last_refresh_succeeded"], &refreshed["last_refresh_count"], &refreshed["last_refresh_error_msg"]),
        (&json!(true), &json!(77), &Value::Null),
        "{refreshed}"
    );
    assert_eq!(
        (&refreshed["refresh_time"], &refreshed["refresh_frequency"], &refreshed["notify_owner"]),
        (&json!("08:30:00"), &json!("daily"), &json!(false))
    );

    // Another run that fails.
    make_due(&app, "alice", &id).await;
    assert_eq!(run_refresh(&app).await["launched"], 1);
    let counts = snapshot_counts(&app, &alice, &s).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    let m2 = counts.iter().map(uuid_of).find(|u| *u != m1).unwrap();
    let jobs = app.queued_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((&jobs[0]["kind"], &jobs[0]["dated_measure"]), (&json!("count"), &json!(m2)));
    let body = json!({"request_job_status": "ERROR", "message": "Spark job died"});
    let (status, measure) = as_app(&app, QE, Method::PATCH, &format!("/cohort/dated-measures/{m2}/"), Some(body)).await;
    assert_eq!((status, &measure["request_job_status"]), (StatusCode::OK, &json!("failed")), "{measure}");
    let (_, failed) = get(&app, &alice, &path).await;
    assert_eq!(
        (&failed["last_refresh_succeeded"], &failed["last_refresh_error_msg"], &failed["last_refresh_count"]),
        (&json!(false), &json!("Spark job died"), &Value::Null),
        "{failed}"
    );
    assert!(iso(&failed["last_refresh"]) >= iso(&refreshed["last_refresh"]));
}

#[tokio::test]
async fn a_deleted_schedule_never_runs() {
    let (app, alice) = app_with_alice().await;
    let s = snapshot(&app, &alice, "Arrêtée").await;
    let kept_snapshot = snapshot(&app, &alice, "Gardée").await;
    let stopped = uuid_of(&schedule(&app, &alice, &s, "08:30", "weekly").await);
    let kept = uuid_of(&schedule(&app, &alice, &kept_snapshot, "08:30", "weekly").await);
    make_due(&app, "alice", &stopped).await;
    assert_eq!(delete(&app, &alice, &schedule_path(&stopped)).await.0, StatusCode::NO_CONTENT);
    app.queued_jobs().await;
    assert_eq!(run_refresh(&app).await, json!({"due": 0, "launched": 0, "skipped": 0}));
    assert!(app.queued_jobs().await.is_empty());
    assert!(snapshot_counts(&app, &alice, &s).await.is_empty());

    // The other schedule still runs, and only it.
    make_due(&app, "alice", &kept).await;
    assert_eq!(run_refresh(&app).await["launched"], 1);
    let jobs = app.queued_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(snapshot_counts(&app, &alice, &kept_snapshot).await.len(), 1);
    assert!(snapshot_counts(&app, &alice, &s).await.is_empty());
}

// ------------------------------------------------------------------------------------------------
// Feasibility studies (§5.8)
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn feasibility_studies_are_created_on_the_callers_snapshot_queued_and_owner_scoped() {
    let (app, alice, bob) = app_with_alice_and_bob().await;
    let s = snapshot(&app, &alice, "Faisabilité").await;
    let bobs_snapshot = snapshot(&app, &bob, "Bob").await;
    app.queued_jobs().await;

    let before = c360_time::now();
    let (status, study) =
        post(&app, &alice, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": s})).await;
    assert_eq!(status, StatusCode::CREATED, "{study}");
    assert_eq!(keys(&study), STUDY_KEYS, "{study}");
    assert_eq!(
        (&study["owner"], &study["request_job_status"], &study["total_count"], &study["request_query_snapshot"]),
        (&json!("alice"), &json!("new"), &Value::Null, &json!(s))
    );
    assert!(iso(&study["created_at"]) >= before);
    let id = uuid_of(&study);
    assert_eq!(
        app.queued_jobs().await,
        vec![json!({"version": 1, "kind": "feasibility", "owner": "alice", "study": id})]
    );

    // Validation: the snapshot is required and must be the caller's.
    assert_eq!(
        post(&app, &alice, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": bobs_snapshot})).await,
        invalid_pk("request_query_snapshot", &bobs_snapshot)
    );
    assert_eq!(
        post(&app, &alice, "/cohort/feasibility-studies/", json!({})).await,
        bad("request_query_snapshot", "This field is required.")
    );
    let body = json!({"request_query_snapshot": s, "owner": "bob"});
    assert_eq!(post(&app, &alice, "/cohort/feasibility-studies/", body).await, invalid_pk("owner", "bob"));
    assert!(app.queued_jobs().await.is_empty(), "refused creations queue nothing");

    let (status, bobs_study) =
        post(&app, &bob, "/cohort/feasibility-studies/", json!({"request_query_snapshot": bobs_snapshot})).await;
    assert_eq!(status, StatusCode::CREATED, "{bobs_study}");
    let bobs_id = uuid_of(&bobs_study);

    // Owner scoping.
    assert_eq!(get(&app, &alice, &study_path(&id)).await, (StatusCode::OK, study.clone()));
    assert_eq!(get(&app, &alice, &study_path(&bobs_id)).await, not_found(NO_STUDY));
    let (status, list) = get(&app, &alice, "/cohort/feasibility-studies/").await;
    assert_eq!((status, keys(&list)), (StatusCode::OK, vec!["count", "next", "previous", "results"]));
    assert_eq!(uuids(&list), vec![id.clone()]);
    assert_eq!(list["results"][0], study);
    let (_, list) = get(&app, &bob, "/cohort/feasibility-studies/").await;
    assert_eq!(uuids(&list), vec![bobs_id.clone()]);

    // The QueryExecutor sees everyone's, may read and patch, may not create or delete.
    let (status, list) = as_app(&app, QE, Method::GET, "/cohort/feasibility-studies/", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(uuids(&list), sorted(&[&id, &bobs_id]));
    assert_eq!(as_app(&app, QE, Method::GET, &study_path(&id), None).await, (StatusCode::OK, study.clone()));
    let body = json!({"request_query_snapshot": s});
    assert_eq!(as_app(&app, QE, Method::POST, "/cohort/feasibility-studies/", Some(body)).await, forbidden());
    assert_eq!(as_app(&app, QE, Method::DELETE, &study_path(&id), None).await, forbidden());

    // No DELETE for owners.
    assert_eq!(delete(&app, &alice, &study_path(&id)).await, not_allowed("DELETE"));
    assert_eq!(get(&app, &alice, &study_path(&id)).await.0, StatusCode::OK);
    assert!(app.queued_jobs().await.len() == 1, "bob's study queued one job");
}

#[tokio::test]
async fn the_query_executor_reports_feasibility_counts_by_patch() {
    let (app, alice) = app_with_alice().await;
    let s = snapshot(&app, &alice, "Faisabilité").await;
    let (_, study) = post(&app, &alice, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": s})).await;
    let (_, other) = post(&app, &alice, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": s})).await;
    let path = study_path(&uuid_of(&study));

    assert_eq!(
        get(&app, &alice, &format!("{path}download/")).await,
        (StatusCode::NOT_FOUND, json!("Report not found")),
        "no report before the counts"
    );
    assert_eq!(
        as_app(&app, QE, Method::PATCH, &path, Some(json!({"request_job_status": "x"}))).await,
        (StatusCode::BAD_REQUEST, json!("Bad Request: Invalid job status: x"))
    );
    let body = json!({"request_job_status": "FINISHED", "count": "10"});
    assert_eq!(
        as_app(&app, QE, Method::PATCH, &path, Some(body)).await,
        (StatusCode::BAD_REQUEST, json!("Bad Request: Payload missing `extra` key"))
    );
    let body = json!({"request_job_status": "FINISHED", "count": "10", "extra": {}});
    assert_eq!(
        as_app(&app, QE, Method::PATCH, &path, Some(body)).await,
        (StatusCode::BAD_REQUEST, json!("Bad Request: Payload missing `extra` key")),
        "an empty extra is missing too"
    );
    let (_, unchanged) = get(&app, &alice, &path).await;
    assert_eq!((&unchanged["request_job_status"], &unchanged["total_count"]), (&json!("new"), &Value::Null));

    let body = json!({"request_job_status": "FINISHED", "count": "10", "extra": {"1": "4"}});
    let (status, finished) = as_app(&app, QE, Method::PATCH, &path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    assert_eq!(keys(&finished), STUDY_KEYS);
    assert_eq!(
        (&finished["request_job_status"], &finished["total_count"], &finished["uuid"], &finished["owner"]),
        (&json!("finished"), &json!(10), &study["uuid"], &json!("alice"))
    );
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::OK, finished.clone()));
    // An ended job keeps its state: a late callback is answered with the stored study.
    let late = json!({"request_job_status": "ERROR", "message": "late"});
    assert_eq!(as_app(&app, QE, Method::PATCH, &path, Some(late)).await, (StatusCode::OK, finished.clone()));

    let other_path = study_path(&uuid_of(&other));
    let body = json!({"request_job_status": "ERROR", "message": "Spark job died"});
    let (status, failed) = as_app(&app, QE, Method::PATCH, &other_path, Some(body)).await;
    assert_eq!(
        (status, &failed["request_job_status"], &failed["total_count"]),
        (StatusCode::OK, &json!("failed"), &Value::Null),
        "{failed}"
    );
    let unknown = study_path(&Uuid::new_v4().to_string());
    let body = json!({"request_job_status": "FINISHED", "count": "1", "extra": {"1": "1"}});
    assert_eq!(as_app(&app, QE, Method::PATCH, &unknown, Some(body)).await, not_found(NO_STUDY));
    assert_eq!(
        get(&app, &alice, &format!("{other_path}download/")).await,
        (StatusCode::NOT_FOUND, json!("Report not found"))
    );
}

#[tokio::test]
async fn a_finished_feasibility_study_has_a_downloadable_zipped_report() {
    let (app, alice) = app_with_alice().await;
    let s = snapshot(&app, &alice, "Rapport de faisabilité complet").await;
    let (_, study) = post(&app, &alice, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": s})).await;
    let path = study_path(&uuid_of(&study));
    let body = json!({"request_job_status": "FINISHED", "count": "25", "extra": {"1": "25", "4": "3"}});
    let (status, finished) = as_app(&app, QE, Method::PATCH, &path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    let (status, headers, body) = app.call(Method::GET, &format!("{path}download/")).token(&alice).send_full().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/zip"));
    let disposition = headers.get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(disposition.starts_with("attachment; filename=\"Rapport_"), "{disposition}");
    assert!(body.as_str().is_some_and(|b| b.starts_with("PK")), "a zip file");
}

// ------------------------------------------------------------------------------------------------
// Cascade (§0.10)
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_request_or_a_folder_bins_the_studies_and_schedules_of_its_snapshots() {
    let (app, alice) = app_with_alice().await;
    for root in ["request", "folder"] {
        let (folder, request, s) = workspace(&app, &alice, root).await;
        let (status, study) =
            post(&app, &alice, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": s})).await;
        assert_eq!(status, StatusCode::CREATED, "{study}");
        let sched = uuid_of(&schedule(&app, &alice, &s, "08:30", "daily").await);
        make_due(&app, "alice", &sched).await;
        app.queued_jobs().await;

        let target = match root {
            "request" => format!("/cohort/requests/{request}/"),
            _ => format!("/cohort/folders/{folder}/"),
        };
        assert_eq!(delete(&app, &alice, &target).await.0, StatusCode::NO_CONTENT, "{root}");

        let study_path = study_path(&uuid_of(&study));
        assert_eq!(get(&app, &alice, &study_path).await, not_found(NO_STUDY), "{root}");
        assert_eq!(as_app(&app, QE, Method::GET, &study_path, None).await, not_found(NO_STUDY), "{root}");
        let body = json!({"request_job_status": "FINISHED", "count": "1", "extra": {"1": "1"}});
        assert_eq!(as_app(&app, QE, Method::PATCH, &study_path, Some(body)).await, not_found(NO_STUDY), "{root}");
        let (_, list) = get(&app, &alice, "/cohort/feasibility-studies/").await;
        assert_eq!(list["count"], 0, "{root}");
        let (_, list) = as_app(&app, QE, Method::GET, "/cohort/feasibility-studies/", None).await;
        assert_eq!(list["count"], 0, "{root}");

        assert_eq!(get(&app, &alice, &schedule_path(&sched)).await, not_found(NO_SCHEDULE), "{root}");
        let (_, list) = get(&app, &alice, "/cohort/refresh-schedules/").await;
        assert_eq!(list["count"], 0, "{root}");
        assert_eq!(run_refresh(&app).await, json!({"due": 0, "launched": 0, "skipped": 0}), "{root}");
        assert!(app.queued_jobs().await.is_empty(), "{root}");

        // The binned snapshot is no longer a valid relation.
        assert_eq!(
            post(&app, &alice, "/cohort/feasibility-studies/", json!({"request_query_snapshot_id": s})).await,
            invalid_pk("request_query_snapshot", &s),
            "{root}"
        );
        let body = json!({"request_snapshot_id": s, "refresh_time": "08:30"});
        assert_eq!(
            post(&app, &alice, "/cohort/refresh-schedules/", body).await,
            invalid_pk("request_snapshot", &s),
            "{root}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// /fhir-perimeters/ (§6.6)
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_virtual_cohort_callback_sets_a_perimeters_cohort_for_the_query_executor_and_admins() {
    let (app, alice) = app_with_alice().await;
    let (admin, _) = app.login(ADMIN).await;
    let body = json!({"request_job_status": "FINISHED", "group.id": "555", "group.count": "42"});
    assert_eq!(
        as_app(&app, QE, Method::PATCH, "/fhir-perimeters/9999/", Some(body.clone())).await,
        (StatusCode::OK, json!({}))
    );
    let (status, perimeter) = get(&app, &admin, "/accesses/perimeters/9999/").await;
    assert_eq!(status, StatusCode::OK, "{perimeter}");
    assert_eq!((&perimeter["cohort_id"], &perimeter["cohort_size"]), (&json!("555"), &json!("42")), "{perimeter}");

    // Full admins may call it too; numbers are taken as text; missing keys clear.
    let numbers = json!({"request_job_status": "FINISHED", "group.id": 777, "group.count": 8});
    assert_eq!(patch(&app, &admin, "/fhir-perimeters/4/", numbers).await, (StatusCode::OK, json!({})));
    let (_, p4) = get(&app, &admin, "/accesses/perimeters/4/").await;
    assert_eq!((&p4["cohort_id"], &p4["cohort_size"]), (&json!("777"), &json!("8")), "{p4}");
    let cleared = json!({"request_job_status": "FINISHED"});
    assert_eq!(
        as_app(&app, QE, Method::PATCH, "/fhir-perimeters/4/", Some(cleared)).await,
        (StatusCode::OK, json!({}))
    );
    let (_, p4) = get(&app, &admin, "/accesses/perimeters/4/").await;
    assert_eq!((&p4["cohort_id"], &p4["cohort_size"]), (&Value::Null, &Value::Null), "{p4}");

    let etl = json!({"request_job_status": "FINISHED", "group.id": "888", "group.count": "9"});
    assert_eq!(
        as_app(&app, "Bearer test-etl-token", Method::PATCH, "/fhir-perimeters/4/", Some(etl)).await,
        (StatusCode::OK, json!({})),
        "the Solr ETL user is allowed too"
    );
    let (_, p4) = get(&app, &admin, "/accesses/perimeters/4/").await;
    assert_eq!((&p4["cohort_id"], &p4["cohort_size"]), (&json!("888"), &json!("9")), "{p4}");

    // Unknown perimeters, users without admin rights, anonymous callers.
    let (status, unknown) = as_app(&app, QE, Method::PATCH, "/fhir-perimeters/123456/", Some(body.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    let (status, unknown) = as_app(&app, QE, Method::PATCH, "/fhir-perimeters/abc/", Some(body.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    assert_eq!(patch(&app, &alice, "/fhir-perimeters/9999/", body.clone()).await, forbidden());
    let (status, _) = app.call(Method::PATCH, "/fhir-perimeters/9999/").json(body.clone()).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, root) = get(&app, &admin, "/accesses/perimeters/9999/").await;
    assert_eq!((&root["cohort_id"], &root["cohort_size"]), (&json!("555"), &json!("42")), "unchanged");

    // PUT on a perimeter: the original answers 500 "not implemented"; a method nobody serves is a 405.
    let (status, body) = app.call(Method::PUT, "/fhir-perimeters/1/").token(&admin).json(json!({})).send().await;
    assert_eq!((status, body), (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"PUT\" not allowed."})));
    let (status, body) = app.call(Method::PUT, "/fhir-perimeters/1/").token(&alice).json(json!({})).send().await;
    assert_eq!((status, body), forbidden());
}

#[tokio::test]
async fn anonymous_callers_get_403_and_unserved_methods_405() {
    let app = TestApp::new().await;
    let id = Uuid::new_v4();
    let cases = [
        (Method::GET, "/cohort/fhir-filters/".to_owned()),
        (Method::POST, "/cohort/fhir-filters/".to_owned()),
        (Method::PATCH, format!("/cohort/fhir-filters/{id}/")),
        (Method::DELETE, format!("/cohort/fhir-filters/{id}/")),
        (Method::DELETE, "/cohort/fhir-filters/delete_multiple/".to_owned()),
        (Method::GET, "/cohort/refresh-schedules/".to_owned()),
        (Method::POST, "/cohort/refresh-schedules/".to_owned()),
        (Method::PATCH, format!("/cohort/refresh-schedules/{id}/")),
        (Method::DELETE, format!("/cohort/refresh-schedules/{id}/")),
        (Method::GET, "/cohort/feasibility-studies/".to_owned()),
        (Method::POST, "/cohort/feasibility-studies/".to_owned()),
        (Method::GET, format!("/cohort/feasibility-studies/{id}/")),
        (Method::PATCH, format!("/cohort/feasibility-studies/{id}/")),
        (Method::GET, format!("/cohort/feasibility-studies/{id}/download/")),
        (Method::PATCH, "/fhir-perimeters/9999/".to_owned()),
        (Method::PUT, "/fhir-perimeters/1/".to_owned()),
    ];
    for (method, path) in cases {
        let (status, body) = app.call(method.clone(), &path).json(json!({"uuids": [id]})).send().await;
        assert_eq!(
            (status, body),
            (StatusCode::FORBIDDEN, json!({"detail": "Authentication credentials were not provided."})),
            "{method} {path}"
        );
    }
    app.account("alice", None).await;
    let (alice, _) = app.login("alice").await;
    for (method, path) in [
        (Method::PUT, format!("/cohort/fhir-filters/{id}/")),
        (Method::PUT, format!("/cohort/refresh-schedules/{id}/")),
        (Method::PUT, format!("/cohort/feasibility-studies/{id}/")),
        (Method::DELETE, "/cohort/refresh-schedules/".to_owned()),
    ] {
        let (status, body) = app.call(method.clone(), &path).token(&alice).json(json!({})).send().await;
        assert_eq!((status, body), not_allowed(method.as_str()), "{method} {path}");
    }
}

#[tokio::test]
async fn concurrent_duplicates_and_concurrent_runs_have_exactly_one_winner() {
    let (app, alice) = app_with_alice().await;
    let s = snapshot(&app, &alice, "Concurrence").await;
    app.queued_jobs().await;

    let body = json!({"fhir_resource": "Patient", "fhir_version": "4.0", "name": "Course", "filter": "a=b"});
    let (a, b) = tokio::join!(
        post(&app, &alice, "/cohort/fhir-filters/", body.clone()),
        post(&app, &alice, "/cohort/fhir-filters/", body.clone())
    );
    let statuses = [a.0, b.0];
    assert!(statuses.contains(&StatusCode::CREATED), "{a:?} {b:?}");
    let loser = if a.0 == StatusCode::CREATED { &b } else { &a };
    assert!(is_duplicate_error(loser.0, &loser.1), "{a:?} {b:?}");
    let (_, list) = get(&app, &alice, "/cohort/fhir-filters/").await;
    assert_eq!(list["count"], 1);

    let body = json!({"request_snapshot_id": s, "refresh_time": "08:30", "refresh_frequency": "daily"});
    let (a, b) = tokio::join!(
        post(&app, &alice, "/cohort/refresh-schedules/", body.clone()),
        post(&app, &alice, "/cohort/refresh-schedules/", body.clone())
    );
    assert!([a.0, b.0].contains(&StatusCode::CREATED), "{a:?} {b:?}");
    let (winner, loser) = if a.0 == StatusCode::CREATED { (&a, &b) } else { (&b, &a) };
    assert_eq!(loser.clone(), bad("request_snapshot", DUPLICATE_SCHEDULE));
    let id = uuid_of(&winner.1);
    let (_, list) = get(&app, &alice, "/cohort/refresh-schedules/").await;
    assert_eq!(list["count"], 1);

    // Two runners at once: the schedule is launched once.
    make_due(&app, "alice", &id).await;
    let (one, two) = tokio::join!(run_refresh(&app), run_refresh(&app));
    let launched = one["launched"].as_i64().unwrap() + two["launched"].as_i64().unwrap();
    assert_eq!(launched, 1, "{one} {two}");
    assert_eq!(app.queued_jobs().await.len(), 1);
    assert_eq!(snapshot_counts(&app, &alice, &s).await.len(), 1);
}

/// The Cohort360 app posts a request's first version twice at the same moment: exactly one root
/// version, the other gets the 400 of spec §5.5 step 2; next versions saved at once get distinct numbers.
#[tokio::test]
async fn concurrent_saves_of_a_request_get_one_first_version_and_distinct_next_versions() {
    let (app, alice) = app_with_alice().await;
    let (status, folder) = post(&app, &alice, "/cohort/folders/", json!({"name": "Concurrence"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({"name": "Requête", "parent_folder": uuid_of(&folder)});
    let request = uuid_of(&post(&app, &alice, "/cohort/requests/", body).await.1);

    let first = json!({"request": request, "serialized_query": query(json!(["4"]))});
    let saves = (0..6).map(|_| post(&app, &alice, "/cohort/request-query-snapshots/", first.clone()));
    let answers = futures_util::future::join_all(saves).await;
    let created: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, b)| b).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(
            (*status, body.clone()),
            (StatusCode::BAD_REQUEST, json!("Must provide a `previous_snapshot` if the request already has snapshots"))
        );
    }
    let root = uuid_of(created[0]);

    let next = json!({"previous_snapshot": root, "serialized_query": query(json!(["4"]))});
    let saves = (0..4).map(|_| post(&app, &alice, "/cohort/request-query-snapshots/", next.clone()));
    let mut versions: Vec<i64> = futures_util::future::join_all(saves)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["version"].as_i64().unwrap()
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [2, 3, 4, 5]);
    let (_, list) = get(&app, &alice, &format!("/cohort/requests/{request}/query-snapshots/")).await;
    assert_eq!(list["count"], 5);
}
