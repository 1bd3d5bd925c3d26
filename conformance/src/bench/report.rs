//! Percentiles, the JSON and Markdown reports and the hand-written SVG histogram.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Outcome, setup::WorldCounts};

/// Latency summary of one side, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Side {
    pub calls: usize,
    pub errors: usize,
    pub wall_secs: f64,
    pub calls_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

impl Side {
    pub fn from(latencies: &mut [Duration], errors: usize, wall: Duration) -> Self {
        latencies.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pct = |p: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
            ms(latencies[i])
        };
        let n = latencies.len();
        let wall_secs = wall.as_secs_f64();
        Self {
            calls: n,
            errors,
            wall_secs,
            calls_per_sec: if wall_secs > 0.0 { n as f64 / wall_secs } else { 0.0 },
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
            mean_ms: if n > 0 {
                latencies.iter().map(|d| ms(*d)).sum::<f64>() / n as f64
            } else {
                0.0
            },
            max_ms: latencies.last().map(|d| ms(*d)).unwrap_or(0.0),
        }
    }
}

/// One row of the Markdown table: metric, value, target, verdict.
pub struct Row {
    pub metric: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
}

pub fn markdown(title: &str, rows: &[Row]) -> String {
    let mut s = format!("### {title}\n\n| metric | value | target | met |\n|---|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        s.push_str(&format!("| {} | {} | {} | {met} |\n", r.metric, r.value, r.target));
    }
    s
}

/// Two overlaid latency distributions on a log-scaled time axis, as SVG.
pub fn histogram_svg(connector: &[Duration], direct: &[Duration]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 420.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const B: f64 = 60.0;
    const BINS: usize = 60;
    if connector.is_empty() && direct.is_empty() {
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"300\" height=\"40\"><text x=\"10\" y=\"25\">no calls</text></svg>\n".to_owned();
    }
    let us = |d: &Duration| (d.as_secs_f64() * 1e6).max(1.0);
    let all = connector.iter().chain(direct.iter());
    let lo = all.clone().map(us).fold(f64::MAX, f64::min).max(1.0);
    let hi = all.map(us).fold(0.0, f64::max).max(lo * 1.01);
    let (llo, lhi) = (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0));
    let bin = |v: f64| (((v.log10() - llo) / (lhi - llo) * BINS as f64) as usize).min(BINS - 1);
    let counts = |xs: &[Duration]| {
        let mut c = vec![0f64; BINS];
        for d in xs {
            c[bin(us(d))] += 1.0;
        }
        let n = xs.len().max(1) as f64;
        c.iter_mut().for_each(|x| *x /= n);
        c
    };
    let (cc, cd) = (counts(connector), counts(direct));
    let top = cc.iter().chain(cd.iter()).copied().fold(0.0, f64::max).max(1e-9);
    let x = |i: f64| L + i / BINS as f64 * (W - L - R);
    let y = |f: f64| H - B - f / top * (H - T - B);
    let path = |c: &[f64]| {
        let mut p = format!("M{:.1},{:.1}", x(0.0), y(0.0));
        for (i, f) in c.iter().enumerate() {
            p.push_str(&format!(
                " L{:.1},{:.1} L{:.1},{:.1}",
                x(i as f64),
                y(*f),
                x(i as f64 + 1.0),
                y(*f)
            ));
        }
        p.push_str(&format!(" L{:.1},{:.1} Z", x(BINS as f64), y(0.0)));
        p
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Tool-call latency: through the connector vs. the same Graph requests direct</text>\n",
        W / 2.0
    );
    s.push_str(&format!(
        "<path d=\"{}\" fill=\"#1f77b4\" fill-opacity=\"0.35\" stroke=\"#1f77b4\"/>\n",
        path(&cd)
    ));
    s.push_str(&format!(
        "<path d=\"{}\" fill=\"#d62728\" fill-opacity=\"0.35\" stroke=\"#d62728\"/>\n",
        path(&cc)
    ));
    // Axes, decade ticks and labels.
    s.push_str(&format!(
        "<line x1=\"{L}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"black\"/>\n<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{yb}\" stroke=\"black\"/>\n",
        yb = H - B,
        xr = W - R
    ));
    let mut decade = llo;
    while decade <= lhi + 1e-9 {
        let px = L + (decade - llo) / (lhi - llo) * (W - L - R);
        let v = 10f64.powf(decade);
        let label = if v >= 1e6 {
            format!("{} s", v / 1e6)
        } else if v >= 1e3 {
            format!("{} ms", v / 1e3)
        } else {
            format!("{v} µs")
        };
        s.push_str(&format!(
            "<line x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"black\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
            H - B,
            H - B + 5.0,
            H - B + 20.0
        ));
        decade += 1.0;
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">latency per tool call (log scale)</text>\n\
         <text x=\"18\" y=\"{}\" transform=\"rotate(-90 18 {})\" text-anchor=\"middle\">share of calls (max {:.1} %)</text>\n",
        (L + W - R) / 2.0,
        H - 15.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0,
        top * 100.0
    ));
    let lx = W - R - 260.0;
    s.push_str(&format!(
        "<rect x=\"{lx}\" y=\"{T}\" width=\"12\" height=\"12\" fill=\"#d62728\" fill-opacity=\"0.5\"/><text x=\"{}\" y=\"{}\">through the connector (n={})</text>\n\
         <rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"#1f77b4\" fill-opacity=\"0.5\"/><text x=\"{}\" y=\"{}\">direct to fake-graph (n={})</text>\n",
        lx + 18.0,
        T + 10.0,
        connector.len(),
        T + 18.0,
        lx + 18.0,
        T + 28.0,
        direct.len(),
    ));
    s.push_str("</svg>\n");
    s
}

