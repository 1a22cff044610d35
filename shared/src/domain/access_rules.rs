//! The rights computations of spec §4.4–§4.10, in memory over the perimeter tree: who may manage
//! which access, the top manageable perimeters, patient-data reading rights, "my data rights", role
//! consistency and the date rules of accesses. Inputs are the caller's *valid* accesses with their
//! roles' rights already resolved; nothing here does I/O.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{
    perimeter::AllowedUsers,
    rights::{Right, RightSet},
    time::DateTime,
    tree::PerimeterTree,
};

/// One valid access of the caller: where, and which rights its role grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub perimeter_id: i64,
    pub rights: RightSet,
}

const SAME_LEVEL: [Right; 2] = [Right::MANAGE_ADMIN_ACCESSES_SAME_LEVEL, Right::MANAGE_DATA_ACCESSES_SAME_LEVEL];
const INFERIOR_LEVELS: [Right; 2] =
    [Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS, Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS];
const READ: [Right; 2] = [Right::READ_PATIENT_NOMINATIVE, Right::READ_PATIENT_PSEUDONYMIZED];

/// Rights only a full admin may grant (spec §4.3, first row).
const NEEDS_FULL_ADMIN: [Right; 4] = [
    Right::FULL_ADMIN,
    Right::SEARCH_PATIENTS_UNLIMITED,
    Right::MANAGE_ADMIN_ACCESSES_SAME_LEVEL,
    Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS,
];
/// Rights whose grant needs admin-access management (second row).
const NEEDS_ADMIN_MANAGEMENT: [Right; 5] = [
    Right::MANAGE_USERS,
    Right::MANAGE_DATA_ACCESSES_SAME_LEVEL,
    Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS,
    Right::MANAGE_DATALABS,
    Right::READ_DATALABS,
];
/// Rights whose grant needs data-access management (third row).
const NEEDS_DATA_MANAGEMENT: [Right; 7] = [
    Right::READ_PATIENT_NOMINATIVE,
    Right::READ_PATIENT_PSEUDONYMIZED,
    Right::SEARCH_PATIENTS_BY_IPP,
    Right::SEARCH_OPPOSED_PATIENTS,
    Right::EXPORT_CSV_XLSX_NOMINATIVE,
    Right::EXPORT_JUPYTER_NOMINATIVE,
    Right::EXPORT_JUPYTER_PSEUDONYMIZED,
];

fn is_full_admin(grants: &[Grant]) -> bool {
    grants.iter().any(|g| g.rights.has(Right::FULL_ADMIN))
}

/// Holds an access-management role: full admin or one of the four manage-accesses rights.
pub fn is_access_manager(grants: &[Grant]) -> bool {
    grants
        .iter()
        .any(|g| g.rights.any(&[Right::FULL_ADMIN]) || g.rights.any(&SAME_LEVEL) || g.rights.any(&INFERIOR_LEVELS))
}

/// §4.5: may the caller manage an access granting `role` on `perimeter`?
pub fn can_manage(grants: &[Grant], role: RightSet, perimeter: Option<i64>, tree: &PerimeterTree) -> bool {
    if is_full_admin(grants) {
        return true;
    }
    let Some(target) = perimeter else { return false };
    if role.any(&NEEDS_FULL_ADMIN) {
        return false;
    }
    let (mut can_admin, mut can_data) = (false, false);
    for grant in grants {
        let (admin, data) = if grant.perimeter_id == target && grant.rights.any(&SAME_LEVEL) {
            (
                grant.rights.has(Right::MANAGE_ADMIN_ACCESSES_SAME_LEVEL),
                grant.rights.has(Right::MANAGE_DATA_ACCESSES_SAME_LEVEL),
            )
        // The cheap right test first: the tree look-up only for grants that reach below.
        } else if grant.rights.any(&INFERIOR_LEVELS) && tree.is_descendant(target, grant.perimeter_id) {
            (
                grant.rights.has(Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS),
                grant.rights.has(Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS),
            )
        } else {
            (false, false)
        };
        can_admin |= admin;
        // Managing administrators implies managing data readers.
        can_data |= data || can_admin;
    }
    (can_admin || !role.any(&NEEDS_ADMIN_MANAGEMENT)) && (can_data || !role.any(&NEEDS_DATA_MANAGEMENT))
}

/// Who may change whom (docs/architecture.md): the caller may change a user's identity or
/// credentials only if it could grant every right that user holds or will hold, i.e. §4.5 holds
/// for each of the target's accesses that has not ended (`(role rights, perimeter)`). Full admins
/// may change anyone; a user holding no right may be changed by any user manager.
pub fn may_modify_user(grants: &[Grant], target: &[(RightSet, Option<i64>)], tree: &PerimeterTree) -> bool {
    is_full_admin(grants) || target.iter().all(|(rights, perimeter)| can_manage(grants, *rights, *perimeter, tree))
}

