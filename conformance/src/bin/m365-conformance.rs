//! `m365-conformance --connector-bin PATH [--filter ID…] [--junit FILE]`: runs the catalogue
//! against a connector binary (spawned per scenario, configured against in-process fakes),
//! prints one line per scenario, a table of the promises proven, and ends with
//! `N passed, N failed`. Nothing is skipped: a scenario that moves the clock runs the binary
//! under libfaketime (and fails if it is not installed); the S scenarios' outputs are compared
//! with the committed insta snapshots.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Parser;
use conformance::{
    ConnectorMode,
    scenarios::{self, Promise},
};

#[derive(Parser)]
#[command(
    name = "m365-conformance",
    about = "Run the conformance catalogue against a connector binary"
)]
struct Cli {
    /// The `m365-connector` binary to test.
    #[arg(long)]
    connector_bin: PathBuf,
    /// Run only scenarios whose id starts with one of these (e.g. A05, R01, T).
    #[arg(long, num_args = 1..)]
    filter: Vec<String>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// The committed S-scenario snapshots (default: the source tree this binary was built from).
    #[arg(long)]
    snapshots: Option<PathBuf>,
}

enum Verdict {
    Pass,
    Fail(String),
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One row per promise: how many of its scenarios ran and passed.
fn promise_table(cases: &[(&str, &str, Promise, f64, Verdict)]) -> String {
    let mut out = format!("\n{:<18} {:>4} {:>7}\n", "promise", "run", "passed");
    for promise in Promise::ALL {
        let of: Vec<_> = cases.iter().filter(|c| c.2 == promise).collect();
        let ok = of.iter().filter(|c| matches!(c.4, Verdict::Pass)).count();
        out.push_str(&format!("{:<18} {:>4} {:>7}\n", promise.label(), of.len(), ok));
    }
    out.push('\n');
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    conformance::install_crypto();
    if !cli.connector_bin.is_file() {
        eprintln!("error: --connector-bin {} is not a file", cli.connector_bin.display());
        return ExitCode::from(2);
    }
    let selected: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|s| {
            cli.filter.is_empty()
                || cli
                    .filter
                    .iter()
                    .any(|f| s.id.to_ascii_uppercase().starts_with(&f.to_ascii_uppercase()))
        })
        .collect();
    let snapshot_dir = cli.snapshots.clone().unwrap_or_else(conformance::snapshots::default_dir);
    if selected.iter().any(|s| s.needs_clock)
        && let Err(e) = conformance::world::libfaketime()
    {
        // Every scenario that moves the clock will fail with this; say it once up front.
        eprintln!("error: {e:#}");
    }
    let (mut passed, mut failed) = (0, 0);
    let mut cases = Vec::new();
    // D01 over the whole run: every Graph request of every scenario (error, retry and CAE
    // paths included) is a read.
    let (mut graph_requests, mut not_reads) = (0usize, Vec::new());
    for s in selected {
        let started = Instant::now();
        let mut builder = (s.setup)().mode(ConnectorMode::Binary(cli.connector_bin.clone()));
        if s.needs_clock {
            builder = builder.with_moving_clock();
        }
        let verdict = match builder.start().await {
            Err(e) => Verdict::Fail(format!("world did not start: {e:#}")),
            Ok(world) => {
                let r = (s.run)(&world).await;
                let recorded = world.snapshots();
                let journal = world.graph.journal();
                graph_requests += journal.len();
                not_reads.extend(
                    scenarios::read_only_violations(&journal)
                        .into_iter()
                        .map(|v| format!("{}: {v}", s.id)),
                );
                world.shutdown().await;
                let r = r.and_then(|()| {
                    if s.is_snapshot() {
                        conformance::snapshots::compare(&snapshot_dir, s.id, &recorded)
                    } else {
                        Ok(())
                    }
                });
                match r {
                    Ok(()) => Verdict::Pass,
                    Err(e) => Verdict::Fail(format!("{e:#}")),
                }
            }
        };
        let secs = started.elapsed().as_secs_f64();
        match &verdict {
            Verdict::Pass => {
                passed += 1;
                println!("PASS {} {} ({secs:.1}s)", s.id, s.name);
            }
            Verdict::Fail(why) => {
                failed += 1;
                println!("FAIL {} {}: {why}", s.id, s.name);
            }
        }
        cases.push((s.id, s.name, s.promise(), secs, verdict));
    }
    if cases.len() > 1 {
        // Only meaningful over more than one scenario; a filtered run of one is that
        // scenario's own business.
        let verdict = if not_reads.is_empty() {
            passed += 1;
            println!(
                "PASS D01/whole-run every Graph request of the run is a read ({graph_requests} requests)"
            );
            Verdict::Pass
        } else {
            failed += 1;
            let why = format!("Graph requests that are not reads: {not_reads:?}");
            println!("FAIL D01/whole-run every Graph request of the run is a read: {why}");
            Verdict::Fail(why)
        };
        cases.push((
            "D01/whole-run",
            "every Graph request of the run is a read",
            Promise::ReadOnly,
            0.0,
            verdict,
        ));
    }
    if let Some(path) = &cli.junit {
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"m365-conformance\" tests=\"{}\" failures=\"{failed}\" skipped=\"0\">\n",
            cases.len()
        );
        for (id, name, _, secs, v) in &cases {
            xml.push_str(&format!(
                "  <testcase classname=\"conformance\" name=\"{} {}\" time=\"{secs:.3}\"",
                xml_escape(id),
                xml_escape(name)
            ));
            match v {
                Verdict::Pass => xml.push_str("/>\n"),
                Verdict::Fail(why) => xml
                    .push_str(&format!("><failure message=\"{}\"/></testcase>\n", xml_escape(why))),
            }
        }
        xml.push_str("</testsuite>\n");
        if let Err(e) = std::fs::write(path, xml) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    print!("{}", promise_table(&cases));
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
