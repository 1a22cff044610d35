//! The perimeter tree of the FHIR perimeter sync (spec §10.1): built from the active `Organization`s
//! and their `partOf` links. Pure, so that the sync's idempotence and its safety rules are testable.
use std::collections::{BTreeMap, HashMap};

use super::{perimeter::Perimeter, tree::PerimeterTree};

/// The root added above several top-level Organizations.
pub const SYNTHETIC_ROOT_ID: i64 = 1;
pub const SYNTHETIC_ROOT_NAME: &str = "All Hospitals";

/// The fields of a FHIR `Organization` the tree is built from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: Option<String>,
    /// The first `alias`.
    pub alias: Option<String>,
    /// The value of the first `identifier`.
    pub identifier: Option<String>,
    /// `partOf.reference`, e.g. `Organization/123`.
    pub part_of: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FhirTreeError {
    #[error("the FHIR server lists no active Organization; refusing to remove every perimeter")]
    Empty,
    #[error("Organization {0:?}: its id is not an integer (perimeter ids are)")]
    NonNumericId(String),
    #[error(
        "Organization {SYNTHETIC_ROOT_ID} takes the id of the synthetic root above several top-level Organizations"
    )]
    RootClash,
    #[error("the partOf links of Organization {0} form a cycle")]
    Cycle(i64),
}

/// The id an `Organization` reference points to: `Organization/<id>`, possibly absolute or
/// versioned (`…/Organization/<id>/_history/2`).
fn referenced_id(reference: &str) -> Option<i64> {
    let (_, rest) = reference.rsplit_once("Organization/")?;
    rest.split('/').next()?.parse().ok()
}

struct Node<'a> {
    org: Option<&'a Organization>,
    parent: Option<i64>,
}

/// The perimeters the Organizations describe. `current` is the stored tree: existing perimeters
/// keep their `cohort_id` / `cohort_size` (set by the virtual-cohort callbacks, not by FHIR).
/// A `partOf` pointing outside the active Organizations makes a top-level one (an inactive
/// hospital must not take its active services away). Sorted by id, whatever the server's order.
pub fn build_tree(
    organizations: &[Organization],
    current: &[Perimeter],
    perimeter_types: &[String],
) -> Result<Vec<Perimeter>, FhirTreeError> {
    if organizations.is_empty() {
        return Err(FhirTreeError::Empty);
    }
    let mut nodes: BTreeMap<i64, Node> = BTreeMap::new();
    for org in organizations {
        let id = org.id.trim().parse::<i64>().map_err(|_| FhirTreeError::NonNumericId(org.id.clone()))?;
        // A page boundary moving under a paginated search can list one twice: the first wins.
        nodes.entry(id).or_insert(Node { org: Some(org), parent: org.part_of.as_deref().and_then(referenced_id) });
    }
    let known: Vec<i64> = nodes.keys().copied().collect();
    for node in nodes.values_mut() {
        node.parent = node.parent.filter(|p| known.binary_search(p).is_ok());
    }
    let roots: Vec<i64> = nodes.iter().filter(|(_, n)| n.parent.is_none()).map(|(&id, _)| id).collect();
    if roots.len() > 1 {
        if nodes.contains_key(&SYNTHETIC_ROOT_ID) {
            return Err(FhirTreeError::RootClash);
        }
        for id in &roots {
            nodes.get_mut(id).expect("a root is a node").parent = Some(SYNTHETIC_ROOT_ID);
        }
        nodes.insert(SYNTHETIC_ROOT_ID, Node { org: None, parent: None });
    }

    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    for (&id, node) in &nodes {
        if let Some(parent) = node.parent {
            children.entry(parent).or_default().push(id); // ids ascending: BTreeMap order
        }
    }
    let name_of = |node: &Node| match node.org {
        Some(org) => org.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| org.id.trim().to_owned()),
        None => SYNTHETIC_ROOT_NAME.to_owned(),
    };
    let existing: HashMap<i64, &Perimeter> = current.iter().map(|p| (p.id, p)).collect();
    let mut perimeters = Vec::with_capacity(nodes.len());
    for (&id, node) in &nodes {
        // Ancestors, parent first; more steps than nodes means a cycle of partOf links.
        let mut ancestors = Vec::new();
        let mut next = node.parent;
        while let Some(parent) = next {
            if ancestors.len() >= nodes.len() {
                return Err(FhirTreeError::Cycle(id));
            }
            ancestors.push(parent);
            next = nodes[&parent].parent;
        }
        ancestors.reverse();
        let level = ancestors.len() + 1;
        let name = name_of(node);
        let full_path = ancestors
            .iter()
            .map(|a| name_of(&nodes[a]))
            .chain(std::iter::once(name.clone()))
            .collect::<Vec<_>>()
            .join("/");
        let kept = existing.get(&id);
        perimeters.push(Perimeter {
            id,
            short_name: Some(node.org.and_then(|o| o.alias.clone()).unwrap_or_else(|| name.clone())),
            name,
            type_source_value: perimeter_types.get(level - 1).or(perimeter_types.last()).cloned(),
            source_value: node.org.and_then(|o| o.identifier.clone()),
            local_id: Some(id.to_string()),
            cohort_id: kept.and_then(|p| p.cohort_id.clone()),
            parent_id: node.parent,
            level: Some(level as i64),
            above_levels_ids: ancestors,
            inferior_levels_ids: children.remove(&id).unwrap_or_default(),
            full_path: Some(full_path),
            cohort_size: kept.and_then(|p| p.cohort_size.clone()),
            allowed_users: kept.map(|p| p.allowed_users).unwrap_or_default(),
            dates: kept.map(|p| p.dates).unwrap_or_default(),
        });
    }
    Ok(perimeters)
}

