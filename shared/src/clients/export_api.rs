//! The Export API over HTTP (spec §7.5): an export is a YAML file posted as multipart `yaml_file`,
//! then a task polled on `/task_status`. The `auth-token` header is the only credential; no error
//! text carries it (reqwest errors are stripped of their URL too).
use serde_json::Value;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ExportApiError {
    #[error("{0}")]
    Unreachable(String),
    #[error("the Export API answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("Got an invalid Job ID: `{0}`")]
    NoTaskId(String),
    /// The request did not complete within the client's timeout.
    #[error("timed out")]
    Timeout,
}

#[derive(Clone)]
pub struct ExportApi {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
}

/// At most 300 characters of a remote answer, for error messages.
pub(crate) fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

fn request_error(e: reqwest::Error) -> ExportApiError {
    if e.is_timeout() {
        ExportApiError::Timeout
    } else {
        ExportApiError::Unreachable(short(&e.without_url().to_string()))
    }
}

/// The boundary of the multipart body; any string absent from a YAML file of ours will do.
const BOUNDARY: &str = "c360-export-yaml-boundary-7d3f1a";

/// A `multipart/form-data` body with one file field `yaml_file` (`yaml_file.yaml`, `application/x-yaml`).
pub fn yaml_multipart(yaml: &str) -> (String, Vec<u8>) {
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"yaml_file\"; filename=\"yaml_file.yaml\"\r\n\
         Content-Type: application/x-yaml\r\n\r\n{yaml}\r\n--{BOUNDARY}--\r\n"
    );
    (format!("multipart/form-data; boundary={BOUNDARY}"), body.into_bytes())
}

impl ExportApi {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, token: Secret) -> Self {
        Self { http, base_url: base_url.into(), token }
    }

    /// `POST /yaml`: the task id of the export.
    pub async fn launch(&self, yaml: &str) -> Result<String, ExportApiError> {
        let (content_type, body) = yaml_multipart(yaml);
        let response = self
            .http
            .post(format!("{}/yaml", self.base_url))
            .header("auth-token", self.token.expose())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        let text = response.text().await.map_err(request_error)?;
        if status.as_u16() != 200 {
            return Err(ExportApiError::Refused { status: status.as_u16(), body: short(&text) });
        }
        let task = serde_json::from_str::<Value>(&text).ok().and_then(|v| match v.get("task_id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
        task.ok_or_else(|| ExportApiError::NoTaskId("None".into()))
    }

    /// `GET /task_status` with the task's logs: the API's JSON answer as is.
    pub async fn task_status(&self, task: &str) -> Result<Value, ExportApiError> {
        let response = self
            .http
            .get(format!("{}/task_status", self.base_url))
            .query(&[("task_uuid", task), ("return_out_logs", "True"), ("return_err_logs", "True")])
            .header("auth-token", self.token.expose())
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        let text = response.text().await.map_err(request_error)?;
        if !status.is_success() {
            return Err(ExportApiError::Refused { status: status.as_u16(), body: short(&text) });
        }
        serde_json::from_str(&text).map_err(|e| ExportApiError::Unreachable(format!("not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_travels_as_the_file_field_yaml_file() {
        let (content_type, body) = yaml_multipart("overwrite: true\n");
        assert_eq!(content_type, format!("multipart/form-data; boundary={BOUNDARY}"));
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"yaml_file\"; filename=\"yaml_file.yaml\"\r\n\
                 Content-Type: application/x-yaml\r\n\r\noverwrite: true\n\r\n--{BOUNDARY}--\r\n"
            )
        );
    }
}
