//! Firmware updates over MQTT, the device's side (docs/ota.md, decisions
//! 0163-0166): two OTA slots and an otadata selector laid out as
//! ESP-IDF's, a flash trait so the host simulation runs the same slot
//! logic over a file, the signed manifest, and the protocol agent.
//!
//! - [`flash`]: the [`flash::OtaFlash`] trait and the partition layouts.
//! - [`otadata`]: ESP-IDF's otadata record and rollback states.
//! - [`slots`]: boot selection, install, confirm, rollback.
//! - [`image`]: the ESP image header and application descriptor fields.
//! - [`manifest`]: the offer format and its Ed25519 signature check.
//! - [`progress`]: a download's progress in flash, across a reset.
//! - [`agent`]: the protocol, sans IO.
//!
//! Not here: the ESP32 flash backend (`src/bin/device/ota_flash.rs`) and
//! the connection loop that feeds the agent (`runner::ota`).

pub mod agent;
#[cfg(test)]
mod agent_tests;
pub mod flash;
pub mod image;
pub mod manifest;
pub mod otadata;
pub mod progress;
pub mod slots;

use alloc::format;
use alloc::string::String;

/// Where the broker offers updates to `client_id`.
pub fn offer_topic(client_id: &str) -> String {
    format!("$fleetmq/ota/{client_id}/offer")
}

/// Where the broker answers `client_id`'s fetches.
pub fn chunk_topic(client_id: &str) -> String {
    format!("$fleetmq/ota/{client_id}/chunk")
}

/// Where `client_id` reports its state.
pub fn status_topic(client_id: &str) -> String {
    format!("$fleetmq/ota/{client_id}/status")
}

/// Where `client_id` asks for a chunk.
pub fn fetch_topic(client_id: &str) -> String {
    format!("$fleetmq/ota/{client_id}/fetch")
}