/// The perimeters that need a (new) virtual cohort (§6.4): those without `cohort_id` (new ones
/// included), and those whose set of descendants changed, since the cohort's filter lists them.
pub fn virtual_cohorts_needed(before: &PerimeterTree, after: &PerimeterTree) -> Vec<i64> {
    let subtree = |tree: &PerimeterTree, id: i64| {
        let mut ids: Vec<i64> = tree.descendants(id).map(|p| p.id).collect();
        ids.sort_unstable();
        ids
    };
    let mut needed: Vec<i64> = after
        .iter()
        .filter(|p| p.cohort_id().is_none() || !before.contains(p.id) || subtree(before, p.id) != subtree(after, p.id))
        .map(|p| p.id)
        .collect();
    needed.sort_unstable();
    needed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str, name: &str, part_of: Option<&str>) -> Organization {
        Organization {
            id: id.into(),
            name: Some(name.into()),
            part_of: part_of.map(|p| format!("Organization/{p}")),
            ..Default::default()
        }
    }

    fn types() -> Vec<String> {
        ["AP-HP", "hospital", "service"].map(String::from).to_vec()
    }

    fn hospital_group() -> Vec<Organization> {
        vec![
            org("10", "APHP", None),
            org("20", "Bichat", Some("10")),
            org("30", "Cardio", Some("20")),
            org("40", "Cardio Unit", Some("30")),
            org("21", "Necker", Some("10")),
        ]
    }

    #[test]
    fn one_root_gives_levels_types_paths_and_children() {
        let tree = build_tree(&hospital_group(), &[], &types()).unwrap();
        assert_eq!(tree.iter().map(|p| p.id).collect::<Vec<_>>(), [10, 20, 21, 30, 40]);
        let by_id = |id: i64| tree.iter().find(|p| p.id == id).unwrap();
        assert_eq!((by_id(10).level, by_id(10).parent_id), (Some(1), None));
        assert_eq!(by_id(10).inferior_levels_ids, [20, 21]);
        assert_eq!(by_id(40).above_levels_ids, [10, 20, 30]);
        assert_eq!(by_id(40).full_path.as_deref(), Some("APHP/Bichat/Cardio/Cardio Unit"));
        let kinds: Vec<_> = tree.iter().map(|p| p.type_source_value.clone().unwrap()).collect();
        assert_eq!(kinds, ["AP-HP", "hospital", "hospital", "service", "service"], "deeper levels take the last type");
        assert_eq!(by_id(20).local_id.as_deref(), Some("20"));
        assert!(PerimeterTree::new(tree).is_ok());
    }

    #[test]
    fn several_roots_hang_under_the_synthetic_root() {
        let orgs = vec![org("20", "Bichat", None), org("21", "Necker", None), org("30", "Cardio", Some("20"))];
        let tree = build_tree(&orgs, &[], &types()).unwrap();
        let root = &tree[0];
        assert_eq!((root.id, root.name.as_str(), root.level, root.parent_id), (1, "All Hospitals", Some(1), None));
        assert_eq!(root.type_source_value.as_deref(), Some("AP-HP"));
        assert_eq!(root.inferior_levels_ids, [20, 21]);
        let cardio = tree.iter().find(|p| p.id == 30).unwrap();
        assert_eq!(cardio.full_path.as_deref(), Some("All Hospitals/Bichat/Cardio"));
        assert_eq!((cardio.level, cardio.above_levels_ids.clone()), (Some(3), vec![1, 20]));
        let clash = vec![org("1", "One", None), org("2", "Two", None)];
        assert_eq!(build_tree(&clash, &[], &types()), Err(FhirTreeError::RootClash));
        assert!(build_tree(&[org("1", "Only root", None)], &[], &types()).is_ok(), "one root keeps its own id");
    }

    #[test]
    fn existing_cohort_ids_and_counters_are_kept() {
        let mut current = build_tree(&hospital_group(), &[], &types()).unwrap();
        current[1].cohort_id = Some("list-20".into());
        current[1].cohort_size = Some("42".into());
        current[1].allowed_users.on_perimeter = 3;
        let again = build_tree(&hospital_group(), &current, &types()).unwrap();
        assert_eq!(again, current);
        assert!(crate::domain::tree_sync::plan(&current, &again).is_empty(), "the same Organizations change nothing");
    }

    #[test]
    fn the_order_of_the_server_and_duplicates_do_not_matter() {
        let mut shuffled = hospital_group();
        shuffled.reverse();
        shuffled.push(org("20", "Bichat", Some("10")));
        assert_eq!(build_tree(&shuffled, &[], &types()), build_tree(&hospital_group(), &[], &types()));
    }

    #[test]
    fn references_outside_the_active_organizations_make_top_levels() {
        assert_eq!(referenced_id("Organization/12"), Some(12));
        assert_eq!(referenced_id("https://fhir.example/fhir/Organization/12/_history/3"), Some(12));
        assert_eq!(referenced_id("Location/12"), None);
        // 99 is inactive (not listed): Cardio becomes a top-level Organization next to APHP.
        let orgs = vec![org("10", "APHP", None), org("30", "Cardio", Some("99"))];
        let tree = build_tree(&orgs, &[], &types()).unwrap();
        assert_eq!(tree[0].inferior_levels_ids, [10, 30]);
    }

    #[test]
    fn unusable_organization_lists_are_refused() {
        assert_eq!(build_tree(&[], &[], &types()), Err(FhirTreeError::Empty));
        assert_eq!(build_tree(&[org("abc", "X", None)], &[], &types()), Err(FhirTreeError::NonNumericId("abc".into())));
        let cycle = vec![org("10", "Root", None), org("20", "A", Some("30")), org("30", "B", Some("20"))];
        assert_eq!(build_tree(&cycle, &[], &types()), Err(FhirTreeError::Cycle(20)));
        let only_cycle = vec![org("20", "A", Some("30")), org("30", "B", Some("20"))];
        assert!(matches!(build_tree(&only_cycle, &[], &types()), Err(FhirTreeError::Cycle(_))));
    }

    #[test]
    fn missing_names_fall_back_to_the_id_and_alias_identifier_are_read() {
        let orgs = vec![Organization {
            id: "7".into(),
            alias: Some("HEGP".into()),
            identifier: Some("UF-007".into()),
            ..Default::default()
        }];
        let p = &build_tree(&orgs, &[], &[]).unwrap()[0];
        assert_eq!(
            (p.name.as_str(), p.short_name.as_deref(), p.source_value.as_deref()),
            ("7", Some("HEGP"), Some("UF-007"))
        );
        assert_eq!(p.type_source_value, None, "no PERIMETER_TYPES, no type");
    }

    #[test]
    fn virtual_cohorts_are_needed_without_cohort_id_or_when_the_subtree_changed() {
        let mut before = build_tree(&hospital_group(), &[], &types()).unwrap();
        for p in &mut before {
            p.cohort_id = Some(format!("list-{}", p.id));
        }
        let same = build_tree(&hospital_group(), &before, &types()).unwrap();
        let tree = |p: &[Perimeter]| PerimeterTree::new(p.to_vec()).unwrap();
        assert!(virtual_cohorts_needed(&tree(&before), &tree(&same)).is_empty());
        // Cardio Unit moves under Necker; a new service appears under Necker.
        let mut moved = hospital_group();
        moved[3].part_of = Some("Organization/21".into());
        moved.push(org("50", "Neuro", Some("21")));
        let after = build_tree(&moved, &before, &types()).unwrap();
        assert_eq!(virtual_cohorts_needed(&tree(&before), &tree(&after)), [10, 20, 21, 30, 50], "40 kept its cohort");
    }
}
