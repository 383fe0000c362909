//! Group commands: createGroup, deleteGroup, addGroupClient,
//! removeGroupClient, addGroupRole, removeGroupRole, getGroup, listGroups,
//! setAnonymousGroup, getAnonymousGroup.

use serde_json::json;

use super::args::{self, valid_utf8};
use super::clients::role_links;
use super::{views, Command, Replies};
use crate::auth::dynsec::group::Group;
use crate::auth::dynsec::links::NO_PRIORITY;
use crate::auth::dynsec::state::{Dynsec, LinkError};

/// Runs `command` if it is a group command; false when it is not.
pub fn run(dynsec: &mut Dynsec, command: &Command, replies: &mut Replies) -> bool {
    let (name, body, correlation) = (command.name, command.body, command.correlation);
    match name {
        "listGroups" => {
            let data = views::listing(
                body,
                || dynsec.groups(),
                "groups",
                |item| &item.groupname,
                views::group,
            );
            replies.data(name, data, correlation);
            return true;
        }
        "getAnonymousGroup" => {
            let groupname = dynsec
                .anonymous_group()
                .map(|group| group.groupname.clone())
                .unwrap_or_default();
            replies.data(
                name,
                json!({ "group": { "groupname": groupname } }),
                correlation,
            );
            return true;
        }
        "createGroup" | "deleteGroup" | "addGroupClient" | "removeGroupClient" | "addGroupRole"
        | "removeGroupRole" | "getGroup" | "setAnonymousGroup" => {}
        _ => return false,
    }
    let mut fail = |error: &str| replies.reply(name, Some(error), correlation);
    // addGroupClient and removeGroupClient read the username first.
    let username = if matches!(name, "addGroupClient" | "removeGroupClient") {
        let Ok(Some(username)) = args::string(body, "username", false) else {
            fail("Invalid/missing username");
            return true;
        };
        if !valid_utf8(username) {
            fail("Username not valid UTF-8");
            return true;
        }
        username
    } else {
        ""
    };
    let Ok(Some(groupname)) = args::string(body, "groupname", false) else {
        fail("Invalid/missing groupname");
        return true;
    };
    if !valid_utf8(groupname) {
        fail("Group name not valid UTF-8");
        return true;
    }
    let link_error = |error: LinkError| match error {
        LinkError::ClientNotFound => "Client not found",
        LinkError::GroupNotFound => "Group not found",
        LinkError::RoleNotFound => "Role not found",
        LinkError::AlreadyLinked => "Client is already in this group",
    };
    match name {
        "createGroup" => {
            let Ok(textname) = args::string(body, "textname", true) else {
                fail("Invalid/missing textname");
                return true;
            };
            let Ok(textdescription) = args::string(body, "textdescription", true) else {
                fail("Invalid/missing textdescription");
                return true;
            };
            if dynsec.group(groupname).is_some() {
                fail("Group already exists");
                return true;
            }
            let links = match role_links(dynsec, body) {
                Ok(links) => links,
                Err("Role not found") => {
                    fail("Role not found");
                    return true;
                }
                Err(_) => {
                    fail("Internal error");
                    return true;
                }
            };
            let mut group = Group::new(groupname);
            group.textname = textname.map(str::to_string);
            group.textdescription = textdescription.map(str::to_string);
            for (role, priority) in links {
                group.roles.insert(&role, priority);
            }
            dynsec.insert_group(group);
            replies.changed(name, correlation, Vec::new());
        }
        "deleteGroup" => match dynsec.delete_group(groupname) {
            Some(kicks) => replies.changed(name, correlation, kicks),
            None => fail("Group not found"),
        },
        "addGroupClient" => {
            let priority = args::int(body, "priority", NO_PRIORITY);
            match dynsec.add_group_client(groupname, username, priority) {
                Ok(()) => replies.changed(
                    name,
                    correlation,
                    vec![crate::auth::dynsec::Kick::Username(username.into())],
                ),
                Err(error) => fail(link_error(error)),
            }
        }
        "removeGroupClient" => match dynsec.remove_group_client(groupname, username) {
            Ok(()) => replies.changed(
                name,
                correlation,
                vec![crate::auth::dynsec::Kick::Username(username.into())],
            ),
            Err(error) => fail(link_error(error)),
        },
        "addGroupRole" | "removeGroupRole" => {
            let Ok(Some(rolename)) = args::string(body, "rolename", false) else {
                fail("Invalid/missing rolename");
                return true;
            };
            if !valid_utf8(rolename) {
                fail("Role name not valid UTF-8");
                return true;
            }
            let priority = args::int(body, "priority", NO_PRIORITY);
            if dynsec.group(groupname).is_none() {
                fail("Group not found");
                return true;
            }
            let result = if name == "addGroupRole" {
                dynsec.add_group_role(groupname, rolename, priority)
            } else {
                dynsec.remove_group_role(groupname, rolename)
            };
            match result {
                Ok(kicks) => replies.changed(name, correlation, kicks),
                // Adding a role the group has is a success that changes nothing.
                Err(LinkError::AlreadyLinked) => replies.reply(name, None, correlation),
                Err(error) => fail(link_error(error)),
            }
        }
        "getGroup" => match dynsec.group(groupname) {
            Some(group) => replies.data(name, json!({ "group": views::group(group) }), correlation),
            None => fail("Group not found"),
        },
        _ => match dynsec.set_anonymous_group(groupname) {
            Ok(kick) => replies.changed(name, correlation, vec![kick]),
            Err(error) => fail(link_error(error)),
        },
    }
    true
}
