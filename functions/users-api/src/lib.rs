//! `/users/`: the user directory, user creation and edition, username check (spec §8).
pub mod views;

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    Json, Router,
};
use c360::{
    auth::password,
    domain::{
        access_rules::may_modify_user,
        rights::{Profile, RightSet},
        time,
        user::{Credentials, User},
    },
    error::{AppError, AppResult},
    http::{
        contract::{Doc, Paging},
        listing::{matches_search, sort_by, ListQuery, Page, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::{users::UserWriteError, UserBundle},
};
use serde_json::json;
use views::{CheckedUserView, UserBody, UserView};

const APPLICATIVE_USER: &str = "Applicative users cannot be modified through the API.";
const RIGHTS_BEYOND_CALLER: &str = "You cannot modify a user who holds rights you could not grant.";
const PASSWORD_NOT_LOCAL: &str = "This user logs in through the identity server or OIDC: no password can be set here.";

const ORDERING: [&str; 6] = ["firstname", "lastname", "username", "email", "created_by", "updated_by"];
/// Filters on part of a field, any case.
const CONTAINS_FILTERS: [&str; 4] = ["username", "firstname", "lastname", "email"];
/// Strict `true` / `false` filters.
const MANUAL_ONLY: &str = "manual_only";
const WITH_ACCESS: &str = "with_access";

fn list_doc() -> Doc {
    let text = json!({"type": "string"});
    let flag = json!({"type": "string", "enum": ["true", "false"]});
    let mut doc = Doc::new()
        .paged::<UserView>(Paging::Page)
        .ordering(&ORDERING)
        .search(&CONTAINS_FILTERS)
        .param(MANUAL_ONLY, "`true`: only users created here (manual profile).", flag.clone())
        .param(WITH_ACCESS, "`true`: only users holding an access valid now.", flag);
    for name in CONTAINS_FILTERS {
        doc = doc.param(name, &format!("Part of the {name}, any case."), text.clone());
    }
    doc
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "users")
        // The permission only admits GET, POST and PATCH: other methods are 403, not 405.
        .method_policy(MethodPolicy::Forbidden)
        .route(Method::GET, "/users/", Exposure::Authenticated, "List users (PAGE)", list_users)
        .doc(list_doc())
        .audited(Method::POST, "/users/", Exposure::Authenticated, "Create a user", "users.create", create_user)
        .doc(Doc::new().body::<UserBody>().reply::<UserView>(201, "The new user."))
        .route(Method::GET, "/users/{username}/", Exposure::Authenticated, "Get a user", get_user)
        .doc(Doc::new().reply::<UserView>(200, "The user."))
        .audited(
            Method::PATCH,
            "/users/{username}/",
            Exposure::Authenticated,
            "Edit a user",
            "users.partial_update",
            patch_user,
        )
        .doc(Doc::new().patched_body::<UserBody>().reply::<UserView>(200, "The user as changed."))
        .route(
            Method::GET,
            "/users/{username}/check/",
            Exposure::Authenticated,
            "Is this username known here or to the identity server?",
            check_user,
        )
        .doc(
            Doc::new()
                .reply::<CheckedUserView>(200, "Known here (`already_exists`), else found on the identity server.")
                .error(400, "`Invalid username format` (`message`).")
                .error(404, "`User not found` (`message`): neither here nor on the identity server.")
                .error(502, "The identity server could not be reached (`message`)."),
        )
        .build()
}

/// `manual_only` / `with_access`: literally `true` or `false` (the original fails on anything else).
fn strict_flag(query: &ListQuery, name: &str) -> AppResult<bool> {
    match query.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(AppError::field(name, "Must be true or false.")),
    }
}

