//! The `fleetmq` command line.
//!
//! - `fleetmq run [--config FILE | --mosquitto-conf FILE]` (or plain
//!   `fleetmq [...]`) loads the configuration (a `fleetmq.toml`, or a
//!   Mosquitto configuration translated on the fly), sets up logging to
//!   stderr and runs the broker until SIGTERM or SIGINT; SIGHUP re-reads the
//!   configuration and the TLS files.
//! - `fleetmq check-config [--mosquitto] FILE` loads and validates either
//!   format (`.toml`, `.conf`, or the content decides) and reads the files
//!   `run` reads (TLS certificates and keys, password and ACL files, the
//!   dashboard token file), reporting every problem, without starting
//!   anything.
//! - `fleetmq migrate mosquitto FILE` prints the equivalent `fleetmq.toml`
//!   on stdout and every directive it could not carry over on stderr, one
//!   per line as `FILE:LINE: directive: why`.
//! - `fleetmq migrate mosquitto --db FILE [--config FILE] [--dry-run]`
//!   imports Mosquitto's persistence file into the store
//!   (`fleetmq::mosquitto::db`).
//! - `fleetmq certs init|server|device|revoke|list|crl` manages the lab PKI
//!   (CA, server and device certificates, CRL); see `fleetmq::certs::cli`.
//! - `fleetmq firmware upload|rollout|pause|resume|abort|status` manages
//!   firmware images and rollouts; see `fleetmq::ota::cli` (docs/ota.md).
//! - `fleetmq passwd [-c] [-D] FILE USER` edits a password file in
//!   `mosquitto_passwd` format; `fleetmq acl check --config FILE ...` shows
//!   whether a client may use a topic and which rule decides (handlers in
//!   `fleetmq::auth_cli`, which documents their exit codes).
//! - `fleetmq generate-cli-docs DIR` (packaging only, outside the clap
//!   definition) writes the man pages and completions (`fleetmq::cli_docs`).
//!
//! Exit codes: 0 on success; 1 when the broker fails, or `check-config` or
//! `migrate` finds problems; 2 when `run` cannot start because of its
//! configuration or the command line (as clap does for usage errors).
//!
//! This file only wires things together: configuration lives in
//! `fleetmq_core::config` and `fleetmq::mosquitto`, process life in
//! `fleetmq::service`, the broker in `fleetmq::server`, the PKI in
//! `fleetmq::certs`, passwords and ACLs in `fleetmq_core::auth`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fleetmq::auth_cli::{self, AclCommand, PasswdArgs};
use fleetmq::mosquitto;
use fleetmq::service::{self, ConfigSource};

/// The system allocator, counted, so `limits.memory_limit` (Mosquitto's
/// `memory_limit`) and `$SYS/broker/heap/current` know the heap in use.
#[global_allocator]
static HEAP: fleetmq_heap::Counting = fleetmq_heap::Counting;

