//! The perimeter tree in memory, compact: ids, parent links and the texts that the rights
//! computations, the perimeter filters and the lite rendering read (name, type, source value, local
//! id, cohort id and size), in one text arena: about 250 bytes per perimeter. The rest of a record
//! (short name, level, dates, allowed-users counters) is read from the store for the rendered page
//! only. `above_levels_ids`, `inferior_levels_ids` and `full_path` follow from the links and the
//! names in nearly every record, so only the records where they do not are stored apart.
//!
//! A tree also has a binary form, the snapshot (`encode` / `decode`): containers load it in one read
//! instead of the whole perimeter partition.
//!
//! Ancestry follows the parent links (exact, unlike the original's substring match on id lists: 12
//! is not a descendant of 1 because "112" contains "1").
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
    #[error("the tree snapshot is unreadable: {0}")]
    Snapshot(&'static str),
}

/// No parent; an absent text.
const NONE: u32 = u32::MAX;

/// A text of the arena (`len == NONE`: absent).
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// The texts kept per perimeter, in this order.
const NAME: usize = 0;
const TYPE: usize = 1;
const SOURCE_VALUE: usize = 2;
const LOCAL_ID: usize = 3;
const COHORT_ID: usize = 4;
const COHORT_SIZE: usize = 5;
const TEXTS: usize = 6;

/// A record's `above_levels_ids` or `inferior_levels_ids`, as derived from the links when it can be.
#[derive(Clone, Debug, PartialEq)]
enum Ids {
    /// Parent first (the original's import files).
    Ancestors,
    /// Root first (the FHIR sync).
    AncestorsRootFirst,
    /// In the tree's order of children.
    Children,
    ChildrenAscending,
    Listed(Box<[i64]>),
}

/// A record's `full_path`: nearly always the names from the root down, joined by `/`.
#[derive(Clone, Debug, PartialEq)]
enum FullPath {
    Names,
    Absent,
    Given(Box<str>),
}

pub struct PerimeterTree {
    ids: Vec<i64>,
    parent: Vec<u32>,
    /// The children of `n` are `child_list[child_start[n]..child_start[n + 1]]`, in input order.
    child_start: Vec<u32>,
    child_list: Vec<u32>,
    /// Depth-first order: the subtree of `n` is `order[enter[n]..exit[n]]`, so "is a descendant"
    /// is two comparisons and "all descendants" a slice.
    order: Vec<u32>,
    enter: Vec<u32>,
    exit: Vec<u32>,
    index: HashMap<i64, u32>,
    text: String,
    texts: Vec<[Span; TEXTS]>,
    above: Vec<Ids>,
    inferior: Vec<Ids>,
    full_path: Vec<FullPath>,
}

/// One perimeter of the tree, as the rights computations, filters and lite views read it. Small
/// (listings collect tens of thousands): its texts are read from the arena when asked for.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub id: i64,
    pub parent_id: Option<i64>,
    tree: &'a PerimeterTree,
    at: u32,
}

impl<'a> Node<'a> {
    pub fn name(&self) -> &'a str {
        self.tree.text(self.at, NAME).unwrap_or_default()
    }

    pub fn type_source_value(&self) -> Option<&'a str> {
        self.tree.text(self.at, TYPE)
    }

    pub fn source_value(&self) -> Option<&'a str> {
        self.tree.text(self.at, SOURCE_VALUE)
    }

    pub fn local_id(&self) -> Option<&'a str> {
        self.tree.text(self.at, LOCAL_ID)
    }

    pub fn cohort_id(&self) -> Option<&'a str> {
        self.tree.text(self.at, COHORT_ID)
    }

    pub fn cohort_size(&self) -> Option<&'a str> {
        self.tree.text(self.at, COHORT_SIZE)
    }
    /// As stored in the record (all ancestors).
    pub fn above_levels_ids(&self) -> Vec<i64> {
        self.tree.listed(&self.tree.above[self.at as usize], self.at)
    }

    /// As stored in the record (direct children).
    pub fn inferior_levels_ids(&self) -> Vec<i64> {
        self.tree.listed(&self.tree.inferior[self.at as usize], self.at)
    }

    pub fn full_path(&self) -> Option<String> {
        match &self.tree.full_path[self.at as usize] {
            FullPath::Names => Some(self.tree.names_path(self.at)),
            FullPath::Absent => None,
            FullPath::Given(path) => Some(path.to_string()),
        }
    }
}

