//! `/exports/` (spec §7.3, §7.6; client contract §5.6, §7): the permission step with its French
//! details, the exporter validation and data-right check with their exact bodies, the list (who
//! sees what, paging, filters, 204), retrieve, download, retry, relaunch, logs, the forms' cohorts and
//! filters, datalabs and infrastructure providers.
use c360::domain::cohort::JobStatus;
use http::{Method, StatusCode};
use integration_tests::{
    cohort::{created, delete, get, keys, patch, post, uuid_of},
    exports::{app_with, csv_request, export_jobs, finished_cohort, user},
    s3, TestApp, ADMIN, ROOT_PERIMETER,
};
use serde_json::{json, Value};
use uuid::Uuid;

/// Roles of the demo seed (shared/src/services/seed.rs).
const READ_NOMINATIVE: i64 = 4;
const READ_PSEUDO: i64 = 5;
const EXPORT_CSV: i64 = 6;
const EXPORT_JUPYTER: i64 = 7;
const DATALABS: i64 = 10;

const FULL_KEYS: [&str; 14] = [
    "datalab",
    "export_tables",
    "group_tables",
    "motivation",
    "nominative",
    "output_format",
    "owner",
    "request_job_fail_msg",
    "request_job_id",
    "request_job_status",
    "shift_dates",
    "target_location",
    "target_name",
    "uuid",
];

/// The spec's list serializer, plus `stage` (a hive export's database preparation; beyond the original).
const LIST_KEYS: [&str; 13] = [
    "cohort_id",
    "cohort_name",
    "created_at",
    "modified_at",
    "motivation",
    "output_format",
    "owner",
    "patients_count",
    "request_job_status",
    "stage",
    "target_datalab",
    "target_name",
    "uuid",
];

fn forbidden(detail: &str) -> (StatusCode, Value) {
    (StatusCode::FORBIDDEN, json!({ "detail": detail }))
}

fn invalid(reason: &str) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!([format!("Invalid export data: {reason}")]))
}

fn not_found() -> (StatusCode, Value) {
    (StatusCode::NOT_FOUND, json!({"detail": "No Export matches the given query."}))
}

/// A user allowed to export csv with a finished cohort on perimeter 3: `(app, token, cohort)`.
async fn exporter() -> (TestApp, String, String) {
    let app = app_with(&[]).await;
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g-alice").await;
    (app, alice, cohort)
}

async fn export_of(app: &TestApp, token: &str, body: Value) -> Value {
    created(app, token, "/exports/", body).await
}

