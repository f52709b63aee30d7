//! The `rampart` command: parses arguments, loads config, calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod admin;
mod allocator;
mod audit;
mod blocks;
mod cert;
mod demo;
mod keys;

use clap::{Parser, Subcommand};

use rampart::config::{self, ConfigSource, lint};

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "A secure-by-default security gateway for HTTP APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway from a config file (SIGHUP or a file change reloads it).
    Run {
        /// The config file.
        #[arg(long, short, env = "RAMPART_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// What to log: a level (`error`, `warn`, `info`, `debug`, `trace`) or a filter
        /// (`info,rampart::proxy=debug`).
        #[arg(long, env = "RAMPART_LOG", default_value = "info", value_parser = log_filter)]
        log_level: String,
        /// How logs are written to stderr: `json` (one object per line) or `text`.
        #[arg(long, value_enum, default_value_t = LogFormat::Json)]
        log_format: LogFormat,
    },
    /// Validate a config file and lint it for weak settings.
    Check {
        /// The config file.
        #[arg(long, short, env = "RAMPART_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Exit non-zero (2) when any lint rule fires.
        #[arg(long)]
        strict: bool,
    },
    /// Run the gateway over TLS in front of a built-in demo API, with no set-up.
    Demo {
        /// HTTPS port for the gateway (0 picks a free one).
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Directory for the generated config, certificate and audit log.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Serve only the demo's small JSON API over plain HTTP: an upstream for a first config.
    DemoApi {
        /// Address to listen on (loopback unless you mean otherwise).
        #[arg(long, default_value = "127.0.0.1:9000")]
        bind: std::net::SocketAddr,
    },
    /// Certificates: a self-signed pair, and the ACME certificates (list, revoke).
    Cert(cert::CertArgs),
    /// Audit trail helpers (`verify`, `report`).
    Audit(audit::AuditArgs),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API keys through the admin API.
    Keys(keys::KeysArgs),
    /// List, add and lift blocks of addresses, networks and callers through the admin API.
    Blocks(blocks::BlocksArgs),
    /// Reload the running gateway's config through the admin API (as SIGHUP does); prints
    /// every error, and the running config stays, when the new one is refused.
    Reload(admin::AdminArgs),
    /// Make an admin API token; prints the token (keep it secret) and the hash for the config.
    AdminToken,
    /// Hash a password read from standard input (argon2id) for `[[auth.basic.users]]`.
    HashPassword,
}

/// Where `run` and `check` look without `--config` or `RAMPART_CONFIG`.
const DEFAULT_CONFIG: &str = "/etc/rampart/rampart.toml";

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// A log filter `tracing_subscriber` accepts, refused with its reason otherwise.
fn log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not a log level or filter: {e}"))
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the config file.
    Schema,
}

/// The exit of an admin command: its error on stderr.
fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads one line (the password) from stdin and prints its argon2id PHC string.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: empty password");
        return ExitCode::FAILURE;
    }
    match rampart::policy::authn::basic::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime, fitted to the cores this process may run on (its CPU affinity). On one
