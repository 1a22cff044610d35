//! `/accesses/perimeters/` (spec §4.6–§4.9, §4.15): the tree, children, manageable perimeters and
//! patient-data rights, all computed over the in-memory tree.
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
        cohort::Kind,
        perimeter::Perimeter,
        rights::Right,
        tree::PerimeterTree,
    },
    error::{AppError, AppResult},
    http::{
        listing::{matches_search, sort_by, ListQuery, SortValue},
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

    pub fn matches(&self, p: &Perimeter) -> bool {
        let contains = |value: Option<&str>, wanted: &Option<String>| {
            wanted.as_deref().is_none_or(|w| value.is_some_and(|v| v.to_lowercase().contains(w)))
        };
        let one_of = |value: Option<&str>, wanted: &Option<Vec<String>>| {
            wanted.as_ref().is_none_or(|values| value.is_some_and(|v| values.iter().any(|w| w == v)))
        };
        contains(Some(&p.name), &self.name)
            && contains(p.source_value.as_deref(), &self.source_value)
            && one_of(p.type_source_value.as_deref(), &self.type_source_value)
            && one_of(p.cohort_id.as_deref(), &self.cohort_id)
            && one_of(p.parent_id.map(|i| i.to_string()).as_deref(), &self.parent_id)
            && one_of(p.local_id.as_deref(), &self.local_id)
            && matches_search(&self.terms, &[Some(&p.name), p.type_source_value.as_deref(), p.source_value.as_deref()])
    }
}

fn ordered<'a>(mut perimeters: Vec<&'a Perimeter>, query: &ListQuery) -> AppResult<Vec<&'a Perimeter>> {
    let orders =
        query.ordering("ordering", &["care_site_name", "care_site_type_source_value", "care_site_source_value"])?;
    sort_by(&mut perimeters, &orders, |p, field| match field {
        "care_site_name" => SortValue::Text(p.name.clone()),
        "care_site_type_source_value" => SortValue::from(p.type_source_value.as_deref()),
        _ => SortValue::from(p.source_value.as_deref()),
    });
    Ok(perimeters)
}

async fn list(State(state): State<AppState>, _: Arc<Principal>, query: ListQuery) -> AppResult<Json<Value>> {
    let tree = state.perimeter_tree().await?;
    let filter = PerimeterFilter::new(&query);
    let found = ordered(tree.iter().filter(|p| filter.matches(p)).collect(), &query)?;
    // Only the page is rendered: the tree holds tens of thousands of perimeters.
    Ok(Json(query.limited_of(found).envelope(views::perimeter_full)))
}

fn find(tree: &PerimeterTree, raw: &str) -> AppResult<Perimeter> {
    tree.get(parse_id(raw, "Perimeter")?).cloned().ok_or(AppError::NotFound("Perimeter"))
}

async fn retrieve(State(state): State<AppState>, _: Arc<Principal>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let tree = state.perimeter_tree().await?;
    Ok(Json(views::perimeter_full(&find(&tree, &id)?)))
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
    Ok(Json(query.limited_of(found).envelope(views::perimeter_full)))
}

async fn child(
    State(state): State<AppState>,
    _: Arc<Principal>,
    Path((parent, id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let tree = state.perimeter_tree().await?;
    let perimeter = find(&tree, &id)?;
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
    let mut found: Vec<&Perimeter> = tops.iter().filter_map(|id| tree.get(*id)).collect();
    if has_any_param(&query) {
        // With parameters, the tops and everything below them, then the perimeter filters.
        let below: Vec<&Perimeter> = tops.iter().flat_map(|id| tree.descendants(*id)).collect();
        found.extend(below);
        let filter = PerimeterFilter::new(&query);
        found.retain(|p| filter.matches(p));
    }
    Ok(Json(json!(found.into_iter().map(views::perimeter_lite).collect::<Vec<_>>())))
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
            rows.push((p, rights.right_on(id, &tree)));
        }
    }
    rows.sort_by(|(a, _), (b, _)| (a.full_path.as_deref(), a.id).cmp(&(b.full_path.as_deref(), b.id)));
    let page = query.limited_of(rows);
    // As the original: an empty page is `{}`, not an envelope.
    if page.results.is_empty() {
        return Ok(Json(json!({})).into_response());
    }
    Ok(Json(page.envelope(|(p, r)| {
        let read_role = match (r.nominative, r.pseudonymized) {
            (true, _) => "READ_PATIENT_NOMINATIVE",
            (false, true) => "READ_PATIENT_PSEUDO_ANONYMIZE",
            _ => "NO READ PATIENT RIGHT",
        };
        json!({
            "perimeter": views::perimeter_lite(p),
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
    let (tree, ws) = tokio::join!(
        state.perimeter_tree(),
        state.store.workspace(&principal.username, &[Kind::Snapshot, Kind::Cohort])
    );
    let (tree, ws) = (tree?, ws?);
    let mut wanted: HashSet<&str> = cohort_ids.iter().map(String::as_str).collect();
    for cohort in ws.cohorts.iter().filter(|c| !c.group_id.is_empty() && cohort_ids.contains(&c.group_id)) {
        let snapshot = cohort.request_query_snapshot.and_then(|s| ws.snapshot(s));
        wanted.extend(snapshot.and_then(|s| s.perimeters_ids.as_ref()).into_iter().flatten().map(String::as_str));
    }
    let targets: Vec<i64> =
        tree.iter().filter(|p| p.cohort_id.as_deref().is_some_and(|c| wanted.contains(c))).map(|p| p.id).collect();
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
