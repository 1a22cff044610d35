//! Reading body fields the way DRF serializers do, with their exact messages, collecting every
//! field's errors before answering 400 (spec §0.6).
use serde_json::{Map, Value};
use uuid::Uuid;

use super::contract::{Form, FormField, Mode};
use crate::error::{AppError, FieldErrors};

/// Constraints of a text field (DRF `CharField`).
#[derive(Clone, Copy, Default)]
pub struct Text {
    pub max: Option<usize>,
    pub min: Option<usize>,
    pub nullable: bool,
    pub blank: bool,
}

impl Text {
    pub fn max(max: usize) -> Self {
        Self { max: Some(max), ..Self::default() }
    }
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
    pub fn blank(mut self) -> Self {
        self.blank = true;
        self
    }
    pub fn min(mut self, min: usize) -> Self {
        self.min = Some(min);
        self
    }
}

/// Python's name of a JSON value's type, as DRF reports it.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// DRF `CharField`: `Ok(None)` is an accepted null.
pub(crate) fn read_text(value: &Value, rules: Text) -> Result<Option<String>, String> {
    let value = match value {
        Value::Null if rules.nullable => return Ok(None),
        Value::Null => return Err("This field may not be null.".into()),
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err("Not a valid string.".into()),
    };
    if value.is_empty() && !rules.blank {
        return Err("This field may not be blank.".into());
    }
    let length = value.chars().count();
    if let Some(max) = rules.max.filter(|m| length > *m) {
        return Err(format!("Ensure this field has no more than {max} characters."));
    }
    if let Some(min) = rules.min.filter(|m| length < *m && !value.is_empty()) {
        return Err(format!("Ensure this field has at least {min} characters."));
    }
    Ok(Some(value))
}

/// DRF `BooleanField`: true/false, 1/0 and their usual string forms.
pub(crate) fn read_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::String(s) => match s.as_str() {
            "true" | "True" | "TRUE" | "1" | "yes" | "y" | "on" | "t" => Ok(true),
            "false" | "False" | "FALSE" | "0" | "no" | "n" | "off" | "f" => Ok(false),
            _ => Err("Must be a valid boolean.".into()),
        },
        Value::Null => Err("This field may not be null.".into()),
        _ => Err("Must be a valid boolean.".into()),
    }
}

/// DRF `FloatField`, null excluded.
pub(crate) fn read_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Null => Err("This field may not be null.".into()),
        Value::Number(n) => n.as_f64().ok_or_else(|| "A valid number is required.".into()),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err("A valid number is required.".into()),
        },
        _ => Err("A valid number is required.".into()),
    }
}

/// DRF `IntegerField`, null excluded.
pub(crate) fn read_integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Err("This field may not be null.".into()),
        Value::Number(n) => n.as_i64().ok_or_else(|| "A valid integer is required.".into()),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| "A valid integer is required.".into()),
        _ => Err("A valid integer is required.".into()),
    }
}

/// DRF `ChoiceField` (a number or another value is compared as its JSON text).
pub(crate) fn read_choice(value: &Value, choices: &[&str]) -> Result<String, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if choices.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(format!("\"{text}\" is not a valid choice."))
    }
}

/// A uuid primary key as DRF's `PrimaryKeyRelatedField` reads it (null excluded); whether it names
/// an object is the caller's check, with [`unknown_pk`]'s message.
pub(crate) fn read_pk(value: &Value) -> Result<Uuid, String> {
    match value {
        Value::Null => Err("This field may not be null.".into()),
        Value::String(raw) => Uuid::parse_str(raw.trim()).map_err(|_| unknown_pk(raw)),
        other => Err(format!("Incorrect type. Expected pk value, received {}.", python_type(other))),
    }
}

/// DRF's message for a primary key that names no object the caller may reference.
pub fn unknown_pk(raw: &str) -> String {
    format!("Invalid pk \"{raw}\" - object does not exist.")
}

