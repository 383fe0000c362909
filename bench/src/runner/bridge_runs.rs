//! Scenario 7 in the runner: QoS 1 bridged to a remote Mosquitto, at
//! full load and at a fixed rate. It owns how the scenario is run and
//! which figures it records; the load itself is `scenario::bridge`.

use std::time::Duration;

use anyhow::{Context, Result};

use super::broker::{self, BrokerSetup, Kind, Ports};
use super::{flow_figures, stop, Outcome, Runner};
use crate::case::Case;
use crate::conn::Endpoint;
use crate::scenario::bridge;
use crate::scenario::flow::{self, FlowConfig, Shape};
use crate::stats::{median, Interference};

/// Whether a broker is in the bridge comparison (rumqttd is not: its
/// bridge is not Mosquitto's, and the issue compares with Mosquitto).
pub(super) fn bridges(kind: Kind) -> bool {
    matches!(kind, Kind::Fleetmq | Kind::Mosquitto)
}

impl Runner {
    pub(super) fn bridge_config(&self, rate: Option<f64>) -> FlowConfig {
        FlowConfig {
            publishers: self.plan.bridge_publishers,
            ..self.flow_config(Shape::FanIn, 1, rate)
        }
    }

    /// The fixed rate of the bridge latency runs: `latency_rate_share` of
    /// the lower of the brokers' median bridged peaks (so neither is
    /// measured overloaded), or the plan's fallback.
    pub(super) fn bridge_rate(&self) -> f64 {
        let peaks: Vec<f64> = [Kind::Fleetmq, Kind::Mosquitto]
            .into_iter()
            .filter_map(|kind| {
                let values: Vec<f64> = self
                    .records
                    .iter()
                    .filter(|r| r.broker == kind && r.case == Case::BridgeQos1Max.name())
                    .filter_map(|r| r.figures.get("delivered_per_sec").copied())
                    .collect();
                let m = median(&values);
                (m.is_finite() && m > 0.0).then_some(m)
            })
            .collect();
        peaks
            .into_iter()
            .reduce(f64::min)
            .map_or(self.plan.fallback_bridge_rate, |peak| {
                peak * self.plan.latency_rate_share
            })
    }

    /// Scenario 7: a fresh remote Mosquitto (on the load generator's
    /// core), the broker under test bridged to it with its own durability
    /// default (fleetmq's store on, Mosquitto's persistence off), then the
    /// fan-in flow from publishers on the broker to one subscriber on the
    /// remote.
    pub(super) fn bridge_run(&self, setup: &BrokerSetup, config: FlowConfig) -> Result<Outcome> {
        let remote_bin = self
            .remote_bin
            .clone()
            .context("no Mosquitto binary for the bridge's remote (--mosquitto-bin)")?;
        let local = Endpoint {
            addr: Ports::addr(setup.ports.plain),
            tls: None,
        };
        let setup = setup.clone();
        let broker_place = self.broker_core();
        let remote_place = self.load_core();
        self.on_load_core(async move {
            // A fresh store: nothing queued for the bridge from before.
            setup.clear_data()?;
            let (remote, remote_addr) =
                broker::start_remote(&remote_bin, &setup.work.join("remote"), remote_place).await?;
            let durable = setup.kind == Kind::Fleetmq;
            let broker = setup
                .start_bridged(broker_place, durable, remote_addr)
                .await?;
            let far = Endpoint {
                addr: remote_addr,
                tls: None,
            };
            let measured = async {
                let up = bridge::wait_forwarding(&local, &far, Duration::from_secs(30)).await?;
                let cpu = Interference::start(broker.pid);
                let result = flow::run_between(&local, &far, &config).await;
                let (broker_cpu, _, other_cpu) = cpu.cores();
                Ok::<_, anyhow::Error>((up, result?, broker_cpu, other_cpu))
            }
            .await;
            stop(broker).await;
            stop(remote).await;
            let (up, result, broker_cpu, other_cpu) = measured?;
            let mut figures = flow_figures(&result, broker_cpu, other_cpu);
            figures.insert("bridge_up_secs".into(), up);
            if result.delivered == 0 {
                anyhow::bail!("nothing reached the remote");
            }
            Ok(Outcome::new(figures, &result))
        })
    }
}
