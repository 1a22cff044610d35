//! Export cohort subsets (spec §7.4) through the real routes and the emulator: the notes' filter and
//! the subsets an export creates, their creation queued as a cohort's is, the export waiting for them,
//! and the subsets' ends — QueryExecutor callbacks in any order, twice or at once, a failure, a subset
//! the worker or the sweeper fails — launching the export exactly once or failing it. Subsets and
//! their copies are listed nowhere, and the workspace's summaries stay what the children say.
use c360::domain::{
    cohort::{CohortResult, DatedMeasure, FhirFilter, JobStatus, Kind, Snapshot},
    exports::Export,
    summary::{CohortSummary, RequestSummary},
};
use http::StatusCode;
use integration_tests::{
    cohort::{created, delete, get, post, query, uuid_of},
    exports::{app_with, as_qe, csv_request, export_jobs, finished_cohort, user, QE},
    tasks, TestApp, ADMIN, ROOT_PERIMETER,
};
use serde_json::{json, Value};
use uuid::Uuid;

const EXPORT_CSV: i64 = 6;
/// Spec §7.4, as written there.
const NOTE_FILTER: &str = concat!(
    "type:not=https%3A%2F%2Fterminology.eds.aphp.fr%2Faphp-orbis-document-textuel-hospitalier%7Cdoc-impor",
    "&contenttype=text%2Fplain"
);
const SUBSETS_FAILED: &str = "One or multiple cohort subsets has failed";
const FAILED_SUBJECT: &str = "[Cohorte g-alice] Votre demande d'export `Cohorte g-alice` n'a pas abouti";

/// Alice, allowed to export csv, with a finished cohort `g-alice` (count 42) on perimeter 3; the
/// cohort jobs its building queued are drained.
struct Setup {
    app: TestApp,
    alice: String,
    cohort: String,
}

async fn setup() -> Setup {
    let app = app_with(&[]).await;
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g-alice").await;
    app.queued_jobs().await;
    Setup { app, alice, cohort }
}

impl Setup {
    /// Requests an export of `tables`, the `filtered` ones through the saved filter `filter`.
    async fn export(&self, tables: &[&str], filtered: &[(&str, &str)]) -> Export {
        let mut body = csv_request(&self.cohort, tables);
        for (table, filter) in filtered {
            let index = tables.iter().position(|t| t == table).unwrap();
            body["export_tables"][index]["fhir_filter"] = json!(filter);
        }
        let answer = created(&self.app, &self.alice, "/exports/", body).await;
        assert_eq!(answer["export_tables"], json!([]), "{answer}");
        self.stored(answer["uuid"].as_str().unwrap()).await
    }

    async fn stored(&self, uuid: &str) -> Export {
        self.app.state.store.export(Uuid::parse_str(uuid).unwrap()).await.unwrap().unwrap()
    }

    async fn again(&self, export: &Export) -> Export {
        self.stored(&export.uuid.to_string()).await
    }

    /// One of alice's workspace objects.
    async fn object<T: c360::store::cohort::WorkspaceObject>(&self, uuid: Uuid) -> T {
        self.app.state.store.workspace_object::<T>("alice", uuid).await.unwrap().unwrap()
    }

    async fn saved_filter(&self, resource: &str, name: &str, filter: &str) -> String {
        let body = json!({"fhir_resource": resource, "name": name, "filter": filter, "fhir_version": "4.0"});
        uuid_of(&created(&self.app, &self.alice, "/cohort/fhir-filters/", body).await)
    }

    /// The QueryExecutor's callback ending a subset's creation.
    async fn callback(&self, subset: Uuid, body: Value) -> Value {
        as_qe(&self.app, &format!("/cohort/cohorts/{subset}/"), body).await
    }

    async fn finish(&self, subset: Uuid, group_id: &str) {
        let body = json!({"request_job_status": "FINISHED", "group.id": group_id, "group.count": "40", "extra": {}});
        self.callback(subset, body).await;
    }

