//! Checking answers against `/schema` (issue 14): `conform.py` (JSON Schema 2020-12, from the
//! tools venv) validates each recorded answer against its operation's documented status and body.
use std::{path::PathBuf, process::Command};

use http::{header::CONTENT_TYPE, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::Call;

/// The tools venv's Python (`make test` exports it), which has the validators.
pub fn python() -> PathBuf {
    std::env::var_os("C360_PYTHON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python"))
}

/// Runs `python <args> <file holding input>`: its output, as `Err` when it failed.
pub fn python_check(args: &[&str], input: &Value) -> Result<String, String> {
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

/// Answers of documented operations, by route template.
#[derive(Default)]
pub struct Answers(Vec<Value>);

impl Answers {
    pub fn note(&mut self, method: &Method, template: &str, status: StatusCode, headers: &HeaderMap, body: &Value) {
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        self.0.push(json!({
            "method": method.as_str(),
            "path": template,
            "status": status.as_u16(),
            "content_type": content_type,
            "body": body,
        }));
    }

    /// Sends `call` (a `method` request on a path of `template`) and records its answer.
    pub async fn send(&mut self, call: Call<'_>, method: Method, template: &str) -> (StatusCode, Value) {
        let (status, headers, body) = call.send_full().await;
        self.note(&method, template, status, &headers, &body);
        (status, body)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The check's summary, or its failures.
    pub fn check(&self, document: &Value) -> Result<String, String> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/conform.py");
        python_check(&[script], &json!({"document": document, "answers": self.0}))
    }
}
