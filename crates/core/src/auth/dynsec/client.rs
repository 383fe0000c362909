//! A dynsec client: a username that may connect, with its password, an
//! optional required client id, a disabled flag and its own roles.
//!
//! Owns the fields of one client; group membership is mirrored here and in
//! the group, and `state.rs` keeps the two sides equal.

use super::links::Links;
use super::password::DynsecPassword;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    pub username: String,
    pub textname: Option<String>,
    pub textdescription: Option<String>,
    /// When set, the client must connect with exactly this client id.
    pub clientid: Option<String>,
    /// `None`: the client cannot authenticate with a password.
    pub password: Option<DynsecPassword>,
    /// A disabled client is refused at CONNECT (and kicked when disabled).
    pub disabled: bool,
    /// The client's own roles, tried before its groups' roles.
    pub roles: Links,
    /// The groups it belongs to, in decision order.
    pub groups: Links,
}

impl Client {
    pub fn new(username: &str) -> Client {
        Client {
            username: username.to_string(),
            ..Client::default()
        }
    }
}
