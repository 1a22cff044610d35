//! Maintenance phases (spec §9.1): validation, the "next" selection and the 503 notice.
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::time::{self, DateTime};
use crate::error::{AppError, FieldErrors};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaintenancePhase {
    pub id: i64,
    pub subject: String,
    #[serde(default)]
    pub message: Option<String>,
    /// `partial` or `full`: informative for clients, the server treats both alike.
    pub kind: String,
    #[serde(with = "time::iso_format")]
    pub start_datetime: DateTime,
    #[serde(with = "time::iso_format")]
    pub end_datetime: DateTime,
    #[serde(default)]
    pub is_data_saved_message_hidden: bool,
    #[serde(with = "time::iso_format")]
    pub insert_datetime: DateTime,
    #[serde(with = "time::iso_format")]
    pub update_datetime: DateTime,
    #[serde(with = "time::iso_format::option", default)]
    pub delete_datetime: Option<DateTime>,
}

impl MaintenancePhase {
    /// Strictly inside the phase.
    pub fn is_active_at(&self, now: DateTime) -> bool {
        self.delete_datetime.is_none() && self.start_datetime < now && now < self.end_datetime
    }

    /// The `info` object of the WebSocket `maintenance` event (Python isoformat datetimes).
    pub fn websocket_info(&self, active: bool) -> Value {
        json!({
            "id": self.id,
            "subject": self.subject,
            "maintenance_start": time::python_isoformat(self.start_datetime),
            "maintenance_end": time::python_isoformat(self.end_datetime),
            "active": active,
            "type": self.kind,
            "message": self.message,
        })
    }

    /// The 503 body answered to writes while this phase is active.
    pub fn unavailable_notice(&self) -> Value {
        json!({
            "message": format!(
                "The server is unavailable for maintenance up to {} for the following reason: {}",
                time::french_datetime(self.end_datetime),
                self.message.as_deref().unwrap_or("None"),
            ),
            "maintenance_start": time::iso(self.start_datetime),
            "maintenance_end": time::iso(self.end_datetime),
            "active": true,
        })
    }
}

/// `/maintenances/next/`: the phase in progress (the one ending last), else the next to start.
/// `phases` only needs to hold the phases not yet ended.
pub fn next_phase(phases: &[MaintenancePhase], now: DateTime) -> Option<&MaintenancePhase> {
    let alive = phases.iter().filter(|p| p.delete_datetime.is_none());
    let current =
        alive.clone().filter(|p| p.start_datetime <= now && now <= p.end_datetime).max_by_key(|p| p.end_datetime);
    current.or_else(|| alive.filter(|p| p.start_datetime >= now).min_by_key(|p| p.start_datetime))
}

/// The writable fields of a phase, merged over `existing` on PATCH.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseFields {
    pub subject: String,
    pub message: Option<String>,
    pub kind: String,
    pub start_datetime: DateTime,
    pub end_datetime: DateTime,
    pub is_data_saved_message_hidden: bool,
}

pub fn validate(body: &Map<String, Value>, existing: Option<&MaintenancePhase>) -> Result<PhaseFields, AppError> {
    let mut errors = FieldErrors::new();
    let mut push = |field: &str, msg: String| errors.entry(field.to_owned()).or_default().push(msg);

    let subject = match body.get("subject") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            push("subject", "This field may not be blank.".into());
            None
        }
        None if existing.is_some() => existing.map(|e| e.subject.clone()),
        None | Some(Value::Null) => {
            push(
                "subject",
                if body.contains_key("subject") { "This field may not be null." } else { "This field is required." }
                    .into(),
            );
            None
        }
        Some(_) => {
            push("subject", "Not a valid string.".into());
            None
        }
    };
    let message = match body.get("message") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) => None,
        Some(_) => {
            push("message", "Not a valid string.".into());
            None
        }
        None => existing.and_then(|e| e.message.clone()),
    };
    let kind = match body.get("type") {
        Some(Value::String(t)) if t == "partial" || t == "full" => t.clone(),
        Some(other) => {
            let shown = other.as_str().map(str::to_owned).unwrap_or_else(|| other.to_string());
            push("type", format!("\"{shown}\" is not a valid choice."));
            String::new()
        }
        None => existing.map(|e| e.kind.clone()).unwrap_or_else(|| "partial".into()),
    };
    let mut datetime = |field: &str, current: Option<DateTime>| {
        match body.get(field) {
        Some(Value::String(s)) => time::parse(s).or_else(|| {
            push(field, "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].".into());
            None
        }),
        None if current.is_some() => current,
        None => {
            push(field, "This field is required.".into());
            None
        }
        Some(Value::Null) => {
            push(field, "This field may not be null.".into());
            None
        }
        Some(_) => {
            push(field, "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].".into());
            None
        }
    }
    };
    let start = datetime("start_datetime", existing.map(|e| e.start_datetime));
    let end = datetime("end_datetime", existing.map(|e| e.end_datetime));
    let hidden = match body.get("is_data_saved_message_hidden") {
        Some(Value::Bool(b)) => *b,
        _ => existing.is_some_and(|e| e.is_data_saved_message_hidden),
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let (Some(subject), Some(start_datetime), Some(end_datetime)) = (subject, start, end) else {
        return Err(AppError::internal("maintenance validation left a required field unset"));
    };
    if start_datetime > end_datetime {
        return Err(AppError::field("non_field_errors", "end_datetime is lower than start_datetime"));
    }
    Ok(PhaseFields { subject, message, kind, start_datetime, end_datetime, is_data_saved_message_hidden: hidden })
}

