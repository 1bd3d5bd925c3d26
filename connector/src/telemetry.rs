//! Diagnostic logging (not the audit log): `tracing` with an env filter, JSON or plain text.
//! Messages and fields never carry tokens, secrets, `Authorization` headers or content.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::{
    EnvFilter, Layer as _,
    filter::{FilterFn, filter_fn},
    fmt::MakeWriter,
    layer::SubscriberExt as _,
};

/// Libraries that log whole HTTP or JSON-RPC bodies at `debug` or `trace` (rmcp logs every
/// response, hyper and reqwest log bodies and headers). Whatever `RUST_LOG` says, they are held
/// at `warn`, so turning on debug logging can never put returned content or an
/// `Authorization` header into the logs. The clamp is a filter of its own on the output
/// layer, not a directive: a more specific directive (`RUST_LOG=rmcp::service=debug`) wins
/// over a directive, but not over this filter.
///
/// `warn`, not `info`: in stateless mode rmcp serves every POST as a fresh service and logs its
/// lifecycle at `info` ("Service initialized as server" with the client's info, "input stream
/// terminated", "serve finished") inside an `info` span. Three lines and a span per tool call
/// say nothing the connector's own request log and the audit record do not, and cost CPU.
const CONTENT_BEARING_TARGETS: [&str; 5] = ["rmcp", "hyper", "hyper_util", "reqwest", "h2"];

/// Composes the subscriber. `filter` is an `EnvFilter` directive used when `RUST_LOG` is unset.
pub fn get_subscriber<Sink>(
    filter: &str,
    json: bool,
    sink: Sink,
) -> Box<dyn Subscriber + Send + Sync>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let directives = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| filter.to_owned());
    subscriber_with(&directives, json, sink)
}

/// The subscriber for explicit `directives` (falling back to `info` when they do not parse).
fn subscriber_with<Sink>(
    directives: &str,
    json: bool,
    sink: Sink,
) -> Box<dyn Subscriber + Send + Sync>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let mut env_filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in CONTENT_BEARING_TARGETS {
        if let Ok(directive) = format!("{target}=warn").parse() {
            env_filter = env_filter.add_directive(directive);
        }
    }
    let registry = tracing_subscriber::registry().with(env_filter);
    if json {
        let layer = tracing_subscriber::fmt::layer().json().with_writer(sink);
        Box::new(registry.with(layer.with_filter(content_clamp())))
    } else {
        let layer = tracing_subscriber::fmt::layer().with_writer(sink);
        Box::new(registry.with(layer.with_filter(content_clamp())))
    }
}

/// Drops anything more verbose than `warn` from [`CONTENT_BEARING_TARGETS`] and their modules.
fn content_clamp() -> FilterFn<impl Fn(&Metadata<'_>) -> bool + Clone> {
    filter_fn(|meta: &Metadata<'_>| {
        *meta.level() <= Level::WARN || !is_content_bearing(meta.target())
    })
}

fn is_content_bearing(target: &str) -> bool {
    CONTENT_BEARING_TARGETS.iter().any(|t| {
        target.strip_prefix(t).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Installs the subscriber as the global default. Call once; later calls are ignored.
pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn debug_logging_never_lets_libraries_that_log_bodies_through() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = get_subscriber("debug", false, move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "rmcp::service", "response body: the quarterly numbers");
            tracing::debug!(target: "connector::server", "our own debug line");
        });
        let text = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned();
        assert!(text.contains("our own debug line"), "{text}");
        assert!(!text.contains("quarterly numbers"), "{text}");
    }

    #[test]
    fn a_more_specific_directive_cannot_reopen_the_clamp() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber =
            subscriber_with("debug,rmcp::service=trace,hyper::proto=trace", false, move || {
                sink.clone()
            });
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "rmcp::service", "sentinel-mail-body-4711");
            tracing::debug!(target: "hyper::proto::h1", "sentinel-header-4712");
            tracing::info!(target: "rmcp::service", "sentinel-lifecycle-4713");
            tracing::warn!(target: "rmcp::service", "a warning stays");
            tracing::debug!(target: "connector::tools", "our own debug line passes");
        });
        let text = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned();
        assert!(!text.contains("sentinel-mail-body-4711"), "{text}");
        assert!(!text.contains("sentinel-header-4712"), "{text}");
        assert!(!text.contains("sentinel-lifecycle-4713"), "{text}");
        assert!(text.contains("a warning stays"), "{text}");
        assert!(text.contains("our own debug line passes"), "{text}");
    }
}
