//! `dynamic-security.json` as Mosquitto's plugin reads and writes it
//! (`clients`, `groups`, `roles`, `defaultACLAccess`, `anonymousGroup`;
//! `textname`/`textdescription`, member names read ignoring case as the
//! plugin does; hashes as `password`, `salt`, `iterations`), so a file
//! written by Mosquitto or by
//! `mosquitto_ctrl dynsec init` is read unchanged and the file fleetmq
//! writes can be read by Mosquitto again.
//!
//! Owns the conversion between text and [`Dynsec`]; writing to disk is
//! `save.rs`. A malformed file is an error naming the entry (fleetmq
//! refuses to start rather than run with rights it could not read);
//! links to roles, groups or clients that do not exist are skipped, as
//! the plugin does.

use serde_json::{json, Map, Value};

use super::acl::{AclEntry, AclType};
use super::client::Client;
use super::group::Group;
use super::links::{Links, NO_PRIORITY};
use super::password::DynsecPassword;
use super::role::Role;
use super::state::Dynsec;

/// A member by name, ignoring ASCII case as the plugin's JSON library
/// does (`mosquitto_ctrl dynsec init` writes `textName`, the plugin
/// `textname`).
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

fn text(object: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>, String> {
    match field(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(format!("{what}: \"{key}\" is not a string")),
    }
}

fn int(object: &Map<String, Value>, key: &str, default: i64) -> i64 {
    field(object, key)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn objects<'a>(
    root: &'a Map<String, Value>,
    key: &str,
) -> Result<Vec<&'a Map<String, Value>>, String> {
    match field(root, key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.as_object()
                    .ok_or_else(|| format!("\"{key}\"[{index}] is not an object"))
            })
            .collect(),
        Some(_) => Err(format!("\"{key}\" is not an array")),
    }
}

fn links(
    object: &Map<String, Value>,
    key: &str,
    name_key: &str,
    what: &str,
) -> Result<Vec<(String, i64)>, String> {
    objects(object, key)
        .map_err(|e| format!("{what}: {e}"))?
        .into_iter()
        .map(|link| {
            let name = text(link, name_key, what)?
                .ok_or_else(|| format!("{what}: a \"{key}\" entry has no \"{name_key}\""))?;
            Ok((name, int(link, "priority", NO_PRIORITY)))
        })
        .collect()
}

