//! The request audit log (spec §0.12, §9.4): the row, and the masking and bounding of everything a
//! client sends into it.
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::time::{self, DateTime};

/// Body keys whose values are masked: the original's list, widened to any key *containing* one of
/// these words so that `refresh_token`, `access_token` or `client_secret` are masked too.
const SENSITIVE_WORDS: [&str; 7] = ["api", "token", "key", "secret", "password", "signature", "auth_code"];
pub const MASK: &str = "********************";

/// The stored body text is cut here; the row keeps the full size and SHA-256 (64 KiB keeps a row
/// far below DynamoDB's 400 KB item limit whatever else it holds).
pub const MAX_DATA_BYTES: usize = 64 * 1024;
/// Path, query string and each recorded header are cut here.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestLog {
    /// Microseconds since the epoch of `requested_at` (unique, bumped on collision): sorts by time
    /// and stays below 2^53 so JavaScript clients read it exactly.
    pub id: i64,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub username_persistent: Option<String>,
    #[serde(with = "time::iso_format")]
    pub requested_at: DateTime,
    pub response_ms: i64,
    pub path: String,
    /// The route template that served `path` (`/accesses/accesses/{id}/`): what path filters index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub view: String,
    pub view_method: String,
    #[serde(default)]
    pub remote_addr: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    pub method: String,
    #[serde(default)]
    pub user_agent: Option<String>,
    pub query_params: String,
    /// The masked body as JSON text, cut at [`MAX_DATA_BYTES`].
    #[serde(default)]
    pub data: Option<String>,
    /// Set when `data` was cut: the byte size and SHA-256 (hex) of the whole masked body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// `None` while the request runs (the row is written before the handler), or when the handler's
    /// outcome could not be recorded.
    #[serde(default)]
    pub status_code: Option<u16>,
}

/// A request body as the log keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedBody {
    pub text: Option<String>,
    pub size: Option<usize>,
    pub sha256: Option<String>,
}

impl RecordedBody {
    /// Masks the parsed body, then cuts its text. The hash is of the *masked* text: a hash of the
    /// raw body would let anyone who reads the log test password guesses offline.
    pub fn masked(body: Map<String, Value>) -> Self {
        let mut value = Value::Object(body);
        mask(&mut value);
        let text = value.to_string();
        if text.len() <= MAX_DATA_BYTES {
            return Self { text: Some(text), size: None, sha256: None };
        }
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        Self { size: Some(text.len()), sha256: Some(sha256), text: Some(truncated(&text, MAX_DATA_BYTES).to_owned()) }
    }
}

pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_lowercase();
    SENSITIVE_WORDS.iter().any(|w| key.contains(w))
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `name=value` in a query string: the value is masked when the decoded name is sensitive.
fn masked_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((name, _)) => {
            let decoded =
                percent_encoding::percent_decode_str(&name.replace('+', " ")).decode_utf8_lossy().into_owned();
            if is_sensitive_key(&decoded) {
                format!("{name}={MASK}")
            } else {
                pair.to_owned()
            }
        }
        None => pair.to_owned(),
    }
}

/// A query string with the value of every sensitive parameter masked, cut at [`MAX_TEXT_BYTES`].
pub fn masked_query(query: &str) -> String {
    let masked = query.split('&').map(masked_pair).collect::<Vec<_>>().join("&");
    truncated(&masked, MAX_TEXT_BYTES).to_owned()
}

/// A path whose segments (and their `;name=value` parameters) are masked like query parameters.
pub fn masked_path(path: &str) -> String {
    let masked = path
        .split('/')
        .map(|segment| segment.split(';').map(masked_pair).collect::<Vec<_>>().join(";"))
        .collect::<Vec<_>>()
        .join("/");
    truncated(&masked, MAX_TEXT_BYTES).to_owned()
}

