//! The `oauthgate` command line: serve, or check a config file.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oauthgate::{Config, Server};
use tracing_subscriber::EnvFilter;

/// A login gateway: a central OAuth server and a TLS-terminating reverse proxy.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file.
    #[arg(long, short, global = true, default_value = "config.yaml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Validate the configuration and exit: 0 when valid, 64 with the error otherwise.
    Check,
}

/// Exit code for an unusable configuration (BSD `EX_USAGE`).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oauthgate: {}: {e}", cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Check => {
            println!("{}: ok", cli.config.display());
            ExitCode::SUCCESS
        }
        Command::Serve => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("oauthgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let public_url = config.public_url.clone();
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?;
        tracing::info!(addr = %addr, public_url = %public_url, "listening");
        server.run(oauthgate::shutdown::signal()).await;
        Ok(())
    })
}
