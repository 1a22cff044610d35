//! Demo and test data: the roles of the rights schema (spec §4.3), the perimeter tree, a full
//! admin and the applicative users. Every step is idempotent (fixed ids, conditional writes).
use time::Duration;

use crate::{
    auth::password,
    domain::{
        perimeter::{parse_csv, Perimeter},
        rights::{Access, Profile, Right, RightSet, Role},
        time::{self as t, DateTime},
        user::{User, Window},
    },
    error::{AppError, AppResult},
    store::{Condition, DynamoStore, StoreError},
};

/// `(id, name, rights)` of the seeded roles, one per family of the rights schema.
pub fn demo_roles() -> Vec<(i64, &'static str, RightSet)> {
    let r = |names: &[&str]| RightSet::of(&names.iter().filter_map(|n| Right::from_name(n)).collect::<Vec<_>>());
    vec![
        (1, "Administrateur", RightSet::ALL),
        (
            2,
            "Administrateur des accès",
            r(&[
                "right_manage_admin_accesses_same_level",
                "right_manage_admin_accesses_inferior_levels",
                "right_manage_users",
            ]),
        ),
        (
            3,
            "Gestionnaire des accès aux données",
            r(&[
                "right_manage_data_accesses_same_level",
                "right_manage_data_accesses_inferior_levels",
                "right_manage_users",
            ]),
        ),
        (
            4,
            "Lecteur de données nominatives",
            r(&["right_read_patient_nominative", "right_search_patients_by_ipp", "right_search_opposed_patients"]),
        ),
        (5, "Lecteur de données pseudonymisées", r(&["right_read_patient_pseudonymized"])),
        (6, "Exports CSV/Excel", r(&["right_read_patient_nominative", "right_export_csv_xlsx_nominative"])),
        (
            7,
            "Exports Jupyter",
            r(&[
                "right_read_patient_nominative",
                "right_read_patient_pseudonymized",
                "right_export_jupyter_nominative",
                "right_export_jupyter_pseudonymized",
            ]),
        ),
        (
            8,
            "Recherche sans limite de périmètre",
            r(&["right_read_patient_pseudonymized", "right_search_patients_unlimited"]),
        ),
        (9, "Gestionnaire des utilisateurs", r(&["right_manage_users"])),
        (10, "Gestionnaire des datalabs", r(&["right_manage_datalabs", "right_read_datalabs"])),
    ]
}

pub const FULL_ADMIN_ROLE_ID: i64 = 1;

fn ignore_existing(result: Result<(), StoreError>) -> Result<(), StoreError> {
    match result {
        Err(StoreError::ConditionFailed) => Ok(()),
        other => other,
    }
}

pub async fn seed_roles(store: &DynamoStore, now: DateTime) -> AppResult<()> {
    let roles = demo_roles();
    for (id, name, rights) in &roles {
        let role = Role {
            id: *id,
            name: (*name).to_owned(),
            rights: *rights,
            insert_datetime: now,
            update_datetime: now,
            delete_datetime: None,
        };
        ignore_existing(store.save_role(&role, None).await)?;
    }
    store.ensure_counter_at_least("role", roles.len() as i64).await?;
    Ok(())
}

pub async fn seed_perimeters(store: &DynamoStore, csv: &str) -> AppResult<Vec<Perimeter>> {
    let perimeters = parse_csv(csv).map_err(|e| AppError::BadRequest(format!("perimeter file: {e}")))?;
    store.put_perimeters(&perimeters).await?;
    store.bump_perimeters_version().await?;
    Ok(perimeters)
}

/// A user with an active `Manual` profile and, when `role` is given, one access valid from
/// yesterday for `validity` on `perimeter_id`. Profile and access ids come from the counters;
/// an existing user is left as it is.
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub firstname: &'a str,
    pub lastname: &'a str,
    pub email: Option<&'a str>,
    pub password: Option<&'a str>,
    pub role: Option<RoleOn<'a>>,
    pub validity: Duration,
}

/// The access an account is created with: a role on a perimeter (and that perimeter's tree path).
pub struct RoleOn<'a> {
    pub role_id: i64,
    pub perimeter_id: i64,
    pub perimeter_path: &'a str,
}

pub async fn ensure_account(store: &DynamoStore, account: NewAccount<'_>, now: DateTime) -> AppResult<bool> {
    if store.user(account.username).await?.is_some() {
        return Ok(false);
    }
    let mut user = User::new(account.username, account.firstname, account.lastname, account.email, now);
    if let Some(pw) = account.password {
        user.password = Some(password::hash(pw).map_err(AppError::Internal)?);
    }
    user.directory.manual_profile = true;
    let profile = Profile::manual(store.next_id("profile").await?, account.username, now);
    let access = match &account.role {
        Some(RoleOn { role_id, perimeter_id, perimeter_path }) => {
            let (start, end) = (now - Duration::days(1), now + account.validity);
            let id = store.next_id("access").await?;
            user.directory.access_windows.insert(id.to_string(), Window { start: Some(start), end: Some(end) });
            Some((Access::granted(id, &profile, *role_id, *perimeter_id, (start, end), None, now), *perimeter_path))
        }
        None => None,
    };
    match store.create_user(&user, &profile).await {
        Ok(()) => {}
        Err(crate::store::users::UserWriteError::UsernameTaken) => return Ok(false),
        Err(e) => return Err(AppError::internal(e)),
    }
    if let Some((access, path)) = access {
        store.save_access(&access, path, Condition::MustNotExist).await?;
    }
    Ok(true)
}

