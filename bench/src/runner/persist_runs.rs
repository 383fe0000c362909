//! Scenario 6 in the runner: QoS 1 into offline durable sessions, a
//! restart, and the drain; for fleetmq also at `fsync = "always"` and
//! without its write-ahead log; the same from a fleet of publishers, also
//! at QoS 2. It owns how the scenario is run and which
//! figures it records; the load itself is `scenario::persist`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::broker::{BrokerSetup, Kind, Ports};
use super::{pct, stop, Outcome, Runner};
use crate::case::Case;
use crate::conn::Endpoint;
use crate::scenario::persist::{self, PersistConfig, PersistResult};

/// The load of one persist run: who publishes, how much, at which QoS.
#[derive(Clone, Copy)]
struct Load {
    publishers: usize,
    per_session: usize,
    qos: u8,
}

impl Runner {
    /// Scenario 6: QoS 1 into offline sessions, durable store, restart.
    /// One publisher (the row); fleetmq also with `fsync =
    /// "always"` and without its write-ahead log. Then the same from a
    /// fleet of publishers, at QoS 1 and at QoS 2 (every broker), and
    /// fleetmq's QoS 1 without the log.
    pub(super) fn persist(&mut self, setup: &BrokerSetup, rep: usize) {
        let one = Load {
            publishers: 1,
            per_session: self.plan.persist_per_session,
            qos: 1,
        };
        let fleet = Load {
            publishers: self.plan.persist_fleet_publishers,
            per_session: self.plan.persist_fleet_per_session,
            qos: 1,
        };
        let fleet_qos2 = Load { qos: 2, ..fleet };
        let fleetmq = setup.kind == Kind::Fleetmq;
        let runs = [
            (Case::PersistQos1Offline, None, one, true),
            (Case::PersistQos1OfflineAlways, Some("always"), one, fleetmq),
            (
                Case::PersistQos1OfflineNoWal,
                Some("batch,nowal"),
                one,
                fleetmq,
            ),
            (Case::PersistQos1Fleet, None, fleet, true),
            (
                Case::PersistQos1FleetNoWal,
                Some("batch,nowal"),
                fleet,
                fleetmq,
            ),
            (Case::PersistQos2Fleet, None, fleet_qos2, true),
        ];
        for (case, fsync, load, run) in runs {
            if !run || load.publishers == 0 {
                continue;
            }
            let mut variant = setup.clone();
            if let Some(fsync) = fsync {
                variant.store_fsync = Some(fsync.into());
            }
            let outcome = self.persist_run(&variant, load);
            self.record(setup, rep, case, outcome);
        }
    }

    fn persist_run(&self, setup: &BrokerSetup, load: Load) -> Result<Outcome> {
        let endpoint = Endpoint {
            addr: Ports::addr(setup.ports.plain),
            tls: None,
        };
        let config = PersistConfig {
            sessions: self.plan.persist_sessions,
            per_session: load.per_session,
            payload: self.plan.payload,
            window: self.plan.qos1_window,
            publishers: load.publishers,
            qos: load.qos,
            phase_limit: Duration::from_secs(60),
        };
        let setup = setup.clone();
        let broker_place = self.broker_core();
        self.on_load_core(async move {
            // A fresh store for every repetition.
            setup.clear_data()?;
            let mut result = PersistResult::default();
            let mut broker = setup.start(broker_place, true).await?;
            let metrics = Ports::addr(setup.ports.http);
            let phases = async {
                persist::prepare(&endpoint, &config).await?;
                let before = persist::store_counters(metrics).await;
                let started = Instant::now();
                persist::publish(&endpoint, &config, &mut result).await?;
                let seconds = started.elapsed().as_secs_f64();
                if let (Some(before), Some(after)) =
                    (before, persist::store_counters(metrics).await)
                {
                    let commits = after.0.saturating_sub(before.0) as f64;
                    result.fsyncs_per_sec = Some(commits / seconds);
                    // `periodic` may not commit at all while publishing.
                    result.msgs_per_fsync =
                        (commits > 0.0).then(|| result.published as f64 / commits);
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            let stopped = broker.stop().await;
            phases?;
            stopped?;
            broker = setup.start(broker_place, true).await?;
            // The HTTP listener may come up after the MQTT ones.
            let mut before = persist::store_counters(metrics).await;
            for _ in 0..20 {
                if before.is_some() || setup.kind != Kind::Fleetmq {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                before = persist::store_counters(metrics).await;
            }
            let drained = persist::drain(&endpoint, &config, &mut result).await;
            if let (Some(before), Some(after)) = (before, persist::store_counters(metrics).await) {
                let commits = after.0.saturating_sub(before.0) as f64;
                result.drain_fsyncs_per_sec = Some(commits / result.drain_secs.max(1e-9));
            }
            stop(broker).await;
            drained?;
            let mut figures = BTreeMap::new();
            figures.insert("accepted_per_sec".into(), result.accepted_per_sec);
            pct(&result.ack_latency, "ack", &mut figures);
            figures.insert(
                "delivered_after_restart_pct".into(),
                100.0 * result.delivered as f64 / result.published.max(1) as f64,
            );
            figures.insert("drained_per_sec".into(), result.drained_per_sec);
            for (name, value) in [
                ("fsyncs_per_sec", result.fsyncs_per_sec),
                ("msgs_per_fsync", result.msgs_per_fsync),
                ("drain_fsyncs_per_sec", result.drain_fsyncs_per_sec),
            ] {
                if let Some(value) = value {
                    figures.insert(name.into(), value);
                }
            }
            Ok(Outcome::new(figures, &result))
        })
    }
}
