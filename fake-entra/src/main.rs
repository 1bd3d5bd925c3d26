//! `fake-entra --listen ADDR --fixtures DIR`: the fake as a process, for black-box runs.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;

/// A fake Microsoft Entra ID serving a fixture world. TEST-ONLY: its signing keys are public.
#[derive(Debug, Parser)]
#[command(name = "fake-entra", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Fixture directory (apps.toml and one file a tenant); default: the crate's fixtures.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Public base URL used in issuers and endpoints (default: http://{listen address}).
    #[arg(long)]
    base_url: Option<String>,
    /// Seed for random token lifetimes.
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let world = match &args.fixtures {
        Some(dir) => Arc::new(
            fixtures::load::world(dir)
                .with_context(|| format!("loading fixtures from {}", dir.display()))?,
        ),
        None => fixtures::standard_world(),
    };
    let mut builder = fake_entra::FakeEntra::builder().world(world).listen(args.listen);
    if let Some(url) = args.base_url {
        builder = builder.base_url(url);
    }
    if let Some(seed) = args.seed {
        builder = builder.seed(seed);
    }
    let entra = builder.start().await?;
    println!("fake-entra listening on {} (TEST-ONLY keys)", entra.uri());
    tokio::signal::ctrl_c().await.context("waiting for ctrl-c")?;
    Ok(())
}
