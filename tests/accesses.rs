//! `/accesses/` end to end (spec §4): the permission matrix on the demo tree, date rules with their
//! exact bodies, data rights, perimeters and roles.
use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN};
use serde_json::{json, Value};
use time::Duration;

// Demo roles (c360::services::seed::demo_roles).
const FULL_ADMIN: i64 = 1;
const ADMIN_MANAGER: i64 = 2;
const DATA_MANAGER: i64 = 3;
const NOMINATIVE_READER: i64 = 4;
const PSEUDO_READER: i64 = 5;

fn iso(offset: Duration) -> String {
    c360::domain::time::iso(c360::domain::time::now() + offset)
}

async fn profile_id(app: &TestApp, token: &str, username: &str) -> i64 {
    let (status, body) =
        app.call(Method::GET, &format!("/accesses/profiles/?user_id={username}")).token(token).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"][0]["id"].as_i64().expect("a profile")
}

async fn grant(app: &TestApp, token: &str, profile: i64, role: i64, perimeter: i64) -> Value {
    let (status, body) = app
        .call(Method::POST, "/accesses/accesses/")
        .token(token)
        .json(json!({"profile_id": profile, "role_id": role, "perimeter_id": perimeter}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The worked example of spec §4.3: user X holds a nominative reader access on P1, an admin-manager
/// access on P4 and a data-manager access on P10.
async fn worked_example() -> (TestApp, String, i64) {
    let app = TestApp::new().await;
    app.account("3000001", None).await;
    let (admin, _) = app.login(ADMIN).await;
    let x = profile_id(&app, &admin, "3000001").await;
    for (role, perimeter) in [(NOMINATIVE_READER, 1), (ADMIN_MANAGER, 4), (DATA_MANAGER, 10)] {
        grant(&app, &admin, x, role, perimeter).await;
    }
    (app, admin, x)
}

#[tokio::test]
async fn editable_flags_of_a_users_accesses_follow_the_rights_schema() {
    let (app, admin, x) = worked_example().await;
    app.account("3000002", Some(ADMIN_MANAGER)).await;
    app.account("3000003", Some(DATA_MANAGER)).await;
    app.account("3000004", Some(NOMINATIVE_READER)).await;
    let callers = [
        (admin.clone(), [true, true, true]),
        (app.login("3000002").await.0, [true, false, true]),
        (app.login("3000003").await.0, [true, false, false]),
    ];
    for (token, expected) in callers {
        let (status, body) = app
            .call(Method::GET, &format!("/accesses/accesses/?profile_id={x}&ordering=perimeter_name"))
            .token(&token)
            .send()
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let by_perimeter: Vec<(i64, bool)> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["perimeter_id"].as_i64().unwrap(), a["editable"].as_bool().unwrap()))
            .collect();
        // Ordered by perimeter name: P1, P10, P4.
        assert_eq!(by_perimeter, [(1, expected[0]), (10, expected[2]), (4, expected[1])], "{body}");
    }
    let (reader, _) = app.login("3000004").await;
    let (status, body) =
        app.call(Method::GET, &format!("/accesses/accesses/?profile_id={x}")).token(&reader).send().await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"detail": "You do not have permission to perform this action."}))
    );
}

