//! TEMPORARY (issue 14): the old `fleetmq::...` paths of the modules that
//! moved to `fleetmq-codec` and `fleetmq-core`, re-exported so that
//! `broker/tests/` compiles untouched while its 32 binaries are merged into
//! one on another branch. Nothing in this package uses these paths.
//!
//! Delete this file (and `pub use compat::*` in lib.rs, and the
//! `ConnectClock` re-export at the end of `tls/mod.rs`) once the tests
//! import `fleetmq_codec::...` and `fleetmq_core::...` directly:
//!
//! | old path                       | new path                              |
//! |--------------------------------|---------------------------------------|
//! | `fleetmq::codec`               | `fleetmq_codec`                       |
//! | `fleetmq::config`              | `fleetmq_core::config`                |
//! | `fleetmq::auth`                | `fleetmq_core::auth`                  |
//! | `fleetmq::message`             | `fleetmq_core::message`               |
//! | `fleetmq::router`              | `fleetmq_core::router`                |
//! | `fleetmq::session`             | `fleetmq_core::session`               |
//! | `fleetmq::broker::Broker`      | `fleetmq_core::engine::Engine`        |
//! | `fleetmq::broker::*`           | `fleetmq_core::engine::*`             |
//! | `fleetmq::tls::ConnectClock`   | `fleetmq_core::peer::ConnectClock`    |

#[doc(hidden)]
pub use fleetmq_codec as codec;
#[doc(hidden)]
pub use fleetmq_core::{auth, config, message, router, session};

/// `fleetmq::broker::Broker` is `fleetmq_core::engine::Engine` now.
#[doc(hidden)]
pub mod broker {
    pub use fleetmq_core::engine::Engine as Broker;
    pub use fleetmq_core::engine::*;
}
