//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! A deliberately small registry (counters and fixed-bucket histograms keyed by name and
//! label values) instead of a metrics framework: the connector exports a few dozen series and
//! this keeps the dependency tree lean. Label values must never carry tokens, user ids or
//! content: only bounded vocabularies (tool names, status codes, reasons).

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex};

/// Latency buckets in seconds, from sub-millisecond cache hits to multi-second Graph calls.
const BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Well-known series names, so call sites and tests agree.
pub mod names {
    pub const HTTP_REQUESTS: &str = "m365_http_requests_total";
    pub const HTTP_LATENCY: &str = "m365_http_request_duration_seconds";
    pub const TOKENS_REJECTED: &str = "m365_tokens_rejected_total";
    pub const OBO_EXCHANGES: &str = "m365_obo_exchanges_total";
    pub const OBO_CACHE_HITS: &str = "m365_obo_cache_hits_total";
    pub const GRAPH_RESPONSES: &str = "m365_graph_responses_total";
    pub const GRAPH_LATENCY: &str = "m365_graph_request_duration_seconds";
    pub const GRAPH_THROTTLED: &str = "m365_graph_throttled_total";
    pub const TOOL_CALLS: &str = "m365_tool_calls_total";
    pub const TOOL_LATENCY: &str = "m365_tool_call_duration_seconds";
    pub const SHED: &str = "m365_requests_shed_total";
}

type Key = (&'static str, Vec<(&'static str, String)>);

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The registry. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Key, u64>>,
    histograms: Mutex<BTreeMap<Key, Histogram>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry(key(name, labels)).or_default() += by;
    }

    /// Records one observation (in seconds) in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let mut histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let h = histograms.entry(key(name, labels)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The current value of a counter (0 when never touched); for tests and health checks.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.get(&key(name, labels)).copied().unwrap_or(0)
    }

    /// Renders every series in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, labels), value) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
        }
        drop(counters);
        let histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        last = "";
        for ((name, labels), h) in histograms.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            for (i, bound) in BUCKETS.iter().enumerate() {
                let le = bound.to_string();
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some(&le)),
                    h.buckets[i]
                );
            }
            let _ =
                writeln!(out, "{name}_bucket{} {}", render_labels(labels, Some("+Inf")), h.count);
            let _ = writeln!(out, "{name}_sum{} {}", render_labels(labels, None), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", render_labels(labels, None), h.count);
        }
        out
    }
}

fn render_labels(labels: &[(&'static str, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_prometheus_text_format() {
        let m = Metrics::new();
        m.inc(names::OBO_EXCHANGES, &[("outcome", "ok")]);
        m.inc(names::OBO_EXCHANGES, &[("outcome", "ok")]);
        m.observe(names::GRAPH_LATENCY, &[("status", "200")], 0.003);
        let text = m.render();
        assert!(text.contains("# TYPE m365_obo_exchanges_total counter"));
        assert!(text.contains("m365_obo_exchanges_total{outcome=\"ok\"} 2"));
        assert!(
            text.contains(
                "m365_graph_request_duration_seconds_bucket{status=\"200\",le=\"0.005\"} 1"
            )
        );
        assert!(text.contains(
            "m365_graph_request_duration_seconds_bucket{status=\"200\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains("m365_graph_request_duration_seconds_count{status=\"200\"} 1"));
        assert_eq!(m.counter(names::OBO_EXCHANGES, &[("outcome", "ok")]), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.inc(names::TOKENS_REJECTED, &[("reason", "bad \"quote\"")]);
        assert!(m.render().contains("reason=\"bad \\\"quote\\\"\""));
    }
}