#[tokio::test]
async fn object_endpoints_need_the_right_to_manage_that_access() {
    let (app, admin, x) = worked_example().await;
    app.account("3000002", Some(ADMIN_MANAGER)).await;
    let (manager, _) = app.login("3000002").await;
    let (_, list) = app.call(Method::GET, &format!("/accesses/accesses/?profile_id={x}")).token(&admin).send().await;
    let id_on = |p: i64| {
        list["results"].as_array().unwrap().iter().find(|a| a["perimeter_id"] == p).unwrap()["id"].as_i64().unwrap()
    };
    let (status, body) =
        app.call(Method::GET, &format!("/accesses/accesses/{}/", id_on(1))).token(&manager).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"]["id"], NOMINATIVE_READER);
    assert_eq!(body["perimeter"]["names"], json!({"name": "P1", "short": "P1", "source_value": "SRC1"}));
    assert!(body.get("editable").is_none(), "editable only exists in the list modes");
    let (status, _) = app.call(Method::GET, &format!("/accesses/accesses/{}/", id_on(4))).token(&manager).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        app.call(Method::PATCH, &format!("/accesses/accesses/{}/close/", id_on(4))).token(&manager).send().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Creating needs the right to manage that role there (stricter than the original).
    let y = profile_id(&app, &admin, "3000002").await;
    let (status, _) = app
        .call(Method::POST, "/accesses/accesses/")
        .token(&manager)
        .json(json!({"profile_id": y, "role_id": ADMIN_MANAGER, "perimeter_id": 0}))
        .send()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::POST, "/accesses/accesses/")
        .token(&manager)
        .json(json!({"profile_id": y, "role_id": PSEUDO_READER, "perimeter_id": 0}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn date_rules_answer_the_original_messages() {
    let app = TestApp::new().await;
    app.account("3000001", None).await;
    let (admin, _) = app.login(ADMIN).await;
    let x = profile_id(&app, &admin, "3000001").await;
    let post = |body: Value| app.call(Method::POST, "/accesses/accesses/").token(&admin).json(body);
    let base = json!({"profile_id": x, "role_id": PSEUDO_READER, "perimeter_id": 2});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let cases = [
        (with(json!({"start_datetime": iso(-Duration::hours(1))})), "La date de début ne peut pas être dans le passé"),
        (with(json!({"end_datetime": iso(-Duration::hours(1))})), "La date de fin ne peut pas être dans le passé"),
        (
            with(json!({"start_datetime": iso(Duration::days(2)), "end_datetime": iso(Duration::days(1))})),
            "La date de fin ne peut pas précéder la date de début",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = post(body).send().await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, json!({"error": message})));
    }
    let (status, errors) = post(json!({"profile_id": x, "role_id": 999})).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(errors["perimeter_id"], json!(["This field is required."]));
    let (status, errors) = post(json!({"profile_id": x, "role_id": 999, "perimeter_id": 2})).send().await;
    assert_eq!(
        (status, errors),
        (StatusCode::BAD_REQUEST, json!({"role_id": ["Invalid pk \"999\" - object does not exist."]}))
    );

    // Defaults: starts now, ends in 365 days.
    let running = grant(&app, &admin, x, PSEUDO_READER, 2).await;
    assert_eq!(running["is_valid"], true);
    let id = running["id"].as_i64().unwrap();
    let patch = |body: Value| app.call(Method::PATCH, &format!("/accesses/accesses/{id}/")).token(&admin).json(body);
    for (body, message) in [
        (json!({}), "No data was provided to update access"),
        (json!({"role_id": 1}), "Only `start_datetime` and `end_datetime` can be updated"),
        (json!({"start_datetime": iso(Duration::days(1)), "end_datetime": ""}), "Missing dates to updating access"),
        (
            json!({"start_datetime": iso(Duration::days(1))}),
            "La date de début ne peut pas être modifiée car elle est passée",
        ),
    ] {
        let (status, answer) = patch(body).send().await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, json!({"error": message})));
    }
    let new_end = iso(Duration::days(10));
    let (status, patched) = patch(json!({"end_datetime": new_end})).send().await;
    assert_eq!((status, patched["end_datetime"].as_str()), (StatusCode::OK, Some(new_end.as_str())));

    let (status, answer) = app.call(Method::DELETE, &format!("/accesses/accesses/{id}/")).token(&admin).send().await;
    assert_eq!(
        (status, answer),
        (StatusCode::BAD_REQUEST, json!({"error": "L'accès est déjà activé, il ne peut plus être supprimé."}))
    );
    let (status, closed) =
        app.call(Method::PATCH, &format!("/accesses/accesses/{id}/close/")).token(&admin).send().await;
    assert_eq!((status, closed["is_valid"].clone()), (StatusCode::OK, json!(false)));
    let (status, answer) =
        app.call(Method::PATCH, &format!("/accesses/accesses/{id}/close/")).token(&admin).send().await;
    assert_eq!((status, answer), (StatusCode::BAD_REQUEST, json!({"error": "L'accès est déjà clôturé"})));

    let future = post(with(json!({"start_datetime": iso(Duration::days(3))}))).send().await.1;
    let future_id = future["id"].as_i64().unwrap();
    let (status, answer) =
        app.call(Method::PATCH, &format!("/accesses/accesses/{future_id}/close/")).token(&admin).send().await;
    assert_eq!(
        (status, answer),
        (StatusCode::BAD_REQUEST, json!({"error": "L'accès ne peut pas être clôturé car n'a pas encore commencé"}))
    );
    assert_eq!(
        app.call(Method::DELETE, &format!("/accesses/accesses/{future_id}/")).token(&admin).send().await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::GET, &format!("/accesses/accesses/{future_id}/")).token(&admin).send().await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn perimeter_mode_lists_valid_accesses_with_parents_and_children() {
    let (app, admin, _) = worked_example().await;
    let ids = |body: &Value| -> Vec<i64> {
        let mut p: Vec<i64> = body["results"]
            .as_array()
            .map(|r| r.iter().map(|a| a["perimeter_id"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        p.sort();
        p
    };
    let (_, own) = app.call(Method::GET, "/accesses/accesses/?perimeter_id=10").token(&admin).send().await;
    assert_eq!(ids(&own), [10]);
    let (_, with_parents) =
        app.call(Method::GET, "/accesses/accesses/?perimeter_id=10&include_parents=true").token(&admin).send().await;
    assert_eq!(ids(&with_parents), [10, 9999], "the admin's full-admin access on the root impacts inferior levels");
    let (_, with_children) =
        app.call(Method::GET, "/accesses/accesses/?perimeter_id=0&include_children=true").token(&admin).send().await;
    assert_eq!(ids(&with_children), [4]);
    let (status, empty) = app.call(Method::GET, "/accesses/accesses/?perimeter_id=5").token(&admin).send().await;
    assert_eq!((status, empty), (StatusCode::OK, json!([])), "an empty page is a bare list");
    let (status, _) =
        app.call(Method::GET, "/accesses/accesses/?perimeter_id=10&include_parents=yes").token(&admin).send().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn my_accesses_and_my_data_rights() {
    let app = TestApp::new().await;
    app.account_on("3000005", Some(NOMINATIVE_READER), 1).await; // valid for 30 days
    let (reader, _) = app.login("3000005").await;
    let (status, mine) = app.call(Method::GET, "/accesses/accesses/my-accesses/").token(&reader).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["role"]["right_read_patient_nominative"], true);
    assert_eq!(mine[0]["is_valid"], true);
    let (_, expiring) =
        app.call(Method::GET, "/accesses/accesses/my-accesses/?expiring=true").token(&reader).send().await;
    assert_eq!(expiring[0]["perimeter"], "P1");
    assert_eq!(expiring[0]["profile"], "Test User3000005 (3000005)");
    let (admin, _) = app.login(ADMIN).await;
    app.account("3000008", None).await;
    let long = profile_id(&app, &admin, "3000008").await;
    grant(&app, &admin, long, PSEUDO_READER, 1).await; // 365 days by default
    let (holder, _) = app.login("3000008").await;
    let (_, none) = app.call(Method::GET, "/accesses/accesses/my-accesses/?expiring=true").token(&holder).send().await;
    assert_eq!(none, json!({"message": "No accesses to expire in the next 30 days"}));
    // Any `expiring` key selects the flat shape; `false` lists every valid access in it.
    let (status, flat) =
        app.call(Method::GET, "/accesses/accesses/my-accesses/?expiring=false").token(&holder).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((flat.as_array().map(Vec::len), &flat[0]["perimeter"]), (Some(1), &json!("P1")), "{flat}");

    let (_, rights) =
        app.call(Method::GET, "/accesses/accesses/my-data-rights/?perimeters_ids=6,2").token(&reader).send().await;
    assert_eq!(rights.as_array().unwrap().len(), 1, "{rights}");
    assert_eq!(
        (rights[0]["perimeter_id"].as_i64(), rights[0]["right_read_patient_nominative"].as_bool()),
        (Some(6), Some(true))
    );
    assert_eq!(rights[0]["right_search_patients_by_ipp"], true);
    let (status, body) =
        app.call(Method::GET, "/accesses/accesses/my-data-rights/?perimeters_ids=6,x").token(&reader).send().await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!("`perimeters_ids` must be integers, got `6,x` instead"))
    );
    // A reader is not an access manager: the access list is refused.
    assert_eq!(app.call(Method::GET, "/accesses/accesses/").token(&reader).send().await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn perimeters_tree_manageable_and_patient_data_rights() {
    let app = TestApp::new().await;
    app.account_on("3000006", Some(DATA_MANAGER), 0).await;
    app.account_on("3000007", Some(NOMINATIVE_READER), 2).await;
    let (manager, _) = app.login("3000006").await;
    let (reader, _) = app.login("3000007").await;

    let (status, all) = app.call(Method::GET, "/accesses/perimeters/?limit=-1").token(&reader).send().await;
    assert_eq!((status, all["count"].clone()), (StatusCode::OK, json!(16)));
    let (_, hospitals) = app
        .call(Method::GET, "/accesses/perimeters/?type_source_value=hospital&ordering=-care_site_name")
        .token(&reader)
        .send()
        .await;
    let names: Vec<&str> =
        hospitals["results"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["P2", "P1", "P0"]);
    let (_, one) = app.call(Method::GET, "/accesses/perimeters/10/").token(&reader).send().await;
    assert_eq!(
        (one["care_site_name"].as_str(), one["parent_id"].as_str(), one["inferior_levels_ids"].as_str()),
        (Some("P10"), Some("2"), Some("13,14"))
    );
    let (_, children) = app.call(Method::GET, "/accesses/perimeters/10/children/").token(&reader).send().await;
    assert_eq!(children["count"], 2);
    assert_eq!(
        app.call(Method::POST, "/accesses/perimeters/").token(&reader).json(json!({})).send().await.0,
        StatusCode::FORBIDDEN
    );

    let (_, tops) = app.call(Method::GET, "/accesses/perimeters/manageable/").token(&manager).send().await;
    assert_eq!(tops.as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect::<Vec<_>>(), [0]);
    let (_, searched) =
        app.call(Method::GET, "/accesses/perimeters/manageable/?search=P1").token(&manager).send().await;
    assert_eq!(searched.as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect::<Vec<_>>(), [11, 12]);
    let (_, none) = app.call(Method::GET, "/accesses/perimeters/manageable/").token(&reader).send().await;
    assert_eq!(none, json!([]));

    let (_, rights) = app.call(Method::GET, "/accesses/perimeters/patient-data/rights/").token(&reader).send().await;
    assert_eq!(rights["count"], 1);
    assert_eq!(rights["results"][0]["read_role"], "READ_PATIENT_NOMINATIVE");
    let (_, expanded) =
        app.call(Method::GET, "/accesses/perimeters/patient-data/rights/?limit=-1").token(&reader).send().await;
    assert_eq!(expanded["count"], 6, "P2 and its five descendants");
    let (_, empty) = app.call(Method::GET, "/accesses/perimeters/patient-data/rights/").token(&manager).send().await;
    assert_eq!(empty, json!({}));

    let (status, read) = app
        .call(Method::GET, "/accesses/perimeters/patient-data/read/?cohort_ids=13,9&mode=max")
        .token(&reader)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["allow_read_patient_data_nomi"], true);
    let (status, body) = app
        .call(Method::GET, "/accesses/perimeters/patient-data/read/?cohort_ids=13,6&mode=min")
        .token(&reader)
        .send()
        .await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"error": "User has no data reading accesses"})));
    let (status, body) =
        app.call(Method::GET, "/accesses/perimeters/patient-data/read/?mode=min").token(&reader).send().await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "Missing `cohort_ids` parameter"})));
}

