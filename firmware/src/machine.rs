//! The connection state machine: what the device does next.
//!
//! ```text
//! JoinWifi -> SyncTime -> Connect (TCP -> TLS -> CONNECT -> CONNACK) -> online
//!    ^            ^          |  failure or lost connection
//!    |            |          v
//!    +---- WiFi lost   Wait (exponential backoff with jitter) -> Connect
//! ```
//!
//! The clock is synchronised (SNTP) before the first TLS handshake because
//! mbedTLS checks certificate dates against it. A TLS session saved after a
//! handshake is offered on the next connect (resumption saves the expensive
//! public-key operations on the device); a failed handshake that offered one
//! forgets it, so a broker that lost its ticket keys costs one retry. The
//! machine does no IO: the runner performs each step and reports the result.

use crate::backoff::Backoff;

/// The part of a connection attempt that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Joining the access point / getting an address.
    Wifi,
    /// SNTP time synchronisation.
    Time,
    /// DNS or TCP connect.
    Tcp,
    /// TLS handshake (certificate refused, unknown CA, ...).
    Tls,
    /// CONNECT / CONNACK.
    Mqtt,
    /// An established connection was lost.
    Online,
}

impl Phase {
    /// For log lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Wifi => "WiFi",
            Phase::Time => "time sync",
            Phase::Tcp => "TCP connect",
            Phase::Tls => "TLS handshake",
            Phase::Mqtt => "MQTT connect",
            Phase::Online => "connection",
        }
    }
}

/// The next thing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `mqtt.enable = false`: stay on WiFi, do nothing else.
    Disabled,
    /// Join the WiFi network.
    JoinWifi,
    /// Set the clock with SNTP.
    SyncTime,
    /// Connect to the broker; `resume` offers the saved TLS session.
    Connect {
        /// A saved TLS session exists and should be offered.
        resume: bool,
    },
    /// Sleep this long before the next attempt.
    Wait {
        /// Milliseconds.
        ms: u32,
    },
}

/// The device's connection state.
#[derive(Debug, Clone)]
pub struct Machine {
    enabled: bool,
    wifi_up: bool,
    time_synced: bool,
    have_session: bool,
    waiting_ms: Option<u32>,
    backoff: Backoff,
}

impl Machine {
    /// A device that just booted.
    pub fn new(mqtt_enabled: bool, backoff: Backoff) -> Machine {
        Machine {
            enabled: mqtt_enabled,
            wifi_up: false,
            time_synced: false,
            have_session: false,
            waiting_ms: None,
            backoff,
        }
    }

    /// What to do now.
    pub fn step(&self) -> Step {
        if let Some(ms) = self.waiting_ms {
            return Step::Wait { ms };
        }
        if !self.wifi_up {
            return Step::JoinWifi;
        }
        if !self.enabled {
            return Step::Disabled;
        }
        if !self.time_synced {
            return Step::SyncTime;
        }
        Step::Connect {
            resume: self.have_session,
        }
    }

    /// WiFi joined and an address obtained.
    pub fn wifi_joined(&mut self) {
        self.wifi_up = true;
    }

    /// The access point dropped us.
    pub fn wifi_lost(&mut self) {
        self.wifi_up = false;
    }

    /// The clock is set.
    pub fn time_synced(&mut self) {
        self.time_synced = true;
    }

    /// A TLS handshake finished; `saved` tells whether its session could be
    /// kept for resumption.
    pub fn handshake_done(&mut self, saved: bool) {
        self.have_session = saved;
    }

    /// CONNACK accepted: the backoff starts over.
    pub fn online(&mut self) {
        self.backoff.reset();
    }

    /// `phase` failed (or an online connection was lost); returns the wait
    /// before the next attempt, drawn with `random` as jitter.
    pub fn failed(&mut self, phase: Phase, random: u32) -> u32 {
        match phase {
            Phase::Wifi => self.wifi_up = false,
            Phase::Time => {}
            // A refused resumption must not be offered again.
            Phase::Tls => self.have_session = false,
            Phase::Tcp | Phase::Mqtt | Phase::Online => {}
        }
        let ms = self.backoff.next_delay_ms(random);
        self.waiting_ms = Some(ms);
        ms
    }

    /// The wait is over.
    pub fn waited(&mut self) {
        self.waiting_ms = None;
    }

    /// Consecutive failures (for log lines).
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine::new(true, Backoff::new(2_000, 60_000))
    }

    #[test]
    fn boot_goes_wifi_then_time_then_connect() {
        let mut m = machine();
        assert_eq!(m.step(), Step::JoinWifi);
        m.wifi_joined();
        assert_eq!(m.step(), Step::SyncTime);
        m.time_synced();
        assert_eq!(m.step(), Step::Connect { resume: false });
    }

    #[test]
    fn reconnect_after_a_dropped_connection_resumes_tls_after_a_backoff() {
        let mut m = machine();
        m.wifi_joined();
        m.time_synced();
        m.handshake_done(true);
        m.online();
        // The broker goes away.
        let wait = m.failed(Phase::Online, 12345);
        assert!((1_000..=2_000).contains(&wait), "{wait}");
        assert_eq!(m.step(), Step::Wait { ms: wait });
        m.waited();
        // No new WiFi join or time sync; the saved session is offered.
        assert_eq!(m.step(), Step::Connect { resume: true });
    }

    #[test]
    fn consecutive_failures_back_off_and_success_resets() {
        let mut m = machine();
        m.wifi_joined();
        m.time_synced();
        let mut ceilings = alloc::vec::Vec::new();
        for _ in 0..7 {
            let wait = m.failed(Phase::Tcp, u32::MAX);
            ceilings.push(wait);
            m.waited();
        }
        assert!(ceilings.windows(2).all(|w| w[0] <= w[1]), "{ceilings:?}");
        assert!(*ceilings.last().unwrap_or(&0) <= 60_000);
        assert!(*ceilings.last().unwrap_or(&0) >= 30_000);
        m.online();
        let wait = m.failed(Phase::Online, u32::MAX);
        assert!(wait <= 2_000, "{wait}");
    }

    #[test]
    fn a_failed_resumed_handshake_forgets_the_session() {
        let mut m = machine();
        m.wifi_joined();
        m.time_synced();
        m.handshake_done(true);
        m.failed(Phase::Tls, 0);
        m.waited();
        assert_eq!(m.step(), Step::Connect { resume: false });
    }

    #[test]
    fn wifi_loss_rejoins_before_connecting_but_keeps_the_clock() {
        let mut m = machine();
        m.wifi_joined();
        m.time_synced();
        m.failed(Phase::Wifi, 0);
        m.waited();
        assert_eq!(m.step(), Step::JoinWifi);
        m.wifi_joined();
        assert_eq!(m.step(), Step::Connect { resume: false });
    }

    #[test]
    fn time_sync_failure_retries_time_sync() {
        let mut m = machine();
        m.wifi_joined();
        m.failed(Phase::Time, 0);
        m.waited();
        assert_eq!(m.step(), Step::SyncTime);
    }

    #[test]
    fn disabled_mqtt_only_joins_wifi() {
        let mut m = Machine::new(false, Backoff::new(1, 1));
        assert_eq!(m.step(), Step::JoinWifi);
        m.wifi_joined();
        assert_eq!(m.step(), Step::Disabled);
    }
}
