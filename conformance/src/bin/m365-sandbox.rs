//! `m365-sandbox [--as UPN] [--port PORT]`: the whole world on loopback with the fixture
//! tenants, for a person and a standard MCP client. Prints the MCP URL, the personas, a ready
//! bearer token and a copy-paste Inspector command; fake-entra's sign-in page (no `login_hint`)
//! lets a person pick a persona in a browser. Ctrl-C stops everything.
//!
//! `--instances 2` (issue 12) also starts a `redis-server` and two connectors sharing it (the
//! X scenarios' harness) behind a loopback round-robin, whose URL is the MCP URL printed.

use std::process::ExitCode;

use clap::Parser;
use conformance::{
    ConnectorMode, Persona, World,
    scaleout::{DEFAULT_KNOBS, RoundRobin, ScaleOut},
};

#[derive(Parser)]
#[command(
    name = "m365-sandbox",
    about = "Run fake Entra, fake Graph and the connector with the fixture tenants"
)]
struct Cli {
    /// The persona whose bearer token is printed.
    #[arg(long = "as", default_value = "adele@contoso.com")]
    persona: String,
    /// The connector's port (random when absent).
    #[arg(long)]
    port: Option<u16>,
    /// fake-entra's port.
    #[arg(long)]
    entra_port: Option<u16>,
    /// fake-graph's port.
    #[arg(long)]
    graph_port: Option<u16>,
    /// Spawn this connector binary instead of running the connector in-process.
    #[arg(long)]
    connector_bin: Option<std::path::PathBuf>,
    /// Once ready, write `{"mcp_url": …, "token": …, "persona": …}` to this file, so scripts
    /// (CI's Python client check) can drive the sandbox without parsing its output.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// TEST ONLY, off by default: also serve a second MCP URL on this loopback address
    /// (e.g. 127.0.0.1:0) that signs EVERY request as the `--as` persona, for MCP clients
    /// that cannot send a bearer token (the official conformance suite). Anyone who can reach
    /// it acts as that persona, so any non-loopback address is refused.
    #[arg(long, value_name = "LOOPBACK_ADDR")]
    signing_proxy_listen: Option<std::net::SocketAddr>,
    /// 2: two connectors sharing a `redis-server` (started here) behind a loopback
    /// round-robin on `--port`; the MCP URL printed is the round-robin's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    instances: u8,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(addr) = cli.signing_proxy_listen
        && !addr.ip().is_loopback()
    {
        eprintln!(
            "error: --signing-proxy-listen {addr}: the signing proxy signs every request as \
             {}, so it listens on loopback only (127.0.0.1 or ::1)",
            cli.persona
        );
        return ExitCode::from(2);
    }
    let mode = match &cli.connector_bin {
        Some(p) => ConnectorMode::Binary(p.clone()),
        None => ConnectorMode::InProcess,
    };
    let scaled_out = cli.instances > 1;
    let world_port = if scaled_out { None } else { cli.port };
    let world = match World::builder()
        .mode(mode)
        .ports(cli.entra_port, cli.graph_port, world_port)
        .start()
        .await
    {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: the sandbox did not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Scaled out: the world's own connector stays idle; the round-robin is the MCP URL.
    let mut _scale_out = None;
    let mut mcp_url = world.mcp_url().to_owned();
    if scaled_out {
        match scale_out(&world, cli.port).await {
            Ok((x, round_robin)) => {
                println!("Redis:       {}", x.redis().url());
                for (i, url) in x.mcp_urls().iter().enumerate() {
                    println!("instance {i}:  {url}");
                }
                mcp_url = round_robin.mcp_url();
                _scale_out = Some((x, round_robin));
            }
            Err(e) => {
                eprintln!("error: the two instances did not start: {e:#}");
                world.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    }
    let mcp_url = mcp_url.as_str();
    println!("MCP URL:     {mcp_url}{}", if scaled_out { "  (round-robin)" } else { "" });
    println!("fake Entra:  {}", world.entra.uri());
    println!("fake Graph:  {}", world.graph.uri());
    println!("MCP client id (public, PKCE): {}", world.entra.mcp_client_id());
    println!(
        "Browser sign-in (pick a persona): {}/organizations/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri=http://localhost:8400/callback&scope=api://{}/access_as_user",
        world.entra.uri(),
        world.entra.mcp_client_id(),
        world.entra.connector_id()
    );
    println!("\nPersonas:");
    for p in Persona::ALL {
        println!("  {:<28} {p:?}", p.upn());
    }
    let mut _proxy = None;
    match world.sign_in(&cli.persona).await {
        Ok(s) => {
            let token = s.token();
            let mut signed_url = None;
            if let Some(addr) = cli.signing_proxy_listen {
                let proxied = match world.sign_in(&cli.persona).await {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("error: sign-in for the signing proxy: {e:#}");
                        world.shutdown().await;
                        return ExitCode::FAILURE;
                    }
                };
                match conformance::signing_proxy::SigningProxy::start(addr, mcp_url, proxied).await
                {
                    Ok(p) => {
                        println!(
                            "TEST ONLY signing proxy (every request acts as {}): {}",
                            cli.persona,
                            p.url()
                        );
                        signed_url = Some(p.url());
                        _proxy = Some(p);
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        world.shutdown().await;
                        return ExitCode::FAILURE;
                    }
                }
            }
            if let Some(path) = &cli.ready_file {
                let ready = serde_json::json!({
                    "mcp_url": mcp_url,
                    "token": token,
                    "persona": cli.persona,
                    "signed_mcp_url": signed_url,
                });
                if let Err(e) = std::fs::write(path, ready.to_string()) {
                    eprintln!("error: cannot write the ready file {}: {e}", path.display());
                    world.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
            println!(
                "\nBearer token for {} (expires in {} s):\n{token}\n",
                cli.persona,
                s.expires_in()
            );
            println!(
                "Try (Node 22 comes from npm; the Inspector needs it):\n  npx -y -p node@22 -p @modelcontextprotocol/inspector@2.12 mcp-inspector --cli {} --transport http --method tools/list --header \"Authorization: Bearer {token}\"",
                mcp_url
            );
        }
        Err(e) => println!("\n{} cannot sign in: {e:#}", cli.persona),
    }
    println!("\nCtrl-C stops everything.");
    let _ = tokio::signal::ctrl_c().await;
    if let Some((x, round_robin)) = _scale_out.take() {
        drop(round_robin);
        x.shutdown();
    }
    world.shutdown().await;
    ExitCode::SUCCESS
}

/// Redis, two instances and the round-robin in front of them (on `port`, else a random one).
async fn scale_out(world: &World, port: Option<u16>) -> anyhow::Result<(ScaleOut, RoundRobin)> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(0)));
    let round_robin = RoundRobin::start(listen, &x.mcp_urls()).await?;
    Ok((x, round_robin))
}
