//! `/cohort/folders/` and `/cohort/requests/` end to end (spec §0.9–§0.14, §5.1, §5.3, §5.4; client
//! contract §4, §5.3, §10): owner scoping, the `_id` alias and owner rules, exact success codes and
//! shapes, LIMIT pagination, ordering / search / filters, cascading and multi deletes, nested routes.
use std::collections::BTreeMap;

use http::{Method, StatusCode};
use integration_tests::cohort::{app_with_alice, delete, get, patch, post};
use integration_tests::{TestApp, ADMIN};
use serde_json::{json, Value};
use uuid::Uuid;

const NO_FOLDER: &str = "No Folder matches the given query.";
const NO_REQUEST: &str = "No Request matches the given query.";
const BASE: &str = "http://localhost";

fn not_found(detail: &str) -> (StatusCode, Value) {
    (StatusCode::NOT_FOUND, json!({ "detail": detail }))
}

fn invalid_pk(field: &str, pk: &str) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!({ field: [format!("Invalid pk \"{pk}\" - object does not exist.")] }))
}

/// Creates a folder and returns its body.
async fn folder(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, body) = post(app, token, "/cohort/folders/", json!({ "name": name })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Creates a folder and returns its uuid.
async fn folder_uuid(app: &TestApp, token: &str, name: &str) -> String {
    folder(app, token, name).await["uuid"].as_str().unwrap().to_owned()
}

/// Creates a request in `parent_folder` (with extra body keys) and returns its uuid.
async fn request_in(app: &TestApp, token: &str, parent_folder: &str, name: &str, extra: Value) -> String {
    let mut body = json!({ "name": name, "parent_folder": parent_folder });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, created) = post(app, token, "/cohort/requests/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["uuid"].as_str().unwrap().to_owned()
}

fn names(list: &Value) -> Vec<String> {
    list["results"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().to_owned()).collect()
}

fn uuids(list: &Value) -> Vec<String> {
    list["results"].as_array().unwrap().iter().map(|o| o["uuid"].as_str().unwrap().to_owned()).collect()
}

fn keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// A pagination link split into its path and its parameters (DRF sorts them; clients parse them).
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

#[tokio::test]
async fn anonymous_callers_get_403_on_every_folder_and_request_route_whatever_the_method() {
    let app = TestApp::new().await;
    let id = Uuid::new_v4();
    let other = Uuid::new_v4();
    let cases = [
        (Method::GET, "/cohort/folders/".to_owned()),
        (Method::POST, "/cohort/folders/".to_owned()),
        (Method::GET, format!("/cohort/folders/{id}/")),
        (Method::PATCH, format!("/cohort/folders/{id}/")),
        (Method::DELETE, format!("/cohort/folders/{id}/")),
        (Method::PUT, format!("/cohort/folders/{id}/")),
        (Method::GET, "/cohort/requests/".to_owned()),
        (Method::POST, "/cohort/requests/".to_owned()),
        (Method::GET, format!("/cohort/requests/{id}/")),
        (Method::PATCH, format!("/cohort/requests/{id}/")),
        (Method::DELETE, format!("/cohort/requests/{id},{other}/")),
        (Method::GET, format!("/cohort/folders/{id}/requests/")),
        (Method::POST, format!("/cohort/folders/{id}/requests/")),
        (Method::GET, format!("/cohort/folders/{id}/requests/{other}/")),
        (Method::PATCH, format!("/cohort/folders/{id}/requests/{other}/")),
        (Method::DELETE, format!("/cohort/folders/{id}/requests/{other}/")),
    ];
    for (method, path) in cases {
        let (status, body) = app.call(method.clone(), &path).json(json!({"name": "x"})).send().await;
        assert_eq!(
            (status, body),
            (StatusCode::FORBIDDEN, json!({"detail": "Authentication credentials were not provided."})),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn methods_outside_the_viewsets_are_405_for_an_authenticated_caller() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "Projet").await;
    let r = request_in(&app, &alice, &f, "Requête", json!({})).await;
    let cases = [
        (Method::PUT, format!("/cohort/folders/{f}/")),
        (Method::POST, format!("/cohort/folders/{f}/")),
        (Method::DELETE, "/cohort/folders/".to_owned()),
        (Method::PUT, format!("/cohort/requests/{r}/")),
        (Method::PATCH, "/cohort/requests/".to_owned()),
        (Method::PUT, format!("/cohort/folders/{f}/requests/{r}/")),
    ];
    for (method, path) in cases {
        let (status, body) = app.call(method.clone(), &path).token(&alice).json(json!({"name": "x"})).send().await;
        assert_eq!(
            (status, body),
            (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": format!("Method \"{method}\" not allowed.")})),
            "{method} {path}"
        );
    }
    // Nothing was changed by the refused calls.
    assert_eq!(get(&app, &alice, &format!("/cohort/folders/{f}/")).await.1["name"], "Projet");
    assert_eq!(get(&app, &alice, &format!("/cohort/requests/{r}/")).await.1["name"], "Requête");
}

