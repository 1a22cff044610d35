//! A fake Export API (spec §7.5): `POST /yaml` takes the export's YAML as the multipart file
//! `yaml_file` and answers a `task_id`; `GET /task_status?task_uuid=…` answers `Running` until the
//! configured delay has passed, then the configured outcome. A successful csv/xlsx task first writes
//! `output.filePath` (`s3://<bucket>/<key>`): a zip holding, per exported table, a CSV (`output.type`
//! csv) or an Excel workbook (xlsx) of made-up rows; a hive task (`output.databaseName`) writes nothing. Every call needs the `auth-token` header.
//! `GET /fake/tasks` lists what was received.
use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Multipart, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;
use serde_json::json;

/// What tasks end with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `FinishedSuccessfully`, after writing the file.
    Success,
    /// The given final `task_status` (e.g. `FinishedWithError`, `Revoked`).
    Status(String),
    /// `POST /yaml` answers 500: no task is created.
    RefuseLaunch,
    /// `GET /task_status` answers 503 (the API is down while the task runs).
    StatusDown,
}

impl Outcome {
    /// `success`, `refuse`, `down`, or a final task status.
    pub fn parse(value: &str) -> Self {
        match value {
            "" | "success" => Self::Success,
            "refuse" => Self::RefuseLaunch,
            "down" => Self::StatusDown,
            other => Self::Status(other.to_owned()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The `auth-token` expected (`EXPORT_API_AUTH_TOKEN`; empty accepts any).
    pub token: String,
    /// How long a task runs before its outcome (`FAKE_EXPORT_DELAY_MS`).
    pub delay: Duration,
    pub outcome: Outcome,
}

/// A received export, as the tests read it back.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedTask {
    pub task_id: String,
    /// The YAML file exactly as received.
    pub yaml: String,
    pub file_path: Option<String>,
    /// `output.type`: csv, xlsx or hive.
    pub output_type: Option<String>,
    /// The database a hive export fills.
    pub database_name: Option<String>,
    pub tables: Vec<String>,
    pub status_calls: usize,
    #[serde(skip)]
    received: Option<Instant>,
    written: bool,
}

impl ReceivedTask {
    /// When the YAML arrived: the task runs from then on for the configured delay.
    pub fn received_at(&self) -> Option<Instant> {
        self.received
    }
}

pub struct ExportApi {
    config: Mutex<Config>,
    s3: Option<aws_sdk_s3::Client>,
    tasks: Mutex<Vec<ReceivedTask>>,
}

impl ExportApi {
    /// `s3` writes the files (`None`: tasks succeed without writing, for tests of the API alone).
    pub fn new(config: Config, s3: Option<aws_sdk_s3::Client>) -> Self {
        Self { config: Mutex::new(config), s3, tasks: Mutex::new(Vec::new()) }
    }

    pub fn tasks(&self) -> Vec<ReceivedTask> {
        self.tasks.lock().expect("tasks lock").clone()
    }

    /// Changes what the next calls do (tests drive each outcome).
    pub fn set(&self, delay: Duration, outcome: Outcome) {
        let mut config = self.config.lock().expect("config lock");
        config.delay = delay;
        config.outcome = outcome;
    }

    fn config(&self) -> Config {
        self.config.lock().expect("config lock").clone()
    }
}

pub fn router(api: Arc<ExportApi>) -> Router {
    Router::new()
        .route("/yaml", post(launch))
        .route("/task_status", get(task_status))
        .route("/fake/tasks", get(list))
        .with_state(api)
}

fn authorized(api: &ExportApi, headers: &HeaderMap) -> bool {
    let token = api.config().token;
    token.is_empty() || headers.get("auth-token").and_then(|v| v.to_str().ok()) == Some(token.as_str())
}

fn refused(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({"detail": detail}))).into_response()
}

/// The value of `key:` in a block-style YAML line (quotes removed), as our exports and PyYAML write it.
fn yaml_value(line: &str, key: &str) -> Option<String> {
    let rest = line.trim_start().trim_start_matches("- ").strip_prefix(key)?.strip_prefix(':')?.trim();
    let unquoted = rest
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .map(|r| r.replace("''", "'"))
        .unwrap_or_else(|| rest.trim_matches('"').to_owned());
    Some(unquoted)
}

