//! Release notes (spec §9.3).
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::time::{self, DateTime};
use crate::error::{AppError, FieldErrors};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseNote {
    pub id: i64,
    pub title: String,
    pub message: Vec<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(with = "time::iso_format")]
    pub insert_datetime: DateTime,
    #[serde(with = "time::iso_format")]
    pub update_datetime: DateTime,
}

#[derive(Debug, PartialEq)]
pub struct NoteFields {
    pub title: String,
    pub message: Vec<String>,
    pub author: Option<String>,
}

/// `message` is required on create: the original fails at the database (500) without it; we answer 400.
pub fn validate(body: &Map<String, Value>, existing: Option<&ReleaseNote>) -> Result<NoteFields, AppError> {
    let mut errors = FieldErrors::new();
    let mut push = |f: &str, m: &str| errors.entry(f.to_owned()).or_default().push(m.to_owned());
    let title = match body.get("title") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            push("title", "This field may not be blank.");
            None
        }
        None if existing.is_some() => existing.map(|e| e.title.clone()),
        None => {
            push("title", "This field is required.");
            None
        }
        Some(_) => {
            push("title", "Not a valid string.");
            None
        }
    };
    let message = match body.get("message") {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Some(items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        }
        Some(Value::Array(_)) => {
            push("message", "Not a valid string.");
            None
        }
        None if existing.is_some() => existing.map(|e| e.message.clone()),
        None => {
            push("message", "This field is required.");
            None
        }
        Some(_) => {
            push("message", "Expected a list of items but got type \"str\".");
            None
        }
    };
    let author = match body.get("author") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) => None,
        None => existing.and_then(|e| e.author.clone()),
        Some(_) => {
            push("author", "Not a valid string.");
            None
        }
    };
    match (title, message) {
        (Some(title), Some(message)) if errors.is_empty() => Ok(NoteFields { title, message, author }),
        _ => Err(AppError::Invalid(errors)),
    }
}
