//! The list summaries of the cohort workspace (docs/data-model.md, "Workspace lists"): after any
//! history of writes — concurrent ones included — every request's, cohort's and count's summary and
//! the owner's counters equal what the workspace's children say, and the lists read from them answer
//! as the lists computed from the whole workspace. The backfill brings tables written before the
//! summaries to the same state, and may run again or resume.
use aws_sdk_dynamodb::types::AttributeValue;
use c360::{
    domain::{
        cohort::{CohortResult, Kind},
        summary::{cohorts_by_count, CohortSummary, RequestSummary},
    },
    services::backfill::backfill_summaries,
    store::{keys, summaries::built_on_of},
};
use http::{Method, StatusCode};
use integration_tests::cohort::{app_with_alice, delete, get, patch, post, query, uuid_of};
use integration_tests::{dynamodb, TestApp};
use serde_json::{json, Value};

const QE: &str = "Bearer test-qe-token";

async fn as_executor(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PATCH, path).header("authorization", QE).json(body).send().await
}

async fn created(app: &TestApp, token: &str, path: &str, body: Value) -> String {
    let (status, created) = post(app, token, path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {created}");
    uuid_of(&created)
}

async fn request(app: &TestApp, token: &str, folder: &str, name: &str) -> String {
    created(app, token, "/cohort/requests/", json!({"name": name, "parent_folder": folder})).await
}

async fn count(app: &TestApp, token: &str, snapshot: &str) -> String {
    created(app, token, "/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot})).await
}

async fn finish_count(app: &TestApp, measure: &str, n: i64) {
    let body = json!({"request_job_status": "FINISHED", "count": n.to_string(), "extra": {}});
    let (status, body) = as_executor(app, &format!("/cohort/dated-measures/{measure}/"), body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn next_version(app: &TestApp, token: &str, previous: &str) -> (StatusCode, Value) {
    let body = json!({"previous_snapshot_id": previous, "serialized_query": query(json!(["7"]))});
    post(app, token, "/cohort/request-query-snapshots/", body).await
}

/// Every summary of `owner`'s workspace equals what its children say.
async fn assert_summaries_agree(app: &TestApp, owner: &str) {
    let store = &app.state.store;
    let kinds = [Kind::Folder, Kind::Request, Kind::Snapshot, Kind::DatedMeasure, Kind::Cohort];
    let ws = store.workspace(owner, &kinds).await.unwrap();
    for folder in &ws.folders {
        let holds = ws.requests.iter().filter(|r| r.parent_folder == folder.uuid).count() as i64;
        assert_eq!(folder.requests_count, Some(holds), "folder {}", folder.name);
    }
    for request in &ws.requests {
        let row = store.request_row(owner, request.uuid).await.unwrap().expect("an alive request");
        assert_eq!(row.summary, RequestSummary::from_workspace(&ws, request.uuid), "request {}", request.name);
    }
    for cohort in &ws.cohorts {
        let row = store.cohort_row(owner, cohort.uuid).await.unwrap().expect("an alive cohort");
        assert_eq!(row.summary, CohortSummary::from_workspace(&ws, cohort), "cohort {:?}", cohort.name);
        let snapshot = ws.snapshot(cohort.request_query_snapshot.unwrap()).unwrap();
        assert_eq!(cohort.request, Some(snapshot.request), "cohort {:?} names its request", cohort.name);
    }
    let built = cohorts_by_count(&ws);
    for measure in &ws.measures {
        let item = store.raw(&keys::workspace_object(Kind::DatedMeasure, owner, measure.uuid)).await.unwrap().unwrap();
        assert_eq!(built_on_of(&item), built.get(&measure.uuid).cloned().unwrap_or_default(), "count {}", measure.uuid);
    }
    let listed: Vec<&CohortResult> = ws.cohorts.iter().filter(|c| !c.is_subset).collect();
    let counts = store.workspace_counts(owner).await.unwrap();
    assert_eq!(counts.unwrap_or((0, 0)), (ws.requests.len() as i64, listed.len() as i64), "the counters of {owner}");
}

/// The lists as the index serves them, and as the owner's items give them (`x=1` is no filter of
/// either list, but leaves the index order): both must agree.
async fn assert_lists_agree(app: &TestApp, token: &str) -> (Value, Value) {
    let (status, requests) = get(app, token, "/cohort/requests/?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{requests}");
    let (_, requests_read) = get(app, token, "/cohort/requests/?limit=100&x=1").await;
    assert_eq!(requests["results"], requests_read["results"]);
    assert_eq!(requests["count"], requests_read["count"]);
    let (status, cohorts) = get(app, token, "/cohort/cohorts/?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{cohorts}");
    let (_, cohorts_read) = get(app, token, "/cohort/cohorts/?limit=100&x=1").await;
    assert_eq!(cohorts["results"], cohorts_read["results"]);
    assert_eq!(cohorts["count"], cohorts_read["count"]);
    (requests, cohorts)
}

/// A history touching every summary: versions saved at once, counts finishing out of order and
/// twice, cohorts built on unfinished counts, global counts, samples renamed while their callback
/// arrives, deletes racing new counts and shares, a request moved between folders meanwhile.
async fn busy_history(app: &TestApp, alice: &str) {
    let folder = created(app, alice, "/cohort/folders/", json!({"name": "Études"})).await;
    let other_folder = created(app, alice, "/cohort/folders/", json!({"name": "Archives"})).await;
    // Requests created while their folder is renamed: every row shows the folder's last name.
    let folder_path = format!("/cohort/folders/{folder}/");
    let (r1, r2, r3, renamed) = tokio::join!(
        request(app, alice, &folder, "Diabète"),
        request(app, alice, &folder, "Asthme"),
        request(app, alice, &folder, "Vide"),
        patch(app, alice, &folder_path, json!({"name": "Études 2026", "description": "Cohortes"}))
    );
    assert_eq!(renamed.0, StatusCode::OK, "{}", renamed.1);
    // The app posts a first version twice at once: one wins.
    let first = json!({"request_id": r1, "serialized_query": query(json!(["1"]))});
    let (a, b) = tokio::join!(
        post(app, alice, "/cohort/request-query-snapshots/", first.clone()),
        post(app, alice, "/cohort/request-query-snapshots/", first)
    );
    let s1 = if a.0 == StatusCode::CREATED { uuid_of(&a.1) } else { uuid_of(&b.1) };
    assert_eq!([a.0, b.0].iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{} {}", a.1, b.1);
    let (a, b) = tokio::join!(next_version(app, alice, &s1), next_version(app, alice, &s1));
    assert_eq!((a.0, b.0), (StatusCode::CREATED, StatusCode::CREATED), "{} {}", a.1, b.1);
    // Saved at once, they take versions 2 and 3 in either order.
    let (s2, s3) = if a.1["version"] == 2 { (uuid_of(&a.1), uuid_of(&b.1)) } else { (uuid_of(&b.1), uuid_of(&a.1)) };
    let t1 = created(
        app,
        alice,
        "/cohort/request-query-snapshots/",
        json!({"request_id": r2, "serialized_query": query(json!(["2"]))}),
    )
    .await;

    let m2a = count(app, alice, &s2).await;
    let (m2b, m1, mt) = tokio::join!(count(app, alice, &s2), count(app, alice, &s1), count(app, alice, &t1));
    // Callbacks out of order, one duplicated.
    tokio::join!(finish_count(app, &m2b, 20), finish_count(app, &m2a, 10), finish_count(app, &m2b, 20));
    finish_count(app, &m1, 100).await;

    // A cohort with a global estimate, and one built on a count that has not finished yet.
    let c1_body =
        json!({"name": "C1", "request_query_snapshot_id": s1, "dated_measure_id": m1, "global_estimate": true});
    let c2_body = json!({"name": "C2", "request_query_snapshot_id": t1, "dated_measure_id": mt});
    let r1_path = format!("/cohort/requests/{r1}/");
    let (c1, c2, renamed) = tokio::join!(
        created(app, alice, "/cohort/cohorts/", c1_body),
        created(app, alice, "/cohort/cohorts/", c2_body),
        patch(app, alice, &r1_path, json!({"name": "Diabète de type 2", "parent_folder": other_folder}))
    );
    assert_eq!(renamed.0, StatusCode::OK, "{}", renamed.1);
    let c1_item: CohortResult = cohort_record(app, &c1).await;
    let global = c1_item.dated_measure_global.expect("a global count").to_string();
    let global_done = json!({"request_job_status": "FINISHED", "count": "0", "minimum": "80", "maximum": "120"});
    let (global_path, c1_path) = (format!("/cohort/dated-measures/{global}/"), format!("/cohort/cohorts/{c1}/"));
    let (a, _, b) = tokio::join!(
        as_executor(app, &global_path, global_done),
        finish_count(app, &mt, 77),
        as_executor(app, &c1_path, json!({"request_job_status": "FINISHED", "group.id": "901", "group.count": "98"}))
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{} {}", a.1, b.1);

    // Samples: one renamed while its callback arrives, one moved to another parent, one made a
    // regular cohort (its count, used only by a sample until then, is shown from then on), and the
    // first deleted while a new count starts.
    let c3_body = json!({"name": "C3", "request_query_snapshot_id": s1, "dated_measure_id": m1});
    let c3 = created(app, alice, "/cohort/cohorts/", c3_body).await;
    let sample =
        created(app, alice, "/cohort/cohorts/", json!({"name": "S1", "parent_cohort": c1, "sampling_ratio": 0.5}))
            .await;
    let sample2 =
        created(app, alice, "/cohort/cohorts/", json!({"name": "S2", "parent_cohort": c3, "sampling_ratio": 0.25}))
            .await;
    let sample3 =
        created(app, alice, "/cohort/cohorts/", json!({"name": "S3", "parent_cohort": c1, "sampling_ratio": 0.1}))
            .await;
    let sample_path = format!("/cohort/cohorts/{sample}/");
    let (a, b) = tokio::join!(
        patch(app, alice, &sample_path, json!({"name": "S1 renommé", "sampling_ratio": 0.4})),
        as_executor(
            app,
            &sample_path,
            json!({"request_job_status": "FINISHED", "group.id": "902", "group.count": "49"})
        )
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{} {}", a.1, b.1);
    let (status, body) = patch(app, alice, &format!("/cohort/cohorts/{sample2}/"), json!({"parent_cohort": c1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        patch(app, alice, &format!("/cohort/cohorts/{sample3}/"), json!({"parent_cohort": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (deleted, new_count) = tokio::join!(delete(app, alice, &sample_path), count(app, alice, &s1));
    assert_eq!(deleted.0, StatusCode::NO_CONTENT, "{}", deleted.1);
    finish_count(app, &new_count, 101).await;

    // A share racing the delete of another request, then a cascade from a request with cohorts.
    let share = json!({"recipients": "bob", "name": "Pour Bob"});
    let (share_path, r3_path) =
        (format!("/cohort/request-query-snapshots/{s3}/share/"), format!("/cohort/requests/{r3}/"));
    let (shared, deleted) = tokio::join!(post(app, alice, &share_path, share), delete(app, alice, &r3_path));
    assert_eq!((shared.0, deleted.0), (StatusCode::CREATED, StatusCode::NO_CONTENT), "{} {}", shared.1, deleted.1);
    let (status, body) = delete(app, alice, &format!("/cohort/requests/{r2}/")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = delete(app, alice, &format!("/cohort/cohorts/{c2}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the cascade binned it: {body}");
    let _ = s2;
}

async fn cohort_record(app: &TestApp, uuid: &str) -> CohortResult {
    let uuid = uuid::Uuid::parse_str(uuid).unwrap();
    app.state.store.workspace_object::<CohortResult>("alice", uuid).await.unwrap().expect("alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summaries_agree_with_their_children_after_concurrent_writes() {
    let (app, alice) = app_with_alice().await;
    app.account("bob", None).await;
    busy_history(&app, &alice).await;
    assert_summaries_agree(&app, "alice").await;
    assert_summaries_agree(&app, "bob").await;
    let (requests, cohorts) = assert_lists_agree(&app, &alice).await;
    assert_eq!(requests["count"], 1, "{requests}");
    let versions: Vec<i64> = requests["results"][0]["query_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![3, 2, 1], "one first version, then two next ones");
    let shown: Vec<Value> = requests["results"][0]["query_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["patients_count"].clone())
        .collect();
    // Version 1 shows its newest count (101), version 2 the newer of its two (10, created first,
    // finished last, is older than 20), version 3 none.
    assert_eq!(shown, vec![Value::Null, json!(20), json!(101)], "{requests}");
    let c1 = &cohorts["results"].as_array().unwrap().iter().find(|c| c["name"] == "C1").cloned().expect("C1 listed");
    assert_eq!(
        (c1["result_size"].clone(), c1["measure_min"].clone(), c1["measure_max"].clone()),
        (json!(98), json!(80), json!(120))
    );
    let samples: Vec<&str> =
        c1["sample_cohorts"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(samples, vec!["S2"], "{c1}");
    assert_eq!(c1["request"]["name"], "Diabète de type 2");
    let (bob, _) = app.login("bob").await;
    let (requests, _) = assert_lists_agree(&app, &bob).await;
    assert_eq!(requests["results"][0]["name"], "Pour Bob");
}

/// Removes every summary attribute from `owner`'s items, as a table written before them holds them.
async fn strip_summaries(app: &TestApp, owner: &str) {
    let client = dynamodb().await;
    let table = app.state.settings.table_name.clone();
    let items = app.state.store.query_partition(&keys::workspace_partition(owner), None, true).await.unwrap();
    let summary_attribute = |name: &str| {
        ["sn_", "co_", "dm_", "pm_", "hd_", "cb_", "smp_", "v_", "gsi3", "summary_rev", "requests_count"]
            .iter()
            .any(|p| name.starts_with(p))
    };
    for item in items {
        let sk = item["sk"].as_s().unwrap().clone();
        if sk == "#COUNTS" {
            client
                .delete_item()
                .table_name(&table)
                .key("pk", item["pk"].clone())
                .key("sk", item["sk"].clone())
                .send()
                .await
                .unwrap();
            continue;
        }
        let mut removed: Vec<String> = item.keys().filter(|k| summary_attribute(k)).cloned().collect();
        if sk.starts_with("COHORT#") {
            removed.push("request".into());
        }
        if removed.is_empty() {
            continue;
        }
        let mut update =
            client.update_item().table_name(&table).key("pk", item["pk"].clone()).key("sk", item["sk"].clone());
        let names: Vec<String> = (0..removed.len()).map(|i| format!("#r{i}")).collect();
        for (placeholder, name) in names.iter().zip(&removed) {
            update = update.expression_attribute_names(placeholder, name);
        }
        update.update_expression(format!("REMOVE {}", names.join(", "))).send().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_backfill_gives_tables_written_before_the_summaries_the_same_lists() {
    let (app, alice) = app_with_alice().await;
    app.account("bob", None).await;
    // A table the previous version wrote: no layout marker, no summaries.
    let client = dynamodb().await;
    let marker = keys::workspace_layout();
    client
        .delete_item()
        .table_name(&app.state.settings.table_name)
        .key("pk", AttributeValue::S(marker.pk.clone()))
        .key("sk", AttributeValue::S(marker.sk.clone()))
        .send()
        .await
        .unwrap();
    busy_history(&app, &alice).await;
    strip_summaries(&app, "alice").await;
    strip_summaries(&app, "bob").await;
    assert!(!app.state.store.workspace_layout_ready().await.unwrap());
    // Until the backfill, the lists are computed from the workspaces, as before.
    let (status, before_requests) = get(&app, &alice, "/cohort/requests/?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{before_requests}");
    let (_, before_cohorts) = get(&app, &alice, "/cohort/cohorts/?limit=100").await;
    let (_, before_retrieve) =
        get(&app, &alice, &format!("/cohort/requests/{}/", uuid_of(&before_requests["results"][0]))).await;

    let mut reports = Vec::new();
    let done = backfill_summaries(&app.state.store, |p| reports.push(p.to_string())).await.unwrap();
    assert_eq!(done.owners_done, done.owners_total);
    assert_eq!(reports.len(), done.owners_total, "one progress line per owner: {reports:?}");
    assert!(reports.last().unwrap().starts_with(&format!("{0} / {0} owners", done.owners_total)), "{reports:?}");
    assert!(done.items_written > 0);
    assert!(app.state.store.workspace_layout_ready().await.unwrap());
    assert_summaries_agree(&app, "alice").await;
    assert_summaries_agree(&app, "bob").await;
    let (after_requests, after_cohorts) = assert_lists_agree(&app, &alice).await;
    assert_eq!(after_requests, before_requests);
    assert_eq!(after_cohorts, before_cohorts);
    let (_, after_retrieve) =
        get(&app, &alice, &format!("/cohort/requests/{}/", uuid_of(&before_requests["results"][0]))).await;
    assert_eq!(after_retrieve, before_retrieve);

    // Idempotent: a second run writes the same values.
    backfill_summaries(&app.state.store, |_| {}).await.unwrap();
    assert_summaries_agree(&app, "alice").await;
    assert_eq!(assert_lists_agree(&app, &alice).await.0, before_requests);
    // Resumable: a run that stopped after the last owner only marks the layout.
    let cursor = keys::workspace_backfill_cursor();
    client
        .put_item()
        .table_name(&app.state.settings.table_name)
        .item("pk", AttributeValue::S(cursor.pk.clone()))
        .item("sk", AttributeValue::S(cursor.sk.clone()))
        .item("after", AttributeValue::S("~".into()))
        .send()
        .await
        .unwrap();
    let resumed = backfill_summaries(&app.state.store, |_| {}).await.unwrap();
    assert_eq!((resumed.owners_done, resumed.items_written), (resumed.owners_total, 0));
    assert!(app.state.store.get::<Value>(&cursor).await.unwrap().is_none(), "the cursor goes when the run ends");
    // The operators' one-shot task knows the work is done.
    let tasks = integration_tests::tasks(&app, None).await;
    let out = scheduled_tasks::function_handler(&tasks, json!({"task": "workspace_summaries_backfill"})).await.unwrap();
    assert_eq!(out["status"], "skipped", "{out}");
}