#[tokio::test]
async fn folder_lifecycle_answers_201_200_204_with_the_folder_shape() {
    let (app, alice) = app_with_alice().await;
    let (status, created) =
        post(&app, &alice, "/cohort/folders/", json!({"name": "Projet A", "description": "Notes"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), ["created_at", "description", "name", "requests_count", "uuid"]);
    assert_eq!(
        (&created["name"], &created["description"], &created["requests_count"]),
        (&json!("Projet A"), &json!("Notes"), &json!(0))
    );
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    assert!(Uuid::parse_str(&uuid).is_ok(), "{created}");
    let created_at = created["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z') && c360::domain::time::parse(created_at).is_some(), "{created_at}");

    let (status, bare) = post(&app, &alice, "/cohort/folders/", json!({"name": "Sans description"})).await;
    assert_eq!((status, &bare["description"]), (StatusCode::CREATED, &Value::Null));

    let path = format!("/cohort/folders/{uuid}/");
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::OK, created.clone()));

    // The Cohort360 app sends the folder's own uuid as `parent_folder` when editing (contract §4).
    let (status, patched) = patch(
        &app,
        &alice,
        &path,
        json!({"parent_folder": uuid, "name": "Projet A bis", "description": "Autres notes"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched,
        json!({
            "uuid": uuid,
            "name": "Projet A bis",
            "description": "Autres notes",
            "created_at": created["created_at"],
            "requests_count": 0,
        })
    );
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::OK, patched));
    // A description may be cleared; an empty body changes nothing.
    let (status, cleared) = patch(&app, &alice, &path, json!({"description": null})).await;
    assert_eq!(
        (status, &cleared["description"], &cleared["name"]),
        (StatusCode::OK, &Value::Null, &json!("Projet A bis"))
    );
    let (status, same) = patch(&app, &alice, &path, json!({})).await;
    assert_eq!((status, same), (StatusCode::OK, cleared));
    let (status, list) = get(&app, &alice, "/cohort/folders/?ordering=name").await;
    assert_eq!((status, names(&list)), (StatusCode::OK, vec!["Projet A bis".into(), "Sans description".into()]));

    assert_eq!(delete(&app, &alice, &path).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&app, &alice, &path).await, not_found(NO_FOLDER));
    assert_eq!(patch(&app, &alice, &path, json!({"name": "Revenant"})).await, not_found(NO_FOLDER));
    assert_eq!(delete(&app, &alice, &path).await, not_found(NO_FOLDER));
    let (_, list) = get(&app, &alice, "/cohort/folders/").await;
    assert_eq!((list["count"].clone(), names(&list)), (json!(1), vec!["Sans description".to_owned()]));
}