    /// Every request's and cohort's summary equals what alice's workspace says.
    async fn assert_summaries_agree(&self) {
        let store = &self.app.state.store;
        let kinds = [Kind::Folder, Kind::Request, Kind::Snapshot, Kind::DatedMeasure, Kind::Cohort];
        let ws = store.workspace("alice", &kinds).await.unwrap();
        for request in &ws.requests {
            let row = store.request_row("alice", request.uuid).await.unwrap().unwrap();
            assert_eq!(row.summary, RequestSummary::from_workspace(&ws, request.uuid), "request {}", request.name);
        }
        for cohort in &ws.cohorts {
            let row = store.cohort_row("alice", cohort.uuid).await.unwrap().unwrap();
            assert_eq!(row.summary, CohortSummary::from_workspace(&ws, cohort), "cohort {:?}", cohort.name);
        }
    }
}

fn subsets(export: &Export) -> Vec<Uuid> {
    export.tables.iter().filter_map(|t| t.cohort_result_subset).collect()
}

fn launch_of(export: &Export) -> Vec<Value> {
    vec![json!({"version": 1, "kind": "launch", "export": export.uuid})]
}

#[tokio::test]
async fn a_note_table_gets_the_notes_filter_and_a_subset_whose_creation_is_queued() {
    let s = setup().await;
    let export = s.export(&["person", "note"], &[]).await;
    assert_eq!((export.job.request_job_status, export.awaiting_subsets), (JobStatus::Pending, true));
    let (person, note) = (&export.tables[0], &export.tables[1]);
    assert_eq!((person.fhir_filter, person.cohort_result_subset), (None, None));

    let filter: FhirFilter = s.object(note.fhir_filter.expect("the notes' filter")).await;
    let name = format!("{}_note_(auto generated)", &export.uuid.to_string()[..8]);
    assert_eq!(
        (filter.fhir_resource.as_str(), filter.filter.as_str(), &filter.name, filter.auto_generated, &filter.owner),
        ("DocumentReference", NOTE_FILTER, &name, true, &export.owner)
    );

    let subset: CohortResult = s.object(note.cohort_result_subset.expect("the notes' subset")).await;
    assert_eq!(
        (subset.name.as_deref(), subset.is_subset, subset.owner.as_str(), subset.export, subset.job.request_job_status),
        (Some("note_g-alice"), true, "alice", Some(export.uuid), JobStatus::New)
    );
    // A copy of the source's snapshot, on the source's patients through the filter (spec §6.4).
    let source: CohortResult = s.object(Uuid::parse_str(&s.cohort).unwrap()).await;
    let source_snapshot: Snapshot = s.object(source.request_query_snapshot.unwrap()).await;
    let copy: Snapshot = s.object(subset.request_query_snapshot.unwrap()).await;
    assert_ne!(copy.uuid, source_snapshot.uuid);
    assert_eq!(
        (copy.request, copy.perimeters_ids.clone(), copy.version, &copy.owner),
        (source_snapshot.request, Some(vec!["3".to_owned()]), 1, &source_snapshot.owner)
    );
    let text = s.app.state.store.snapshot_query("alice", copy.uuid).await.unwrap().unwrap().serialized_query;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({
            "_type": "request",
            "resourceType": "DocumentReference",
            "sourcePopulation": {"caresiteCohortList": ["g-alice"]},
            "request": {"_id": 0, "_type": "basicResource", "isInclusive": true, "filterFhir": NOTE_FILTER,
                        "resourceType": "DocumentReference"},
        })
    );
    // A copy of the source's count.
    let measure: DatedMeasure = s.object(subset.dated_measure.unwrap()).await;
    assert_ne!(Some(measure.uuid), source.dated_measure);
    assert_eq!(
        (measure.measure, measure.job.request_job_status, measure.request_query_snapshot),
        (Some(42), JobStatus::Finished, copy.uuid)
    );

    // Its creation is queued as a cohort's is; the export waits.
    assert_eq!(
        s.app.queued_jobs().await,
        [json!({"version": 1, "kind": "create", "owner": "alice", "cohort": subset.uuid})]
    );
    assert!(export_jobs(&s.app).await.is_empty(), "nothing launches the export yet");
    let (_, shown) = get(&s.app, &s.alice, &format!("/exports/{}/", export.uuid)).await;
    assert_eq!(shown["request_job_status"], "pending");
    s.assert_summaries_agree().await;
}

