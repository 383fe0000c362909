//! The JSON a query answers with (`getClient`, `listGroups` ...): the
//! plugin's field names (lower-case `textname`), optional fields left out
//! when unset, link priorities left out when none was given.

use serde_json::{json, Map, Value};

use crate::auth::dynsec::client::Client;
use crate::auth::dynsec::group::Group;
use crate::auth::dynsec::links::{Links, NO_PRIORITY};
use crate::auth::dynsec::role::Role;

fn links(links: &Links, key: &str, with_priority: bool) -> Value {
    Value::Array(
        links
            .iter()
            .map(|link| {
                let mut entry = Map::new();
                entry.insert(key.into(), json!(link.name));
                if with_priority && link.priority != NO_PRIORITY {
                    entry.insert("priority".into(), json!(link.priority));
                }
                Value::Object(entry)
            })
            .collect(),
    )
}

fn texts(entry: &mut Map<String, Value>, name: &Option<String>, description: &Option<String>) {
    if let Some(name) = name {
        entry.insert("textname".into(), json!(name));
    }
    if let Some(description) = description {
        entry.insert("textdescription".into(), json!(description));
    }
}

pub fn client(client: &Client) -> Value {
    let mut entry = Map::new();
    entry.insert("username".into(), json!(client.username));
    texts(&mut entry, &client.textname, &client.textdescription);
    if let Some(id) = &client.clientid {
        entry.insert("clientid".into(), json!(id));
    }
    if client.disabled {
        entry.insert("disabled".into(), json!(true));
    }
    entry.insert("roles".into(), links(&client.roles, "rolename", true));
    entry.insert("groups".into(), links(&client.groups, "groupname", true));
    Value::Object(entry)
}

pub fn group(group: &Group) -> Value {
    let mut entry = Map::new();
    entry.insert("groupname".into(), json!(group.groupname));
    texts(&mut entry, &group.textname, &group.textdescription);
    entry.insert("clients".into(), links(&group.clients, "username", false));
    entry.insert("roles".into(), links(&group.roles, "rolename", true));
    Value::Object(entry)
}

pub fn role(role: &Role) -> Value {
    let mut entry = Map::new();
    entry.insert("rolename".into(), json!(role.rolename));
    texts(&mut entry, &role.textname, &role.textdescription);
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
}

/// The data of a `list*` command: `{"totalCount": N, key: [...]}` where
/// each listed item is its `name` or, with `verbose`, its whole `view`;
/// paged by the command's `count` and `offset` (see [`page`]).
pub fn listing<'a, T: 'a, I: Iterator<Item = &'a T>>(
    body: &Map<String, Value>,
    items: impl Fn() -> I,
    key: &str,
    name: impl Fn(&T) -> &str,
    view: impl Fn(&T) -> Value,
) -> Value {
    let verbose = super::args::boolean(body, "verbose", false);
    let count = super::args::int(body, "count", -1);
    let offset = super::args::int(body, "offset", 0);
    let total = items().count();
    let listed: Vec<Value> = page(items(), count, offset)
        .into_iter()
        .map(|item| {
            if verbose {
                view(item)
            } else {
                json!(name(item))
            }
        })
        .collect();
    let mut data = Map::new();
    data.insert("totalCount".into(), json!(total));
    data.insert(key.into(), Value::Array(listed));
    Value::Object(data)
}

/// A `list*` page: from `offset`, at most `count` items when `count` is
/// not negative (the plugin stops after the first item when `count` is 0,
/// and so does this).
pub fn page<T>(items: impl Iterator<Item = T>, count: i64, offset: i64) -> Vec<T> {
    let mut out = Vec::new();
    let mut left = count;
    for (index, item) in items.enumerate() {
        if (index as i64) < offset {
            continue;
        }
        out.push(item);
        if left >= 0 {
            left -= 1;
            if left <= 0 {
                break;
            }
        }
    }
    out
}
