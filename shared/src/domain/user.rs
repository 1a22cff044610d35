//! Users (spec §3.1, §8): the record, its derived display name and the validation of writes.
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::time::{self, DateTime};
use crate::error::{AppError, FieldErrors};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// argon2id PHC string, or a legacy unsalted SHA-256 hex digest upgraded at the next login.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(with = "time::iso_format::option", default)]
    pub last_login: Option<DateTime>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub updated_by: Option<String>,
    #[serde(with = "time::iso_format")]
    pub insert_datetime: DateTime,
    #[serde(with = "time::iso_format")]
    pub update_datetime: DateTime,
    #[serde(with = "time::iso_format::option", default)]
    pub delete_datetime: Option<DateTime>,
    /// Kept up to date with every profile and access write, so that the user directory filters
    /// (`manual_only`, `with_access`) need no read of other items.
    #[serde(default)]
    pub directory: Directory,
    /// Who checks this user's password; absent on records written before the field existed (see
    /// [`User::credentials`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Tokens issued before this instant are refused: set when the password is changed here.
    #[serde(with = "time::iso_format::option", default, skip_serializing_if = "Option::is_none")]
    pub credentials_changed_at: Option<DateTime>,
}

/// Where a user's identity is held, which decides what the login accepts and whether the API may
/// set a password (docs/architecture.md, "Who may change whom").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credentials {
    /// A password hashed here: the seeded admin, users created with a password. Only that password
    /// logs them in.
    Local,
    /// The identity server or an OIDC provider: no local password is ever accepted or set.
    External,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    /// Has a profile whose source is `Manual`.
    pub manual_profile: bool,
    /// Validity windows of the accesses held through active profiles, by access id (a map, so one
    /// access's window is set or removed with a single-attribute update).
    pub access_windows: std::collections::BTreeMap<String, Window>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "time::iso_format::option", default)]
    pub start: Option<DateTime>,
    #[serde(with = "time::iso_format::option", default)]
    pub end: Option<DateTime>,
}

impl Directory {
    pub fn has_access_valid_at(&self, now: DateTime) -> bool {
        self.access_windows.values().any(|w| w.start.is_none_or(|s| s <= now) && w.end.is_none_or(|e| e > now))
    }
}

impl User {
    pub fn new(username: &str, firstname: &str, lastname: &str, email: Option<&str>, now: DateTime) -> Self {
        Self {
            username: username.into(),
            firstname: Some(firstname.into()),
            lastname: Some(lastname.into()),
            email: email.map(Into::into),
            password: None,
            last_login: None,
            created_by: None,
            updated_by: None,
            insert_datetime: now,
            update_datetime: now,
            delete_datetime: None,
            directory: Directory::default(),
            credentials: None,
            credentials_changed_at: None,
        }
    }

    /// Where this user's identity is held. Records older than the field are local when they carry
    /// a password hash (created with one, or the seeded admin), external otherwise.
    pub fn credentials(&self) -> Credentials {
        self.credentials.unwrap_or(if self.password.is_some() { Credentials::Local } else { Credentials::External })
    }

    /// Whether a token issued at `issued_at` (epoch seconds) predates the last password change.
    pub fn token_predates_credentials(&self, issued_at: i64) -> bool {
        self.credentials_changed_at.is_some_and(|changed| issued_at < changed.unix_timestamp())
    }

    /// `"<firstname> <lastname>"`, how e-mails address the user.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.firstname.as_deref().unwrap_or(""), self.lastname.as_deref().unwrap_or(""))
            .trim()
            .to_owned()
    }

    /// `"<firstname> <lastname> (<username>)"`, plus `" (deleted)"` once soft deleted.
    pub fn display_name(&self) -> String {
        let mut name = format!(
            "{} {} ({})",
            self.firstname.as_deref().unwrap_or("None"),
            self.lastname.as_deref().unwrap_or("None"),
            self.username
        );
        if self.delete_datetime.is_some() {
            name.push_str(" (deleted)");
        }
        name
    }
}

/// The validated fields of `POST /users/`.
#[derive(Debug, PartialEq)]
pub struct NewUser {
    pub username: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub password: Option<String>,
}