#[tokio::test]
async fn subsets_and_their_copies_are_listed_nowhere_and_take_no_version() {
    let s = setup().await;
    let export = s.export(&["person", "note"], &[]).await;
    let subset: CohortResult = s.object(subsets(&export)[0]).await;
    let copy = subset.request_query_snapshot.unwrap();
    let source: CohortResult = s.object(Uuid::parse_str(&s.cohort).unwrap()).await;
    let source_snapshot: Snapshot = s.object(source.request_query_snapshot.unwrap()).await;

    for path in
        ["/cohort/cohorts/?limit=100", "/cohort/cohorts/?limit=100&ordering=name", "/exports/cohorts/?owner_id=alice"]
    {
        let (status, page) = get(&s.app, &s.alice, path).await;
        assert_eq!((status, &page["count"]), (StatusCode::OK, &json!(1)), "{path}: {page}");
        assert_eq!(page["results"][0]["uuid"], json!(s.cohort), "{path}");
    }
    assert_eq!(get(&s.app, &s.alice, &format!("/cohort/cohorts/{}/", subset.uuid)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&s.app, &s.alice, &format!("/exports/cohorts/{}/", subset.uuid)).await.0, StatusCode::NOT_FOUND);
    for path in ["/cohort/fhir-filters/", "/exports/fhir-filters/?owner_id=alice&fhir_resource=DocumentReference"] {
        assert_eq!(get(&s.app, &s.alice, path).await.1["count"], 0, "{path}: the notes' filter is not listed");
    }
    let versions = format!("/cohort/requests/{}/query-snapshots/", source_snapshot.request);
    let (_, listed) = get(&s.app, &s.alice, &versions).await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(
        get(&s.app, &s.alice, &format!("/cohort/request-query-snapshots/{copy}/")).await.0,
        StatusCode::NOT_FOUND
    );
    // The next version of the request is its second: the hidden copy is none.
    let next = json!({"previous_snapshot_id": source_snapshot.uuid, "serialized_query": query(json!(["3"]))});
    let saved = created(&s.app, &s.alice, "/cohort/request-query-snapshots/", next).await;
    assert_eq!(saved["version"], 2);
    s.assert_summaries_agree().await;
}

#[tokio::test]
async fn the_subsets_callback_launches_the_export_once() {
    let s = setup().await;
    let export = s.export(&["person", "note"], &[]).await;
    let subset = subsets(&export)[0];
    s.finish(subset, "g-note").await;
    assert_eq!(export_jobs(&s.app).await, launch_of(&export), "the export worker's launch");
    let launched = s.again(&export).await;
    assert_eq!((launched.job.request_job_status, launched.awaiting_subsets), (JobStatus::New, false));
    let finished: CohortResult = s.object(subset).await;
    assert_eq!((finished.group_id.as_str(), finished.job.request_job_status), ("g-note", JobStatus::Finished));
    // The app asks for the rights on the group of every cohort whose end it hears of, subsets included.
    let (status, rights) = get(&s.app, &s.alice, "/cohort/cohorts/cohort-rights/?group_id=g-note").await;
    assert_eq!((status, &rights[0]["cohort_id"]), (StatusCode::OK, &json!("g-note")), "{rights}");

    // The same callback delivered again launches nothing.
    s.finish(subset, "g-note").await;
    assert!(export_jobs(&s.app).await.is_empty());
    assert_eq!(s.again(&export).await.rev, launched.rev);
    s.assert_summaries_agree().await;
}