/// §4.7: the highest perimeters where the caller may manage accesses. A caller without any valid
/// access gets none (the original answers the root: a quirk no client relies on).
pub fn manageable_perimeters(grants: &[Grant], tree: &PerimeterTree) -> Vec<i64> {
    if grants.is_empty() {
        return Vec::new();
    }
    let global = [Right::FULL_ADMIN, Right::MANAGE_USERS, Right::MANAGE_DATALABS];
    let only_global =
        grants.iter().all(|g| g.rights.any(&global) && !g.rights.any(&SAME_LEVEL) && !g.rights.any(&INFERIOR_LEVELS));
    if is_full_admin(grants) || only_global {
        return tree.roots().map(|p| p.id).collect();
    }
    let same: BTreeSet<i64> = grants.iter().filter(|g| g.rights.any(&SAME_LEVEL)).map(|g| g.perimeter_id).collect();
    let inferior: BTreeSet<i64> =
        grants.iter().filter(|g| g.rights.any(&INFERIOR_LEVELS)).map(|g| g.perimeter_id).collect();
    let all: BTreeSet<i64> = same.union(&inferior).copied().collect();
    let under_another = |p: i64| tree.ancestors(p).any(|a| all.contains(&a));
    let top_same: BTreeSet<i64> = same.iter().copied().filter(|&p| !under_another(p)).collect();
    let mut result: Vec<i64> = top_same.iter().copied().collect();
    for &p in inferior.iter().filter(|&&p| !top_same.contains(&p) && !under_another(p)) {
        result.extend(tree.children(p).map(|c| c.id));
    }
    result.sort_unstable();
    result.dedup();
    result
}

/// §4.8: what the caller may read on each perimeter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRight {
    pub perimeter_id: i64,
    pub nominative: bool,
    pub pseudonymized: bool,
}

pub struct PatientDataRights {
    pub search_by_ipp: bool,
    pub search_opposed: bool,
    top_nominative: BTreeSet<i64>,
    top_pseudo: BTreeSet<i64>,
    nominative: BTreeSet<i64>,
    pseudo_or_nominative: BTreeSet<i64>,
}

impl PatientDataRights {
    pub fn new(grants: &[Grant], tree: &PerimeterTree) -> Self {
        let nominative: BTreeSet<i64> =
            grants.iter().filter(|g| g.rights.has(Right::READ_PATIENT_NOMINATIVE)).map(|g| g.perimeter_id).collect();
        let pseudo_or_nominative: BTreeSet<i64> =
            grants.iter().filter(|g| g.rights.any(&READ)).map(|g| g.perimeter_id).collect();
        let top_nominative: BTreeSet<i64> =
            nominative.iter().copied().filter(|&p| !tree.ancestors(p).any(|a| nominative.contains(&a))).collect();
        let top_pseudo = pseudo_or_nominative
            .iter()
            .copied()
            .filter(|&p| {
                let ancestors: Vec<i64> = tree.ancestors(p).collect();
                // As the original: a perimeter with ancestors is dropped when an ancestor reads it already
                // or when it is itself a top nominative perimeter.
                ancestors.is_empty()
                    || !(ancestors.iter().any(|a| pseudo_or_nominative.contains(a) || top_nominative.contains(a))
                        || top_nominative.contains(&p))
            })
            .collect();
        Self {
            search_by_ipp: grants.iter().any(|g| g.rights.has(Right::SEARCH_PATIENTS_BY_IPP)),
            search_opposed: grants.iter().any(|g| g.rights.has(Right::SEARCH_OPPOSED_PATIENTS)),
            top_nominative,
            top_pseudo,
            nominative,
            pseudo_or_nominative,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.top_nominative.is_empty() && self.top_pseudo.is_empty()
    }

    /// The perimeters to report: the tops, or (when the request has any parameter) every readable
    /// perimeter and its descendants.
    pub fn targets(&self, expanded: bool, tree: &PerimeterTree) -> BTreeSet<i64> {
        if !expanded {
            return self.top_nominative.union(&self.top_pseudo).copied().collect();
        }
        let mut targets = BTreeSet::new();
        for &p in self.nominative.union(&self.pseudo_or_nominative) {
            targets.insert(p);
            targets.extend(tree.descendants(p).map(|d| d.id));
        }
        targets
    }

    pub fn right_on(&self, perimeter: i64, tree: &PerimeterTree) -> ReadRight {
        let covered =
            |tops: &BTreeSet<i64>| tops.contains(&perimeter) || tree.ancestors(perimeter).any(|a| tops.contains(&a));
        let nominative = covered(&self.top_nominative);
        ReadRight { perimeter_id: perimeter, nominative, pseudonymized: nominative || covered(&self.top_pseudo) }
    }
}

/// §4.10: one entry of "my data rights".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataRight {
    pub perimeter_id: i64,
    pub read_nominative: bool,
    pub read_pseudonymized: bool,
    pub search_by_ipp: bool,
    pub search_opposed: bool,
    pub export_csv_xlsx_nominative: bool,
    pub export_jupyter_nominative: bool,
    pub export_jupyter_pseudonymized: bool,
}

