//! Web content shown by the front ends: banners and news (spec §9.2).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::time::{self, DateTime};
use crate::error::{AppError, FieldErrors};

/// `(type, label)`; the description equals the label.
pub const CONTENT_TYPES: [(&str, &str); 4] = [
    ("BANNER_WARNING", "Bannière d'avertissement"),
    ("BANNER_INFO", "Bannière d'information"),
    ("BANNER_ERROR", "Bannière d'erreur"),
    ("RELEASE_NOTE", "Note de version"),
];

const METADATA_KEYS: [&str; 3] = ["order", "style", "tags"];

pub fn content_type_label(kind: &str) -> Option<&'static str> {
    CONTENT_TYPES.iter().find(|(k, _)| *k == kind).map(|(_, label)| *label)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub id: i64,
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub page: Option<String>,
    pub content_type: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(with = "time::iso_format")]
    pub created_at: DateTime,
    #[serde(with = "time::iso_format")]
    pub modified_at: DateTime,
    #[serde(with = "time::iso_format::option", default)]
    pub deleted_at: Option<DateTime>,
}

#[derive(Debug, PartialEq)]
pub struct ContentFields {
    pub title: String,
    pub content: String,
    pub page: Option<String>,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
}

pub fn validate(body: &Map<String, Value>, existing: Option<&Content>) -> Result<ContentFields, AppError> {
    let mut errors = FieldErrors::new();
    let text = |field: &str, current: Option<&String>, errors: &mut FieldErrors| match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.entry(field.into()).or_default().push("This field may not be blank.".into());
            None
        }
        None if current.is_some() => current.cloned(),
        None => {
            errors.entry(field.into()).or_default().push("This field is required.".into());
            None
        }
        Some(_) => {
            errors.entry(field.into()).or_default().push("Not a valid string.".into());
            None
        }
    };
    let title = text("title", existing.map(|e| &e.title), &mut errors);
    let content = text("content", existing.map(|e| &e.content), &mut errors);
    let content_type = text("content_type", existing.map(|e| &e.content_type), &mut errors);
    if let Some(kind) = &content_type {
        if content_type_label(kind).is_none() {
            let available: Vec<&str> = CONTENT_TYPES.iter().map(|(k, _)| *k).collect();
            errors
                .entry("content_type".into())
                .or_default()
                .push(format!("Invalid content type. Available types are: {}", available.join(", ")));
        }
    }
    let page = match body.get("page") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) => None,
        None => existing.and_then(|e| e.page.clone()),
        Some(_) => {
            errors.entry("page".into()).or_default().push("Not a valid string.".into());
            None
        }
    };
    // PATCH with `metadata` replaces the whole set; without it, the stored set stays.
    let metadata = match body.get("metadata") {
        None => existing.map(|e| e.metadata.clone()).unwrap_or_default(),
        Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => {
            let unknown: Vec<&str> = map.keys().map(String::as_str).filter(|k| !METADATA_KEYS.contains(k)).collect();
            if !unknown.is_empty() {
                errors.entry("metadata".into()).or_default().push(format!(
                    "Invalid metadata name(s): {}. Must be one of {}",
                    unknown.join(", "),
                    METADATA_KEYS.join(", ")
                ));
            }
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                .collect()
        }
        Some(_) => {
            errors.entry("metadata".into()).or_default().push("Expected a dictionary of items.".into());
            BTreeMap::new()
        }
    };
    match (title, content, content_type) {
        (Some(title), Some(content), Some(content_type)) if errors.is_empty() => {
            Ok(ContentFields { title, content, page, content_type, metadata })
        }
        _ => Err(AppError::Invalid(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_type_and_metadata_have_the_original_messages() {
        let body = json!({"title": "t", "content": "c", "content_type": "POPUP", "metadata": {"colour": "red"}});
        let AppError::Invalid(errors) = validate(body.as_object().unwrap(), None).unwrap_err() else { panic!() };
        assert_eq!(
            errors["content_type"],
            ["Invalid content type. Available types are: BANNER_WARNING, BANNER_INFO, BANNER_ERROR, RELEASE_NOTE"]
        );
        assert_eq!(errors["metadata"], ["Invalid metadata name(s): colour. Must be one of order, style, tags"]);
    }

    #[test]
    fn metadata_values_are_stringified() {
        let body = json!({"title": "t", "content": "c", "content_type": "BANNER_INFO", "metadata": {"order": 2}});
        let fields = validate(body.as_object().unwrap(), None).unwrap();
        assert_eq!(fields.metadata["order"], "2");
    }
}