#[tokio::test]
async fn folder_validation_answers_drf_messages_and_ignores_unknown_and_read_only_keys() {
    let (app, alice) = app_with_alice().await;
    let cases = [
        (json!({}), json!({"name": ["This field is required."]})),
        (json!({"description": "d"}), json!({"name": ["This field is required."]})),
        (json!({"name": null}), json!({"name": ["This field may not be null."]})),
        (json!({"name": ""}), json!({"name": ["This field may not be blank."]})),
        (json!({"name": "   "}), json!({"name": ["This field may not be blank."]})),
        (json!({"name": "x".repeat(51)}), json!({"name": ["Ensure this field has no more than 50 characters."]})),
    ];
    for (body, errors) in cases {
        assert_eq!(
            post(&app, &alice, "/cohort/folders/", body.clone()).await,
            (StatusCode::BAD_REQUEST, errors),
            "{body}"
        );
    }
    let fifty = "é".repeat(50);
    let (status, created) = post(&app, &alice, "/cohort/folders/", json!({"name": fifty})).await;
    assert_eq!((status, &created["name"]), (StatusCode::CREATED, &json!(fifty)), "50 characters (not bytes) fit");

    let path = format!("/cohort/folders/{}/", created["uuid"].as_str().unwrap());
    for (body, errors) in [
        (json!({"name": ""}), json!({"name": ["This field may not be blank."]})),
        (json!({"name": "y".repeat(51)}), json!({"name": ["Ensure this field has no more than 50 characters."]})),
    ] {
        assert_eq!(patch(&app, &alice, &path, body.clone()).await, (StatusCode::BAD_REQUEST, errors), "{body}");
    }
    assert_eq!(get(&app, &alice, &path).await.1["name"], json!(fifty), "a refused PATCH changes nothing");

    // Unknown keys are ignored, and so are read-only ones (spec §0.9).
    let forced = Uuid::new_v4().to_string();
    let (status, created) = post(
        &app,
        &alice,
        "/cohort/folders/",
        json!({"name": "Extra", "foo": "bar", "uuid": forced, "requests_count": 7, "created_at": "2000-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_ne!(created["uuid"], json!(forced));
    assert_eq!(created["requests_count"], 0);
    assert!(!created["created_at"].as_str().unwrap().starts_with("2000-"), "{created}");
}

#[tokio::test]
async fn another_users_folders_and_requests_are_invisible_and_untouchable() {
    let (app, alice) = app_with_alice().await;
    // Even a full admin has no special view of someone else's workspace.
    let (admin, _) = app.login(ADMIN).await;
    let f = folder_uuid(&app, &alice, "Projet d'Alice").await;
    let r = request_in(&app, &alice, &f, "Requête d'Alice", json!({})).await;
    let own = folder_uuid(&app, &admin, "Projet admin").await;
    let own_request = request_in(&app, &admin, &own, "Requête admin", json!({})).await;

    let (_, folders) = get(&app, &admin, "/cohort/folders/").await;
    assert_eq!((folders["count"].clone(), uuids(&folders)), (json!(1), vec![own.clone()]));
    let (_, requests) = get(&app, &admin, "/cohort/requests/").await;
    assert_eq!((requests["count"].clone(), uuids(&requests)), (json!(1), vec![own_request.clone()]));
    let (status, nested) = get(&app, &admin, &format!("/cohort/folders/{f}/requests/")).await;
    assert_eq!((status, nested["count"].clone(), nested["results"].clone()), (StatusCode::OK, json!(0), json!([])));

    let folder_path = format!("/cohort/folders/{f}/");
    assert_eq!(get(&app, &admin, &folder_path).await, not_found(NO_FOLDER));
    assert_eq!(patch(&app, &admin, &folder_path, json!({"name": "Volé"})).await, not_found(NO_FOLDER));
    // The lookup comes before validation: an invalid body still answers 404.
    assert_eq!(patch(&app, &admin, &folder_path, json!({"name": ""})).await, not_found(NO_FOLDER));
    assert_eq!(delete(&app, &admin, &folder_path).await, not_found(NO_FOLDER));

    let request_path = format!("/cohort/requests/{r}/");
    assert_eq!(get(&app, &admin, &request_path).await, not_found(NO_REQUEST));
    assert_eq!(patch(&app, &admin, &request_path, json!({"name": "Volée"})).await, not_found(NO_REQUEST));
    assert_eq!(patch(&app, &admin, &request_path, json!({"name": ""})).await, not_found(NO_REQUEST));
    assert_eq!(delete(&app, &admin, &request_path).await, not_found(NO_REQUEST));
    let nested_path = format!("/cohort/folders/{f}/requests/{r}/");
    assert_eq!(get(&app, &admin, &nested_path).await, not_found(NO_REQUEST));
    assert_eq!(patch(&app, &admin, &nested_path, json!({"name": "Volée"})).await, not_found(NO_REQUEST));
    assert_eq!(delete(&app, &admin, &nested_path).await, not_found(NO_REQUEST));

    // Relations only accept the caller's own folders (spec §0.14).
    let body = json!({"name": "Intruse", "parent_folder": f});
    assert_eq!(post(&app, &admin, "/cohort/requests/", body).await, invalid_pk("parent_folder", &f));
    let body = json!({"name": "Intruse", "parent_folder_id": f});
    assert_eq!(post(&app, &admin, "/cohort/requests/", body).await, invalid_pk("parent_folder", &f));
    let nested_post = format!("/cohort/folders/{f}/requests/");
    assert_eq!(post(&app, &admin, &nested_post, json!({"name": "Intruse"})).await, invalid_pk("parent_folder", &f));
    let own_path = format!("/cohort/requests/{own_request}/");
    assert_eq!(patch(&app, &admin, &own_path, json!({"parent_folder": f})).await, invalid_pk("parent_folder", &f));
    assert_eq!(get(&app, &admin, &own_path).await.1["parent_folder"]["uuid"], json!(own), "not moved");

    // Alice's workspace is intact and she does not see the admin's.
    let (_, folder) = get(&app, &alice, &folder_path).await;
    assert_eq!((&folder["name"], &folder["requests_count"]), (&json!("Projet d'Alice"), &json!(1)));
    let (status, request) = get(&app, &alice, &request_path).await;
    assert_eq!((status, &request["name"]), (StatusCode::OK, &json!("Requête d'Alice")));
    let (_, requests) = get(&app, &alice, "/cohort/requests/").await;
    assert_eq!(uuids(&requests), vec![r]);
    let (_, folders) = get(&app, &alice, "/cohort/folders/").await;
    assert_eq!(uuids(&folders), vec![f]);
    assert_eq!(get(&app, &alice, &format!("/cohort/folders/{own}/")).await, not_found(NO_FOLDER));
}

#[tokio::test]
async fn paths_that_are_not_uuids_name_no_object() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "Projet").await;
    let cases = [
        ("/cohort/folders/not-a-uuid/".to_owned(), NO_FOLDER),
        ("/cohort/folders/12345/".to_owned(), NO_FOLDER),
        ("/cohort/requests/not-a-uuid/".to_owned(), NO_REQUEST),
        (format!("/cohort/folders/{f}/requests/xyz/"), NO_REQUEST),
    ];
    for (path, detail) in cases {
        assert_eq!(get(&app, &alice, &path).await, not_found(detail), "GET {path}");
        assert_eq!(patch(&app, &alice, &path, json!({"name": "x"})).await, not_found(detail), "PATCH {path}");
        assert_eq!(delete(&app, &alice, &path).await, not_found(detail), "DELETE {path}");
    }
}

#[tokio::test]
async fn the_owner_rule_accepts_only_the_callers_username() {
    let (app, alice) = app_with_alice().await;
    app.account("bob", None).await;
    let (status, body) = post(&app, &alice, "/cohort/folders/", json!({"name": "P", "owner": "x"})).await;
    assert_eq!((status, body), invalid_pk("owner", "x"));
    // An existing user who is not the caller is refused the same way.
    let (status, body) = post(&app, &alice, "/cohort/folders/", json!({"name": "P", "owner": "bob"})).await;
    assert_eq!((status, body), invalid_pk("owner", "bob"));
    let (status, created) = post(&app, &alice, "/cohort/folders/", json!({"name": "P", "owner": "alice"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let f = created["uuid"].as_str().unwrap().to_owned();

    let post_request = |extra: Value| {
        let mut body = json!({"name": "R", "parent_folder": f});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        app.call(Method::POST, "/cohort/requests/").token(&alice).json(body)
    };
    assert_eq!(post_request(json!({"owner": "bob"})).send().await, invalid_pk("owner", "bob"));
    assert_eq!(post_request(json!({"owner_id": "bob"})).send().await, invalid_pk("owner", "bob"));
    let (status, created) = post_request(json!({"owner": "alice"})).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, created) = post_request(json!({"owner_id": "alice"})).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/cohort/requests/{}/", created["uuid"].as_str().unwrap());
    assert_eq!(patch(&app, &alice, &path, json!({"owner": "bob", "name": "S"})).await, invalid_pk("owner", "bob"));
    assert_eq!(get(&app, &alice, &path).await.1["name"], "R", "a refused PATCH changes nothing");
    let (status, patched) = patch(&app, &alice, &path, json!({"owner": "alice", "name": "S"})).await;
    assert_eq!((status, &patched["name"]), (StatusCode::OK, &json!("S")), "{patched}");
    let (_, list) = get(&app, &alice, "/cohort/requests/").await;
    assert_eq!(list["count"], 2, "only the accepted requests exist: {list}");
}

#[tokio::test]
async fn the_owner_id_alias_applies_to_folders_too() {
    // §0.13: every owner-scoped endpoint copies `<field>_id` into `<field>` for its relations,
    // `owner_id` included; §0.14 then refuses an owner other than the caller.
    let (app, alice) = app_with_alice().await;
    let (status, body) = post(&app, &alice, "/cohort/folders/", json!({"name": "P", "owner_id": "x"})).await;
    assert_eq!((status, body), invalid_pk("owner", "x"));
    let (_, list) = get(&app, &alice, "/cohort/folders/").await;
    assert_eq!(list["count"], 0, "{list}");
    let (status, body) = post(&app, &alice, "/cohort/folders/", json!({"name": "P", "owner_id": "alice"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_request_reads_with_the_spec_shape_and_its_post_quirks() {
    let (app, alice) = app_with_alice().await;
    let (_, f) = post(&app, &alice, "/cohort/folders/", json!({"name": "Projet", "description": "Le projet"})).await;
    let f_uuid = f["uuid"].as_str().unwrap().to_owned();
    // What the Cohort360 new-request modal posts (contract §5.3): an empty `uuid`.
    let (status, created) =
        post(&app, &alice, "/cohort/requests/", json!({"uuid": "", "name": "Ma requête", "parent_folder": f_uuid}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    assert!(Uuid::parse_str(&uuid).is_ok(), "{created}");
    let folder_ref = json!({"uuid": f_uuid, "name": "Projet", "description": "Le projet"});
    // `updated_at` is absent from the POST response (spec §5.4 quirk).
    assert_eq!(
        created,
        json!({
            "uuid": uuid,
            "name": "Ma requête",
            "description": "",
            "favorite": false,
            "query_snapshots": [],
            "shared_by": null,
            "parent_folder": folder_ref,
        })
    );
    let mut read = created.clone();
    read["updated_at"] = Value::Null;
    let path = format!("/cohort/requests/{uuid}/");
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::OK, read.clone()));
    let (_, list) = get(&app, &alice, "/cohort/requests/").await;
    assert_eq!(list["results"], json!([read.clone()]));
    assert_eq!(get(&app, &alice, &format!("/cohort/folders/{f_uuid}/requests/{uuid}/")).await, (StatusCode::OK, read));

    // `shared_by` is read-only, `favorite` and `description` are taken, a provided uuid is ignored.
    let forced = Uuid::new_v4().to_string();
    let (status, created) = post(
        &app,
        &alice,
        "/cohort/requests/",
        json!({"uuid": forced, "name": "R2", "description": "d", "favorite": true, "shared_by": ADMIN, "parent_folder": f_uuid}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_ne!(created["uuid"], json!(forced));
    assert_eq!(
        (&created["description"], &created["favorite"], &created["shared_by"]),
        (&json!("d"), &json!(true), &Value::Null)
    );

    // The `_id` alias (spec §0.13).
    let g = folder_uuid(&app, &alice, "Autre").await;
    let (status, created) = post(&app, &alice, "/cohort/requests/", json!({"name": "R3", "parent_folder_id": g})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["parent_folder"], json!({"uuid": g, "name": "Autre", "description": null}));
    let (_, folder) = get(&app, &alice, &format!("/cohort/folders/{g}/")).await;
    assert_eq!(folder["requests_count"], 1);
}

#[tokio::test]
async fn request_validation_answers_drf_messages() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "Projet").await;
    let unknown = Uuid::new_v4().to_string();
    let cases = [
        (json!({}), json!({"name": ["This field is required."], "parent_folder": ["This field is required."]})),
        (json!({"uuid": "", "parent_folder": f}), json!({"name": ["This field is required."]})),
        (json!({"name": "R"}), json!({"parent_folder": ["This field is required."]})),
        (json!({"name": "", "parent_folder": f}), json!({"name": ["This field may not be blank."]})),
        (
            json!({"name": "x".repeat(256), "parent_folder": f}),
            json!({"name": ["Ensure this field has no more than 255 characters."]}),
        ),
        (
            json!({"name": "R", "parent_folder": unknown}),
            json!({"parent_folder": [format!("Invalid pk \"{unknown}\" - object does not exist.")]}),
        ),
        (json!({"name": "R", "parent_folder": null}), json!({"parent_folder": ["This field may not be null."]})),
        (
            json!({"name": "R", "description": null, "parent_folder": f}),
            json!({"description": ["This field may not be null."]}),
        ),
    ];
    for (body, errors) in cases {
        assert_eq!(
            post(&app, &alice, "/cohort/requests/", body.clone()).await,
            (StatusCode::BAD_REQUEST, errors),
            "{body}"
        );
    }
    let (_, list) = get(&app, &alice, "/cohort/requests/").await;
    assert_eq!(list["count"], 0, "nothing was created: {list}");
    let r = request_in(&app, &alice, &f, &"x".repeat(255), json!({})).await;
    let path = format!("/cohort/requests/{r}/");
    for (body, errors) in [
        (json!({"name": ""}), json!({"name": ["This field may not be blank."]})),
        (json!({"favorite": "maybe"}), json!({"favorite": ["Must be a valid boolean."]})),
        (
            json!({"parent_folder": unknown}),
            json!({"parent_folder": [format!("Invalid pk \"{unknown}\" - object does not exist.")]}),
        ),
    ] {
        assert_eq!(patch(&app, &alice, &path, body.clone()).await, (StatusCode::BAD_REQUEST, errors), "{body}");
    }
}

#[tokio::test]
async fn request_edits_rename_move_and_star_and_folders_count_their_requests() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "F").await;
    let g = folder_uuid(&app, &alice, "G").await;
    let r = request_in(&app, &alice, &f, "R", json!({})).await;
    request_in(&app, &alice, &f, "S", json!({})).await;
    let count_of = |folder: String| {
        let app = &app;
        let alice = &alice;
        async move { get(app, alice, &format!("/cohort/folders/{folder}/")).await.1["requests_count"].clone() }
    };
    assert_eq!((count_of(f.clone()).await, count_of(g.clone()).await), (json!(2), json!(0)));

    let path = format!("/cohort/requests/{r}/");
    let (status, renamed) = patch(&app, &alice, &path, json!({"name": "R renommée", "description": "Nouvelle"})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!((&renamed["name"], &renamed["description"]), (&json!("R renommée"), &json!("Nouvelle")));
    assert_eq!(renamed["parent_folder"]["uuid"], json!(f));
    assert!(renamed.get("updated_at").is_some(), "PATCH answers the read shape: {renamed}");

    let (status, moved) = patch(&app, &alice, &path, json!({"parent_folder": g})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["parent_folder"], json!({"uuid": g, "name": "G", "description": null}));
    assert_eq!(moved["name"], "R renommée", "a move keeps the other fields");
    assert_eq!((count_of(f.clone()).await, count_of(g.clone()).await), (json!(1), json!(1)));
    let (_, listed) = get(&app, &alice, "/cohort/folders/?ordering=name").await;
    let counts: Vec<&Value> = listed["results"].as_array().unwrap().iter().map(|f| &f["requests_count"]).collect();
    assert_eq!(counts, [&json!(1), &json!(1)], "lists count too: {listed}");

    let (status, back) = patch(&app, &alice, &path, json!({"parent_folder_id": f, "favorite": true})).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!((&back["parent_folder"]["uuid"], &back["favorite"]), (&json!(f), &json!(true)));
    assert_eq!(get(&app, &alice, &path).await, (StatusCode::OK, back));
    assert_eq!((count_of(f.clone()).await, count_of(g.clone()).await), (json!(2), json!(0)));

    assert_eq!(delete(&app, &alice, &path).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(count_of(f.clone()).await, json!(1), "deleted requests are not counted");
}

#[tokio::test]
async fn lists_use_limit_offset_pagination() {
    let (app, alice) = app_with_alice().await;
    for i in 1..=22 {
        folder(&app, &alice, &format!("Dossier {i:02}")).await;
    }
    let list = |query: &'static str| {
        let (app, alice) = (&app, &alice);
        async move {
            let (status, body) = get(app, alice, &format!("/cohort/folders/{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            assert_eq!(keys(&body), ["count", "next", "previous", "results"], "{query}");
            assert_eq!(body["count"], 22, "{query}");
            body
        }
    };
    let path = format!("{BASE}/cohort/folders/");
    // Default page: 20, and so are `limit=0` and a non-integer limit (spec §0.7).
    for query in ["", "?limit=0", "?limit=abc"] {
        let body = list(query).await;
        assert_eq!(body["results"].as_array().unwrap().len(), 20, "{query}");
        assert_eq!(link(&body["next"]), (path.clone(), params(&[("limit", "20"), ("offset", "20")])), "{query}");
        assert_eq!(body["previous"], Value::Null, "{query}");
    }
    // A negative limit means everything.
    let all = list("?limit=-1&ordering=name").await;
    let expected: Vec<String> = (1..=22).map(|i| format!("Dossier {i:02}")).collect();
    assert_eq!(names(&all), expected);
    assert_eq!((&all["next"], &all["previous"]), (&Value::Null, &Value::Null));

    let page = list("?limit=5&offset=5&ordering=name").await;
    assert_eq!(names(&page), expected[5..10]);
    assert_eq!(link(&page["next"]), (path.clone(), params(&[("limit", "5"), ("offset", "10"), ("ordering", "name")])));
    assert_eq!(link(&page["previous"]), (path.clone(), params(&[("limit", "5"), ("ordering", "name")])));
    let last = list("?limit=5&offset=20&ordering=name").await;
    assert_eq!(names(&last), expected[20..]);
    assert_eq!(last["next"], Value::Null);
    assert_eq!(
        link(&last["previous"]),
        (path.clone(), params(&[("limit", "5"), ("offset", "15"), ("ordering", "name")]))
    );
    let beyond = list("?offset=40").await;
    assert_eq!(beyond["results"], json!([]));

    // The requests list too; `limit=0` is how the research counters read a count (contract §4).
    let f = all["results"][0]["uuid"].as_str().unwrap().to_owned();
    for name in ["a", "b", "c"] {
        request_in(&app, &alice, &f, name, json!({})).await;
    }
    let (_, counted) = get(&app, &alice, "/cohort/requests/?limit=0").await;
    assert_eq!((counted["count"].clone(), counted["results"].as_array().unwrap().len()), (json!(3), 3));
    assert_eq!(counted["next"], Value::Null);
    let (_, first) = get(&app, &alice, "/cohort/requests/?limit=2&ordering=name").await;
    assert_eq!((first["count"].clone(), names(&first)), (json!(3), vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(
        link(&first["next"]),
        (format!("{BASE}/cohort/requests/"), params(&[("limit", "2"), ("offset", "2"), ("ordering", "name")]))
    );
    let (_, nested) = get(&app, &alice, &format!("/cohort/folders/{f}/requests/?limit=1&offset=2&ordering=name")).await;
    assert_eq!((nested["count"].clone(), names(&nested)), (json!(3), vec!["c".to_owned()]));
}

#[tokio::test]
async fn folder_lists_order_search_and_filter() {
    let (app, alice) = app_with_alice().await;
    let mut created = Vec::new();
    for name in ["bravo", "alpha", "charlie 2024", "2024"] {
        created.push(folder(&app, &alice, name).await);
    }
    let list = |query: String| {
        let (app, alice) = (&app, &alice);
        async move {
            let (status, body) = get(app, alice, &format!("/cohort/folders/{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            names(&body)
        }
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("?ordering=name".into(), vec!["2024", "alpha", "bravo", "charlie 2024"]),
        ("?ordering=-name".into(), vec!["charlie 2024", "bravo", "alpha", "2024"]),
        ("?ordering=created_at".into(), vec!["bravo", "alpha", "charlie 2024", "2024"]),
        ("?ordering=-created_at".into(), vec!["2024", "charlie 2024", "alpha", "bravo"]),
        // Search: case-insensitive regex on the name, AND over terms.
        ("?search=ALPHA&ordering=name".into(), vec!["alpha"]),
        ("?search=^c&ordering=name".into(), vec!["charlie 2024"]),
        ("?search=4$&ordering=name".into(), vec!["2024", "charlie 2024"]),
        ("?search=%5Ea|%5Eb&ordering=name".into(), vec!["alpha", "bravo"]),
        ("?search=a%20r&ordering=name".into(), vec!["bravo", "charlie 2024"]),
        ("?search=zulu".into(), vec![]),
        // `name` is an exact filter.
        ("?name=alpha".into(), vec!["alpha"]),
        ("?name=charlie%202024".into(), vec!["charlie 2024"]),
        ("?name=ALPHA".into(), vec![]),
        ("?name=alph".into(), vec![]),
        // Datetime bounds are inclusive.
        (
            format!("?min_created_at={}&ordering=created_at", created[2]["created_at"].as_str().unwrap()),
            vec!["charlie 2024", "2024"],
        ),
        (
            format!("?max_created_at={}&ordering=created_at", created[1]["created_at"].as_str().unwrap()),
            vec!["bravo", "alpha"],
        ),
        (
            format!(
                "?min_created_at={}&max_created_at={}",
                created[1]["created_at"].as_str().unwrap(),
                created[1]["created_at"].as_str().unwrap()
            ),
            vec!["alpha"],
        ),
        // Unknown parameters are ignored.
        ("?ordering=name&colour=blue".into(), vec!["2024", "alpha", "bravo", "charlie 2024"]),
    ];
    for (query, expected) in cases {
        assert_eq!(list(query.clone()).await, expected, "{query}");
    }
    let (status, body) = get(&app, &alice, "/cohort/folders/?ordering=owner").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"ordering": ["Select a valid choice. owner is not one of the available choices."]})
        )
    );
}

#[tokio::test]
async fn search_patterns_keep_their_case_sensitive_escapes() {
    // `$name` search is PostgreSQL's `~*`: case-insensitive *matching*, but the pattern itself is
    // used as given, so `\D` (a non-digit) must not turn into `\d` (a digit).
    let (app, alice) = app_with_alice().await;
    for name in ["alpha", "2024"] {
        folder(&app, &alice, name).await;
    }
    let (status, body) = get(&app, &alice, "/cohort/folders/?search=%5CD").await;
    assert_eq!((status, names(&body)), (StatusCode::OK, vec!["alpha".to_owned()]));
    let (_, body) = get(&app, &alice, "/cohort/folders/?search=%5Cd").await;
    assert_eq!(names(&body), vec!["2024".to_owned()]);
}

#[tokio::test]
async fn a_malformed_created_at_bound_is_a_400() {
    // Spec §0.8: django-filter value errors (bad ISO datetime) → 400 {"<param>": ["..."]}.
    let (app, alice) = app_with_alice().await;
    folder(&app, &alice, "alpha").await;
    for param in ["min_created_at", "max_created_at"] {
        let (status, body) = get(&app, &alice, &format!("/cohort/folders/?{param}=yesterday")).await;
        assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({ param: ["Enter a valid date/time."] })));
    }
}

#[tokio::test]
async fn request_lists_order_search_and_filter() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "projet b").await;
    let g = folder_uuid(&app, &alice, "projet a").await;
    request_in(&app, &alice, &f, "charlie", json!({"description": "Top SECRET"})).await;
    request_in(&app, &alice, &g, "alpha", json!({"favorite": true})).await;
    request_in(&app, &alice, &f, "bravo", json!({})).await;
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("?ordering=name".into(), vec!["alpha", "bravo", "charlie"]),
        ("?ordering=-name".into(), vec!["charlie", "bravo", "alpha"]),
        // `parent_folder` orders by the folder's name.
        ("?ordering=parent_folder,name".into(), vec!["alpha", "bravo", "charlie"]),
        ("?ordering=-parent_folder,-name".into(), vec!["charlie", "bravo", "alpha"]),
        ("?favorite=true".into(), vec!["alpha"]),
        ("?favorite=True".into(), vec!["alpha"]),
        ("?favorite=1".into(), vec!["alpha"]),
        ("?favorite=false&ordering=name".into(), vec!["bravo", "charlie"]),
        // Any other value disables a boolean filter (spec §0.8).
        ("?favorite=maybe&ordering=name".into(), vec!["alpha", "bravo", "charlie"]),
        (format!("?parent_folder={f}&ordering=name"), vec!["bravo", "charlie"]),
        (format!("?parent_folder={g}"), vec!["alpha"]),
        (format!("?parent_folder={f}&favorite=true"), vec![]),
        // Search: regex on name and description, case-insensitive.
        ("?search=secret".into(), vec!["charlie"]),
        ("?search=%5EBR".into(), vec!["bravo"]),
        ("?search=%28a%7Co%29$&ordering=name".into(), vec!["alpha", "bravo"]),
        ("?search=top%20e$".into(), vec!["charlie"]),
        ("?search=projet".into(), vec![]),
        ("?shared_by=admin".into(), vec![]),
        // Without snapshots `updated_at` is null: any bound excludes the request, ordering keeps it.
        ("?min_updated_at=2000-01-01T00:00:00Z".into(), vec![]),
        ("?max_updated_at=2100-01-01T00:00:00Z".into(), vec![]),
        ("?ordering=-updated_at,name".into(), vec!["alpha", "bravo", "charlie"]),
    ];
    for (query, expected) in cases {
        let (status, body) = get(&app, &alice, &format!("/cohort/requests/{query}")).await;
        assert_eq!(
            (status, names(&body)),
            (StatusCode::OK, expected.iter().map(|s| s.to_string()).collect()),
            "{query}"
        );
        assert_eq!(body["count"], expected.len(), "{query}");
    }
    let (status, body) = get(&app, &alice, "/cohort/requests/?ordering=created_at").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"ordering": ["Select a valid choice. created_at is not one of the available choices."]})
        )
    );
}

