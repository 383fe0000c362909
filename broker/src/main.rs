//! The `fleetmq` command line.
//!
//! - `fleetmq run [--config FILE]` (or plain `fleetmq [--config FILE]`)
//!   loads the configuration, sets up logging to stderr and runs the broker
//!   until it is stopped.
//! - `fleetmq check-config FILE` loads and validates a configuration,
//!   reporting every problem, without starting anything.
//! - `fleetmq certs init|server|device|revoke|list|crl` manages the lab PKI
//!   (CA, server and device certificates, CRL); see `fleetmq::certs::cli`.
//! - `fleetmq passwd [-c] [-D] FILE USER` edits a password file in
//!   `mosquitto_passwd` format; `fleetmq acl check --config FILE ...` shows
//!   whether a client may use a topic and which rule decides (handlers in
//!   `fleetmq::auth::cli`, which documents their exit codes).
//!
//! Exit codes: 0 on success; 1 when the broker fails or `check-config`
//! finds problems; 2 when `run` cannot start because of its configuration
//! or the command line (as clap does for usage errors).
//!
//! This file only wires things together: configuration lives in
//! `fleetmq::config`, the broker in `fleetmq::server`, the PKI in
//! `fleetmq::certs`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fleetmq::auth::cli::{self as auth_cli, AclCommand, PasswdArgs};
use fleetmq::config::{self, Config};
use tracing_subscriber::EnvFilter;

/// An MQTT 3.1.1 / 5.0 broker for fleets of ESP32 devices.
#[derive(Debug, Parser)]
#[command(
    name = "fleetmq",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `run`, accepted without the subcommand.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (the default when no command is given).
    Run(RunArgs),
    /// Check a configuration file (with any FLEETMQ_* environment overrides)
    /// and report every problem, without starting the broker.
    CheckConfig {
        /// The TOML configuration file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Manage the lab PKI: the CA, server and device certificates, the CRL.
    Certs(fleetmq::certs::cli::CertsArgs),
    /// Add, change or delete a user in a password file (mosquitto_passwd
    /// format). Reads the password from the terminal (twice) or one line
    /// from standard input.
    Passwd(PasswdArgs),
    /// Access rules: `fleetmq acl check` shows what a client may do.
    Acl {
        #[command(subcommand)]
        command: AclCommand,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// TOML configuration file; without it the built-in defaults apply.
    /// FLEETMQ_<SECTION>__<KEY> environment variables override both, e.g.
    /// FLEETMQ_LOG__LEVEL=debug.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Exit code when `run` cannot start because of its configuration.
const EXIT_CONFIG: u8 = 2;
/// Exit code when the broker fails or `check-config` finds problems.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Run(args)) => run(&args),
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::Certs(args)) => fleetmq::certs::cli::run(&args),
        Some(Command::Passwd(args)) => auth_cli::passwd(&args),
        Some(Command::Acl { command }) => auth_cli::acl(&command),
        None => run(&cli.run),
    }
}

fn check_config(file: &Path) -> ExitCode {
    match config::load(Some(file)) {
        Ok(_) => {
            println!("{}: configuration OK", file.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let config = match config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(message) = init_logging(&config) {
        eprintln!("fleetmq: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // Shaped like Mosquitto's start-up lines, which lab users grep for.
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "fleetmq version {} starting",
        env!("CARGO_PKG_VERSION")
    );
    match &args.config {
        Some(path) => {
            tracing::info!(path = %path.display(), "Config loaded from {}.", path.display())
        }
        None => tracing::info!("Using default config."),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fleetmq: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(fleetmq::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleetmq: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` when set, else by `log.level`;
/// colours only when stderr is a terminal, so redirected logs stay plain.
fn init_logging(config: &Config) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| {
                format!(
                    "RUST_LOG={directives:?} is not a tracing filter: {error} (fix or unset it)"
                )
            })?,
        _ => EnvFilter::try_new(&config.log.level)
            .map_err(|error| format!("log.level {:?}: {error}", config.log.level))?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|error| format!("cannot set up logging: {error}"))
}
