//! fleetmq-firmware: the ESP32 device that talks to fleetmq.
//!
//! This crate is a placeholder until the firmware issue is taken: it builds
//! as an empty `no_std` library so that the workspace is complete. The device
//! logic (configuration, connection state machine, MQTT client) lands here.
#![no_std]
