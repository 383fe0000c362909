//! The measurement cases: one variant per thing a run measures for each
//! broker, shared by the runner (which records under these names) and the
//! report (which looks figures up by them).
//!
//! The names are the `case` strings of `report.json`: renaming one orphans
//! the committed results, so this module must not change a name without
//! re-running the bench. It owns names only, not how a case is measured.

use std::fmt;

/// One measurement of a run, e.g. `connect/tls12-ecdsa/1core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Scenario 1: mutual TLS 1.2, ECDSA server certificate, broker on 1 core.
    Tls12Ecdsa1Core,
    /// The same, every connection with a device certificate the broker has
    /// not seen since it started (first connects: the fleet's certificate
    /// per device, cycled; see `crate::fleet_pki`).
    Tls12EcdsaFirst1Core,
    /// Scenario 1 with the RSA-2048 server certificate.
    Tls12Rsa1Core,
    /// Scenario 1 over TLS 1.3.
    Tls13Ecdsa1Core,
    /// Scenario 1 with broker and load on both cores.
    Tls12Ecdsa2Cores,
    /// Scenario 1 over one-way TLS 1.2 (no client certificate), 1 core.
    Tls12EcdsaOneWay1Core,
    /// Scenario 1 over plain TCP, 1 core.
    Plain1Core,
    /// Scenarios 2 and 3: the held fleet, every reconnect a full handshake.
    FleetFullHandshakes,
    /// Scenario 2 with devices offering session resumption.
    FleetResumption,
    /// Scenario 3: the largest fleet the broker holds.
    HeldMax,
    /// Scenario 3's fleet from a few source addresses, as behind one NAT
    /// or a balancer, fleetmq on its default per-address limits.
    HeldBehindNat,
    /// Scenario 4: fan-in QoS 0 at full load.
    FanInQos0Max,
    /// Scenario 4: fan-in QoS 1 at full load.
    FanInQos1Max,
    /// Scenario 5: fan-out QoS 0 at full load.
    FanOutQos0Max,
    /// Scenario 5: fan-out QoS 1 at full load.
    FanOutQos1Max,
    /// Scenario 4 at half Mosquitto's peak: latency.
    FanInQos0FixedRate,
    /// Scenario 5 at half Mosquitto's peak: latency.
    FanOutQos0FixedRate,
    /// Scenario 4 with QoS 1 at a fixed rate (issue 22: 20,000 msgs/s).
    FanInQos1FixedRate,
    /// Scenario 6: QoS 1 into offline durable sessions.
    PersistQos1Offline,
    /// Scenario 6, fleetmq with `fsync = "always"`.
    PersistQos1OfflineAlways,
    /// Scenario 6, fleetmq without its write-ahead log (`wal = false`).
    PersistQos1OfflineNoWal,
    /// Scenario 6 from many publishers (the plan's `persist_fleet_*`).
    PersistQos1Fleet,
    /// The same, fleetmq without its write-ahead log.
    PersistQos1FleetNoWal,
    /// Scenario 6 at QoS 2 (publishes and subscriptions), many publishers.
    PersistQos2Fleet,
    /// Scenario 7: QoS 1 bridged to a remote Mosquitto, at full load.
    BridgeQos1Max,
    /// Scenario 7 at a fixed moderate rate: publish to remote arrival.
    BridgeQos1FixedRate,
}

impl Case {
    /// Every case a full run measures per broker, in the runner's order.
    pub const ALL: [Case; 26] = [
        Case::Tls12Ecdsa1Core,
        Case::Tls12EcdsaFirst1Core,
        Case::Tls12Rsa1Core,
        Case::Tls13Ecdsa1Core,
        Case::Tls12Ecdsa2Cores,
        Case::Tls12EcdsaOneWay1Core,
        Case::Plain1Core,
        Case::FleetFullHandshakes,
        Case::FleetResumption,
        Case::HeldMax,
        Case::HeldBehindNat,
        Case::FanInQos0Max,
        Case::FanInQos1Max,
        Case::FanOutQos0Max,
        Case::FanOutQos1Max,
        Case::FanInQos0FixedRate,
        Case::FanOutQos0FixedRate,
        Case::FanInQos1FixedRate,
        Case::PersistQos1Offline,
        Case::PersistQos1OfflineAlways,
        Case::PersistQos1OfflineNoWal,
        Case::PersistQos1Fleet,
        Case::PersistQos1FleetNoWal,
        Case::PersistQos2Fleet,
        Case::BridgeQos1Max,
        Case::BridgeQos1FixedRate,
    ];

    /// The name records carry in `report.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Case::Tls12Ecdsa1Core => "connect/tls12-ecdsa/1core",
            Case::Tls12EcdsaFirst1Core => "connect/tls12-ecdsa-first/1core",
            Case::Tls12Rsa1Core => "connect/tls12-rsa/1core",
            Case::Tls13Ecdsa1Core => "connect/tls13-ecdsa/1core",
            Case::Tls12Ecdsa2Cores => "connect/tls12-ecdsa/2cores",
            Case::Tls12EcdsaOneWay1Core => "connect/tls12-ecdsa-oneway/1core",
            Case::Plain1Core => "connect/plain/1core",
            Case::FleetFullHandshakes => "fleet/full-handshakes",
            Case::FleetResumption => "fleet/resumption",
            Case::HeldMax => "held/max",
            Case::HeldBehindNat => "held/behind-nat",
            Case::FanInQos0Max => "fan-in/qos0/max",
            Case::FanInQos1Max => "fan-in/qos1/max",
            Case::FanOutQos0Max => "fan-out/qos0/max",
            Case::FanOutQos1Max => "fan-out/qos1/max",
            Case::FanInQos0FixedRate => "fan-in/qos0/fixed-rate",
            Case::FanOutQos0FixedRate => "fan-out/qos0/fixed-rate",
            Case::FanInQos1FixedRate => "fan-in/qos1/fixed-rate",
            Case::PersistQos1Offline => "persist/qos1-offline",
            Case::PersistQos1OfflineAlways => "persist/qos1-offline/always",
            Case::PersistQos1OfflineNoWal => "persist/qos1-offline/no-wal",
            Case::PersistQos1Fleet => "persist/qos1-offline/fleet",
            Case::PersistQos1FleetNoWal => "persist/qos1-offline/fleet/no-wal",
            Case::PersistQos2Fleet => "persist/qos2-offline/fleet",
            Case::BridgeQos1Max => "bridge/qos1/max",
            Case::BridgeQos1FixedRate => "bridge/qos1/fixed-rate",
        }
    }

    /// The case a name stands for (`None`: not a case of this harness).
    pub fn from_name(name: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|case| case.name() == name)
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_round_trip() {
        for case in Case::ALL {
            assert_eq!(Case::from_name(case.name()), Some(case));
        }
        assert_eq!(Case::from_name("connect/nothing"), None);
    }
}