/// A header value (user agent, host, forwarded address) with `name=value` / `name: value` pairs of
/// sensitive names and bearer credentials masked, cut at [`MAX_TEXT_BYTES`].
pub fn masked_header(value: &str) -> String {
    static PAIRS: OnceLock<Regex> = OnceLock::new();
    static SCHEMES: OnceLock<Regex> = OnceLock::new();
    let pairs = PAIRS.get_or_init(|| {
        let words = SENSITIVE_WORDS.join("|");
        Regex::new(&format!(r"(?i)([\w.\-]*(?:{words})[\w.\-]*\s*[=:]\s*)[^\s&;,]+")).expect("a valid pattern")
    });
    let schemes = SCHEMES.get_or_init(|| Regex::new(r"(?i)\b(bearer|basic)\s+[^\s&;,]+").expect("a valid pattern"));
    let masked = pairs.replace_all(value, format!("${{1}}{MASK}"));
    let masked = schemes.replace_all(&masked, format!("${{1}} {MASK}"));
    truncated(&masked, MAX_TEXT_BYTES).to_owned()
}

/// Replaces the value of every sensitive key, at any depth.
pub fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_sensitive_key(k) {
                    *v = Value::String(MASK.into());
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_strings_paths_and_headers_are_masked_like_bodies() {
        assert_eq!(
            masked_query("password=hunter2&token=abc&page=2&client%5Fsecret=s&x_api_key=k&flag"),
            format!("password={MASK}&token={MASK}&page=2&client%5Fsecret={MASK}&x_api_key={MASK}&flag")
        );
        assert_eq!(
            masked_query("refresh_token=a+b%20c&auth_code=42"),
            format!("refresh_token={MASK}&auth_code={MASK}")
        );
        assert_eq!(
            masked_path("/users/42/;token=abc/password=x;keep=1/"),
            format!("/users/42/;token={MASK}/password={MASK};keep=1/")
        );
        assert_eq!(masked_path("/api/back/auth/login/"), "/api/back/auth/login/", "no value, nothing to mask");
        assert_eq!(
            masked_header("curl/8 token=abc Password: hunter2 Authorization: Bearer eyJ.x.y"),
            format!("curl/8 token={MASK} Password: {MASK} Authorization: Bearer {MASK}")
        );
        assert_eq!(masked_header("Mozilla/5.0 AppleWebKit/537.36"), "Mozilla/5.0 AppleWebKit/537.36");
    }

    #[test]
    fn recorded_text_is_bounded_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_BYTES);
        let cut = masked_query(&long);
        assert!(cut.len() <= MAX_TEXT_BYTES && long.starts_with(&cut));
        assert_eq!(masked_path(&long).len(), cut.len());
    }

    #[test]
    fn large_bodies_keep_their_size_and_hash_but_not_their_secrets() {
        let small = RecordedBody::masked(json!({"name": "n", "password": "p"}).as_object().unwrap().clone());
        assert_eq!(
            small,
            RecordedBody { text: Some(format!(r#"{{"name":"n","password":"{MASK}"}}"#)), size: None, sha256: None }
        );

        let body = json!({"password": "hunter2", "serialized_query": "x".repeat(1_900_000)});
        let big = RecordedBody::masked(body.as_object().unwrap().clone());
        let text = big.text.unwrap();
        assert_eq!(text.len(), MAX_DATA_BYTES);
        assert!(!text.contains("hunter2") && text.contains(MASK));
        let full = format!(r#"{{"password":"{MASK}","serialized_query":"{}"}}"#, "x".repeat(1_900_000));
        assert_eq!(big.size, Some(full.len()));
        assert_eq!(big.sha256, Some(hex::encode(Sha256::digest(full.as_bytes()))));
    }

    #[test]
    fn masks_sensitive_keys_at_any_depth() {
        let mut v =
            json!({"username": "u", "Password": "p", "nested": [{"refresh_token": "t", "ok": 1}], "API_KEY": "k"});
        mask(&mut v);
        assert_eq!(
            v,
            json!({"username": "u", "Password": MASK, "nested": [{"refresh_token": MASK, "ok": 1}], "API_KEY": MASK})
        );
    }
}
