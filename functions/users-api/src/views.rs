//! The JSON shapes of `/users/` (spec §8), also shown by the login answer and the audit log.
use c360::domain::user::User;
use serde::{Deserialize, Serialize};
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

/// `/users/<username>/check/`: the user as known here, or as the identity server knows it.
#[derive(Serialize, ToSchema)]
pub struct CheckedUserView {
    pub username: String,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    /// A user of this name exists here.
    pub already_exists: bool,
    /// Found on the identity server (only looked for when unknown here).
    pub found: bool,
}

/// A user as POST creates it and PATCH edits it (`username` only on POST). Documentation only:
/// `UserRules` reads the body, as its name and e-mail rules come from the deployment's settings
/// (`null` counts as absent; texts are taken as sent).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct UserBody {
    #[schema(min_length = 1, max_length = 30)]
    username: String,
    /// Letters, spaces, hyphens and apostrophes.
    #[schema(min_length = 1)]
    firstname: String,
    /// Letters, spaces, hyphens and apostrophes.
    #[schema(min_length = 1)]
    lastname: String,
    /// Must match the deployment's `EMAIL_REGEX`.
    #[schema(min_length = 1)]
    email: String,
    /// Given: the user logs in with it (POST), or it changes (PATCH, local users only); absent on
    /// POST, the identity server holds the user's password.
    #[schema(min_length = 1)]
    password: Option<String>,
}