#[tokio::test]
async fn the_permission_step_answers_403_with_the_french_details() {
    let app = app_with(&[]).await;
    let reader = user(&app, "reader", Some(READ_NOMINATIVE), ROOT_PERIMETER).await;
    let csv = user(&app, "csvuser", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let jupyter = user(&app, "jupyter", Some(EXPORT_JUPYTER), ROOT_PERIMETER).await;
    let body = |format: &str, nominative: bool| json!({"output_format": format, "nominative": nominative});
    let cases = [
        (&reader, "csv", true, "Vous n'avez pas le droit d'export CSV/Excel nominatif"),
        (&reader, "xlsx", true, "Vous n'avez pas le droit d'export CSV/Excel nominatif"),
        (&jupyter, "csv", true, "Vous n'avez pas le droit d'export CSV/Excel nominatif"),
        (&csv, "csv", false, "Vous n'avez pas le droit d'export CSV/Excel pseudonymisé"),
        (&jupyter, "xlsx", false, "Vous n'avez pas le droit d'export CSV/Excel pseudonymisé"),
        (&reader, "hive", true, "Vous n'avez pas le droit d'export Jupyter nominatif"),
        (&csv, "hive", true, "Vous n'avez pas le droit d'export Jupyter nominatif"),
        (&reader, "hive", false, "Vous n'avez pas le droit d'export Jupyter pseudonymisé"),
    ];
    for (token, format, nominative, detail) in cases {
        assert_eq!(post(&app, token, "/exports/", body(format, nominative)).await, forbidden(detail), "{format}");
    }
    // Other formats pass the permission step and fail the exporter validation.
    assert_eq!(
        post(&app, &reader, "/exports/", body("parquet", true)).await,
        invalid("Missing exporter configuration for type `parquet`")
    );
    assert_eq!(post(&app, &reader, "/exports/", json!({})).await, invalid("output_format is required"));
    assert!(export_jobs(&app).await.is_empty());
}

#[tokio::test]
async fn exporter_validation_errors_have_their_exact_bodies() {
    let (app, alice, cohort) = exporter().await;
    let bob = user(&app, "bob", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let bobs = finished_cohort(&app, &bob, json!(["4"]), "g-bob").await;

    let mut two_sources = csv_request(&cohort, &["person", "note"]);
    two_sources["export_tables"][1]["cohort_result_source"] = json!(bobs);
    assert_eq!(
        post(&app, &alice, "/exports/", two_sources).await,
        invalid("All export tables must have the same source cohort")
    );
    assert_eq!(
        post(&app, &alice, "/exports/", csv_request(&bobs, &["person"])).await,
        invalid(&format!("Missing cohort with id {bobs}")),
        "another user's cohort is missing for the caller"
    );
    let mut filter_alone = csv_request(&cohort, &["person", "condition_occurrence"]);
    filter_alone["export_tables"][1]["cohort_result_source"] = Value::Null;
    filter_alone["export_tables"][1]["fhir_filter"] = json!(Uuid::new_v4());
    assert_eq!(
        post(&app, &alice, "/exports/", filter_alone).await,
        invalid("A FHIR filter was provided but not a cohort source to filter")
    );
    // A subset's filter must be one of the caller's (or the source owner's) saved filters.
    let mut filtered = csv_request(&cohort, &["person", "condition_occurrence"]);
    let unknown = Uuid::new_v4();
    filtered["export_tables"][1]["fhir_filter"] = json!(unknown);
    assert_eq!(
        post(&app, &alice, "/exports/", filtered).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"export_tables": [format!("Invalid pk \"{unknown}\" - object does not exist.")]})
        )
    );
    // Wrong types are 400s naming the field, never a 500.
    let mut wrong = csv_request(&cohort, &["person"]);
    wrong["group_tables"] = json!("maybe");
    wrong["export_tables"] = json!("person");
    let (status, body) = post(&app, &alice, "/exports/", wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(keys(&body), ["export_tables", "group_tables"]);
    let mut bad_lab = csv_request(&cohort, &["person"]);
    bad_lab["datalab"] = json!("not-a-uuid");
    assert_eq!(
        post(&app, &alice, "/exports/", bad_lab).await,
        (StatusCode::BAD_REQUEST, json!({"datalab": ["Invalid pk \"not-a-uuid\" - object does not exist."]}))
    );
    assert!(export_jobs(&app).await.is_empty(), "nothing is launched");
}

