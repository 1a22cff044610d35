//! `/accesses/perimeters/` (spec §4.6–§4.9, §4.15): the tree, children, manageable perimeters and
//! patient-data rights, all computed over the in-memory tree; the full records of a rendered page
//! are read from the store (one BatchGetItem).
use std::{collections::HashSet, sync::Arc};

use axum::{
    extract::{Path, State},
    http::Method,
    response::{IntoResponse, Response},
    Json, Router,
};
use c360::{
    domain::{
        access_rules::{manageable_perimeters, PatientDataRights},
        perimeter::Perimeter,
        rights::Right,
        tree::Node,
    },
    error::{AppError, AppResult},
    http::{
        listing::{matches_search, sort_by, ListQuery, Page, SortValue},
        Api, AppState, Exposure, MethodPolicy, Principal, RouteSpec,
    },
};
use serde_json::{json, Value};

use crate::{roles::parse_id, views};

pub fn api(state: &AppState) -> (Router, Vec<RouteSpec>) {
    Api::new(state, "accesses")
        // Read-only for everyone: other methods are refused by permission (403), as in the original.
        .method_policy(MethodPolicy::Forbidden)
        .route(Method::GET, "/accesses/perimeters/", Exposure::Authenticated, "List perimeters (LIMIT)", list)
        .route(
            Method::GET,
            "/accesses/perimeters/manageable/",
            Exposure::Authenticated,
            "Top perimeters where the caller manages accesses",
            manageable,
        )
        .route(
            Method::GET,
            "/accesses/perimeters/patient-data/rights/",
            Exposure::Authenticated,
            "Patient-data reading rights per perimeter (LIMIT)",
            patient_data_rights,
        )
        .route(
            Method::GET,
            "/accesses/perimeters/patient-data/read/",
            Exposure::Authenticated,
            "May the caller read these cohorts' patients?",
            patient_data_read,
        )
        .route(Method::GET, "/accesses/perimeters/{id}/", Exposure::Authenticated, "Get a perimeter", retrieve)
        .route(
            Method::GET,
            "/accesses/perimeters/{id}/children/",
            Exposure::Authenticated,
            "Direct children (LIMIT)",
            children,
        )
        .route(
            Method::GET,
            "/accesses/perimeters/{id}/children/{child}/",
            Exposure::Authenticated,
            "Get a direct child",
            child,
        )
        .build()
}

/// The perimeter FilterSet and search of spec §4.15, read from the query once and then matched
/// against every perimeter of the tree (tens of thousands per request).
pub struct PerimeterFilter {
    name: Option<String>,
    source_value: Option<String>,
    type_source_value: Option<Vec<String>>,
    cohort_id: Option<Vec<String>>,
    parent_id: Option<Vec<String>>,
    local_id: Option<Vec<String>>,
    terms: Vec<String>,
}

impl PerimeterFilter {
    pub fn new(query: &ListQuery) -> Self {
        Self {
            name: query.get("name").map(str::to_lowercase),
            source_value: query.get("source_value").map(str::to_lowercase),
            type_source_value: query.list("type_source_value"),
            cohort_id: query.list("cohort_id"),
            parent_id: query.list("parent_id"),
            local_id: query.list("local_id"),
            terms: query.search_terms(),
        }
    }

    pub fn matches(&self, p: &Node) -> bool {
        let contains = |value: Option<&str>, wanted: &Option<String>| {
            wanted.as_deref().is_none_or(|w| value.is_some_and(|v| v.to_lowercase().contains(w)))
        };
        let one_of = |value: Option<&str>, wanted: &Option<Vec<String>>| {
            wanted.as_ref().is_none_or(|values| value.is_some_and(|v| values.iter().any(|w| w == v)))
        };
        contains(Some(p.name()), &self.name)
            && contains(p.source_value(), &self.source_value)
            && one_of(p.type_source_value(), &self.type_source_value)
            && one_of(p.cohort_id(), &self.cohort_id)
            && one_of(p.parent_id.map(|i| i.to_string()).as_deref(), &self.parent_id)
            && one_of(p.local_id(), &self.local_id)
            && matches_search(&self.terms, &[Some(p.name()), p.type_source_value(), p.source_value()])
    }
}

