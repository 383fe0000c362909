//! Who a client is and what it may do: authentication at CONNECT and topic
//! access control for PUBLISH, SUBSCRIBE and message delivery.
//!
//! "A device is its certificate": a client that presents a verified client
//! certificate is named by it, and nothing the client sends in CONNECT (a
//! username, a client id) can make it pass for another device.
//!
//! - [`identity`] turns what a connection knows (certificate, client id,
//!   username, listener settings) into an [`Identity`].
//! - [`authenticate`](mod@authenticate) decides whether that identity may
//!   connect: certificate, then password file, then anonymous.
//! - [`password`] reads and writes `mosquitto_passwd` files (`$7$` PBKDF2
//!   and `$6$` salted SHA-512 hashes).
//! - `owner` ([`SessionOwner`]) names the principal a session belongs to
//!   and decides who may attach to it later (decision 0088); the session
//!   keeps one and the store records it, so it lives here, below both.
//! - [`dynsec`] is Mosquitto's dynamic security: clients, groups and
//!   roles changed at run time through `$CONTROL/dynamic-security/v1`.
//! - [`acl`] evaluates topic rules from `fleetmq.toml` and from a Mosquitto
//!   `acl_file` (docs/decisions/0030-acl-semantics.md).
//! - `fleetmq passwd` and `fleetmq acl check` are fleetmq's `auth_cli`
//!   (clap, rpassword); this module has no command line.
//!
//! This module owns decisions only: it never reads sockets, never touches
//! sessions or the router, and reads files only when asked to load them.
//! The connection code calls [`Identity::build`], [`authenticate()`] and
//! [`Acl::check`] and acts on the answers.

pub mod acl;
pub mod authenticate;
pub mod dynsec;
mod error;
pub mod identity;
mod owner;
pub mod password;

pub use acl::{Acl, AclRule, Action, Decision, Subject};
pub use authenticate::{authenticate, AuthMethod, AuthOutcome};
pub use error::AuthError;
pub use identity::Identity;
pub use owner::{ForeignSession, SessionOwner};
pub use password::{hash_password, PasswordFile};
