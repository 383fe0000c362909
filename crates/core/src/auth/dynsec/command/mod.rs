//! The `$CONTROL/dynamic-security/v1` command protocol: a JSON payload
//! `{"commands":[{"command":NAME, ...}, ...]}` answered with
//! `{"responses":[{"command":NAME, "error"?, "data"?, "correlationData"?}]}`
//! in the shapes and words of Mosquitto's plugin, so `mosquitto_ctrl` and
//! lab scripts work unchanged.
//!
//! Owns parsing, validation and replies; every command checks all its
//! input before it changes anything, so a refused command changes nothing.
//! It does not decide who may send commands (the ACL on the control topic
//! does, before this is called), write files or disconnect anyone: it
//! returns what changed and whom to kick.

mod access;
mod args;
mod clients;
mod groups;
mod roles;
mod views;

use serde_json::{json, Map, Value};

use super::state::{Dynsec, Kick};

/// The topic commands arrive on.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// The topic responses are published on.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// Largest command payload read; a larger one is answered with an error
/// and not parsed: a lab's commands are far smaller, and the limit stays
/// under the default `limits.max_packet_size` (1 MiB) so the admin hears
/// why rather than being disconnected.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Most commands in one payload; more are refused, none run.
pub const MAX_COMMANDS: usize = 1000;

/// What one payload did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The JSON response to publish.
    pub response: String,
    /// True when the configuration changed (the file must be saved).
    pub changed: bool,
    /// Connections to end so the change takes effect.
    pub kicks: Vec<Kick>,
}

/// The replies of one payload, and what changed.
pub(super) struct Replies {
    responses: Vec<Value>,
    changed: bool,
    kicks: Vec<Kick>,
}

impl Replies {
    /// Records the result of `command`: success when `error` is `None`.
    pub(super) fn reply(&mut self, command: &str, error: Option<&str>, correlation: Option<&str>) {
        let mut entry = Map::new();
        entry.insert("command".into(), json!(command));
        if let Some(error) = error {
            entry.insert("error".into(), json!(error));
        }
        if let Some(correlation) = correlation {
            entry.insert("correlationData".into(), json!(correlation));
        }
        self.responses.push(Value::Object(entry));
    }

    /// Records a successful query's `data`.
    pub(super) fn data(&mut self, command: &str, data: Value, correlation: Option<&str>) {
        let mut entry = Map::new();
        entry.insert("command".into(), json!(command));
        entry.insert("data".into(), data);
        if let Some(correlation) = correlation {
            entry.insert("correlationData".into(), json!(correlation));
        }
        self.responses.push(Value::Object(entry));
    }

    /// Records a successful change.
    pub(super) fn changed(&mut self, command: &str, correlation: Option<&str>, kicks: Vec<Kick>) {
        self.changed = true;
        self.kicks.extend(kicks);
        self.reply(command, None, correlation);
    }
}

/// One command object and its correlation data.
pub(super) struct Command<'a> {
    pub name: &'a str,
    pub body: &'a Map<String, Value>,
    pub correlation: Option<&'a str>,
}

/// Runs the commands of one payload against `dynsec`.
pub fn handle(dynsec: &mut Dynsec, payload: &[u8]) -> Outcome {
    let mut replies = Replies {
        responses: Vec::new(),
        changed: false,
        kicks: Vec::new(),
    };
    run(dynsec, payload, &mut replies);
    let mut kicks = replies.kicks;
    kicks.sort();
    kicks.dedup();
    Outcome {
        response: json!({ "responses": replies.responses }).to_string(),
        changed: replies.changed,
        kicks,
    }
}

fn run(dynsec: &mut Dynsec, payload: &[u8], replies: &mut Replies) {
    const UNKNOWN: &str = "Unknown command";
    if payload.len() > MAX_PAYLOAD {
        replies.reply(UNKNOWN, Some("Payload too large"), None);
        return;
    }
    let Ok(tree) = serde_json::from_slice::<Value>(payload) else {
        replies.reply(UNKNOWN, Some("Payload not valid JSON"), None);
        return;
    };
    let Some(commands) = args::member(&tree, "commands").and_then(Value::as_array) else {
        replies.reply(UNKNOWN, Some("Invalid/missing commands"), None);
        return;
    };
    if commands.len() > MAX_COMMANDS {
        replies.reply(UNKNOWN, Some("Too many commands"), None);
        return;
    }
    for item in commands {
        let Some(body) = item.as_object() else {
            continue;
        };
        let Some(name) = args::field(body, "command").and_then(Value::as_str) else {
            replies.reply(UNKNOWN, Some("Missing command"), None);
            continue;
        };
        let name = canonical(name);
        let correlation = match args::field(body, "correlationData") {
            None => None,
            Some(Value::String(text)) => Some(text.as_str()),
            Some(_) => {
                replies.reply(name, Some("Invalid correlationData data type."), None);
                continue;
            }
        };
        let command = Command {
            name,
            body,
            correlation,
        };
        let handled = clients::run(dynsec, &command, replies)
            || groups::run(dynsec, &command, replies)
            || roles::run(dynsec, &command, replies)
            || access::run(dynsec, &command, replies);
        if !handled {
            replies.reply(name, Some(UNKNOWN), correlation);
        }
    }
}

/// Every command, as the plugin names it in responses.
const COMMANDS: [&str; 28] = [
    "createClient",
    "deleteClient",
    "setClientPassword",
    "setClientId",
    "enableClient",
    "disableClient",
    "addClientRole",
    "removeClientRole",
    "getClient",
    "listClients",
    "createGroup",
    "deleteGroup",
    "addGroupClient",
    "removeGroupClient",
    "addGroupRole",
    "removeGroupRole",
    "getGroup",
    "listGroups",
    "setAnonymousGroup",
    "getAnonymousGroup",
    "createRole",
    "deleteRole",
    "addRoleACL",
    "removeRoleACL",
    "getRole",
    "listRoles",
    "setDefaultACLAccess",
    "getDefaultACLAccess",
];

/// The command's own spelling when `name` is one ignoring ASCII case (the
/// plugin matches names that way and answers with its spelling).
fn canonical(name: &str) -> &str {
    COMMANDS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