/// The validated fields of `PATCH /users/<username>/` (absent = unchanged).
#[derive(Debug, Default, PartialEq)]
pub struct UserChanges {
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

pub struct UserRules {
    name: Regex,
    email: Regex,
    username_check: Regex,
}

impl UserRules {
    pub fn new(email_regex: &str, username_regex: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            name: Regex::new(r"^[\wÀ-ÖØ-öø-ÿ' -]*$")?,
            email: Regex::new(email_regex)?,
            // `re.match` semantics: anchored at the start only.
            username_check: Regex::new(&format!("^(?:{username_regex})"))?,
        })
    }

    /// `EMAIL_REGEX`, as the export requests check the owner's address (`re.match`: from the start).
    pub fn email_has_valid_format(&self, email: &str) -> bool {
        self.email.find(email).is_some_and(|m| m.start() == 0)
    }

    pub fn username_has_valid_format(&self, username: &str) -> bool {
        self.username_check.is_match(username)
    }

    pub fn validate_new(&self, body: &Map<String, Value>) -> Result<NewUser, AppError> {
        let mut errors = FieldErrors::new();
        let username = match string_field(body, "username") {
            Ok(Some(u)) if u.is_empty() => err(&mut errors, "username", "This field may not be blank."),
            Ok(Some(u)) if u.chars().count() > 30 => {
                err(&mut errors, "username", "Ensure this field has no more than 30 characters.")
            }
            Ok(Some(u)) => Some(u),
            Ok(None) => err(&mut errors, "username", "This field is required."),
            Err(msg) => err(&mut errors, "username", msg),
        };
        let firstname = self.name_field(body, "firstname", true, &mut errors);
        let lastname = self.name_field(body, "lastname", true, &mut errors);
        let email = self.email_field(body, true, &mut errors);
        let password = password_field(body, &mut errors);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        Ok(NewUser {
            username: username.unwrap_or_default(),
            firstname: firstname.unwrap_or_default(),
            lastname: lastname.unwrap_or_default(),
            email: email.unwrap_or_default(),
            password,
        })
    }

    pub fn validate_changes(&self, body: &Map<String, Value>) -> Result<UserChanges, AppError> {
        let mut errors = FieldErrors::new();
        let changes = UserChanges {
            firstname: self.name_field(body, "firstname", false, &mut errors),
            lastname: self.name_field(body, "lastname", false, &mut errors),
            email: self.email_field(body, false, &mut errors),
            password: password_field(body, &mut errors),
        };
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(AppError::Invalid(errors))
        }
    }

    fn name_field(
        &self,
        body: &Map<String, Value>,
        field: &str,
        required: bool,
        errors: &mut FieldErrors,
    ) -> Option<String> {
        match string_field(body, field) {
            Ok(Some(v)) if v.trim().is_empty() => err(errors, field, "This field may not be blank."),
            Ok(Some(v)) if !self.name.is_match(&v) => {
                err(errors, field, "Invalid name: only letters, spaces, hyphens and apostrophes are allowed.")
            }
            Ok(Some(v)) => Some(v),
            Ok(None) if required => err(errors, field, "This field is required."),
            Ok(None) => None,
            Err(msg) => err(errors, field, msg),
        }
    }

    fn email_field(&self, body: &Map<String, Value>, required: bool, errors: &mut FieldErrors) -> Option<String> {
        match string_field(body, "email") {
            Ok(Some(v)) if v.trim().is_empty() => err(errors, "email", "This field may not be blank."),
            Ok(Some(v)) if !self.email.is_match(&v) => err(errors, "email", "Enter a valid email address."),
            Ok(Some(v)) => Some(v),
            Ok(None) if required => err(errors, "email", "This field is required."),
            Ok(None) => None,
            Err(msg) => err(errors, "email", msg),
        }
    }
}

fn password_field(body: &Map<String, Value>, errors: &mut FieldErrors) -> Option<String> {
    match string_field(body, "password") {
        Ok(Some(p)) if p.is_empty() => err(errors, "password", "This field may not be blank."),
        Ok(p) => p,
        Err(msg) => err(errors, "password", msg),
    }
}

fn err<T>(errors: &mut FieldErrors, field: &str, msg: &str) -> Option<T> {
    errors.entry(field.to_owned()).or_default().push(msg.to_owned());
    None
}

/// A string field; `null` counts as absent, other JSON types are a type error.
fn string_field(body: &Map<String, Value>, field: &str) -> Result<Option<String>, &'static str> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("Not a valid string."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> UserRules {
        UserRules::new(r"^[\w.+-]+@[\w-]+\.[\w]+$", "[0-9]").unwrap()
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn display_name_marks_deleted_users() {
        let mut u = User::new("4242", "Ada", "Lovelace", None, time::now());
        assert_eq!(u.display_name(), "Ada Lovelace (4242)");
        u.delete_datetime = Some(time::now());
        assert_eq!(u.display_name(), "Ada Lovelace (4242) (deleted)");
    }

    #[test]
    fn new_user_requires_names_and_valid_email() {
        let Err(AppError::Invalid(errors)) =
            rules().validate_new(&body(json!({"username": "1", "firstname": "J@ne", "email": "nope"})))
        else {
            panic!("expected field errors")
        };
        assert_eq!(errors["firstname"], ["Invalid name: only letters, spaces, hyphens and apostrophes are allowed."]);
        assert_eq!(errors["lastname"], ["This field is required."]);
        assert_eq!(errors["email"], ["Enter a valid email address."]);
        assert!(!errors.contains_key("username"));
    }

    #[test]
    fn new_user_accepts_accents_and_apostrophes() {
        let ok = rules()
            .validate_new(&body(
                json!({"username": "1234567", "firstname": "Zoë", "lastname": "D'Arc-Éloi", "email": "z.d+x@aphp.fr"}),
            ))
            .unwrap();
        assert_eq!(ok.lastname, "D'Arc-Éloi");
        assert_eq!(ok.password, None);
    }

    #[test]
    fn username_longer_than_30_is_refused() {
        let long = "1".repeat(31);
        let Err(AppError::Invalid(errors)) = rules()
            .validate_new(&body(json!({"username": long, "firstname": "A", "lastname": "B", "email": "a@b.fr"})))
        else {
            panic!()
        };
        assert_eq!(errors["username"], ["Ensure this field has no more than 30 characters."]);
    }

    #[test]
    fn username_check_is_anchored_at_start_only() {
        assert!(rules().username_has_valid_format("1abc"));
        assert!(!rules().username_has_valid_format("abc1"));
    }
}
