//! `m365-bench [--callers N] [--seconds T] [--users …] [--out DIR] [--instances N --redis]`:
//! the connector's cost over Graph itself, side by side with the same Graph requests made
//! directly. Prints the Markdown table; writes `bench.json`, `bench.md` and `latency.svg` into
//! `--out`. With `--instances 2 --redis`, the same load also runs against one instance with
//! Redis and two instances sharing a `redis-server`, and `scale-out.md` compares them.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use conformance::bench::{Options, run, setup::WorldSize};

#[derive(Parser)]
#[command(name = "m365-bench", about = "Benchmark the connector against direct Graph calls")]
struct Cli {
    /// Concurrent callers, each signed in as a different user. A comma-separated list
    /// (e.g. `1,8,32,128,1000`) runs one measured step per count over the same world.
    #[arg(long, value_delimiter = ',', default_value = "32")]
    callers: Vec<usize>,
    /// Length of the load phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Users in total, spread over the tenants (1,000 callers need 1,000 enabled users).
    #[arg(long, default_value_t = 1050)]
    users: usize,
    #[arg(long, default_value_t = 3)]
    tenants: usize,
    /// Mail messages in total.
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// OneDrive files in total.
    #[arg(long, default_value_t = 50_000)]
    files: usize,
    /// Chat messages in total.
    #[arg(long, default_value_t = 20_000)]
    chat_messages: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The connector's OBO max-reuse window.
    #[arg(long, default_value_t = 300)]
    obo_max_reuse_secs: u64,
    /// Where to write bench.json, bench.md and latency.svg.
    #[arg(long, default_value = "target/m365-bench")]
    out: PathBuf,
    /// The connector binary (default: the workspace's target/release/m365-connector).
    #[arg(long)]
    connector_bin: Option<PathBuf>,
    /// Also measure this many instances behind the bench's round-robin (after one instance).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Share state through a `redis-server` the bench starts (must be installed).
    #[arg(long)]
    redis: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.callers.contains(&0) || cli.seconds == 0 || cli.tenants == 0 || cli.instances == 0 {
        eprintln!("error: --callers, --seconds, --tenants and --instances must be at least 1");
        return ExitCode::from(2);
    }
    let connector_bin = cli.connector_bin.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/m365-connector")
    });
    let opts = Options {
        callers: cli.callers,
        seconds: cli.seconds,
        size: WorldSize {
            seed: cli.seed,
            tenants: cli.tenants,
            users: cli.users,
            messages: cli.messages,
            files: cli.files,
            chat_messages: cli.chat_messages,
        },
        out: cli.out,
        connector_bin,
        obo_max_reuse_secs: cli.obo_max_reuse_secs,
        instances: cli.instances,
        redis: cli.redis,
    };
    match run(&opts).await {
        Ok(outcomes) => {
            for outcome in &outcomes {
                println!("{}", outcome.markdown);
            }
            let layouts = conformance::bench::layouts(opts.instances, opts.redis).len();
            let summary = if layouts > 1 {
                Some("scale-out.md")
            } else {
                (outcomes.len() > 1).then_some("sweep.md")
            };
            if let Some(summary) = summary {
                match std::fs::read_to_string(opts.out.join(summary)) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("warning: {summary} unreadable: {e}"),
                }
            }
            println!("(JSON, Markdown and SVG written to {})", opts.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