fn ordered<'a>(mut perimeters: Vec<Node<'a>>, query: &ListQuery) -> AppResult<Vec<Node<'a>>> {
    let orders =
        query.ordering("ordering", &["care_site_name", "care_site_type_source_value", "care_site_source_value"])?;
    sort_by(&mut perimeters, &orders, |p, field| match field {
        "care_site_name" => SortValue::Text(p.name().to_owned()),
        "care_site_type_source_value" => SortValue::from(p.type_source_value()),
        _ => SortValue::from(p.source_value()),
    });
    Ok(perimeters)
}

/// The page of `found` that the query asks for, rendered in full from the page's records. A
/// perimeter removed since this container loaded the tree has no record and is left out (the
/// container reloads the tree at its next version check).
async fn full_page(state: &AppState, query: &ListQuery, found: Vec<Node<'_>>) -> AppResult<Value> {
    let page = query.limited_of(found);
    let ids: Vec<i64> = page.results.iter().map(|p| p.id).collect();
    let records = state.store.perimeters_by_id(&ids).await?;
    let results: Vec<&Perimeter> = ids.iter().filter_map(|id| records.get(id)).collect();
    Ok(Page { count: page.count, next: page.next, previous: page.previous, results }.envelope(views::perimeter_full))
}

async fn list(State(state): State<AppState>, _: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let tree = state.perimeter_tree().await?;
    let filter = PerimeterFilter::new(&query);
    let found = ordered(tree.iter().filter(|p| filter.matches(p)).collect(), &query)?;
    Ok(Json(full_page(&state, &query, found).await?))
}

/// The record is the truth: no tree needed (one GetItem).
async fn find(state: &AppState, raw: &str) -> AppResult<Perimeter> {
    state.store.perimeter(parse_id(raw, "Perimeter")?).await?.ok_or(AppError::NotFound("Perimeter"))
}

async fn retrieve(State(state): State<AppState>, _: Arc<Principal>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    Ok(Json(views::perimeter_full(&find(&state, &id).await?)))
}

async fn children(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path(id): Path<String>,
    query: ListQuery,
) -> AppResult<Json<Value>> {
    let tree = state.perimeter_tree().await?;
    let parent = parse_id(&id, "Perimeter")?;
    let filter = PerimeterFilter::new(&query);
    let found = ordered(tree.children(parent).filter(|p| filter.matches(p)).collect(), &query)?;
    Ok(Json(full_page(&state, &query, found).await?))
}

