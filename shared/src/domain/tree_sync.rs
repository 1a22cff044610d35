//! What applying a new tree document changes (spec §10.1 perimeter syncs): pure, so that a second
//! application of the same document is provably a no-op.
use std::collections::HashMap;

use super::perimeter::Perimeter;

#[derive(Debug, Default, PartialEq)]
pub struct SyncPlan {
    /// New perimeters, and existing ones whose record changed.
    pub upserts: Vec<Perimeter>,
    /// Perimeters absent from the document: removed, and their accesses closed.
    pub removed: Vec<i64>,
    /// Perimeters whose parent changed: the accesses of their subtrees are re-indexed.
    pub moved: Vec<i64>,
    /// `(perimeter, old cohort id, new cohort id)`: stored queries referencing the old id are
    /// rewritten by the cohort workspace.
    pub cohort_id_changes: Vec<(i64, Option<String>, Option<String>)>,
}

impl SyncPlan {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removed.is_empty()
    }
}

pub fn plan(current: &[Perimeter], incoming: &[Perimeter]) -> SyncPlan {
    let before: HashMap<i64, &Perimeter> = current.iter().map(|p| (p.id, p)).collect();
    let after: HashMap<i64, &Perimeter> = incoming.iter().map(|p| (p.id, p)).collect();
    let mut plan = SyncPlan::default();
    for p in incoming {
        match before.get(&p.id) {
            None => plan.upserts.push(p.clone()),
            Some(old) if !old.same_record(p) => {
                // The counters are not part of the document: keep the maintained ones.
                plan.upserts.push(Perimeter { allowed_users: old.allowed_users, ..p.clone() });
                if old.parent_id != p.parent_id {
                    plan.moved.push(p.id);
                }
                if old.cohort_id != p.cohort_id {
                    plan.cohort_id_changes.push((p.id, old.cohort_id.clone(), p.cohort_id.clone()));
                }
            }
            Some(_) => {}
        }
    }
    plan.removed = current.iter().filter(|p| !after.contains_key(&p.id)).map(|p| p.id).collect();
    plan.removed.sort_unstable();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::perimeter::parse_csv;

    fn demo() -> Vec<Perimeter> {
        parse_csv(include_str!("../../../infra/data/perimeters.demo.csv")).unwrap()
    }

    #[test]
    fn the_same_document_twice_changes_nothing() {
        let tree = demo();
        let first = plan(&[], &tree);
        assert_eq!(first.upserts.len(), 16);
        assert!(plan(&tree, &tree).is_empty());
    }

    #[test]
    fn removals_moves_and_cohort_changes_are_reported() {
        let before = demo();
        let mut after: Vec<Perimeter> = before.iter().filter(|p| p.id != 14).cloned().collect();
        for p in after.iter_mut() {
            if p.id == 13 {
                p.parent_id = Some(9);
            }
            if p.id == 3 {
                p.cohort_id = Some("new-3".into());
            }
        }
        let plan = plan(&before, &after);
        assert_eq!(plan.removed, [14]);
        assert_eq!(plan.moved, [13]);
        assert_eq!(plan.cohort_id_changes, [(3, Some("3".into()), Some("new-3".into()))]);
        assert_eq!(plan.upserts.iter().map(|p| p.id).collect::<Vec<_>>(), [3, 13]);
    }
}