/// The text arena of a tree being built.
#[derive(Default)]
struct Arena {
    text: String,
    texts: Vec<[Span; TEXTS]>,
}

impl Arena {
    fn push(&mut self, values: [Option<&str>; TEXTS]) -> Result<(), TreeError> {
        let mut spans = [ABSENT; TEXTS];
        for (span, value) in spans.iter_mut().zip(values) {
            *span = add_text(&mut self.text, value)?;
        }
        self.texts.push(spans);
        Ok(())
    }
}

const ABSENT: Span = Span { start: 0, len: NONE };

fn add_text(text: &mut String, value: Option<&str>) -> Result<Span, TreeError> {
    let Some(value) = value else { return Ok(ABSENT) };
    let start = u32::try_from(text.len()).ok();
    let len = u32::try_from(value.len()).ok().filter(|&len| len != NONE);
    let (Some(start), Some(len)) = (start, len) else { return Err(TreeError::Snapshot("texts over 4 GiB")) };
    text.push_str(value);
    Ok(Span { start, len })
}

impl PerimeterTree {
    pub fn new(perimeters: Vec<Perimeter>) -> Result<Self, TreeError> {
        let mut index = HashMap::with_capacity(perimeters.len());
        for (i, p) in perimeters.iter().enumerate() {
            if index.insert(p.id, i as u32).is_some() {
                return Err(TreeError::Duplicate(p.id));
            }
        }
        let mut parent = Vec::with_capacity(perimeters.len());
        let mut arena = Arena::default();
        for p in &perimeters {
            parent.push(match p.parent_id {
                Some(parent_id) => {
                    *index.get(&parent_id).ok_or(TreeError::UnknownParent { child: p.id, parent: parent_id })?
                }
                None => NONE,
            });
            arena.push([
                Some(&p.name),
                p.type_source_value.as_deref(),
                p.source_value.as_deref(),
                p.local_id.as_deref(),
                p.cohort_id.as_deref(),
                p.cohort_size.as_deref(),
            ])?;
        }
        let ids = perimeters.iter().map(|p| p.id).collect();
        let mut tree = Self::assemble(ids, parent, index, arena)?;
        for (at, p) in perimeters.iter().enumerate() {
            let at = at as u32;
            let above = [Ids::Ancestors, Ids::AncestorsRootFirst]
                .into_iter()
                .find(|ids| tree.listed(ids, at) == p.above_levels_ids)
                .unwrap_or_else(|| Ids::Listed(p.above_levels_ids.clone().into()));
            let inferior = [Ids::Children, Ids::ChildrenAscending]
                .into_iter()
                .find(|ids| tree.listed(ids, at) == p.inferior_levels_ids)
                .unwrap_or_else(|| Ids::Listed(p.inferior_levels_ids.clone().into()));
            let full_path = match &p.full_path {
                None => FullPath::Absent,
                Some(path) if *path == tree.names_path(at) => FullPath::Names,
                Some(path) => FullPath::Given(path.as_str().into()),
            };
            tree.above.push(above);
            tree.inferior.push(inferior);
            tree.full_path.push(full_path);
        }
        Ok(tree)
    }

    /// Links, order and index over nodes given in input order; the derived fields are left empty.
    fn assemble(ids: Vec<i64>, parent: Vec<u32>, index: HashMap<i64, u32>, arena: Arena) -> Result<Self, TreeError> {
        let n = ids.len();
        let mut child_start = vec![0u32; n + 1];
        for &p in parent.iter().filter(|&&p| p != NONE) {
            child_start[p as usize + 1] += 1;
        }
        for i in 0..n {
            child_start[i + 1] += child_start[i];
        }
        let mut next = child_start.clone();
        let mut child_list = vec![0u32; child_start[n] as usize];
        for (i, &p) in parent.iter().enumerate().filter(|(_, &p)| p != NONE) {
            child_list[next[p as usize] as usize] = i as u32;
            next[p as usize] += 1;
        }
        let (mut order, mut enter, mut exit) = (Vec::with_capacity(n), vec![0u32; n], vec![0u32; n]);
        let mut visited = vec![false; n];
        for root in (0..n).filter(|&i| parent[i] == NONE) {
            // Iterative DFS: (node, position of its next child in `child_list`).
            let mut stack = vec![(root, child_start[root])];
            enter[root] = order.len() as u32;
            order.push(root as u32);
            visited[root] = true;
            while let Some((node, next)) = stack.last_mut() {
                if *next < child_start[*node + 1] {
                    let child = child_list[*next as usize] as usize;
                    *next += 1;
                    enter[child] = order.len() as u32;
                    order.push(child as u32);
                    visited[child] = true;
                    stack.push((child, child_start[child]));
                } else {
                    exit[*node] = order.len() as u32;
                    stack.pop();
                }
            }
        }
        // Nodes never reached from a root sit on a cycle of parent links.
        if let Some(i) = visited.iter().position(|v| !v) {
            return Err(TreeError::Cycle(ids[i]));
        }
        Ok(Self {
            ids,
            parent,
            child_start,
            child_list,
            order,
            enter,
            exit,
            index,
            text: arena.text,
            texts: arena.texts,
            above: Vec::with_capacity(n),
            inferior: Vec::with_capacity(n),
            full_path: Vec::with_capacity(n),
        })
    }