#[tokio::test]
async fn a_relaunched_copy_exports_through_the_original_subsets() {
    let s = setup().await;
    let export = s.export(&["person", "note"], &[]).await;
    s.finish(subsets(&export)[0], "g-note").await;
    export_jobs(&s.app).await;
    let (admin, _) = s.app.login(ADMIN).await;
    let (status, copy) = post(&s.app, &admin, &format!("/exports/{}/relaunch/", export.uuid), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    let copy = s.stored(copy["uuid"].as_str().unwrap()).await;
    assert_eq!(subsets(&copy), subsets(&export));
    assert_eq!(copy.tables[1].fhir_filter, export.tables[1].fhir_filter);
    assert_eq!((copy.job.request_job_status, copy.awaiting_subsets), (JobStatus::New, false));
    assert_eq!(export_jobs(&s.app).await, launch_of(&copy));
}

#[tokio::test]
async fn two_subsets_finishing_in_either_order_or_at_once_launch_the_export_once() {
    let s = setup().await;
    let diabetes = s.saved_filter("Condition", "Diabète", "code=E11").await;
    for order in [[0, 1], [1, 0]] {
        let export =
            s.export(&["person", "note", "condition_occurrence"], &[("condition_occurrence", &diabetes)]).await;
        let subsets = subsets(&export);
        assert_eq!(subsets.len(), 2);
        s.finish(subsets[order[0]], "g-first").await;
        assert!(export_jobs(&s.app).await.is_empty(), "{order:?}: one subset is still being built");
        assert_eq!(s.again(&export).await.job.request_job_status, JobStatus::Pending);
        s.finish(subsets[order[1]], "g-second").await;
        assert_eq!(export_jobs(&s.app).await, launch_of(&export), "{order:?}");
    }
    let condition: CohortResult = {
        let export = s.export(&["person", "condition_occurrence"], &[("condition_occurrence", &diabetes)]).await;
        s.object(subsets(&export)[0]).await
    };
    assert_eq!(condition.name.as_deref(), Some("condition_occurrence_g-alice"));
    let text = s.app.state.store.snapshot_query("alice", condition.request_query_snapshot.unwrap()).await.unwrap();
    let query: Value = serde_json::from_str(&text.unwrap().serialized_query).unwrap();
    assert_eq!((&query["resourceType"], &query["request"]["filterFhir"]), (&json!("Condition"), &json!("code=E11")));
    s.finish(condition.uuid, "g-condition").await;
    export_jobs(&s.app).await;

    // Both last callbacks at once: each reads both subsets after its own write, one launches.
    for _ in 0..3 {
        let export =
            s.export(&["note", "person", "condition_occurrence"], &[("condition_occurrence", &diabetes)]).await;
        let subsets = subsets(&export);
        tokio::join!(s.finish(subsets[0], "g-a"), s.finish(subsets[1], "g-b"));
        assert_eq!(export_jobs(&s.app).await, launch_of(&export));
        assert_eq!(s.again(&export).await.job.request_job_status, JobStatus::New);
    }
    s.assert_summaries_agree().await;
}

#[tokio::test]
async fn a_failed_subset_fails_the_export_and_its_owner_is_told() {
    let s = setup().await;
    let diabetes = s.saved_filter("Condition", "Diabète", "code=E11").await;
    let export = s.export(&["person", "note", "condition_occurrence"], &[("condition_occurrence", &diabetes)]).await;
    let subsets = subsets(&export);
    s.callback(subsets[0], json!({"request_job_status": "ERROR", "message": "Spark job failed"})).await;
    let failed = s.again(&export).await;
    assert_eq!(
        (failed.job.request_job_status, failed.job.request_job_fail_msg.as_str(), failed.awaiting_subsets),
        (JobStatus::Failed, SUBSETS_FAILED, false)
    );
    assert_eq!(s.app.outbox.subjects_to("alice@cohort360.test").last().map(String::as_str), Some(FAILED_SUBJECT));
    // The other subset ending afterwards finds the export failed: nothing moves.
    s.finish(subsets[1], "g-condition").await;
    assert_eq!(s.again(&export).await.rev, failed.rev);
    assert!(export_jobs(&s.app).await.is_empty());
    let (_, shown) = get(&s.app, &s.alice, &format!("/exports/{}/", export.uuid)).await;
    assert_eq!(
        (&shown["request_job_status"], &shown["request_job_fail_msg"]),
        (&json!("failed"), &json!(SUBSETS_FAILED))
    );
}

#[tokio::test]
async fn a_subset_the_worker_cannot_launch_or_the_sweeper_ends_fails_its_export() {
    let s = setup().await;
    let export = s.export(&["person", "note"], &[]).await;
    let job = s.app.queued_jobs().await.remove(0);
    s.app.worker(None, 20_000).handle(&job.to_string()).await.unwrap();
    let subset: CohortResult = s.object(subsets(&export)[0]).await;
    assert_eq!(subset.job.request_job_fail_msg, "QUERY_EXECUTOR_URL is not configured");
    let failed = s.again(&export).await;
    assert_eq!(
        (failed.job.request_job_status, failed.job.request_job_fail_msg.as_str()),
        (JobStatus::Failed, SUBSETS_FAILED)
    );

    // A subset left without news past its deadline.
    let stuck = s.export(&["person", "note"], &[]).await;
    let mut tasks = tasks(&s.app, None).await;
    tasks.stuck_job_deadlines = c360::services::sweeper::Deadlines::parse("new=0m").unwrap();
    scheduled_tasks::function_handler(&tasks, json!({"task": "stuck_jobs_sweeper"})).await.unwrap();
    let swept = s.again(&stuck).await;
    assert_eq!(
        (swept.job.request_job_status, swept.job.request_job_fail_msg.as_str()),
        (JobStatus::Failed, SUBSETS_FAILED)
    );
    assert!(export_jobs(&s.app).await.is_empty());
}

#[tokio::test]
async fn deleting_the_request_under_a_waiting_export_fails_the_export() {
    let s = setup().await;
    let export = s.export(&["person", "note"], &[]).await;
    assert!(export.awaiting_subsets);
    let cohort: CohortResult = s.object(Uuid::parse_str(&s.cohort).unwrap()).await;
    let snapshot: Snapshot = s.object(cohort.request_query_snapshot.unwrap()).await;
    let (status, _) = delete(&s.app, &s.alice, &format!("/cohort/requests/{}/", snapshot.request)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let failed = s.again(&export).await;
    assert_eq!(
        (failed.job.request_job_status, failed.job.request_job_fail_msg.as_str(), failed.awaiting_subsets),
        (JobStatus::Failed, SUBSETS_FAILED, false)
    );
    assert_eq!(s.app.outbox.subjects_to("alice@cohort360.test").last().map(String::as_str), Some(FAILED_SUBJECT));
    // The subset's creation, queued before the delete, ends later: its callback finds nothing.
    let late = json!({"request_job_status": "FINISHED", "group.id": "g-late", "group.count": "40"});
    let path = format!("/cohort/cohorts/{}/", subsets(&export)[0]);
    let (status, _) = s.app.call(http::Method::PATCH, &path).header("authorization", QE).json(late).send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(s.again(&export).await.rev, failed.rev);
    assert!(export_jobs(&s.app).await.is_empty());
}

#[tokio::test]
async fn excluded_tables_get_no_subset_and_the_export_launches_at_once() {
    let s = setup().await;
    let imaging = s.saved_filter("ImagingStudy", "Scanners", "modality=CT").await;
    let questionnaires = s.saved_filter("QuestionnaireResponse", "Formulaires", "status=completed").await;
    let export = s
        .export(
            &["person", "imaging_series", "questionnaireresponse__item"],
            &[("imaging_series", &imaging), ("questionnaireresponse__item", &questionnaires)],
        )
        .await;
    assert_eq!((export.job.request_job_status, export.awaiting_subsets), (JobStatus::New, false));
    assert!(subsets(&export).is_empty());
    assert_eq!(export.tables[1].fhir_filter, Some(Uuid::parse_str(&imaging).unwrap()), "the filter is kept");
    assert_eq!(export_jobs(&s.app).await, launch_of(&export));
    assert!(s.app.queued_jobs().await.is_empty(), "no cohort job");
}
