//! Diagnostic logging (not the audit log): `tracing` with an env filter, JSON or plain text.
//! Messages and fields never carry tokens, secrets, `Authorization` headers or content.

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, layer::SubscriberExt as _};

/// Composes the subscriber. `filter` is an `EnvFilter` directive used when `RUST_LOG` is unset.
pub fn get_subscriber<Sink>(
    filter: &str,
    json: bool,
    sink: Sink,
) -> Box<dyn Subscriber + Send + Sync>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let registry = tracing_subscriber::registry().with(env_filter);
    if json {
        Box::new(registry.with(tracing_subscriber::fmt::layer().json().with_writer(sink)))
    } else {
        Box::new(registry.with(tracing_subscriber::fmt::layer().with_writer(sink)))
    }
}

/// Installs the subscriber as the global default. Call once; later calls are ignored.
pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}
