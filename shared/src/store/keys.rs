//! The ONLY place where DynamoDB keys are built. One table (`TABLE_NAME`) holds every entity:
//!
//! | entity | pk | sk | gsi1 (pk / sk) | gsi2 (pk / sk) |
//! |---|---|---|---|---|
//! | user | `USER#<username>` | `#USER` | `USERS` / `<username>` | |
//! | e-mail uniqueness guard | `EMAIL#<lower email>` | `#EMAIL` | | |
//! | profile | `USER#<username>` | `PROFILE#<id>` | `PROFILE#<id>` / `PROFILE` | |
//! | profile (listing) | | | | `PROFILES` / `<username>#<id>` |
//! | access | `USER#<username>` | `ACCESS#<id>` | `ACCESS#<id>` / `ACCESS` | `ACCESSES` / `<perimeter path>#<id>` |
//! | perimeter tree version | `META#PERIMETERS` | `#VERSION` | | |
//! | role | `ROLES` | `ROLE#<id>` | | |
//! | role name uniqueness guard | `ROLENAME#<lower name>` | `#ROLENAME` | | |
//! | perimeter | `PERIMETERS` | `PERIMETER#<id>` | | |
//! | removed perimeter (history) | `PERIMETERS#REMOVED` | `PERIMETER#<id>` | | |
//! | id counter | `COUNTER#<entity>` | `#COUNTER` | | |
//! | refresh token | `REFRESH#<jti>` | `#REFRESH` | | |
//! | maintenance phase | `MAINTENANCES` | `MAINT#<id>` | `MAINTENANCE_ENDS` / `<end iso>#<id>` (alive only) | |
//! | release note | `RELEASE_NOTES` | `NOTE#<id>` | | |
//! | web content | `CONTENTS` | `CONTENT#<id>` | | |
//! | request log | `LOGS#<yyyy-mm-dd>` | `LOG#<id>` | | |
//!
//! Numeric ids are zero-padded so that sort keys order like numbers.

pub const USER_SK: &str = "#USER";
pub const PROFILE_PREFIX: &str = "PROFILE#";
pub const ACCESS_PREFIX: &str = "ACCESS#";
pub const USERS_INDEX_PK: &str = "USERS";
pub const ROLES_PK: &str = "ROLES";
pub const PERIMETERS_PK: &str = "PERIMETERS";
pub const MAINTENANCES_PK: &str = "MAINTENANCES";
pub const MAINTENANCE_ENDS_PK: &str = "MAINTENANCE_ENDS";
pub const RELEASE_NOTES_PK: &str = "RELEASE_NOTES";
pub const CONTENTS_PK: &str = "CONTENTS";

/// Names of the two global secondary indexes (template.yaml declares them).
pub const GSI1: &str = "gsi1";
pub const GSI2: &str = "gsi2";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Key {
    Key { pk: pk.into(), sk: sk.into() }
}

fn padded(id: i64) -> String {
    format!("{id:016}")
}

pub fn user_partition(username: &str) -> String {
    format!("USER#{username}")
}

pub fn user(username: &str) -> Key {
    key(user_partition(username), USER_SK)
}

pub fn users_index(username: &str) -> Key {
    key(USERS_INDEX_PK, username)
}

pub fn email_guard(email: &str) -> Key {
    key(format!("EMAIL#{}", email.to_lowercase()), "#EMAIL")
}

pub fn profile(username: &str, id: i64) -> Key {
    key(user_partition(username), format!("{PROFILE_PREFIX}{}", padded(id)))
}

pub fn profile_lookup(id: i64) -> Key {
    key(format!("PROFILE#{id}"), "PROFILE")
}

pub fn access(username: &str, id: i64) -> Key {
    key(user_partition(username), format!("{ACCESS_PREFIX}{}", padded(id)))
}

pub fn access_lookup(id: i64) -> Key {
    key(format!("ACCESS#{id}"), "ACCESS")
}

pub const ACCESSES_INDEX_PK: &str = "ACCESSES";
pub const PROFILES_INDEX_PK: &str = "PROFILES";

/// Accesses sorted by the path of their perimeter (`/root/…/id/`, see `PerimeterTree::path`): the
/// accesses of a subtree are one `begins_with` on the path, those of one perimeter on `path#`.
pub fn access_by_perimeter_path(path: &str, access_id: i64) -> Key {
    key(ACCESSES_INDEX_PK, format!("{path}#{}", padded(access_id)))
}

pub fn profiles_index(username: &str, id: i64) -> Key {
    key(PROFILES_INDEX_PK, format!("{username}#{}", padded(id)))
}

pub fn perimeters_version() -> Key {
    key("META#PERIMETERS", "#VERSION")
}

pub fn role(id: i64) -> Key {
    key(ROLES_PK, format!("ROLE#{}", padded(id)))
}

/// Keeps role names unique among alive roles (conditional put with the role).
pub fn role_name_guard(name: &str) -> Key {
    key(format!("ROLENAME#{}", name.to_lowercase()), "#ROLENAME")
}

pub fn perimeter(id: i64) -> Key {
    key(PERIMETERS_PK, format!("PERIMETER#{id}"))
}

pub fn removed_perimeter(id: i64) -> Key {
    key("PERIMETERS#REMOVED", format!("PERIMETER#{id}"))
}

pub fn counter(entity: &str) -> Key {
    key(format!("COUNTER#{entity}"), "#COUNTER")
}

pub fn refresh_token(jti: &str) -> Key {
    key(format!("REFRESH#{jti}"), "#REFRESH")
}

pub fn maintenance(id: i64) -> Key {
    key(MAINTENANCES_PK, format!("MAINT#{}", padded(id)))
}

/// Sorted by end so that "phases not yet ended" is one key condition (`sk >= now`).
pub fn maintenance_by_end(end_iso: &str, id: i64) -> Key {
    key(MAINTENANCE_ENDS_PK, format!("{end_iso}#{}", padded(id)))
}

pub fn release_note(id: i64) -> Key {
    key(RELEASE_NOTES_PK, format!("NOTE#{}", padded(id)))
}

pub fn content(id: i64) -> Key {
    key(CONTENTS_PK, format!("CONTENT#{}", padded(id)))
}

pub fn request_log_partition(day: &str) -> String {
    format!("LOGS#{day}")
}

pub fn request_log(day: &str, id: i64) -> Key {
    key(request_log_partition(day), format!("LOG#{}", padded(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_ids_sort_like_numbers() {
        assert!(role(9).sk < role(10).sk);
        assert!(
            maintenance_by_end("2030-01-01T00:00:00.000000Z", 2).sk
                < maintenance_by_end("2030-01-02T00:00:00.000000Z", 1).sk
        );
    }
}
