//! The load scenarios. Each takes an [`Endpoint`](crate::conn::Endpoint)
//! and a bounded configuration (every loop ends by count and by time) and
//! returns figures; the runner adds what only it can see (the broker's CPU
//! and memory, restarts).

pub mod bridge;
pub mod connect;
pub mod fleet;
pub mod flow;
pub mod held;
pub mod persist;
