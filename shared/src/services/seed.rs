//! Demo and test data: the roles of the rights schema (spec §4.3), the perimeter tree, a full
//! admin and the applicative users. Every step is idempotent (fixed ids, conditional writes).
use time::Duration;

use crate::{
    auth::password,
    domain::{
        perimeter::{parse_csv, Perimeter},
        rights::{Access, Profile, Right, RightSet, Role},
        time::{self as t, DateTime},
        user::{Credentials, User, Window},
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
    let now = crate::domain::time::now();
    let dates = crate::domain::perimeter::RecordDates { insert_datetime: Some(now), update_datetime: Some(now) };
    let perimeters: Vec<Perimeter> = parse_csv(csv)
        .map_err(|e| AppError::BadRequest(format!("perimeter file: {e}")))?
        .into_iter()
        .map(|p| Perimeter { dates, ..p })
        .collect();
    store.put_perimeters(&perimeters).await?;
    crate::services::perimeter_sync::publish_tree(store).await?;
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
    user.credentials = Some(if account.password.is_some() { Credentials::Local } else { Credentials::External });
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

/// Usernames of the cohort workspace data set: `8000000 + i`; owner 0 is the bench user (the heavy
/// owner), owner `OWNERS` (the one after the others) the 10× owner.
pub const COHORT_OWNER_BASE: usize = 8_000_000;
/// Folders of each heavy owner of the cohort workspace data set.
const HEAVY_FOLDERS: usize = 20;
/// The second heavy owner holds this many times the heavy owner's requests, snapshots, counts and cohorts.
const HEAVY10_FACTOR: usize = 10;

/// What [`seed_exports_dataset`] wrote.
#[derive(Debug, Default, Clone)]
pub struct ExportsDataset {
    pub owners: usize,
    pub exports: usize,
    /// The heavy owner of the cohort data set and its exports.
    pub bench_user: String,
    pub bench_exports: usize,
}

/// `exports` exports of the cohort data set's first `owners` owners (`8000000 + i`, written by
/// [`seed_cohort_dataset`] before), evenly, created over the past year, each with its list summary
/// (a made-up source cohort) and counted as `POST /exports/` counts them; a tenth of them still
/// running, a twentieth failed. Fixed seed.
pub async fn seed_exports_dataset(store: &DynamoStore, owners: usize, exports: usize) -> AppResult<ExportsDataset> {
    use crate::domain::{
        cohort::{Job, JobStatus, Stamps},
        exports::{Export, ExportSummary, ExportTable, OutputFormat},
    };
    let mut rng = Xorshift(0x0e59_0a7e_5eed);
    let now = crate::domain::time::now();
    let owners = owners.max(1);
    let mut written = Vec::with_capacity(exports);
    for i in 0..exports {
        let owner = (COHORT_OWNER_BASE + i % owners).to_string();
        let created = now - Duration::seconds((rng.below(365 * 86_400) + 60) as i64);
        let status = match rng.below(20) {
            0 => JobStatus::Failed,
            1 | 2 => JobStatus::Started,
            _ => JobStatus::Finished,
        };
        let format = if rng.below(4) == 0 { OutputFormat::Xlsx } else { OutputFormat::Csv };
        let source = uuid::Uuid::from_u64_pair(rng.next(), rng.next());
        let table =
            |name: &str| ExportTable { name: name.into(), cohort_result_source: Some(source), ..Default::default() };
        written.push(Export {
            uuid: uuid::Uuid::from_u64_pair(rng.next(), rng.next()),
            owner: owner.clone(),
            output_format: format,
            datalab: None,
            nominative: true,
            shift_dates: false,
            group_tables: false,
            motivation: Some(format!("Étude {i}: protocole validé par le CSE")),
            target_name: format!("{owner}_{}", created.unix_timestamp()),
            target_location: "s3://bench-exports/exports".into(),
            is_user_notified: status == JobStatus::Finished,
            clean_datetime: None,
            retried: false,
            launched_at: Some(created),
            awaiting_subsets: false,
            hive_stage: None,
            tables: vec![table("person"), table("visit_occurrence"), table("condition_occurrence")],
            summary: ExportSummary {
                owner_display: format!("Load {owner}"),
                owner_firstname: "Load".into(),
                owner_lastname: owner.clone(),
                cohort_id: Some((100_000 + rng.below(900_000)).to_string()),
                cohort_name: Some(format!("Cohorte {}", rng.below(10_000))),
                patients_count: Some(rng.below(50_000) as i64),
                datalab_name: None,
            },
            rev: 1,
            job: Job { request_job_status: status, ..Job::new() },
            stamps: Stamps::new(created),
        });
    }
    store.seed_exports(&written).await?;
    let bench_user = COHORT_OWNER_BASE.to_string();
    let bench_exports = written.iter().filter(|e| e.owner == bench_user).count();
    Ok(ExportsDataset { owners, exports, bench_user, bench_exports })
}

/// What [`seed_cohort_dataset`] wrote.
#[derive(Debug, Default, Clone)]
pub struct CohortDataset {
    pub owners: usize,
    pub folders: usize,
    pub requests: usize,
    pub snapshots: usize,
    pub measures: usize,
    pub cohorts: usize,
    pub query_bytes: usize,
    /// The heavy owner (logs in with [`LOAD_USER_PASSWORD`]) and its share.
    pub bench_user: String,
    pub bench_folders: usize,
    pub bench_requests: usize,
    pub bench_snapshots: usize,
    pub bench_measures: usize,
    pub bench_cohorts: usize,
    /// The 10× owner (logs in with [`LOAD_USER_PASSWORD`]) and its share (counted in the totals).
    pub heavy10_user: String,
    pub heavy10_folders: usize,
    pub heavy10_requests: usize,
    pub heavy10_snapshots: usize,
    pub heavy10_measures: usize,
    pub heavy10_cohorts: usize,
}

/// A fixed-seed xorshift64: the data set is the same from one run to the next (uuids included).
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn seconds(&mut self, from: i64, to: i64) -> Duration {
        Duration::seconds(from + (self.next() % (to - from).max(1) as u64) as i64)
    }
    fn uuid(&mut self) -> uuid::Uuid {
        let bytes = (u128::from(self.next()) << 64 | u128::from(self.next())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// A Cohort360 query (spec §5.2) of 1 to 3 KB: a population of 1 to 3 perimeter cohort ids and an
/// `andGroup` of 2 to 6 criteria of the query builder's kinds.
fn bench_query(rng: &mut Xorshift, cohort_ids: &[String]) -> String {
    use serde_json::{json, Value};
    const CRITERIA: [(&str, &str); 8] = [
        ("Condition", "code=I10,E11.9,E66.0&orbis-status=dp,das&recorded-date=ge2019-01-01"),
        ("Patient", "gender=female&active=true&birthdate=ge1950-01-01"),
        ("Procedure", "code=YYYY001,DZQM006,EBLA003&source=AREM&date=ge2021-06-01"),
        ("Observation", "code=F09400,E3933&value-quantity=ge5&status=final"),
        ("MedicationRequest", "medication=A10BA02,A10BB12&route=20053000&validity-period-start=ge2022-01-01"),
        ("Encounter", "class=IMP&admission-mode=urgence&length=ge3&status=finished"),
        ("DocumentReference", "_text=diab%C3%A8te%20AND%20insuline&type=CRH-HOSPI,CRH-J&docstatus=final"),
        ("Claim", "diagnosis=I21,I22&ghm=05K051&created=ge2020-01-01"),
    ];
    let population: Vec<Value> =
        (0..1 + rng.below(3)).map(|_| json!(cohort_ids[rng.below(cohort_ids.len())])).collect();
    let mut wanted = 2 + rng.below(5);
    loop {
        let criteria: Vec<Value> = (0..wanted)
            .map(|i| {
                let (resource, filter) = CRITERIA[rng.below(CRITERIA.len())];
                let mut node = json!({
                    "_type": "basicResource",
                    "_id": i + 1,
                    "isInclusive": !rng.chance(15),
                    "resourceType": resource,
                    "filterFhir": filter,
                    "occurrence": {"n": 1 + rng.below(3), "operator": ">=", "sameEncounter": false, "sameDay": false},
                    "dateRange": {
                        "minDate": format!("20{:02}-0{}-01", 18 + rng.below(7), 1 + rng.below(9)),
                        "maxDate": null,
                        "datePreference": ["event_date", "encounter_end_date"],
                        "dateIsNotNull": true
                    },
                    "encounterDateRange": {"minDate": null, "maxDate": null, "dateIsNotNull": true},
                });
                if resource == "Patient" {
                    node["patientAge"] = json!({"minAge": "18-0-0", "maxAge": "85-0-0", "datePreference": ["age"]});
                }
                node
            })
            .collect();
        let query = json!({
            "version": "v1.6.1",
            "_type": "request",
            "resourceType": "Patient",
            "sourcePopulation": {"caresiteCohortList": population},
            "request": {
                "_type": "andGroup",
                "_id": 0,
                "isInclusive": true,
                "criteria": criteria,
                "temporalConstraints": [{"idList": ["All"], "constraintType": "none"}]
            }
        })
        .to_string();
        match query.len() {
            0..1000 => wanted += 1,
            3001.. if wanted > 1 => wanted -= 1,
            _ => return query,
        }
    }
}

/// `total` split over `n` parts: the first `rest % n` parts get one more.
fn even_shares(total: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| total / n.max(1) + usize::from(i < total % n.max(1))).collect()
}

/// The cohort workspace load-test data set (issue 4, "like the original's baseline"): `owners`
/// users (`8000000 + i`) holding `requests` requests, 4 snapshots (each with its query text, 1–3
/// KB) and 4 counts per request on average, one cohort per 4 snapshots, in 2 to 5 folders each.
/// User 8000000 is the heavy owner: 6 % of the requests (300 of 5,000), 1,100 of 20,000 snapshots,
/// as many counts, one cohort per 4 of its snapshots, 20 folders. One more owner, `8000000 +
/// owners` (the 10× owner), holds 10 times the heavy owner's requests, snapshots, counts and cohorts
/// (3,000, 11,000, 11,000, 2,750) in 20 folders, on top of `requests`. Both hold a nominative reading
/// access on the root and log in with [`LOAD_USER_PASSWORD`]. The other owners hold one reading
/// access each. Creation dates are spread over the past year (folder < request < snapshot < count <
/// cohort). Counts: 95 % finished with a measure, 5 % failed; cohorts built on finished counts, 92 %
/// finished with a group id, 5 % failed, 3 % pending (in the active jobs index). Written with batch
/// writes (a bulk load, no conditions), owner by owner; uuids come from a fixed seed, profile and
/// access ids from the counters: load it once into fresh resources. Each snapshot gets its query
/// text item and the `RQS_PERIMETER#` references of its population, as the API writes them.
pub async fn seed_cohort_dataset(store: &DynamoStore, owners: usize, requests: usize) -> AppResult<CohortDataset> {
    use crate::{
        domain::cohort::{
            python_duration, CohortResult, DatedMeasure, Folder, Job, JobStatus, MeasureMode, Request, Snapshot,
            SnapshotQuery, Stamps,
        },
        domain::summary::{cohorts_by_count, CohortSummary, RequestSummary},
        store::{
            accesses::{access_entry, profile_entry},
            cohort::{object_entry, snapshot_perimeter_writes},
            keys, summaries,
            users::user_entry,
            Entry, Write,
        },
    };
    let tree = crate::domain::tree::PerimeterTree::new(store.perimeters().await?)
        .map_err(|e| AppError::Internal(format!("stored tree: {e}")))?;
    let root = tree.roots().next().map(|p| p.id).ok_or_else(|| AppError::Internal("no perimeter tree".into()))?;
    let perimeter_ids: Vec<i64> = tree.iter().map(|p| p.id).collect();
    let cohort_ids: Vec<String> =
        tree.iter().map(|p| p.cohort_id().map_or_else(|| p.id.to_string(), str::to_owned)).collect();
    if owners == 0 || requests == 0 {
        return Ok(CohortDataset::default());
    }
    // Shares: the bench user's, then the others' (evenly), then the 10× owner's.
    let others = owners - 1;
    let bench_requests = if others == 0 { requests } else { requests * 3 / 50 };
    let snapshots_total = requests * 4;
    let bench_snapshots = if others == 0 { snapshots_total } else { (bench_requests * 11 / 3).max(bench_requests) };
    let bench_cohorts = if others == 0 { requests } else { bench_snapshots / 4 };
    let mut shares: Vec<(usize, usize, usize)> = vec![(bench_requests, bench_snapshots, bench_cohorts)];
    let (r, s, c) = (
        even_shares(requests - bench_requests, others),
        even_shares(snapshots_total - bench_snapshots, others),
        even_shares(requests - bench_cohorts, others),
    );
    shares.extend((0..others).map(|i| (r[i], if r[i] == 0 { 0 } else { s[i].max(r[i]) }, c[i])));
    let heavy10 = owners;
    shares.push((bench_requests * HEAVY10_FACTOR, bench_snapshots * HEAVY10_FACTOR, bench_cohorts * HEAVY10_FACTOR));

    let mut rng = Xorshift(0x2545_F491_4F6C_DD1D);
    let now = t::now();
    let year_ago = now - Duration::days(365);
    let (start, end) = (now - Duration::days(1), now + Duration::days(365));
    let written = shares.len() as i64;
    let last_profile = store.reserve_ids("profile", written).await?;
    let last_access = store.reserve_ids("access", written).await?;
    let (first_profile, first_access) = (last_profile - written + 1, last_access - written + 1);
    let password = password::hash(LOAD_USER_PASSWORD).map_err(AppError::Internal)?;
    let mut out = CohortDataset {
        owners: shares.len(),
        bench_user: COHORT_OWNER_BASE.to_string(),
        heavy10_user: (COHORT_OWNER_BASE + heavy10).to_string(),
        ..CohortDataset::default()
    };
    let mut group_id = 100_000_u64;
    for (i, &(n_requests, n_snapshots, n_cohorts)) in shares.iter().enumerate() {
        let owner = (COHORT_OWNER_BASE + i).to_string();
        // The heavy owners: the bench user and the 10× owner.
        let heavy = i == 0 || i == heavy10;
        let mut entries: Vec<Entry> = Vec::new();
        // The user, its profile and one reading access (the heavy owners: nominative, on the root).
        let mut user = User::new(
            &owner,
            "Cohort",
            &format!("Owner{i}"),
            Some(&format!("{owner}@cohort.load.cohort360.local")),
            now,
        );
        user.password = heavy.then(|| password.clone());
        user.directory.manual_profile = true;
        let profile = Profile::manual(first_profile + i as i64, &owner, now);
        let (role, perimeter) = if heavy {
            (4, root)
        } else {
            (if rng.chance(50) { 4 } else { 5 }, perimeter_ids[rng.below(perimeter_ids.len())])
        };
        let access_id = first_access + i as i64;
        let access = Access::granted(access_id, &profile, role, perimeter, (start, end), None, now);
        user.directory.access_windows.insert(access_id.to_string(), Window { start: Some(start), end: Some(end) });
        entries.push(access_entry(&access, &tree.path(perimeter))?);
        entries.push(user_entry(&user)?);
        entries.push(profile_entry(&profile)?);

        // Folders, created in the first days of the year.
        let n_folders = if heavy { HEAVY_FOLDERS } else { 2 + rng.below(4) };
        let folders: Vec<Folder> = (0..n_folders)
            .map(|f| Folder {
                uuid: rng.uuid(),
                owner: owner.clone(),
                name: format!("Dossier {}", f + 1),
                description: rng.chance(30).then(|| "Projet de recherche".to_owned()),
                requests_count: None,
                stamps: Stamps::new(year_ago + rng.seconds(0, 5 * 86_400)),
            })
            .collect();
        // Requests, then their snapshots: every request has one, the rest go to random requests.
        let requests: Vec<Request> = (0..n_requests)
            .map(|q| {
                let shared = !heavy && rng.chance(3);
                Request {
                    uuid: rng.uuid(),
                    owner: owner.clone(),
                    name: format!("Requête {}", q + 1),
                    description: if rng.chance(40) { "Étude de faisabilité".into() } else { String::new() },
                    favorite: rng.chance(10),
                    parent_folder: folders[rng.below(folders.len())].uuid,
                    shared_by: shared.then(|| (COHORT_OWNER_BASE + 1 + rng.below(others.max(1))).to_string()),
                    snapshot_versions: None,
                    summary_rev: 0,
                    stamps: Stamps::new(year_ago + rng.seconds(6 * 86_400, 360 * 86_400)),
                }
            })
            .collect();
        let mut per_request = vec![1_usize; n_requests];
        for _ in n_requests..n_snapshots {
            per_request[rng.below(n_requests)] += 1;
        }
        let mut snapshots: Vec<Snapshot> = Vec::with_capacity(n_snapshots);
        for (request, &versions) in requests.iter().zip(&per_request) {
            let mut at = request.stamps.created_at;
            let mut previous = None;
            for version in 1..=versions as i64 {
                at = (at + rng.seconds(300, 3 * 86_400)).min(now - Duration::minutes(1));
                let uuid = rng.uuid();
                let query = bench_query(&mut rng, &cohort_ids);
                let perimeters = crate::domain::cohort::perimeters_ids(&query).map_err(AppError::Internal)?;
                out.query_bytes += query.len();
                let text = SnapshotQuery { serialized_query: query, translated_query: None };
                entries.push(Entry::new("snapshot_query", &keys::snapshot_query(&owner, uuid), &text)?);
                snapshots.push(Snapshot {
                    uuid,
                    owner: owner.clone(),
                    request: request.uuid,
                    name: None,
                    previous_snapshot: previous,
                    shared_by: request.shared_by.clone(),
                    perimeters_ids: Some(perimeters),
                    version,
                    query_patches: 0,
                    stamps: Stamps::new(at),
                });
                previous = Some(uuid);
            }
        }
        // Counts: one per snapshot in number, three in four on "their" snapshot, the others on a
        // random one (some snapshots get several, some none).
        let measures: Vec<DatedMeasure> = (0..n_snapshots)
            .map(|k| {
                let snapshot = if rng.chance(75) { &snapshots[k] } else { &snapshots[rng.below(snapshots.len())] };
                let created = (snapshot.stamps.created_at + rng.seconds(1, 3_600)).min(now);
                let duration = Duration::milliseconds(800 + rng.below(40_000) as i64);
                let finished = !rng.chance(5);
                let measure = finished.then(|| (rng.next() % 10_u64.pow(1 + rng.below(6) as u32)) as i64);
                DatedMeasure {
                    uuid: rng.uuid(),
                    owner: owner.clone(),
                    request_query_snapshot: snapshot.uuid,
                    request: snapshot.request,
                    measure,
                    measure_min: None,
                    measure_max: None,
                    extra: None,
                    count_task_id: rng.uuid().to_string(),
                    mode: MeasureMode::Snapshot,
                    job: Job {
                        request_job_id: rng.uuid().to_string(),
                        request_job_status: if finished { JobStatus::Finished } else { JobStatus::Failed },
                        request_job_fail_msg: if finished { String::new() } else { "Query execution error".into() },
                        request_job_duration: python_duration(duration),
                    },
                    stamps: Stamps { modified_at: created + duration, ..Stamps::new(created) },
                }
            })
            .collect();
        // Cohorts, each built on a finished count.
        let finished: Vec<&DatedMeasure> =
            measures.iter().filter(|m| m.job.request_job_status == JobStatus::Finished).collect();
        let cohorts: Vec<CohortResult> = (0..n_cohorts.min(finished.len() * 4))
            .map(|k| {
                let count = finished[rng.below(finished.len())];
                let created = (count.stamps.created_at + rng.seconds(60, 2 * 86_400)).min(now);
                let status = match rng.below(100) {
                    0..92 => JobStatus::Finished,
                    92..97 => JobStatus::Failed,
                    _ => JobStatus::Pending,
                };
                group_id += 1;
                CohortResult {
                    uuid: rng.uuid(),
                    owner: owner.clone(),
                    name: Some(format!("Cohorte {}", k + 1)),
                    description: rng.chance(30).then(|| "Cohorte de l'étude".to_owned()),
                    favorite: rng.chance(10),
                    request_query_snapshot: Some(count.request_query_snapshot),
                    request: Some(count.request),
                    group_id: if status == JobStatus::Finished { group_id.to_string() } else { String::new() },
                    dated_measure: Some(count.uuid),
                    dated_measure_global: None,
                    create_task_id: rng.uuid().to_string(),
                    is_subset: false,
                    export: None,
                    parent_cohort: None,
                    sampling_ratio: None,
                    job: Job {
                        request_job_id: rng.uuid().to_string(),
                        request_job_status: status,
                        request_job_fail_msg: if status == JobStatus::Failed {
                            "Solr ETL error".into()
                        } else {
                            String::new()
                        },
                        request_job_duration: if status.is_final() {
                            python_duration(Duration::seconds(30 + rng.below(600) as i64))
                        } else {
                            String::new()
                        },
                    },
                    stamps: Stamps::new(created),
                }
            })
            .collect();
        // The list summaries, as the API's writes would have kept them.
        let ws = crate::domain::cohort::Workspace {
            folders: folders.clone(),
            requests: requests.clone(),
            snapshots: snapshots.clone(),
            measures: measures.clone(),
            cohorts: cohorts.clone(),
            ..Default::default()
        };
        for folder in &folders {
            let count = requests.iter().filter(|r| r.parent_folder == folder.uuid).count() as i64;
            entries.push(object_entry(&Folder { requests_count: Some(count), ..folder.clone() })?);
        }
        for request in &requests {
            let summary = RequestSummary::from_workspace(&ws, request.uuid);
            entries.push(summaries::request_entry_with(object_entry(request)?, request, &summary)?);
        }
        entries.push(summaries::counts_entry(&owner, requests.len() as i64, cohorts.len() as i64)?);
        for snapshot in &snapshots {
            entries.push(object_entry(snapshot)?);
            // The references from the perimeter cohort ids of its population (perimeter syncs).
            for write in snapshot_perimeter_writes(snapshot)? {
                if let Write::Put(entry, _) = write {
                    entries.push(entry);
                }
            }
        }
        let built = cohorts_by_count(&ws);
        for measure in &measures {
            let built_on = built.get(&measure.uuid).cloned().unwrap_or_default();
            entries.push(summaries::count_entry_with(object_entry(measure)?, &built_on)?);
        }
        for cohort in &cohorts {
            let summary = CohortSummary::from_workspace(&ws, cohort);
            entries.push(summaries::cohort_entry_with(object_entry(cohort)?, &summary)?);
        }
        if i == 0 {
            out.bench_folders = folders.len();
            out.bench_requests = requests.len();
            out.bench_snapshots = snapshots.len();
            out.bench_measures = measures.len();
            out.bench_cohorts = cohorts.len();
        }
        if i == heavy10 {
            out.heavy10_folders = folders.len();
            out.heavy10_requests = requests.len();
            out.heavy10_snapshots = snapshots.len();
            out.heavy10_measures = measures.len();
            out.heavy10_cohorts = cohorts.len();
        }
        out.folders += folders.len();
        out.requests += requests.len();
        out.snapshots += snapshots.len();
        out.measures += measures.len();
        out.cohorts += cohorts.len();
        store.put_batched(entries).await?;
    }
    // Every item above carries its list summaries: the lists may read them at once.
    store.mark_workspace_layout_ready().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_queries_are_1_to_3_kb_and_name_their_population() {
        let mut rng = Xorshift(7);
        let ids: Vec<String> = (0..50).map(|i| (1000 + i).to_string()).collect();
        for _ in 0..500 {
            let query = bench_query(&mut rng, &ids);
            assert!((1000..=3000).contains(&query.len()), "{} bytes", query.len());
            let population = crate::domain::cohort::perimeters_ids(&query).unwrap();
            assert!((1..=3).contains(&population.len()) && population.iter().all(|p| ids.contains(p)));
        }
    }

    #[test]
    fn shares_add_up() {
        assert_eq!(even_shares(4_700, 149).iter().sum::<usize>(), 4_700);
        assert_eq!(even_shares(7, 3), vec![3, 2, 2]);
    }
}
