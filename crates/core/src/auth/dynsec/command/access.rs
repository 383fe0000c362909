//! Default ACL access commands: setDefaultACLAccess, getDefaultACLAccess.

use serde_json::{json, Value};

use super::{args, Command, Replies};
use crate::auth::dynsec::acl::DefaultAccess;
use crate::auth::dynsec::state::Dynsec;

/// Runs `command` if it is a default-access command; false when it is not.
pub fn run(dynsec: &mut Dynsec, command: &Command, replies: &mut Replies) -> bool {
    let (name, body, correlation) = (command.name, command.body, command.correlation);
    match name {
        "getDefaultACLAccess" => {
            let acls: Vec<Value> = DefaultAccess::NAMES
                .iter()
                .map(|kind| {
                    json!({
                        "acltype": kind,
                        "allow": dynsec.default_access.get(kind).unwrap_or(false),
                    })
                })
                .collect();
            replies.data(name, json!({ "acls": acls }), correlation);
        }
        "setDefaultACLAccess" => {
            let Some(acls) = args::field(body, "acls").and_then(Value::as_array) else {
                replies.reply(name, Some("Missing/invalid actions array"), correlation);
                return true;
            };
            let mut access = dynsec.default_access;
            for acl in acls {
                let kind = args::member(acl, "acltype").and_then(Value::as_str);
                let allow = args::member(acl, "allow").and_then(Value::as_bool);
                if let (Some(kind), Some(allow)) = (kind, allow) {
                    access.set(kind, allow);
                }
            }
            dynsec.default_access = access;
            replies.changed(name, correlation, Vec::new());
        }
        _ => return false,
    }
    true
}
