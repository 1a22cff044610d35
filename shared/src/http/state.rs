//! What every HTTP handler can reach: settings, the store, token services, third-party clients.
//! Built once per container (Lambda init or dev-server start).
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use crate::{
    auth::{identity::IdentityClient, jwt::TokenService, oidc::OidcService, ApiKeys},
    clients::jobs::{ExportQueue, JobQueue},
    clients::mail::{SesMailer, SharedMailer},
    clients::push::Notifier,
    config::Settings,
    domain::{
        maintenance::MaintenancePhase,
        rights::{Access, Role},
        tree::PerimeterTree,
        user::{User, UserRules},
    },
    error::{AppError, AppResult},
    store::{DynamoStore, StoreResult},
};

/// Roles change rarely; containers re-read them at most this often (writes in this container
/// invalidate at once).
const ROLE_CACHE_TTL: Duration = Duration::from_secs(30);
/// Containers check the perimeter tree's version this often and reload the tree only when it moved.
const TREE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// The accesses copy is checked against the stored version on every use (see `accesses_under`).
const ACCESSES_CHECK_INTERVAL: Duration = Duration::ZERO;
/// The maintenance gate runs on every write and `/maintenances/next/` on every page load: one read
/// per second per container is enough (the original's broadcaster works by the minute).
const MAINTENANCE_CACHE_TTL: Duration = Duration::from_secs(1);

/// A value shared by the requests of a container, reloaded when older than its TTL. One request
/// reloads while the others wait for its result (no burst of identical reads at expiry).
pub struct TtlCache<T> {
    ttl: Duration,
    slot: RwLock<Option<(Instant, Arc<T>)>>,
    reload: tokio::sync::Mutex<()>,
}

