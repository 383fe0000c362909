//! The OTA agent inside the device loop, the same on the ESP32 and in the
//! host simulation (docs/ota.md): the connection loop ([`super::serve`])
//! hands it the OTA messages and a tick, publishes what it says, and
//! stops the loop when it asks for a reset; the platform then resets (the
//! chip) or boots again (the simulation's flash file).
//!
//! [`OtaRun`] holds the slots and the agent of one boot, and the
//! confirmation deadline: an image still `PendingVerify` this long after
//! start was not confirmed online, and the device resets (the next start
//! rolls it back, [`crate::ota::slots::Slots::app_start`]).
//!
//! Owns: when the agent is called and the deadline. Must not: know the
//! flash (an [`OtaFlash`]) or the MQTT bytes (the session writes them).

use alloc::string::String;
use alloc::vec::Vec;

use crate::ota::agent::{Agent, Out};
use crate::ota::flash::OtaFlash;
use crate::ota::otadata::ImageState;
use crate::ota::slots::Slots;

/// What the device loop needs from the OTA side.
pub trait OtaHook {
    /// Subscribed to the OTA topics: confirm a pending image, report.
    fn online(&mut self, now_ms: u64, out: &mut Vec<Out>);
    /// A message on the offer (`chunk: false`) or chunk topic.
    fn message(&mut self, chunk: bool, payload: &[u8], now_ms: u64, out: &mut Vec<Out>);
    /// Called at least once a second while connected.
    fn tick(&mut self, now_ms: u64, out: &mut Vec<Out>);
    /// A pending image's time to be confirmed is over: reset now.
    fn confirm_overdue(&mut self, now_ms: u64) -> bool;
    /// Milliseconds to wait after writing a chunk (0 on a device; the
    /// simulation slows a download down for its tests).
    fn pace_ms(&self) -> u64 {
        0
    }
}

/// The OTA side of one boot.
pub struct OtaRun<F> {
    /// The two slots on the device's flash.
    pub slots: Slots<F>,
    /// The protocol.
    pub agent: Agent,
    /// Until when a `PendingVerify` image may take to be confirmed.
    confirm_by_ms: Option<u64>,
    /// Pause after each chunk (simulation).
    pub pace_ms: u64,
}

impl<F: OtaFlash> OtaRun<F> {
    /// After [`Slots::app_start`] (or the simulation's bootloader step)
    /// chose to run: a `pending` image must be online within
    /// `confirm_ms`; a download saved in flash is taken up again.
    pub fn new(
        slots: Slots<F>,
        agent: Agent,
        pending: bool,
        now_ms: u64,
        confirm_ms: u64,
    ) -> (OtaRun<F>, Vec<Out>) {
        let mut run = OtaRun {
            slots,
            agent,
            confirm_by_ms: pending.then(|| now_ms.saturating_add(confirm_ms)),
            pace_ms: 0,
        };
        let mut out = Vec::new();
        run.agent.resume(&mut run.slots, now_ms, &mut out);
        (run, out)
    }

    /// The version the running slot's image declares.
    pub fn running_version(&mut self) -> Option<String> {
        let slot = self.slots.running().ok()?.slot;
        self.slots.version(slot).ok().flatten()
    }
}

impl<F: OtaFlash> OtaHook for OtaRun<F> {
    fn online(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        self.agent.on_online(&mut self.slots, now_ms, out);
        let confirmed = matches!(
            self.slots.running(),
            Ok(booted) if booted.state != Some(ImageState::PendingVerify)
        );
        if confirmed {
            self.confirm_by_ms = None;
        }
    }

    fn message(&mut self, chunk: bool, payload: &[u8], now_ms: u64, out: &mut Vec<Out>) {
        if chunk {
            self.agent.on_chunk(payload, &mut self.slots, now_ms, out);
        } else {
            self.agent.on_offer(payload, &mut self.slots, now_ms, out);
        }
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        self.agent.on_timer(now_ms, out);
    }

    fn confirm_overdue(&mut self, now_ms: u64) -> bool {
        self.confirm_by_ms.is_some_and(|by| now_ms >= by)
    }

    fn pace_ms(&self) -> u64 {
        self.pace_ms
    }
}