#[tokio::test]
async fn a_malformed_parent_folder_filter_is_a_400() {
    // Spec §0.8: django-filter value errors (bad UUID) → 400 {"<param>": ["..."]}.
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "Projet").await;
    request_in(&app, &alice, &f, "R", json!({})).await;
    let (status, body) = get(&app, &alice, "/cohort/requests/?parent_folder=zzz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["parent_folder"].as_array().is_some_and(|errors| !errors.is_empty()), "{body}");
}

#[tokio::test]
async fn deleting_a_folder_cascades_to_its_requests() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "À supprimer").await;
    let g = folder_uuid(&app, &alice, "À garder").await;
    let r1 = request_in(&app, &alice, &f, "r1", json!({})).await;
    let r2 = request_in(&app, &alice, &f, "r2", json!({})).await;
    let kept = request_in(&app, &alice, &g, "kept", json!({})).await;

    assert_eq!(delete(&app, &alice, &format!("/cohort/folders/{f}/")).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&app, &alice, &format!("/cohort/folders/{f}/")).await, not_found(NO_FOLDER));
    for r in [&r1, &r2] {
        let path = format!("/cohort/requests/{r}/");
        assert_eq!(get(&app, &alice, &path).await, not_found(NO_REQUEST), "{r}");
        assert_eq!(patch(&app, &alice, &path, json!({"name": "x"})).await, not_found(NO_REQUEST), "{r}");
        assert_eq!(delete(&app, &alice, &path).await, not_found(NO_REQUEST), "{r}");
        assert_eq!(get(&app, &alice, &format!("/cohort/folders/{f}/requests/{r}/")).await, not_found(NO_REQUEST));
    }
    let (_, requests) = get(&app, &alice, "/cohort/requests/?limit=-1").await;
    assert_eq!((requests["count"].clone(), uuids(&requests)), (json!(1), vec![kept.clone()]));
    let (_, nested) = get(&app, &alice, &format!("/cohort/folders/{f}/requests/")).await;
    assert_eq!(nested["count"], 0, "{nested}");
    let (_, folders) = get(&app, &alice, "/cohort/folders/").await;
    assert_eq!(uuids(&folders), vec![g.clone()]);
    // A deleted folder can no longer receive requests.
    let body = json!({"name": "orpheline", "parent_folder": f});
    assert_eq!(post(&app, &alice, "/cohort/requests/", body).await, invalid_pk("parent_folder", &f));
    let kept_path = format!("/cohort/requests/{kept}/");
    assert_eq!(patch(&app, &alice, &kept_path, json!({"parent_folder": f})).await, invalid_pk("parent_folder", &f));
}

