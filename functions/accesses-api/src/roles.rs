//! `/accesses/rights/`, `/accesses/roles/` and `/accesses/profiles/` (spec §4.2, §4.4, §4.13).
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    domain::{
        access_rules::{can_manage, role_inconsistency},
        rights::{Right, RightSet, Role, CATALOGUE, RIGHT_NAMES},
        time,
        user::User,
    },
    error::{AppError, AppResult},
    http::{
        api::combine,
        listing::{matches_search, sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::StoreError,
};
use serde_json::{json, Map, Value};

use crate::views;

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    let rights = Api::new(state, "accesses")
        .route(
            Method::GET,
            "/accesses/rights/",
            Exposure::Authenticated,
            "The right catalogue, by category",
            list_rights,
        )
        .route(Method::GET, "/accesses/rights/{id}/", Exposure::Authenticated, "One right of the catalogue", get_right)
        .build();
    let roles = Api::new(state, "accesses")
        .method_policy(MethodPolicy::NotAllowedIf(Principal::is_full_admin))
        .route(Method::GET, "/accesses/roles/", Exposure::Authenticated, "List roles (LIMIT)", list_roles)
        .audited(
            Method::POST,
            "/accesses/roles/",
            Exposure::Authenticated,
            "Create a role (full admin)",
            "roles.create",
            create_role,
        )
        .route(
            Method::GET,
            "/accesses/roles/assignable/",
            Exposure::Authenticated,
            "Roles the caller may grant on a perimeter",
            assignable_roles,
        )
        .route(Method::GET, "/accesses/roles/{id}/", Exposure::Authenticated, "Get a role", get_role)
        .audited(
            Method::PATCH,
            "/accesses/roles/{id}/",
            Exposure::Authenticated,
            "Edit a role (full admin)",
            "roles.partial_update",
            patch_role,
        )
        .audited(
            Method::DELETE,
            "/accesses/roles/{id}/",
            Exposure::Authenticated,
            "Delete a role (full admin)",
            "roles.destroy",
            delete_role,
        )
        .route(
            Method::GET,
            "/accesses/roles/{id}/users/",
            Exposure::Authenticated,
            "Users holding a valid access with this role",
            role_users,
        )
        .build();
    let profiles = Api::new(state, "accesses")
        .method_policy(MethodPolicy::NotAllowedIf(Principal::can_manage_users))
        .route(Method::GET, "/accesses/profiles/", Exposure::Authenticated, "List profiles (PAGE)", list_profiles)
        .route(Method::GET, "/accesses/profiles/{id}/", Exposure::Authenticated, "Get a profile", get_profile)
        .build();
    combine([rights, roles, profiles])
}

async fn list_rights(_: Arc<Principal>) -> Json<Value> {
    let mut categories: Vec<(&str, bool, Vec<Value>)> = Vec::new();
    for right in &CATALOGUE {
        let entry = json!({"name": right.name, "label": right.label, "depends_on": right.depends_on});
        match categories.iter_mut().find(|(name, _, _)| *name == right.category) {
            Some((_, _, rights)) => rights.push(entry),
            None => categories.push((right.category, right.is_global, vec![entry])),
        }
    }
    Json(json!(categories
        .into_iter()
        .map(|(name, is_global, rights)| json!({"name": name, "is_global": is_global, "rights": rights}))
        .collect::<Vec<_>>()))
}

async fn get_right(_: Arc<Principal>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let index =
        id.parse::<usize>().ok().filter(|i| (1..=CATALOGUE.len()).contains(i)).ok_or(AppError::NotFound("Right"))?;
    let r = &CATALOGUE[index - 1];
    Ok(Json(
        json!({"name": r.name, "label": r.label, "depends_on": r.depends_on, "category": r.category, "is_global": r.is_global}),
    ))
}

pub fn parse_id(raw: &str, model: &'static str) -> AppResult<i64> {
    raw.parse().map_err(|_| AppError::NotFound(model))
}

async fn alive_role(state: &AppState, id: i64) -> AppResult<Role> {
    state.roles().await?.get(&id).filter(|r| r.delete_datetime.is_none()).cloned().ok_or(AppError::NotFound("Role"))
}

