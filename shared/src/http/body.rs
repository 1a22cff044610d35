//! Request bodies as DRF parses them (spec §0.4): JSON, url-encoded forms and multipart forms all
//! become one JSON object; malformed input is a 400, never a 500.
use axum::{
    body::Bytes,
    extract::{FromRequest, Multipart, Request},
    http::header::CONTENT_TYPE,
};
use serde_json::{Map, Value};

use crate::error::AppError;

/// The parsed body: an empty object when there is no body.
#[derive(Debug, Default)]
pub struct Body(pub Map<String, Value>);

/// Bodies above this size are refused (the front-end proxy allows 25 MB; our largest legitimate
/// body is a serialized query of a few hundred KB).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

fn parse_error(detail: impl Into<String>) -> AppError {
    AppError::ParseError(detail.into())
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Self::parse(req, state).await
    }
}

impl Body {
    async fn parse<S: Send + Sync>(req: Request, state: &S) -> Result<Self, AppError> {
        let content_type =
            req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|_| parse_error("Multipart form parse error - Invalid boundary in multipart: None"))?;
            let mut map = Map::new();
            while let Some(field) =
                multipart.next_field().await.map_err(|_| parse_error("Multipart form parse error - malformed body"))?
            {
                let Some(name) = field.name().map(str::to_owned) else { continue };
                if field.file_name().is_some() {
                    continue; // no endpoint of ours takes file uploads
                }
                let text =
                    field.text().await.map_err(|_| parse_error("Multipart form parse error - malformed field"))?;
                map.insert(name, Value::String(text));
            }
            return Ok(Self(map));
        }
        let bytes =
            Bytes::from_request(req, state).await.map_err(|_| parse_error("Request body too large or unreadable."))?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(parse_error("Request body too large."));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).map_err(|_| parse_error("Form parse error - malformed body"))?;
            return Ok(Self(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()));
        }
        // JSON is the default, as for the clients (they always send it with its content type).
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(other) => Err(AppError::field(
                "non_field_errors",
                format!("Invalid data. Expected a dictionary, but got {}.", json_type_name(&other)),
            )),
            Err(e) => Err(parse_error(format!("JSON parse error - {e}"))),
        }
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}