#[tokio::test]
async fn comma_separated_uuids_delete_several_objects_at_once() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "F").await;
    let g = folder_uuid(&app, &alice, "G").await;
    let a = request_in(&app, &alice, &f, "a", json!({})).await;
    let b = request_in(&app, &alice, &f, "b", json!({})).await;
    let c = request_in(&app, &alice, &f, "c", json!({})).await;
    let d = request_in(&app, &alice, &g, "d", json!({})).await;

    assert_eq!(
        delete(&app, &alice, &format!("/cohort/requests/{a},{b}/")).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    for r in [&a, &b] {
        assert_eq!(get(&app, &alice, &format!("/cohort/requests/{r}/")).await, not_found(NO_REQUEST));
    }
    let (_, list) = get(&app, &alice, "/cohort/requests/?ordering=name").await;
    assert_eq!(names(&list), ["c", "d"]);
    assert_eq!(get(&app, &alice, &format!("/cohort/folders/{f}/")).await.1["requests_count"], 1);

    // A malformed list answers the original's message (Python list repr) and deletes nothing.
    let (status, body) = delete(&app, &alice, &format!("/cohort/requests/{c},zzz/")).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"error": format!("Invalid value for uuid param, uuids=['{c}', 'zzz']")}))
    );
    let (status, body) = delete(&app, &alice, &format!("/cohort/folders/{f},{g},nope/")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": format!("Invalid value for uuid param, uuids=['{f}', '{g}', 'nope']")})
        )
    );
    let (status, body) = delete(&app, &alice, &format!("/cohort/requests/{c},/")).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"error": format!("Invalid value for uuid param, uuids=['{c}', '']")}))
    );
    let (_, list) = get(&app, &alice, "/cohort/requests/?ordering=name").await;
    assert_eq!(names(&list), ["c", "d"]);

    // The same uuid twice is still one object.
    assert_eq!(
        delete(&app, &alice, &format!("/cohort/requests/{d},{d}/")).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    let (_, list) = get(&app, &alice, "/cohort/requests/").await;
    assert_eq!(names(&list), ["c"]);

    // Folders too, with their cascade.
    assert_eq!(delete(&app, &alice, &format!("/cohort/folders/{f},{g}/")).await, (StatusCode::NO_CONTENT, Value::Null));
    let (_, folders) = get(&app, &alice, "/cohort/folders/").await;
    assert_eq!(folders["count"], 0);
    assert_eq!(get(&app, &alice, &format!("/cohort/requests/{c}/")).await, not_found(NO_REQUEST));
    let (_, list) = get(&app, &alice, "/cohort/requests/").await;
    assert_eq!(list["count"], 0);
}

