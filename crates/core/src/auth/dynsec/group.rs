//! A dynsec group: roles shared by its member clients (and by anonymous
//! clients when it is the anonymous group).
//!
//! Owns the fields of one group; `state.rs` keeps its member list equal to
//! the members' own group lists.

use super::links::Links;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub groupname: String,
    pub textname: Option<String>,
    pub textdescription: Option<String>,
    /// Tried in this order for every member, after the member's own roles.
    pub roles: Links,
    /// Member usernames with the priority of their membership.
    pub clients: Links,
}

impl Group {
    pub fn new(groupname: &str) -> Group {
        Group {
            groupname: groupname.to_string(),
            ..Group::default()
        }
    }
}