impl DataRight {
    fn from_rights(perimeter_id: i64, r: RightSet) -> Self {
        Self {
            perimeter_id,
            read_nominative: r.has(Right::READ_PATIENT_NOMINATIVE),
            read_pseudonymized: r.has(Right::READ_PATIENT_PSEUDONYMIZED),
            search_by_ipp: r.has(Right::SEARCH_PATIENTS_BY_IPP),
            search_opposed: r.has(Right::SEARCH_OPPOSED_PATIENTS),
            export_csv_xlsx_nominative: r.has(Right::EXPORT_CSV_XLSX_NOMINATIVE),
            export_jupyter_nominative: r.has(Right::EXPORT_JUPYTER_NOMINATIVE),
            export_jupyter_pseudonymized: r.has(Right::EXPORT_JUPYTER_PSEUDONYMIZED),
        }
    }
}

/// §4.10: merged data rights per perimeter, reading rights flowing down the tree, global flags
/// broadcast to every entry; restricted to `requested` when given. Sorted by perimeter id.
pub fn my_data_rights(grants: &[Grant], requested: Option<&[i64]>, tree: &PerimeterTree) -> Vec<DataRight> {
    let data_rights: Vec<&Grant> = grants.iter().filter(|g| g.rights.any(&NEEDS_DATA_MANAGEMENT)).collect();
    let mut by_perimeter: BTreeMap<i64, DataRight> = BTreeMap::new();
    for grant in data_rights.iter().filter(|g| g.rights.any(&READ)) {
        let entry = DataRight::from_rights(grant.perimeter_id, grant.rights);
        by_perimeter
            .entry(grant.perimeter_id)
            .and_modify(|kept| {
                kept.read_nominative |= entry.read_nominative;
                kept.read_pseudonymized |= entry.read_pseudonymized;
            })
            .or_insert(entry);
    }
    for &p in requested.unwrap_or(&[]).iter().filter(|&&p| tree.contains(p)) {
        by_perimeter.entry(p).or_insert_with(|| DataRight { perimeter_id: p, ..Default::default() });
    }
    let reads: BTreeMap<i64, (bool, bool)> =
        by_perimeter.iter().map(|(&p, r)| (p, (r.read_nominative, r.read_pseudonymized))).collect();
    for (&p, right) in by_perimeter.iter_mut() {
        for ancestor in tree.ancestors(p) {
            if let Some(&(nominative, pseudo)) = reads.get(&ancestor) {
                right.read_nominative |= nominative;
                right.read_pseudonymized |= pseudo;
            }
        }
    }
    let global = [
        Right::SEARCH_PATIENTS_BY_IPP,
        Right::SEARCH_OPPOSED_PATIENTS,
        Right::EXPORT_CSV_XLSX_NOMINATIVE,
        Right::EXPORT_JUPYTER_NOMINATIVE,
        Right::EXPORT_JUPYTER_PSEUDONYMIZED,
    ];
    let broadcast =
        data_rights.iter().filter(|g| g.rights.any(&global)).fold(RightSet::default(), |acc, g| acc.union(g.rights));
    let flags = DataRight::from_rights(0, broadcast);
    let wanted: Option<HashSet<i64>> = requested.map(|r| r.iter().copied().collect());
    by_perimeter
        .into_values()
        .filter(|r| wanted.as_ref().is_none_or(|w| w.contains(&r.perimeter_id)))
        .filter(|r| r.read_nominative || r.read_pseudonymized)
        .map(|mut r| {
            r.search_by_ipp |= flags.search_by_ipp;
            r.search_opposed |= flags.search_opposed;
            r.export_csv_xlsx_nominative |= flags.export_csv_xlsx_nominative;
            r.export_jupyter_nominative |= flags.export_jupyter_nominative;
            r.export_jupyter_pseudonymized |= flags.export_jupyter_pseudonymized;
            r
        })
        .collect()
}

/// §4.11: what a user may do with a cohort built on some perimeters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CohortRights {
    pub read_patient_nomi: bool,
    pub read_patient_pseudo: bool,
    pub export_csv_xlsx_nomi: bool,
    pub export_jupyter_nomi: bool,
    pub export_jupyter_pseudo: bool,
}

