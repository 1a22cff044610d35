//! The perimeter tree in memory: built once per container from the perimeter records, then every
//! ancestry question is answered without I/O. Ancestry follows the parent links (exact, unlike the
//! original's substring match on id lists: 12 is not a descendant of 1 because "112" contains "1").
use std::collections::HashMap;

use super::perimeter::Perimeter;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("perimeter {0} appears twice")]
    Duplicate(i64),
    #[error("perimeter {child} names an unknown parent {parent}")]
    UnknownParent { child: i64, parent: i64 },
    #[error("the parent links of perimeter {0} form a cycle")]
    Cycle(i64),
}

pub struct PerimeterTree {
    nodes: Vec<Perimeter>,
    index: HashMap<i64, usize>,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    /// Depth-first order: the subtree of `n` is `order[enter[n]..exit[n]]`, so "is a descendant"
    /// is two comparisons and "all descendants" a slice.
    order: Vec<usize>,
    enter: Vec<usize>,
    exit: Vec<usize>,
}

impl PerimeterTree {
    pub fn new(perimeters: Vec<Perimeter>) -> Result<Self, TreeError> {
        let mut index = HashMap::with_capacity(perimeters.len());
        for (i, p) in perimeters.iter().enumerate() {
            if index.insert(p.id, i).is_some() {
                return Err(TreeError::Duplicate(p.id));
            }
        }
        let mut parent = vec![None; perimeters.len()];
        let mut children = vec![Vec::new(); perimeters.len()];
        for (i, p) in perimeters.iter().enumerate() {
            if let Some(parent_id) = p.parent_id {
                let &pi = index.get(&parent_id).ok_or(TreeError::UnknownParent { child: p.id, parent: parent_id })?;
                parent[i] = Some(pi);
                children[pi].push(i);
            }
        }
        let (mut order, mut enter, mut exit) =
            (Vec::with_capacity(perimeters.len()), vec![0; perimeters.len()], vec![0; perimeters.len()]);
        let mut visited = vec![false; perimeters.len()];
        for root in (0..perimeters.len()).filter(|&i| parent[i].is_none()) {
            // Iterative DFS: (node, next child to visit).
            let mut stack = vec![(root, 0usize)];
            enter[root] = order.len();
            order.push(root);
            visited[root] = true;
            while let Some((node, next)) = stack.last_mut() {
                if let Some(&child) = children[*node].get(*next) {
                    *next += 1;
                    enter[child] = order.len();
                    order.push(child);
                    visited[child] = true;
                    stack.push((child, 0));
                } else {
                    exit[*node] = order.len();
                    stack.pop();
                }
            }
        }
        // Nodes never reached from a root sit on a cycle of parent links.
        if let Some(i) = visited.iter().position(|v| !v) {
            return Err(TreeError::Cycle(perimeters[i].id));
        }
        Ok(Self { nodes: perimeters, index, parent, children, order, enter, exit })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn get(&self, id: i64) -> Option<&Perimeter> {
        self.index.get(&id).map(|&i| &self.nodes[i])
    }

    pub fn contains(&self, id: i64) -> bool {
        self.index.contains_key(&id)
    }

    /// All perimeters, in depth-first order (parents before their children).
    pub fn iter(&self) -> impl Iterator<Item = &Perimeter> {
        self.order.iter().map(|&i| &self.nodes[i])
    }

    pub fn roots(&self) -> impl Iterator<Item = &Perimeter> {
        self.order.iter().filter(|&&i| self.parent[i].is_none()).map(|&i| &self.nodes[i])
    }

    pub fn children(&self, id: i64) -> impl Iterator<Item = &Perimeter> {
        self.index.get(&id).into_iter().flat_map(|&i| self.children[i].iter().map(|&c| &self.nodes[c]))
    }

    /// Ancestors, parent first, root last.
    pub fn ancestors(&self, id: i64) -> impl Iterator<Item = i64> + '_ {
        let mut current = self.index.get(&id).and_then(|&i| self.parent[i]);
        std::iter::from_fn(move || {
            let node = current?;
            current = self.parent[node];
            Some(self.nodes[node].id)
        })
    }

    /// Strict descendant: `id` is below `ancestor`, not equal to it.
    pub fn is_descendant(&self, id: i64, ancestor: i64) -> bool {
        match (self.index.get(&id), self.index.get(&ancestor)) {
            (Some(&n), Some(&a)) => n != a && self.enter[a] < self.enter[n] && self.enter[n] < self.exit[a],
            _ => false,
        }
    }

    /// `id` is `ancestor` or below it.
    pub fn is_within(&self, id: i64, ancestor: i64) -> bool {
        id == ancestor && self.contains(id) || self.is_descendant(id, ancestor)
    }

