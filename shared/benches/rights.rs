//! Rights computations over an institution-sized perimeter tree (see docs/benchmarks.md).
//!
//! `cargo bench -p c360 --bench rights`
//!
//! The tree is built in memory with the shape of `shared/data/gen_perimeters.py large`: root AP-HP,
//! 38 hospitals, then 6–14 departments per hospital, 8–16 services per department and 3–8 units per
//! service (≈30k perimeters), drawn from a fixed-seed xorshift so every run measures the same tree.
//! The caller holds 50 valid accesses spread over it. Timings are printed by criterion, never asserted;
//! cheap facts are asserted once so that no benchmark can silently measure empty work.
use std::{collections::HashSet, hint::black_box, time::Duration};

use c360::{
    domain::{
        access_rules::{can_manage, manageable_perimeters, my_data_rights, Grant, PatientDataRights},
        perimeter::Perimeter,
        rights::RightSet,
        tree::PerimeterTree,
    },
    services::seed::demo_roles,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const TYPES: [&str; 5] = ["AP-HP", "hospital", "hospital_depart", "hospital_serv", "unit"];
const LISTED_ACCESSES: usize = 100_000;

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi` (the modulo bias is irrelevant here).
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.between(0, items.len() - 1)]
    }
}

/// The perimeter records, parents before children, and the ids of each level (root first).
fn large_tree(rng: &mut Rng) -> (Vec<Perimeter>, Vec<Vec<i64>>) {
    // (id, parent index in `nodes`, level)
    let mut nodes: Vec<(i64, Option<usize>, usize)> = vec![(1, None, 1)];
    let mut levels: Vec<Vec<usize>> = vec![vec![0]];
    let fanout = [(38, 38), (6, 14), (8, 16), (3, 8)]; // hospitals, departments, services, units
    for (depth, (lo, hi)) in fanout.into_iter().enumerate() {
        let mut next_level = Vec::new();
        for &parent in &levels[depth] {
            for _ in 0..rng.between(lo, hi) {
                next_level.push(nodes.len());
                nodes.push((nodes.len() as i64 + 1, Some(parent), depth + 2));
            }
        }
        levels.push(next_level);
    }
    let mut children: Vec<Vec<i64>> = vec![Vec::new(); nodes.len()];
    for &(id, parent, _) in &nodes {
        if let Some(p) = parent {
            children[p].push(id);
        }
    }
    let name = |i: usize| {
        let (id, _, level) = nodes[i];
        if level == 1 {
            "AP-HP".to_owned()
        } else {
            format!("{} {id}", TYPES[level - 1])
        }
    };
    let perimeters = (0..nodes.len())
        .map(|i| {
            let (id, parent, level) = nodes[i];
            let mut chain = Vec::new(); // ancestors, parent first
            let mut up = parent;
            while let Some(p) = up {
                chain.push(p);
                up = nodes[p].1;
            }
            let own = name(i);
            let path: Vec<String> = chain.iter().rev().map(|&p| name(p)).chain([own.clone()]).collect();
            Perimeter {
                id,
                short_name: Some(own.chars().take(40).collect()),
                type_source_value: Some(TYPES[level - 1].to_owned()),
                source_value: Some(format!("SRC{id}")),
                local_id: Some(format!("Local {own}")),
                cohort_id: Some(id.to_string()),
                parent_id: parent.map(|p| nodes[p].0),
                level: Some(level as i64),
                above_levels_ids: chain.iter().rev().map(|&p| nodes[p].0).collect(),
                inferior_levels_ids: std::mem::take(&mut children[i]),
                full_path: Some(path.join("/")),
                cohort_size: None,
                allowed_users: Default::default(),
                dates: Default::default(),
                name: own,
            }
        })
        .collect();
    let level_ids = levels.iter().map(|level| level.iter().map(|&i| nodes[i].0).collect()).collect();
    (perimeters, level_ids)
}

fn role(id: i64) -> RightSet {
    demo_roles().into_iter().find(|(r, _, _)| *r == id).map(|(_, _, rights)| rights).unwrap()
}

/// 50 valid accesses of one user, on distinct perimeters: (demo role id, count, level).
fn caller(rng: &mut Rng, levels: &[Vec<i64>]) -> Vec<Grant> {
    const MIX: [(i64, usize, usize); 9] = [
        (4, 12, 3), // nominative readers on services
        (5, 8, 3),  // pseudonymised readers on services
        (5, 14, 4), // pseudonymised readers on units
        (6, 4, 2),  // CSV/Excel exports on departments
        (7, 3, 3),  // Jupyter exports on services
        (3, 4, 2),  // data-access managers on departments
        (2, 3, 1),  // admin-access managers on hospitals
        (9, 1, 0),  // user manager on the root
        (10, 1, 0), // datalabs manager on the root
    ];
    let mut used = HashSet::new();
    let mut grants = Vec::new();
    for (role_id, count, level) in MIX {
        let rights = role(role_id);
        for _ in 0..count {
            let perimeter_id = loop {
                let p = rng.pick(&levels[level]);
                if used.insert((role_id, p)) {
                    break p;
                }
            };
            grants.push(Grant { perimeter_id, rights });
        }
    }
    grants
}

fn benches(c: &mut Criterion) {
    let mut rng = Rng(360);
    let (perimeters, levels) = large_tree(&mut rng);
    let tree = PerimeterTree::new(perimeters.clone()).unwrap();
    let grants = caller(&mut rng, &levels);
    let roles: Vec<RightSet> = demo_roles().into_iter().map(|(_, _, rights)| rights).collect();

    // 20 requested perimeters: 10 at or below the caller's reading accesses, 10 units anywhere.
    let readable: Vec<i64> =
        grants.iter().filter(|g| g.rights == role(4) || g.rights == role(5)).map(|g| g.perimeter_id).collect();
    let mut requested: Vec<i64> = (0..10)
        .map(|_| {
            let read = rng.pick(&readable);
            let below: Vec<i64> = tree.children(read).map(|p| p.id).collect();
            if below.is_empty() {
                read
            } else {
                rng.pick(&below)
            }
        })
        .collect();
    requested.extend((0..10).map(|_| rng.pick(&levels[4])));

    // The assignable-roles dialog on a service below the first admin-access manager's hospital.
    let managed_hospital = grants.iter().find(|g| g.rights == role(2)).unwrap().perimeter_id;
    let department = tree.children(managed_hospital).next().unwrap().id;
    let target = tree.children(department).next().unwrap().id;

    // A listing of 100k accesses: (role, perimeter) pairs, any demo role on any perimeter.
    let all_ids: Vec<i64> = tree.iter().map(|p| p.id).collect();
    let listed: Vec<(RightSet, i64)> = (0..LISTED_ACCESSES).map(|_| (rng.pick(&roles), rng.pick(&all_ids))).collect();

    let assignable = |perimeter: i64| roles.iter().filter(|&&r| can_manage(&grants, r, Some(perimeter), &tree)).count();
    let editable = || listed.iter().filter(|&&(r, p)| can_manage(&grants, r, Some(p), &tree)).count();
    let read_rights = |expanded: bool| {
        let rights = PatientDataRights::new(&grants, &tree);
        let targets = rights.targets(expanded, &tree);
        targets.iter().map(|&p| rights.right_on(p, &tree)).collect::<Vec<_>>()
    };

    // Sanity facts, once: each benchmark below does real work.
    let per_level: Vec<usize> = levels.iter().map(Vec::len).collect();
    let (all_rights, some_rights) =
        (my_data_rights(&grants, None, &tree), my_data_rights(&grants, Some(&requested), &tree));
    let manageable = manageable_perimeters(&grants, &tree);
    let (tops, expanded) = (read_rights(false), read_rights(true));
    let (assignable_count, editable_count) = (assignable(target), editable());
    assert!(tree.len() > 25_000, "tree of {} perimeters", tree.len());
    assert_eq!(grants.len(), 50);
    assert_eq!(requested.len(), 20);
    assert!(!all_rights.is_empty() && !some_rights.is_empty() && some_rights.len() <= requested.len());
    assert!(!manageable.is_empty());
    assert!(!tops.is_empty() && expanded.len() > tops.len());
    assert!(expanded.iter().all(|r| r.pseudonymized), "every expanded target is readable");
    assert!(assignable_count > 0 && assignable_count < roles.len());
    assert!(editable_count > 0 && editable_count < listed.len());
    println!(
        "tree: {} perimeters {per_level:?} per level; caller: {} accesses; my_data_rights: {} entries, {} of {} requested; \
         manageable: {}; read targets: {} tops, {} expanded; assignable on {target}: {assignable_count}/{}; \
         editable: {editable_count}/{}",
        tree.len(),
        grants.len(),
        all_rights.len(),
        some_rights.len(),
        requested.len(),
        manageable.len(),
        tops.len(),
        expanded.len(),
        roles.len(),
        listed.len(),
    );

    let mut group = c.benchmark_group("rights");
    group.bench_function("my_data_rights/all", |b| b.iter(|| my_data_rights(black_box(&grants), None, &tree)));
    group.bench_function("my_data_rights/20_requested", |b| {
        b.iter(|| my_data_rights(black_box(&grants), Some(black_box(&requested)), &tree))
    });
    group.bench_function("manageable_perimeters", |b| b.iter(|| manageable_perimeters(black_box(&grants), &tree)));
    group.bench_function("patient_data_rights/tops", |b| b.iter(|| read_rights(black_box(false))));
    group.bench_function("patient_data_rights/expanded", |b| b.iter(|| read_rights(black_box(true))));
    group.bench_function("assignable_roles/10_demo_roles", |b| b.iter(|| assignable(black_box(target))));
    group.finish();

    let mut slow = c.benchmark_group("rights_bulk");
    slow.sample_size(10).measurement_time(Duration::from_secs(10));
    slow.bench_function("editable_flags/100k_accesses", |b| b.iter(|| black_box(editable())));
    slow.bench_function("tree_new/30k_perimeters", |b| {
        b.iter_batched(|| perimeters.clone(), |p| PerimeterTree::new(p).unwrap(), BatchSize::LargeInput)
    });
    // What a container does at its first tree-using request: decode the stored snapshot.
    let snapshot = tree.encode();
    println!("tree snapshot: {} bytes for {} perimeters", snapshot.len(), tree.len());
    slow.bench_function("tree_decode/30k_perimeters", |b| b.iter(|| PerimeterTree::decode(black_box(&snapshot))));
    slow.bench_function("tree_encode/30k_perimeters", |b| b.iter(|| black_box(&tree).encode()));
    slow.finish();
}

criterion_group!(rights, benches);
criterion_main!(rights);