async fn list_users(
    State(state): State<AppState>,
    _caller: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Page<UserView>>> {
    let orders = query.ordering("ordering", &ORDERING)?;
    let (manual_only, with_access) = (strict_flag(&query, MANUAL_ONLY)?, strict_flag(&query, WITH_ACCESS)?);
    let directory = state.store.user_directory().await?;
    let by_name: HashMap<&str, &User> = directory.iter().map(|u| (u.username.as_str(), u)).collect();
    let now = time::now();
    let terms = query.search_terms();
    let contains = |value: &Option<String>, param: &str| match query.get(param) {
        Some(wanted) => value.as_deref().is_some_and(|v| v.to_lowercase().contains(&wanted.to_lowercase())),
        None => true,
    };
    let [username, firstname, lastname, email] = CONTAINS_FILTERS;
    let mut users: Vec<&User> = directory
        .iter()
        .filter(|u| u.delete_datetime.is_none())
        .filter(|u| contains(&Some(u.username.clone()), username) && contains(&u.firstname, firstname))
        .filter(|u| contains(&u.lastname, lastname) && contains(&u.email, email))
        .filter(|u| !manual_only || u.directory.manual_profile)
        .filter(|u| !with_access || u.directory.has_access_valid_at(now))
        .filter(|u| {
            matches_search(
                &terms,
                &[Some(&u.username), u.firstname.as_deref(), u.lastname.as_deref(), u.email.as_deref()],
            )
        })
        .collect();
    let lastname_of = |name: &Option<String>| {
        SortValue::from(name.as_deref().and_then(|n| by_name.get(n)).and_then(|u| u.lastname.as_deref()))
    };
    sort_by(&mut users, &orders, |u, field| match field {
        "firstname" => SortValue::from(u.firstname.as_deref()),
        "lastname" => SortValue::from(u.lastname.as_deref()),
        "username" => SortValue::Text(u.username.clone()),
        "email" => SortValue::from(u.email.as_deref()),
        "created_by" => lastname_of(&u.created_by),
        _ => lastname_of(&u.updated_by),
    });
    let display = |name: &Option<String>| name.as_deref().and_then(|n| by_name.get(n)).map(|u| u.display_name());
    let items = users.into_iter().map(|u| UserView::of(u, display(&u.created_by), display(&u.updated_by))).collect();
    Ok(Json(query.page_of(items)?))
}

async fn get_user(
    State(state): State<AppState>,
    _caller: Arc<Principal>,
    Path(username): Path<String>,
) -> AppResult<Json<UserView>> {
    let user = state.store.user(&username).await?.ok_or(AppError::NotFound("User"))?;
    let (created_by, updated_by) = state.creator_names(&user).await?;
    Ok(Json(UserView::of(&user, created_by, updated_by)))
}

async fn hash_password(password: Option<String>) -> AppResult<Option<String>> {
    match password {
        None => Ok(None),
        Some(p) => password::hash_off_runtime(p).await.map(Some).map_err(AppError::Internal),
    }
}

async fn create_user(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<(StatusCode, Json<UserView>)> {
    principal.ensure(Principal::can_manage_users)?;
    let new = state.user_rules.validate_new(&body)?;
    let now = time::now();
    let mut user = User::new(&new.username, &new.firstname, &new.lastname, Some(&new.email), now);
    // A user created with a password logs in with it; one without is the identity server's.
    user.credentials = Some(if new.password.is_some() { Credentials::Local } else { Credentials::External });
    user.password = hash_password(new.password).await?;
    user.created_by = Some(principal.username.clone());
    user.updated_by = Some(principal.username.clone());
    user.directory.manual_profile = true;
    let profile = Profile::manual(state.store.next_id("profile").await?, &user.username, now);
    state.store.create_user(&user, &profile).await.map_err(write_error)?;
    let me = principal.user.as_ref().map(User::display_name);
    Ok((StatusCode::CREATED, Json(UserView::of(&user, me.clone(), me))))
}

/// Who may change whom (docs/architecture.md): nobody changes an applicative user; a caller may
/// change itself; otherwise only a user all of whose rights the caller could grant (§4.5).
async fn ensure_may_modify(state: &AppState, principal: &Principal, target: &UserBundle) -> AppResult<()> {
    if state.settings.is_applicative_user(&target.user.username) {
        return Err(AppError::PermissionDenied(APPLICATIVE_USER.into()));
    }
    if principal.is_full_admin() || target.user.username == principal.username {
        return Ok(());
    }
    let (roles, now) = (state.roles().await?, time::now());
    let held: Vec<(RightSet, Option<i64>)> = target
        .accesses
        .iter()
        .filter(|a| !a.has_ended_at(now))
        .filter_map(|a| {
            roles.get(&a.role_id).filter(|r| r.delete_datetime.is_none()).map(|r| (r.rights, a.perimeter_id))
        })
        .collect();
    // The tree only matters when the target holds something.
    if held.is_empty() || may_modify_user(&principal.grants, &held, &*state.perimeter_tree().await?) {
        Ok(())
    } else {
        Err(AppError::PermissionDenied(RIGHTS_BEYOND_CALLER.into()))
    }
}

async fn patch_user(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(username): Path<String>,
    Body(body): Body,
) -> AppResult<Json<UserView>> {
    principal.ensure(Principal::can_manage_users)?;
    let target = state.store.user_bundle(&username).await?.ok_or(AppError::NotFound("User"))?;
    ensure_may_modify(&state, &principal, &target).await?;
    let changes = state.user_rules.validate_changes(&body)?;
    let mut user = target.user;
    let previous_email = user.email.clone();
    if let Some(v) = changes.firstname {
        user.firstname = Some(v);
    }
    if let Some(v) = changes.lastname {
        user.lastname = Some(v);
    }
    if let Some(v) = changes.email {
        user.email = Some(v);
    }
    let now = time::now();
    // The original stores a patched password in clear text; we hash it, and only for local users.
    if let Some(password) = changes.password {
        if user.credentials() != Credentials::Local {
            return Err(AppError::field("password", PASSWORD_NOT_LOCAL));
        }
        user.password = hash_password(Some(password)).await?;
        // Every token issued before now, refresh tokens included, stops working.
        user.credentials_changed_at = Some(now);
    }
    user.updated_by = Some(principal.username.clone());
    user.update_datetime = now;
    state.store.update_user(&user, previous_email.as_deref()).await.map_err(write_error)?;
    let (created_by, updated_by) = state.creator_names(&user).await?;
    Ok(Json(UserView::of(&user, created_by, updated_by)))
}

fn write_error(err: UserWriteError) -> AppError {
    match err {
        UserWriteError::UsernameTaken => AppError::field("username", "user with this username already exists."),
        UserWriteError::EmailTaken => AppError::field("email", "user with this email already exists."),
        UserWriteError::NotFound => AppError::NotFound("User"),
        UserWriteError::Store(e) => e.into(),
    }
}

async fn check_user(
    State(state): State<AppState>,
    _caller: Arc<Principal>,
    Path(username): Path<String>,
) -> AppResult<Json<CheckedUserView>> {
    if let Some(user) = state.store.user(&username).await? {
        return Ok(Json(CheckedUserView {
            username: user.username,
            firstname: user.firstname,
            lastname: user.lastname,
            email: user.email,
            already_exists: true,
            found: false,
        }));
    }
    if !state.user_rules.username_has_valid_format(&username) {
        return Err(AppError::Message { status: 400, message: "Invalid username format".into() });
    }
    let not_found = || AppError::Message { status: 404, message: "User not found".into() };
    let identity = state.identity.as_ref().ok_or_else(not_found)?;
    match identity.user_info(&username).await {
        Ok(Some(info)) => Ok(Json(CheckedUserView {
            username: info.username,
            firstname: info.firstname,
            lastname: info.lastname,
            email: info.email,
            already_exists: false,
            found: true,
        })),
        Ok(None) => Err(not_found()),
        // The original answers 500 with the hook's error; the cause may name internal hosts: logged only.
        Err(err) => {
            tracing::error!(error = %err, "identity server lookup failed");
            Err(AppError::Message { status: 502, message: "The identity server could not be reached.".into() })
        }
    }
}
