//! `/accesses/accesses/` (spec §4.14): listing with `editable` flags, creation, date edits,
//! closing, deletion, the caller's own accesses and data rights.
//!
//! Visibility rule (stricter than the original, which lets any access manager list every access):
//! a caller who is not a full admin sees the accesses on perimeters at or below the perimeters of
//! their own access-management accesses; `editable` then says which of those they may change. The
//! Portail flows (a user's accesses, a perimeter's accesses) keep working for every manager.
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    domain::{
        access_rules::{can_manage, dates, is_access_manager, my_data_rights, Grant},
        rights::{Access, Right, Role},
        time::{self, DateTime},
        tree::PerimeterTree,
        user::User,
    },
    error::{AppError, AppResult, FieldErrors},
    http::{
        listing::{matches_search, sort_by, ListQuery, SortValue},
        Api, AppState, Body, Exposure, MethodPolicy, Principal, RouteSpec,
    },
    store::Condition,
};
use serde_json::{json, Map, Value};

use crate::{roles::parse_id, views};

const DEFAULT_ACCESS_VALIDITY_DAYS: i64 = 365;
const EXPIRY_WINDOW_DAYS: i64 = 30;
const ORDERING: [&str; 7] =
    ["start_datetime", "end_datetime", "created_by", "updated_by", "role_name", "perimeter_name", "is_valid"];

fn manages_accesses(principal: &Principal) -> bool {
    is_access_manager(&principal.grants)
}

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "accesses")
        .method_policy(MethodPolicy::NotAllowedIf(manages_accesses))
        .route(
            Method::GET,
            "/accesses/accesses/",
            Exposure::Authenticated,
            "List accesses (PAGE; by profile or by perimeter)",
            list,
        )
        .audited(
            Method::POST,
            "/accesses/accesses/",
            Exposure::Authenticated,
            "Grant a role on a perimeter",
            "accesses.create",
            create,
        )
        .route(
            Method::GET,
            "/accesses/accesses/my-accesses/",
            Exposure::Authenticated,
            "The caller's valid accesses",
            my_accesses,
        )
        .route(
            Method::GET,
            "/accesses/accesses/my-data-rights/",
            Exposure::Authenticated,
            "The caller's data rights per perimeter",
            data_rights,
        )
        .route(Method::GET, "/accesses/accesses/{id}/", Exposure::Authenticated, "Get an access", retrieve)
        .audited(
            Method::PATCH,
            "/accesses/accesses/{id}/",
            Exposure::Authenticated,
            "Change an access's dates",
            "accesses.partial_update",
            patch,
        )
        .audited(
            Method::DELETE,
            "/accesses/accesses/{id}/",
            Exposure::Authenticated,
            "Delete a future access",
            "accesses.destroy",
            delete,
        )
        .audited(
            Method::PATCH,
            "/accesses/accesses/{id}/close/",
            Exposure::Authenticated,
            "End an access now",
            "accesses.close",
            close,
        )
        .build()
}

/// Renders accesses with one BatchGetItem for their users and creators and, in parallel, one for
/// their perimeters' records.
async fn render(state: &AppState, accesses: &[(Access, Option<bool>)]) -> AppResult<Vec<Value>> {
    let mut names: Vec<&str> = Vec::new();
    for (a, _) in accesses {
        names.push(&a.username);
        names.extend(a.created_by.as_deref());
        names.extend(a.updated_by.as_deref());
    }
    let perimeter_ids: Vec<i64> = accesses.iter().filter_map(|(a, _)| a.perimeter_id).collect();
    let (users, perimeters) =
        tokio::join!(state.store.users_by_name(&names), state.store.perimeters_by_id(&perimeter_ids));
    let (users, perimeters): (HashMap<String, User>, _) = (users?, perimeters?);
    let roles = state.roles().await?;
    let display = |name: &Option<String>| name.as_ref().and_then(|n| users.get(n)).map(User::display_name);
    let now = time::now();
    Ok(accesses
        .iter()
        .map(|(a, editable)| {
            let ctx = views::AccessContext {
                user: users.get(&a.username),
                role: roles.get(&a.role_id),
                perimeter: a.perimeter_id.and_then(|p| perimeters.get(&p)),
                created_by: display(&a.created_by),
                updated_by: display(&a.updated_by),
                editable: *editable,
            };
            views::access(a, ctx, now)
        })
        .collect())
}

