//! Reading an operator-provided document (a perimeter tree) from S3 (`s3://bucket/key`) or, for
//! operators and local runs, from a file path.
use crate::error::{AppError, AppResult};

pub async fn read_document(s3: &aws_sdk_s3::Client, location: &str) -> AppResult<String> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return std::fs::read_to_string(location)
            .map_err(|e| AppError::BadRequest(format!("cannot read {location}: {e}")));
    };
    let (bucket, key) =
        rest.split_once('/').ok_or_else(|| AppError::BadRequest(format!("{location}: expected s3://bucket/key")))?;
    let object = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        AppError::Internal(format!("cannot read {location}: {:?}", e.as_service_error().map(|s| s.to_string())))
    })?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| AppError::Internal(format!("cannot read {location}: {e}")))?
        .into_bytes();
    String::from_utf8(bytes.to_vec()).map_err(|_| AppError::BadRequest(format!("{location} is not UTF-8 text")))
}
