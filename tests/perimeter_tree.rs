//! The perimeter tree snapshot: containers load the tree from it, and one whose snapshot is missing,
//! older than the tree version or unreadable rebuilds the tree from the records, answers the same,
//! and stores the snapshot back.
use aws_sdk_dynamodb::{primitives::Blob, types::AttributeValue};
use c360::{domain::tree::PerimeterTree, services::perimeter_sync, store::keys};
use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN};
use serde_json::Value;

/// What the tree-using endpoints answer, as seen by `app`.
async fn answers(app: &TestApp, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/accesses/perimeters/?limit=50",
        "/accesses/perimeters/?ordering=-care_site_name&limit=5&offset=2",
        "/accesses/perimeters/?search=P1",
        "/accesses/perimeters/10/children/",
        "/accesses/perimeters/13/",
        "/accesses/perimeters/manageable/",
        "/accesses/perimeters/manageable/?type_source_value=hospital",
        "/accesses/perimeters/patient-data/rights/?limit=100",
        "/accesses/accesses/my-data-rights/",
    ] {
        let (status, body) = app.call(Method::GET, path).token(token).send().await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        out.push(body);
    }
    out
}

/// A new container on the same table: nothing in memory.
async fn new_container(app: &TestApp) -> TestApp {
    TestApp::unseeded(app.state.settings.clone()).await
}

async fn put_chunk(app: &TestApp, version: i64, bytes: &[u8]) {
    let key = keys::perimeter_tree_chunk(0);
    integration_tests::dynamodb()
        .await
        .put_item()
        .table_name(&app.state.settings.table_name)
        .item("pk", AttributeValue::S(key.pk))
        .item("sk", AttributeValue::S(key.sk))
        .item("version", AttributeValue::N(version.to_string()))
        .item("chunks", AttributeValue::N("1".into()))
        .item("data", AttributeValue::B(Blob::new(bytes)))
        .send()
        .await
        .expect("write a chunk");
}

/// The stored snapshot is current and decodes to a tree holding `perimeter` named `name`.
async fn assert_current_snapshot(app: &TestApp, perimeter: i64, name: &str) {
    let (version, snapshot) = app.state.store.perimeter_tree_snapshot().await.unwrap();
    let snapshot = snapshot.expect("a snapshot is stored");
    assert_eq!(snapshot.version, version, "the snapshot is stored back at the current version");
    let tree = PerimeterTree::decode(&snapshot.bytes).unwrap();
    assert_eq!(tree.get(perimeter).map(|p| p.name()), Some(name));
}

#[tokio::test]
async fn missing_stale_or_unreadable_snapshots_give_the_same_answers() {
    let app = TestApp::new().await;
    let (token, _) = app.login(ADMIN).await;
    let expected = answers(&app, &token).await;
    assert_current_snapshot(&app, 13, "P13").await;

    // Missing (a table written before snapshots existed).
    let client = integration_tests::dynamodb().await;
    let key = keys::perimeter_tree_chunk(0);
    client
        .delete_item()
        .table_name(&app.state.settings.table_name)
        .key("pk", AttributeValue::S(key.pk))
        .key("sk", AttributeValue::S(key.sk))
        .send()
        .await
        .unwrap();
    assert!(app.state.store.perimeter_tree_snapshot().await.unwrap().1.is_none());
    assert_eq!(answers(&new_container(&app).await, &token).await, expected);
    assert_current_snapshot(&app, 13, "P13").await;

    // Older than the version (a tree write whose snapshot was never stored).
    app.state.store.bump_perimeters_version().await.unwrap();
    assert_eq!(answers(&new_container(&app).await, &token).await, expected);
    assert_current_snapshot(&app, 13, "P13").await;

    // Unreadable at the current version.
    let (version, _) = app.state.store.perimeter_tree_snapshot().await.unwrap();
    put_chunk(&app, version, b"c360-tree-1\nnot deflate").await;
    assert_eq!(answers(&new_container(&app).await, &token).await, expected);
    assert_current_snapshot(&app, 13, "P13").await;
}

#[tokio::test]
async fn a_stale_snapshot_is_not_served_after_a_tree_write() {
    let app = TestApp::new().await;
    let (token, _) = app.login(ADMIN).await;
    // A record renamed and the version bumped, but the snapshot left as it was.
    let mut p13 = app.state.store.perimeter(13).await.unwrap().expect("P13");
    p13.name = "Renamed".into();
    app.state.store.put_perimeters(&[p13]).await.unwrap();
    app.state.store.bump_perimeters_version().await.unwrap();

    let fresh = new_container(&app).await;
    let (status, body) = fresh.call(Method::GET, "/accesses/perimeters/?search=Renamed").token(&token).send().await;
    assert_eq!((status, body["count"].as_i64()), (StatusCode::OK, Some(1)), "{body}");
    let (_, lite) =
        fresh.call(Method::GET, "/accesses/perimeters/manageable/?search=Renamed").token(&token).send().await;
    assert_eq!(lite[0]["name"], "Renamed", "{lite}");
    assert_current_snapshot(&app, 13, "Renamed").await;
}

#[tokio::test]
async fn a_virtual_cohort_callback_patches_the_snapshot() {
    let app = TestApp::new().await;
    let (token, _) = app.login(ADMIN).await;
    let before = app.state.store.perimeter_tree_snapshot().await.unwrap().0;
    perimeter_sync::set_virtual_cohort(&app.state.store, 10, Some("777"), Some("42")).await.unwrap();
    let (version, snapshot) = app.state.store.perimeter_tree_snapshot().await.unwrap();
    let snapshot = snapshot.expect("a snapshot");
    assert_eq!((version, snapshot.version), (before + 1, before + 1), "patched, not left stale");
    let tree = PerimeterTree::decode(&snapshot.bytes).unwrap();
    let p10 = tree.get(10).unwrap();
    assert_eq!((p10.cohort_id(), p10.cohort_size()), (Some("777"), Some("42")));

    let (status, body) =
        new_container(&app).await.call(Method::GET, "/accesses/perimeters/?cohort_id=777").token(&token).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["count"].as_i64(), &body["results"][0]["cohort_size"]), (Some(1), &Value::from("42")));
}