/// The tops of the subtrees a manager sees (full admins: `None`, everything).
fn visible_roots(grants: &[Grant], tree: &PerimeterTree) -> Option<Vec<i64>> {
    if grants.iter().any(|g| g.rights.has(Right::FULL_ADMIN)) {
        return None;
    }
    let managing = [
        Right::MANAGE_ADMIN_ACCESSES_SAME_LEVEL,
        Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS,
        Right::MANAGE_DATA_ACCESSES_SAME_LEVEL,
        Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS,
    ];
    let mut roots: Vec<i64> = grants.iter().filter(|g| g.rights.any(&managing)).map(|g| g.perimeter_id).collect();
    roots.sort_unstable();
    roots.dedup();
    let nested: Vec<i64> =
        roots.iter().copied().filter(|r| roots.iter().any(|other| tree.is_descendant(*r, *other))).collect();
    roots.retain(|r| !nested.contains(r));
    Some(roots)
}

fn visible(access: &Access, roots: &Option<Vec<i64>>, tree: &PerimeterTree) -> bool {
    match (roots, access.perimeter_id) {
        (None, _) => true,
        (Some(roots), Some(p)) => roots.iter().any(|r| tree.is_within(p, *r)),
        (Some(_), None) => false,
    }
}

fn strict_flag(query: &ListQuery, name: &str) -> AppResult<bool> {
    match query.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(AppError::field(name, "Must be true or false.")),
    }
}