impl<T> TtlCache<T> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, slot: RwLock::new(None), reload: tokio::sync::Mutex::new(()) }
    }

    fn fresh(&self) -> Option<Arc<T>> {
        let (loaded, value) = self.slot.read().ok()?.clone()?;
        (loaded.elapsed() < self.ttl).then_some(value)
    }

    pub async fn get_or_load<F, Fut, E>(&self, load: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        self.get_or_refresh(|_| async { load().await.map(Arc::new) }).await
    }

    /// Like [`Self::get_or_load`], but the loader sees the expired value and may keep it (a cheap
    /// freshness check instead of a full reload).
    pub async fn get_or_refresh<F, Fut, E>(&self, refresh: F) -> Result<Arc<T>, E>
    where
        F: FnOnce(Option<Arc<T>>) -> Fut,
        Fut: std::future::Future<Output = Result<Arc<T>, E>>,
    {
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let _reloading = self.reload.lock().await;
        if let Some(value) = self.fresh() {
            return Ok(value); // another request reloaded it while this one waited
        }
        let expired = self.slot.read().ok().and_then(|s| s.as_ref().map(|(_, v)| v.clone()));
        let value = refresh(expired).await?;
        if let Ok(mut slot) = self.slot.write() {
            *slot = Some((Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// The value held, however old.
    pub fn current(&self) -> Option<Arc<T>> {
        self.slot.read().ok()?.as_ref().map(|(_, v)| v.clone())
    }

    pub fn invalidate(&self) {
        if let Ok(mut slot) = self.slot.write() {
            *slot = None;
        }
    }
}

/// The accesses index as of a version (see `DynamoStore::save_access`), with each index sort key.
pub struct VersionedAccesses {
    version: i64,
    accesses: Vec<(String, Access)>,
}

pub struct VersionedTree {
    version: i64,
    tree: Arc<PerimeterTree>,
}

pub struct Inner {
    pub settings: Settings,
    pub store: DynamoStore,
    pub tokens: TokenService,
    pub oidc: Option<OidcService>,
    pub identity: Option<IdentityClient>,
    pub api_keys: ApiKeys,
    pub user_rules: UserRules,
    pub http: reqwest::Client,
    pub jobs: JobQueue,
    /// The export jobs queue (launches and delayed polls).
    pub export_jobs: ExportQueue,
    pub mailer: SharedMailer,
    pub s3: aws_sdk_s3::Client,
    /// Pushes to WebSocket clients (spec §10.3).
    pub notifier: Notifier,
    roles: TtlCache<HashMap<i64, Role>>,
    maintenances: TtlCache<Vec<MaintenancePhase>>,
    tree: TtlCache<VersionedTree>,
    accesses: TtlCache<VersionedAccesses>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Invalid(String),
}

impl AppState {
    /// Reads the environment and builds the AWS clients: the Lambda init and the dev server.
    pub async fn from_env() -> Result<Self, InitError> {
        let settings = Settings::from_env()?;
        let sdk = crate::aws::sdk_config().await;
        Self::new(settings, &sdk)
    }

    /// The state over the AWS services `sdk` points at (the emulator in tests and dev).
    pub fn new(settings: Settings, sdk: &aws_config::SdkConfig) -> Result<Self, InitError> {
        let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(sdk), settings.default_from_email.clone());
        Self::with_mailer(settings, sdk, SharedMailer::new(mailer))
    }

    /// The same, sending its e-mails through `mailer`.
    pub fn with_mailer(
        settings: Settings,
        sdk: &aws_config::SdkConfig,
        mailer: SharedMailer,
    ) -> Result<Self, InitError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let jobs = JobQueue::new(aws_sdk_sqs::Client::new(sdk), settings.cohort_jobs_queue_url.clone());
        let export_jobs = ExportQueue::new(aws_sdk_sqs::Client::new(sdk), settings.export_jobs_queue_url.clone());
        let http = crate::aws::http_client(settings.http_timeout);
        let tokens = TokenService::new(&settings).map_err(InitError::Invalid)?;
        let oidc = settings.enable_oidc_auth.then(|| OidcService::new(&settings, http.clone()));
        let identity = settings
            .identity_server_url
            .clone()
            .map(|url| IdentityClient::new(url, settings.identity_server_auth_token.clone(), http.clone()));
        let user_rules = UserRules::new(&settings.email_regex, &settings.username_regex)
            .map_err(|e| InitError::Invalid(format!("EMAIL_REGEX or USERNAME_REGEX is not a valid regex: {e}")))?;
        let store = DynamoStore::new(dynamodb, settings.table_name.clone());
        let notifier = Notifier::new(sdk, settings.ws_management_endpoint.as_deref(), store.clone());
        Ok(Self(Arc::new(Inner {
            store,
            notifier,
            api_keys: ApiKeys::from_settings(&settings),
            tokens,
            oidc,
            identity,
            user_rules,
            http,
            jobs,
            export_jobs,
            mailer,
            s3: crate::aws::s3_client(sdk),
            settings,
            roles: TtlCache::new(ROLE_CACHE_TTL),
            maintenances: TtlCache::new(MAINTENANCE_CACHE_TTL),
            tree: TtlCache::new(TREE_CHECK_INTERVAL),
            accesses: TtlCache::new(ACCESSES_CHECK_INTERVAL),
        })))
    }

    /// Who to tell when a job's status changes.
    pub fn job_news(&self) -> crate::services::job_news::JobNews<'_, SharedMailer> {
        crate::services::job_news::JobNews {
            store: &self.store,
            notifier: &self.notifier,
            mailer: &self.mailer,
            settings: &self.settings,
            exports: &self.export_jobs,
        }
    }

    /// All roles (deleted ones included) by id, from the container cache.
    pub async fn roles(&self) -> StoreResult<Arc<HashMap<i64, Role>>> {
        self.roles
            .get_or_load(|| async { Ok(self.store.roles().await?.into_iter().map(|r| (r.id, r)).collect()) })
            .await
    }

    /// Alive maintenance phases not yet ended (as of the last load), from the container cache.
    pub async fn maintenances_not_ended(&self) -> StoreResult<Arc<Vec<MaintenancePhase>>> {
        self.maintenances.get_or_load(|| self.store.maintenances_not_ended(crate::domain::time::now())).await
    }

    /// The perimeter tree, kept in memory (compact: ids, links and the texts the rights and filters
    /// read): a version GetItem every 30 s, and a read of the stored snapshot (one Query) only when
    /// the tree changed or at the first request of the container.
    pub async fn perimeter_tree(&self) -> AppResult<Arc<PerimeterTree>> {
        let snapshot = self
            .tree
            .get_or_refresh(|expired| async move {
                if let Some(held) = expired {
                    if held.version == self.store.perimeters_version().await? {
                        return Ok::<_, AppError>(held);
                    }
                }
                let (version, tree) = crate::services::perimeter_sync::current_tree(&self.store).await?;
                Ok(Arc::new(VersionedTree { version, tree: Arc::new(tree) }))
            })
            .await?;
        Ok(snapshot.tree.clone())
    }

    /// Accesses whose perimeter path starts with `path_prefix` (`/` = all), from the container's copy
    /// of the accesses index: one version GetItem per call (every write bumps it, so listings read
    /// their writes from any container), a full read of the index only after a write.
    pub async fn accesses_under(&self, path_prefix: &str) -> AppResult<Vec<Access>> {
        let version = self.store.accesses_version().await?;
        let index = match self.accesses.current().filter(|a| a.version == version) {
            Some(index) => index,
            None => {
                self.accesses
                    .get_or_refresh(|held| async move {
                        if let Some(index) = held.filter(|a| a.version >= version) {
                            return Ok::<_, AppError>(index); // reloaded by a concurrent request
                        }
                        let accesses = self.store.indexed_accesses("/").await?;
                        Ok(Arc::new(VersionedAccesses { version, accesses }))
                    })
                    .await?
            }
        };
        Ok(index
            .accesses
            .iter()
            .filter(|(sort_key, _)| sort_key.starts_with(path_prefix))
            .map(|(_, a)| a.clone())
            .collect())
    }

    /// After a tree write in this container: the next request reloads at once.
    pub fn invalidate_perimeter_tree(&self) {
        self.tree.invalidate();
    }

    pub fn invalidate_maintenances(&self) {
        self.maintenances.invalidate();
    }

    /// The display names of the users who created and last updated `user` (one BatchGetItem).
    pub async fn creator_names(&self, user: &User) -> StoreResult<(Option<String>, Option<String>)> {
        let names: Vec<&str> = [user.created_by.as_deref(), user.updated_by.as_deref()].into_iter().flatten().collect();
        if names.is_empty() {
            return Ok((None, None));
        }
        let found = self.store.users_by_name(&names).await?;
        let display = |name: Option<&str>| name.and_then(|n| found.get(n)).map(User::display_name);
        Ok((display(user.created_by.as_deref()), display(user.updated_by.as_deref())))
    }

    pub fn invalidate_roles(&self) {
        self.roles.invalidate();
    }
}