#[tokio::test]
async fn a_multi_delete_naming_another_users_object_is_refused_and_deletes_nothing() {
    let (app, alice) = app_with_alice().await;
    app.account("bob", None).await;
    let (bob, _) = app.login("bob").await;
    let alices_folder = folder_uuid(&app, &alice, "Alice").await;
    let bobs_folder = folder_uuid(&app, &bob, "Bob").await;
    let alices = request_in(&app, &alice, &alices_folder, "à Alice", json!({})).await;
    let bobs = request_in(&app, &bob, &bobs_folder, "à Bob", json!({})).await;

    let (status, body) = delete(&app, &alice, &format!("/cohort/requests/{alices},{bobs}/")).await;
    assert_eq!((status, body), not_found(NO_REQUEST));
    let (status, body) = delete(&app, &alice, &format!("/cohort/folders/{alices_folder},{bobs_folder}/")).await;
    assert_eq!((status, body), not_found(NO_FOLDER));
    let (status, body) = delete(&app, &alice, &format!("/cohort/folders/{bobs_folder}/")).await;
    assert_eq!((status, body), not_found(NO_FOLDER));

    for (token, folder, request) in [(&alice, &alices_folder, &alices), (&bob, &bobs_folder, &bobs)] {
        assert_eq!(get(&app, token, &format!("/cohort/requests/{request}/")).await.0, StatusCode::OK);
        let (status, body) = get(&app, token, &format!("/cohort/folders/{folder}/")).await;
        assert_eq!((status, &body["requests_count"]), (StatusCode::OK, &json!(1)), "{body}");
        let (_, list) = get(&app, token, "/cohort/requests/").await;
        assert_eq!(uuids(&list), vec![request.clone()]);
    }
}

