//! `fake-graph --listen ADDR --entra URL --fixtures DIR`: the library's server as a binary.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Parser;

/// A fake Microsoft Graph serving the fixture world.
#[derive(Parser)]
#[command(name = "fake-graph", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// fake-entra's base URL (JWKS and CAE feed).
    #[arg(long)]
    entra: String,
    /// Directory of the fixture world (default: fixtures/tenants).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Public base URL for links, when it differs from the listen address.
    #[arg(long)]
    public_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let dir = args.fixtures.unwrap_or_else(fixtures::load::default_dir);
    let world =
        fixtures::load::world(&dir).map_err(|e| anyhow::anyhow!("cannot load fixtures: {e}"))?;
    let mut builder = fake_graph::FakeGraph::builder()
        .world(Arc::new(world))
        .entra(&args.entra)
        .listen(args.listen);
    if let Some(url) = &args.public_url {
        builder = builder.public_url(url);
    }
    let graph = builder.start().await?;
    tracing::info!(uri = %graph.uri(), "fake-graph listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
