//! Client commands: createClient, deleteClient, setClientPassword,
//! setClientId, enableClient, disableClient, addClientRole,
//! removeClientRole, getClient, listClients.

use serde_json::{json, Value};

use super::args::{self, valid_utf8};
use super::{views, Command, Replies};
use crate::auth::dynsec::client::Client;
use crate::auth::dynsec::links::NO_PRIORITY;
use crate::auth::dynsec::password::DynsecPassword;
use crate::auth::dynsec::state::{Dynsec, Kick};

/// Runs `command` if it is a client command; false when it is not.
pub fn run(dynsec: &mut Dynsec, command: &Command, replies: &mut Replies) -> bool {
    let (name, body, correlation) = (command.name, command.body, command.correlation);
    let mut fail = |error: &str| replies.reply(name, Some(error), correlation);
    let kind = match name {
        "createClient" | "deleteClient" | "setClientPassword" | "setClientId" | "enableClient"
        | "disableClient" | "addClientRole" | "removeClientRole" | "getClient" => name,
        "listClients" => {
            let data = views::listing(
                body,
                || dynsec.clients(),
                "clients",
                |item| &item.username,
                views::client,
            );
            replies.data(name, data, correlation);
            return true;
        }
        _ => return false,
    };
    let Ok(Some(username)) = args::string(body, "username", false) else {
        fail("Invalid/missing username");
        return true;
    };
    if !valid_utf8(username) {
        fail("Username not valid UTF-8");
        return true;
    }
    match kind {
        "createClient" => create(dynsec, command, username, replies),
        "deleteClient" => match dynsec.delete_client(username) {
            Some(kick) => replies.changed(name, correlation, vec![kick]),
            None => fail("Client not found"),
        },
        "setClientPassword" => {
            let Ok(Some(password)) = args::string(body, "password", false) else {
                fail("Invalid/missing password");
                return true;
            };
            if password.is_empty() {
                fail("Empty password is not allowed");
                return true;
            }
            let Some(client) = dynsec.client_mut(username) else {
                fail("Client not found");
                return true;
            };
            let Some(hashed) = DynsecPassword::new(password.as_bytes()) else {
                fail("Internal error");
                return true;
            };
            client.password = Some(hashed);
            replies.changed(name, correlation, vec![Kick::Username(username.into())]);
        }
        "setClientId" => {
            let Ok(clientid) = args::string(body, "clientid", true) else {
                fail("Invalid/missing client ID");
                return true;
            };
            if clientid.is_some_and(|id| !valid_utf8(id)) {
                fail("Client ID not valid UTF-8");
                return true;
            }
            let Some(client) = dynsec.client_mut(username) else {
                fail("Client not found");
                return true;
            };
            client.clientid = clientid.filter(|id| !id.is_empty()).map(str::to_string);
            replies.changed(name, correlation, vec![Kick::Username(username.into())]);
        }
        "enableClient" | "disableClient" => {
            let Some(client) = dynsec.client_mut(username) else {
                fail("Client not found");
                return true;
            };
            client.disabled = kind == "disableClient";
            let kicks = if client.disabled {
                vec![Kick::Username(username.into())]
            } else {
                Vec::new()
            };
            replies.changed(name, correlation, kicks);
        }
        "addClientRole" | "removeClientRole" => {
            let Ok(Some(rolename)) = args::string(body, "rolename", false) else {
                fail("Invalid/missing rolename");
                return true;
            };
            if !valid_utf8(rolename) {
                fail("Role name not valid UTF-8");
                return true;
            }
            let priority = args::int(body, "priority", NO_PRIORITY);
            let role_exists = dynsec.role(rolename).is_some();
            let Some(client) = dynsec.client_mut(username) else {
                fail("Client not found");
                return true;
            };
            if !role_exists {
                fail("Role not found");
                return true;
            }
            if kind == "addClientRole" {
                client.roles.insert(rolename, priority);
            } else {
                client.roles.remove(rolename);
            }
            replies.changed(name, correlation, vec![Kick::Username(username.into())]);
        }
        _ => match dynsec.client(username) {
            Some(client) => replies.data(
                name,
                json!({ "client": views::client(client) }),
                correlation,
            ),
            None => fail("Client not found"),
        },
    }
    true
}

fn create(dynsec: &mut Dynsec, command: &Command, username: &str, replies: &mut Replies) {
    let (name, body, correlation) = (command.name, command.body, command.correlation);
    let mut fail = |error: &str| replies.reply(name, Some(error), correlation);
    let Ok(password) = args::string(body, "password", true) else {
        return fail("Invalid/missing password");
    };
    let Ok(clientid) = args::string(body, "clientid", true) else {
        return fail("Invalid/missing client id");
    };
    if clientid.is_some_and(|id| !valid_utf8(id)) {
        return fail("Client ID not valid UTF-8");
    }
    let Ok(textname) = args::string(body, "textname", true) else {
        return fail("Invalid/missing textname");
    };
    let Ok(textdescription) = args::string(body, "textdescription", true) else {
        return fail("Invalid/missing textdescription");
    };
    if dynsec.client(username).is_some() {
        return fail("Client already exists");
    }
    let mut client = Client::new(username);
    client.textname = textname.map(str::to_string);
    client.textdescription = textdescription.map(str::to_string);
    client.clientid = clientid.filter(|id| !id.is_empty()).map(str::to_string);
    if let Some(password) = password {
        let Some(hashed) = DynsecPassword::new(password.as_bytes()) else {
            return fail("Internal error");
        };
        client.password = Some(hashed);
    }
    match role_links(dynsec, body) {
        Ok(links) => {
            for (role, priority) in links {
                client.roles.insert(&role, priority);
            }
        }
        Err(error) => return fail(error),
    }
    let mut groups = Vec::new();
    if let Some(Value::Array(items)) = args::field(body, "groups") {
        for item in items {
            let Some(group) = args::member(item, "groupname").and_then(Value::as_str) else {
                continue;
            };
            if dynsec.group(group).is_none() {
                return fail("Group not found");
            }
            groups.push((
                group.to_string(),
                args::member(item, "priority")
                    .and_then(Value::as_i64)
                    .unwrap_or(NO_PRIORITY),
            ));
        }
    }
    dynsec.insert_client(client);
    for (group, priority) in groups {
        // Checked above; a duplicate in the list is no error.
        let _ = dynsec.add_group_client(&group, username, priority);
    }
    replies.changed(name, correlation, Vec::new());
}

/// The `roles` array of createClient / createGroup: each role must exist.
pub(super) fn role_links(
    dynsec: &Dynsec,
    body: &serde_json::Map<String, Value>,
) -> Result<Vec<(String, i64)>, &'static str> {
    let Some(roles) = args::field(body, "roles") else {
        return Ok(Vec::new());
    };
    let Some(roles) = roles.as_array() else {
        return Err("'roles' not an array or missing/invalid rolename");
    };
    let mut links = Vec::new();
    for role in roles {
        let Some(rolename) = args::member(role, "rolename").and_then(Value::as_str) else {
            return Err("'roles' not an array or missing/invalid rolename");
        };
        if dynsec.role(rolename).is_none() {
            return Err("Role not found");
        }
        links.push((
            rolename.to_string(),
            args::member(role, "priority")
                .and_then(Value::as_i64)
                .unwrap_or(NO_PRIORITY),
        ));
    }
    Ok(links)
}
