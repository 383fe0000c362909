//! How big each scenario is: the full comparison and the CI smoke run.
//! Every figure the report shows comes from one of these, and the report
//! prints the plan it ran.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// Repetitions of every measurement (medians are over these).
    pub reps: usize,
    pub storm_concurrency: usize,
    pub storm_secs: f64,
    pub storm_max_connects: u64,
    pub fleet_devices: usize,
    /// Repetitions of the fleet scenario (the slowest per broker).
    pub fleet_reps: usize,
    /// The "as many as the machine allows" fleet; 0 skips it.
    pub fleet_max_devices: usize,
    /// Repetitions of the largest fleet (it is the slowest scenario).
    pub fleet_max_reps: usize,
    pub fleet_launch_concurrency: usize,
    /// Longest wait for a fleet to be all connected.
    pub fleet_wait_secs: f64,
    /// The held fleet behind one NAT: its `fleet_devices` connect from
    /// this many loopback source addresses (issue 22: 4), each broker on
    /// its default per-address limits.
    #[serde(default = "default_fleet_nat_sources")]
    pub fleet_nat_sources: usize,
    pub fan_in_publishers: usize,
    pub fan_out_subscribers: usize,
    pub payload: usize,
    pub qos1_window: usize,
    pub flow_warmup_secs: f64,
    pub flow_secs: f64,
    pub flow_drain_secs: f64,
    /// Latency runs offer this share of Mosquitto's peak rate...
    pub latency_rate_share: f64,
    /// ...or these rates (msgs/s published) when Mosquitto is not in the run.
    pub fallback_fan_in_rate: f64,
    pub fallback_fan_out_rate: f64,
    /// The QoS 1 fan-in latency run's fixed rate (msgs/s published).
    #[serde(default = "default_qos1_fixed_rate")]
    pub qos1_fixed_rate: f64,
    pub persist_sessions: usize,
    pub persist_per_session: usize,
    /// Scenario 6 from a fleet: publishers (each with `qos1_window` in
    /// flight) and messages per session.
    #[serde(default = "default_persist_fleet_publishers")]
    pub persist_fleet_publishers: usize,
    #[serde(default = "default_persist_fleet_per_session")]
    pub persist_fleet_per_session: usize,
    /// Scenario 7: QoS 1 publishers on the bridging broker.
    #[serde(default = "default_bridge_publishers")]
    pub bridge_publishers: usize,
    /// Scenario 7's fixed rate (msgs/s) when no bridged peak was measured;
    /// otherwise `latency_rate_share` of the lower of the brokers' peaks.
    #[serde(default = "default_fallback_bridge_rate")]
    pub fallback_bridge_rate: f64,
    /// Longest wait for other work on the machine to calm down before a
    /// measurement (0: do not wait).
    pub quiet_wait_secs: f64,
}

impl Plan {
    /// The full comparison: about 5 minutes per broker on 2 cores.
    pub fn full() -> Plan {
        Plan {
            name: "full".into(),
            reps: 3,
            storm_concurrency: 64,
            storm_secs: 2.5,
            storm_max_connects: 200_000,
            fleet_devices: 10_000,
            fleet_reps: 2,
            // Each process may hold 20,000 descriptors here (the hard
            // RLIMIT_NOFILE); the broker needs a few for itself.
            fleet_max_devices: 19_000,
            fleet_max_reps: 1,
            fleet_launch_concurrency: 256,
            fleet_wait_secs: 45.0,
            // A NAT or a balancer without PROXY protocol: 2,500 devices
            // per address.
            fleet_nat_sources: 4,
            fan_in_publishers: 100,
            fan_out_subscribers: 100,
            payload: 64,
            qos1_window: 32,
            flow_warmup_secs: 0.5,
            flow_secs: 2.5,
            flow_drain_secs: 3.0,
            latency_rate_share: 0.5,
            fallback_fan_in_rate: 50_000.0,
            fallback_fan_out_rate: 1_000.0,
            // Issue 22's figure: QoS 1 fan-in offered 20,000 msgs/s.
            qos1_fixed_rate: 20_000.0,
            persist_sessions: 100,
            persist_per_session: 100,
            // 320 messages in flight, 100,000 in all: about a second of
            // publishing at the target rate.
            persist_fleet_publishers: 10,
            persist_fleet_per_session: 1_000,
            bridge_publishers: 10,
            fallback_bridge_rate: 2_000.0,
            quiet_wait_secs: 5.0,
        }
    }

    /// The CI smoke run: every scenario, tiny, seconds in all. It shows the
    /// harness works; its figures mean nothing.
    pub fn smoke() -> Plan {
        Plan {
            name: "smoke".into(),
            reps: 1,
            storm_concurrency: 4,
            storm_secs: 0.5,
            storm_max_connects: 40,
            fleet_devices: 40,
            fleet_reps: 1,
            fleet_max_devices: 80,
            fleet_max_reps: 1,
            fleet_launch_concurrency: 16,
            fleet_wait_secs: 15.0,
            fleet_nat_sources: 4,
            fan_in_publishers: 5,
            fan_out_subscribers: 5,
            payload: 64,
            qos1_window: 8,
            flow_warmup_secs: 0.2,
            flow_secs: 0.5,
            flow_drain_secs: 2.0,
            latency_rate_share: 0.5,
            fallback_fan_in_rate: 500.0,
            fallback_fan_out_rate: 100.0,
            qos1_fixed_rate: 500.0,
            persist_sessions: 5,
            persist_per_session: 10,
            persist_fleet_publishers: 2,
            persist_fleet_per_session: 10,
            bridge_publishers: 2,
            fallback_bridge_rate: 200.0,
            quiet_wait_secs: 0.0,
        }
    }

    /// Device certificates the fleet rows need, one per device: the
    /// largest fleet of the plan (the first-connects storm cycles over
    /// them too).
    pub fn fleet_pool_size(&self) -> usize {
        self.fleet_devices.max(self.fleet_max_devices)
    }

    pub fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value.max(0.0))
    }
}

/// Reports written before scenario 7 existed read with the full plan's
/// bridge sizes.
fn default_bridge_publishers() -> usize {
    Plan::full().bridge_publishers
}

fn default_fleet_nat_sources() -> usize {
    Plan::full().fleet_nat_sources
}

fn default_qos1_fixed_rate() -> f64 {
    Plan::full().qos1_fixed_rate
}

fn default_fallback_bridge_rate() -> f64 {
    Plan::full().fallback_bridge_rate
}

fn default_persist_fleet_publishers() -> usize {
    Plan::full().persist_fleet_publishers
}

fn default_persist_fleet_per_session() -> usize {
    Plan::full().persist_fleet_per_session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_pool_covers_the_largest_fleet_of_the_plan() {
        assert_eq!(Plan::full().fleet_pool_size(), 19_000);
        assert_eq!(Plan::smoke().fleet_pool_size(), 80);
        let mut plan = Plan::smoke();
        plan.fleet_max_devices = 0;
        assert_eq!(plan.fleet_pool_size(), plan.fleet_devices);
    }
}
