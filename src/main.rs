//! The `oauthgate` command line: serve, check a config file, probe health, keys, and bearer
//! tokens.
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
    /// Also checks the files serve would read, data_dir, and a remote central's key.
    Check,
    /// Probe the running server's health endpoint over TLS: exit 0 when it answers 200.
    Health {
        /// What to probe; default: /_auth/health (or /oauth/health) at the listen address.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the central server's verify key (hex, as served at /oauth/key), creating the
    /// signing key first when it does not exist yet.
    Key,
    /// Generate a new Ed25519 signing key: written to --out (mode 0600), or printed.
    Keygen {
        /// Where to write the key; without it the key is printed on stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Mint a bearer token for a machine client (signed with the gateway key in data_dir;
    /// accepted on routes with `bearer: true`). Prints the token alone on stdout.
    Token {
        /// Who the token is for: its `sub` (and `login`).
        #[arg(long)]
        sub: String,
        /// Groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// How long it is valid (1h, 30d).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// List or end the sessions of the Redis session store (gateway.session.store), from any
    /// machine with the config. Cookie sessions cannot be listed or revoked (exit 64).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
}

#[derive(Subcommand)]
enum SessionsAction {
    /// One line per live session, tab-separated: sub, provider, created, last used, expires.
    List,
    /// End sessions at once, on every gateway (within the cache bound, 2 s).
    Revoke {
        /// End this user's sessions (their `sub`, as `list` shows it).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        sub: Option<String>,
        /// End every session.
        #[arg(long)]
        all: bool,
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
    if let Command::Health { url: Some(url) } = &command {
        // An explicit URL needs no config, but uses it (for its certificate) when it loads.
        let config = Config::load(&cli.config).ok();
        return health(config.as_ref(), Some(url));
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
        Command::Check => return check(&cli.config, &config),
        Command::Health { .. } => return health(Some(&config), None),
        Command::Key => print_verify_key(&config),
        Command::Token { sub, groups, ttl } => token(&config, &sub, &groups, &ttl),
        Command::Sessions { action } => return sessions(&config, action),
        // Keygen returned above, before any config was read.
        Command::Serve | Command::Keygen { .. } => {
            let refused = oauthgate::check::local(&config);
            if !refused.is_empty() {
                for e in &refused {
                    eprintln!("oauthgate: {}: {e}", cli.config.display());
                }
                return ExitCode::from(EXIT_CONFIG);
            }
            serve(config, cli.config.clone())
        }
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

/// `check`: the file was valid; now what `serve` would meet (files, data_dir, the central).
fn check(path: &std::path::Path, config: &Config) -> ExitCode {
    let found = match runtime() {
        Ok(rt) => rt.block_on(oauthgate::check::run(config)),
        Err(e) => {
            eprintln!("oauthgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in config.warnings.iter().chain(&found.warnings) {
        eprintln!("warning: {w}");
    }
    if !found.errors.is_empty() {
        for e in &found.errors {
            eprintln!("oauthgate: {}: {e}", path.display());
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}: ok", path.display());
    print_callbacks(config);
    ExitCode::SUCCESS
}

fn health(config: Option<&Config>, url: Option<&str>) -> ExitCode {
    let result = match runtime() {
        Ok(rt) => rt.block_on(oauthgate::health::probe(config, url)),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("oauthgate: unhealthy: {line}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
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

fn token(config: &Config, sub: &str, groups: &[String], ttl: &str) -> anyhow::Result<()> {
    let ttl = humantime::parse_duration(ttl)
        .map_err(|e| anyhow::anyhow!("--ttl {ttl:?} is not a duration (1h, 30d): {e}"))?;
    println!("{}", oauthgate::mint_token(config, sub, groups, ttl)?);
    Ok(())
}

/// Exit code when Redis cannot be reached (BSD `EX_UNAVAILABLE`).
const EXIT_UNAVAILABLE: u8 = 69;

/// `sessions list | revoke`: exit 0, 64 (a config without a Redis store), or 69 (Redis).
fn sessions(config: &Config, action: SessionsAction) -> ExitCode {
    let result = match runtime() {
        Ok(rt) => rt.block_on(run_sessions(config, action)),
        Err(e) => {
            eprintln!("oauthgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oauthgate: sessions: {e}");
            ExitCode::from(if e.is_config() {
                EXIT_CONFIG
            } else {
                EXIT_UNAVAILABLE
            })
        }
    }
}

async fn run_sessions(
    config: &Config,
    action: SessionsAction,
) -> Result<(), oauthgate::sessions::AdminError> {
    use oauthgate::sessions;
    match action {
        SessionsAction::List => {
            let all = sessions::list(config).await?;
            for s in &all {
                let r = &s.record;
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    printable(&r.session.sub),
                    printable(&r.session.provider),
                    sessions::time(r.created),
                    sessions::time(r.last_used),
                    sessions::time(s.expires)
                );
            }
            eprintln!("{} session(s)", all.len());
        }
        SessionsAction::Revoke { sub, all } => {
            let which = match (sub, all) {
                (Some(sub), false) => sessions::Revoke::Sub(sub),
                _ => sessions::Revoke::All,
            };
            let n = sessions::revoke(config, &which).await?;
            println!("revoked {n} session(s)");
        }
    }
    Ok(())
}

/// `text` with control characters (a tab or newline in a provider's `sub`) shown as `?`, so
/// that one session is always one line of five fields.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
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

fn serve(config: Config, path: PathBuf) -> anyhow::Result<()> {
    // This thread is the first of the serving threads (one per core, each with a runtime of
    // its own: `server/threads.rs`). Serving threads batch their access lines and hand them
    // to the log writer when they park, so a line waits only while its thread has other work.
    let runtime = oauthgate::server::threads::runtime()?;
    let served = runtime.block_on(async {
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        // Signal handlers first: SIGHUP or SIGUSR1 during start-up must not kill us.
        let stop = oauthgate::shutdown::signal();
        let public_url = config.public_url.clone();
        let probe = config.clone();
        let mut server = Server::bind(config).await?;
        // Before the server is announced: from then on SIGHUP reloads rather than ends it.
        server.reload_from(path)?;
        tokio::spawn(async move { oauthgate::check::startup(&probe).await });
        let addr = server.local_addr()?;
        tracing::info!(addr = %addr, public_url = %public_url, "listening");
        server.run(stop).await;
        Ok(())
    });
    drop(runtime);
    accesslog::flush_thread();
    served
}
