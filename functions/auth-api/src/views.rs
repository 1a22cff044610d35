//! The JSON shapes of `/auth/` (spec §2), and the bodies it reads.
use serde::{Deserialize, Serialize};
use users_api::views::UserView;
use utoipa::ToSchema;

/// A successful login.
#[derive(Serialize, ToSchema)]
pub struct LoginView {
    pub user: UserView,
    /// Now.
    #[schema(format = DateTime)]
    pub last_login: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// A new token pair (the refresh token is rotated: the one sent no longer works).
#[derive(Serialize, ToSchema)]
pub struct TokensView {
    pub access_token: String,
    pub refresh_token: String,
}

/// Logged out: an empty object (and the `csrftoken` cookie cleared).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // documented with `additionalProperties: false`: only `{}`.
pub struct LoggedOutView {}

/// Credentials (`authorizationMethod: JWT`, the default) or an OIDC code (`authorizationMethod:
/// OIDC`). Documentation only: the handler reads the fields it needs by hand, as a non-string
/// `username` / `password` is answered "This field is required." and the OIDC fields' absence 401.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct LoginBody {
    /// Credentials login.
    username: Option<String>,
    /// Credentials login.
    password: Option<String>,
    /// OIDC login: the authorization code.
    auth_code: Option<String>,
    /// OIDC login: the redirect URI the code was issued for.
    redirect_uri: Option<String>,
}

/// The refresh token to rotate or revoke. Documentation only: read by hand, as its absence is
/// answered in the original's ways (a field error on refresh, nothing to revoke on logout).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct RefreshBody {
    #[schema(min_length = 1)]
    refresh_token: String,
}

/// Logout's body: the refresh token to revoke, if any (required for OIDC sessions).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct LogoutBody {
    refresh_token: Option<String>,
}
