//! Prometheus metrics of firmware rollouts, built at each scrape from the
//! rollout documents (`ota::rollout`, a few KiB each):
//! `fleetmq_ota_devices{rollout, version, state}` counts devices by state
//! (waiting, offered, downloading, verified, running, rolled_back, failed)
//! and `fleetmq_ota_rollout_wave{rollout, version, state}` is the wave in
//! progress (1-based) with the rollout's state as a label.
//!
//! It must not hold state of its own or write anything.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use super::rollout;
use super::store::OtaStore;

const DEVICES: (&str, &str) = (
    "fleetmq_ota_devices",
    "Devices of a firmware rollout, by state.",
);
const WAVE: (&str, &str) = (
    "fleetmq_ota_rollout_wave",
    "The wave a firmware rollout is in (1-based), labelled with its state.",
);
const LABELS: [&str; 3] = ["rollout", "version", "state"];

/// The rollouts' families, for the broker's Prometheus registry.
pub struct OtaCollector {
    store: OtaStore,
    descs: Vec<Desc>,
}

impl OtaCollector {
    pub fn new(store: OtaStore) -> OtaCollector {
        let descs = [DEVICES, WAVE]
            .iter()
            .filter_map(|(name, help)| {
                Desc::new(
                    (*name).to_string(),
                    (*help).to_string(),
                    LABELS.iter().map(|l| l.to_string()).collect(),
                    HashMap::new(),
                )
                .ok()
            })
            .collect();
        OtaCollector { store, descs }
    }
}

fn snake<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Collector for OtaCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(rollouts) = rollout::load_all(&self.store.rollouts_dir()) else {
            return Vec::new();
        };
        let (Ok(devices), Ok(wave)) = (
            IntGaugeVec::new(Opts::new(DEVICES.0, DEVICES.1), &LABELS),
            IntGaugeVec::new(Opts::new(WAVE.0, WAVE.1), &LABELS),
        ) else {
            return Vec::new();
        };
        for rollout in &rollouts {
            for (state, count) in rollout.counts() {
                devices
                    .with_label_values(&[&rollout.id, &rollout.version, &snake(&state)])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            wave.with_label_values(&[&rollout.id, &rollout.version, &snake(&rollout.state)])
                .set(i64::try_from(rollout.wave + 1).unwrap_or(i64::MAX));
        }
        let mut families = devices.collect();
        families.extend(wave.collect());
        families
    }
}
