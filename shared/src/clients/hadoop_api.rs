//! The Hadoop API over HTTP (spec §7.5 hive specifics): a hive export's database is created by a task
//! (`POST /hadoop/hive/create_base_hive`, polled on `/hadoop/task_status`) and handed from one owner to
//! another with `POST /hadoop/hdfs/chown_directory`. The `auth-token` header is the only credential; no
//! error text carries it (reqwest errors are stripped of their URL too).
use serde_json::Value;

use crate::{clients::export_api::short, config::Secret};

#[derive(Debug, thiserror::Error)]
pub enum HadoopApiError {
    #[error("{0}")]
    Unreachable(String),
    #[error("the Hadoop API answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("Got an invalid Job ID: `{0}`")]
    NoTaskId(String),
    /// `chown_directory` answered 2xx without `{"status": "success", "ret_code": 0}`.
    #[error("Granting rights did not succeed: {0}")]
    NotGranted(String),
    #[error("timed out")]
    Timeout,
}

fn request_error(e: reqwest::Error) -> HadoopApiError {
    if e.is_timeout() {
        HadoopApiError::Timeout
    } else {
        HadoopApiError::Unreachable(short(&e.without_url().to_string()))
    }
}

#[derive(Clone)]
pub struct HadoopApi {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
}

impl HadoopApi {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, token: Secret) -> Self {
        Self { http, base_url: base_url.into(), token }
    }

    /// Sends a request to `path` with `query`; a 2xx answer's body, else `Refused`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<String, HadoopApiError> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .query(query)
            .header("auth-token", self.token.expose())
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        let text = response.text().await.map_err(request_error)?;
        if !status.is_success() {
            return Err(HadoopApiError::Refused { status: status.as_u16(), body: short(&text) });
        }
        Ok(text)
    }

    /// `POST /hadoop/hive/create_base_hive` (if it does not exist yet): the id of the creating task.
    pub async fn create_database(&self, name: &str, location: &str) -> Result<String, HadoopApiError> {
        let query = [("name", name), ("location", location), ("if_not_exists", "True")];
        let text = self.call(reqwest::Method::POST, "/hadoop/hive/create_base_hive", &query).await?;
        let task = serde_json::from_str::<Value>(&text).ok().and_then(|v| match v.get("task_id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
        task.ok_or_else(|| HadoopApiError::NoTaskId("None".into()))
    }

    /// `GET /hadoop/task_status` with the task's logs: the API's JSON answer as is.
    pub async fn task_status(&self, task: &str) -> Result<Value, HadoopApiError> {
        let query = [("task_uuid", task), ("return_out_logs", "True"), ("return_err_logs", "True")];
        let text = self.call(reqwest::Method::GET, "/hadoop/task_status", &query).await?;
        serde_json::from_str(&text).map_err(|e| HadoopApiError::Unreachable(format!("not JSON: {e}")))
    }

    /// `POST /hadoop/hdfs/chown_directory`: `location` and what it holds now belong to `uid` (group `hdfs`).
    pub async fn chown(&self, location: &str, uid: &str) -> Result<(), HadoopApiError> {
        let query = [("location", location), ("uid", uid), ("gid", "hdfs"), ("recursive", "True")];
        let text = self.call(reqwest::Method::POST, "/hadoop/hdfs/chown_directory", &query).await?;
        granted(&text)
    }
}

/// Whether a `chown_directory` answer says it was done: `{"status": "success", "ret_code": 0}`.
fn granted(answer: &str) -> Result<(), HadoopApiError> {
    let value: Value = serde_json::from_str(answer).unwrap_or(Value::Null);
    if value.get("status").and_then(Value::as_str) == Some("success")
        && value.get("ret_code").and_then(Value::as_i64) == Some(0)
    {
        return Ok(());
    }
    let reason = match value.get("err") {
        Some(Value::String(err)) if !err.is_empty() => short(err),
        _ => short(answer),
    };
    Err(HadoopApiError::NotGranted(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_success_with_return_code_zero_grants() {
        assert!(granted(r#"{"status": "success", "ret_code": 0, "out": ""}"#).is_ok());
        let refused = |answer: &str| granted(answer).unwrap_err().to_string();
        assert_eq!(
            refused(r#"{"status": "failure", "ret_code": 1, "err": "chown: no such user"}"#),
            "Granting rights did not succeed: chown: no such user"
        );
        assert_eq!(
            refused(r#"{"status": "success", "ret_code": 2}"#),
            r#"Granting rights did not succeed: {"status": "success", "ret_code": 2}"#
        );
        assert_eq!(refused("done"), "Granting rights did not succeed: done");
    }
}