#[tokio::test]
async fn the_owner_needs_a_valid_email_address() {
    let app = app_with(&[("EMAIL_REGEX", r"^[\w.+-]+@aphp\.fr$")]).await;
    let alice = user(&app, "alice", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let cohort = finished_cohort(&app, &alice, json!(["3"]), "g1").await;
    assert_eq!(
        post(&app, &alice, "/exports/", csv_request(&cohort, &["person"])).await,
        invalid("Invalid email address 'alice@cohort360.test'. Please contact an administrator.")
    );
}

#[tokio::test]
async fn the_data_right_check_reads_the_source_cohorts_perimeters() {
    let app = app_with(&[]).await;
    // Exports on perimeter 3 only, pseudonymised reading on perimeter 8.
    let alice = user(&app, "alice", Some(EXPORT_CSV), 3).await;
    let (admin, _) = app.login(ADMIN).await;
    let (status, profiles) = get(&app, &admin, "/accesses/profiles/?user_id=alice").await;
    assert_eq!(status, StatusCode::OK, "{profiles}");
    let access = json!({"profile_id": profiles["results"][0]["id"], "perimeter_id": 8, "role_id": READ_PSEUDO});
    created(&app, &admin, "/accesses/accesses/", access).await;

    let on_3 = finished_cohort(&app, &alice, json!(["3"]), "g3").await;
    let on_3_and_8 = finished_cohort(&app, &alice, json!(["3", "8"]), "g38").await;
    let on_9 = finished_cohort(&app, &alice, json!(["9"]), "g9").await;
    assert_eq!(
        post(&app, &alice, "/exports/", csv_request(&on_3_and_8, &["person"])).await,
        invalid("The user is missing `right_read_patient_nominative` on the following perimeters: [8].")
    );
    // No reading right at all on 9: absent from the rights, so not checked (the original's quirk).
    export_of(&app, &alice, csv_request(&on_9, &["person"])).await;
    export_of(&app, &alice, csv_request(&on_3, &["person"])).await;
}

#[tokio::test]
async fn a_csv_export_is_created_new_with_its_target_and_queued_once() {
    let (app, alice, cohort) = exporter().await;
    let export = export_of(&app, &alice, csv_request(&cohort, &["person", "condition_occurrence"])).await;
    assert_eq!(keys(&export), FULL_KEYS);
    let bucket = app.state.settings.exports_bucket.clone().unwrap();
    assert_eq!(
        (&export["owner"], &export["output_format"], &export["request_job_status"], &export["nominative"]),
        (&json!("alice"), &json!("csv"), &json!("new"), &json!(true))
    );
    assert_eq!(
        (&export["motivation"], &export["target_location"], &export["export_tables"], &export["datalab"]),
        (&json!("Étude - sur deux lignes"), &json!(format!("s3://{bucket}/exports")), &json!([]), &Value::Null)
    );
    let name = export["target_name"].as_str().unwrap();
    let stamp = name.strip_prefix("alice_").unwrap_or_else(|| panic!("{name}"));
    assert_eq!((stamp.len(), &stamp[8..9]), (21, "_"), "{stamp}");
    assert!(stamp.replace('_', "").bytes().all(|b| b.is_ascii_digit()), "YYYYmmdd_HHMMSSffffff: {stamp}");

    assert_eq!(export_jobs(&app).await, [json!({"version": 1, "kind": "launch", "export": export["uuid"]})]);
    let (status, again) = get(&app, &alice, &format!("/exports/{}/", uuid_of(&export))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["export_tables"][1]["name"], "condition_occurrence", "retrieve shows the tables");
    assert_eq!(keys(&again["export_tables"][0]).len(), 7);
}

#[tokio::test]
async fn a_plain_user_lists_their_own_exports_and_managers_list_everyones() {
    let (app, alice, cohort) = exporter().await;
    let bob = user(&app, "bob", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let labs = user(&app, "labs", Some(DATALABS), ROOT_PERIMETER).await;
    let bobs = finished_cohort(&app, &bob, json!(["4"]), "g-bob").await;
    let mut alices = Vec::new();
    for _ in 0..3 {
        alices.push(uuid_of(&export_of(&app, &alice, csv_request(&cohort, &["person"])).await));
    }
    let bobs_export = uuid_of(&export_of(&app, &bob, csv_request(&bobs, &["person"])).await);
    let nobody = user(&app, "nobody", None, ROOT_PERIMETER).await;

    let (status, page) = get(&app, &alice, "/exports/?limit=2").await;
    assert_eq!((status, &page["count"]), (StatusCode::OK, &json!(3)), "{page}");
    let uuids: Vec<&str> = page["results"].as_array().unwrap().iter().map(|e| e["uuid"].as_str().unwrap()).collect();
    assert_eq!(uuids, [alices[2].as_str(), alices[1].as_str()], "newest first");
    assert_eq!(keys(&page["results"][0]), LIST_KEYS);
    let row = &page["results"][0];
    assert_eq!(
        (&row["owner"], &row["cohort_id"], &row["cohort_name"], &row["patients_count"], &row["target_datalab"]),
        (&json!("Test Useralice (alice)"), &json!("g-alice"), &json!("Cohorte g-alice"), &json!(42), &Value::Null)
    );
    assert!(page["next"].as_str().unwrap().ends_with("/exports/?limit=2&offset=2"), "{page}");

    for manager in [&labs, &app.login(ADMIN).await.0] {
        let (_, all) = get(&app, manager, "/exports/?limit=20").await;
        assert_eq!(all["count"], 4, "{all}");
        assert_eq!(all["results"][0]["uuid"], json!(bobs_export));
    }
    assert_eq!(get(&app, &nobody, "/exports/").await, (StatusCode::NO_CONTENT, Value::Null), "an empty page");
    assert_eq!(get(&app, &alice, "/exports/?offset=3").await.0, StatusCode::NO_CONTENT);

    // The Cohort360 app's list request (client contract §8.1), and the full objects.
    let (_, mine) =
        get(&app, &alice, "/exports/?output_format=csv%2Cxlsx&offset=0&owner=alice&ordering=-created_at").await;
    assert_eq!(mine["count"], 3);
    let (_, xlsx) = get(&app, &alice, "/exports/?output_format=xlsx").await;
    assert_eq!(xlsx, Value::Null, "no xlsx export: 204");
    let (_, searched) = get(&app, &labs, "/exports/?search=g-bob").await;
    assert_eq!((searched["count"].clone(), searched["results"][0]["uuid"].clone()), (json!(1), json!(bobs_export)));
    let (_, by_owner) = get(&app, &labs, "/exports/?owner=USERBOB&status=new&ordering=owner").await;
    assert_eq!(by_owner["count"], 1);
    let (_, full) = get(&app, &alice, "/exports/?return_full_objects=true&limit=1").await;
    assert_eq!(keys(&full["results"][0]), FULL_KEYS);
    // A filtered list reads its exports without their tables, then the page's whole for full objects.
    let (_, filtered) = get(&app, &alice, "/exports/?return_full_objects=true&output_format=csv&limit=1").await;
    assert_eq!(filtered["results"][0], full["results"][0], "{filtered}");
    assert!(!filtered["results"][0]["export_tables"].as_array().unwrap().is_empty(), "{filtered}");
    let (status, bad) = get(&app, &alice, "/exports/?ordering=motivation").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

#[tokio::test]
async fn only_the_owner_retrieves_and_nobody_edits_an_export() {
    let (app, alice, cohort) = exporter().await;
    let bob = user(&app, "bob", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let (admin, _) = app.login(ADMIN).await;
    let export = uuid_of(&export_of(&app, &alice, csv_request(&cohort, &["person"])).await);
    let path = format!("/exports/{export}/");
    assert_eq!(get(&app, &bob, &path).await, not_found());
    assert_eq!(get(&app, &admin, &path).await, not_found(), "not even a full admin's");
    assert_eq!(get(&app, &alice, "/exports/not-a-uuid/").await, not_found());
    let not_allowed =
        |m: &str| (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": format!("Method \"{m}\" not allowed.")}));
    assert_eq!(patch(&app, &alice, &path, json!({"motivation": "x"})).await, not_allowed("PATCH"));
    assert_eq!(delete(&app, &alice, &path).await, not_allowed("DELETE"));
    let (status, _) = app.call(Method::PUT, &path).token(&alice).json(json!({})).send().await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Marks an export finished as the worker would (and optionally created `days_ago`).
async fn finish(app: &TestApp, export: &str, days_ago: i64) -> c360::domain::exports::Export {
    let mut e = app.state.store.export(Uuid::parse_str(export).unwrap()).await.unwrap().unwrap();
    e.job.request_job_status = JobStatus::Finished;
    e.job.request_job_id = "task-1".into();
    e.stamps.created_at -= time::Duration::days(days_ago);
    app.state.store.save_export(&e).await.unwrap()
}

#[tokio::test]
async fn download_checks_owner_status_type_and_retention_then_serves_the_zip() {
    let (app, alice, cohort) = exporter().await;
    let bob = user(&app, "bob", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let export = uuid_of(&export_of(&app, &alice, csv_request(&cohort, &["person"])).await);
    let path = format!("/exports/{export}/download/");
    let not_done = "Error downloading files: The export is not done yet or has failed or not downloadable";
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::BAD_REQUEST, json!(not_done)));

    let finished = finish(&app, &export, 0).await;
    let bucket = app.state.settings.exports_bucket.clone().unwrap();
    let zip = c360::domain::feasibility::zip_one("person.csv", b"person_id\n1\n");
    s3().await
        .put_object()
        .bucket(&bucket)
        .key(format!("exports/{}.zip", finished.target_name))
        .body(zip.clone().into())
        .send()
        .await
        .unwrap();
    assert_eq!(get(&app, &bob, &path).await, not_found(), "owner only");
    let (status, headers, _) = app.call(Method::GET, &path).token(&alice).send_full().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(headers["content-disposition"], "attachment; filename=export_g-alice.zip");
    assert_eq!(headers["content-length"], zip.len().to_string());

    let old = uuid_of(&export_of(&app, &alice, csv_request(&cohort, &["person"])).await);
    finish(&app, &old, 7).await;
    let gone = "Error downloading files: The exported files are no longer available on the server.";
    assert_eq!(get(&app, &alice, &format!("/exports/{old}/download/")).await, (StatusCode::BAD_REQUEST, json!(gone)));
}

#[tokio::test]
async fn a_large_download_is_a_presigned_redirect_naming_the_file() {
    let (app, alice, cohort) = exporter().await;
    let export = uuid_of(&export_of(&app, &alice, csv_request(&cohort, &["person"])).await);
    let finished = finish(&app, &export, 0).await;
    let bucket = app.state.settings.exports_bucket.clone().unwrap();
    let big = vec![b'x'; usize::try_from(exports_api::STREAM_LIMIT_BYTES).unwrap() + 1];
    s3().await
        .put_object()
        .bucket(&bucket)
        .key(format!("exports/{}.zip", finished.target_name))
        .body(big.into())
        .send()
        .await
        .unwrap();
    let (status, headers, _) =
        app.call(Method::GET, &format!("/exports/{export}/download/")).token(&alice).send_full().await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["location"].to_str().unwrap();
    assert!(location.contains(&format!("/exports/{}.zip?", finished.target_name)), "{location}");
    assert!(
        location.contains("response-content-disposition=attachment%3B%20filename%3Dexport_g-alice.zip"),
        "{location}"
    );
    assert!(location.contains("X-Amz-Expires=300"), "{location}");
}

#[tokio::test]
async fn retry_relaunch_and_logs_are_for_full_admins() {
    let (app, alice, cohort) = exporter().await;
    let (admin, _) = app.login(ADMIN).await;
    let export = export_of(&app, &alice, csv_request(&cohort, &["person", "visit_occurrence"])).await;
    let uuid = uuid_of(&export);
    export_jobs(&app).await;
    let denied = forbidden("You do not have permission to perform this action.");
    for action in ["retry", "relaunch"] {
        assert_eq!(post(&app, &alice, &format!("/exports/{uuid}/{action}/"), json!({"signal": {}})).await, denied);
    }
    assert_eq!(get(&app, &alice, &format!("/exports/{uuid}/logs/")).await, denied);
    assert_eq!(post(&app, &admin, &format!("/exports/{}/retry/", Uuid::new_v4()), json!({})).await, not_found());

    // A failed export starts over.
    let mut failed = app.state.store.export(Uuid::parse_str(&uuid).unwrap()).await.unwrap().unwrap();
    failed.job.request_job_status = JobStatus::Failed;
    failed.job.request_job_fail_msg = "boom".into();
    app.state.store.save_export(&failed).await.unwrap();
    assert_eq!(
        post(&app, &admin, &format!("/exports/{uuid}/retry/"), json!({})).await,
        (StatusCode::OK, json!(format!("The export `{uuid}` has been relaunched")))
    );
    let (_, retried) = get(&app, &alice, &format!("/exports/{uuid}/")).await;
    assert_eq!((&retried["request_job_status"], &retried["request_job_fail_msg"]), (&json!("new"), &json!("")));
    assert_eq!(export_jobs(&app).await, [json!({"version": 1, "kind": "launch", "export": uuid})]);

    let (status, copy) = post(&app, &admin, &format!("/exports/{uuid}/relaunch/"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    assert_ne!(copy["uuid"], json!(uuid));
    assert_eq!(
        (&copy["owner"], &copy["motivation"], &copy["request_job_status"], &copy["output_format"]),
        (&json!("alice"), &export["motivation"], &json!("new"), &json!("csv"))
    );
    let (_, copied) = get(&app, &alice, &format!("/exports/{}/", uuid_of(&copy))).await;
    assert_eq!(copied["export_tables"].as_array().unwrap().len(), 2);
    assert_eq!(export_jobs(&app).await, [json!({"version": 1, "kind": "launch", "export": copy["uuid"]})]);

    let logs = format!("/exports/{uuid}/logs/");
    assert_eq!(get(&app, &admin, &logs).await, (StatusCode::BAD_REQUEST, json!("The target export has no job ID")));
    finish(&app, &uuid, 0).await;
    assert_eq!(
        get(&app, &admin, &logs).await,
        (StatusCode::OK, json!("No logs available. The target export has finished successfully"))
    );
}

#[tokio::test]
async fn the_forms_read_finished_cohorts_and_saved_filters_of_a_visible_owner() {
    let (app, alice, cohort) = exporter().await;
    let bob = user(&app, "bob", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let labs = user(&app, "labs", Some(DATALABS), ROOT_PERIMETER).await;
    let filter = json!({"fhir_resource": "Condition", "name": "Diabète", "filter": "code=E11", "fhir_version": "4.0"});
    let saved = created(&app, &alice, "/cohort/fhir-filters/", filter).await;

    let (status, mine) = get(&app, &alice, "/exports/cohorts/?owner_id=alice&limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["results"], json!([{"uuid": cohort, "owner": "alice", "name": "Cohorte g-alice"}]));
    let (_, theirs) = get(&app, &bob, "/exports/cohorts/?owner_id=alice").await;
    assert_eq!(theirs["count"], 0, "a plain user sees only their own");
    let (_, managed) = get(&app, &labs, "/exports/cohorts/?owner_id=alice&limit=1000").await;
    assert_eq!(managed["count"], 1);
    assert_eq!(get(&app, &bob, &format!("/exports/cohorts/{cohort}/")).await.0, StatusCode::NOT_FOUND);

    let path = "/exports/fhir-filters/?owner_id=alice&fhir_resource=Condition&ordering=-created_at&limit=1000";
    let (_, filters) = get(&app, &alice, path).await;
    assert_eq!(filters["count"], 1, "{filters}");
    assert_eq!((&filters["results"][0]["uuid"], &filters["results"][0]["name"]), (&saved["uuid"], &json!("Diabète")));
    let (_, other) = get(&app, &alice, "/exports/fhir-filters/?owner_id=alice&fhir_resource=Patient").await;
    assert_eq!(other["count"], 0);
    assert_eq!(get(&app, &alice, &format!("/exports/fhir-filters/{}/", uuid_of(&saved))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn datalabs_and_infrastructure_providers_need_the_datalab_rights() {
    let app = app_with(&[]).await;
    let labs = user(&app, "labs", Some(DATALABS), ROOT_PERIMETER).await;
    let plain = user(&app, "plain", Some(READ_NOMINATIVE), ROOT_PERIMETER).await;
    let denied = forbidden("You do not have permission to perform this action.");
    assert_eq!(get(&app, &plain, "/exports/datalabs/").await, denied);
    assert_eq!(get(&app, &plain, "/exports/infrastructure-providers/").await, denied);
    assert_eq!(post(&app, &plain, "/exports/infrastructure-providers/", json!({"name": "x"})).await, denied);

    let provider = created(&app, &labs, "/exports/infrastructure-providers/", json!({"name": "Cloud AP-HP"})).await;
    assert_eq!(keys(&provider), ["name", "uuid"]);
    let body = json!({"name": "lab 1", "infrastructure_provider": provider["uuid"]});
    assert_eq!(
        post(&app, &labs, "/exports/datalabs/", body).await,
        (StatusCode::BAD_REQUEST, json!({"name": ["No spaces allowed"]}))
    );
    let body = json!({"name": "lab1", "infrastructure_provider": provider["uuid"]});
    let lab = created(&app, &labs, "/exports/datalabs/", body.clone()).await;
    assert_eq!(keys(&lab), ["created_at", "infrastructure_provider", "name", "uuid"]);
    assert_eq!(lab["infrastructure_provider"], provider);
    assert_eq!(
        post(&app, &labs, "/exports/datalabs/", body).await,
        (StatusCode::BAD_REQUEST, json!({"name": ["datalab with this name already exists."]}))
    );
    let (status, page) = get(&app, &labs, "/exports/datalabs/?page=1&ordering=name&search=cloud").await;
    assert_eq!((status, &page["count"]), (StatusCode::OK, &json!(1)), "{page}");
    let (status, renamed) =
        patch(&app, &labs, &format!("/exports/datalabs/{}/", uuid_of(&lab)), json!({"name": "lab2"})).await;
    assert_eq!((status, &renamed["name"]), (StatusCode::OK, &json!("lab2")));

    let (_, providers) = get(&app, &labs, "/exports/infrastructure-providers/").await;
    assert_eq!(providers["results"], json!([provider]));
    let one = format!("/exports/infrastructure-providers/{}/", uuid_of(&provider));
    assert_eq!(delete(&app, &labs, &one).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&app, &labs, &one).await.0, StatusCode::NOT_FOUND, "soft-deleted");
    let (_, providers) = get(&app, &labs, "/exports/infrastructure-providers/").await;
    assert_eq!(providers["count"], 0);
    // Its datalabs still name it, as in the original; a new datalab cannot be given it.
    let lab_path = format!("/exports/datalabs/{}/", uuid_of(&lab));
    assert_eq!(get(&app, &labs, &lab_path).await.1["infrastructure_provider"], provider);
    let (_, page) = get(&app, &labs, "/exports/datalabs/?page=1&search=cloud").await;
    assert_eq!(page["results"][0]["infrastructure_provider"], provider, "{page}");
    let body = json!({"name": "lab3", "infrastructure_provider": provider["uuid"]});
    assert_eq!(post(&app, &labs, "/exports/datalabs/", body).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn export_stats_follow_the_visibility_of_their_export() {
    let (app, alice, cohort) = exporter().await;
    let bob = user(&app, "bob", Some(EXPORT_CSV), ROOT_PERIMETER).await;
    let labs = user(&app, "labs", Some(DATALABS), ROOT_PERIMETER).await;
    let export = export_of(&app, &alice, csv_request(&cohort, &["person"])).await;
    let body = json!({"name": "rows", "type": "Integer", "value": "1200", "export": export["uuid"]});
    let stat = created(&app, &alice, "/exports/export-stats/", body.clone()).await;
    assert_eq!(
        keys(&stat),
        [
            "created_at",
            "deleted",
            "deleted_by_cascade",
            "export",
            "export_target",
            "modified_at",
            "name",
            "type",
            "uuid",
            "value"
        ]
    );
    assert_eq!((&stat["export_target"], &stat["type"]), (&export["target_name"], &json!("Integer")));
    assert_eq!(
        post(&app, &bob, "/exports/export-stats/", body).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"export": [format!("Invalid pk \"{}\" - object does not exist.", uuid_of(&export))]})
        ),
        "another user's export"
    );
    let bad = json!({"name": "rows", "type": "Float", "value": "1", "export": export["uuid"]});
    assert_eq!(
        post(&app, &alice, "/exports/export-stats/", bad).await,
        (StatusCode::BAD_REQUEST, json!({"type": ["\"Float\" is not a valid choice."]}))
    );
    let (_, mine) = get(&app, &alice, "/exports/export-stats/?export_target_name=ALICE").await;
    assert_eq!(mine["count"], 1);
    assert_eq!(get(&app, &bob, "/exports/export-stats/").await.1["count"], 0);
    assert_eq!(get(&app, &labs, "/exports/export-stats/?type=Integer&ordering=value").await.1["count"], 1);
    let one = format!("/exports/export-stats/{}/", uuid_of(&stat));
    assert_eq!(get(&app, &bob, &one).await.0, StatusCode::NOT_FOUND);
    let (status, edited) = patch(&app, &alice, &one, json!({"value": "1300"})).await;
    assert_eq!((status, &edited["value"], &edited["name"]), (StatusCode::OK, &json!("1300"), &json!("rows")));
}