#[tokio::test]
async fn nested_folder_routes_are_scoped_to_that_folder() {
    let (app, alice) = app_with_alice().await;
    let f = folder_uuid(&app, &alice, "F").await;
    let g = folder_uuid(&app, &alice, "G").await;
    let in_f = format!("/cohort/folders/{f}/requests/");

    // POST takes the folder from the URL, over the body's.
    let (status, created) = post(&app, &alice, &in_f, json!({"name": "r1"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["parent_folder"], json!({"uuid": f, "name": "F", "description": null}));
    assert!(created.get("updated_at").is_none(), "{created}");
    let r1 = created["uuid"].as_str().unwrap().to_owned();
    let (status, created) = post(&app, &alice, &in_f, json!({"name": "r2", "parent_folder": g})).await;
    assert_eq!((status, &created["parent_folder"]["uuid"]), (StatusCode::CREATED, &json!(f)), "{created}");
    let r2 = created["uuid"].as_str().unwrap().to_owned();
    let elsewhere = request_in(&app, &alice, &g, "r3", json!({})).await;
    let (status, errors) = post(&app, &alice, &in_f, json!({})).await;
    assert_eq!((status, errors), (StatusCode::BAD_REQUEST, json!({"name": ["This field is required."]})));

    let (status, list) = get(&app, &alice, &format!("{in_f}?ordering=name")).await;
    assert_eq!(
        (status, list["count"].clone(), names(&list)),
        (StatusCode::OK, json!(2), vec!["r1".into(), "r2".into()])
    );
    let (_, list) = get(&app, &alice, &format!("/cohort/folders/{g}/requests/")).await;
    assert_eq!(uuids(&list), vec![elsewhere.clone()]);
    let (_, list) = get(&app, &alice, &format!("{in_f}?search=2")).await;
    assert_eq!(names(&list), ["r2"]);
    let (_, list) = get(&app, &alice, &format!("/cohort/folders/{}/requests/", Uuid::new_v4())).await;
    assert_eq!((list["count"].clone(), list["results"].clone()), (json!(0), json!([])));

    // Object routes only see the folder's requests.
    let (status, read) = get(&app, &alice, &format!("{in_f}{r1}/")).await;
    assert_eq!((status, &read["uuid"], &read["updated_at"]), (StatusCode::OK, &json!(r1), &Value::Null), "{read}");
    let foreign = format!("{in_f}{elsewhere}/");
    assert_eq!(get(&app, &alice, &foreign).await, not_found(NO_REQUEST));
    assert_eq!(patch(&app, &alice, &foreign, json!({"name": "x"})).await, not_found(NO_REQUEST));
    assert_eq!(delete(&app, &alice, &foreign).await, not_found(NO_REQUEST));
    assert_eq!(get(&app, &alice, &format!("/cohort/requests/{elsewhere}/")).await.1["name"], "r3");

    let (status, patched) = patch(&app, &alice, &format!("{in_f}{r1}/"), json!({"name": "r1 bis"})).await;
    assert_eq!((status, &patched["name"]), (StatusCode::OK, &json!("r1 bis")), "{patched}");
    assert_eq!(delete(&app, &alice, &format!("{in_f}{r2}/")).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&app, &alice, &format!("/cohort/requests/{r2}/")).await, not_found(NO_REQUEST));
    let (_, list) = get(&app, &alice, &in_f).await;
    assert_eq!(names(&list), ["r1 bis"]);
}

/// Spec §10.1: a perimeter sync that changes a perimeter's cohort id rewrites the population of
/// the stored queries naming it (and only that part of the text), keeping the old text in history.
#[tokio::test]
async fn a_sync_changing_a_perimeter_cohort_id_rewrites_the_stored_queries() {
    let (app, alice) = app_with_alice().await;
    let folder = folder_uuid(&app, &alice, "P").await;
    let request = request_in(&app, &alice, &folder, "R", json!({})).await;
    let query = r#"{"_type": "request", "sourcePopulation": {"caresiteCohortList": ["1", "2"]}, "request": {"filterFhir": "a=\"1\""}}"#;
    let (status, snapshot) = post(
        &app,
        &alice,
        "/cohort/request-query-snapshots/",
        json!({"request_id": request, "serialized_query": query}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{snapshot}");
    let uuid = snapshot["uuid"].as_str().unwrap().to_owned();

    // Perimeter 1 now has cohort id 7001; perimeter 2 keeps its id.
    let document: String = integration_tests::DEMO_TREE
        .lines()
        .map(|line| if line.starts_with("1;") { line.replace(";Local P1;1;", ";Local P1;7001;") } else { line.into() })
        .collect::<Vec<_>>()
        .join("\n");
    let now = c360::domain::time::now();
    let report = c360::services::perimeter_sync::apply_document(&app.state.store, &document, now).await.unwrap();
    assert_eq!(report.rewritten_queries, 1, "{report:?}");

    let (_, after) = get(&app, &alice, &format!("/cohort/request-query-snapshots/{uuid}/")).await;
    assert_eq!(
        after["serialized_query"],
        r#"{"_type": "request", "sourcePopulation": {"caresiteCohortList": ["7001", "2"]}, "request": {"filterFhir": "a=\"1\""}}"#
    );
    assert_eq!(after["perimeters_ids"], json!(["7001", "2"]));
    let again = c360::services::perimeter_sync::apply_document(&app.state.store, &document, now).await.unwrap();
    assert_eq!(again.rewritten_queries, 0, "nothing left to rewrite");

    // The perimeter records when it entered the tree and when a sync last changed it.
    app.state.invalidate_perimeter_tree();
    let (_, p1) = get(&app, &alice, "/accesses/perimeters/1/").await;
    let (inserted, updated) = (p1["insert_datetime"].as_str().unwrap(), p1["update_datetime"].as_str().unwrap());
    assert!(inserted < updated, "seeded at {inserted}, changed by the sync at {updated}");
    assert_eq!(updated, c360::domain::time::iso(now));
}

/// Spec §4.9: a cohort's `group_id` stands for the perimeters of its snapshot's population when a
/// patient page asks whether its data may be read.
#[tokio::test]
async fn patient_data_read_resolves_the_callers_cohort_group_ids() {
    let app = TestApp::new().await;
    app.account_on("reader", Some(4), 10).await; // nominative reader on P10 (parent of P13)
    let (reader, _) = app.login("reader").await;
    let folder = folder_uuid(&app, &reader, "P").await;
    let request = request_in(&app, &reader, &folder, "R", json!({})).await;
    let query = r#"{"sourcePopulation": {"caresiteCohortList": ["13"]}}"#;
    let (_, snapshot) = post(
        &app,
        &reader,
        "/cohort/request-query-snapshots/",
        json!({"request_id": request, "serialized_query": query}),
    )
    .await;
    let (_, count) =
        post(&app, &reader, "/cohort/dated-measures/", json!({"request_query_snapshot_id": snapshot["uuid"]})).await;
    let (status, cohort) = post(
        &app,
        &reader,
        "/cohort/cohorts/",
        json!({"name": "C", "request_query_snapshot_id": snapshot["uuid"], "dated_measure_id": count["uuid"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cohort}");
    let cohort_path = format!("/cohort/cohorts/{}/", cohort["uuid"].as_str().unwrap());
    assert_eq!(patch(&app, &reader, &cohort_path, json!({"group_id": "G1"})).await.0, StatusCode::OK);

    let (status, read) = get(&app, &reader, "/accesses/perimeters/patient-data/read/?cohort_ids=G1&mode=min").await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["allow_read_patient_data_nomi"], true);
    let (status, body) = get(&app, &reader, "/accesses/perimeters/patient-data/read/?cohort_ids=G2&mode=min").await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"error": "None of the target perimeters was found"})));
}
