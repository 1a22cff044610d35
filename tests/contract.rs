//! The OpenAPI document (issue 14): valid OpenAPI 3.1, one operation per route of the inventory,
//! and the operations described by their types answer what the document says they answer.
use std::{collections::BTreeSet, path::PathBuf, process::Command};

use http::{Method, StatusCode};
use integration_tests::{TestApp, ADMIN};
use serde_json::{json, Value};

/// The tools venv's Python (`make test` exports it), which has the validators.
fn python() -> PathBuf {
    std::env::var_os("C360_PYTHON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python"))
}

/// Runs a Python check over `input` (written to a file); its output on failure.
fn python_check(args: &[&str], input: &Value) -> Result<String, String> {
    let file = std::env::temp_dir().join(format!("c360-contract-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec(input).expect("json")).expect("temp file");
    let out = Command::new(python()).args(args).arg(&file).output();
    let _ = std::fs::remove_file(&file);
    let out = out.unwrap_or_else(|e| panic!("{} could not run ({e}): run `make tools` first", python().display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

async fn document(app: &TestApp) -> Value {
    let (status, document) = app.call(Method::GET, "/schema").send().await;
    assert_eq!(status, StatusCode::OK);
    document
}

#[tokio::test]
async fn the_document_is_valid_openapi_with_every_route_once() {
    let app = TestApp::new().await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");

    let (_, specs) = dev_server::all_routes(&app.state);
    let routes: BTreeSet<(String, String)> =
        specs.iter().map(|s| (s.method.as_str().to_lowercase(), s.path.to_owned())).collect();
    assert_eq!(routes.len(), specs.len(), "a route is registered twice");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| item.as_object().expect("path item").keys().map(|m| (m.clone(), path.clone())))
        .collect();
    assert_eq!(documented, routes, "the document and the route table differ");

    let validate = "import json, sys\nfrom openapi_spec_validator import validate\n\
                    validate(json.load(open(sys.argv[1])))\nprint('valid')";
    if let Err(report) = python_check(&["-c", validate], &document) {
        panic!("/schema is not valid OpenAPI:\n{report}");
    }
}

/// Every answer of the calls, as the conformance check reads them.
struct Answers(Vec<Value>);

impl Answers {
    fn note(&mut self, method: Method, template: &str, (status, body): &(StatusCode, Value)) {
        self.0.push(json!({"method": method.as_str(), "path": template, "status": status.as_u16(), "body": body}));
    }
}

#[tokio::test]
async fn typed_operations_answer_what_the_document_says() {
    let app = TestApp::new().await;
    let (token, _) = app.login(ADMIN).await;
    let mut answers = Answers(Vec::new());
    let folders = "/cohort/folders/";
    let one = "/cohort/folders/{uuid}/";

    let created = app.call(Method::POST, folders).token(&token).json(json!({"name": "typed"})).send().await;
    assert_eq!(created.0, StatusCode::CREATED);
    answers.note(Method::POST, folders, &created);
    let uuid = created.1["uuid"].as_str().expect("uuid").to_owned();
    let invalid = app
        .call(Method::POST, folders)
        .token(&token)
        .json(json!({"name": "", "description": [], "owner": "someone-else"}))
        .send()
        .await;
    assert_eq!(
        invalid,
        (
            StatusCode::BAD_REQUEST,
            json!({
                "name": ["This field may not be blank."],
                "description": ["Not a valid string."],
                "owner": ["Invalid pk \"someone-else\" - object does not exist."],
            })
        )
    );
    answers.note(Method::POST, folders, &invalid);
    for query in ["", "?ordering=-name&limit=1", "?search=typ&min_created_at=2020-01-01T00:00:00Z"] {
        let listed = app.call(Method::GET, &format!("{folders}{query}")).token(&token).send().await;
        assert_eq!(listed.0, StatusCode::OK);
        answers.note(Method::GET, folders, &listed);
    }
    let bad_filter = app.call(Method::GET, &format!("{folders}?min_created_at=yesterday")).token(&token).send().await;
    assert_eq!(bad_filter.0, StatusCode::BAD_REQUEST);
    answers.note(Method::GET, folders, &bad_filter);
    let path = format!("{folders}{uuid}/");
    let got = app.call(Method::GET, &path).token(&token).send().await;
    assert_eq!(got.0, StatusCode::OK);
    answers.note(Method::GET, one, &got);
    let patched = app.call(Method::PATCH, &path).token(&token).json(json!({"description": null})).send().await;
    assert_eq!(patched.0, StatusCode::OK);
    answers.note(Method::PATCH, one, &patched);
    let anonymous = app.call(Method::GET, &path).send().await;
    answers.note(Method::GET, one, &anonymous);
    let deleted = app.call(Method::DELETE, &path).token(&token).send().await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT);
    answers.note(Method::DELETE, one, &deleted);
    let gone = app.call(Method::GET, &path).token(&token).send().await;
    assert_eq!(gone.0, StatusCode::NOT_FOUND);
    answers.note(Method::GET, one, &gone);

    let input = json!({"document": document(&app).await, "answers": answers.0});
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/conform.py");
    match python_check(&[script], &input) {
        Ok(report) => eprintln!("{report}"),
        Err(report) => panic!("answers differ from /schema:\n{report}"),
    }
}