async fn list(State(state): State<AppState>, principal: Arc<Principal>, query: ListQuery) -> AppResult<Response> {
    principal.ensure(manages_accesses)?;
    let orders = query.ordering("ordering", &ORDERING)?;
    let tree = state.perimeter_tree().await?;
    let roles = state.roles().await?;
    let roots = visible_roots(&principal.grants, &tree);
    let now = time::now();
    let role_rights = |a: &Access| roles.get(&a.role_id).map(|r| r.rights).unwrap_or_default();

    // `(access, whether the list mode reports its editable flag)`.
    let candidates: Vec<(Access, bool)> = if let Some(raw) = query.get("profile_id") {
        let profile_id: i64 = raw.parse().map_err(|_| AppError::field("profile_id", "Enter a number."))?;
        let accesses = match state.store.profile(profile_id).await? {
            Some(profile) => state.store.user_bundle(&profile.username).await?.map(|b| b.accesses).unwrap_or_default(),
            None => Vec::new(),
        };
        accesses
            .into_iter()
            .filter(|a| a.profile_id == profile_id && a.delete_datetime.is_none())
            .map(|a| (a, true))
            .collect()
    } else if let Some(raw) = query.get("perimeter_id") {
        let perimeter: i64 = raw.parse().ok().filter(|p| tree.contains(*p)).ok_or(AppError::NotFound("Perimeter"))?;
        let (include_parents, include_children) =
            (strict_flag(&query, "include_parents")?, strict_flag(&query, "include_children")?);
        let manages_below = principal.grants.iter().any(|g| {
            g.rights.any(&[Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS, Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS])
        });
        let path = tree.path(perimeter);
        let mut found: Vec<Access> = state.accesses_under(&path).await?;
        if !(include_children && manages_below) {
            found.retain(|a| a.perimeter_id == Some(perimeter));
        }
        if include_parents {
            let inherited = [
                Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS,
                Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS,
                Right::READ_PATIENT_NOMINATIVE,
                Right::READ_PATIENT_PSEUDONYMIZED,
            ];
            for ancestor in tree.ancestors(perimeter) {
                let on_ancestor = state.accesses_under(&format!("{}#", tree.path(ancestor))).await?;
                found.extend(on_ancestor.into_iter().filter(|a| role_rights(a).any(&inherited)));
            }
        }
        found.into_iter().filter(|a| a.is_valid_at(now)).map(|a| (a, true)).collect()
    } else {
        let prefixes: Vec<String> = match &roots {
            None => vec!["/".to_owned()],
            Some(roots) => roots.iter().map(|r| tree.path(*r)).collect(),
        };
        let mut all = Vec::new();
        for prefix in prefixes {
            all.extend(state.accesses_under(&prefix).await?);
        }
        all.into_iter().map(|a| (a, false)).collect()
    };

    let exact =
        |value: Option<String>, param: &str| query.get(param).is_none_or(|wanted| value.as_deref() == Some(wanted));
    let mut rows: Vec<(Access, bool)> = candidates
        .into_iter()
        .filter(|(a, _)| visible(a, &roots, &tree))
        .filter(|(a, _)| exact(Some(a.source.clone()), "source") && exact(Some(a.role_id.to_string()), "role_id"))
        .filter(|(a, _)| {
            exact(a.start_datetime.map(time::iso), "start_datetime")
                && exact(a.end_datetime.map(time::iso), "end_datetime")
        })
        .collect();

    if query.get("expiring").is_some() {
        let users = user_map(&state, rows.iter().map(|(a, _)| a.username.as_str())).await?;
        let expiring: Vec<Value> = rows
            .iter()
            .map(|(a, _)| views::expiring_access(a, users.get(&a.username), a.perimeter_id.and_then(|p| tree.get(p))))
            .collect();
        return Ok(Json(query.page(expiring)?).into_response());
    }

    let terms = query.search_terms();
    if !terms.is_empty() {
        let users = user_map(&state, rows.iter().map(|(a, _)| a.username.as_str())).await?;
        rows.retain(|(a, _)| {
            let user = users.get(&a.username);
            let role_name = roles.get(&a.role_id).map(|r| r.name.as_str());
            let perimeter_name = a.perimeter_id.and_then(|p| tree.get(p)).map(|p| p.name());
            matches_search(
                &terms,
                &[
                    user.and_then(|u| u.firstname.as_deref()),
                    user.and_then(|u| u.lastname.as_deref()),
                    user.and_then(|u| u.email.as_deref()),
                    Some(&a.username),
                    role_name,
                    perimeter_name,
                ],
            )
        });
    }
    rows.sort_by_key(|(a, _)| a.id);
    sort_by(&mut rows, &orders, |(a, _), field| match field {
        "start_datetime" => SortValue::from(a.start_datetime.map(time::iso).as_deref()),
        "end_datetime" => SortValue::from(a.end_datetime.map(time::iso).as_deref()),
        "created_by" => SortValue::from(a.created_by.as_deref()),
        "updated_by" => SortValue::from(a.updated_by.as_deref()),
        "role_name" => SortValue::from(roles.get(&a.role_id).map(|r| r.name.as_str())),
        "perimeter_name" => SortValue::from(a.perimeter_id.and_then(|p| tree.get(p)).map(|p| p.name())),
        _ => SortValue::Bool(a.is_valid_at(now)),
    });
    // Users and `editable` flags are resolved for the requested page only.
    let page = query.page_of(rows)?;
    // As the original: an empty page is a bare `[]`.
    if page.results.is_empty() {
        return Ok(Json(json!([])).into_response());
    }
    let flagged: Vec<(Access, Option<bool>)> = page
        .results
        .iter()
        .map(|(a, flag)| {
            (a.clone(), flag.then(|| can_manage(&principal.grants, role_rights(a), a.perimeter_id, &tree)))
        })
        .collect();
    let mut rendered = render(&state, &flagged).await?.into_iter();
    let envelope =
        c360::http::listing::Page { count: page.count, next: page.next, previous: page.previous, results: flagged }
            .envelope(|_| rendered.next().unwrap_or(Value::Null));
    Ok(Json(envelope).into_response())
}

async fn user_map<'a>(state: &AppState, names: impl Iterator<Item = &'a str>) -> AppResult<HashMap<String, User>> {
    let names: Vec<&str> = names.collect();
    Ok(state.store.users_by_name(&names).await?)
}

/// An access the caller may act on: exists, and §4.5 lets the caller manage it (else 403).
async fn manageable_access(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
) -> AppResult<(Access, Arc<PerimeterTree>)> {
    principal.ensure(manages_accesses)?;
    let access = state.store.access(parse_id(raw_id, "Access")?).await?.ok_or(AppError::NotFound("Access"))?;
    let tree = state.perimeter_tree().await?;
    let rights = state.roles().await?.get(&access.role_id).map(|r| r.rights).unwrap_or_default();
    if !can_manage(&principal.grants, rights, access.perimeter_id, &tree) {
        return Err(AppError::permission_denied());
    }
    Ok((access, tree))
}

async fn respond(state: &AppState, access: Access, status: StatusCode) -> AppResult<Response> {
    let mut rendered = render(state, &[(access, None)]).await?;
    Ok((status, Json(rendered.pop().unwrap_or(Value::Null))).into_response())
}

