//! Settings read once from the environment at init. Names follow the original backend (spec §11).
//! A missing required value fails the cold start instead of the first request.
use std::{collections::HashMap, env, fmt, time::Duration};

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"********\"" })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("invalid value for {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// One OIDC client (`OIDC_AUTH_SERVER_i`, `OIDC_CLIENT_ID_i`, ...).
#[derive(Clone, Debug)]
pub struct OidcClient {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub table_name: String,
    pub jwt_signing_key: Secret,
    /// PEM public key, required only when RS256 tokens are minted or accepted.
    pub jwt_verifying_key: Option<String>,
    /// Algorithm used to mint tokens (`HS256` or `RS256`).
    pub jwt_algorithm: String,
    /// Algorithms accepted when decoding (`JWT_ALGORITHMS`); never `none`.
    pub jwt_algorithms: Vec<String>,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// `QUERY_EXECUTOR_URL`: where cohort jobs are submitted (the cohort worker needs it).
    pub query_executor_url: Option<String>,
    pub query_executor_username: String,
    pub query_executor_token: Secret,
    pub solr_etl_username: String,
    pub solr_etl_token: Secret,
    pub rollout_username: String,
    pub rollout_token: Secret,
    pub identity_server_url: Option<String>,
    pub identity_server_auth_token: Secret,
    pub enable_oidc_auth: bool,
    pub oidc_clients: Vec<OidcClient>,
    pub oidc_audience: Vec<String>,
    pub oidc_extra_issuers: Vec<String>,
    pub username_regex: String,
    pub email_regex: String,
    pub request_log_retention_days: i64,
    /// Rows `/logs/` reads at most to count a filter its counters do not answer; past it the count is
    /// an estimate (`X-Count-Estimated: true`).
    pub request_log_count_budget: usize,
    pub frontend_url: String,
    /// `FRONTEND_URLS`: the origins allowed by CORS (comma-separated, as in the original).
    pub frontend_origins: Vec<String>,
    /// `PUBLIC_BASE_URL`: where clients reach this API (pagination links); unset under Lambda, API
    /// Gateway's stage URL is used. Never taken from a request header.
    pub public_base_url: Option<String>,
    pub http_timeout: Duration,
    /// Where cohort jobs (counts, creations, studies) are queued; required to create them.
    pub cohort_jobs_queue_url: Option<String>,
    /// Cohorts of this size or more are built by the ETL (`long_pending`), and are not exportable.
    pub cohort_size_limit: i64,
    /// Hours after which a count is `count_outdated`.
    pub last_count_validity_hours: i64,
    /// The folder shared requests are copied into.
    pub shared_folder_name: String,
    /// Sender of every e-mail.
    pub default_from_email: String,
    /// The support address e-mails give.
    pub email_support_contact: String,
    /// `ADMINS` (`Name,email;Name2,email2`): who is told of failed exports (spec §10.2).
    pub admins: Vec<(String, String)>,
    /// `EXPORTS_BUCKET`: exports and feasibility reports.
    pub exports_bucket: Option<String>,
    /// Where export jobs (launch, polls) are queued; required to create exports.
    pub export_jobs_queue_url: Option<String>,
    /// `EXPORT_API_URL` / `EXPORT_API_AUTH_TOKEN`: the Export API (spec §7.5).
    pub export_api_url: Option<String>,
    pub export_api_auth_token: Secret,
    /// `HADOOP_API_URL` / `HADOOP_API_AUTH_TOKEN`: the Hadoop API of hive exports.
    pub hadoop_api_url: Option<String>,
    pub hadoop_api_auth_token: Secret,
    /// `HIVE_DB_PATH`: where hive databases are created; `HIVE_USER`: their owner while being filled.
    pub hive_db_path: String,
    pub hive_user: String,
    /// `DISABLE_DATA_TRANSLATION`: sent to the Export API as `disableTerminology`.
    pub disable_data_translation: bool,
    /// `DAYS_TO_KEEP_EXPORTED_FILES`: csv/xlsx files are downloadable, then deleted, after this.
    pub days_to_keep_exported_files: i64,
    /// `EXPORT_POLL_SECONDS`: the first delay between two polls of an export task (doubled up to
    /// SQS's 900 s); `EXPORT_MAX_WAIT_HOURS`: an export not ended by then fails.
    pub export_poll_seconds: u32,
    pub export_max_wait_hours: i64,
    /// `REPORTING_PERIMETER_TYPES`: the perimeter levels a feasibility report descends into.
    pub reporting_perimeter_types: Vec<String>,
    pub fhir: FhirSettings,
    /// `USE_SOLR`: criteria get their `filterSolr` from the FHIR server's `$query` (spec §6.3).
    pub use_solr: bool,
    /// `TEST_FHIR_QUERIES`: each filter is first tried on the FHIR search itself (`_count=0`).
    pub test_fhir_queries: bool,
    /// `WS_MANAGEMENT_ENDPOINT`: the API Gateway Management API of the WebSocket API (unset: no pushes).
    pub ws_management_endpoint: Option<String>,
}

/// The FHIR server and the perimeter types of the FHIR perimeter sync (spec §10.1). Read on its own
/// by the scheduled tasks, which build no [`Settings`].
#[derive(Clone, Debug, Default)]
pub struct FhirSettings {
    /// `FHIR_URL` without its trailing `/`; unset, nothing calls FHIR.
    pub url: Option<String>,
    /// `FHIR_ACCESS_TOKEN`, sent as a bearer token when set.
    pub access_token: Secret,
    /// `PERIMETER_TYPES`: type names by tree level, the root's first.
    pub perimeter_types: Vec<String>,
}

/// The types of the demo tree (infra/data/perimeters.demo.csv), by level.
const DEFAULT_PERIMETER_TYPES: &str = "AP-HP,hospital,hospital_depart,hospital_serv";

impl FhirSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let url = get("FHIR_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = url.as_deref().filter(|u| !u.starts_with("http://") && !u.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "FHIR_URL".into(),
                reason: format!("{url:?} is not an HTTP URL"),
            });
        }
        Ok(Self {
            url,
            access_token: Secret::new(get("FHIR_ACCESS_TOKEN").unwrap_or_default()),
            perimeter_types: get("PERIMETER_TYPES")
                .unwrap_or_else(|| DEFAULT_PERIMETER_TYPES.to_owned())
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `Name,email;Name2,email2` as (name, e-mail) pairs; entries without an e-mail are left out.
fn parse_admins(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|entry| {
            let (name, email) = entry.rsplit_once(',').unwrap_or(("", entry));
            let email = email.trim();
            email.contains('@').then(|| (name.trim().to_owned(), email.to_owned()))
        })
        .collect()
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// The users of the applicative actors (QueryExecutor, Solr ETL, rollout), configured or not.
    pub fn is_applicative_user(&self, username: &str) -> bool {
        [&self.query_executor_username, &self.solr_etl_username, &self.rollout_username].iter().any(|u| *u == username)
    }

    /// Reads settings through `lookup` so tests can build them without touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let flag = |name: &str| matches!(get(name).as_deref(), Some("1" | "true" | "True" | "TRUE" | "yes"));
        let list = |name: &str, default: &str| -> Vec<String> {
            or(name, default).split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        let number = |name: &str, default: i64| -> Result<i64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                    name: name.into(),
                    reason: format!("{v:?} is not an integer"),
                }),
            }
        };

        // The original turns literal "\n" sequences into newlines so PEM keys fit in one env line.
        let jwt_signing_key = required("JWT_SIGNING_KEY")?.replace("\\n", "\n");
        let fhir = FhirSettings::from_lookup(&lookup)?;
        let use_solr = flag("USE_SOLR");
        if use_solr && fhir.url.is_none() {
            return Err(ConfigError::Invalid { name: "USE_SOLR".into(), reason: "FHIR_URL is not set".into() });
        }
        let jwt_algorithm = or("JWT_ALGORITHM", "HS256").to_uppercase();
        let jwt_algorithms: Vec<String> =
            list("JWT_ALGORITHMS", "HS256").into_iter().map(|a| a.to_uppercase()).collect();
        for alg in jwt_algorithms.iter().chain(std::iter::once(&jwt_algorithm)) {
            if !matches!(alg.as_str(), "HS256" | "HS384" | "HS512" | "RS256" | "RS384" | "RS512") {
                return Err(ConfigError::Invalid {
                    name: "JWT_ALGORITHMS".into(),
                    reason: format!("unsupported algorithm {alg}"),
                });
            }
        }
        let jwt_verifying_key = get("JWT_VERIFYING_KEY").map(|k| k.replace("\\n", "\n"));
        if jwt_algorithms.iter().chain(std::iter::once(&jwt_algorithm)).any(|a| a.starts_with("RS"))
            && jwt_verifying_key.is_none()
        {
            return Err(ConfigError::Missing("JWT_VERIFYING_KEY"));
        }

        let enable_oidc_auth = flag("ENABLE_OIDC_AUTH");
        let mut oidc_clients = Vec::new();
        for i in 1.. {
            let Some(issuer) = get(&format!("OIDC_AUTH_SERVER_{i}")) else { break };
            let field = |suffix: &str| {
                get(&format!("OIDC_{suffix}_{i}")).ok_or_else(|| ConfigError::Invalid {
                    name: format!("OIDC_{suffix}_{i}"),
                    reason: format!("required because OIDC_AUTH_SERVER_{i} is set"),
                })
            };
            oidc_clients.push(OidcClient {
                issuer: issuer.trim_end_matches('/').to_owned(),
                client_id: field("CLIENT_ID")?,
                client_secret: Secret::new(field("CLIENT_SECRET")?),
                redirect_uri: field("REDIRECT_URI")?,
            });
        }
        if enable_oidc_auth && oidc_clients.is_empty() {
            return Err(ConfigError::Missing("OIDC_AUTH_SERVER_1"));
        }

        Ok(Self {
            table_name: required("TABLE_NAME")?,
            jwt_signing_key: Secret::new(jwt_signing_key),
            jwt_verifying_key,
            jwt_algorithm,
            jwt_algorithms,
            access_token_lifetime: Duration::from_secs(number("ACCESS_TOKEN_LIFETIME_SECONDS", 300)?.max(1) as u64),
            refresh_token_lifetime: Duration::from_secs(number("REFRESH_TOKEN_LIFETIME_SECONDS", 86_400)?.max(1) as u64),
            query_executor_url: get("QUERY_EXECUTOR_URL").map(|u| u.trim_end_matches('/').to_owned()),
            query_executor_username: or("QUERY_EXECUTOR_USERNAME", "SPARK_JOB_SERVER"),
            query_executor_token: Secret::new(or("QUERY_EXECUTOR_TOKEN", "")),
            solr_etl_username: or("SOLR_ETL_USERNAME", "SOLR_ETL"),
            solr_etl_token: Secret::new(or("SOLR_ETL_TOKEN", "")),
            rollout_username: or("ROLLOUT_USERNAME", "ROLLOUT_PIPELINE"),
            rollout_token: Secret::new(or("ROLLOUT_TOKEN", "")),
            identity_server_url: get("IDENTITY_SERVER_URL").map(|u| u.trim_end_matches('/').to_owned()),
            identity_server_auth_token: Secret::new(or("IDENTITY_SERVER_AUTH_TOKEN", "")),
            enable_oidc_auth,
            oidc_clients,
            oidc_audience: list("OIDC_AUDIENCE", ""),
            oidc_extra_issuers: list("OIDC_EXTRA_SERVER_URLS", "")
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            username_regex: or("USERNAME_REGEX", "[0-9]"),
            email_regex: or("EMAIL_REGEX", r"^[\w.+-]+@[\w-]+\.[\w]+$"),
            request_log_retention_days: number("REQUEST_LOG_RETENTION_DAYS", 90)?.clamp(1, 3650),
            request_log_count_budget: number("REQUEST_LOG_COUNT_BUDGET", 5_000)?.clamp(1, 1_000_000) as usize,
            frontend_url: or("FRONTEND_URL", "http://localhost:3000"),
            frontend_origins: list("FRONTEND_URLS", "http://localhost:3000")
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
            public_base_url: match get("PUBLIC_BASE_URL") {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Some(url.trim_end_matches('/').to_owned())
                }
                Some(url) => {
                    return Err(ConfigError::Invalid {
                        name: "PUBLIC_BASE_URL".into(),
                        reason: format!("{url:?} is not an http(s) URL"),
                    })
                }
                None => None,
            },
            http_timeout: Duration::from_secs(number("HTTP_CLIENT_TIMEOUT_SECONDS", 60)?.max(1) as u64),
            cohort_jobs_queue_url: get("COHORT_JOBS_QUEUE_URL"),
            cohort_size_limit: number("COHORT_SIZE_LIMIT", 20_000)?,
            last_count_validity_hours: number("LAST_COUNT_VALIDITY", 24)?,
            shared_folder_name: or("SHARED_FOLDER_NAME", "Mes requêtes reçues"),
            default_from_email: or("DEFAULT_FROM_EMAIL", "no-reply@cohort360.local"),
            email_support_contact: or("EMAIL_SUPPORT_CONTACT", ""),
            admins: parse_admins(&or("ADMINS", "")),
            exports_bucket: get("EXPORTS_BUCKET"),
            export_jobs_queue_url: get("EXPORT_JOBS_QUEUE_URL"),
            export_api_url: get("EXPORT_API_URL").map(|u| u.trim_end_matches('/').to_owned()),
            export_api_auth_token: Secret::new(or("EXPORT_API_AUTH_TOKEN", "")),
            hadoop_api_url: get("HADOOP_API_URL").map(|u| u.trim_end_matches('/').to_owned()),
            hadoop_api_auth_token: Secret::new(or("HADOOP_API_AUTH_TOKEN", "")),
            hive_db_path: or("HIVE_DB_PATH", "/user/hive/exports"),
            hive_user: or("HIVE_USER", "hive"),
            disable_data_translation: flag("DISABLE_DATA_TRANSLATION"),
            days_to_keep_exported_files: number("DAYS_TO_KEEP_EXPORTED_FILES", 7)?.clamp(1, 3650),
            export_poll_seconds: u32::try_from(number("EXPORT_POLL_SECONDS", 10)?.clamp(0, 900)).unwrap_or(10),
            export_max_wait_hours: number("EXPORT_MAX_WAIT_HOURS", 24)?.clamp(1, 24 * 14),
            reporting_perimeter_types: list("REPORTING_PERIMETER_TYPES", ""),
            fhir,
            use_solr,
            test_fhir_queries: flag("TEST_FHIR_QUERIES"),
            ws_management_endpoint: get("WS_MANAGEMENT_ENDPOINT").map(|u| u.trim_end_matches('/').to_owned()),
        })
    }
}