    fn text(&self, at: u32, field: usize) -> Option<&str> {
        let span = self.texts[at as usize][field];
        (span.len != NONE).then(|| &self.text[span.start as usize..(span.start + span.len) as usize])
    }

    fn node(&self, at: u32) -> Node<'_> {
        let parent = self.parent[at as usize];
        Node {
            id: self.ids[at as usize],
            parent_id: (parent != NONE).then(|| self.ids[parent as usize]),
            tree: self,
            at,
        }
    }

    fn parent_chain(&self, at: u32) -> impl Iterator<Item = u32> + '_ {
        let mut current = self.parent[at as usize];
        std::iter::from_fn(move || {
            let node = (current != NONE).then_some(current)?;
            current = self.parent[node as usize];
            Some(node)
        })
    }

    fn children_of(&self, at: u32) -> &[u32] {
        &self.child_list[self.child_start[at as usize] as usize..self.child_start[at as usize + 1] as usize]
    }

    fn listed(&self, ids: &Ids, at: u32) -> Vec<i64> {
        let id = |n: &u32| self.ids[*n as usize];
        match ids {
            Ids::Ancestors => self.parent_chain(at).map(|n| id(&n)).collect(),
            Ids::AncestorsRootFirst => {
                let mut up: Vec<i64> = self.parent_chain(at).map(|n| id(&n)).collect();
                up.reverse();
                up
            }
            Ids::Children => self.children_of(at).iter().map(id).collect(),
            Ids::ChildrenAscending => {
                let mut children: Vec<i64> = self.children_of(at).iter().map(id).collect();
                children.sort_unstable();
                children
            }
            Ids::Listed(ids) => ids.to_vec(),
        }
    }

    /// The names from the root down to `at`, joined by `/` (how imports and the FHIR sync write
    /// `full_path`).
    fn names_path(&self, at: u32) -> String {
        let mut chain: Vec<u32> = self.parent_chain(at).collect();
        chain.reverse();
        chain.push(at);
        let names: Vec<&str> = chain.iter().map(|&n| self.text(n, NAME).unwrap_or_default()).collect();
        names.join("/")
    }

    /// A perimeter's virtual cohort changed (`set_virtual_cohort`); an unknown id changes nothing.
    pub fn set_cohort(&mut self, id: i64, cohort_id: Option<&str>, cohort_size: Option<&str>) -> Result<(), TreeError> {
        let Some(&at) = self.index.get(&id) else { return Ok(()) };
        for (field, value) in [(COHORT_ID, cohort_id), (COHORT_SIZE, cohort_size)] {
            self.texts[at as usize][field] = add_text(&mut self.text, value)?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, id: i64) -> Option<Node<'_>> {
        self.index.get(&id).map(|&at| self.node(at))
    }

    pub fn contains(&self, id: i64) -> bool {
        self.index.contains_key(&id)
    }

    /// All perimeters, in depth-first order (parents before their children).
    pub fn iter(&self) -> impl Iterator<Item = Node<'_>> {
        self.order.iter().map(|&at| self.node(at))
    }

    pub fn roots(&self) -> impl Iterator<Item = Node<'_>> {
        self.order.iter().filter(|&&at| self.parent[at as usize] == NONE).map(|&at| self.node(at))
    }

    pub fn children(&self, id: i64) -> impl Iterator<Item = Node<'_>> {
        let children = self.index.get(&id).map_or(&[][..], |&at| self.children_of(at));
        children.iter().map(|&at| self.node(at))
    }

    /// Ancestors, parent first, root last.
    pub fn ancestors(&self, id: i64) -> impl Iterator<Item = i64> + '_ {
        let chain = self.index.get(&id).map(|&at| self.parent_chain(at));
        chain.into_iter().flatten().map(|at| self.ids[at as usize])
    }

    /// Strict descendant: `id` is below `ancestor`, not equal to it.
    pub fn is_descendant(&self, id: i64, ancestor: i64) -> bool {
        match (self.index.get(&id), self.index.get(&ancestor)) {
            (Some(&n), Some(&a)) => {
                let (n, a) = (n as usize, a as usize);
                n != a && self.enter[a] < self.enter[n] && self.enter[n] < self.exit[a]
            }
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
    pub fn descendants(&self, id: i64) -> impl Iterator<Item = Node<'_>> {
        let range = self.index.get(&id).map_or(0..0, |&at| {
            let at = at as usize;
            self.enter[at] as usize + 1..self.exit[at] as usize
        });
        self.order[range].iter().map(|&at| self.node(at))
    }
}