/// §4.11: each right holds when, on every perimeter of the cohort, a valid access on it or on an
/// ancestor grants it (a cohort without perimeters gets every right).
pub fn cohort_rights(grants: &[Grant], perimeters: &[i64], tree: &PerimeterTree) -> CohortRights {
    let everywhere = |rights: &[Right]| {
        perimeters.iter().all(|&p| grants.iter().any(|g| g.rights.any(rights) && tree.is_within(p, g.perimeter_id)))
    };
    CohortRights {
        read_patient_nomi: everywhere(&[Right::READ_PATIENT_NOMINATIVE]),
        read_patient_pseudo: everywhere(&[Right::READ_PATIENT_NOMINATIVE, Right::READ_PATIENT_PSEUDONYMIZED]),
        export_csv_xlsx_nomi: everywhere(&[Right::EXPORT_CSV_XLSX_NOMINATIVE]),
        export_jupyter_nomi: everywhere(&[Right::EXPORT_JUPYTER_NOMINATIVE]),
        export_jupyter_pseudo: everywhere(&[Right::EXPORT_JUPYTER_NOMINATIVE, Right::EXPORT_JUPYTER_PSEUDONYMIZED]),
    }
}

/// The allowed-users counters of every perimeter (spec §10.1), from the valid accesses of active
/// profiles given as `(username, perimeter, rights of the role)`.
pub fn count_allowed_users<'a>(
    tree: &PerimeterTree,
    holders: impl IntoIterator<Item = (&'a str, i64, RightSet)>,
) -> HashMap<i64, AllowedUsers> {
    let impact = [
        Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS,
        Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS,
        Right::READ_PATIENT_NOMINATIVE,
        Right::READ_PATIENT_PSEUDONYMIZED,
    ];
    let mut on: HashMap<i64, HashSet<&str>> = HashMap::new();
    let mut reaching_down: HashMap<i64, HashSet<&str>> = HashMap::new();
    for (user, perimeter, rights) in holders {
        on.entry(perimeter).or_default().insert(user);
        if rights.any(&impact) {
            reaching_down.entry(perimeter).or_default().insert(user);
        }
    }
    let order: Vec<_> = tree.iter().collect(); // parents before children
    let mut from_above: HashMap<i64, HashSet<&str>> = HashMap::new();
    for p in &order {
        let mut set = HashSet::new();
        if let Some(parent) = p.parent_id {
            set.extend(from_above.get(&parent).into_iter().flatten().copied());
            set.extend(reaching_down.get(&parent).into_iter().flatten().copied());
        }
        from_above.insert(p.id, set);
    }
    let mut below: HashMap<i64, HashSet<&str>> = HashMap::new();
    for p in order.iter().rev() {
        let mut set = HashSet::new();
        for child in tree.children(p.id) {
            set.extend(on.get(&child.id).into_iter().flatten().copied());
            set.extend(below.get(&child.id).into_iter().flatten().copied());
        }
        below.insert(p.id, set);
    }
    order
        .iter()
        .map(|p| {
            let count = |m: &HashMap<i64, HashSet<&str>>| m.get(&p.id).map_or(0, |s| s.len() as i64);
            (
                p.id,
                AllowedUsers {
                    on_perimeter: count(&on),
                    inferior_levels: count(&below),
                    above_levels: count(&from_above),
                },
            )
        })
        .collect()
}

/// §4.4: the first broken consistency rule of a role, with the original's message.
pub fn role_inconsistency(rights: RightSet) -> Option<&'static str> {
    let has = |r: Right| rights.has(r);
    if has(Right::FULL_ADMIN) && rights != RightSet::ALL {
        return Some("Cannot create a Full Admin role with falsy rights");
    }
    if !has(Right::READ_PATIENT_NOMINATIVE)
        && has(Right::READ_PATIENT_PSEUDONYMIZED)
        && (has(Right::EXPORT_CSV_XLSX_NOMINATIVE) || has(Right::EXPORT_JUPYTER_NOMINATIVE))
    {
        return Some("Cannot create a role allowing to read patient data in pseudo and export nominative data");
    }
    if has(Right::SEARCH_PATIENTS_BY_IPP) && !has(Right::READ_PATIENT_NOMINATIVE) {
        return Some("Cannot create a role allowing to search by IPP but not read patient data in nominative mode");
    }
    if (rights.any(&SAME_LEVEL) || rights.any(&INFERIOR_LEVELS)) && !has(Right::MANAGE_USERS) {
        return Some("Cannot create a role allowing to manage accesses but not users");
    }
    None
}

/// §4.14 date rules. Past means more than 10 s ago (clients send "now" with some delay).
pub mod dates {
    use time::Duration;

    use super::DateTime;