async fn child(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path((parent, id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let perimeter = find(&state, &id).await?;
    if perimeter.parent_id != Some(parse_id(&parent, "Perimeter")?) {
        return Err(AppError::NotFound("Perimeter"));
    }
    Ok(Json(views::perimeter_full(&perimeter)))
}

fn has_any_param(query: &ListQuery) -> bool {
    !query.is_empty()
}

async fn manageable(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Value>> {
    let tree = state.perimeter_tree().await?;
    let tops = manageable_perimeters(&principal.grants, &tree);
    let mut found: Vec<Node> = tops.iter().filter_map(|id| tree.get(*id)).collect();
    if has_any_param(&query) {
        // With parameters, the tops and everything below them, then the perimeter filters.
        let below: Vec<Node> = tops.iter().flat_map(|id| tree.descendants(*id)).collect();
        found.extend(below);
        let filter = PerimeterFilter::new(&query);
        found.retain(|p| filter.matches(p));
    }
    Ok(Json(json!(found.iter().map(views::perimeter_lite).collect::<Vec<_>>())))
}

async fn patient_data_rights(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Response> {
    let tree = state.perimeter_tree().await?;
    let rights = PatientDataRights::new(&principal.grants, &tree);
    let mut rows = Vec::new();
    if !rights.is_empty() {
        let filter = PerimeterFilter::new(&query);
        for id in rights.targets(has_any_param(&query), &tree) {
            let Some(p) = tree.get(id).filter(|p| filter.matches(p)) else { continue };
            rows.push((p.full_path(), p, rights.right_on(id, &tree)));
        }
    }
    rows.sort_by(|(a_path, a, _), (b_path, b, _)| (a_path, a.id).cmp(&(b_path, b.id)));
    let page = query.limited_of(rows);
    // As the original: an empty page is `{}`, not an envelope.
    if page.results.is_empty() {
        return Ok(Json(json!({})).into_response());
    }
    Ok(Json(page.envelope(|(_, p, r)| {
        let read_role = match (r.nominative, r.pseudonymized) {
            (true, _) => "READ_PATIENT_NOMINATIVE",
            (false, true) => "READ_PATIENT_PSEUDO_ANONYMIZE",
            _ => "NO READ PATIENT RIGHT",
        };
        json!({
            "perimeter": views::perimeter_lite(&p),
            "read_role": read_role,
            "right_read_patient_nominative": r.nominative,
            "right_read_patient_pseudonymized": r.pseudonymized,
            "right_search_patients_by_ipp": rights.search_by_ipp,
            "right_read_opposed_patients_data": rights.search_opposed,
        })
    }))
    .into_response())
}

/// §4.9: `cohort_ids` are perimeter cohort ids or the `group_id`s of the caller's cohorts, which
/// stand for the perimeters of their snapshot's population.
async fn patient_data_read(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    query: ListQuery,
) -> AppResult<Json<Value>> {
    let cohort_ids =
        query.list("cohort_ids").ok_or_else(|| AppError::BadRequest("Missing `cohort_ids` parameter".into()))?;
    let at_least_one = match query.get("mode") {
        Some("max") => true,
        Some("min") => false,
        _ => return Err(AppError::BadRequest("Patient data reading `mode` is missing or has invalid value".into())),
    };
    let has = |right: Right| principal.grants.iter().any(|g| g.rights.has(right));
    if has(Right::SEARCH_PATIENTS_UNLIMITED) {
        return Ok(Json(json!({
            "allow_read_patient_data_nomi": true,
            "allow_lookup_opposed_patients": true,
            "allow_read_patient_without_perimeter_limit": true,
            "allow_read_practitioner": false,
        })));
    }
    let groups: Vec<&str> = cohort_ids.iter().map(String::as_str).filter(|g| !g.is_empty()).collect();
    let (tree, found) =
        tokio::join!(state.perimeter_tree(), state.store.cohorts_by_group(&principal.username, &groups));
    let (tree, (cohorts, snapshots)) = (tree?, found?);
    let mut wanted: HashSet<&str> = cohort_ids.iter().map(String::as_str).collect();
    for cohort in &cohorts {
        let snapshot = cohort.request_query_snapshot.and_then(|s| snapshots.iter().find(|snapshot| snapshot.uuid == s));
        wanted.extend(snapshot.and_then(|s| s.perimeters_ids.as_ref()).into_iter().flatten().map(String::as_str));
    }
    let targets: Vec<i64> =
        tree.iter().filter(|p| p.cohort_id().is_some_and(|c| wanted.contains(c))).map(|p| p.id).collect();
    if targets.is_empty() {
        return Err(AppError::NotFoundError("None of the target perimeters was found".into()));
    }
    let rights = PatientDataRights::new(&principal.grants, &tree);
    let per_target: Vec<_> = targets.iter().map(|t| rights.right_on(*t, &tree)).collect();
    let quantifier = |test: &dyn Fn(&c360::domain::access_rules::ReadRight) -> bool| {
        if at_least_one {
            per_target.iter().any(test)
        } else {
            per_target.iter().all(test)
        }
    };
    if !quantifier(&|r| r.pseudonymized) {
        return Err(AppError::NotFoundError("User has no data reading accesses".into()));
    }
    Ok(Json(json!({
        "allow_read_patient_data_nomi": quantifier(&|r| r.nominative),
        "allow_lookup_opposed_patients": has(Right::SEARCH_OPPOSED_PATIENTS),
        "allow_read_patient_without_perimeter_limit": false,
        "allow_read_practitioner": has(Right::MANAGE_USERS),
    })))
}