async fn launch(State(api): State<Arc<ExportApi>>, headers: HeaderMap, mut form: Multipart) -> Response {
    if !authorized(&api, &headers) {
        return refused(StatusCode::UNAUTHORIZED, "invalid auth-token");
    }
    if api.config().outcome == Outcome::RefuseLaunch {
        return refused(StatusCode::INTERNAL_SERVER_ERROR, "the fake Export API refuses exports");
    }
    let mut yaml = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("yaml_file") {
            yaml = field.text().await.ok();
        }
    }
    let Some(yaml) = yaml else { return refused(StatusCode::UNPROCESSABLE_ENTITY, "missing yaml_file") };
    let file_path = yaml.lines().find_map(|l| yaml_value(l, "filePath"));
    let database_name = yaml.lines().find_map(|l| yaml_value(l, "databaseName"));
    let output_type = yaml.lines().find_map(|l| yaml_value(l, "type"));
    let tables = yaml.lines().filter_map(|l| yaml_value(l, "tableName")).collect();
    let task_id = uuid::Uuid::new_v4().to_string();
    api.tasks.lock().expect("tasks lock").push(ReceivedTask {
        task_id: task_id.clone(),
        yaml,
        file_path,
        output_type,
        database_name,
        tables,
        status_calls: 0,
        received: Some(Instant::now()),
        written: false,
    });
    Json(json!({"task_id": task_id})).into_response()
}

async fn task_status(
    State(api): State<Arc<ExportApi>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&api, &headers) {
        return refused(StatusCode::UNAUTHORIZED, "invalid auth-token");
    }
    let config = api.config();
    let wanted = params.get("task_uuid").cloned().unwrap_or_default();
    let task = {
        let mut tasks = api.tasks.lock().expect("tasks lock");
        let Some(task) = tasks.iter_mut().find(|t| t.task_id == wanted) else {
            return Json(json!({"task_status": "NotFound", "out_logs": "", "err_logs": "no such task"}))
                .into_response();
        };
        task.status_calls += 1;
        task.clone()
    };
    if config.outcome == Outcome::StatusDown {
        return refused(StatusCode::SERVICE_UNAVAILABLE, "the fake Export API is down");
    }
    let running = task.received.is_some_and(|at| at.elapsed() < config.delay);
    let status = match &config.outcome {
        _ if running => "Running".to_owned(),
        Outcome::Status(final_status) => final_status.clone(),
        Outcome::Success | Outcome::RefuseLaunch | Outcome::StatusDown => {
            if let Err(err) = write_once(&api, &task).await {
                return Json(json!({"task_status": "Failure", "out_logs": "", "err_logs": err})).into_response();
            }
            "FinishedSuccessfully".to_owned()
        }
    };
    Json(json!({
        "task_status": status,
        "out_logs": format!("[fake] task {} exporting {}", task.task_id, task.tables.join(", ")),
        "err_logs": "",
    }))
    .into_response()
}

/// Writes the task's zip into the bucket the first time its success is reported.
async fn write_once(api: &ExportApi, task: &ReceivedTask) -> Result<(), String> {
    let (Some(s3), Some(path), false) = (&api.s3, &task.file_path, task.written) else { return Ok(()) };
    let (bucket, key) = path
        .strip_prefix("s3://")
        .and_then(|p| p.split_once('/'))
        .ok_or_else(|| format!("filePath {path} is not an s3:// URL"))?;
    let files: Vec<(String, Vec<u8>)> = match task.output_type.as_deref() {
        Some("xlsx") => task
            .tables
            .iter()
            .map(|t| Ok((format!("{t}.xlsx"), made_up_workbook(t)?)))
            .collect::<Result<_, String>>()?,
        _ => task.tables.iter().map(|t| (format!("{t}.csv"), made_up_rows(t))).collect(),
    };
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/zip")
        .body(stored_zip(&files).into())
        .send()
        .await
        .map_err(|e| format!("could not write {path}: {:?}", e.as_service_error().map(|s| s.to_string())))?;
    if let Some(t) = api.tasks.lock().expect("tasks lock").iter_mut().find(|t| t.task_id == task.task_id) {
        t.written = true;
    }
    Ok(())
}

/// Three made-up rows of a table.
pub fn made_up_rows(table: &str) -> Vec<u8> {
    let mut csv = format!("{table}_id,person_id,value\n");
    for i in 1..=3 {
        csv.push_str(&format!("{i},{},fake {table} {i}\n", 1000 + i));
    }
    csv.into_bytes()
}