/// core, tokio's current-thread scheduler: every task runs on the thread that drives the I/O
/// driver, with none of the multi-thread scheduler's run queues, stealing and parking, which a
/// single worker pays for without using (measured in `docs/benchmarks.md`). On more, one worker
/// per core.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// What a long-running gateway does with its memory (`allocator.rs`): no transparent huge pages,
/// and memory freed after a burst handed back to the kernel. Neither is needed for the gateway to
/// work, so a failure is a warning.
fn settle_memory() {
    if let Err(e) = allocator::keep_huge_pages_off() {
        eprintln!("warning: transparent huge pages stay as the system has them: {e}");
    }
    if let Err(e) = allocator::release_in_background() {
        eprintln!("warning: memory freed after a burst stays with the process: {e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. } | Command::Demo { .. }) {
        settle_memory();
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Run {
            config,
            log_level,
            log_format,
        } => {
            init_logs(&log_level, log_format);
            runtime.block_on(run(&config))
        }
        Command::Check { config, strict } => runtime.block_on(check(&config, strict)),
        Command::Demo { port, dir } => {
            init_demo_logs();
            let options = demo::DemoOptions { port, dir };
            match runtime.block_on(demo::run(options, rampart::run::shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::DemoApi { bind } => runtime.block_on(demo_api(bind)),
        Command::Cert(args) => exit(runtime.block_on(cert::run(args))),
        Command::Reload(args) => exit(runtime.block_on(async {
            let answer = admin::call(&args, reqwest::Method::POST, "/v1/reload", None).await?;
            admin::print(&answer, args.output, "", &["reloaded"]);
            Ok(())
        })),
        Command::Keys(args) => exit(runtime.block_on(keys::run(args))),
        Command::Blocks(args) => exit(runtime.block_on(blocks::run(args))),
        Command::HashPassword => hash_password(),
        Command::Audit(args) => audit::run(args),
        Command::AdminToken => {
            let (token, hash) = rampart::admin::api::new_admin_token();
            println!("token: {token}");
            println!("config: [admin] token_sha256 = \"{hash}\"");
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Schema,
        } => match serde_json::to_string_pretty(config::json_schema()) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Logs to stderr for `run`: `filter` (`--log-level` or `RAMPART_LOG`), as JSON or text.
fn init_logs(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        // Colours only for a terminal: a file or a log collector gets plain text.
        LogFormat::Text => {
            use std::io::IsTerminal;
            builder.with_ansi(std::io::stderr().is_terminal()).init();
        }
    }
}

/// Terse text logs for the demo, warnings and worse unless `RAMPART_LOG` says otherwise.
fn init_demo_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .init();
}

/// Serves the demo API until Ctrl-C or SIGTERM.
async fn demo_api(bind: std::net::SocketAddr) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or(bind, |a| a);
    eprintln!("demo API on http://{addr} (GET /api/status, GET /api/orders/{{id}}, ...)");
    tokio::select! {
        () = demo::serve_demo_api(listener) => {}
        () = rampart::run::shutdown_signal() => {}
    }
    ExitCode::SUCCESS
}

async fn run(path: &Path) -> ExitCode {
    let prepared = match rampart::run::prepare(path).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, addr) in prepared.addresses() {
        tracing::info!(listener = %name, %addr, "listening");
    }
    if let Some(admin) = prepared.admin_address() {
        tracing::info!(%admin, "admin listening");
    }
    prepared.serve(rampart::run::shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn check(path: &Path, strict: bool) -> ExitCode {
    rampart::tls::install_crypto_provider();
    let source = match ConfigSource::from_file(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let runtime = match rampart::gateway::check(&source) {
        Ok(rt) => rt,
        Err(errors) => {
            for e in &errors.errors {
                let at = if e.path.is_empty() {
                    String::new()
                } else {
                    format!(" {}:", e.path)
                };
                eprintln!(
                    "error: {}:{}:{}:{at} {}",
                    errors.origin, e.line, e.column, e.message
                );
            }
            eprintln!("{} error(s); the config is not usable", errors.errors.len());
            return ExitCode::FAILURE;
        }
    };
    let findings = lint::lint(&runtime.config);
    let located = source.locate(findings.iter().map(|f| f.issue.clone()).collect());
    // `locate` sorts by line; pair each located issue back with its rule by pointer text.
    for finding in &findings {
        let place = located
            .errors
            .iter()
            .find(|l| l.message == finding.issue.message)
            .map(|l| format!("{}:{}:{}: {}:", located.origin, l.line, l.column, l.path))
            .unwrap_or_default();
        println!(
            "warning[{}]: {place} {}",
            finding.rule, finding.issue.message
        );
    }
    let c = &runtime.config;
    let public: Vec<&str> = c
        .routes
        .iter()
        .filter(|r| r.public)
        .map(|r| r.name.as_str())
        .collect();
    if !public.is_empty() {
        println!("public routes (no authentication): {}", public.join(", "));
    }
    println!(
        "ok: {} listener(s), {} upstream(s), {} route(s); {} warning(s)",
        c.listeners.len(),
        c.upstreams.len(),
        c.routes.len(),
        findings.len()
    );
    if strict && !findings.is_empty() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