async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (access, _) = manageable_access(&state, &principal, &id).await?;
    respond(&state, access, StatusCode::OK).await
}

fn datetime_field(body: &Map<String, Value>, name: &str, errors: &mut FieldErrors) -> Option<DateTime> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => time::parse(s).or_else(|| {
            errors.insert(name.into(), vec!["Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].".into()]);
            None
        }),
        Some(_) => {
            errors.insert(name.into(), vec!["Datetime has wrong format.".into()]);
            None
        }
    }
}

fn id_field(body: &Map<String, Value>, name: &str, errors: &mut FieldErrors) -> Option<i64> {
    let value = match body.get(name) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        None | Some(Value::Null) => {
            errors.insert(name.into(), vec!["This field is required.".into()]);
            return None;
        }
        Some(_) => None,
    };
    if value.is_none() {
        errors.insert(name.into(), vec!["Incorrect type. Expected pk value.".into()]);
    }
    value
}

fn invalid_pk(field: &str, id: i64) -> AppError {
    AppError::field(field, format!("Invalid pk \"{id}\" - object does not exist."))
}

async fn create(State(state): State<AppState>, principal: Arc<Principal>, Body(body): Body) -> AppResult<Response> {
    principal.ensure(manages_accesses)?;
    let mut errors = FieldErrors::new();
    let (profile_id, role_id, perimeter_id) = (
        id_field(&body, "profile_id", &mut errors),
        id_field(&body, "role_id", &mut errors),
        id_field(&body, "perimeter_id", &mut errors),
    );
    let (start, end) =
        (datetime_field(&body, "start_datetime", &mut errors), datetime_field(&body, "end_datetime", &mut errors));
    let (Some(profile_id), Some(role_id), Some(perimeter_id)) = (profile_id, role_id, perimeter_id) else {
        return Err(AppError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let profile = state
        .store
        .profile(profile_id)
        .await?
        .filter(|p| p.delete_datetime.is_none())
        .ok_or_else(|| invalid_pk("profile_id", profile_id))?;
    let roles = state.roles().await?;
    let role: &Role =
        roles.get(&role_id).filter(|r| r.delete_datetime.is_none()).ok_or_else(|| invalid_pk("role_id", role_id))?;
    let tree = state.perimeter_tree().await?;
    if !tree.contains(perimeter_id) {
        return Err(invalid_pk("perimeter_id", perimeter_id));
    }
    let now = time::now();
    let (start, end) =
        dates::new_access(start, end, DEFAULT_ACCESS_VALIDITY_DAYS, now).map_err(|m| AppError::BadRequest(m.into()))?;
    // Stricter than the original (which only checks that the caller manages some accesses): the
    // caller must be able to manage this role on this perimeter, as `roles/assignable/` offers.
    if !can_manage(&principal.grants, role.rights, Some(perimeter_id), &tree) {
        return Err(AppError::permission_denied());
    }
    let id = state.store.next_id("access").await?;
    let access = Access::granted(id, &profile, role_id, perimeter_id, (start, end), Some(&principal.username), now);
    state.store.save_access(&access, &tree.path(perimeter_id), Condition::MustNotExist).await?;
    respond(&state, access, StatusCode::CREATED).await
}

async fn save(state: &AppState, principal: &Principal, mut access: Access, tree: &PerimeterTree) -> AppResult<Access> {
    access.updated_by = Some(principal.username.clone());
    access.update_datetime = time::now();
    let path = access.perimeter_id.map(|p| tree.path(p)).unwrap_or_else(|| "/".into());
    state.store.save_access(&access, &path, Condition::MustExist).await?;
    Ok(access)
}

async fn patch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
    Body(body): Body,
) -> AppResult<Response> {
    let (mut access, tree) = manageable_access(&state, &principal, &id).await?;
    if body.is_empty() {
        return Err(AppError::BadRequest(dates::NO_DATA.into()));
    }
    if body.keys().any(|k| k != "start_datetime" && k != "end_datetime") {
        return Err(AppError::BadRequest(dates::ONLY_DATES.into()));
    }
    let mut errors = FieldErrors::new();
    let (start, end) =
        (datetime_field(&body, "start_datetime", &mut errors), datetime_field(&body, "end_datetime", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    if body.len() == 2 && (start.is_none() || end.is_none()) {
        return Err(AppError::BadRequest(dates::MISSING_DATES.into()));
    }
    let now = time::now();
    (access.start_datetime, access.end_datetime) =
        dates::changed((access.start_datetime, access.end_datetime), start, end, now)
            .map_err(|m| AppError::BadRequest(m.into()))?;
    let access = save(&state, &principal, access, &tree).await?;
    respond(&state, access, StatusCode::OK).await
}

async fn close(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (mut access, tree) = manageable_access(&state, &principal, &id).await?;
    let now = time::now();
    access.end_datetime = Some(
        dates::close(access.start_datetime, access.end_datetime, now).map_err(|m| AppError::BadRequest(m.into()))?,
    );
    let access = save(&state, &principal, access, &tree).await?;
    respond(&state, access, StatusCode::OK).await
}

async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (mut access, tree) = manageable_access(&state, &principal, &id).await?;
    let now = time::now();
    dates::deletable(access.start_datetime, now).map_err(|m| AppError::BadRequest(m.into()))?;
    access.delete_datetime = Some(now);
    save(&state, &principal, access, &tree).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The caller's valid accesses (no `editable`); with `expiring=true`, those ending within 30 days,
/// one per perimeter (the one ending first).
async fn my_accesses(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Response> {
    let expiring = match query.get("expiring") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(AppError::field("expiring", "Must be true or false.")),
    };
    let now = time::now();
    let active = |profile_id: i64| {
        principal
            .profiles
            .iter()
            .any(|p| p.id == profile_id && p.is_active == Some(true) && p.delete_datetime.is_none())
    };
    let mut valid: Vec<Access> =
        principal.accesses.iter().filter(|a| a.is_valid_at(now) && active(a.profile_id)).cloned().collect();
    valid.sort_by_key(|a| a.id);
    // Any `expiring` key selects the flat shape, `false` included (the original picks the serializer on
    // the key's presence); only `true` narrows the list.
    if query.get("expiring").is_none() {
        let rows: Vec<(Access, Option<bool>)> = valid.into_iter().map(|a| (a, None)).collect();
        return Ok(Json(json!(render(&state, &rows).await?)).into_response());
    }
    let listed = if expiring {
        let today = now.date();
        let horizon = today + ::time::Duration::days(EXPIRY_WINDOW_DAYS);
        let mut first_ending: HashMap<Option<i64>, Access> = HashMap::new();
        for access in
            valid.into_iter().filter(|a| a.end_datetime.is_some_and(|e| (today..=horizon).contains(&e.date())))
        {
            let keep =
                first_ending.get(&access.perimeter_id).is_none_or(|kept| access.end_datetime < kept.end_datetime);
            if keep {
                first_ending.insert(access.perimeter_id, access);
            }
        }
        if first_ending.is_empty() {
            return Ok(Json(
                json!({"message": format!("No accesses to expire in the next {EXPIRY_WINDOW_DAYS} days")}),
            )
            .into_response());
        }
        let mut expiring: Vec<Access> = first_ending.into_values().collect();
        expiring.sort_by_key(|a| a.end_datetime);
        expiring
    } else {
        valid
    };
    let tree = state.perimeter_tree().await?;
    Ok(Json(json!(listed
        .iter()
        .map(|a| views::expiring_access(a, principal.user.as_ref(), a.perimeter_id.and_then(|p| tree.get(p))))
        .collect::<Vec<_>>()))
    .into_response())
}

async fn data_rights(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Value>> {
    let requested = match query.get("perimeters_ids") {
        None => None,
        Some(raw) => Some(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    AppError::InvalidString(format!("`perimeters_ids` must be integers, got `{raw}` instead"))
                })?,
        ),
    };
    let tree = state.perimeter_tree().await?;
    let rights = my_data_rights(&principal.grants, requested.as_deref(), &tree);
    Ok(Json(json!(rights
        .into_iter()
        .map(|r| json!({
            "user_id": principal.username,
            "perimeter_id": r.perimeter_id,
            "right_read_patient_nominative": r.read_nominative,
            "right_read_patient_pseudonymized": r.read_pseudonymized,
            "right_search_patients_by_ipp": r.search_by_ipp,
            "right_search_opposed_patients": r.search_opposed,
            "right_export_csv_xlsx_nominative": r.export_csv_xlsx_nominative,
            "right_export_jupyter_nominative": r.export_jupyter_nominative,
            "right_export_jupyter_pseudonymized": r.export_jupyter_pseudonymized,
        }))
        .collect::<Vec<_>>())))
}
