//! `fleetmq passwd` and `fleetmq acl check`: the command-line handlers,
//! kept here so `main.rs` only wires subcommands to them.
//!
//! - `fleetmq passwd [-c] [-D] [--stdin] FILE USER` edits a password file
//!   like `mosquitto_passwd`: asks twice for the password on a terminal,
//!   or reads one line from standard input otherwise. Exit 0, or 1 on
//!   failure.
//! - `fleetmq acl check --config FILE ...` prints `ALLOW` or `DENY` and the
//!   deciding rule. Exit 0 for allow, 1 for deny, 2 for errors.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use fleetmq_core::auth::dynsec::DynsecStore;
use fleetmq_core::auth::{hash_password, Acl, Action, Identity};
use fleetmq_core::config::{self as config, Config, ListenerConfig};
use fleetmq_core::engine::AuthState;
use fleetmq_core::router::{validate_topic_filter, validate_topic_name, TopicLimits};

/// Arguments of `fleetmq passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Create the file, or overwrite it, with only this user (as
    /// `mosquitto_passwd -c`). Without it a missing file is created too.
    #[arg(short = 'c', long = "create", conflicts_with = "delete")]
    pub create: bool,
    /// Delete the user instead of setting a password.
    #[arg(short = 'D', long = "delete")]
    pub delete: bool,
    /// Read the password as one line from standard input even on a terminal
    /// (it is read that way whenever standard input is not a terminal).
    #[arg(long)]
    pub stdin: bool,
    /// The password file (`user:$7$...` lines, as mosquitto_passwd writes).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The username.
    #[arg(value_name = "USER")]
    pub user: String,
}

/// `fleetmq acl ...` commands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Show whether a client may publish, subscribe or receive on a topic,
    /// and which rule decides. Exit 0 allow, 1 deny, 2 error.
    Check(AclCheckArgs),
}

/// Arguments of `fleetmq acl check`.
#[derive(Debug, Args)]
pub struct AclCheckArgs {
    /// The broker configuration with the `[[acl]]` rules (and `auth.acl_file`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Certificate identity of the client (as the listener's `identity`
    /// reads it); omit for a password or anonymous client.
    #[arg(long, value_name = "ID")]
    pub identity: Option<String>,
    /// Username (replaced by the identity on `use_identity_as_username`
    /// listeners). With `auth.password_file` it stands for a user whose
    /// password verified, and is the client's identity without a
    /// certificate; without one it is an unverified claim.
    #[arg(long, value_name = "U")]
    pub username: Option<String>,
    /// A client without certificate and without username (Mosquitto's top
    /// block of an `acl_file` is for these clients only).
    #[arg(long, conflicts_with_all = ["identity", "username"])]
    pub anonymous: bool,
    /// Client id (default: the identity, else the username, else
    /// `anonymous`).
    #[arg(long = "client-id", value_name = "C")]
    pub client_id: Option<String>,
    /// A certificate group (OU) of the client; repeat for several. Groups
    /// of `[[auth.group]]` that list the identity are added.
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// Listener name whose settings apply (default: the first TLS listener,
    /// else the first listener).
    #[arg(long, value_name = "NAME")]
    pub listener: Option<String>,
    /// Topic name (publish, receive) or filter (subscribe).
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// What the client does.
    #[arg(long, value_enum)]
    pub action: ActionArg,
}

/// `--action` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    Publish,
    Subscribe,
    Receive,
}

impl From<ActionArg> for Action {
    fn from(action: ActionArg) -> Action {
        match action {
            ActionArg::Publish => Action::Publish,
            ActionArg::Subscribe => Action::Subscribe,
            ActionArg::Receive => Action::Receive,
        }
    }
}

const EXIT_DENY: u8 = 1;
const EXIT_ERROR: u8 = 2;

