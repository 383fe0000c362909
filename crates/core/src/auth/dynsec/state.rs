//! The whole dynsec configuration: clients, groups, roles, default access
//! and the anonymous group, with the operations that keep references
//! consistent (a membership is recorded on both sides; deleting a role or
//! group removes every reference to it).
//!
//! Owns the data and its invariants; it knows nothing of JSON commands,
//! files or connections. Each change returns who must be disconnected
//! ([`Kick`]) so the caller can enforce it at once.

use std::collections::BTreeMap;

use super::acl::DefaultAccess;
use super::client::Client;
use super::group::Group;
use super::role::Role;

/// Connections a change must end, as the plugin kicks them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kick {
    /// Every connection authenticated as this username.
    Username(String),
    /// Every connection without a username (anonymous group changes).
    Anonymous,
    /// Every certificate client in this unit (changes to an `ou:` group,
    /// decision 0162).
    Unit(String),
}

/// The kick for the certificate clients an `ou:` group binds, if it is one.
fn unit_kick(group: &str) -> Option<Kick> {
    group
        .strip_prefix(super::decide::UNIT_PREFIX)
        .map(|unit| Kick::Unit(unit.to_string()))
}

/// Why a membership change failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    ClientNotFound,
    GroupNotFound,
    RoleNotFound,
    AlreadyLinked,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynsec {
    /// By username; listing order is byte order, as the plugin's.
    pub(super) clients: BTreeMap<String, Client>,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) roles: BTreeMap<String, Role>,
    pub default_access: DefaultAccess,
    /// Roles for clients without a username.
    pub(super) anonymous_group: Option<String>,
}