/// An MQTT 3.1.1 / 5.0 broker for fleets of ESP32 devices.
#[derive(Debug, Parser)]
#[command(
    name = "fleetmq",
    // "0.1.0 (git 1a2b3c4d5e6f, built 2026-12-03)", from build.rs.
    version = env!("FLEETMQ_VERSION"),
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
    /// Check a configuration file, fleetmq.toml or mosquitto.conf (with any
    /// FLEETMQ_* environment overrides for TOML), and report every problem,
    /// without starting the broker.
    CheckConfig {
        /// Read FILE as a Mosquitto configuration whatever its name.
        #[arg(long)]
        mosquitto: bool,
        /// The configuration file: `.toml` is TOML, `.conf` is Mosquitto,
        /// otherwise the content decides.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Translate another broker's configuration into fleetmq.toml.
    Migrate {
        #[command(subcommand)]
        from: MigrateFrom,
    },
    /// Manage the lab PKI: the CA, server and device certificates, the CRL.
    Certs(fleetmq::certs::cli::CertsArgs),
    /// Firmware updates: upload images, roll them out in waves.
    Firmware(fleetmq::ota::cli::FirmwareArgs),
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

#[derive(Debug, Subcommand)]
enum MigrateFrom {
    /// Translate a mosquitto.conf: the fleetmq.toml goes to stdout, every
    /// directive that could not be carried over to stderr. With --db,
    /// import Mosquitto's persistence file into fleetmq's store instead.
    Mosquitto {
        /// The Mosquitto configuration, e.g. /etc/mosquitto/mosquitto.conf.
        #[arg(value_name = "FILE", required_unless_present = "db")]
        file: Option<PathBuf>,
        #[command(flatten)]
        db: DbImportArgs,
    },
}

/// `fleetmq migrate mosquitto --db FILE`: Mosquitto's state carried over.
#[derive(Debug, Args)]
struct DbImportArgs {
    /// Import Mosquitto's persistence file (e.g. /var/lib/mosquitto/mosquitto.db,
    /// written when Mosquitto stops): retained messages, persistent sessions,
    /// their subscriptions and queued QoS 1/2 messages, in one commit. Stop
    /// fleetmq first; a damaged file imports nothing.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    db: Option<PathBuf>,
    /// The fleetmq configuration whose store receives the import
    /// (fleetmq.toml or mosquitto.conf); without it, the defaults' store.
    #[arg(long, value_name = "FILE", requires = "db")]
    config: Option<PathBuf>,
    /// Print what would be imported, and write nothing.
    #[arg(long, requires = "db")]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// TOML configuration file; without it the built-in defaults apply.
    /// FLEETMQ_<SECTION>__<KEY> environment variables override both, e.g.
    /// FLEETMQ_LOG__LEVEL=debug.
    #[arg(short, long, value_name = "FILE", conflicts_with = "mosquitto_conf")]
    config: Option<PathBuf>,
    /// Run from a Mosquitto configuration (mosquitto.conf), translated as
    /// `fleetmq migrate mosquitto` does; directives that cannot be carried
    /// over are logged as warnings.
    #[arg(long, value_name = "FILE")]
    mosquitto_conf: Option<PathBuf>,
}

/// Exit code when `run` cannot start because of its configuration.
const EXIT_CONFIG: u8 = 2;
/// Exit code when the broker fails or a check finds problems.
const EXIT_FAILURE: u8 = 1;

/// `fleetmq generate-cli-docs DIR`, for packaging/build-deb.sh. Kept out of
/// the clap definition: clap_complete would offer even a hidden subcommand.
const GENERATE_CLI_DOCS: &str = "generate-cli-docs";

fn main() -> ExitCode {
    let mut raw_args = std::env::args_os().skip(1);
    if raw_args.next().is_some_and(|arg| arg == GENERATE_CLI_DOCS) {
        return match (raw_args.next(), raw_args.next()) {
            (Some(dir), None) => generate_cli_docs(Path::new(&dir)),
            _ => {
                eprintln!("usage: fleetmq {GENERATE_CLI_DOCS} DIR");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Run(args)) => run(&args),
        Some(Command::CheckConfig { mosquitto, file }) => check_config(&file, mosquitto),
        Some(Command::Migrate {
            from: MigrateFrom::Mosquitto { file, db },
        }) => match (file, db.db) {
            (_, Some(path)) => import_mosquitto_db(&path, db.config, db.dry_run),
            (Some(file), None) => migrate_mosquitto(&file),
            (None, None) => ExitCode::from(EXIT_CONFIG),
        },
        Some(Command::Certs(args)) => fleetmq::certs::cli::run(&args),
        Some(Command::Firmware(args)) => fleetmq::ota::cli::run(&args),
        Some(Command::Passwd(args)) => auth_cli::passwd(&args),
        Some(Command::Acl { command }) => auth_cli::acl(&command),
        None => run(&cli.run),
    }
}

fn check_config(file: &Path, force_mosquitto: bool) -> ExitCode {
    let source = if force_mosquitto {
        ConfigSource::Mosquitto(file.to_path_buf())
    } else {
        ConfigSource::detect(file)
    };
    match source.load() {
        Ok(loaded) => {
            for note in &loaded.notes {
                eprintln!("{note}");
            }
            // What `run` reads besides the configuration: the same loaders.
            let problems = fleetmq::server::check_files(&loaded.config);
            if !problems.is_empty() {
                for problem in &problems {
                    eprintln!("{}: {problem}", file.display());
                }
                eprintln!(
                    "{}: {} problem(s); `fleetmq run` would not start",
                    file.display(),
                    problems.len()
                );
                return ExitCode::from(EXIT_FAILURE);
            }
            match (&source, loaded.notes.len()) {
                (ConfigSource::Mosquitto(_), 0) => {
                    println!("{}: Mosquitto configuration OK", file.display())
                }
                (ConfigSource::Mosquitto(_), count) => println!(
                    "{}: Mosquitto configuration OK; {count} directive(s) not carried over (listed on stderr)",
                    file.display()
                ),
                _ => println!("{}: configuration OK", file.display()),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn generate_cli_docs(dir: &Path) -> ExitCode {
    use clap::CommandFactory;
    let version = env!("FLEETMQ_VERSION");
    match fleetmq::cli_docs::write_all(Cli::command(), dir, version, env!("FLEETMQ_BUILD_DATE")) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fleetmq: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn migrate_mosquitto(file: &Path) -> ExitCode {
    match mosquitto::translate_file(file) {
        Ok(translation) => {
            print!("{}", translation.to_toml());
            for note in &translation.notes {
                eprintln!("{note}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn import_mosquitto_db(db: &Path, config: Option<PathBuf>, dry_run: bool) -> ExitCode {
    let source = config.map_or(ConfigSource::Defaults, |path| ConfigSource::detect(&path));
    let loaded = match source.load() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match mosquitto::db::import(db, &loaded.config, dry_run) {
        Ok(report) => {
            for line in &report.lines {
                println!("{line}");
            }
            println!(
                "{}{} retained message(s), {} session(s), {} queued message(s); {} record(s) skipped",
                if dry_run { "would import " } else { "imported " },
                report.retained,
                report.sessions,
                report.deliveries,
                report.skipped
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fleetmq: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let source = match (&args.config, &args.mosquitto_conf) {
        (_, Some(path)) => ConfigSource::Mosquitto(path.clone()),
        (Some(path), None) => ConfigSource::Toml(path.clone()),
        (None, None) => ConfigSource::Defaults,
    };
    let loaded = match source.load() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(message) = service::log::init(&loaded.config) {
        eprintln!("fleetmq: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // Shaped like Mosquitto's start-up lines, which lab users grep for.
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "fleetmq version {} starting",
        env!("CARGO_PKG_VERSION")
    );
    match &source {
        ConfigSource::Defaults => tracing::info!("Using default config."),
        ConfigSource::Toml(path) | ConfigSource::Mosquitto(path) => {
            tracing::info!(path = %path.display(), "Config loaded from {source}.")
        }
    }
    for note in &loaded.notes {
        tracing::warn!("Not carried over: {note}");
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
    match runtime.block_on(fleetmq::server::run_service(loaded.config, Some(source))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("fleetmq: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
