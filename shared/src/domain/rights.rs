//! Roles, profiles and accesses: the data every right check starts from (spec §3.2, §4.1–§4.3).
use serde::{Deserialize, Serialize};

use super::time::{self, DateTime};

/// The 16 role rights, in the order of the original's `Role` columns.
pub const RIGHT_NAMES: [&str; 16] = [
    "right_full_admin",
    "right_manage_users",
    "right_manage_datalabs",
    "right_read_datalabs",
    "right_export_csv_xlsx_nominative",
    "right_export_jupyter_nominative",
    "right_export_jupyter_pseudonymized",
    "right_manage_admin_accesses_same_level",
    "right_manage_admin_accesses_inferior_levels",
    "right_manage_data_accesses_same_level",
    "right_manage_data_accesses_inferior_levels",
    "right_read_patient_nominative",
    "right_read_patient_pseudonymized",
    "right_search_patients_by_ipp",
    "right_search_patients_unlimited",
    "right_search_opposed_patients",
];

/// One right, as an index into [`RIGHT_NAMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Right(u8);

impl Right {
    pub const FULL_ADMIN: Right = Right(0);
    pub const MANAGE_USERS: Right = Right(1);
    pub const MANAGE_ADMIN_ACCESSES_SAME_LEVEL: Right = Right(7);
    pub const MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS: Right = Right(8);
    pub const MANAGE_DATA_ACCESSES_SAME_LEVEL: Right = Right(9);
    pub const MANAGE_DATA_ACCESSES_INFERIOR_LEVELS: Right = Right(10);
    pub const MANAGE_DATALABS: Right = Right(2);
    pub const READ_DATALABS: Right = Right(3);
    pub const EXPORT_CSV_XLSX_NOMINATIVE: Right = Right(4);
    pub const EXPORT_JUPYTER_NOMINATIVE: Right = Right(5);
    pub const EXPORT_JUPYTER_PSEUDONYMIZED: Right = Right(6);
    pub const READ_PATIENT_NOMINATIVE: Right = Right(11);
    pub const READ_PATIENT_PSEUDONYMIZED: Right = Right(12);
    pub const SEARCH_PATIENTS_BY_IPP: Right = Right(13);
    pub const SEARCH_PATIENTS_UNLIMITED: Right = Right(14);
    pub const SEARCH_OPPOSED_PATIENTS: Right = Right(15);

    pub fn from_name(name: &str) -> Option<Right> {
        RIGHT_NAMES.iter().position(|n| *n == name).map(|i| Right(i as u8))
    }

    pub fn name(self) -> &'static str {
        RIGHT_NAMES[self.0 as usize]
    }
}

/// A set of rights stored as a bit mask (one DynamoDB number instead of 16 attributes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RightSet(u16);

impl RightSet {
    pub const ALL: RightSet = RightSet(u16::MAX);

    pub fn of(rights: &[Right]) -> Self {
        rights.iter().fold(Self::default(), |set, r| set.with(*r, true))
    }

    pub fn has(self, right: Right) -> bool {
        self.0 & (1 << right.0) != 0
    }

    pub fn with(self, right: Right, on: bool) -> Self {
        if on {
            Self(self.0 | (1 << right.0))
        } else {
            Self(self.0 & !(1 << right.0))
        }
    }