    const TOLERANCE: Duration = Duration::seconds(10);
    pub const START_IN_PAST: &str = "La date de début ne peut pas être dans le passé";
    pub const END_IN_PAST: &str = "La date de fin ne peut pas être dans le passé";
    pub const END_BEFORE_START: &str = "La date de fin ne peut pas précéder la date de début";
    pub const NO_DATA: &str = "No data was provided to update access";
    pub const ONLY_DATES: &str = "Only `start_datetime` and `end_datetime` can be updated";
    pub const MISSING_DATES: &str = "Missing dates to updating access";
    pub const START_ALREADY_PAST: &str = "La date de début ne peut pas être modifiée car elle est passée";
    pub const END_ALREADY_PAST: &str = "La date de fin ne peut pas être modifiée car elle est passée";
    pub const CLOSE_MISSING_DATES: &str = "Dates d'accès manquantes";
    pub const ALREADY_CLOSED: &str = "L'accès est déjà clôturé";
    pub const NOT_STARTED: &str = "L'accès ne peut pas être clôturé car n'a pas encore commencé";
    pub const ALREADY_STARTED: &str = "L'accès est déjà activé, il ne peut plus être supprimé.";

    fn in_past(dt: DateTime, now: DateTime) -> bool {
        dt < now - TOLERANCE
    }

