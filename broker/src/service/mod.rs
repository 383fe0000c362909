//! Life as a service: what the broker does for the process manager around
//! it rather than for MQTT clients.
//!
//! - [`notify`] speaks systemd's `sd_notify` protocol: `READY=1` once the
//!   listeners are bound, `STATUS=` lines, `WATCHDOG=1` keep-alives when
//!   `WatchdogSec=` is set, `STOPPING=1` at shutdown.
//! - [`log`] shapes log lines for a terminal or for journald (which adds
//!   its own timestamps); [`log_file`] and [`log_topic`] are the other
//!   destinations (a file, `$SYS/broker/log/...`).
//! - [`process`] is the pid file and the switch to an unprivileged user.
//! - [`source`] is where the configuration comes from (`fleetmq.toml` or a
//!   Mosquitto file), so start-up and SIGHUP read it the same way.
//! - [`reload`] compares a re-read configuration with the running one and
//!   says which changes need a restart.
//!
//! The signal loop itself lives in [`crate::server::run_service`]. This
//! module must not contain protocol logic.

pub mod log;
pub mod log_file;
pub mod log_topic;
pub mod notify;
pub mod process;
pub mod reload;
pub mod source;

pub use notify::Notifier;
pub use source::{ConfigSource, Format, LoadError, Loaded};