/// Parses the text of a `dynamic-security.json`.
pub fn parse(text_of_file: &str) -> Result<Dynsec, String> {
    let root: Value =
        serde_json::from_str(text_of_file).map_err(|e| format!("not valid JSON: {e}"))?;
    let root = root
        .as_object()
        .ok_or("the top level is not a JSON object")?;
    let mut dynsec = Dynsec::default();
    if let Some(access) = field(root, "defaultACLAccess") {
        let access = access
            .as_object()
            .ok_or("\"defaultACLAccess\" is not an object")?;
        for (name, value) in access {
            if let Some(allow) = value.as_bool() {
                dynsec.default_access.set(name, allow);
            }
        }
    }
    for role in objects(root, "roles")? {
        let rolename = text(role, "rolename", "a role")?.ok_or("a role has no \"rolename\"")?;
        let what = format!("role {rolename:?}");
        let mut held = Role::new(&rolename);
        held.textname = text(role, "textname", &what)?;
        held.textdescription = text(role, "textdescription", &what)?;
        for acl in objects(role, "acls").map_err(|e| format!("{what}: {e}"))? {
            let kind = text(acl, "acltype", &what)?.unwrap_or_default();
            let acltype =
                AclType::parse(&kind).ok_or_else(|| format!("{what}: unknown acltype {kind:?}"))?;
            let topic = text(acl, "topic", &what)?
                .ok_or_else(|| format!("{what}: an ACL has no \"topic\""))?;
            held.add_acl(AclEntry {
                acltype,
                topic,
                priority: int(acl, "priority", 0),
                allow: field(acl, "allow")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
        if !dynsec.insert_role(held) {
            return Err(format!("{what} is defined twice"));
        }
    }
    for client in objects(root, "clients")? {
        let username =
            text(client, "username", "a client")?.ok_or("a client has no \"username\"")?;
        let what = format!("client {username:?}");
        let mut held = Client::new(&username);
        held.textname = text(client, "textname", &what)?;
        held.textdescription = text(client, "textdescription", &what)?;
        held.clientid = text(client, "clientid", &what)?.filter(|id| !id.is_empty());
        held.disabled = field(client, "disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let hash = text(client, "password", &what)?;
        let salt = text(client, "salt", &what)?;
        if let (Some(hash), Some(salt)) = (hash, salt) {
            let iterations = int(client, "iterations", 0);
            held.password = Some(
                DynsecPassword::from_fields(&hash, &salt, iterations)
                    .map_err(|e| format!("{what}: {e}"))?,
            );
        }
        for (role, priority) in links(client, "roles", "rolename", &what)? {
            if dynsec.role(&role).is_some() {
                held.roles.insert(&role, priority);
            }
        }
        if !dynsec.insert_client(held) {
            return Err(format!("{what} is defined twice"));
        }
    }
    for group in objects(root, "groups")? {
        let groupname =
            text(group, "groupname", "a group")?.ok_or("a group has no \"groupname\"")?;
        let what = format!("group {groupname:?}");
        let mut held = Group::new(&groupname);
        held.textname = text(group, "textname", &what)?;
        held.textdescription = text(group, "textdescription", &what)?;
        for (role, priority) in links(group, "roles", "rolename", &what)? {
            if dynsec.role(&role).is_some() {
                held.roles.insert(&role, priority);
            }
        }
        let members = links(group, "clients", "username", &what)?;
        if !dynsec.insert_group(held) {
            return Err(format!("{what} is defined twice"));
        }
        for (username, priority) in members {
            // Unknown clients are skipped, as the plugin does.
            let _ = dynsec.add_group_client(&groupname, &username, priority);
        }
    }
    if let Some(name) = text(root, "anonymousGroup", "the file")? {
        // A missing anonymous group is ignored, as the plugin does.
        let _ = dynsec.set_anonymous_group(&name);
    }
    Ok(dynsec)
}

fn links_json(links: &Links, name_key: &str) -> Value {
    Value::Array(
        links
            .iter()
            .map(|link| {
                let mut entry = Map::new();
                entry.insert(name_key.into(), json!(link.name));
                if link.priority != NO_PRIORITY {
                    entry.insert("priority".into(), json!(link.priority));
                }
                Value::Object(entry)
            })
            .collect(),
    )
}

fn put_text(object: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        object.insert(key.into(), json!(value));
    }
}

/// The file's text for `dynsec`, in the plugin's shape. An error (which
/// serde_json gives only for values JSON cannot hold) means nothing must
/// be written: an empty or partial file would lose every client.
pub fn render(dynsec: &Dynsec) -> Result<String, serde_json::Error> {
    let clients: Vec<Value> = dynsec
        .clients()
        .map(|client| {
            let mut entry = Map::new();
            entry.insert("username".into(), json!(client.username));
            put_text(&mut entry, "textname", &client.textname);
            put_text(&mut entry, "textdescription", &client.textdescription);
            put_text(&mut entry, "clientid", &client.clientid);
            if let Some(password) = &client.password {
                entry.insert("password".into(), json!(password.hash_base64()));
                entry.insert("salt".into(), json!(password.salt_base64()));
                entry.insert("iterations".into(), json!(password.iterations()));
            }
            if client.disabled {
                entry.insert("disabled".into(), json!(true));
            }
            entry.insert("roles".into(), links_json(&client.roles, "rolename"));
            Value::Object(entry)
        })
        .collect();
    let groups: Vec<Value> = dynsec
        .groups()
        .map(|group| {
            let mut entry = Map::new();
            entry.insert("groupname".into(), json!(group.groupname));
            put_text(&mut entry, "textname", &group.textname);
            put_text(&mut entry, "textdescription", &group.textdescription);
            entry.insert("roles".into(), links_json(&group.roles, "rolename"));
            entry.insert("clients".into(), links_json(&group.clients, "username"));
            Value::Object(entry)
        })
        .collect();
    let roles: Vec<Value> = dynsec
        .roles()
        .map(|role| {
            let mut entry = Map::new();
            entry.insert("rolename".into(), json!(role.rolename));
            put_text(&mut entry, "textname", &role.textname);
            put_text(&mut entry, "textdescription", &role.textdescription);
            let acls: Vec<Value> = role
                .acls()
                .iter()
                .map(|acl| {
                    json!({
                        "acltype": acl.acltype.name(),
                        "topic": acl.topic,
                        "priority": acl.priority,
                        "allow": acl.allow,
                    })
                })
                .collect();
            entry.insert("acls".into(), Value::Array(acls));
            Value::Object(entry)
        })
        .collect();
    let access = &dynsec.default_access;
    let mut root = Map::new();
    root.insert("clients".into(), Value::Array(clients));
    root.insert("groups".into(), Value::Array(groups));
    root.insert("roles".into(), Value::Array(roles));
    root.insert(
        "defaultACLAccess".into(),
        json!({
            "publishClientSend": access.publish_client_send,
            "publishClientReceive": access.publish_client_receive,
            "subscribe": access.subscribe,
            "unsubscribe": access.unsubscribe,
        }),
    );
    if let Some(group) = dynsec.anonymous_group() {
        root.insert("anonymousGroup".into(), json!(group.groupname));
    }
    // Pretty, as the plugin writes it: the file is read by people too.
    serde_json::to_string_pretty(&Value::Object(root))
}