pub struct Fields<'a> {
    body: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Map<String, Value>) -> Self {
        Self { body, errors: FieldErrors::new() }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.entry(field.to_owned()).or_default().push(message.into());
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn present(&self, field: &str) -> bool {
        self.body.contains_key(field)
    }

    pub fn raw(&self, field: &str) -> Option<&'a Value> {
        self.body.get(field)
    }

    /// `None`: absent or invalid (error recorded); `Some(None)`: an accepted null.
    pub fn text(&mut self, field: &str, rules: Text) -> Option<Option<String>> {
        let read = read_text(self.body.get(field)?, rules);
        self.keep(field, read)
    }

    /// A field of a [`form!`](crate::form): `None` when absent (an error when `required`) or invalid.
    pub fn field<T: FormField>(&mut self, field: &str, required: bool) -> Option<T> {
        match self.body.get(field) {
            Some(value) => {
                let read = T::read(value);
                self.keep(field, read)
            }
            None if required => self.fail(field, "This field is required."),
            None => None,
        }
    }

    /// Reads a whole [`Form`].
    pub fn form<F: Form>(&mut self, mode: Mode) -> F {
        F::read(self, mode)
    }

    fn keep<T>(&mut self, field: &str, read: Result<T, String>) -> Option<T> {
        read.map_err(|message| self.error(field, message)).ok()
    }

    /// DRF `BooleanField`: true/false, 1/0 and their usual string forms.
    pub fn boolean(&mut self, field: &str) -> Option<bool> {
        let read = read_bool(self.body.get(field)?);
        self.keep(field, read)
    }

    /// DRF `FloatField` (nullable when `nullable`).
    pub fn float(&mut self, field: &str, nullable: bool) -> Option<Option<f64>> {
        match self.body.get(field)? {
            Value::Null if nullable => Some(None),
            value => {
                let read = read_float(value);
                self.keep(field, read).map(Some)
            }
        }
    }

    /// A relation to another object (DRF `PrimaryKeyRelatedField` over uuids): `exists` says whether
    /// the uuid names an object the caller may reference. `Some(None)` is an accepted null.
    pub fn relation(&mut self, field: &str, nullable: bool, exists: impl Fn(Uuid) -> bool) -> Option<Option<Uuid>> {
        let value = self.body.get(field)?;
        if value.is_null() && nullable {
            return Some(None);
        }
        let read = read_pk(value).and_then(|uuid| {
            exists(uuid).then_some(uuid).ok_or_else(|| unknown_pk(value.as_str().unwrap_or_default()))
        });
        self.keep(field, read).map(Some)
    }

    /// A required, non-null relation.
    pub fn required_relation(&mut self, field: &str, exists: impl Fn(Uuid) -> bool) -> Option<Uuid> {
        if !self.present(field) {
            return self.fail(field, "This field is required.");
        }
        self.relation(field, false, exists).flatten()
    }

    fn fail<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.error(field, message);
        None
    }

    /// `Ok` when no field failed, else 400 with every field's errors.
    pub fn finish(self) -> Result<(), AppError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn text_fields_report_drf_messages() {
        let b = body(json!({"a": "", "b": "x".repeat(51), "c": true, "d": null, "e": "  ok "}));
        let mut f = Fields::new(&b);
        assert_eq!(f.text("a", Text::max(50)), None);
        assert_eq!(f.text("b", Text::max(50)), None);
        assert_eq!(f.text("c", Text::max(50)), None);
        assert_eq!(f.text("d", Text::max(50)), None);
        assert_eq!(f.text("e", Text::max(50)), Some(Some("ok".into())));
        assert_eq!(f.field::<crate::http::contract::Text<5>>("missing", true), None);
        let Err(AppError::Invalid(errors)) = f.finish() else { panic!("errors expected") };
        assert_eq!(errors["a"], vec!["This field may not be blank."]);
        assert_eq!(errors["b"], vec!["Ensure this field has no more than 50 characters."]);
        assert_eq!(errors["c"], vec!["Not a valid string."]);
        assert_eq!(errors["d"], vec!["This field may not be null."]);
        assert_eq!(errors["missing"], vec!["This field is required."]);
    }

    #[test]
    fn relations_accept_only_known_uuids() {
        let known = Uuid::new_v4();
        let b = body(json!({"ok": known.to_string(), "unknown": Uuid::new_v4().to_string(), "bad": "x", "num": 3}));
        let mut f = Fields::new(&b);
        assert_eq!(f.relation("ok", false, |u| u == known), Some(Some(known)));
        assert_eq!(f.relation("unknown", false, |u| u == known), None);
        assert_eq!(f.relation("bad", false, |u| u == known), None);
        assert_eq!(f.relation("num", false, |u| u == known), None);
        let Err(AppError::Invalid(errors)) = f.finish() else { panic!("errors expected") };
        assert!(errors["unknown"][0].ends_with("- object does not exist."));
        assert_eq!(errors["bad"], vec!["Invalid pk \"x\" - object does not exist."]);
        assert_eq!(errors["num"], vec!["Incorrect type. Expected pk value, received int."]);
    }
}
