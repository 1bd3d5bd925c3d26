//! `m365-conformance --connector-bin PATH [--filter ID…] [--junit FILE]`: runs the catalogue
//! against a connector binary (spawned per scenario, configured against in-process fakes) and
//! ends with `N passed, N failed`. Scenarios that move the shared clock are skipped: a child
//! process keeps the system clock.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Parser;
use conformance::{ConnectorMode, scenarios};

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
}

enum Verdict {
    Pass,
    Fail(String),
    Skip(&'static str),
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut cases = Vec::new();
    for s in selected {
        let started = Instant::now();
        let verdict = if s.needs_clock {
            Verdict::Skip("moves the shared clock, which a spawned connector does not follow")
        } else {
            match (s.setup)().mode(ConnectorMode::Binary(cli.connector_bin.clone())).start().await {
                Err(e) => Verdict::Fail(format!("world did not start: {e:#}")),
                Ok(world) => {
                    let r = (s.run)(&world).await;
                    world.shutdown().await;
                    match r {
                        Ok(()) => Verdict::Pass,
                        Err(e) => Verdict::Fail(format!("{e:#}")),
                    }
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
            Verdict::Skip(why) => {
                skipped += 1;
                println!("SKIP {} {}: {why}", s.id, s.name);
            }
        }
        cases.push((s.id, s.name, secs, verdict));
    }
    if let Some(path) = &cli.junit {
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"m365-conformance\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\">\n",
            cases.len()
        );
        for (id, name, secs, v) in &cases {
            xml.push_str(&format!(
                "  <testcase classname=\"conformance\" name=\"{} {}\" time=\"{secs:.3}\"",
                xml_escape(id),
                xml_escape(name)
            ));
            match v {
                Verdict::Pass => xml.push_str("/>\n"),
                Verdict::Fail(why) => xml
                    .push_str(&format!("><failure message=\"{}\"/></testcase>\n", xml_escape(why))),
                Verdict::Skip(why) => xml
                    .push_str(&format!("><skipped message=\"{}\"/></testcase>\n", xml_escape(why))),
            }
        }
        xml.push_str("</testsuite>\n");
        if let Err(e) = std::fs::write(path, xml) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