/// Settings for tests: only the required values, everything else at its default.
pub fn test_settings(table_name: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("TABLE_NAME".into(), table_name.into()),
        ("JWT_SIGNING_KEY".into(), "test-signing-key-with-enough-entropy-0123456789".into()),
        ("QUERY_EXECUTOR_TOKEN".into(), "test-qe-token".into()),
        ("SOLR_ETL_TOKEN".into(), "test-etl-token".into()),
        ("ROLLOUT_TOKEN".into(), "test-rollout-token".into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_signing_key_missing_should_fail_fast() {
        let err = Settings::from_lookup(|k| (k == "TABLE_NAME").then(|| "t".to_owned())).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("JWT_SIGNING_KEY")));
    }

    #[test]
    fn when_rs256_without_public_key_should_fail_fast() {
        let vars = HashMap::from([("TABLE_NAME", "t"), ("JWT_SIGNING_KEY", "k"), ("JWT_ALGORITHMS", "RS256,HS256")]);
        let err = Settings::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("JWT_VERIFYING_KEY")));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = test_settings("t", &[]);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("test-signing-key"));
        assert!(!dbg.contains("test-qe-token"));
        let fhir = test_settings("t", &[("FHIR_ACCESS_TOKEN", "fhir-secret-token")]);
        assert!(!format!("{fhir:?}").contains("fhir-secret-token"));
        let hadoop = test_settings("t", &[("HADOOP_API_AUTH_TOKEN", "hadoop-secret-token")]);
        assert_eq!(hadoop.hadoop_api_auth_token.expose(), "hadoop-secret-token");
        assert!(!format!("{hadoop:?}").contains("hadoop-secret-token"));
    }

    #[test]
    fn fhir_settings_default_to_the_demo_types_and_check_the_url() {
        let s = test_settings("t", &[("FHIR_URL", "http://fhir.local/fhir/")]);
        assert_eq!(s.fhir.url.as_deref(), Some("http://fhir.local/fhir"));
        assert_eq!(s.fhir.perimeter_types, ["AP-HP", "hospital", "hospital_depart", "hospital_serv"]);
        let err = FhirSettings::from_lookup(|k| (k == "FHIR_URL").then(|| "fhir.local".to_owned())).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name, .. } if name == "FHIR_URL"));
    }

    #[test]
    fn oidc_clients_are_read_contiguously() {
        let s = test_settings(
            "t",
            &[
                ("ENABLE_OIDC_AUTH", "true"),
                ("OIDC_AUTH_SERVER_1", "http://idp/realms/a/"),
                ("OIDC_CLIENT_ID_1", "c1"),
                ("OIDC_CLIENT_SECRET_1", "s1"),
                ("OIDC_REDIRECT_URI_1", "http://app/"),
            ],
        );
        assert_eq!(s.oidc_clients.len(), 1);
        assert_eq!(s.oidc_clients[0].issuer, "http://idp/realms/a");
    }
}