/// The snapshot: a format tag, then the nodes in input order (so children keep their order),
/// deflated. Per node: id, parent position + 1 (0: a root), the six texts (length + 1, 0: absent)
/// and one byte telling how the derived fields are stored, followed by those given explicitly.
const SNAPSHOT_FORMAT: &[u8] = b"c360-tree-1\n";
/// A decoded snapshot larger than this is refused rather than allocated (a corrupt length).
const SNAPSHOT_MAX_BYTES: usize = 512 << 20;

impl PerimeterTree {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 64);
        put_varint(&mut out, self.len() as u64);
        for at in 0..self.len() as u32 {
            let i = at as usize;
            put_varint(&mut out, zigzag(self.ids[i]));
            put_varint(&mut out, if self.parent[i] == NONE { 0 } else { u64::from(self.parent[i]) + 1 });
            for field in 0..TEXTS {
                match self.text(at, field) {
                    None => put_varint(&mut out, 0),
                    Some(text) => {
                        put_varint(&mut out, text.len() as u64 + 1);
                        out.extend_from_slice(text.as_bytes());
                    }
                }
            }
            let code = |ids: &Ids| match ids {
                Ids::Ancestors | Ids::Children => 0u8,
                Ids::AncestorsRootFirst | Ids::ChildrenAscending => 1,
                Ids::Listed(_) => 2,
            };
            let path_code = match &self.full_path[i] {
                FullPath::Names => 0u8,
                FullPath::Absent => 1,
                FullPath::Given(_) => 2,
            };
            out.push(code(&self.above[i]) | code(&self.inferior[i]) << 2 | path_code << 4);
            for ids in [&self.above[i], &self.inferior[i]] {
                if let Ids::Listed(ids) = ids {
                    put_varint(&mut out, ids.len() as u64);
                    ids.iter().for_each(|&id| put_varint(&mut out, zigzag(id)));
                }
            }
            if let FullPath::Given(path) = &self.full_path[i] {
                put_varint(&mut out, path.len() as u64);
                out.extend_from_slice(path.as_bytes());
            }
        }
        let mut snapshot = SNAPSHOT_FORMAT.to_vec();
        snapshot.extend(miniz_oxide::deflate::compress_to_vec(&out, 6));
        snapshot
    }

    pub fn decode(snapshot: &[u8]) -> Result<Self, TreeError> {
        let deflated = snapshot.strip_prefix(SNAPSHOT_FORMAT).ok_or(TreeError::Snapshot("unknown format"))?;
        let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, SNAPSHOT_MAX_BYTES)
            .map_err(|_| TreeError::Snapshot("not deflated"))?;
        let mut r = Reader(&bytes);
        let n = r.len()?;
        let (mut ids, mut parent, mut index) =
            (Vec::with_capacity(n), Vec::with_capacity(n), HashMap::with_capacity(n));
        let mut arena = Arena::default();
        let mut shapes = Vec::with_capacity(n);
        for at in 0..n as u32 {
            let id = unzigzag(r.varint()?);
            if index.insert(id, at).is_some() {
                return Err(TreeError::Duplicate(id));
            }
            ids.push(id);
            parent.push(match r.varint()? {
                0 => NONE,
                p if p <= n as u64 => (p - 1) as u32,
                _ => return Err(TreeError::Snapshot("a parent out of range")),
            });
            let mut texts = [None; TEXTS];
            for text in &mut texts {
                *text = match r.len()? {
                    0 => None,
                    len => Some(r.text(len - 1)?),
                };
            }
            arena.push(texts)?;
            let code = r.byte()?;
            let mut listed = |code: u8, derived: [Ids; 2]| -> Result<Ids, TreeError> {
                Ok(match code {
                    0 | 1 => derived[code as usize].clone(),
                    2 => Ids::Listed((0..r.len()?).map(|_| r.varint().map(unzigzag)).collect::<Result<_, _>>()?),
                    _ => return Err(TreeError::Snapshot("an unknown id list code")),
                })
            };
            let above = listed(code & 3, [Ids::Ancestors, Ids::AncestorsRootFirst])?;
            let inferior = listed(code >> 2 & 3, [Ids::Children, Ids::ChildrenAscending])?;
            let full_path = match code >> 4 {
                0 => FullPath::Names,
                1 => FullPath::Absent,
                2 => {
                    let len = r.len()?;
                    FullPath::Given(r.text(len)?.into())
                }
                _ => return Err(TreeError::Snapshot("an unknown path code")),
            };
            shapes.push((above, inferior, full_path));
        }
        if !r.0.is_empty() {
            return Err(TreeError::Snapshot("trailing bytes"));
        }
        let mut tree = Self::assemble(ids, parent, index, arena)?;
        for (above, inferior, full_path) in shapes {
            tree.above.push(above);
            tree.inferior.push(inferior);
            tree.full_path.push(full_path);
        }
        Ok(tree)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, TreeError> {
        let (&b, rest) = self.0.split_first().ok_or(TreeError::Snapshot("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, TreeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(TreeError::Snapshot("a varint over 64 bits"))
    }

    /// A count or length, bounded by what is left to read.
    fn len(&mut self) -> Result<usize, TreeError> {
        usize::try_from(self.varint()?)
            .ok()
            .filter(|&len| len <= self.0.len() + 1)
            .ok_or(TreeError::Snapshot("a length past the end"))
    }

    fn text(&mut self, len: usize) -> Result<&'a str, TreeError> {
        if len > self.0.len() {
            return Err(TreeError::Snapshot("truncated"));
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).map_err(|_| TreeError::Snapshot("a text that is not UTF-8"))
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

    type View = (i64, Option<i64>, [Option<String>; TEXTS], Vec<i64>, Vec<i64>, Option<String>);

    /// What a tree says of each perimeter, in its depth-first order.
    fn view(tree: &PerimeterTree) -> Vec<View> {
        tree.iter()
            .map(|n| {
                let texts = [
                    Some(n.name()),
                    n.type_source_value(),
                    n.source_value(),
                    n.local_id(),
                    n.cohort_id(),
                    n.cohort_size(),
                ]
                .map(|t| t.map(str::to_owned));
                (n.id, n.parent_id, texts, n.above_levels_ids(), n.inferior_levels_ids(), n.full_path())
            })
            .collect()
    }

    /// The same, from the records the tree was built from.
    fn records_view(tree: &PerimeterTree, records: &[Perimeter]) -> Vec<View> {
        let by_id: HashMap<i64, &Perimeter> = records.iter().map(|p| (p.id, p)).collect();
        tree.iter()
            .map(|n| {
                let p = by_id[&n.id];
                let texts = [
                    Some(p.name.clone()),
                    p.type_source_value.clone(),
                    p.source_value.clone(),
                    p.local_id.clone(),
                    p.cohort_id.clone(),
                    p.cohort_size.clone(),
                ];
                (
                    p.id,
                    p.parent_id,
                    texts,
                    p.above_levels_ids.clone(),
                    p.inferior_levels_ids.clone(),
                    p.full_path.clone(),
                )
            })
            .collect()
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
    fn nodes_say_what_their_records_say() {
        let csv = include_str!("../../../infra/data/perimeters.demo.csv");
        let records = crate::domain::perimeter::parse_csv(csv).unwrap();
        let tree = PerimeterTree::new(records.clone()).unwrap();
        assert_eq!(view(&tree), records_view(&tree, &records));
        let p13 = tree.get(13).unwrap();
        assert_eq!((p13.name(), p13.full_path().as_deref()), ("P13", Some("APHP/P2/P10/P13")));
        // The demo file lists ancestors parent first and children in file order: nothing is kept apart.
        assert!(tree.above.iter().chain(&tree.inferior).all(|ids| !matches!(ids, Ids::Listed(_))));
        assert!(tree.full_path.iter().all(|p| *p == FullPath::Names));
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

    #[test]
    fn broken_snapshots_are_refused() {
        let snapshot = demo_tree().encode();
        assert_eq!(PerimeterTree::decode(b"c360-tree-0\n").err(), Some(TreeError::Snapshot("unknown format")));
        assert!(PerimeterTree::decode(&snapshot[..snapshot.len() - 3]).is_err());
        let mut garbled = SNAPSHOT_FORMAT.to_vec();
        garbled.extend(miniz_oxide::deflate::compress_to_vec(&[5, 2, 9, 1], 6));
        assert!(PerimeterTree::decode(&garbled).is_err());
    }

    /// Random forests: node i's parent is any earlier node, or none.
    fn forest() -> impl Strategy<Value = Vec<Option<usize>>> {
        (1usize..120).prop_flat_map(|n| {
            (0..n)
                .map(|i| if i == 0 { Just(None).boxed() } else { prop::option::weighted(0.9, 0..i).boxed() })
                .collect::<Vec<_>>()
        })
    }

    /// Random records over a random forest, listed in a random order: texts absent, empty or not
    /// ASCII, derived fields as each source writes them or arbitrary.
    fn records() -> impl Strategy<Value = Vec<Perimeter>> {
        forest()
            .prop_flat_map(|parents| {
                let n = parents.len();
                let text = prop::option::of("[a-zé/ ]{0,6}");
                let field = (text.clone(), text.clone(), text.clone(), text.clone(), text, 0u8..4, 0u8..4, 0u8..3);
                (Just(parents), prop::collection::vec(field, n), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            })
            .prop_map(|(parents, fields, order)| {
                // Ids deliberately share digits (10, 100, 1000...) and go negative.
                let id = |i: usize| (i as i64 + 1) * 10 * if i % 7 == 3 { -1 } else { 1 };
                let ancestors = |i: usize| {
                    let mut up = Vec::new();
                    let mut p = parents[i];
                    while let Some(a) = p {
                        up.push(a);
                        p = parents[a];
                    }
                    up
                };
                let name = |i: usize| format!("P{i}");
                let records: Vec<Perimeter> = order
                    .iter()
                    .map(|&i| {
                        let (t, s, l, c, z, above, inferior, path) = fields[i].clone();
                        let up = ancestors(i);
                        let mut children: Vec<i64> =
                            order.iter().filter(|&&c| parents[c] == Some(i)).map(|&c| id(c)).collect();
                        let mut p = node(id(i), parents[i].map(id));
                        (p.name, p.type_source_value, p.source_value, p.local_id, p.cohort_id, p.cohort_size) =
                            (name(i), t, s, l, c, z);
                        p.above_levels_ids = match above {
                            0 => up.iter().map(|&a| id(a)).collect(),
                            1 => up.iter().rev().map(|&a| id(a)).collect(),
                            2 => vec![id(i), -1],
                            _ => Vec::new(),
                        };
                        p.inferior_levels_ids = match inferior {
                            0 => children,
                            1 => {
                                children.sort();
                                children
                            }
                            2 => vec![7, 7],
                            _ => Vec::new(),
                        };
                        p.full_path = match path {
                            0 => Some(up.iter().rev().map(|&a| name(a)).chain([name(i)]).collect::<Vec<_>>().join("/")),
                            1 => None,
                            _ => Some(format!("elsewhere/{i}")),
                        };
                        p
                    })
                    .collect();
                records
            })
    }

    proptest! {
        #[test]
        fn descendant_agrees_with_a_naive_walk(parents in forest()) {
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

        /// A tree says what its records say, and its snapshot decodes to the same tree: same nodes,
        /// same depth-first order, same children order, same paths.
        #[test]
        fn snapshot_round_trip(records in records()) {
            let tree = PerimeterTree::new(records.clone()).unwrap();
            prop_assert_eq!(view(&tree), records_view(&tree, &records));
            let decoded = PerimeterTree::decode(&tree.encode()).unwrap();
            prop_assert_eq!(view(&decoded), view(&tree));
            for p in &records {
                let children = |t: &PerimeterTree| t.children(p.id).map(|c| c.id).collect::<Vec<_>>();
                prop_assert_eq!(children(&decoded), children(&tree));
                prop_assert_eq!(decoded.path(p.id), tree.path(p.id));
                prop_assert_eq!(decoded.descendants(p.id).count(), tree.descendants(p.id).count());
            }
        }
    }
}
