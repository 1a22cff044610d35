//! Operators: `sync-perimeters <file or s3://bucket/key>` applies a perimeter tree document (the
//! original's CSV, or JSON), and `sync-perimeters --fhir` the Organizations of `FHIR_URL`, with the
//! same code as the scheduled tasks; prints the report.
const USAGE: &str = "usage: sync-perimeters <file or s3://bucket/key> | --fhir";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    c360::telemetry::init();
    let source = std::env::args().nth(1).ok_or(USAGE)?;
    let tasks = scheduled_tasks::Tasks::from_env().await?;
    let now = c360::domain::time::now();
    let report = if source == "--fhir" {
        serde_json::to_value(
            c360::services::perimeter_sync::sync_fhir(&tasks.store, &tasks.fhir, &tasks.http, now).await?,
        )?
    } else if source.starts_with('-') {
        return Err(USAGE.into());
    } else {
        let document = c360::clients::documents::read_document(&tasks.s3, &source).await?;
        serde_json::to_value(c360::services::perimeter_sync::apply_document(&tasks.store, &document, now).await?)?
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