async fn list_roles(State(state): State<AppState>, _: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let orders = query.ordering("ordering", &["name"])?;
    let roles = state.roles().await?;
    let mut alive: Vec<&Role> = roles.values().filter(|r| r.delete_datetime.is_none()).collect();
    alive.sort_by_key(|r| r.id);
    let name = query.get("name").map(str::to_lowercase);
    alive.retain(|r| name.as_ref().is_none_or(|n| r.name.to_lowercase().contains(n)));
    for right_name in RIGHT_NAMES {
        if let (Some(wanted), Some(right)) = (query.flag(right_name), Right::from_name(right_name)) {
            alive.retain(|r| r.rights.has(right) == wanted);
        }
    }
    let terms = query.search_terms();
    alive.retain(|r| matches_search(&terms, &[Some(&r.name)]));
    sort_by(&mut alive, &orders, |r, _| SortValue::Text(r.name.clone()));
    Ok(Json(query.limited(alive.into_iter().map(views::role).collect())))
}

async fn get_role(State(state): State<AppState>, _: Arc<Principal>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    Ok(Json(views::role(&alive_role(&state, parse_id(&id, "Role")?).await?)))
}

/// `name` and the right flags of a role body, merged over `existing` (PATCH).
fn role_fields(body: &Map<String, Value>, existing: Option<&Role>) -> AppResult<(String, RightSet)> {
    let mut errors = c360::error::FieldErrors::new();
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => Some(n.trim().to_owned()),
        Some(Value::String(_)) => {
            errors.insert("name".into(), vec!["This field may not be blank.".into()]);
            None
        }
        None if existing.is_some() => existing.map(|r| r.name.clone()),
        None | Some(Value::Null) => {
            errors.insert("name".into(), vec!["This field is required.".into()]);
            None
        }
        Some(_) => {
            errors.insert("name".into(), vec!["Not a valid string.".into()]);
            None
        }
    };
    let mut rights = existing.map(|r| r.rights).unwrap_or_default();
    for right_name in RIGHT_NAMES {
        let Some(raw) = body.get(right_name) else { continue };
        let value = match raw {
            Value::Bool(b) => Some(*b),
            Value::String(s) if matches!(s.to_lowercase().as_str(), "true" | "1") => Some(true),
            Value::String(s) if matches!(s.to_lowercase().as_str(), "false" | "0") => Some(false),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            _ => None,
        };
        match (value, Right::from_name(right_name)) {
            (Some(on), Some(right)) => rights = rights.with(right, on),
            _ => {
                errors.insert(right_name.into(), vec!["Must be a valid boolean.".into()]);
            }
        }
    }
    match name {
        Some(name) if errors.is_empty() => {
            if let Some(message) = role_inconsistency(rights) {
                return Err(AppError::BadRequest(message.into()));
            }
            Ok((name, rights))
        }
        _ => Err(AppError::Invalid(errors)),
    }
}

fn name_taken(err: StoreError) -> AppError {
    match err {
        StoreError::ConditionFailed => AppError::field("name", "role with this name already exists."),
        other => other.into(),
    }
}

async fn create_role(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Body(body): Body,
) -> AppResult<Response> {
    principal.ensure(Principal::is_full_admin)?;
    let (name, rights) = role_fields(&body, None)?;
    let now = time::now();
    let role = Role {
        id: state.store.next_id("role").await?,
        name,
        rights,
        insert_datetime: now,
        update_datetime: now,
        delete_datetime: None,
    };
    state.store.save_role(&role, None).await.map_err(name_taken)?;
    state.invalidate_roles();
    Ok((StatusCode::CREATED, Json(views::role(&role))).into_response())
}

