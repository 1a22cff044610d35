//! The fakes of `make dev`, on the ports of the URLs in infra/env/local.env. A fake runs only where its
//! URL is still the dev default, so a real service configured in the environment (even on the same
//! port) is never shadowed; `FAKES=identity,oidc,fhir,query-executor,export-api,hadoop-api` (or `none`) chooses
//! explicitly.
use std::sync::Arc;

/// Whether the fake `name` plays the service at `url` (whose dev default is `default`).
fn wanted(name: &str, url: &str, default: &str) -> bool {
    match std::env::var("FAKES").ok().filter(|v| !v.trim().is_empty()) {
        Some(list) => list.split(',').any(|f| f.trim() == name),
        None => url == default,
    }
}

/// Says which services are not faked (each fake that runs says where it listens).
fn announce(name: &str, url: &str, running: bool) {
    if !running {
        tracing::info!("no fake {name}: {url} is used as it is");
    }
}

fn port_and_path(url: &str) -> Option<(u16, String)> {
    let rest = url.split_once("://")?.1;
    let (authority, path) = rest.split_once('/').map_or((rest, String::new()), |(a, p)| (a, format!("/{p}")));
    Some((authority.rsplit_once(':')?.1.parse().ok()?, path))
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    let mut tasks = Vec::new();

    const IDENTITY_DEFAULT: &str = "http://127.0.0.1:8091";
    let identity_url = env("IDENTITY_SERVER_URL", IDENTITY_DEFAULT);
    let run = wanted("identity", &identity_url, IDENTITY_DEFAULT);
    announce("identity server", &identity_url, run);
    if let Some((port, _)) = port_and_path(&identity_url).filter(|_| run) {
        let people = fakes::identity::parse_people(&env(
            "FAKE_IDENTITY_USERS",
            "1234567:password:Marie:CURIE:marie.curie@cohort360.local;7654321:password:Louis:PASTEUR:louis.pasteur@cohort360.local",
        ));
        let router = fakes::identity::router(&env("IDENTITY_SERVER_AUTH_TOKEN", ""), people);
        let (url, task) = fakes::spawn(router, port).await?;
        tracing::info!("fake identity server on {url}");
        tasks.push(task);
    }

    const ISSUER_DEFAULT: &str = "http://127.0.0.1:8092/realms/cohort360";
    let issuer = env("OIDC_AUTH_SERVER_1", ISSUER_DEFAULT);
    let run = wanted("oidc", &issuer, ISSUER_DEFAULT);
    announce("OIDC provider", &issuer, run);
    if let Some((port, path)) = port_and_path(&issuer).filter(|_| run) {
        let realm = Arc::new(fakes::oidc::Realm::new(
            &issuer,
            &env("OIDC_CLIENT_ID_1", "cohort360"),
            &env("OIDC_CLIENT_SECRET_1", "dev-oidc-secret"),
        ));
        let (url, task) = fakes::spawn(fakes::oidc::router(&path, realm), port).await?;
        tracing::info!("fake OIDC provider on {url}{path}");
        tasks.push(task);
    }

    const FHIR_DEFAULT: &str = "http://127.0.0.1:8094/fhir";
    let fhir_url = env("FHIR_URL", FHIR_DEFAULT);
    let run = wanted("fhir", &fhir_url, FHIR_DEFAULT);
    announce("FHIR server", &fhir_url, run);
    if let Some((port, path)) = port_and_path(&fhir_url).filter(|_| run) {
        let organizations = match std::env::var("FAKE_FHIR_ORGANIZATIONS").ok().filter(|v| !v.is_empty()) {
            Some(file) => serde_json::from_str(&std::fs::read_to_string(&file)?)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{file}: {e}")))?,
            None => fakes::fhir::demo_organizations(),
        };
        let page_size = env("FAKE_FHIR_PAGE_SIZE", "100").parse().unwrap_or(100);
        let server = Arc::new(fakes::fhir::FhirServer::new(&env("FHIR_ACCESS_TOKEN", ""), page_size, organizations));
        let (url, task) = fakes::spawn(fakes::fhir::router(&path, server), port).await?;
        tracing::info!("fake FHIR server on {url}{path}");
        tasks.push(task);
    }

    const QUERY_EXECUTOR_DEFAULT: &str = "http://127.0.0.1:8093";
    let query_executor_url = env("QUERY_EXECUTOR_URL", QUERY_EXECUTOR_DEFAULT);
    let run = wanted("query-executor", &query_executor_url, QUERY_EXECUTOR_DEFAULT);
    announce("QueryExecutor", &query_executor_url, run);
    if let Some((port, _)) = port_and_path(&query_executor_url).filter(|_| run) {
        let config = fakes::query_executor::Config {
            callback_url: env("FAKES_CALLBACK_URL", "http://127.0.0.1:8000"),
            query_executor_token: env("QUERY_EXECUTOR_TOKEN", ""),
            solr_etl_token: env("SOLR_ETL_TOKEN", ""),
            delay: std::time::Duration::from_millis(env("FAKE_QE_DELAY_MS", "800").parse().unwrap_or(800)),
            callbacks: !env("FAKE_QE_CALLBACKS", "on").eq_ignore_ascii_case("off"),
            cohort_size_limit: env("COHORT_SIZE_LIMIT", "20000").parse().unwrap_or(20_000),
        };
        let callbacks =
            if config.callbacks { format!("calling back {}", config.callback_url) } else { "no callbacks".into() };
        let executor = Arc::new(fakes::query_executor::QueryExecutor::new(config));
        let (url, task) = fakes::spawn(fakes::query_executor::router(executor), port).await?;
        tracing::info!("fake QueryExecutor on {url} ({callbacks})");
        tasks.push(task);
    }

    const EXPORT_API_DEFAULT: &str = "http://127.0.0.1:8095";
    let export_api_url = env("EXPORT_API_URL", EXPORT_API_DEFAULT);
    let run = wanted("export-api", &export_api_url, EXPORT_API_DEFAULT);
    announce("Export API", &export_api_url, run);
    if let Some((port, _)) = port_and_path(&export_api_url).filter(|_| run) {
        let config = fakes::export_api::Config {
            token: env("EXPORT_API_AUTH_TOKEN", ""),
            delay: std::time::Duration::from_millis(env("FAKE_EXPORT_DELAY_MS", "3000").parse().unwrap_or(3000)),
            outcome: fakes::export_api::Outcome::parse(&env("FAKE_EXPORT_OUTCOME", "success")),
        };
        let api = Arc::new(fakes::export_api::ExportApi::new(config, Some(fakes::s3_from_env().await)));
        let (url, task) = fakes::spawn(fakes::export_api::router(api), port).await?;
        tracing::info!("fake Export API on {url} (files into the exports bucket)");
        tasks.push(task);
    }

    const HADOOP_API_DEFAULT: &str = "http://127.0.0.1:8096";
    let hadoop_api_url = env("HADOOP_API_URL", HADOOP_API_DEFAULT);
    let run = wanted("hadoop-api", &hadoop_api_url, HADOOP_API_DEFAULT);
    announce("Hadoop API", &hadoop_api_url, run);
    if let Some((port, _)) = port_and_path(&hadoop_api_url).filter(|_| run) {
        let config = fakes::hadoop_api::Config {
            token: env("HADOOP_API_AUTH_TOKEN", ""),
            delay: std::time::Duration::from_millis(env("FAKE_HADOOP_DELAY_MS", "2000").parse().unwrap_or(2000)),
            outcome: fakes::hadoop_api::Outcome::parse(&env("FAKE_HADOOP_OUTCOME", "success")),
            chown: fakes::hadoop_api::Chown::parse(&env("FAKE_HADOOP_CHOWN", "success")),
        };
        let api = Arc::new(fakes::hadoop_api::HadoopApi::new(config));
        let (url, task) = fakes::spawn(fakes::hadoop_api::router(api), port).await?;
        tracing::info!("fake Hadoop API on {url} (GET /fake/calls lists the calls)");
        tasks.push(task);
    }

    tokio::signal::ctrl_c().await?;
    tasks.iter().for_each(|t| t.abort());
    Ok(())
}