/// Runs `fleetmq passwd`.
pub fn passwd(args: &PasswdArgs) -> ExitCode {
    match run_passwd(args) {
        Ok(message) => {
            eprintln!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("fleetmq passwd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_passwd(args: &PasswdArgs) -> Result<String, String> {
    let user = args.user.as_str();
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(format!(
            "invalid username {user:?} (it must be non-empty, without ':' or control characters)"
        ));
    }
    let path = args.file.as_path();
    let existing = if args.create {
        None
    } else {
        match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !args.delete => None,
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        }
    };
    if args.delete {
        let text = existing.unwrap_or_default();
        let (kept, removed) = without_user(&text, user);
        if removed == 0 {
            return Err(format!("user {user:?} is not in {}", path.display()));
        }
        write_password_file(path, &kept)?;
        return Ok(format!("deleted user {user} from {}", path.display()));
    }
    let password = read_password(args.stdin)?;
    let hash = hash_password(password.as_bytes()).map_err(|e| e.to_string())?;
    let entry = format!("{user}:{hash}");
    let (text, verb) = match existing {
        None => (format!("{entry}\n"), "created"),
        Some(text) => with_user(&text, user, &entry),
    };
    write_password_file(path, &text)?;
    Ok(format!("{verb} user {user} in {}", path.display()))
}

/// The username of a password file line, if it is an entry.
fn line_user(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    line.split_once(':').map(|(user, _)| user.trim())
}

/// The file without `user`'s lines, and how many were removed.
fn without_user(text: &str, user: &str) -> (String, usize) {
    let mut kept = String::with_capacity(text.len());
    let mut removed = 0;
    for line in text.lines() {
        if line_user(line) == Some(user) {
            removed += 1;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    (kept, removed)
}

/// The file with `user`'s first line replaced by `entry` (later duplicates
/// dropped), or `entry` appended; other lines are kept as they are.
fn with_user(text: &str, user: &str, entry: &str) -> (String, &'static str) {
    let mut out = String::with_capacity(text.len() + entry.len() + 1);
    let mut replaced = false;
    for line in text.lines() {
        if line_user(line) == Some(user) {
            if !replaced {
                out.push_str(entry);
                out.push('\n');
                replaced = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if replaced {
        (out, "updated")
    } else {
        out.push_str(entry);
        out.push('\n');
        (out, "added")
    }
}

fn read_password(force_stdin: bool) -> Result<String, String> {
    let password = if force_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        line.strip_suffix('\r').unwrap_or(line).to_string()
    } else {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let second = rpassword::prompt_password("Reenter password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != second {
            return Err("passwords do not match (nothing was changed)".to_string());
        }
        first
    };
    if password.is_empty() {
        return Err("empty password (nothing was changed)".to_string());
    }
    Ok(password)
}

/// Replaces the file atomically (temporary file, then rename): a crash
/// never leaves half a password file. A new file is created 0600; an
/// existing file keeps its permission bits.
fn write_password_file(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let mode = match std::fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o7777,
        Err(_) => 0o600,
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let temporary = path.with_file_name(format!(".{name}.fleetmq-{}", std::process::id()));
    let cannot = |what: &str, error: std::io::Error| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot {what} {}: {error}", temporary.display())
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| format!("cannot create {}: {e}", temporary.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| cannot("write", e))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| cannot("set permissions of", e))?;
    file.sync_all().map_err(|e| cannot("sync", e))?;
    std::fs::rename(&temporary, path).map_err(|e| cannot("rename", e))
}

/// Runs an `fleetmq acl` command.
pub fn acl(command: &AclCommand) -> ExitCode {
    match command {
        AclCommand::Check(args) => match run_acl_check(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(EXIT_DENY),
            Err(message) => {
                eprintln!("fleetmq acl check: {message}");
                ExitCode::from(EXIT_ERROR)
            }
        },
    }
}

fn run_acl_check(args: &AclCheckArgs) -> Result<bool, String> {
    let config = config::load(Some(&args.config)).map_err(|e| e.to_string())?;
    let acl = Acl::from_config(&config.acl, config.auth.acl_file.as_deref())
        .map_err(|e| e.to_string())?;
    let listener = select_listener(&config, args.listener.as_deref())?;
    let identity = simulated_identity(&config, listener, args)?;
    let action = Action::from(args.action);
    check_topic(&config, action, &args.topic)?;
    // With dynamic security its roles decide, as in the running broker.
    let dynsec = match &config.auth.dynsec_file {
        Some(path) => Some(Arc::new(DynsecStore::in_memory(
            DynsecStore::read(path).map_err(|e| e.to_string())?,
        ))),
        None => None,
    };
    let rules = AuthState {
        acl,
        passwords: None,
        groups: config.auth.groups.clone(),
        dynsec,
    };
    let decision = rules.check(&identity, action, &args.topic);
    println!(
        "{} {action} {}",
        if decision.allowed { "ALLOW" } else { "DENY" },
        args.topic
    );
    println!(
        "  client: identity {}, username {}, client id {}, groups [{}], listener {}",
        identity
            .principal()
            .unwrap_or("(none: no certificate, no verified password)"),
        identity
            .username
            .as_deref()
            .unwrap_or("(none: top-block rules of an acl_file apply)"),
        identity.client_id,
        identity.groups.join(", "),
        identity.listener
    );
    match &decision.rule {
        Some(rule) => println!("  decided by {rule}"),
        None => println!("  decided by {}", decision.reason),
    }
    Ok(decision.allowed)
}

fn listener_name(listener: &ListenerConfig) -> String {
    if listener.name.is_empty() {
        let port = listener.bind.rsplit(':').next().unwrap_or_default();
        format!("mqtt-{port}")
    } else {
        listener.name.clone()
    }
}

fn select_listener<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<&'a ListenerConfig, String> {
    let found = match name {
        Some(name) => config.listeners.iter().find(|l| listener_name(l) == name),
        None => config
            .listeners
            .iter()
            .find(|l| l.tls.is_some())
            .or(config.listeners.first()),
    };
    found.ok_or_else(|| {
        let names: Vec<String> = config.listeners.iter().map(listener_name).collect();
        format!(
            "no listener named {:?} (the configuration has: {})",
            name.unwrap_or_default(),
            names.join(", ")
        )
    })
}

/// The identity the broker would build for a client with these names on
/// this listener, without a certificate file: `--identity` stands for what
/// the certificate says.
fn simulated_identity(
    config: &Config,
    listener: &ListenerConfig,
    args: &AclCheckArgs,
) -> Result<Identity, String> {
    let cert_identity = args.identity.clone().filter(|id| !id.is_empty());
    let username = match &cert_identity {
        Some(identity) if listener.use_identity_as_username => Some(identity.clone()),
        _ => args.username.clone(),
    };
    let client_id = match (&cert_identity, &args.client_id) {
        (Some(identity), _) if listener.identity_as_clientid => identity.clone(),
        (_, Some(client_id)) => client_id.clone(),
        (Some(identity), None) => identity.clone(),
        (None, None) => match (&username, args.anonymous) {
            (Some(username), _) => username.clone(),
            (None, true) => "anonymous".to_string(),
            (None, false) => {
                return Err("give --identity, --username, --anonymous or --client-id \
                            (who is asking?)"
                    .to_string())
            }
        },
    };
    let mut groups: Vec<String> = Vec::new();
    let configured = config.auth.groups.iter().filter(|group| {
        cert_identity
            .as_deref()
            .is_some_and(|id| group.identities.iter().any(|listed| listed == id))
    });
    for group in args.groups.iter().chain(configured.map(|g| &g.name)) {
        if !groups.contains(group) {
            groups.push(group.clone());
        }
    }
    // The broker admits a username with a password file only when its
    // password verifies; without a file the name is a claim.
    // dynsec admits a username it knows only with its password: the same.
    let password_verified = cert_identity.is_none()
        && username.is_some()
        && (config.auth.password_file.is_some() || config.auth.dynsec_file.is_some());
    let username_from_certificate = cert_identity.is_some() && listener.use_identity_as_username;
    Ok(Identity {
        client_id: Arc::from(client_id.as_str()),
        username,
        password_verified,
        username_from_certificate,
        fingerprint: cert_identity.as_ref().map(|_| Arc::from("")),
        cert_identity: cert_identity.map(Arc::from),
        groups,
        listener: Arc::from(listener_name(listener).as_str()),
        bridge: false,
    })
}

fn check_topic(config: &Config, action: Action, topic: &str) -> Result<(), String> {
    let limits = TopicLimits {
        max_length: config.limits.max_topic_length,
        max_levels: config.limits.max_topic_levels,
    };
    let result = match action {
        Action::Subscribe => validate_topic_filter(topic, &limits),
        Action::Publish | Action::Receive => validate_topic_name(topic, &limits),
    };
    result.map_err(|error| format!("{topic:?}: {error}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn editing_keeps_other_lines() {
        let text = "# users\nalice:$7$a\nbob:$7$b\nalice:$7$dup\n";
        let (out, verb) = with_user(text, "alice", "alice:$7$new");
        assert_eq!(
            (out.as_str(), verb),
            ("# users\nalice:$7$new\nbob:$7$b\n", "updated")
        );
        let (out, verb) = with_user(text, "carol", "carol:$7$c");
        assert_eq!(verb, "added");
        assert!(out.ends_with("alice:$7$dup\ncarol:$7$c\n"));
        let (out, removed) = without_user(text, "alice");
        assert_eq!((out.as_str(), removed), ("# users\nbob:$7$b\n", 2));
        assert_eq!(without_user(text, "# users").1, 0);
    }
}