async fn patch_role(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Json<Value>> {
    principal.ensure(Principal::is_full_admin)?;
    let mut role = alive_role(&state, parse_id(&id, "Role")?).await?;
    let previous = role.name.clone();
    (role.name, role.rights) = role_fields(&body, Some(&role))?;
    role.update_datetime = time::now();
    state.store.save_role(&role, Some(&previous)).await.map_err(name_taken)?;
    state.invalidate_roles();
    Ok(Json(views::role(&role)))
}

async fn delete_role(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    principal.ensure(Principal::is_full_admin)?;
    let mut role = alive_role(&state, parse_id(&id, "Role")?).await?;
    if role.rights.has(Right::FULL_ADMIN) {
        return Err(AppError::ForbiddenError("Cannot delete the Full Admin role".into()));
    }
    // Admin-only and rare: reads the accesses index (see docs/data-model.md).
    if state.accesses_under("/").await?.iter().any(|a| a.role_id == role.id) {
        return Err(AppError::ForbiddenError("This role is attached to existing accesses".into()));
    }
    let now = time::now();
    role.delete_datetime = Some(now);
    role.update_datetime = now;
    state.store.save_role(&role, Some(&role.name)).await?;
    state.invalidate_roles();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn assignable_roles(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Value>> {
    let raw =
        query.get("perimeter_id").ok_or_else(|| AppError::BadRequest("Missing parameter: `perimeter_id`".into()))?;
    let tree = state.perimeter_tree().await?;
    let perimeter = raw.parse::<i64>().ok().filter(|id| tree.contains(*id)).ok_or(AppError::NotFound("Perimeter"))?;
    let roles = state.roles().await?;
    let mut assignable: Vec<&Role> = roles
        .values()
        .filter(|r| r.delete_datetime.is_none() && can_manage(&principal.grants, r.rights, Some(perimeter), &tree))
        .collect();
    assignable.sort_by_key(|r| r.id);
    Ok(Json(json!(assignable.into_iter().map(views::role).collect::<Vec<_>>())))
}

const ROLE_USERS_ORDER: [&str; 7] =
    ["username", "firstname", "lastname", "email", "perimeter", "start_datetime", "end_datetime"];

async fn role_users(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path(id): Path<String>,
    query: ListQuery,
) -> AppResult<Response> {
    let role = alive_role(&state, parse_id(&id, "Role")?).await?;
    let now = time::now();
    let accesses: Vec<_> =
        state.accesses_under("/").await?.into_iter().filter(|a| a.role_id == role.id && a.is_valid_at(now)).collect();
    let names: Vec<&str> = accesses.iter().map(|a| a.username.as_str()).collect();
    let users: HashMap<String, User> = state.store.users_by_name(&names).await?;
    let tree = state.perimeter_tree().await?;
    let filter = query.get("filter_by_name").map(str::to_lowercase);
    let mut rows: Vec<Value> = accesses
        .iter()
        .filter_map(|a| {
            let user = users.get(&a.username).filter(|u| u.delete_datetime.is_none())?;
            let matches = filter.as_ref().is_none_or(|f| {
                [&user.firstname, &user.lastname]
                    .iter()
                    .any(|n| n.as_deref().is_some_and(|n| n.to_lowercase().contains(f.as_str())))
                    || user.username.contains(f.as_str())
            });
            matches.then(|| {
                json!({
                    "provider_username": a.username,
                    "firstname": user.firstname,
                    "lastname": user.lastname,
                    "email": user.email,
                    "perimeter": a.perimeter_id.and_then(|p| tree.get(p)).map(|p| p.name()),
                    "start_datetime": a.start_datetime.map(time::python_str),
                    "end_datetime": a.end_datetime.map(time::python_str),
                })
            })
        })
        .collect();
    let order = query.ordering("order", &ROLE_USERS_ORDER)?;
    let order = if order.is_empty() { query.ordering_from("lastname") } else { order };
    sort_by(&mut rows, &order, |row, field| {
        let key = if field == "username" { "provider_username" } else { field };
        SortValue::from(row[key].as_str())
    });
    if rows.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(query.limited(rows)).into_response())
}

async fn list_profiles(State(state): State<AppState>, _: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    // One user's profiles come with the user (one Query); all profiles need their users' names.
    let (profiles, users): (Vec<_>, HashMap<String, User>) = match query.get("user_id") {
        Some(username) => match state.store.user_bundle(username).await? {
            Some(bundle) => (bundle.profiles, HashMap::from([(bundle.user.username.clone(), bundle.user)])),
            None => (Vec::new(), HashMap::new()),
        },
        None => {
            let profiles = state.store.profiles().await?;
            let names: Vec<&str> = profiles.iter().map(|p| p.username.as_str()).collect();
            let users = state.store.users_by_name(&names).await?;
            (profiles, users)
        }
    };
    let alive: Vec<_> = profiles.into_iter().filter(|p| p.delete_datetime.is_none()).collect();
    let terms = query.search_terms();
    let rows = alive
        .iter()
        .filter(|p| {
            let user = users.get(&p.username);
            matches_search(
                &terms,
                &[
                    user.and_then(|u| u.firstname.as_deref()),
                    user.and_then(|u| u.lastname.as_deref()),
                    Some(&p.username),
                ],
            )
        })
        .map(|p| views::profile(p, users.get(&p.username)))
        .collect();
    Ok(Json(query.page(rows)?))
}

async fn get_profile(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let profile = state
        .store
        .profile(parse_id(&id, "Profile")?)
        .await?
        .filter(|p| p.delete_datetime.is_none())
        .ok_or(AppError::NotFound("Profile"))?;
    let user = state.store.user(&profile.username).await?;
    Ok(Json(views::profile(&profile, user.as_ref())))
}
