//! `m365-connector`: the binary. Parses the command line, loads and validates configuration,
//! and runs one command; everything else lives in the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use connector::{
    audit::{self, Verdict},
    config::{Overrides, Settings},
    server::{Application, Dependencies},
    telemetry,
    tools::permissions,
};

/// mimalloc instead of the system allocator: a tool call allocates and frees many small
/// buffers (JSON, headers, results) across threads, and glibc malloc was a quarter of the
/// connector's CPU under load (m365-bench profile, issue 13).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "m365-connector", version, about = "Read-only Microsoft 365 MCP connector")]
struct Cli {
    /// Configuration file (TOML). Environment variables `M365_SECTION__KEY` override it.
    #[arg(long, short, global = true, env = "M365_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (overrides `server.listen`).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Canonical public MCP URL (overrides `server.public_url`).
    #[arg(long, global = true)]
    public_url: Option<String>,
    /// Tenant policy file (overrides `policy.path`).
    #[arg(long, global = true)]
    policy: Option<PathBuf>,
    /// Audit log file (overrides `audit.path`).
    #[arg(long, global = true)]
    audit_log: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over HTTP until SIGINT or SIGTERM.
    Serve,
    /// Load and validate the configuration, then reach OpenID discovery and the signing keys.
    CheckConfig,
    /// Print the admin-consent URL for a tenant.
    AdminConsentUrl {
        /// Tenant id or verified domain.
        #[arg(long)]
        tenant: String,
        /// Where Entra sends the admin after consenting.
        #[arg(
            long,
            default_value = "https://login.microsoftonline.com/common/oauth2/nativeclient"
        )]
        redirect_uri: String,
    },
    /// List the Graph permissions the connector requests, which tool needs each, and why.
    Permissions,
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of an audit log: a directory (every log in it, all segments) or
    /// one segment's file (its whole log). Reports the first broken record and torn writes.
    /// A keyed log (`audit.hmac_key`) needs the key: in `M365_AUDIT__HMAC_KEY` or a file.
    Verify {
        path: PathBuf,
        /// A file holding the base64 HMAC key (never pass the key itself on the command line).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

fn load(cli: &Cli) -> Result<Settings, String> {
    let overrides = Overrides {
        listen: cli.listen.clone(),
        public_url: cli.public_url.clone(),
        policy_path: cli.policy.clone(),
        audit_path: cli.audit_log.clone(),
    };
    Settings::load(cli.config.as_deref(), std::env::vars(), &overrides).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_subscriber(telemetry::get_subscriber("info", cli.json_logs, std::io::stderr));
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Serve => {
            let settings = load(&cli)?;
            let app = Application::build(settings, Dependencies::default())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(address = %app.local_addr(), "Serving MCP");
            app.run_until_stopped(shutdown_signal()).await.map_err(|e| e.to_string())
        }
        Command::CheckConfig => {
            let settings = load(&cli)?;
            connector::policy::Policy::load(&settings.policy.path).map_err(|e| e.to_string())?;
            println!("configuration OK");
            let report = connector::server::check_reachability(&settings).await?;
            println!("{report}");
            if let Some(redis) = &settings.redis {
                println!("{}", connector::shared::check(redis).await?);
            }
            Ok(())
        }
        Command::AdminConsentUrl { tenant, redirect_uri } => {
            let settings = load(&cli)?;
            println!("{}", permissions::admin_consent_url(&settings, tenant, redirect_uri));
            Ok(())
        }
        Command::Permissions => {
            print!("{}", permissions::describe());
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { path, key_file } } => {
            let key = audit_key(key_file.as_deref())?;
            let verdict = audit::verify(path, key.as_ref())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            match verdict {
                Verdict::Ok(report) => {
                    for (segment, bytes) in &report.torn {
                        println!(
                            "torn write: {} ends with {bytes} bytes of an unfinished record (a crash); the chain continues after it",
                            segment.display()
                        );
                    }
                    println!(
                        "OK: {} records in {} segments{}",
                        report.records,
                        report.segments,
                        if key.is_some() { ", keyed" } else { "" }
                    );
                    Ok(())
                }
                Verdict::Broken { file, line, reason } => {
                    Err(format!("{} line {line}: {reason}", file.display()))
                }
            }
        }
    }
}

/// The audit HMAC key: from `--key-file`, else `M365_AUDIT__HMAC_KEY`, else none.
fn audit_key(file: Option<&std::path::Path>) -> Result<Option<connector::config::Key32>, String> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?,
        None => match std::env::var("M365_AUDIT__HMAC_KEY") {
            Ok(k) => k,
            Err(_) => return Ok(None),
        },
    };
    connector::config::Key32::from_base64(&text)
        .map(Some)
        .map_err(|reason| format!("audit key: {reason}"))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
