//! The `oauthgate` command line: serve, or check a config file.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oauthgate::accesslog;
use oauthgate::config::LogFormat;
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
    /// Print the central server's verify key (hex, as served at /oauth/key), creating the
    /// signing key first when it does not exist yet.
    Key,
    /// Generate a new Ed25519 signing key: written to --out (mode 0600), or printed.
    Keygen {
        /// Where to write the key; without it the key is printed on stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Exit code for an unusable configuration (BSD `EX_USAGE`).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Keygen { out } = &command {
        let _log = init_logging(LogFormat::Text);
        return keygen(out.as_deref());
    }
    // The config says how to log, so it is read first; its errors go to stderr directly.
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oauthgate: {}: {e}", cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let format = config.log.format;
    let log = init_logging(format);
    let result = match command {
        Command::Check => {
            println!("{}: ok", cli.config.display());
            print_callbacks(&config);
            Ok(())
        }
        Command::Key => print_verify_key(&config),
        // Keygen returned above, before any config was read.
        Command::Serve | Command::Keygen { .. } => serve(config),
    };
    if let (Err(e), LogFormat::Json) = (&result, format) {
        // A JSON log stays all JSON, the last word included.
        tracing::error!(error = %format!("{e:#}"), "exiting");
    }
    // Every line logged so far is written before the last word.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if format == LogFormat::Text {
                eprintln!("oauthgate: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Installs the log sink (one writer thread for every line, access lines batched) and the
/// tracing subscriber that feeds it; `RUST_LOG` filters as usual.
fn init_logging(format: LogFormat) -> accesslog::Guard {
    let guard = accesslog::install(format);
    // rustls warns about every client that sends an IP address as SNI (wrk, some scripts):
    // the client's mistake, not ours, so only its errors are logged.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(accesslog::MakeLineWriter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .event_format(accesslog::JsonEvents)
            .init(),
    }
    guard
}

/// What `check` tells the operator to register at each provider: its own callback URL.
fn print_callbacks(config: &Config) {
    let Some(central) = &config.central else {
        return;
    };
    for p in &central.providers {
        if p.kind == oauthgate::config::ProviderKind::Dev {
            continue;
        }
        println!(
            "provider {}: register the callback URL {}",
            p.name, p.redirect_url
        );
    }
}

fn print_verify_key(config: &Config) -> anyhow::Result<()> {
    let central = config
        .central
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the config has no central: section, so no signing key"))?;
    let key = oauthgate::central::keys::load_or_generate(&central.signing_key)?;
    println!(
        "{}",
        oauthgate::assertion::hex(key.verifying_key().as_bytes())
    );
    Ok(())
}

fn keygen(out: Option<&std::path::Path>) -> ExitCode {
    use oauthgate::central::keys;
    let key = keys::generate();
    let verify = oauthgate::assertion::hex(key.verifying_key().as_bytes());
    match out {
        Some(path) => match keys::write_new(path, &key) {
            Ok(()) => {
                eprintln!("wrote {}; verify key:", path.display());
                println!("{verify}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("oauthgate: {e}");
                ExitCode::FAILURE
            }
        },
        None => {
            print!("{}", keys::to_file_text(&key));
            eprintln!("verify key: {verify}");
            ExitCode::SUCCESS
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    // Workers batch their access lines and hand them to the log writer when they park or
    // stop, so a line waits only while its worker has other work.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(accesslog::worker_started)
        .on_thread_park(accesslog::flush_thread)
        .on_thread_stop(accesslog::flush_thread)
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
