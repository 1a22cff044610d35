//! The request audit log (spec §0.12, §9.4).
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::time::{self, DateTime};

/// Body keys whose values are masked: the original's list, widened to any key *containing* one of
/// these words so that `refresh_token`, `access_token` or `client_secret` are masked too.
const SENSITIVE_WORDS: [&str; 7] = ["api", "token", "key", "secret", "password", "signature", "auth_code"];
pub const MASK: &str = "********************";

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
    #[serde(default)]
    pub data: Option<String>,
    pub status_code: u16,
}

impl RequestLog {
    pub fn to_json(&self, user_details: Option<Value>) -> Value {
        json!({
            "id": self.id,
            "user": self.user,
            "username_persistent": self.username_persistent,
            "requested_at": time::iso(self.requested_at),
            "response_ms": self.response_ms,
            "path": self.path,
            "view": self.view,
            "view_method": self.view_method,
            "remote_addr": self.remote_addr,
            "host": self.host,
            "method": self.method,
            "user_agent": self.user_agent,
            "query_params": self.query_params,
            "data": self.data,
            "response": null,
            "errors": null,
            "status_code": self.status_code,
            "related_names": null,
            "user_details": user_details,
        })
    }
}

pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_lowercase();
    SENSITIVE_WORDS.iter().any(|w| key.contains(w))
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
