//! Logging: JSON lines (CloudWatch-friendly) unless `LOG_FORMAT=text`. Fields are chosen by the
//! code, never whole headers or bodies, so no token or password reaches a log.
use tracing_subscriber::{fmt, EnvFilter};

/// Every binary's first call: logging, and the allocator settings of [`crate::allocator`].
pub fn init() {
    crate::allocator::tune();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            EnvFilter::try_new(std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_else(|_| "info".into()).to_lowercase())
        })
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let result = if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text")) {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    };
    // Already initialised (tests, or a second router in the dev server): keep the first.
    let _ = result;
}