    pub fn union(self, other: RightSet) -> Self {
        Self(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn any(self, rights: &[Right]) -> bool {
        rights.iter().any(|r| self.has(*r))
    }

    /// `(name, held)` for the 16 rights, in column order.
    pub fn iter(self) -> impl Iterator<Item = (&'static str, bool)> {
        (0..RIGHT_NAMES.len()).map(move |i| (RIGHT_NAMES[i], self.has(Right(i as u8))))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub rights: RightSet,
    #[serde(with = "time::iso_format")]
    pub insert_datetime: DateTime,
    #[serde(with = "time::iso_format")]
    pub update_datetime: DateTime,
    #[serde(with = "time::iso_format::option", default)]
    pub delete_datetime: Option<DateTime>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: i64,
    pub username: String,
    pub source: String,
    pub is_active: Option<bool>,
    #[serde(with = "time::iso_format")]
    pub insert_datetime: DateTime,
    #[serde(with = "time::iso_format")]
    pub update_datetime: DateTime,
    #[serde(with = "time::iso_format::option", default)]
    pub delete_datetime: Option<DateTime>,
}

impl Profile {
    /// The active `Manual` profile every user gets at creation.
    pub fn manual(id: i64, username: &str, now: DateTime) -> Self {
        Self {
            id,
            username: username.to_owned(),
            source: "Manual".into(),
            is_active: Some(true),
            insert_datetime: now,
            update_datetime: now,
            delete_datetime: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Access {
    pub id: i64,
    pub profile_id: i64,
    pub username: String,
    pub perimeter_id: Option<i64>,
    pub role_id: i64,
    pub source: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(with = "time::iso_format::option", default)]
    pub start_datetime: Option<DateTime>,
    #[serde(with = "time::iso_format::option", default)]
    pub end_datetime: Option<DateTime>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub updated_by: Option<String>,
    #[serde(with = "time::iso_format")]
    pub insert_datetime: DateTime,
    #[serde(with = "time::iso_format")]
    pub update_datetime: DateTime,
    #[serde(with = "time::iso_format::option", default)]
    pub delete_datetime: Option<DateTime>,
}

impl Access {
    /// A new access granting `role_id` on `perimeter_id` through `profile`, valid from `start` to `end`.
    pub fn granted(
        id: i64,
        profile: &Profile,
        role_id: i64,
        perimeter_id: i64,
        (start, end): (DateTime, DateTime),
        granted_by: Option<&str>,
        now: DateTime,
    ) -> Self {
        Self {
            id,
            profile_id: profile.id,
            username: profile.username.clone(),
            perimeter_id: Some(perimeter_id),
            role_id,
            source: profile.source.clone(),
            external_id: None,
            start_datetime: Some(start),
            end_datetime: Some(end),
            created_by: granted_by.map(str::to_owned),
            updated_by: granted_by.map(str::to_owned),
            insert_datetime: now,
            update_datetime: now,
            delete_datetime: None,
        }
    }

    /// `is_valid` of the original: not (start > now or end <= now), and not deleted.
    pub fn is_valid_at(&self, now: DateTime) -> bool {
        self.delete_datetime.is_none()
            && self.start_datetime.is_none_or(|s| s <= now)
            && self.end_datetime.is_none_or(|e| e > now)
    }

    /// Deleted, or past its end: it grants nothing now nor later.
    pub fn has_ended_at(&self, now: DateTime) -> bool {
        self.delete_datetime.is_some() || self.end_datetime.is_some_and(|e| e <= now)
    }
}

/// The valid accesses of active profiles as (perimeter, rights of the role) grants: the input of
/// the perimeter-scoped computations (§4.5–§4.11). Accesses without perimeter or role grant nothing.
pub fn valid_grants<'a>(
    profiles: &[Profile],
    accesses: impl IntoIterator<Item = &'a Access>,
    role_rights: impl Fn(i64) -> Option<RightSet>,
    now: DateTime,
) -> Vec<super::access_rules::Grant> {
    accesses
        .into_iter()
        .filter(|a| a.is_valid_at(now) && profile_is_active(profiles, a.profile_id))
        .filter_map(|a| {
            Some(super::access_rules::Grant { perimeter_id: a.perimeter_id?, rights: role_rights(a.role_id)? })
        })
        .collect()
}

fn profile_is_active(profiles: &[Profile], profile_id: i64) -> bool {
    profiles.iter().any(|p| p.id == profile_id && p.is_active == Some(true) && p.delete_datetime.is_none())
}

/// The rights a user holds through valid accesses of active profiles, whatever the perimeter.
pub fn global_rights<'a>(
    profiles: &[Profile],
    accesses: impl IntoIterator<Item = &'a Access>,
    role_rights: impl Fn(i64) -> Option<RightSet>,
    now: DateTime,
) -> RightSet {
    accesses
        .into_iter()
        .filter(|a| a.is_valid_at(now) && profile_is_active(profiles, a.profile_id))
        .filter_map(|a| role_rights(a.role_id))
        .fold(RightSet::default(), RightSet::union)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::Duration;

    fn access(role_id: i64, start: Option<DateTime>, end: Option<DateTime>) -> Access {
        let now = time::now();
        Access {
            id: 1,
            profile_id: 7,
            username: "u".into(),
            perimeter_id: Some(1),
            role_id,
            source: "Manual".into(),
            external_id: None,
            start_datetime: start,
            end_datetime: end,
            created_by: None,
            updated_by: None,
            insert_datetime: now,
            update_datetime: now,
            delete_datetime: None,
        }
    }

    fn profile(active: bool) -> Profile {
        let now = time::now();
        Profile {
            id: 7,
            username: "u".into(),
            source: "Manual".into(),
            is_active: Some(active),
            insert_datetime: now,
            update_datetime: now,
            delete_datetime: None,
        }
    }

    #[test]
    fn right_set_round_trips_names() {
        let set = RightSet::of(&[Right::FULL_ADMIN, Right::MANAGE_USERS]);
        let held: Vec<_> = set.iter().filter(|(_, on)| *on).map(|(n, _)| n).collect();
        assert_eq!(held, ["right_full_admin", "right_manage_users"]);
        assert_eq!(
            Right::from_name("right_search_opposed_patients").map(Right::name),
            Some("right_search_opposed_patients")
        );
        assert!(Right::from_name("right_bogus").is_none());
    }

    #[test]
    fn only_valid_accesses_of_active_profiles_grant_rights() {
        let now = time::now();
        let day = Duration::days(1);
        let admin =
            |id| (id == 1).then_some(RightSet::of(&[Right::FULL_ADMIN])).or(Some(RightSet::of(&[Right::MANAGE_USERS])));
        let running = access(1, Some(now - day), Some(now + day));
        let expired = access(2, Some(now - day - day), Some(now - day));
        let future = access(2, Some(now + day), Some(now + day + day));
        let rights = global_rights(&[profile(true)], [&running, &expired, &future], admin, now);
        assert!(rights.has(Right::FULL_ADMIN));
        assert!(!rights.has(Right::MANAGE_USERS));
        assert!(global_rights(&[profile(false)], [&running], admin, now).is_empty());
    }

    #[test]
    fn end_equal_to_now_is_no_longer_valid() {
        let now = time::now();
        assert!(!access(1, None, Some(now)).is_valid_at(now));
        assert!(access(1, Some(now), None).is_valid_at(now));
    }
}

/// One row of the right catalogue (spec §4.2), in the catalogue's id order.
pub struct CatalogueRight {
    pub name: &'static str,
    pub label: &'static str,
    pub category: &'static str,
    pub is_global: bool,
    pub depends_on: Option<&'static str>,
    /// The role serializer's `help_text` for this right (`None` when the original has none).
    pub help_text: Option<&'static str>,
}

const fn right(
    name: &'static str,
    label: &'static str,
    category: &'static str,
    is_global: bool,
    depends_on: Option<&'static str>,
    help_text: Option<&'static str>,
) -> CatalogueRight {
    CatalogueRight { name, label, category, is_global, depends_on, help_text }
}

pub const CATALOGUE: [CatalogueRight; 16] = [
    right("right_full_admin", "Administrateur", "Administration", true, None, Some("Super user")),
    right(
        "right_manage_users",
        "Gérer la liste des utilisateurs",
        "Utilisateurs",
        true,
        None,
        Some("Gérer la liste des utilisateurs/profils"),
    ),
    right(
        "right_manage_data_accesses_same_level",
        "Gérer les accès aux données patient d'un périmètre exclusivement",
        "Gestion des Accès Données",
        false,
        None,
        None,
    ),
    right(
        "right_manage_data_accesses_inferior_levels",
        "Gérer les accès aux données patient des sous-périmètres exclusivement",
        "Gestion des Accès Données",
        false,
        None,
        None,
    ),
    right(
        "right_manage_admin_accesses_same_level",
        "Gérer les accès administrateurs d'un périmètre exclusivement",
        "Gestion des Accès Administrateurs",
        false,
        None,
        None,
    ),
    right(
        "right_manage_admin_accesses_inferior_levels",
        "Gérer les accès administrateurs des sous-périmètres exclusivement",
        "Gestion des Accès Administrateurs",
        false,
        None,
        None,
    ),
    right(
        "right_read_patient_nominative",
        "Lecture de données patient nominatives",
        "Lecture de Données Patient",
        false,
        None,
        Some("Lire les données patient sous forme nominatives sur son périmètre et ses sous-périmètres"),
    ),
    right(
        "right_read_patient_pseudonymized",
        "Lecture de données patient pseudonymisées",
        "Lecture de Données Patient",
        false,
        None,
        Some("Lire les données patient sous forme pseudonymisée sur son périmètre et ses sous-périmètres"),
    ),
    right(
        "right_search_patients_by_ipp",
        "Chercher les patients par IPP",
        "Recherche de Patients",
        true,
        None,
        Some("Utiliser une liste d'IPP comme critère d'une requête Cohort."),
    ),
    right(
        "right_search_patients_unlimited",
        "Chercher les patients sans limite de périmètre (PP)",
        "Recherche de Patients",
        true,
        None,
        None,
    ),
    right(
        "right_search_opposed_patients",
        "Chercher les patients opposés à l'utilisation de leurs données pour la recherche",
        "Recherche de Patients",
        true,
        None,
        Some("Détermine le droit de chercher les patients opposés à l'utilisation de leurs données pour la recherche"),
    ),
    right(
        "right_export_jupyter_nominative",
        "Exporter ses cohortes de patients sous forme nominative vers un environnement Jupyter",
        "Exports Jupyter",
        true,
        None,
        Some("Exporter ses cohortes de patients sous forme nominative vers un environnement Jupyter."),
    ),
    right(
        "right_export_jupyter_pseudonymized",
        "Exporter ses cohortes de patients sous forme pseudonymisée vers un environnement Jupyter",
        "Exports Jupyter",
        true,
        None,
        Some("Exporter ses cohortes de patients sous forme pseudonymisée vers un environnement Jupyter."),
    ),
    right(
        "right_export_csv_xlsx_nominative",
        "Exporter ses cohortes de patients sous forme nominative en format CSV-Excel",
        "Exports CSV-Excel",
        true,
        None,
        Some("Demander à exporter ses cohortes de patients sous forme nominative en format CSV/Excel."),
    ),
    right(
        "right_manage_datalabs",
        "Gérer la liste des datalabs",
        "Datalabs",
        true,
        None,
        Some("Gérer les environnements de travail"),
    ),
    right(
        "right_read_datalabs",
        "Consulter la liste des datalabs",
        "Datalabs",
        true,
        Some("right_manage_datalabs"),
        Some("Consulter la liste des environnements de travail"),
    ),
];

/// The role serializer's `help_text` (spec §4.12): one entry per held catalogue right (level rights
/// excepted), then the access-management summaries.
pub fn help_text(rights: RightSet) -> Vec<Option<String>> {
    let mut texts: Vec<Option<String>> = CATALOGUE
        .iter()
        .filter(|r| {
            !r.name.ends_with("same_level") && !r.name.ends_with("inferior_levels") && !r.name.ends_with("above_levels")
        })
        .filter(|r| Right::from_name(r.name).is_some_and(|right| rights.has(right)))
        .map(|r| r.help_text.map(str::to_owned))
        .collect();
    let scope = |same: Right, inferior: Right| match (rights.has(same), rights.has(inferior)) {
        (true, true) => Some(" sur un périmètre et ses sous-périmètres"),
        (true, false) => Some(" sur un périmètre exclusivement"),
        (false, true) => Some(" sur les sous-périmètres exclusivement"),
        (false, false) => None,
    };
    if let Some(suffix) = scope(Right::MANAGE_ADMIN_ACCESSES_SAME_LEVEL, Right::MANAGE_ADMIN_ACCESSES_INFERIOR_LEVELS) {
        texts.push(Some(format!("Gérer les accès des administrateurs{suffix}")));
    }
    if let Some(suffix) = scope(Right::MANAGE_DATA_ACCESSES_SAME_LEVEL, Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS) {
        texts.push(Some(format!("Gérer les accès aux données patients{suffix}")));
    }
    texts
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;

    #[test]
    fn catalogue_names_are_the_role_columns() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|r| r.name).collect();
        names.sort();
        let mut columns = RIGHT_NAMES.to_vec();
        columns.sort();
        assert_eq!(names, columns);
    }

    #[test]
    fn help_text_lists_rights_then_management_scopes() {
        let rights = RightSet::of(&[
            Right::MANAGE_USERS,
            Right::SEARCH_PATIENTS_UNLIMITED,
            Right::MANAGE_DATA_ACCESSES_INFERIOR_LEVELS,
        ]);
        assert_eq!(
            help_text(rights),
            [
                Some("Gérer la liste des utilisateurs/profils".to_owned()),
                None,
                Some("Gérer les accès aux données patients sur les sous-périmètres exclusivement".to_owned()),
            ]
        );
    }
}