/// The `info` objects the minute broadcaster sends at `now` (spec §10.1 `maintenance_notifier_checker`),
/// the previous run having been `period` ago: every phase in progress (`active: true`, re-sent each run),
/// and `active: false` for a phase that ended since the previous run unless another one is in progress.
/// A phase starting between two runs is announced by the first run after its start.
pub fn due_broadcasts(phases: &[MaintenancePhase], now: DateTime, period: ::time::Duration) -> Vec<Value> {
    let in_progress = phases.iter().any(|p| p.is_active_at(now));
    phases
        .iter()
        .filter(|p| p.delete_datetime.is_none())
        .filter_map(|p| {
            if p.is_active_at(now) {
                Some(p.websocket_info(true))
            } else {
                let ended_since_last_run = now - period < p.end_datetime && p.end_datetime <= now;
                (ended_since_last_run && !in_progress).then(|| p.websocket_info(false))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::Duration;
    use serde_json::json;

    fn phase(id: i64, start: DateTime, end: DateTime) -> MaintenancePhase {
        MaintenancePhase {
            id,
            subject: format!("s{id}"),
            message: Some("upgrade".into()),
            kind: "partial".into(),
            start_datetime: start,
            end_datetime: end,
            is_data_saved_message_hidden: false,
            insert_datetime: start,
            update_datetime: start,
            delete_datetime: None,
        }
    }

    #[test]
    fn next_prefers_the_current_phase_ending_last_then_the_soonest_future() {
        let now = time::now();
        let h = Duration::hours(1);
        let phases = [phase(1, now - h, now + h), phase(2, now - h, now + 3 * h), phase(3, now + h, now + 2 * h)];
        assert_eq!(next_phase(&phases, now).map(|p| p.id), Some(2));
        let future = [phase(3, now + 2 * h, now + 3 * h), phase(4, now + h, now + 5 * h)];
        assert_eq!(next_phase(&future, now).map(|p| p.id), Some(4));
        assert!(next_phase(&[], now).is_none());
    }

    #[test]
    fn start_after_end_is_refused_after_merging() {
        let now = time::now();
        let existing = phase(1, now, now + Duration::hours(1));
        let body = json!({"start_datetime": time::iso(now + Duration::hours(2))});
        let err = validate(body.as_object().unwrap(), Some(&existing)).unwrap_err();
        let AppError::Invalid(errors) = err else { panic!() };
        assert_eq!(errors["non_field_errors"], ["end_datetime is lower than start_datetime"]);
    }

    #[test]
    fn unknown_type_is_a_choice_error() {
        let body = json!({"subject": "x", "type": "total", "start_datetime": "2030-01-01T00:00:00Z", "end_datetime": "2030-01-02T00:00:00Z"});
        let AppError::Invalid(errors) = validate(body.as_object().unwrap(), None).unwrap_err() else { panic!() };
        assert_eq!(errors["type"], ["\"total\" is not a valid choice."]);
    }

    #[test]
    fn notice_matches_the_original_wording() {
        let start = ::time::macros::datetime!(2030-01-01 08:00 UTC);
        let p = phase(1, start, start + Duration::hours(2));
        assert_eq!(
            p.unavailable_notice()["message"],
            "The server is unavailable for maintenance up to 01/01/2030, 10:00:00 for the following reason: upgrade"
        );
    }

    #[test]
    fn broadcasts_phases_in_progress_and_ends_unless_another_phase_runs() {
        let now = time::now();
        let (m, h) = (Duration::minutes(1), Duration::hours(1));
        let running = phase(1, now - h, now + h);
        let just_ended = phase(2, now - h, now - Duration::seconds(20));
        let ended_long_ago = phase(3, now - 2 * h, now - h);
        let upcoming = phase(4, now + Duration::seconds(30), now + h);
        let infos = due_broadcasts(&[running.clone(), just_ended.clone(), ended_long_ago, upcoming], now, m);
        assert_eq!(infos, [running.websocket_info(true)]);
        assert_eq!(due_broadcasts(std::slice::from_ref(&just_ended), now, m), [just_ended.websocket_info(false)]);
        let mut deleted = running;
        deleted.delete_datetime = Some(now);
        assert!(due_broadcasts(&[deleted], now, m).is_empty());
    }
}
