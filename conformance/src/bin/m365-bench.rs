//! `m365-bench [--callers N] [--seconds T] [--users …] [--out DIR]`: the connector's cost
//! over Graph itself, side by side with the same Graph requests made directly. Prints the
//! Markdown table; writes `bench.json`, `bench.md` and `latency.svg` into `--out`.

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.callers.contains(&0) || cli.seconds == 0 || cli.tenants == 0 {
        eprintln!("error: --callers, --seconds and --tenants must be at least 1");
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
    };
    match run(&opts).await {
        Ok(outcomes) => {
            for outcome in &outcomes {
                println!("{}", outcome.markdown);
            }
            if outcomes.len() > 1 {
                match std::fs::read_to_string(opts.out.join("sweep.md")) {
                    Ok(sweep) => println!("{sweep}"),
                    Err(e) => eprintln!("warning: sweep.md unreadable: {e}"),
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