/// The same rows as [`made_up_rows`] in an Excel workbook, one sheet named after the table (ids as
/// numbers, like an export of real data). Deterministic, so tests can find it in the zip.
pub fn made_up_workbook(table: &str) -> Result<Vec<u8>, String> {
    fn build(table: &str) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        // A fixed creation date: the same table always makes the same bytes.
        let created = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 1, 1)?;
        workbook.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
        let sheet = workbook.add_worksheet();
        // Excel sheet names: at most 31 characters.
        sheet.set_name(table.chars().take(31).collect::<String>())?;
        let text = String::from_utf8_lossy(&made_up_rows(table)).into_owned();
        for (row, line) in (0u32..).zip(text.lines()) {
            for (col, cell) in (0u16..).zip(line.split(',')) {
                match cell.parse::<f64>() {
                    Ok(number) => sheet.write_number(row, col, number)?,
                    Err(_) => sheet.write_string(row, col, cell)?,
                };
            }
        }
        workbook.save_to_buffer()
    }
    build(table).map_err(|e| format!("could not build the {table} workbook: {e}"))
}

/// A zip archive of `files`, stored without compression.
pub fn stored_zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, content) in files {
        let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(content);
        let size = u32::try_from(content.len()).unwrap_or(u32::MAX);
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        let common = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&20u16.to_le_bytes()); // version needed
            buf.extend_from_slice(&0u16.to_le_bytes()); // flags
            buf.extend_from_slice(&0u16.to_le_bytes()); // stored
            buf.extend_from_slice(&0u32.to_le_bytes()); // time and date
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&name_len.to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(content);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let count = u16::try_from(files.len()).unwrap_or(u16::MAX);
    out.write_all(&central).ok();
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&u32::try_from(central.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

async fn list(State(api): State<Arc<ExportApi>>) -> Json<Vec<ReceivedTask>> {
    Json(api.tasks())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_values_are_read_as_written() {
        assert_eq!(yaml_value("  filePath: s3://b/exports/a.zip", "filePath").as_deref(), Some("s3://b/exports/a.zip"));
        assert_eq!(yaml_value("- tableName: person", "tableName").as_deref(), Some("person"));
        assert_eq!(yaml_value("  cohortId: '123'", "cohortId").as_deref(), Some("123"));
        assert_eq!(yaml_value("  relation: true", "tableName"), None);
    }

    #[test]
    fn an_xlsx_export_holds_real_workbooks() {
        let workbook = made_up_workbook("condition_occurrence").unwrap();
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(made_up_workbook("condition_occurrence").unwrap() == workbook, "the same bytes a second later");
        let zip = stored_zip(&[("condition_occurrence.xlsx".into(), workbook.clone())]);
        let dir = std::env::temp_dir().join(format!("fake-xlsx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("export.zip"), &zip).unwrap();
        let unzip = |args: &[&str]| std::process::Command::new("unzip").current_dir(&dir).args(args).output();
        let Ok(out) = unzip(&["-o", "export.zip"]) else {
            std::fs::remove_dir_all(&dir).ok();
            return assert_eq!(&workbook[..4], b"PK\x03\x04", "no unzip here: at least the signature");
        };
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let sheet = unzip(&["-p", "condition_occurrence.xlsx", "xl/worksheets/sheet1.xml"]).unwrap();
        let strings = unzip(&["-p", "condition_occurrence.xlsx", "xl/sharedStrings.xml"]).unwrap();
        let book = unzip(&["-p", "condition_occurrence.xlsx", "xl/workbook.xml"]).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let (sheet, strings) = (String::from_utf8_lossy(&sheet.stdout), String::from_utf8_lossy(&strings.stdout));
        assert!(String::from_utf8_lossy(&book.stdout).contains(r#"name="condition_occurrence""#));
        assert!(strings.contains("condition_occurrence_id") && strings.contains("fake condition_occurrence 3"));
        assert!(sheet.contains("<v>1003</v>"), "person ids are numbers: {sheet}");
    }

    #[test]
    fn the_zip_is_readable_by_unzip() {
        let zip = stored_zip(&[("person.csv".into(), made_up_rows("person"))]);
        let path = std::env::temp_dir().join(format!("fake-export-{}.zip", uuid::Uuid::new_v4()));
        std::fs::write(&path, &zip).unwrap();
        let out = std::process::Command::new("unzip").arg("-p").arg(&path).arg("person.csv").output();
        std::fs::remove_file(&path).ok();
        match out {
            Ok(out) => assert_eq!(out.stdout, made_up_rows("person"), "{}", String::from_utf8_lossy(&out.stderr)),
            Err(_) => assert_eq!(&zip[..4], b"PK\x03\x04", "no unzip here: at least the signature"),
        }
    }
}
