//! Configuration: the serde model of `fleetmq.toml`, its layering
//! (embedded defaults, then the file, then `FLEETMQ_*` environment variables)
//! and validation that names the file, line and key of every error.
//!
//! It must not touch sockets or files other than the configuration itself.

mod bridge;
mod cluster;
mod load;
mod model;
mod ota;
mod provision;
mod provision_checks;
mod validate;

pub use bridge::{
    split_address, BridgeConfig, BridgeDirection, BridgeProtocol, BridgeTls, BridgeTopic,
};
pub use cluster::{ClusterBackend, ClusterConfig};
pub use load::{apply_environment, load, load_from_str, ConfigError};
pub use model::*;
pub use ota::OtaConfig;
pub use provision::{ProvisionConfig, ProvisionPolicy, RevokeReplaced};
pub use validate::{
    validate, weak_token, ValidationError, MIN_REMOTE_TOKEN_CHARS, MQTT_MAX_PACKET_SIZE,
};