impl Dynsec {
    pub fn client(&self, username: &str) -> Option<&Client> {
        self.clients.get(username)
    }
    pub fn client_mut(&mut self, username: &str) -> Option<&mut Client> {
        self.clients.get_mut(username)
    }
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }
    pub fn role_mut(&mut self, name: &str) -> Option<&mut Role> {
        self.roles.get_mut(name)
    }
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }
    pub fn anonymous_group(&self) -> Option<&Group> {
        self.anonymous_group
            .as_deref()
            .and_then(|name| self.groups.get(name))
    }

    /// Adds a client whose role links name existing roles (the caller
    /// checked); false when the username is taken.
    pub fn insert_client(&mut self, client: Client) -> bool {
        if self.clients.contains_key(&client.username) {
            return false;
        }
        self.clients.insert(client.username.clone(), client);
        true
    }

    pub fn insert_group(&mut self, group: Group) -> bool {
        if self.groups.contains_key(&group.groupname) {
            return false;
        }
        self.groups.insert(group.groupname.clone(), group);
        true
    }

    pub fn insert_role(&mut self, role: Role) -> bool {
        if self.roles.contains_key(&role.rolename) {
            return false;
        }
        self.roles.insert(role.rolename.clone(), role);
        true
    }

    /// Deletes a client and its memberships.
    pub fn delete_client(&mut self, username: &str) -> Option<Kick> {
        let client = self.clients.remove(username)?;
        for link in client.groups.iter() {
            if let Some(group) = self.groups.get_mut(&link.name) {
                group.clients.remove(username);
            }
        }
        Some(Kick::Username(client.username))
    }

    /// Deletes a group, its memberships and, if it was the anonymous
    /// group, that setting; returns the members to kick.
    pub fn delete_group(&mut self, name: &str) -> Option<Vec<Kick>> {
        let group = self.groups.remove(name)?;
        let mut kicks = Vec::new();
        for link in group.clients.iter() {
            if let Some(client) = self.clients.get_mut(&link.name) {
                client.groups.remove(name);
            }
            kicks.push(Kick::Username(link.name.clone()));
        }
        if self.anonymous_group.as_deref() == Some(name) {
            self.anonymous_group = None;
            kicks.push(Kick::Anonymous);
        }
        kicks.extend(unit_kick(name));
        Some(kicks)
    }

    /// Deletes a role and every link to it; returns who held it.
    pub fn delete_role(&mut self, name: &str) -> Option<Vec<Kick>> {
        self.roles.remove(name)?;
        let kicks = self.holders_of(name);
        for client in self.clients.values_mut() {
            client.roles.remove(name);
        }
        for group in self.groups.values_mut() {
            group.roles.remove(name);
        }
        Some(kicks)
    }

    /// Everyone whose rights come partly from role `name`.
    pub fn holders_of(&self, name: &str) -> Vec<Kick> {
        let mut kicks: Vec<Kick> = self
            .clients
            .values()
            .filter(|client| client.roles.contains(name))
            .map(|client| Kick::Username(client.username.clone()))
            .collect();
        for group in self.groups.values() {
            if group.roles.contains(name) {
                kicks.extend(self.members_of(group));
            }
        }
        kicks.sort();
        kicks.dedup();
        kicks
    }

    /// A group's members, and anonymous clients for the anonymous group.
    pub fn members_of(&self, group: &Group) -> Vec<Kick> {
        let mut kicks: Vec<Kick> = group
            .clients
            .iter()
            .map(|link| Kick::Username(link.name.clone()))
            .collect();
        if self.anonymous_group.as_deref() == Some(group.groupname.as_str()) {
            kicks.push(Kick::Anonymous);
        }
        kicks.extend(unit_kick(&group.groupname));
        kicks
    }

    /// Puts a client in a group (both sides).
    pub fn add_group_client(
        &mut self,
        group: &str,
        username: &str,
        priority: i64,
    ) -> Result<(), LinkError> {
        if !self.clients.contains_key(username) {
            return Err(LinkError::ClientNotFound);
        }
        let Some(held) = self.groups.get_mut(group) else {
            return Err(LinkError::GroupNotFound);
        };
        if !held.clients.insert(username, priority) {
            return Err(LinkError::AlreadyLinked);
        }
        if let Some(client) = self.clients.get_mut(username) {
            client.groups.insert(group, priority);
        }
        Ok(())
    }

    /// Takes a client out of a group (both sides; absent is no error).
    pub fn remove_group_client(&mut self, group: &str, username: &str) -> Result<(), LinkError> {
        if !self.clients.contains_key(username) {
            return Err(LinkError::ClientNotFound);
        }
        let Some(held) = self.groups.get_mut(group) else {
            return Err(LinkError::GroupNotFound);
        };
        held.clients.remove(username);
        if let Some(client) = self.clients.get_mut(username) {
            client.groups.remove(group);
        }
        Ok(())
    }

    /// Gives a group a role; returns its members to kick.
    pub fn add_group_role(
        &mut self,
        group: &str,
        role: &str,
        priority: i64,
    ) -> Result<Vec<Kick>, LinkError> {
        if !self.roles.contains_key(role) {
            return Err(LinkError::RoleNotFound);
        }
        let Some(held) = self.groups.get_mut(group) else {
            return Err(LinkError::GroupNotFound);
        };
        if !held.roles.insert(role, priority) {
            return Err(LinkError::AlreadyLinked);
        }
        Ok(self.members_of_named(group))
    }

    /// Takes a role from a group; returns its members to kick.
    pub fn remove_group_role(&mut self, group: &str, role: &str) -> Result<Vec<Kick>, LinkError> {
        if !self.roles.contains_key(role) {
            return Err(LinkError::RoleNotFound);
        }
        let Some(held) = self.groups.get_mut(group) else {
            return Err(LinkError::GroupNotFound);
        };
        held.roles.remove(role);
        Ok(self.members_of_named(group))
    }

    fn members_of_named(&self, group: &str) -> Vec<Kick> {
        self.groups
            .get(group)
            .map(|group| self.members_of(group))
            .unwrap_or_default()
    }

    /// Sets the anonymous group (which must exist); returns the kick.
    pub fn set_anonymous_group(&mut self, name: &str) -> Result<Kick, LinkError> {
        if !self.groups.contains_key(name) {
            return Err(LinkError::GroupNotFound);
        }
        self.anonymous_group = Some(name.to_string());
        Ok(Kick::Anonymous)
    }
}