    /// The dates of a new access: start defaults to now, end to start + `default_days`.
    pub fn new_access(
        start: Option<DateTime>,
        end: Option<DateTime>,
        default_days: i64,
        now: DateTime,
    ) -> Result<(DateTime, DateTime), &'static str> {
        let start = start.unwrap_or(now);
        let end = end.unwrap_or(start + Duration::days(default_days));
        if in_past(start, now) {
            return Err(START_IN_PAST);
        }
        if in_past(end, now) {
            return Err(END_IN_PAST);
        }
        if end < start {
            return Err(END_BEFORE_START);
        }
        Ok((start, end))
    }

    /// A PATCH of dates on an access currently running from `start` to `end`.
    pub fn changed(
        current: (Option<DateTime>, Option<DateTime>),
        new_start: Option<DateTime>,
        new_end: Option<DateTime>,
        now: DateTime,
    ) -> Result<(Option<DateTime>, Option<DateTime>), &'static str> {
        if let Some(start) = new_start {
            if current.0.is_some_and(|s| s < now) && Some(start) != current.0 {
                return Err(START_ALREADY_PAST);
            }
            if in_past(start, now) {
                return Err(START_IN_PAST);
            }
        }
        if let Some(end) = new_end {
            if current.1.is_some_and(|e| e < now) && Some(end) != current.1 {
                return Err(END_ALREADY_PAST);
            }
            if in_past(end, now) {
                return Err(END_IN_PAST);
            }
        }
        if let (Some(start), Some(end)) = (new_start, new_end) {
            if end < start {
                return Err(END_BEFORE_START);
            }
        }
        Ok((new_start.or(current.0), new_end.or(current.1)))
    }

    /// Closing ends the access now; only a running access can be closed.
    pub fn close(start: Option<DateTime>, end: Option<DateTime>, now: DateTime) -> Result<DateTime, &'static str> {
        let (Some(start), Some(end)) = (start, end) else { return Err(CLOSE_MISSING_DATES) };
        if end < now {
            return Err(ALREADY_CLOSED);
        }
        if start > now {
            return Err(NOT_STARTED);
        }
        Ok(now)
    }

    /// Only an access that has not started yet may be deleted.
    pub fn deletable(start: Option<DateTime>, now: DateTime) -> Result<(), &'static str> {
        if start.is_some_and(|s| s < now) {
            Err(ALREADY_STARTED)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use ::time::Duration;

    use super::*;
    use crate::domain::{time, tree::tests::demo_tree};

    fn set(rights: &[Right]) -> RightSet {
        RightSet::of(rights)
    }

    fn full_admin() -> RightSet {
        RightSet::ALL
    }
    fn admin_manager() -> RightSet {
        set(&[
            Right::MANAGE_ADMIN_ACCESSES_SAME_LEVEL,
            Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS,
            Right::MANAGE_USERS,
        ])
    }
    fn admin_manager_same_level() -> RightSet {
        set(&[Right::MANAGE_ADMIN_ACCESSES_SAME_LEVEL, Right::MANAGE_USERS])
    }
    fn data_manager() -> RightSet {
        set(&[Right::MANAGE_DATA_ACCESSES_SAME_LEVEL, Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS, Right::MANAGE_USERS])
    }
    fn data_manager_inferior() -> RightSet {
        set(&[Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS, Right::MANAGE_USERS])
    }
    fn nominative_reader() -> RightSet {
        set(&[Right::READ_PATIENT_NOMINATIVE, Right::SEARCH_PATIENTS_BY_IPP])
    }
    fn pseudo_reader() -> RightSet {
        set(&[Right::READ_PATIENT_PSEUDONYMIZED])
    }

    fn on(perimeter_id: i64, rights: RightSet) -> Grant {
        Grant { perimeter_id, rights }
    }

    #[test]
    fn a_user_manager_may_only_change_users_whose_rights_it_could_grant() {
        let tree = demo_tree();
        let user_manager = [on(9999, set(&[Right::MANAGE_USERS]))];
        // The reproduction of the security issue: a user manager and a full admin.
        assert!(!may_modify_user(&user_manager, &[(full_admin(), Some(9999))], &tree));
        assert!(may_modify_user(&user_manager, &[], &tree), "a user without rights");
        assert!(!may_modify_user(&user_manager, &[(pseudo_reader(), Some(10))], &tree));
        // A data manager of 2 (inferior levels) may change a reader below 2, not one on 0 nor a manager.
        let data = [on(2, data_manager_inferior())];
        assert!(may_modify_user(&data, &[(nominative_reader(), Some(13)), (pseudo_reader(), Some(10))], &tree));
        assert!(!may_modify_user(&data, &[(nominative_reader(), Some(13)), (pseudo_reader(), Some(3))], &tree));
        assert!(!may_modify_user(&data, &[(data_manager(), Some(13))], &tree));
        assert!(!may_modify_user(&data, &[(pseudo_reader(), None)], &tree), "an access without perimeter");
        // An admin manager grants data managers, never admin managers nor full admins.
        let admin = [on(9999, admin_manager())];
        assert!(may_modify_user(&admin, &[(data_manager(), Some(10))], &tree));
        assert!(!may_modify_user(&admin, &[(admin_manager_same_level(), Some(10))], &tree));
        assert!(may_modify_user(&[on(3, full_admin())], &[(full_admin(), Some(9999))], &tree));
    }

    /// §4.11 on the demo tree (9999 → 2 → 10 → 13, 14; 9999 → 0 → 3): a right must hold on every perimeter.
    #[test]
    fn cohort_rights_hold_only_when_every_perimeter_grants_them() {
        let tree = demo_tree();
        let exporter = set(&[Right::READ_PATIENT_NOMINATIVE, Right::EXPORT_CSV_XLSX_NOMINATIVE]);
        let grants = [on(10, exporter), on(0, pseudo_reader())];
        let table: [(&[i64], [bool; 5]); 4] = [
            (&[13, 14], [true, true, true, false, false]),
            (&[13, 3], [false, true, false, false, false]),
            (&[2], [false, false, false, false, false]),
            (&[], [true, true, true, true, true]),
        ];
        for (perimeters, expected) in table {
            let r = cohort_rights(&grants, perimeters, &tree);
            let got = [
                r.read_patient_nomi,
                r.read_patient_pseudo,
                r.export_csv_xlsx_nomi,
                r.export_jupyter_nomi,
                r.export_jupyter_pseudo,
            ];
            assert_eq!(got, expected, "perimeters {perimeters:?}");
        }
    }

    /// The worked example of spec §4.3: Y's accesses, and who may manage each of them.
    #[test]
    fn permission_matrix_of_the_rights_schema_example() {
        let tree = demo_tree();
        let y_accesses = [(1, nominative_reader()), (4, admin_manager()), (10, data_manager())];
        let table: [(&str, RightSet, [bool; 3]); 4] = [
            ("full admin on the root", full_admin(), [true, true, true]),
            ("admin-accesses manager on the root", admin_manager(), [true, false, true]),
            ("data-accesses manager on the root", data_manager(), [true, false, false]),
            ("nominative reader on the root", nominative_reader(), [false, false, false]),
        ];
        for (caller, rights, expected) in table {
            let grants = [on(9999, rights)];
            let got = y_accesses.map(|(perimeter, role)| can_manage(&grants, role, Some(perimeter), &tree));
            assert_eq!(got, expected, "{caller}");
        }
        assert!(!is_access_manager(&[on(9999, nominative_reader())]));
        assert!(is_access_manager(&[on(4, data_manager_inferior())]));
        assert!(
            !can_manage(&[on(9999, admin_manager())], pseudo_reader(), None, &tree),
            "no perimeter: not manageable"
        );
    }

    #[test]
    fn assignable_roles_follow_the_management_dependencies() {
        let tree = demo_tree();
        let roles = crate::services::seed::demo_roles();
        let assignable = |grants: &[Grant], perimeter: i64| -> Vec<&str> {
            roles
                .iter()
                .filter(|(_, _, r)| can_manage(grants, *r, Some(perimeter), &tree))
                .map(|(_, n, _)| *n)
                .collect()
        };
        assert_eq!(assignable(&[on(9999, full_admin())], 13).len(), roles.len());
        let manager_set = vec![
            "Gestionnaire des accès aux données",
            "Lecteur de données nominatives",
            "Lecteur de données pseudonymisées",
            "Exports CSV/Excel",
            "Exports Jupyter",
            "Gestionnaire des utilisateurs",
            "Gestionnaire des datalabs",
        ];
        assert_eq!(assignable(&[on(9999, admin_manager())], 0), manager_set);
        assert_eq!(assignable(&[on(9999, admin_manager_same_level())], 0), Vec::<&str>::new());
        assert_eq!(assignable(&[on(0, admin_manager())], 0), manager_set);
        assert_eq!(assignable(&[on(4, admin_manager())], 0), Vec::<&str>::new());
        // A data manager assigns data roles only, and not on its own level when it has inferior levels only.
        assert_eq!(
            assignable(&[on(2, data_manager_inferior())], 10),
            [
                "Lecteur de données nominatives",
                "Lecteur de données pseudonymisées",
                "Exports CSV/Excel",
                "Exports Jupyter"
            ]
        );
        assert_eq!(assignable(&[on(2, data_manager_inferior())], 2), Vec::<&str>::new());
    }

    #[test]
    fn top_manageable_perimeters_of_the_spec_examples() {
        let tree = demo_tree();
        let first = [on(0, data_manager()), on(1, admin_manager()), on(2, admin_manager()), on(8, data_manager())];
        assert_eq!(manageable_perimeters(&first, &tree), [0, 1, 2]);
        let second = [
            on(0, data_manager_inferior()),
            on(1, admin_manager()),
            on(8, admin_manager_same_level()),
            on(10, data_manager_inferior()),
        ];
        assert_eq!(manageable_perimeters(&second, &tree), [1, 3, 4, 5, 8, 13, 14]);
        assert_eq!(manageable_perimeters(&[on(6, full_admin())], &tree), [9999]);
        assert_eq!(manageable_perimeters(&[on(6, set(&[Right::MANAGE_USERS]))], &tree), [9999]);
        assert_eq!(manageable_perimeters(&[on(6, nominative_reader())], &tree), Vec::<i64>::new());
        assert_eq!(manageable_perimeters(&[], &tree), Vec::<i64>::new());
    }

    #[test]
    fn patient_data_rights_keep_the_top_perimeters_and_inherit_downwards() {
        let tree = demo_tree();
        let rights = PatientDataRights::new(&[on(0, nominative_reader()), on(9999, pseudo_reader())], &tree);
        assert!(rights.search_by_ipp && !rights.search_opposed);
        assert_eq!(rights.targets(false, &tree).into_iter().collect::<Vec<_>>(), [0, 9999]);
        assert_eq!(rights.targets(true, &tree).len(), 16);
        let row = |p| {
            let r = rights.right_on(p, &tree);
            (r.nominative, r.pseudonymized)
        };
        assert_eq!([row(9999), row(0), row(11), row(13)], [(false, true), (true, true), (true, true), (false, true)]);
        assert!(PatientDataRights::new(&[on(9999, admin_manager())], &tree).is_empty());
    }

    /// Property: wherever a reading right impacts inferior levels, a child's rights include those
    /// inherited from its ancestors.
    #[test]
    fn reading_rights_of_a_child_include_its_ancestors() {
        let tree = demo_tree();
        for grants in [
            vec![on(2, nominative_reader())],
            vec![on(9999, pseudo_reader()), on(10, nominative_reader())],
            vec![on(0, pseudo_reader()), on(4, nominative_reader()), on(1, pseudo_reader())],
        ] {
            let rights = PatientDataRights::new(&grants, &tree);
            for p in tree.iter() {
                let own = rights.right_on(p.id, &tree);
                for ancestor in tree.ancestors(p.id) {
                    let up = rights.right_on(ancestor, &tree);
                    assert!(
                        own.nominative >= up.nominative && own.pseudonymized >= up.pseudonymized,
                        "{} under {ancestor}",
                        p.id
                    );
                }
            }
        }
    }

    #[test]
    fn my_data_rights_merge_propagate_and_broadcast() {
        let tree = demo_tree();
        let jupyter_pseudo = set(&[Right::READ_PATIENT_PSEUDONYMIZED, Right::EXPORT_JUPYTER_PSEUDONYMIZED]);
        let grants = [on(1, nominative_reader()), on(9999, jupyter_pseudo), on(4, admin_manager())];
        let all = my_data_rights(&grants, None, &tree);
        assert_eq!(all.iter().map(|r| r.perimeter_id).collect::<Vec<_>>(), [1, 9999]);
        let p1 = &all[0];
        assert!(p1.read_nominative && p1.read_pseudonymized && p1.search_by_ipp && p1.export_jupyter_pseudonymized);
        assert!(!p1.export_csv_xlsx_nominative);
        let root = &all[1];
        assert!(
            !root.read_nominative && root.read_pseudonymized && root.search_by_ipp,
            "global flags reach every entry"
        );

        let requested = my_data_rights(&grants, Some(&[6, 12, 424242]), &tree);
        assert_eq!(
            requested.iter().map(|r| (r.perimeter_id, r.read_nominative, r.read_pseudonymized)).collect::<Vec<_>>(),
            [(6, true, true), (12, false, true)]
        );
        assert!(my_data_rights(&[on(9999, admin_manager())], Some(&[1]), &tree).is_empty());
    }

    #[test]
    fn allowed_users_counters() {
        let tree = demo_tree();
        let holders = [
            ("a", 4, nominative_reader()),
            ("b", 4, admin_manager_same_level()),
            ("a", 11, pseudo_reader()),
            ("c", 0, pseudo_reader()),
        ];
        let counts = count_allowed_users(&tree, holders);
        assert_eq!(counts[&4], AllowedUsers { on_perimeter: 2, inferior_levels: 1, above_levels: 1 });
        assert_eq!(
            counts[&11],
            AllowedUsers { on_perimeter: 1, inferior_levels: 0, above_levels: 2 },
            "a through P4, c through P0"
        );
        assert_eq!(counts[&0], AllowedUsers { on_perimeter: 1, inferior_levels: 2, above_levels: 0 });
        assert_eq!(counts[&9999], AllowedUsers { on_perimeter: 0, inferior_levels: 3, above_levels: 0 });
        assert_eq!(counts[&12], AllowedUsers { on_perimeter: 0, inferior_levels: 0, above_levels: 2 });
    }

    #[test]
    fn role_consistency_rules_in_order_with_their_messages() {
        let cases: [(RightSet, Option<&str>); 6] = [
            (RightSet::ALL, None),
            (set(&[Right::FULL_ADMIN]), Some("Cannot create a Full Admin role with falsy rights")),
            (
                set(&[Right::READ_PATIENT_PSEUDONYMIZED, Right::EXPORT_JUPYTER_NOMINATIVE]),
                Some("Cannot create a role allowing to read patient data in pseudo and export nominative data"),
            ),
            (
                set(&[Right::SEARCH_PATIENTS_BY_IPP, Right::READ_PATIENT_PSEUDONYMIZED]),
                Some("Cannot create a role allowing to search by IPP but not read patient data in nominative mode"),
            ),
            (
                set(&[Right::MANAGE_DATA_ACCESSES_SAME_LEVEL]),
                Some("Cannot create a role allowing to manage accesses but not users"),
            ),
            (data_manager(), None),
        ];
        for (rights, expected) in cases {
            assert_eq!(role_inconsistency(rights), expected, "{rights:?}");
        }
        for (_, name, rights) in crate::services::seed::demo_roles() {
            assert_eq!(role_inconsistency(rights), None, "seeded role {name} must be consistent");
        }
    }

    #[test]
    fn date_rules_of_accesses() {
        use dates::*;
        let now = time::now();
        let (h, day) = (Duration::hours(1), Duration::days(1));
        assert_eq!(new_access(None, None, 365, now), Ok((now, now + Duration::days(365))));
        assert_eq!(
            new_access(Some(now - Duration::seconds(5)), None, 365, now).map(|d| d.0),
            Ok(now - Duration::seconds(5))
        );
        assert_eq!(new_access(Some(now - h), None, 365, now), Err(START_IN_PAST));
        assert_eq!(new_access(None, Some(now - h), 365, now), Err(END_IN_PAST));
        assert_eq!(new_access(Some(now + day), Some(now + h), 365, now), Err(END_BEFORE_START));

        let running = (Some(now - day), Some(now + day));
        assert_eq!(changed(running, Some(now + h), None, now), Err(START_ALREADY_PAST));
        assert_eq!(changed(running, None, Some(now + 2 * day), now), Ok((running.0, Some(now + 2 * day))));
        assert_eq!(changed(running, None, Some(now - h), now), Err(END_IN_PAST));
        let expired = (Some(now - 2 * day), Some(now - day));
        assert_eq!(changed(expired, None, Some(now + day), now), Err(END_ALREADY_PAST));
        let future = (Some(now + day), Some(now + 2 * day));
        assert_eq!(changed(future, Some(now + 3 * day), Some(now + 2 * day + h), now), Err(END_BEFORE_START));
        assert_eq!(changed(future, Some(now - h), None, now), Err(START_IN_PAST));

        assert_eq!(close(running.0, running.1, now), Ok(now));
        assert_eq!(close(expired.0, expired.1, now), Err(ALREADY_CLOSED));
        assert_eq!(close(future.0, future.1, now), Err(NOT_STARTED));
        assert_eq!(close(None, running.1, now), Err(CLOSE_MISSING_DATES));
        assert_eq!(deletable(future.0, now), Ok(()));
        assert_eq!(deletable(running.0, now), Err(ALREADY_STARTED));
    }
}