    /// The ids from the root down to `id`, as `/root/…/id/`: a perimeter's path is a prefix of its
    /// descendants' paths only (the trailing `/` keeps `/2/` from matching `/20/`).
    pub fn path(&self, id: i64) -> String {
        let mut ids: Vec<i64> = self.ancestors(id).collect();
        ids.reverse();
        ids.push(id);
        let mut path = String::from("/");
        for i in ids {
            path.push_str(&i.to_string());
            path.push('/');
        }
        path
    }

    /// Strict descendants, depth first.
    pub fn descendants(&self, id: i64) -> impl Iterator<Item = &Perimeter> {
        let range = self.index.get(&id).map_or(0..0, |&i| self.enter[i] + 1..self.exit[i]);
        self.order[range].iter().map(|&i| &self.nodes[i])
    }
}

#[cfg(test)]
pub mod tests {
    use proptest::prelude::*;

    use super::*;

    pub fn demo_tree() -> PerimeterTree {
        let csv = include_str!("../../../infra/data/perimeters.demo.csv");
        PerimeterTree::new(crate::domain::perimeter::parse_csv(csv).unwrap()).unwrap()
    }

    fn node(id: i64, parent: Option<i64>) -> Perimeter {
        Perimeter {
            id,
            name: format!("P{id}"),
            short_name: None,
            type_source_value: None,
            source_value: None,
            local_id: None,
            cohort_id: None,
            parent_id: parent,
            level: None,
            above_levels_ids: Vec::new(),
            inferior_levels_ids: Vec::new(),
            full_path: None,
            cohort_size: None,
            allowed_users: Default::default(),
            dates: Default::default(),
        }
    }

    #[test]
    fn demo_tree_ancestry() {
        let tree = demo_tree();
        assert_eq!(tree.len(), 16);
        assert_eq!(tree.roots().map(|p| p.id).collect::<Vec<_>>(), [9999]);
        assert_eq!(tree.ancestors(13).collect::<Vec<_>>(), [10, 2, 9999]);
        assert!(tree.is_descendant(13, 2) && !tree.is_descendant(2, 13) && !tree.is_descendant(2, 2));
        assert!(tree.is_within(2, 2));
        let mut below_p0: Vec<i64> = tree.descendants(0).map(|p| p.id).collect();
        below_p0.sort();
        assert_eq!(below_p0, [3, 4, 5, 11, 12]);
        assert_eq!(tree.children(10).map(|p| p.id).collect::<Vec<_>>(), [13, 14]);
        assert_eq!(tree.path(13), "/9999/2/10/13/");
        assert!(!tree.path(13).starts_with(&tree.path(1)));
    }

    #[test]
    fn ids_that_are_substrings_of_others_are_not_ancestors() {
        let tree =
            PerimeterTree::new(vec![node(1, None), node(2, Some(1)), node(12, None), node(112, Some(12))]).unwrap();
        assert!(!tree.is_descendant(112, 1));
        assert!(!tree.is_descendant(12, 1));
        assert!(tree.is_descendant(112, 12));
    }

    #[test]
    fn broken_trees_are_refused() {
        assert_eq!(PerimeterTree::new(vec![node(1, None), node(1, None)]).err(), Some(TreeError::Duplicate(1)));
        assert_eq!(
            PerimeterTree::new(vec![node(2, Some(7))]).err(),
            Some(TreeError::UnknownParent { child: 2, parent: 7 })
        );
        assert!(matches!(PerimeterTree::new(vec![node(1, Some(2)), node(2, Some(1))]), Err(TreeError::Cycle(_))));
    }

    /// Random forests: node i's parent is any earlier node, or none.
    fn forest() -> impl Strategy<Value = Vec<Option<usize>>> {
        (1usize..120).prop_flat_map(|n| {
            (0..n)
                .map(|i| if i == 0 { Just(None).boxed() } else { prop::option::weighted(0.9, 0..i).boxed() })
                .collect::<Vec<_>>()
        })
    }

    proptest! {
        #[test]
        fn descendant_agrees_with_a_naive_walk(parents in forest()) {
            // Ids deliberately share digits (10, 100, 1000...) to catch substring matching.
            let id = |i: usize| (i as i64 + 1) * 10;
            let nodes: Vec<Perimeter> = parents.iter().enumerate().map(|(i, p)| node(id(i), p.map(id))).collect();
            let tree = PerimeterTree::new(nodes).unwrap();
            for a in 0..parents.len() {
                for b in 0..parents.len() {
                    let mut walk = parents[b];
                    let mut naive = false;
                    while let Some(p) = walk {
                        if p == a { naive = true; break; }
                        walk = parents[p];
                    }
                    prop_assert_eq!(tree.is_descendant(id(b), id(a)), naive);
                }
                let count = tree.descendants(id(a)).count();
                prop_assert_eq!(count, (0..parents.len()).filter(|&b| tree.is_descendant(id(b), id(a))).count());
            }
        }
    }
}
