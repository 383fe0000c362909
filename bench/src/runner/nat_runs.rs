//! Scenario 3 behind one NAT in the runner: the held fleet of
//! `fleet/full-handshakes` (`fleet_devices` mutual-TLS devices, the same
//! ramp, backoff and wait) connecting from `fleet_nat_sources` loopback
//! addresses, as a NAT or a balancer without PROXY protocol shows it to
//! the broker (issue 22, decision 0180), each device with a certificate of
//! its own ([`crate::fleet_pki`]).
//!
//! Every broker runs as configured for the other rows: fleetmq's
//! configuration sets no per-address limit, so its shipped defaults
//! (`limits.max_connections_per_ip`, `connection_rate_per_ip`,
//! `connection_burst_per_ip`) apply, which is what the row is for;
//! Mosquitto and rumqttd have no such limits. It owns how the row is run
//! and which figures it records; the load is `scenario::held`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;

use super::broker::BrokerSetup;
use super::plan::Plan;
use super::{stop, Outcome, Runner};
use crate::case::Case;
use crate::conn::FewSources;
use crate::scenario::held::{self, HeldConfig};

impl Runner {
    /// The held fleet from a few source addresses: how long until every
    /// device has its CONNACK, how many attempts were refused or failed,
    /// and how many devices were in when the wait ended.
    pub(super) fn held_behind_nat(&mut self, setup: &BrokerSetup, rep: usize) {
        // Restored when dropped, after the fleet and its runtime are gone,
        // so the rows after this one spread over every address again.
        let nat = FewSources::use_first(self.plan.fleet_nat_sources);
        let outcome = self.held_behind_nat_run(setup);
        drop(nat);
        self.record(setup, rep, Case::HeldBehindNat, outcome);
    }

    fn held_behind_nat_run(&self, setup: &BrokerSetup) -> Result<Outcome> {
        let endpoint = self.fleet_endpoint(setup.ports.ecdsa, self.plan.fleet_devices)?;
        let fleet = self.fleet_config(self.plan.fleet_devices, false);
        // The fleet rows' wait: a wave the limits hold back ends there,
        // with the devices still out counted, not as a failure.
        let limit = Plan::secs(self.plan.fleet_wait_secs);
        let sources = self.plan.fleet_nat_sources;
        let setup = setup.clone();
        let broker_place = self.broker_core();
        self.on_load_core(async move {
            let broker = setup.start(broker_place, false).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let config = HeldConfig {
                fleet,
                broker_pid: Some(broker.pid),
                metrics: None,
                limit,
                settle: Duration::from_secs(1),
            };
            let result = held::run(&endpoint, &config, sources).await;
            stop(broker).await;
            let result = result?;
            let mut figures = BTreeMap::new();
            figures.insert("devices".into(), result.devices as f64);
            figures.insert("source_addresses".into(), result.source_addresses as f64);
            // Left out when the wait ended first: the cell shows "–" and
            // `connected` says how many were in.
            if let Some(secs) = result.all_connacked_secs {
                figures.insert("bringup_secs".into(), secs);
            }
            figures.insert("failed_attempts".into(), result.failed_attempts as f64);
            figures.insert("connected".into(), result.connected as f64);
            figures.insert("wave_secs".into(), result.wave_secs);
            Ok(Outcome::new(figures, &result))
        })
    }
}