pub struct DemoSeed<'a> {
    pub admin_username: &'a str,
    pub admin_password: &'a str,
    pub perimeters_csv: &'a str,
    pub app_usernames: Vec<&'a str>,
}

/// Everything `make dev` needs: roles, tree, the full admin on the root, the applicative users.
pub async fn seed_demo(store: &DynamoStore, seed: DemoSeed<'_>) -> AppResult<String> {
    let now = t::now();
    seed_roles(store, now).await?;
    let perimeters = seed_perimeters(store, seed.perimeters_csv).await?;
    let root = perimeters
        .iter()
        .find(|p| p.parent_id.is_none())
        .ok_or_else(|| AppError::BadRequest("perimeter file: no root perimeter".into()))?;
    let admin_created = ensure_account(
        store,
        NewAccount {
            username: seed.admin_username,
            firstname: "Admin",
            lastname: "COHORT360",
            email: Some("admin@cohort360.local"),
            password: Some(seed.admin_password),
            role: Some(RoleOn {
                role_id: FULL_ADMIN_ROLE_ID,
                perimeter_id: root.id,
                perimeter_path: &format!("/{}/", root.id),
            }),
            validity: Duration::days(365),
        },
        now,
    )
    .await?;
    for name in &seed.app_usernames {
        ensure_account(
            store,
            NewAccount {
                username: name,
                firstname: "Application",
                lastname: name,
                email: None,
                password: None,
                role: None,
                validity: Duration::ZERO,
            },
            now,
        )
        .await?;
    }
    Ok(format!(
        "{} roles, {} perimeters (root {}), admin {} ({})",
        demo_roles().len(),
        perimeters.len(),
        root.id,
        seed.admin_username,
        if admin_created { "created" } else { "already present" }
    ))
}

pub const LOAD_USER_PASSWORD: &str = "load-user-password";

/// A load-test population: `users` users (usernames `9000000 + i`) holding `accesses` accesses in
/// all, spread deterministically over the tree with the demo roles (readers mostly, some managers).
/// User 9000000 holds exactly one access and can log in with [`LOAD_USER_PASSWORD`]. Written with
/// batch writes (a bulk load: no conditions), ids reserved from the counters in one step each.
pub async fn seed_load_dataset(store: &DynamoStore, users: usize, accesses: usize) -> AppResult<(usize, usize)> {
    use crate::store::{
        accesses::{access_entry, profile_entry},
        users::user_entry,
    };
    let tree = crate::domain::tree::PerimeterTree::new(store.perimeters().await?)
        .map_err(|e| AppError::Internal(format!("stored tree: {e}")))?;
    let ids: Vec<i64> = tree.iter().map(|p| p.id).collect();
    if ids.is_empty() || users == 0 {
        return Ok((0, 0));
    }
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Readers and exporters mostly; about one access in ten manages data, one in fifty admins.
    let role_for = |n: u64| match n % 50 {
        0 => 2,
        1..=5 => 3,
        6..=20 => 4,
        21..=35 => 5,
        36..=42 => 6,
        _ => 7,
    };
    let now = t::now();
    let (start, end) = (now - Duration::days(1), now + Duration::days(365));
    // User 0 holds one access; the others share the rest evenly.
    let (rest, others) = (accesses.saturating_sub(1), (users - 1).max(1));
    let shares: Vec<usize> =
        (0..users).map(|i| if i == 0 { 1 } else { rest / others + usize::from(i <= rest % others) }).collect();
    let total: usize = shares.iter().sum();
    let last_profile = store.reserve_ids("profile", users as i64).await?;
    let last_access = store.reserve_ids("access", total as i64).await?;
    let (mut profile_id, mut access_id) = (last_profile - users as i64, last_access - total as i64);
    let password = password::hash(LOAD_USER_PASSWORD).map_err(AppError::Internal)?;
    let mut entries = Vec::with_capacity(users * 2 + total);
    for (i, share) in shares.iter().enumerate() {
        let username = (9_000_000 + i).to_string();
        let mut user =
            User::new(&username, "Load", &format!("User{i}"), Some(&format!("{username}@load.cohort360.local")), now);
        user.password = (i == 0).then(|| password.clone());
        user.directory.manual_profile = true;
        profile_id += 1;
        let profile = Profile::manual(profile_id, &username, now);
        for _ in 0..*share {
            access_id += 1;
            let perimeter = ids[(next() % ids.len() as u64) as usize];
            let access = Access::granted(access_id, &profile, role_for(next()), perimeter, (start, end), None, now);
            user.directory.access_windows.insert(access_id.to_string(), Window { start: Some(start), end: Some(end) });
            entries.push(access_entry(&access, &tree.path(perimeter))?);
        }
        entries.push(user_entry(&user)?);
        entries.push(profile_entry(&profile)?);
    }
    store.put_batched(entries).await?;
    Ok((users, total))
}
