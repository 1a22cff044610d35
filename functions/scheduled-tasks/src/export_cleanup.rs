//! `export_cleanup` (spec §7.7): the files of finished csv/xlsx exports past `DAYS_TO_KEEP_EXPORTED_FILES`
//! are deleted from the exports bucket, the export gets its `clean_datetime` and the owner an e-mail.
//! Idempotent (a cleaned export is skipped; deleting a missing object succeeds), and one export that
//! fails is reported and skipped instead of stopping the run as in the original. The bucket's
//! lifecycle rule on `exports/` is the safety net if the task stops running.
use c360::{
    clients::mail::Mailer,
    config::Settings,
    domain::{
        cohort::JobStatus,
        exports::{s3_location, Export},
        time::DateTime,
    },
    services::notify::{self, ExportNews},
    store::{DynamoStore, StoreError},
};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct CleanupRun {
    pub cleaned: usize,
    pub failed: usize,
}

fn due(export: &Export) -> bool {
    export.job.request_job_status == JobStatus::Finished
        && export.output_format.is_downloadable()
        && export.is_user_notified
        && export.clean_datetime.is_none()
}

pub async fn run(
    store: &DynamoStore,
    s3: &aws_sdk_s3::Client,
    mailer: &impl Mailer,
    settings: &Settings,
    now: DateTime,
) -> Result<CleanupRun, StoreError> {
    let cutoff = now - ::time::Duration::days(settings.days_to_keep_exported_files);
    let mut run = CleanupRun::default();
    for export in store.exports_created_until(cutoff).await?.into_iter().filter(due) {
        match clean(store, s3, &export, now).await {
            Ok(Some(cleaned)) => {
                run.cleaned += 1;
                if let Some(owner) = store.user(&cleaned.owner).await? {
                    let email = notify::export_news(settings, &owner, &cleaned, ExportNews::FilesDeleted);
                    notify::deliver(mailer, email, "exported_files_deleted").await;
                }
            }
            Ok(None) => {}
            Err(reason) => {
                run.failed += 1;
                tracing::warn!(export = %export.uuid, %reason, "exported files not deleted");
            }
        }
    }
    Ok(run)
}

/// Deletes one export's zip and records it; `None` when another run recorded it first.
async fn clean(
    store: &DynamoStore,
    s3: &aws_sdk_s3::Client,
    export: &Export,
    now: DateTime,
) -> Result<Option<Export>, String> {
    let path = export.file_path();
    let (bucket, key) = s3_location(&path).ok_or_else(|| format!("{path} is not in the exports bucket"))?;
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("Storage provider error: {:?}", e.as_service_error().map(|s| s.to_string())))?;
    let mut cleaned = export.clone();
    cleaned.clean_datetime = Some(now);
    match store.save_export(&cleaned).await {
        Ok(saved) => Ok(Some(saved)),
        Err(StoreError::ConditionFailed) => Ok(None),
        Err(other) => Err(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_notified_finished_downloadable_exports_not_yet_cleaned_are_due() {
        let mut export: Export = serde_json::from_value(serde_json::json!({
            "uuid": uuid::Uuid::nil(), "owner": "u", "output_format": "csv", "target_name": "t",
            "target_location": "s3://b/exports", "summary": {"owner_display": "u"},
            "request_job_status": "finished", "is_user_notified": true,
            "created_at": "2025-01-01T00:00:00.000000Z", "modified_at": "2025-01-01T00:00:00.000000Z",
        }))
        .unwrap();
        assert!(due(&export));
        export.is_user_notified = false;
        assert!(!due(&export));
        export.is_user_notified = true;
        export.clean_datetime = Some(c360::domain::time::now());
        assert!(!due(&export));
        export.clean_datetime = None;
        export.output_format = c360::domain::exports::OutputFormat::Hive;
        assert!(!due(&export));
    }
}