#[tokio::test]
async fn roles_are_full_admin_business_with_consistency_and_delete_guards() {
    let (app, admin, _) = worked_example().await;
    app.account("3000002", Some(ADMIN_MANAGER)).await;
    let (manager, _) = app.login("3000002").await;

    let (status, roles) =
        app.call(Method::GET, "/accesses/roles/?ordering=name&limit=100").token(&manager).send().await;
    assert_eq!((status, roles["count"].clone()), (StatusCode::OK, json!(10)));
    assert_eq!(roles["results"][0]["name"], "Administrateur");
    assert_eq!(roles["results"][0]["help_text"][0], "Super user");

    let new_role = json!({"name": "Lecteur P", "right_read_patient_pseudonymized": true});
    assert_eq!(
        app.call(Method::POST, "/accesses/roles/").token(&manager).json(new_role.clone()).send().await.0,
        StatusCode::FORBIDDEN
    );
    let (status, created) =
        app.call(Method::POST, "/accesses/roles/").token(&admin).json(new_role.clone()).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, errors) = app.call(Method::POST, "/accesses/roles/").token(&admin).json(new_role).send().await;
    assert_eq!((status, errors), (StatusCode::BAD_REQUEST, json!({"name": ["role with this name already exists."]})));
    let (status, errors) = app
        .call(Method::POST, "/accesses/roles/")
        .token(&admin)
        .json(json!({"name": "IPP", "right_search_patients_by_ipp": true}))
        .send()
        .await;
    assert_eq!(
        (status, errors),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "Cannot create a role allowing to search by IPP but not read patient data in nominative mode"})
        )
    );

    let id = created["id"].as_i64().unwrap();
    let (status, patched) = app
        .call(Method::PATCH, &format!("/accesses/roles/{id}/"))
        .token(&admin)
        .json(json!({"right_read_patient_nominative": true}))
        .send()
        .await;
    assert_eq!((status, patched["right_read_patient_nominative"].clone()), (StatusCode::OK, json!(true)));

    let (status, body) = app.call(Method::DELETE, &format!("/accesses/roles/{FULL_ADMIN}/")).token(&admin).send().await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, json!({"error": "Cannot delete the Full Admin role"})));
    let (status, body) =
        app.call(Method::DELETE, &format!("/accesses/roles/{NOMINATIVE_READER}/")).token(&admin).send().await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, json!({"error": "This role is attached to existing accesses"})));
    assert_eq!(
        app.call(Method::DELETE, &format!("/accesses/roles/{id}/")).token(&admin).send().await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) =
        app.call(Method::POST, "/accesses/roles/").token(&admin).json(json!({"name": "Lecteur P"})).send().await;
    assert_eq!(status, StatusCode::CREATED, "the name of a deleted role may be reused");

    let (_, assignable) =
        app.call(Method::GET, "/accesses/roles/assignable/?perimeter_id=0&limit=100").token(&manager).send().await;
    let names: Vec<&str> = assignable.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"Lecteur de données nominatives") && !names.contains(&"Administrateur des accès"),
        "{names:?}"
    );
    let (status, body) = app.call(Method::GET, "/accesses/roles/assignable/").token(&manager).send().await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "Missing parameter: `perimeter_id`"})));

    let (status, holders) =
        app.call(Method::GET, &format!("/accesses/roles/{NOMINATIVE_READER}/users/")).token(&manager).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(holders["results"][0]["provider_username"], "3000001");
    assert!(holders["results"][0]["start_datetime"].as_str().unwrap().ends_with("+00:00"));
    let (status, _) = app.call(Method::GET, "/accesses/roles/10/users/").token(&manager).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, catalogue) = app.call(Method::GET, "/accesses/rights/").token(&manager).send().await;
    assert_eq!(
        catalogue[0],
        json!({"name": "Administration", "is_global": true, "rights": [{"name": "right_full_admin", "label": "Administrateur", "depends_on": null}]})
    );
    assert_eq!(catalogue.as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn tree_sync_is_idempotent_closes_accesses_of_removed_perimeters_and_follows_moves() {
    let app = TestApp::new().await;
    app.account_on("3000009", Some(PSEUDO_READER), 14).await;
    app.account_on("3000010", Some(PSEUDO_READER), 13).await;
    let now = c360::domain::time::now();
    let demo = integration_tests::DEMO_TREE;
    let same = c360::services::perimeter_sync::apply_document(&app.state.store, demo, now).await.unwrap();
    assert_eq!(
        same,
        c360::services::perimeter_sync::SyncReport::default(),
        "the seeded document again changes nothing"
    );

    // P14 disappears, P13 moves under P9 (the structure comes from the parent links).
    let changed: String =
        demo.lines()
            .filter(|line| !line.starts_with("14;"))
            .map(|line| {
                if line.starts_with("13;") {
                    "13;P13;P13;hospital_serv;SRC13;Local P13;13;9;4;9,2,9999;"
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    let report = c360::services::perimeter_sync::apply_document(&app.state.store, &changed, now).await.unwrap();
    assert_eq!(
        (report.removed, report.moved, report.closed_accesses, report.reindexed_accesses),
        (1, 1, 1, 1),
        "{report:?}"
    );
    let again = c360::services::perimeter_sync::apply_document(&app.state.store, &changed, now).await.unwrap();
    assert_eq!(again, c360::services::perimeter_sync::SyncReport::default());

    app.state.invalidate_perimeter_tree();
    let (admin, _) = app.login(ADMIN).await;
    assert_eq!(app.call(Method::GET, "/accesses/perimeters/14/").token(&admin).send().await.0, StatusCode::NOT_FOUND);
    let (_, under_p9) =
        app.call(Method::GET, "/accesses/accesses/?perimeter_id=9&include_children=true").token(&admin).send().await;
    assert_eq!(under_p9["results"][0]["perimeter_id"], 13, "{under_p9}");
    let (reader, _) = app.login("3000009").await;
    let (_, mine) = app.call(Method::GET, "/accesses/accesses/my-accesses/").token(&reader).send().await;
    assert_eq!(mine, json!([]), "the access on the removed perimeter is closed");
}

#[tokio::test]
async fn the_scheduled_sync_reads_the_tree_document_from_s3() {
    let app = TestApp::new().await;
    let s3 = integration_tests::s3().await;
    let bucket = format!("t-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let document: String =
        integration_tests::DEMO_TREE.lines().filter(|l| !l.starts_with("12;")).collect::<Vec<_>>().join("\n");
    s3.put_object().bucket(&bucket).key("tree/perimeters.csv").body(document.into_bytes().into()).send().await.unwrap();
    let mut tasks = integration_tests::tasks(&app, None).await;
    tasks.perimeters_source = Some(format!("s3://{bucket}/tree/perimeters.csv"));
    let out = scheduled_tasks::function_handler(&tasks, json!({"task": "perimeters_sync"})).await.unwrap();
    assert_eq!(out["status"], "done", "{out}");
    assert_eq!(out["report"]["removed"], 1);
    let again = scheduled_tasks::function_handler(&tasks, json!({"task": "perimeters_sync"})).await.unwrap();
    assert_eq!(again["report"]["removed"], 0);
}

#[tokio::test]
async fn allowed_users_counters_are_maintained_by_the_scheduled_task() {
    let app = TestApp::new().await;
    app.account_on("3000011", Some(NOMINATIVE_READER), 4).await;
    app.account_on("3000012", Some(PSEUDO_READER), 11).await;
    let tasks = integration_tests::tasks(&app, None).await;
    let out = scheduled_tasks::function_handler(&tasks, json!({"task": "count_users_on_perimeters"})).await.unwrap();
    assert_eq!(out["status"], "done");
    let again = scheduled_tasks::function_handler(&tasks, json!({"task": "count_users_on_perimeters"})).await.unwrap();
    assert_eq!(again["perimeters_changed"], 0, "nothing changed since the first run");
    app.state.invalidate_perimeter_tree();
    let (admin, _) = app.login(ADMIN).await;
    let (_, p4) = app.call(Method::GET, "/accesses/perimeters/4/").token(&admin).send().await;
    assert_eq!(
        (
            p4["count_allowed_users"].as_i64(),
            p4["count_allowed_users_inferior_levels"].as_i64(),
            p4["count_allowed_users_above_levels"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "the reader on P4, the one on P11 below, the admin on the root above"
    );
}

#[tokio::test]
async fn expiring_access_alerts_are_e_mailed_through_ses() {
    let app = TestApp::new().await;
    app.account_on("3000013", Some(PSEUDO_READER), 1).await; // ends in exactly 30 days
    let ses = integration_tests::ses().await;
    ses.create_email_identity().email_identity("no-reply@cohort360.test").send().await.unwrap();
    let alerts = c360::services::access_alerts::ExpiryAlerts {
        offsets_days: vec![30, 2],
        managers_link: "https://portail".into(),
        contact: "support@cohort360.test".into(),
    };
    let tasks = integration_tests::tasks(&app, Some(alerts)).await;
    let out = scheduled_tasks::function_handler(&tasks, json!({"task": "expiring_accesses_alerts"})).await.unwrap();
    // The seeded admin's access and 3000013's both end in 30 days (the test accounts' validity).
    assert_eq!((out["status"].as_str(), out["emails_sent"].as_i64()), (Some("done"), Some(2)), "{out}");
    let disabled = integration_tests::tasks(&app, None).await;
    let out = scheduled_tasks::function_handler(&disabled, json!({"task": "expiring_accesses_alerts"})).await.unwrap();
    assert_eq!(out["status"], "skipped");
}
