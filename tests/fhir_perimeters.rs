//! The FHIR perimeter sync (spec §10.1, §6.6) end to end: a fake FHIR server on a random local
//! port serves the Organizations, the sync writes the tree through the real SDK into the emulator.
use std::sync::Arc;

use c360::{
    config::{FhirSettings, Secret},
    domain::perimeter::Perimeter,
    services::perimeter_sync::{set_virtual_cohort, sync_fhir, FhirSyncReport, SyncReport},
    store::DynamoStore,
    AppError,
};
use fakes::fhir::{demo_organizations, FhirServer};
use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN};
use serde_json::{json, Value};

const TOKEN: &str = "fhir-test-token-0123456789";
const PSEUDO_READER: i64 = 5;

struct Fhir {
    server: Arc<FhirServer>,
    settings: FhirSettings,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fhir {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fake FHIR server under `/fhir` that requires [`TOKEN`] and serves `page_size` per page.
async fn fake_fhir(page_size: usize, organizations: Vec<Value>) -> Fhir {
    let server = Arc::new(FhirServer::new(TOKEN, page_size, organizations));
    let (url, task) = fakes::spawn(fakes::fhir::router("/fhir", server.clone()), 0).await.expect("bind a local port");
    let settings = FhirSettings {
        url: Some(format!("{url}/fhir")),
        access_token: Secret::new(TOKEN),
        perimeter_types: ["AP-HP", "hospital", "hospital_depart", "hospital_serv"].map(String::from).to_vec(),
    };
    Fhir { server, settings, task }
}

async fn empty_store() -> DynamoStore {
    DynamoStore::new(integration_tests::dynamodb().await, integration_tests::fresh_table().await)
}

async fn sync(store: &DynamoStore, fhir: &Fhir) -> Result<FhirSyncReport, AppError> {
    let http = c360::aws::http_client(std::time::Duration::from_secs(10));
    sync_fhir(store, &fhir.settings, &http, c360::domain::time::now()).await
}

async fn perimeter(store: &DynamoStore, id: i64) -> Option<Perimeter> {
    store.perimeters().await.unwrap().into_iter().find(|p| p.id == id)
}

fn org(id: &str, name: &str, part_of: Option<&str>) -> Value {
    let mut org = json!({"resourceType": "Organization", "id": id, "active": true, "name": name});
    if let Some(parent) = part_of {
        org["partOf"] = json!({"reference": format!("Organization/{parent}")});
    }
    org
}

/// The demo Organizations with `id` closed (`active: false`).
fn demo_without(id: &str) -> Vec<Value> {
    demo_organizations()
        .into_iter()
        .map(|mut o| {
            if o["id"] == id {
                o["active"] = json!(false);
            }
            o
        })
        .collect()
}

#[tokio::test]
async fn first_sync_creates_the_tree_across_pages_and_a_second_changes_nothing() {
    let store = empty_store().await;
    // 16 active demo Organizations (and a closed one) served 5 a page: 4 pages.
    let fhir = fake_fhir(5, demo_organizations()).await;
    let first = sync(&store, &fhir).await.unwrap();
    assert_eq!(fhir.server.searches(), 4, "every next link is followed");
    assert_eq!((first.organizations, first.tree.added, first.tree.removed), (16, 16, 0), "{first:?}");
    assert_eq!(first.virtual_cohorts_needed.len(), 16, "new perimeters need a virtual cohort");
    assert_eq!(first.virtual_cohorts_queued, 0, "the sync alone queues nothing");
    let as_json = serde_json::to_value(&first).unwrap();
    assert_eq!((as_json["added"].as_i64(), &as_json["virtual_cohorts_queued"]), (Some(16), &json!(0)));

    let p13 = perimeter(&store, 13).await.unwrap();
    assert_eq!(p13.full_path.as_deref(), Some("APHP/P2/P10/P13"));
    assert_eq!((p13.level, p13.parent_id, p13.above_levels_ids.clone()), (Some(4), Some(10), vec![9999, 2, 10]));
    assert_eq!(p13.type_source_value.as_deref(), Some("hospital_serv"));
    assert_eq!((p13.short_name.as_deref(), p13.source_value.as_deref()), (Some("P13"), Some("SRC13")));
    assert_eq!(perimeter(&store, 10).await.unwrap().inferior_levels_ids, [13, 14]);
    assert!(perimeter(&store, 15).await.is_none(), "inactive Organizations are not perimeters");

    // The QueryExecutor callback of a virtual cohort (§6.6), then the same Organizations again.
    set_virtual_cohort(&store, 13, Some("list-13"), Some("7")).await.unwrap();
    assert!(matches!(set_virtual_cohort(&store, 4242, Some("x"), None).await, Err(AppError::NotFound("Perimeter"))));
    let version = store.perimeters_version().await.unwrap();
    let second = sync(&store, &fhir).await.unwrap();
    assert_eq!(second.tree, SyncReport::default(), "the same Organizations change nothing");
    assert_eq!(store.perimeters_version().await.unwrap(), version, "nothing written, containers keep their tree");
    assert_eq!(second.virtual_cohorts_needed.len(), 15);
    assert!(!second.virtual_cohorts_needed.contains(&13), "13 has its virtual cohort");
    let p13 = perimeter(&store, 13).await.unwrap();
    assert_eq!((p13.cohort_id.as_deref(), p13.cohort_size.as_deref()), (Some("list-13"), Some("7")));
}

#[tokio::test]
async fn the_bearer_token_is_required_and_a_failed_fetch_changes_nothing() {
    let store = empty_store().await;
    let mut fhir = fake_fhir(100, demo_organizations()).await;
    fhir.settings.access_token = Secret::new("wrong-token-abcdef");
    let err = sync(&store, &fhir).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(!err.to_string().contains("wrong-token-abcdef"));
    fhir.settings.url = None;
    assert!(sync(&store, &fhir).await.unwrap_err().to_string().contains("FHIR_URL"));
    // Nothing listed is refused: it would remove every perimeter and close every access.
    let empty = fake_fhir(100, vec![]).await;
    assert!(sync(&store, &empty).await.unwrap_err().to_string().contains("no active Organization"));
    assert!(store.perimeters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_closed_organization_removes_its_perimeter_and_closes_its_accesses_keeping_cohort_ids() {
    let app = TestApp::new().await; // the demo tree, whose cohort ids are the perimeter ids
    app.account_on("3000009", Some(PSEUDO_READER), 14).await;
    let store = &app.state.store;
    set_virtual_cohort(store, 10, Some("list-10"), Some("42")).await.unwrap();
    let fhir = fake_fhir(100, demo_without("14")).await;
    let report = sync(store, &fhir).await.unwrap();
    assert_eq!((report.tree.removed, report.tree.closed_accesses), (1, 1), "{report:?}");
    assert!(report.tree.cohort_id_changes.is_empty(), "{report:?}");
    assert_eq!(report.virtual_cohorts_needed, [2, 10, 9999], "the ancestors of P14 lost a descendant");
    let p10 = perimeter(store, 10).await.unwrap();
    assert_eq!((p10.cohort_id.as_deref(), p10.cohort_size.as_deref()), (Some("list-10"), Some("42")));
    assert_eq!(perimeter(store, 3).await.unwrap().cohort_id.as_deref(), Some("3"));
    assert_eq!(sync(store, &fhir).await.unwrap().tree, SyncReport::default());

    app.state.invalidate_perimeter_tree();
    let (admin, _) = app.login(ADMIN).await;
    assert_eq!(app.call(Method::GET, "/accesses/perimeters/14/").token(&admin).send().await.0, StatusCode::NOT_FOUND);
    let (reader, _) = app.login("3000009").await;
    let (_, mine) = app.call(Method::GET, "/accesses/accesses/my-accesses/").token(&reader).send().await;
    assert_eq!(mine, json!([]), "the access on the removed perimeter is closed");
}

#[tokio::test]
async fn several_top_level_organizations_hang_under_the_synthetic_root() {
    let store = empty_store().await;
    let hospitals =
        vec![org("100", "Hôpital A", None), org("200", "Hôpital B", None), org("101", "Service A1", Some("100"))];
    let fhir = fake_fhir(100, hospitals.clone()).await;
    sync(&store, &fhir).await.unwrap();
    let root = perimeter(&store, 1).await.unwrap();
    assert_eq!((root.name.as_str(), root.level, root.parent_id), ("All Hospitals", Some(1), None));
    assert_eq!((root.type_source_value.as_deref(), root.inferior_levels_ids.clone()), (Some("AP-HP"), vec![100, 200]));
    let service = perimeter(&store, 101).await.unwrap();
    assert_eq!(service.full_path.as_deref(), Some("All Hospitals/Hôpital A/Service A1"));
    assert_eq!(service.type_source_value.as_deref(), Some("hospital_depart"));

    // Hospital B closes: A is the only top level, the synthetic root goes and A becomes the root.
    fhir.server.set_organizations(vec![hospitals[0].clone(), hospitals[2].clone()]);
    let report = sync(&store, &fhir).await.unwrap();
    assert_eq!((report.tree.removed, report.tree.moved), (2, 1), "{report:?}");
    let a = perimeter(&store, 100).await.unwrap();
    assert_eq!((a.level, a.parent_id, a.full_path.as_deref()), (Some(1), None, Some("Hôpital A")));
}

#[tokio::test]
async fn the_scheduled_task_syncs_from_fhir_once_enabled() {
    let app = TestApp::new().await;
    let fhir = fake_fhir(7, demo_organizations()).await;
    let mut tasks = integration_tests::tasks(&app, None).await;
    tasks.fhir = fhir.settings.clone();
    let skipped = scheduled_tasks::function_handler(&tasks, json!({"task": "fhir_perimeters_sync"})).await.unwrap();
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert_eq!(fhir.server.searches(), 0);
    tasks.fhir_perimeters_sync = true;
    let out = scheduled_tasks::function_handler(&tasks, json!({"task": "fhir_perimeters_sync"})).await.unwrap();
    assert_eq!((&out["status"], &out["report"]["organizations"]), (&json!("done"), &json!(16)), "{out}");
    assert_eq!(out["report"]["removed"], 0);
    let needed = out["report"]["virtual_cohorts_needed"].as_array().unwrap().len();
    assert_eq!(out["report"]["virtual_cohorts_queued"], needed, "one creation job per perimeter needing one");
    let queued = app.queued_jobs().await;
    assert_eq!(queued.len(), needed);
    assert!(queued.iter().all(|j| j["kind"] == "virtual_cohort"), "{queued:?}");
    assert_eq!(fhir.server.searches(), 3);
}
