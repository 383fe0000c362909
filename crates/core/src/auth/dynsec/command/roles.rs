//! Role commands: createRole, deleteRole, addRoleACL, removeRoleACL,
//! getRole, listRoles.

use serde_json::{json, Map, Value};

use super::args::{self, valid_filter, valid_utf8};
use super::{views, Command, Replies};
use crate::auth::dynsec::acl::{AclEntry, AclType};
use crate::auth::dynsec::role::Role;
use crate::auth::dynsec::state::Dynsec;

/// Runs `command` if it is a role command; false when it is not.
pub fn run(dynsec: &mut Dynsec, command: &Command, replies: &mut Replies) -> bool {
    let (name, body, correlation) = (command.name, command.body, command.correlation);
    match name {
        "listRoles" => {
            let data = views::listing(
                body,
                || dynsec.roles(),
                "roles",
                |item| &item.rolename,
                views::role,
            );
            replies.data(name, data, correlation);
            return true;
        }
        "createRole" | "deleteRole" | "addRoleACL" | "removeRoleACL" | "getRole" => {}
        _ => return false,
    }
    let mut fail = |error: &str| replies.reply(name, Some(error), correlation);
    let Ok(Some(rolename)) = args::string(body, "rolename", false) else {
        fail("Invalid/missing rolename");
        return true;
    };
    if !valid_utf8(rolename) {
        fail("Role name not valid UTF-8");
        return true;
    }
    match name {
        "createRole" => {
            let Ok(textname) = args::string(body, "textname", true) else {
                fail("Invalid/missing textname");
                return true;
            };
            let Ok(textdescription) = args::string(body, "textdescription", true) else {
                fail("Invalid/missing textdescription");
                return true;
            };
            if dynsec.role(rolename).is_some() {
                fail("Role already exists");
                return true;
            }
            let mut role = Role::new(rolename);
            role.textname = textname.map(str::to_string);
            role.textdescription = textdescription.map(str::to_string);
            if let Some(Value::Array(acls)) = args::field(body, "acls") {
                for acl in acls.iter().filter_map(Value::as_object) {
                    if let Some(entry) = acl_from(acl) {
                        role.add_acl(entry);
                    }
                }
            }
            dynsec.insert_role(role);
            replies.changed(name, correlation, Vec::new());
        }
        "deleteRole" => match dynsec.delete_role(rolename) {
            Some(kicks) => replies.changed(name, correlation, kicks),
            None => fail("Role not found"),
        },
        "addRoleACL" | "removeRoleACL" => {
            if dynsec.role(rolename).is_none() {
                fail("Role not found");
                return true;
            }
            let Some(kind) = args::field(body, "acltype").and_then(Value::as_str) else {
                fail("Invalid/missing acltype");
                return true;
            };
            let Some(acltype) = AclType::parse(kind) else {
                fail("Unknown acltype");
                return true;
            };
            let Some(topic) = args::field(body, "topic").and_then(Value::as_str) else {
                fail("Invalid/missing topic");
                return true;
            };
            if !valid_utf8(topic) {
                fail("Topic not valid UTF-8");
                return true;
            }
            if !valid_filter(topic) {
                fail("Invalid ACL topic");
                return true;
            }
            let kicks = dynsec.holders_of(rolename);
            let Some(role) = dynsec.role_mut(rolename) else {
                fail("Role not found");
                return true;
            };
            if name == "addRoleACL" {
                let added = role.add_acl(AclEntry {
                    acltype,
                    topic: topic.to_string(),
                    priority: args::int(body, "priority", 0),
                    allow: args::boolean(body, "allow", false),
                });
                if !added {
                    fail("ACL with this topic already exists");
                    return true;
                }
            } else if !role.remove_acl(acltype, topic) {
                fail("ACL not found");
                return true;
            }
            replies.changed(name, correlation, kicks);
        }
        _ => match dynsec.role(rolename) {
            Some(role) => replies.data(name, json!({ "role": views::role(role) }), correlation),
            None => fail("Role not found"),
        },
    }
    true
}

/// One ACL of a createRole `acls` array; malformed entries are skipped.
fn acl_from(acl: &Map<String, Value>) -> Option<AclEntry> {
    let acltype = AclType::parse(args::field(acl, "acltype")?.as_str()?)?;
    let topic = args::field(acl, "topic")?.as_str()?;
    if !valid_utf8(topic) || !valid_filter(topic) {
        return None;
    }
    Some(AclEntry {
        acltype,
        topic: topic.to_string(),
        priority: args::int(acl, "priority", 0),
        allow: args::boolean(acl, "allow", false),
    })
}
