//! The JSON shapes of `/users/` (spec §8), also shown by the login answer and the audit log.
use c360::domain::user::User;
use serde::Serialize;
use utoipa::ToSchema;

/// A user; `created_by` / `updated_by` are display names, resolved by the caller.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub username: String,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    /// `"<firstname> <lastname> (<username>)"`, plus `" (deleted)"` once soft deleted.
    pub display_name: String,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

impl UserView {
    pub fn of(user: &User, created_by: Option<String>, updated_by: Option<String>) -> Self {
        Self {
            username: user.username.clone(),
            firstname: user.firstname.clone(),
            lastname: user.lastname.clone(),
            email: user.email.clone(),
            display_name: user.display_name(),
            created_by,
            updated_by,
        }
    }
}
