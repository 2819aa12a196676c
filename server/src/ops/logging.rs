//! The log subscriber: `LOG_FORMAT=text` (tracing-subscriber's readable
//! lines, the default) or `json` (one JSON object per line, with the
//! request's span, so its `request_id`, under `"span"`), filtered by
//! `RUST_LOG` (default `info`).

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `RUST_LOG`, or `info`.
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
}

/// A subscriber writing `format` to `writer`, through `filter`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Logs to standard output in `format` from now on.
pub fn init(format: LogFormat) {
    // Fails only if a subscriber is already set, which then keeps logging.
    let _ =
        tracing::subscriber::set_global_default(subscriber(format, env_filter(), std::io::stdout));
}