/// The layouts side by side, one row per (callers, layout): what scaling out costs per call
/// and whether the instances still exchange once per user.
pub fn scale_out_summary(
    outcomes: &[Outcome],
    seconds: u64,
    counts: &WorldCounts,
) -> (String, Value) {
    let mut md = format!(
        "## m365-bench scale-out: {} s per layout, same world and load; {} tenants, {} users\n\n\
         Requests go to the instances round-robin, one request at a time (no affinity).\n\n\
         | callers | layout | tool calls/s | p50 ms | p95 ms | p99 ms | errors | OBO exchanges per user (min / mean / max) | user×scope repeats | L2 hits | Redis errors | CPU s per 1,000 calls (all instances) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        seconds, counts.tenants, counts.users,
    );
    let mut rows = Vec::new();
    for o in outcomes {
        let j = &o.json;
        let f = |ptr: &str| j.pointer(ptr).and_then(Value::as_f64).unwrap_or(f64::NAN);
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.0} / {:.2} / {:.0} | {} | {:.0} | {:.0} | {:.2} |\n",
            o.callers,
            o.layout.label(),
            f("/connector/calls_per_sec"),
            f("/connector/p50_ms"),
            f("/connector/p95_ms"),
            f("/connector/p99_ms"),
            f("/connector/errors"),
            f("/obo/per_user_min"),
            f("/obo/per_user_mean"),
            f("/obo/per_user_max"),
            f("/obo/user_scope_repeats"),
            f("/redis/l2_hits"),
            f("/redis/errors"),
            f("/cpu/secs_per_1000_calls"),
        ));
        rows.push(json!({
            "callers": o.callers, "instances": o.layout.instances, "redis": o.layout.redis,
            "connector": j["connector"], "obo": j["obo"], "redis_metrics": j["redis"],
            "cpu": j["cpu"], "loadavg": j["loadavg"],
        }));
    }
    md.push_str("\nload average at the end of each layout: ");
    md.push_str(
        &outcomes
            .iter()
            .map(|o| format!("{}: {}", o.layout.label(), o.json["loadavg"].as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join("; "),
    );
    md.push('\n');
    for o in outcomes {
        if let Some(census) = &o.census {
            md.push_str(&format!(
                "\nRedis after {} callers, {} (a step's keys; locks are released at once):\n\n{}",
                o.callers,
                o.layout.label(),
                census.markdown()
            ));
        }
    }
    (md, json!({"seconds": seconds, "world": counts, "steps": rows}))
}

/// One row per step: the figures the targets are about.
pub fn sweep_summary(outcomes: &[Outcome], seconds: u64, counts: &WorldCounts) -> (String, Value) {
    let mut md = format!(
        "## m365-bench sweep: {} s per step; {} tenants, {} users, {} messages, {} files, {} chat messages\n\n\
         | callers | calls/s connector | calls/s direct | connector / direct | p50 connector / direct (ms) | p50 ratio | p99 connector / direct (ms) | errors | OBO exchanges per user (max) | peak RSS MiB | RSS KiB per caller | CPU s per 1,000 calls |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        seconds, counts.tenants, counts.users, counts.messages, counts.files, counts.chat_messages
    );
    let mut rows = Vec::new();
    for o in outcomes {
        let j = &o.json;
        let f = |ptr: &str| j.pointer(ptr).and_then(Value::as_f64).unwrap_or(f64::NAN);
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.1} % | {:.1} / {:.1} | {:.2}× | {:.1} / {:.1} | {} | {} | {:.1} | {:.1} | {:.2} |\n",
            o.callers,
            f("/connector/calls_per_sec"),
            f("/direct/calls_per_sec"),
            f("/ratios/throughput") * 100.0,
            f("/connector/p50_ms"),
            f("/direct/p50_ms"),
            f("/ratios/p50"),
            f("/connector/p99_ms"),
            f("/direct/p99_ms"),
            f("/connector/errors"),
            f("/obo/per_user_max"),
            f("/rss/peak_kib") / 1024.0,
            f("/rss/growth_per_caller_kib"),
            f("/cpu/secs_per_1000_calls"),
        ));
        rows.push(json!({
            "callers": o.callers,
            "connector": j["connector"], "direct": j["direct"], "ratios": j["ratios"],
            "obo": j["obo"], "rss": j["rss"], "cpu": j["cpu"], "loadavg": j["loadavg"],
        }));
    }
    (md, json!({"seconds": seconds, "world": counts, "steps": rows}))
}
