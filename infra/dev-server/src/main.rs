//! `dev-server [--seed | --seed-only]`: seeds the demo data when asked, then serves the whole API on
//! $PORT (`--seed-only` stops after seeding: the benchmark times a start without it).
//! `--load-dataset USERS ACCESSES` and `--cohort-dataset OWNERS REQUESTS` write a load-test data set
//! and stop (infra/scripts/bench-accesses.sh, infra/scripts/bench-cohort.sh); `--exports-dataset OWNERS
//! EXPORTS` writes exports of the cohort data set's owners and stops (infra/scripts/bench-exports.sh).
//! `--backfill-summaries` runs the workspace summaries backfill (printing its progress) and stops; a
//! table whose layout is not marked ready is backfilled before serving.
use c360::{
    http::{serve, AppState},
    services::seed::{seed_cohort_dataset, seed_demo, seed_exports_dataset, seed_load_dataset, DemoSeed},
};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    c360::telemetry::init();
    let started = std::time::Instant::now();
    let state = AppState::from_env().await?;
    let args: Vec<String> = std::env::args().collect();
    let seed_only = args.iter().any(|a| a == "--seed-only");
    if seed_only || args.iter().any(|a| a == "--seed") {
        let csv_path = env("PERIMETERS_CSV", "infra/data/perimeters.demo.csv");
        let csv =
            std::fs::read_to_string(&csv_path).map_err(|e| format!("cannot read PERIMETERS_CSV {csv_path}: {e}"))?;
        let apps: Vec<String> = state.api_keys.usernames().map(|(_, u)| u.to_owned()).collect();
        let summary = seed_demo(
            &state.store,
            DemoSeed {
                admin_username: &env("DEV_ADMIN_USERNAME", "admin"),
                admin_password: &env("DEV_ADMIN_PASSWORD", "admin"),
                perimeters_csv: &csv,
                app_usernames: apps.iter().map(String::as_str).collect(),
            },
        )
        .await
        .map_err(|e| format!("seeding failed: {e}"))?;
        tracing::info!(%summary, "demo data seeded");
        if seed_only {
            return Ok(());
        }
    }
    // `--load-dataset USERS ACCESSES`: the population of the accesses load run (infra/scripts/bench.sh).
    if let Some(at) = args.iter().position(|a| a == "--load-dataset") {
        let number = |i: usize| {
            args.get(at + i).and_then(|v| v.parse::<usize>().ok()).ok_or("usage: --load-dataset USERS ACCESSES")
        };
        let (users, accesses) =
            seed_load_dataset(&state.store, number(1)?, number(2)?).await.map_err(|e| format!("load dataset: {e}"))?;
        tracing::info!(users, accesses, "load dataset written");
        return Ok(());
    }
    // `--cohort-dataset OWNERS REQUESTS`: the cohort workspace of the cohort load run (bench-cohort.sh).
    if let Some(at) = args.iter().position(|a| a == "--cohort-dataset") {
        let number = |i: usize| {
            args.get(at + i).and_then(|v| v.parse::<usize>().ok()).ok_or("usage: --cohort-dataset OWNERS REQUESTS")
        };
        let written = seed_cohort_dataset(&state.store, number(1)?, number(2)?)
            .await
            .map_err(|e| format!("cohort dataset: {e}"))?;
        // One line on stdout for the bench script (the logs go to stderr or are filtered).
        println!("{written:?}");
        return Ok(());
    }
    // `--exports-dataset OWNERS EXPORTS`: the exports of the exports load run (bench-exports.sh).
    if let Some(at) = args.iter().position(|a| a == "--exports-dataset") {
        let number = |i: usize| {
            args.get(at + i).and_then(|v| v.parse::<usize>().ok()).ok_or("usage: --exports-dataset OWNERS EXPORTS")
        };
        let written = seed_exports_dataset(&state.store, number(1)?, number(2)?)
            .await
            .map_err(|e| format!("exports dataset: {e}"))?;
        println!("{written:?}");
        return Ok(());
    }
    let backfill_only = args.iter().any(|a| a == "--backfill-summaries");
    if backfill_only || !state.store.workspace_layout_ready().await.map_err(|e| format!("layout check: {e}"))? {
        let done = c360::services::backfill::backfill_summaries(&state.store, |p| {
            if backfill_only {
                println!("{p}");
            }
        })
        .await
        .map_err(|e| format!("summaries backfill: {e}"))?;
        tracing::info!(%done, "workspace summaries backfilled");
        if backfill_only {
            println!("done: {done}");
            return Ok(());
        }
    }
    if let Some(queue_url) = state.settings.cohort_jobs_queue_url.clone() {
        let worker = cohort_worker::Worker::from_env().await?;
        let sqs = aws_sdk_sqs::Client::new(&c360::aws::sdk_config().await);
        tokio::spawn(dev_server::triggers::poll_cohort_jobs(worker, sqs, queue_url));
        tokio::spawn(dev_server::triggers::run_refresh_schedules(state.store.clone(), state.jobs.clone()));
    }
    if let Some(queue_url) = state.settings.export_jobs_queue_url.clone() {
        let worker = export_worker::Worker::from_env().await?;
        let sqs = aws_sdk_sqs::Client::new(&c360::aws::sdk_config().await);
        tokio::spawn(dev_server::triggers::poll_export_jobs(worker, sqs, queue_url));
    }
    tokio::spawn(dev_server::triggers::broadcast_maintenances(state.notifier.clone()));
    tracing::info!(startup_ms = started.elapsed().as_millis() as u64, "dev server ready");
    serve::run(dev_server::app(&state)).await
}
