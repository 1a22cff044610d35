//! Operators: `sync-perimeters <file or s3://bucket/key>` applies a perimeter tree document (the
//! original's CSV, or JSON) with the same code as the scheduled task, and prints the report.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    c360::telemetry::init();
    let location = std::env::args().nth(1).ok_or("usage: sync-perimeters <file or s3://bucket/key>")?;
    let tasks = scheduled_tasks::Tasks::from_env().await?;
    let document = c360::documents::read_document(&tasks.s3, &location).await?;
    let report = c360::perimeter_sync::apply_document(&tasks.store, &document, c360::domain::time::now()).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
